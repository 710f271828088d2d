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
    /// How long a silent dialer keeps its connection, where the stack has the knob (webrtc-rs:
    /// `ListenerConfig::consent_timeout`); str0m keeps RFC 7675's 30 s.
    pub consent_timeout: Option<Duration>,
}

/// A listener of some stack, as the churn bodies drive it (each stack's `Listener` has these
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

/// Implements [`TestListener`] for a stack's `Listener` by its inherent methods of the same
/// names.
#[cfg(any(feature = "str0m-stack", feature = "webrtc-stack"))]
macro_rules! test_listener {
    ($listener:ty) => {
        impl TestListener for $listener {
            fn token(&self) -> &Token {
                <$listener>::token(self)
            }
            fn addr(&self) -> SocketAddr {
                <$listener>::local_addrs(self)[0]
            }
            fn stats(&self) -> ListenerStats {
                <$listener>::stats(self)
            }
            fn accept(&mut self) -> impl Future<Output = Option<Connection>> + Send {
                <$listener>::accept(self)
            }
            fn next_event(&mut self) -> impl Future<Output = Option<ListenerEvent>> + Send {
                <$listener>::next_event(self)
            }
            fn try_next_event(&mut self) -> Option<ListenerEvent> {
                <$listener>::try_next_event(self)
            }
        }
    };
}

/// Admission limits with `pending_timeout` in place of the default, if given.
#[cfg(any(feature = "str0m-stack", feature = "webrtc-stack"))]
fn limits(pending_timeout: Option<Duration>) -> oneway_core::AdmissionLimits {
    let defaults = oneway_core::AdmissionLimits::default();
    oneway_core::AdmissionLimits {
        pending_timeout: pending_timeout.unwrap_or(defaults.pending_timeout),
        ..defaults
    }
}

/// The str0m stack (`oneway-str0m`).
#[cfg(feature = "str0m-stack")]
pub struct Str0m;

#[cfg(feature = "str0m-stack")]
test_listener!(oneway_str0m::Listener);

#[cfg(feature = "str0m-stack")]
impl Stack for Str0m {
    const NAME: &'static str = "str0m";
    type Listener = oneway_str0m::Listener;
    type Dialer = oneway_str0m::DialConfig;

    async fn bind(options: ListenOptions) -> Result<oneway_str0m::Listener, StackError> {
        oneway_str0m::Listener::bind(oneway_str0m::ListenerConfig {
            limits: limits(options.pending_timeout),
            stun: options.stun,
            ..oneway_str0m::ListenerConfig::loopback()
        })
        .await
    }

    fn dialer(timeout: Duration, shared_certificate: bool) -> oneway_str0m::DialConfig {
        let certificate = shared_certificate.then(|| {
            str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate()
                .expect("certificate")
        });
        oneway_str0m::DialConfig {
            timeout,
            certificate,
            ..Default::default()
        }
    }

    fn with_relay(
        dialer: oneway_str0m::DialConfig,
        turn: oneway_turn::TurnServer,
        relay_only: bool,
    ) -> oneway_str0m::DialConfig {
        oneway_str0m::DialConfig {
            turn: Some(turn),
            relay_only,
            ..dialer
        }
    }

    fn dial(
        dialer: &oneway_str0m::DialConfig,
        token: &Token,
    ) -> impl Future<Output = Result<Connection, DialError>> + Send {
        oneway_str0m::dial(token, dialer)
    }
}

/// The webrtc-rs stack (`oneway-webrtc`, on the sans-IO `rtc` crate).
#[cfg(feature = "webrtc-stack")]
pub struct WebrtcRs;

#[cfg(feature = "webrtc-stack")]
test_listener!(oneway_webrtc::Listener);

#[cfg(feature = "webrtc-stack")]
impl Stack for WebrtcRs {
    const NAME: &'static str = "webrtc-rs";
    type Listener = oneway_webrtc::Listener;
    type Dialer = oneway_webrtc::DialConfig;

    async fn bind(options: ListenOptions) -> Result<oneway_webrtc::Listener, StackError> {
        oneway_webrtc::Listener::bind(oneway_webrtc::ListenerConfig {
            limits: limits(options.pending_timeout),
            stun: options.stun,
            consent_timeout: options
                .consent_timeout
                .unwrap_or(oneway_webrtc::listener::DEFAULT_CONSENT_TIMEOUT),
            ..oneway_webrtc::ListenerConfig::loopback()
        })
        .await
    }

    fn dialer(timeout: Duration, shared_certificate: bool) -> oneway_webrtc::DialConfig {
        let certificate = shared_certificate.then(|| {
            oneway_webrtc::generate_certificate()
                .expect("certificate")
                .0
        });
        oneway_webrtc::DialConfig {
            timeout,
            certificate,
            ..Default::default()
        }
    }

    fn with_relay(
        dialer: oneway_webrtc::DialConfig,
        turn: oneway_turn::TurnServer,
        relay_only: bool,
    ) -> oneway_webrtc::DialConfig {
        oneway_webrtc::DialConfig {
            turn: Some(turn),
            relay_only,
            ..dialer
        }
    }

    fn dial(
        dialer: &oneway_webrtc::DialConfig,
        token: &Token,
    ) -> impl Future<Output = Result<Connection, DialError>> + Send {
        oneway_webrtc::dial(token, dialer)
    }
}
