//! One-way connections over loopback with real sockets and real str0m engines.

use std::time::Duration;

use oneway_str0m::{Connection, ConnectionEvent, DialConfig, Listener, ListenerConfig, dial};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits for the next data message, skipping other events; bounded in time.
async fn next_data(conn: &mut Connection) -> Vec<u8> {
    let wait = async {
        loop {
            match conn.next_event().await {
                Some(ConnectionEvent::Data { data, .. }) => return data,
                Some(ConnectionEvent::Closed { code, reason }) => {
                    panic!("closed: {code}: {reason}")
                }
                Some(_) => continue,
                None => panic!("connection ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("data within 10 s")
}

/// Echoes every message on every channel back, until the connection closes.
fn echo(mut conn: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = conn.next_event().await {
            if let ConnectionEvent::Data { channel, data, .. } = event
                && conn.send(channel, &data).await.is_err()
            {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_connect_and_echo() {
    init_tracing();
    let mut listener = Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let token = listener.token().clone();
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted within 10 s")
        .expect("listener running");
    let _echo = echo(accepted);
    let mut conn = dialer.await.expect("task").expect("dial");
    let info = conn.info().clone();
    assert!(info.timings.authenticated.is_some());
    assert!(info.selected.is_some(), "selected pair known");
    let channel = conn.open_channel("data").await.expect("open");
    conn.send(channel, b"hello, one way").await.expect("send");
    assert_eq!(next_data(&mut conn).await, b"hello, one way");
}
