//! Loopback connect times per interop cell: one-way (token decoded → first echo) for every
//! {str0m, webrtc-rs} listener × dialer pair, and each stack's two-way baseline (offer created →
//! first echo, SDP through memory). N runs each, medians printed as a Markdown table.
//!
//! `cargo run --release -p oneway-webrtc --example connect_times -- [N]`
//!
//! Dialers generate their DTLS certificate per dial, as `oneway dial` does ("cold"); the
//! listener's is made when its token is issued.

use std::time::{Duration, Instant};

use oneway_token::Token;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

#[derive(Clone, Copy, PartialEq)]
enum Stack {
    Str0m,
    WebrtcRs,
}

async fn listener(stack: Stack) -> Token {
    match stack {
        Stack::Str0m => {
            let mut l = oneway_str0m::Listener::bind(oneway_str0m::ListenerConfig::loopback())
                .await
                .expect("bind");
            let token = l.token().clone();
            tokio::spawn(async move {
                while let Some(mut conn) = l.accept().await {
                    tokio::spawn(async move {
                        while let Some(e) = conn.next_event().await {
                            if let oneway_str0m::ConnectionEvent::Data { channel, data, .. } = e {
                                let _ = conn.send(channel, &data).await;
                            }
                        }
                    });
                }
            });
            token
        }
        Stack::WebrtcRs => {
            let mut l = oneway_webrtc::Listener::bind(oneway_webrtc::ListenerConfig::loopback())
                .await
                .expect("bind");
            let token = l.token().clone();
            tokio::spawn(async move {
                while let Some(mut conn) = l.accept().await {
                    tokio::spawn(async move {
                        while let Some(e) = conn.next_event().await {
                            if let oneway_webrtc::ConnectionEvent::Data { channel, data, .. } = e {
                                let _ = conn.send(channel, &data).await;
                            }
                        }
                    });
                }
            });
            token
        }
    }
}

async fn one_way(stack: Stack, token: &Token) -> Duration {
    let start = Instant::now();
    match stack {
        Stack::Str0m => {
            let mut c = oneway_str0m::dial(token, &Default::default())
                .await
                .expect("dial");
            let ch = c.open_channel("data").await.expect("open");
            c.send(ch, b"probe").await.expect("send");
            while let Some(e) = c.next_event().await {
                if let oneway_str0m::ConnectionEvent::Data { .. } = e {
                    return start.elapsed();
                }
            }
        }
        Stack::WebrtcRs => {
            let mut c = oneway_webrtc::dial(token, &Default::default())
                .await
                .expect("dial");
            let ch = c.open_channel("data").await.expect("open");
            c.send(ch, b"probe").await.expect("send");
            while let Some(e) = c.next_event().await {
                if let oneway_webrtc::ConnectionEvent::Data { .. } = e {
                    return start.elapsed();
                }
            }
        }
    }
    panic!("connection ended before the echo")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let stacks = [(Stack::Str0m, "str0m"), (Stack::WebrtcRs, "webrtc-rs")];
    println!("| cell (listener × dialer) | one-way median of {n} (ms) |\n|---|---|");
    for (ls, lname) in stacks {
        let token = listener(ls).await;
        for (ds, dname) in stacks {
            one_way(ds, &token).await; // warm-up, not counted
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(one_way(ds, &token).await);
            }
            println!("| {lname} × {dname} | {:.1} |", median(v));
        }
    }
    let timeout = Duration::from_secs(10);
    let mut s = Vec::new();
    let mut w = Vec::new();
    for _ in 0..=n {
        s.push(
            oneway_str0m::baseline::signalled_echo(None, timeout)
                .await
                .expect("str0m baseline")
                .first_echo
                .expect("echo"),
        );
        w.push(
            oneway_webrtc::baseline::signalled_echo(None, timeout)
                .await
                .expect("webrtc-rs baseline")
                .first_echo
                .expect("echo"),
        );
    }
    println!("\n| two-way baseline (SDP through memory) | median of {n} (ms) |\n|---|---|");
    println!("| str0m × str0m | {:.1} |", median(s[1..].to_vec()));
    println!("| webrtc-rs × webrtc-rs | {:.1} |", median(w[1..].to_vec()));
}
