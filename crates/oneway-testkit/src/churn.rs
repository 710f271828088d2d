//! Loss and churn test bodies shared by every stack (issue 9): connecting through a lossy path,
//! dialers killed mid-handshake and mid-transfer, many connections surviving one that goes away,
//! and a reliable ordered channel across ICE restarts. Loss comes from the userspace proxy in
//! [`crate::impair`] (this kernel has no netem).
//!
//! Each body is generic over the dialer's stack `D` and the listener's stack `L` (both
//! [`Stack`]s), so one body tests a stack against itself and the mixed pairs. A stack's test
//! file is a list of `#[tokio::test]`s calling these.
//!
//! [`loss_sweep`] (slow; `ci/loss-sweep.sh`) dials at increasing loss levels and reports the
//! success rate and median connect time of each.
//!
//! Every wait is bounded; no assertion is on timing.

use std::time::{Duration, Instant};

use oneway_connection::{ChannelRef, Connection, ConnectionEvent, ListenerEvent};

use crate::impair::LossyProxy;
use crate::pointed_at;
use crate::stack::{ListenOptions, Stack, TestListener};

/// `dialer → listener` for output.
fn pair<D: Stack, L: Stack>() -> String {
    format!("{} → {}", D::NAME, L::NAME)
}

/// Echoes every message on every channel, until the connection ends.
pub fn echo(mut conn: Connection) -> tokio::task::JoinHandle<()> {
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

/// The next data message, or `None` if none comes in time or the connection ends.
pub async fn try_next_data(conn: &mut Connection, within: Duration) -> Option<Vec<u8>> {
    let wait = async {
        loop {
            match conn.next_event().await? {
                ConnectionEvent::Data { data, .. } => return Some(data),
                ConnectionEvent::Closed { .. } => return None,
                _ => continue,
            }
        }
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// The next data message; panics if none comes within `within` or the connection ends.
pub async fn next_data(conn: &mut Connection, within: Duration) -> Vec<u8> {
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
    tokio::time::timeout(within, wait)
        .await
        .expect("data in time")
}

/// The code of the connection's `Closed` event (`"ended"` if it ends without one); panics if
/// none comes within `within`.
pub async fn closed_code(conn: &mut Connection, within: Duration) -> &'static str {
    let wait = async {
        while let Some(event) = conn.next_event().await {
            if let ConnectionEvent::Closed { code, .. } = event {
                return code;
            }
        }
        "ended"
    };
    tokio::time::timeout(within, wait)
        .await
        .expect("closed in time")
}

/// Dials `listener` through `proxy` with stack `D`; returns the dialer's end and the accepted
/// one, or the dial error as `code: message`.
pub async fn connect_via<D: Stack, L: TestListener>(
    listener: &mut L,
    proxy: &LossyProxy,
    dialer: &D::Dialer,
) -> Result<(Connection, Connection), String> {
    let token = pointed_at(listener.token(), proxy.addr());
    let dialer = dialer.clone();
    let dialing = tokio::spawn(async move { D::dial(&dialer, &token).await });
    let dialed = dialing
        .await
        .expect("dial task")
        .map_err(|e| format!("{}: {e}", e.code()))?;
    let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .map_err(|_| "dialer connected but nothing to accept".to_owned())?
        .ok_or("listener stopped")?;
    Ok((dialed, accepted))
}

/// Sends `count` messages through an echoing peer and checks each comes back.
pub async fn round_trips(conn: &mut Connection, channel: ChannelRef, count: u32, within: Duration) {
    for i in 0..count {
        let message = format!("message {i}");
        conn.send(channel, message.as_bytes()).await.expect("send");
        assert_eq!(next_data(conn, within).await, message.as_bytes());
    }
}

/// Connects through a proxy dropping `loss` of the datagrams each way, once per seed, and
/// carries 20 round trips on each connection.
pub async fn connects_and_carries_data_at_loss<D: Stack, L: Stack>(loss: f64, seeds: &[u64]) {
    let mut listener = L::listen(None).await;
    let dialer = D::dialer(Duration::from_secs(20), false);
    let mut summary = Vec::new();
    for &seed in seeds {
        let proxy = LossyProxy::start(listener.addr(), loss, seed)
            .await
            .expect("proxy");
        let started = Instant::now();
        let (mut conn, accepted) = connect_via::<D, _>(&mut listener, &proxy, &dialer)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: seed {seed}: no connection at {loss} loss: {e}",
                    pair::<D, L>()
                )
            });
        let connect_time = started.elapsed();
        let _echo = echo(accepted);
        let channel = conn.open_channel("data").await.expect("open");
        round_trips(&mut conn, channel, 20, Duration::from_secs(20)).await;
        let stats = proxy.stats();
        if loss > 0.0 {
            assert!(stats.dropped > 0, "the proxy dropped datagrams: {stats:?}");
        }
        summary.push(format!(
            "seed {seed}: connected in {connect_time:?}, 20 round trips, {} of {} datagrams dropped",
            stats.dropped,
            stats.dropped + stats.forwarded
        ));
    }
    eprintln!("{} at {loss} loss: {}", pair::<D, L>(), summary.join("; "));
}

/// Waits for the listener to hold nothing; returns the refusal and close codes of the events it
/// reported meanwhile (including those already waiting). Panics if state is left after
/// `within`.
pub async fn wait_until_empty<L: TestListener>(
    listener: &mut L,
    within: Duration,
) -> Vec<&'static str> {
    let deadline = tokio::time::Instant::now() + within;
    let mut codes = Vec::new();
    let record = |event: Option<ListenerEvent>, codes: &mut Vec<&'static str>| match event {
        Some(ListenerEvent::Refused { code, .. } | ListenerEvent::Closed { code, .. }) => {
            codes.push(code)
        }
        Some(_) => {}
        None => panic!("listener stopped"),
    };
    loop {
        while let Some(event) = listener.try_next_event() {
            record(Some(event), &mut codes);
        }
        let s = listener.stats();
        if s.engines == 0 && s.pending == 0 && s.connections == 0 && s.routes == 0 {
            return codes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "state left after {within:?}: {s:?} (events: {codes:?})"
        );
        // Stats are published right after the step that emits an event: look again soon even
        // if no further event comes.
        let poll = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
        if let Ok(event) = tokio::time::timeout_at(poll, listener.next_event()).await {
            record(event, &mut codes);
        }
    }
}

/// ICE succeeds, then the path dies with the first DTLS datagram: the dial fails with
/// `dtls-timeout`, and the listener (pending timeout 2 s) forgets the dialer with one
/// `proof-timeout` refusal, leaving no state.
pub async fn a_dialer_killed_mid_handshake_leaves_no_state<D: Stack, L: Stack>() {
    let pending_timeout = Duration::from_secs(2);
    let mut listener = L::listen(Some(pending_timeout)).await;
    let proxy = LossyProxy::start(listener.addr(), 0.0, 7)
        .await
        .expect("proxy");
    proxy.cut_on_first_dtls();
    let dialer = D::dialer(Duration::from_secs(3), false);
    let err = connect_via::<D, _>(&mut listener, &proxy, &dialer)
        .await
        .expect_err("cannot connect");
    assert!(err.starts_with("dtls-timeout"), "{}: {err}", pair::<D, L>());
    assert!(proxy.is_cut());
    let codes = wait_until_empty(&mut listener, pending_timeout + Duration::from_secs(8)).await;
    assert_eq!(
        codes,
        vec!["proof-timeout"],
        "{}: reaped by the pending timeout",
        pair::<D, L>()
    );
}

/// A dialer seen from more addresses than the listener routes for one dialer
/// (`MAX_ADDRESSES_PER_DIALER`: its first address is forgotten), which never proves the
/// secret, is still reaped by the pending timeout (1 s here): nothing is left. The checks carry
/// one dialer's USERNAME from 20 loopback sources, as a dialer whose NAT mapping keeps
/// changing would; a barrier dialer is reaped with it.
pub async fn a_dialer_that_moved_addresses_is_still_reaped<L: Stack>() {
    const SOURCES: usize = 20;
    let pending_timeout = Duration::from_secs(1);
    let mut listener = L::listen(Some(pending_timeout)).await;
    crate::one_username_from_many_sources(listener.addr(), listener.token(), SOURCES);
    let prober = crate::Prober::bind([127, 0, 0, 1]);
    let answers = crate::barrier(&prober, listener.addr(), listener.token());
    assert!(answers.is_empty(), "no answer to the spoofed checks");
    let held = listener.stats();
    assert_eq!(
        held.engines, 2,
        "the moving dialer and the barrier: {held:?}"
    );
    let codes = wait_until_empty(&mut listener, pending_timeout + Duration::from_secs(8)).await;
    assert_eq!(
        codes,
        vec!["proof-timeout"; 2],
        "{} listener: both reaped by the pending timeout",
        L::NAME
    );
}

/// With data in flight both ways, the path goes silent and the dialer's engine is gone, with no
/// close message: the listener must notice (within 60 s: its consent timeout, `consent_timeout`
/// where the stack lets it be set, RFC 7675's 30 s otherwise) and hold nothing afterwards.
pub async fn a_dialer_killed_mid_transfer_leaves_no_state<D: Stack, L: Stack>(
    consent_timeout: Option<Duration>,
) {
    crate::init_plain_tracing();
    let mut listener = L::bind(ListenOptions {
        consent_timeout,
        ..ListenOptions::default()
    })
    .await
    .expect("bind");
    let proxy = LossyProxy::start(listener.addr(), 0.0, 11)
        .await
        .expect("proxy");
    let dialer = D::dialer(Duration::from_secs(10), false);
    let (conn, mut accepted) = connect_via::<D, _>(&mut listener, &proxy, &dialer)
        .await
        .expect("connects");
    let channel = conn.open_channel("bulk").await.expect("open");
    let sender = tokio::spawn(async move {
        for i in 0..=200u32 {
            if conn.send(channel, &[i as u8; 1000]).await.is_err() {
                break;
            }
        }
        conn
    });
    let first = next_data(&mut accepted, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1000);
    // Kill: the path goes silent and the dialer's engine is gone, with no close message.
    proxy.cut();
    let conn = sender.await.expect("sender");
    drop(conn);
    let started = Instant::now();
    // The listener must notice the dead dialer within 60 s.
    let closed = closed_code(&mut accepted, Duration::from_secs(60)).await;
    let codes = wait_until_empty(&mut listener, Duration::from_secs(5)).await;
    eprintln!(
        "{}: killed mid-transfer: listener closed it as `{closed}` after {:?}; events {codes:?}",
        pair::<D, L>(),
        started.elapsed()
    );
}

/// `n` dialers connect (in batches of 10) and echo; one closes; the listener reports it
/// `closed-by-peer`, holds `n - 1` connections and engines, and every other still echoes.
pub async fn many_connections_survive_one_going_away<D: Stack, L: Stack>(n: usize) {
    const BATCH: usize = 10;
    let mut listener = L::listen(None).await;
    let token = listener.token().clone();
    let dialer = D::dialer(Duration::from_secs(20), true);
    let mut dialed = Vec::new();
    for _ in 0..n.div_ceil(BATCH) {
        let batch: Vec<_> = (0..BATCH.min(n - dialed.len()))
            .map(|_| {
                let (token, dialer) = (token.clone(), dialer.clone());
                tokio::spawn(async move { D::dial(&dialer, &token).await })
            })
            .collect();
        for _ in 0..batch.len() {
            let accepted = tokio::time::timeout(Duration::from_secs(20), listener.accept())
                .await
                .expect("accepted in time")
                .expect("listener running");
            // The echo task holds the accepted end; it ends with the connection.
            drop(echo(accepted));
        }
        for d in batch {
            dialed.push(d.await.expect("task").expect("dial"));
        }
    }
    assert_eq!(listener.stats().connections, n);

    // One dialer closes; the listener lets it go and keeps the rest.
    let mut gone = dialed.remove(n / 2);
    gone.close("leaving");
    // Dropping the handle right away would stop its driver before the close goes out.
    assert_eq!(
        closed_code(&mut gone, Duration::from_secs(10)).await,
        "closed-locally"
    );
    drop(gone);
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match listener.next_event().await {
                Some(ListenerEvent::Closed { code, .. }) => return code,
                Some(_) => continue,
                None => return "listener stopped",
            }
        }
    })
    .await
    .expect("close seen");
    assert_eq!(code, "closed-by-peer");
    let stats = listener.stats();
    assert_eq!(
        (stats.connections, stats.engines),
        (n - 1, n - 1),
        "{stats:?}"
    );

    // Every other connection still carries data.
    for (i, conn) in dialed.iter_mut().enumerate() {
        let channel = conn.open_channel("after").await.expect("open");
        let message = format!("still here {i}");
        conn.send(channel, message.as_bytes()).await.expect("send");
        assert_eq!(
            next_data(conn, Duration::from_secs(10)).await,
            message.as_bytes(),
            "connection {i}"
        );
    }
    eprintln!(
        "{}: {n} connections: one closed, the other {} all echo",
        pair::<D, L>(),
        n - 1
    );
}

/// Sends `count` numbered messages on one ordered reliable channel through a proxy dropping
/// `loss`, while the dialer restarts ICE at a quarter and three quarters and the listener at
/// half way; the listener must receive all of them, in order. The dialer's second restart waits
/// for the listener's to complete: restarts that both sides start at once (glare) are not
/// something `spec/handshake.md` §6.1 settles, and the stacks resolve them differently.
pub async fn ordered_across_restarts<D: Stack, L: Stack>(loss: f64, count: u32) {
    let mut listener = L::listen(None).await;
    let proxy = LossyProxy::start(listener.addr(), loss, 5)
        .await
        .expect("proxy");
    let dialer = D::dialer(Duration::from_secs(20), false);
    let (conn, mut accepted) = connect_via::<D, _>(&mut listener, &proxy, &dialer)
        .await
        .expect("connects");
    let channel = conn.open_channel("ordered").await.expect("open");
    let (listener_restarted, mut restarted) = tokio::sync::oneshot::channel::<()>();
    let mut listener_restarted = Some(listener_restarted);
    let receiver = tokio::spawn(async move {
        let mut next = 0u32;
        while next < count {
            let data = next_data(&mut accepted, Duration::from_secs(30)).await;
            let n = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .expect("a numbered message");
            assert_eq!(n, next, "message {next} expected, got {n}");
            next += 1;
            // The listener restarts ICE itself halfway through.
            if next == count / 2 {
                tokio::time::timeout(Duration::from_secs(20), accepted.ice_restart())
                    .await
                    .expect("listener restart in time")
                    .expect("listener restart");
                if let Some(done) = listener_restarted.take() {
                    let _ = done.send(());
                }
            }
        }
        accepted
    });
    for i in 0..count {
        let mut message = i.to_be_bytes().to_vec();
        message.resize(200, 0xab);
        conn.send(channel, &message).await.expect("send");
        if i == 3 * count / 4 {
            tokio::time::timeout(Duration::from_secs(60), &mut restarted)
                .await
                .expect("the listener restarted in time")
                .expect("the listener restarted");
        }
        if i == count / 4 || i == 3 * count / 4 {
            tokio::time::timeout(Duration::from_secs(20), conn.ice_restart())
                .await
                .expect("dialer restart in time")
                .expect("dialer restart");
        }
        if i % 100 == 0 {
            // Keep the send queue short so messages are in flight during the restarts.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _accepted = receiver.await.expect("all messages arrived in order");
    eprintln!(
        "{}: {count} ordered messages at {loss} loss across 3 ICE restarts: none lost",
        pair::<D, L>()
    );
}

/// One loss level's result in [`loss_sweep`].
#[derive(Clone, Debug)]
pub struct SweepRow {
    /// Loss each way, 0 to 1.
    pub loss: f64,
    /// Dials made.
    pub dials: u64,
    /// Dials that connected and echoed one message.
    pub ok: u64,
    /// Median time to connect (dial start to authenticated) of those that did.
    pub median_connect: Option<Duration>,
    /// Why the others failed.
    pub failures: Vec<String>,
}

impl std::fmt::Display for SweepRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let median = self.median_connect.map_or("-".to_owned(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        });
        write!(
            f,
            "loss {:>3.0} %: {}/{} connected and echoed, median connect {median}; failures: {:?}",
            self.loss * 100.0,
            self.ok,
            self.dials,
            self.failures
        )
    }
}

/// The sweep's parameters from the environment: `ONEWAY_SWEEP_DIALS` dials per level
/// (default 10) and `ONEWAY_SWEEP_LEVELS`, comma-separated loss fractions (default
/// 0,0.05,0.1,0.2,0.3).
pub fn sweep_params() -> (u64, Vec<f64>) {
    let dials = std::env::var("ONEWAY_SWEEP_DIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let levels = std::env::var("ONEWAY_SWEEP_LEVELS")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0.0, 0.05, 0.1, 0.2, 0.3]);
    (dials, levels)
}

/// Dials `dials` times at each loss level (each dial through its own proxy, seeded 1000 + i,
/// 20 s dial timeout) and reports how many connected and echoed, and their median connect
/// time. Prints one `sweep <pair> loss …` line per level.
pub async fn loss_sweep<D: Stack, L: Stack>(dials: u64, levels: &[f64]) -> Vec<SweepRow> {
    let mut listener = L::listen(None).await;
    let dialer = D::dialer(Duration::from_secs(20), false);
    let mut rows = Vec::new();
    for &loss in levels {
        let mut row = SweepRow {
            loss,
            dials,
            ok: 0,
            median_connect: None,
            failures: Vec::new(),
        };
        let mut times = Vec::new();
        for seed in 0..dials {
            let proxy = LossyProxy::start(listener.addr(), loss, 1000 + seed)
                .await
                .expect("proxy");
            let started = Instant::now();
            match connect_via::<D, _>(&mut listener, &proxy, &dialer).await {
                Ok((mut conn, accepted)) => {
                    let connect_time = started.elapsed();
                    let _echo = echo(accepted);
                    let works = async {
                        let channel = conn.open_channel("sweep").await.ok()?;
                        conn.send(channel, b"ping").await.ok()?;
                        try_next_data(&mut conn, Duration::from_secs(20)).await
                    };
                    if works.await.as_deref() == Some(b"ping".as_slice()) {
                        row.ok += 1;
                        times.push(connect_time);
                    } else {
                        row.failures.push("no echo".to_owned());
                    }
                }
                Err(e) => row.failures.push(e),
            }
        }
        times.sort();
        row.median_connect = times.get(times.len() / 2).copied();
        eprintln!("sweep {}: {row}", pair::<D, L>());
        rows.push(row);
    }
    rows
}
