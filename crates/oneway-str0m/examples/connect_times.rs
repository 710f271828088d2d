//! Loopback connect times: one-way (token decoded → first echo) against the two-way baseline
//! (offer created → first echo, SDP through memory), N runs each, medians printed.
//!
//! `cargo run --release -p oneway-str0m --example connect_times -- [N]`
//!
//! "cold" includes DTLS key generation in the measured window; "warm" uses certificates made
//! beforehand (the listener's always is: it is made when the token is issued).

use std::time::{Duration, Instant};

use oneway_str0m::{ConnectionEvent, DialConfig, Listener, ListenerConfig, dial};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cert() -> str0m::config::DtlsCert {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .expect("certificate")
}

async fn one_way(
    listener_token: &oneway_token::Token,
    certificate: Option<str0m::config::DtlsCert>,
) -> Duration {
    let start = Instant::now();
    let config = DialConfig {
        certificate,
        ..Default::default()
    };
    let mut conn = dial(listener_token, &config).await.expect("dial");
    let ch = conn.open_channel("data").await.expect("open");
    conn.send(ch, b"probe").await.expect("send");
    loop {
        match conn.next_event().await.expect("event") {
            ConnectionEvent::Data { .. } => return start.elapsed(),
            ConnectionEvent::Closed { code, reason } => panic!("{code}: {reason}"),
            _ => {}
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut listener = Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let token = listener.token().clone();
    tokio::spawn(async move {
        while let Some(mut conn) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(event) = conn.next_event().await {
                    if let ConnectionEvent::Data { channel, data, .. } = event {
                        let _ = conn.send(channel, &data).await;
                    }
                }
            });
        }
    });
    // One warm-up run of each, not counted.
    one_way(&token, None).await;
    oneway_str0m::baseline::signalled_echo(None, Duration::from_secs(10))
        .await
        .expect("baseline");

    let (mut ow_cold, mut ow_warm, mut bl_cold, mut bl_warm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        ow_cold.push(one_way(&token, None).await);
        ow_warm.push(one_way(&token, Some(cert())).await);
        let t = oneway_str0m::baseline::signalled_echo(None, Duration::from_secs(10))
            .await
            .expect("baseline");
        bl_cold.push(t.first_echo.expect("echo"));
        let t =
            oneway_str0m::baseline::signalled_echo(Some((cert(), cert())), Duration::from_secs(10))
                .await
                .expect("baseline");
        bl_warm.push(t.first_echo.expect("echo"));
    }
    let (owc, oww, blc, blw) = (
        median(ow_cold),
        median(ow_warm),
        median(bl_cold),
        median(bl_warm),
    );
    println!("| str0m, loopback, median of {n} | token decoded / offer created → first echo |");
    println!("|---|---|");
    println!(
        "| one-way, cold (dialer key generated in window) | {:.2} ms |",
        ms(owc)
    );
    println!(
        "| two-way baseline, cold (both keys generated in window) | {:.2} ms |",
        ms(blc)
    );
    println!(
        "| one-way, warm (keys made beforehand) | {:.2} ms |",
        ms(oww)
    );
    println!(
        "| two-way baseline, warm (keys made beforehand) | {:.2} ms |",
        ms(blw)
    );
    println!(
        "ratio one-way / baseline: cold {:.2}, warm {:.2}",
        ms(owc) / ms(blc),
        ms(oww) / ms(blw)
    );
}
