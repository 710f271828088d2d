//! N dialers connect at once to one listener socket over loopback; prints how many
//! authenticated and how long the whole burst took.
//!
//! `cargo run --release -p oneway-str0m --example concurrent_dialers -- [N]`

use std::time::{Duration, Instant};

use oneway_str0m::{DialConfig, Listener, ListenerConfig, dial};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let mut listener = Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    println!("one listener socket: {:?}", listener.local_addrs());
    let token = listener.token().clone();
    let accepting = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while accepted.len() < n {
            match tokio::time::timeout(Duration::from_secs(30), listener.accept()).await {
                Ok(Some(conn)) => accepted.push(conn),
                _ => break,
            }
        }
        accepted
    });
    let start = Instant::now();
    let config = DialConfig {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let dials: Vec<_> = (0..n)
        .map(|_| {
            let (token, config) = (token.clone(), config.clone());
            tokio::spawn(async move { (dial(&token, &config).await, Instant::now()) })
        })
        .collect();
    let mut ok = 0;
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    let mut conns = Vec::new();
    let mut done_at = Vec::new();
    for d in dials {
        match d.await.expect("task") {
            (Ok(conn), at) => {
                ok += 1;
                done_at.push(at - start);
                conns.push(conn);
            }
            (Err(e), _) => *errors.entry(e.code().to_owned()).or_default() += 1,
        }
    }
    let accepted = accepting.await.expect("accept task").len();
    done_at.sort();
    let p = |q: f64| {
        done_at
            .get(((done_at.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{n} dialers: {ok} connected, {accepted} accepted, errors {errors:?}; connect time p50 {:.1} ms, p99 {:.1} ms, all in {:.1} ms",
        p(0.5),
        p(0.99),
        start.elapsed().as_secs_f64() * 1000.0
    );
}
