//! What the engine-pair tests share: a token for a str0m listener on a fixed address, the
//! dialer engine made from it, and the listener engine made from the dialer's first check.
//! The tests wire the two back to back on a virtual clock, with no sockets.

#![allow(dead_code)] // each test crate uses part of it

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_core::demux::{Routed, classify};
use oneway_endpoint::{ConnectionEvent, DialerEngineParams, ListenerEngineParams, Stack, Transmit};
use oneway_str0m::Str0m;
use oneway_str0m::engine::Str0mEngine;
use oneway_token::{Candidate, DerivedKeys, Fingerprint, Profile, Secret, Token};
use tokio::sync::mpsc;

/// The dialer's address.
pub const DIALER: &str = "10.0.0.2:40000";
/// The listener's address (the token's one candidate).
pub const LISTENER: &str = "10.0.0.1:50000";

/// `s` as an address.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// A listener's token and keys, and what its engine is made with.
pub struct Setup {
    /// The token, announcing a fast start when [`Setup::new`] was asked for one.
    pub token: Token,
    /// The token's keys.
    pub keys: DerivedKeys,
    /// Whether the token announces a fast start.
    pub fast: bool,
    listener_cert: <Str0m as Stack>::Certificate,
    listener_fp: [u8; 32],
    fast_state: <Str0m as Stack>::FastPath,
}

impl Setup {
    /// A fresh listener certificate and token (a fast start when `fast`).
    pub fn new(fast: bool) -> Setup {
        let (listener_cert, listener_fp) = Str0m::generate_certificate().expect("certificate");
        let (announced, fast_state) = Str0m::listener_fast_path()
            .expect("fast path")
            .expect("str0m has one");
        let mut token = Token::new(
            Profile::Native,
            Fingerprint(listener_fp),
            Secret([7; 16]),
            vec![Candidate::udp_host(
                addr(LISTENER).ip(),
                addr(LISTENER).port(),
            )],
        );
        if fast {
            token.fast = Some(announced);
        }
        let keys = token.derive();
        Setup {
            token,
            keys,
            fast,
            listener_cert,
            listener_fp,
            fast_state,
        }
    }

    /// The dialer's engine, proving with `auth_key` (the token's own when `None`), with
    /// `certificate` (a fresh one when `None`).
    pub fn dialer(
        &self,
        now: Instant,
        auth_key: Option<[u8; 32]>,
        certificate: Option<<Str0m as Stack>::Certificate>,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Str0mEngine {
        Str0m::dialer_engine(DialerEngineParams {
            now,
            token: &self.token,
            remotes: &[(0, addr(LISTENER))],
            keys: &self.keys,
            auth_key: auth_key.unwrap_or(self.keys.auth_key),
            certificate,
            locals: &[addr(DIALER)],
            relayed: None,
            loopback: false,
            ice_check_interval: None,
            timeout: Duration::from_secs(10),
            relayed_proof: None,
            fast_path: self.fast,
            events,
        })
        .expect("dialer engine")
    }

    /// The listener's engine for the dialer whose check `t` is, or `None` when `t` is not a
    /// new dialer's check.
    pub fn listener_for(
        &self,
        now: Instant,
        t: &Transmit,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Option<Str0mEngine> {
        let Ok(Routed::NewDialer(new)) = classify(&t.contents, (&self.keys).into(), |_| false)
        else {
            return None;
        };
        Some(
            Str0m::listener_engine(ListenerEngineParams {
                now,
                remote: t.source,
                hosts: &[addr(LISTENER)],
                certificate: &self.listener_cert,
                fingerprint: self.listener_fp,
                keys: &self.keys,
                sctp: self.token.sctp_params(),
                dialer: &new,
                fast_path: self.fast.then_some(&self.fast_state),
                consent_timeout: Duration::from_secs(30),
                events,
            })
            .expect("listener engine"),
        )
    }
}
