//! Helpers shared by every oneway stack's adversarial tests (hijack, flood, churn): crafted STUN
//! checks from a plain loopback socket, a capture of the listeners' logs, listener-event
//! counting, flood generators, RSS readings, a lossy proxy ([`impair`]) and the loss and churn
//! test bodies every stack runs ([`churn`], [`stun_tests`], over the stacks of [`stack`]).
//! Apart from the implementations in [`stack`] (features `str0m-stack`, `webrtc-stack`),
//! nothing here depends on the stack under test: a listener is reached through its token and address, and
//! its events are [`ListenerEvent`]s, which every stack shares (`oneway-connection`).
//!
//! The STUN checks are encoded with str0m's STUN code (any correct encoder would do; the
//! checks are standard RFC 8445 Binding requests).
//!
//! Not for production peers (`publish = false`): a dev-dependency of `oneway-str0m` and
//! `oneway-webrtc`, and the delaying proxy of `oneway bench latency --rtt` (`oneway-bench`).

pub mod churn;
pub mod coturn;
pub mod flood;
pub mod impair;
pub mod media;
pub mod stack;
pub mod stun_tests;
pub mod turn_tests;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use oneway_connection::ListenerEvent;
use oneway_connection::Progress;
use oneway_token::ice::compose_listener_ufrag;
use oneway_token::{Candidate, DerivedKeys, Token};
use str0m::ice::{StunMessage, TransId};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Every log line of the stacks (`oneway_str0m`, `oneway_webrtc`: trace and above) and of
/// `oneway_core` (debug and above), as `message key=value…`.
static LOGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

/// The tracing layer that appends to [`LOGS`].
struct Capture;

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut line = Line(String::new());
        event.record(&mut line);
        // Every field value ends with a space, so `key=value ` needles match whole values.
        line.0.push(' ');
        if let Some(logs) = LOGS.get()
            && let Ok(mut logs) = logs.lock()
        {
            logs.push(line.0);
        }
    }
}

/// `RUST_LOG` test output only, no capture (floods would fill memory with log lines).
pub fn init_plain_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Installs the log capture (see [`LOGS`]) plus the usual `RUST_LOG` test output.
pub fn init_tracing() {
    LOGS.get_or_init(|| Mutex::new(Vec::new()));
    let capture = Capture.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("oneway_endpoint", tracing::Level::TRACE)
            .with_target("oneway_str0m", tracing::Level::TRACE)
            .with_target("oneway_webrtc", tracing::Level::TRACE)
            .with_target("oneway_core", tracing::Level::DEBUG),
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(tracing_subscriber::EnvFilter::from_default_env());
    let _ = tracing_subscriber::registry()
        .with(capture)
        .with(fmt)
        .try_init();
}

/// Lines captured after `mark` that contain every needle of at least one of `alternatives`
/// (one log message may be worded in more than one way).
pub fn logged_any(mark: usize, alternatives: &[&[&str]]) -> usize {
    LOGS.get().and_then(|l| l.lock().ok()).map_or(0, |logs| {
        logs.iter()
            .skip(mark)
            .filter(|line| {
                alternatives
                    .iter()
                    .any(|needles| needles.iter().all(|n| line.contains(n)))
            })
            .count()
    })
}

/// How many lines have been captured so far: pass it to [`logged_since`].
pub fn log_mark() -> usize {
    LOGS.get()
        .and_then(|l| l.lock().ok())
        .map_or(0, |logs| logs.len())
}

/// Lines captured after `mark` containing every one of `needles`. A field reads
/// `key=value ` (with the trailing space).
pub fn logged_since(mark: usize, needles: &[&str]) -> usize {
    LOGS.get().and_then(|l| l.lock().ok()).map_or(0, |logs| {
        logs.iter()
            .skip(mark)
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    })
}

/// Computes HMAC-SHA1 the way str0m's STUN code wants it.
pub fn sha1_hmac(key: &[u8], data: &[&[u8]]) -> [u8; 20] {
    let provider = str0m::crypto::from_feature_flags();
    provider.sha1_hmac_provider.sha1_hmac(key, data)
}

/// A random string of `len` ICE characters.
pub fn ice_string(len: usize) -> String {
    use rand::Rng;
    const ICE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ICE[rng.random_range(0..ICE.len())] as char)
        .collect()
}

/// A dialer's Binding request as `spec/handshake.md` §4.2 composes it: `username` and a
/// MESSAGE-INTEGRITY keyed with `pwd`. Returns the bytes and the transaction id.
pub fn binding_request(username: &str, pwd: &str) -> (Vec<u8>, [u8; 12]) {
    use rand::Rng;
    let message = StunMessage::binding_request(
        username,
        TransId::new(),
        true,
        rand::rng().random(),
        1 << 24,
        false,
    );
    let mut buf = vec![0u8; 1500];
    let n = message
        .to_bytes(Some(pwd.as_bytes()), &mut buf, sha1_hmac)
        .expect("STUN encodes");
    buf.truncate(n);
    let id = trans_id(&buf).expect("a STUN message");
    (buf, id)
}

/// A fresh dialer's check for a token with derived `keys`: new dialer ufrag and pwd, the
/// composed USERNAME, integrity keyed with `pwd` (the listener pwd, or a forged one).
pub fn dialer_check(keys: &DerivedKeys, pwd: &str) -> (Vec<u8>, [u8; 12]) {
    let dialer_pwd = ice_string(24);
    let username = format!(
        "{}:{}",
        compose_listener_ufrag(&keys.token_ufrag, &dialer_pwd).expect("composes"),
        ice_string(8)
    );
    binding_request(&username, pwd)
}

/// A check that announces a fast start (`spec/handshake.md` §4.2: `/` in the composed ufrag)
/// with `dialer_ufrag` in place of a base64 INIT chunk, integrity keyed with `pwd`.
pub fn fast_start_check(keys: &DerivedKeys, pwd: &str, dialer_ufrag: &str) -> (Vec<u8>, [u8; 12]) {
    let username = format!(
        "{}:{dialer_ufrag}",
        oneway_token::ice::compose_fast_start_ufrag(&keys.token_ufrag, &ice_string(24))
            .expect("composes"),
    );
    binding_request(&username, pwd)
}

/// A plain loopback UDP socket standing for an attacker (or a dialer at the STUN level).
pub struct Prober {
    /// The socket; send and receive on it directly for anything the methods do not cover.
    pub socket: UdpSocket,
}

impl Prober {
    /// Binds `ip:0`.
    pub fn bind(ip: [u8; 4]) -> Prober {
        let socket = UdpSocket::bind((std::net::Ipv4Addr::from(ip), 0)).expect("bind prober");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Prober { socket }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("addr")
    }

    /// Sends one datagram.
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) {
        self.socket.send_to(datagram, to).expect("send");
    }

    /// Everything received within `wait`, stopping early after a datagram for which `done`
    /// is true.
    pub fn receive_until(&self, wait: Duration, done: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
                if done(&buf[..n]) {
                    break;
                }
            }
        }
        got
    }

    /// Whatever is already queued, without waiting.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        self.socket.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        self.socket.set_nonblocking(false).expect("blocking");
        got
    }
}

/// The transaction id of a STUN message, if it is one.
pub fn trans_id(datagram: &[u8]) -> Option<[u8; 12]> {
    (datagram.len() >= 20 && datagram[0] < 2).then(|| {
        let mut id = [0u8; 12];
        id.copy_from_slice(&datagram[8..20]);
        id
    })
}

/// Sends a genuine check for `token` to `to` and waits for its response. A listener handles
/// one socket's datagrams in order, so once this returns, every datagram sent before it from
/// `prober` has been handled: a barrier without sleeping. Returns the other datagrams that
/// arrived meanwhile.
pub fn barrier(prober: &Prober, to: SocketAddr, token: &Token) -> Vec<Vec<u8>> {
    let keys = token.derive();
    let (check, id) = dialer_check(&keys, &keys.listener_pwd);
    prober.send(to, &check);
    let mut got = prober.receive_until(Duration::from_secs(10), |d| trans_id(d) == Some(id));
    let answered = got.iter().any(|d| trans_id(d) == Some(id));
    assert!(answered, "the genuine barrier check was answered");
    got.retain(|d| trans_id(d) != Some(id));
    got
}

/// The token with its candidates replaced by `addr` (another listener's address, a proxy).
pub fn pointed_at(token: &Token, addr: SocketAddr) -> Token {
    let mut t = token.clone();
    t.candidates = vec![Candidate::udp_host(addr.ip(), addr.port())];
    t
}

/// Listener events by kind: (admitted, authenticated, refusals by code).
#[derive(Debug, Default)]
pub struct EventCounts {
    /// `Admitted` events.
    pub admitted: usize,
    /// `Progress::Authenticated` events.
    pub authenticated: usize,
    /// The code of each `Refused` event.
    pub refused: Vec<&'static str>,
}

impl EventCounts {
    /// Counts `events` (e.g. `std::iter::from_fn(|| listener.try_next_event())`).
    pub fn from_events(events: impl IntoIterator<Item = ListenerEvent>) -> EventCounts {
        let mut c = EventCounts::default();
        for e in events {
            c.add(e);
        }
        c
    }

    /// Counts one event.
    pub fn add(&mut self, e: ListenerEvent) {
        match e {
            ListenerEvent::Admitted { .. } => self.admitted += 1,
            ListenerEvent::Progress {
                progress: Progress::Authenticated,
                ..
            } => self.authenticated += 1,
            ListenerEvent::Refused { code, .. } => self.refused.push(code),
            _ => {}
        }
    }

    /// Refusals with `code`.
    pub fn refused_with(&self, code: &str) -> usize {
        self.refused.iter().filter(|c| **c == code).count()
    }
}

/// Awaits every future, each in its own task (a tiny `join_all`).
pub async fn join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// Sends `n` datagrams from `prober` to `to`, each made by `make`, one at a time: each is
/// re-sent (freshly made) until `counted` (a listener counter, e.g. the sum of its drop
/// counters) has grown by one. Loopback UDP drops when the receiver falls behind (two shared
/// cores, one HMAC per datagram), so exact counts need this pacing. A datagram not counted
/// within 2 s is taken as lost (long enough that a busy listener is not mistaken for a lost
/// datagram, which would count twice). Panics if a datagram is never counted after 5 tries.
pub fn send_counted(
    prober: &Prober,
    to: SocketAddr,
    n: usize,
    mut make: impl FnMut() -> Vec<u8>,
    counted: impl Fn() -> u64,
) {
    for _ in 0..n {
        let target = counted() + 1;
        let mut tries = 0;
        'resend: loop {
            tries += 1;
            assert!(tries <= 5, "a datagram was never counted");
            prober.send(to, &make());
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if counted() >= target {
                    break 'resend;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

/// One dialer's check (a fixed USERNAME, genuine integrity) sent to `to` from `sources`
/// loopback addresses (127.0.3.1 onwards), as a token holder could, spoofing them: it needs no
/// answer. A listener must not route to one dialer from unboundedly many addresses.
pub fn one_username_from_many_sources(to: SocketAddr, token: &Token, sources: usize) {
    assert!(sources <= 254, "one /24 of loopback sources");
    let keys = token.derive();
    let username = format!(
        "{}:{}",
        compose_listener_ufrag(&keys.token_ufrag, &ice_string(24)).expect("composes"),
        ice_string(8)
    );
    for i in 0..sources {
        let prober = Prober::bind([127, 0, 3, 1 + i as u8]);
        prober.send(to, &binding_request(&username, &keys.listener_pwd).0);
    }
}

/// A loopback STUN server for listener tests: answers every Binding request with XOR-MAPPED-ADDRESS = 203.0.113.5:<source port>.
pub async fn stun_server() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mapped = SocketAddr::from(([203, 0, 113, 5], from.port()));
            if let Some(reply) = oneway_core::stun_client::binding_response(&buf[..n], mapped) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    addr
}
