//! The stack under test, as the shared test bodies ([`crate::churn`], [`crate::stun_tests`],
//! [`crate::turn_tests`])
//! drive it: [`Stack`] and [`TestListener`], and their implementations for the native stacks,
//! [`Str0m`] (feature `str0m-stack`) and [`WebrtcRs`] (feature `webrtc-stack`). Each stack's
//! crate enables its own feature as a dev-dependency (a dev-dependency cycle, which Cargo
//! allows: the integration tests and this crate link the same stack library).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use oneway_connection::{Connection, DialError, ListenerEvent, ListenerStats, StackError};
use oneway_token::Token;

use crate::{EventCounts, Prober};

/// What the shared bodies set on a loopback listener; everything else is the stack's default.
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// Replaces the admission default pending timeout (first check to proof).
    pub pending_timeout: Option<Duration>,
    /// A STUN server to learn a server-reflexive candidate from.
    pub stun: Option<SocketAddr>,
    /// How long a silent dialer keeps its connection (`ListenerConfig::consent_timeout`;
    /// str0m's engine waits at least the 15 s its ICE takes to notice).
    pub consent_timeout: Option<Duration>,
}

/// A listener of some stack, as the churn bodies drive it (the shell's `Listener` has these
/// as inherent methods).
pub trait TestListener: Send + 'static {
    /// The token to dial.
    fn token(&self) -> &Token;
    /// The first bound address (where a proxy forwards to).
    fn addr(&self) -> SocketAddr;
    /// What the listener holds now.
    fn stats(&self) -> ListenerStats;
    /// The next authenticated connection; `None` if the listener stopped.
    fn accept(&mut self) -> impl Future<Output = Option<Connection>> + Send;
    /// The next listener event; `None` if the listener stopped.
    fn next_event(&mut self) -> impl Future<Output = Option<ListenerEvent>> + Send;
    /// A listener event if one is waiting.
    fn try_next_event(&mut self) -> Option<ListenerEvent>;
}

/// A stack under test: how to make its loopback listener and how to dial with it.
pub trait Stack: 'static {
    /// The stack's name in test output.
    const NAME: &'static str;
    /// Its listener.
    type Listener: TestListener;
    /// Its dial configuration.
    type Dialer: Clone + Send + Sync + 'static;
    /// A listener on `127.0.0.1` with `options`, the stack's defaults otherwise.
    fn bind(
        options: ListenOptions,
    ) -> impl Future<Output = Result<Self::Listener, StackError>> + Send;
    /// A listener on `127.0.0.1`; `pending_timeout` replaces the admission default (how long a
    /// dialer may take from its first check to its proof). Panics if it cannot bind.
    fn listen(pending_timeout: Option<Duration>) -> impl Future<Output = Self::Listener> + Send {
        async move {
            crate::init_plain_tracing();
            Self::bind(ListenOptions {
                pending_timeout,
                ..ListenOptions::default()
            })
            .await
            .unwrap_or_else(|e| panic!("bind a {} listener: {e}", Self::NAME))
        }
    }
    /// A dial configuration that gives up after `timeout`. With `shared_certificate`, every
    /// dial made with it uses one DTLS certificate (many dials, fewer key generations).
    fn dialer(timeout: Duration, shared_certificate: bool) -> Self::Dialer;
    /// `dialer` with a TURN relay from `turn`; with `relay_only`, nothing but the relayed
    /// candidate is offered.
    fn with_relay(
        dialer: Self::Dialer,
        turn: oneway_turn::TurnServer,
        relay_only: bool,
    ) -> Self::Dialer;
    /// Dials `token`.
    fn dial(
        dialer: &Self::Dialer,
        token: &Token,
    ) -> impl Future<Output = Result<Connection, DialError>> + Send;
}

/// [`crate::barrier`] against the listener's first address.
pub fn barrier<L: TestListener>(prober: &Prober, listener: &L) -> Vec<Vec<u8>> {
    crate::barrier(prober, listener.addr(), listener.token())
}

/// Counts the listener events waiting now.
pub fn take_events<L: TestListener>(listener: &mut L) -> EventCounts {
    EventCounts::from_events(std::iter::from_fn(|| listener.try_next_event()))
}

/// Awaits the listener's events until `counts` holds `n` refusals with `code`; panics after
/// `within`.
pub async fn wait_refusals<L: TestListener>(
    listener: &mut L,
    counts: &mut EventCounts,
    code: &str,
    n: usize,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    while counts.refused_with(code) < n {
        match tokio::time::timeout_at(deadline, listener.next_event()).await {
            Ok(Some(e)) => counts.add(e),
            Ok(None) => panic!("listener stopped"),
            Err(_) => panic!(
                "only {} of {n} `{code}` refusals within {within:?}: {counts:?}",
                counts.refused_with(code),
            ),
        }
    }
}

/// The listener's next authenticated connection; panics after 10 s or if it stopped.
pub async fn accept_within<L: TestListener>(listener: &mut L) -> Connection {
    tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted within 10 s")
        .expect("listener running")
}

/// The code of the listener's next `Refused` event, skipping other events; panics after 20 s
/// or if the listener stopped.
pub async fn next_refusal<L: TestListener>(listener: &mut L) -> &'static str {
    let wait = async {
        loop {
            match listener.next_event().await {
                Some(ListenerEvent::Refused { code, .. }) => return code,
                Some(_) => continue,
                None => panic!("listener stopped"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("refusal within 20 s")
}

impl<S: oneway_endpoint::Stack> TestListener for oneway_endpoint::Listener<S> {
    fn token(&self) -> &Token {
        oneway_endpoint::Listener::token(self)
    }
    fn addr(&self) -> SocketAddr {
        oneway_endpoint::Listener::local_addrs(self)[0]
    }
    fn stats(&self) -> ListenerStats {
        oneway_endpoint::Listener::stats(self)
    }
    fn accept(&mut self) -> impl Future<Output = Option<Connection>> + Send {
        oneway_endpoint::Listener::accept(self)
    }
    fn next_event(&mut self) -> impl Future<Output = Option<ListenerEvent>> + Send {
        oneway_endpoint::Listener::next_event(self)
    }
    fn try_next_event(&mut self) -> Option<ListenerEvent> {
        oneway_endpoint::Listener::try_next_event(self)
    }
}

/// Admission limits with `pending_timeout` in place of the default, if given.
fn limits(pending_timeout: Option<Duration>) -> oneway_core::AdmissionLimits {
    let defaults = oneway_core::AdmissionLimits::default();
    oneway_core::AdmissionLimits {
        pending_timeout: pending_timeout.unwrap_or(defaults.pending_timeout),
        ..defaults
    }
}

/// Every stack of the shared shell is a stack under test, with the same listener and dialer
/// code: only the engine differs.
impl<S: oneway_endpoint::Stack> Stack for S {
    const NAME: &'static str = <S as oneway_endpoint::Stack>::NAME;
    type Listener = oneway_endpoint::Listener<S>;
    type Dialer = oneway_endpoint::DialConfig<S>;

    async fn bind(options: ListenOptions) -> Result<Self::Listener, StackError> {
        let defaults = oneway_endpoint::ListenerConfig::loopback();
        oneway_endpoint::Listener::bind(oneway_endpoint::ListenerConfig {
            limits: limits(options.pending_timeout),
            stun: options.stun,
            consent_timeout: options.consent_timeout.unwrap_or(defaults.consent_timeout),
            ..defaults
        })
        .await
    }

    fn dialer(timeout: Duration, shared_certificate: bool) -> Self::Dialer {
        let certificate = shared_certificate.then(|| {
            <S as oneway_endpoint::Stack>::generate_certificate()
                .expect("certificate")
                .0
        });
        oneway_endpoint::DialConfig {
            timeout,
            certificate,
            ..Default::default()
        }
    }

    fn with_relay(
        dialer: Self::Dialer,
        turn: oneway_turn::TurnServer,
        relay_only: bool,
    ) -> Self::Dialer {
        oneway_endpoint::DialConfig {
            turn: Some(turn),
            relay_only,
            ..dialer
        }
    }

    fn dial(
        dialer: &Self::Dialer,
        token: &Token,
    ) -> impl Future<Output = Result<Connection, DialError>> + Send {
        oneway_endpoint::dial(token, dialer)
    }
}

/// The str0m stack (`oneway-str0m`).
#[cfg(feature = "str0m-stack")]
pub use oneway_str0m::Str0m;

/// The webrtc-rs stack (`oneway-webrtc`, on the sans-IO `rtc` crate).
#[cfg(feature = "webrtc-stack")]
pub use oneway_webrtc::WebrtcRs;
