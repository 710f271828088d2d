//! The stack-independent oneway shell: everything a one-way listener and dialer do that does
//! not depend on the WebRTC stack, written once and generic over a [`Stack`].
//!
//! Modelled on quinn's `Endpoint` over `quinn-proto` connections: the shell owns the sockets,
//! gathers candidates (host, STUN, mDNS), issues the token, admits and routes dialers
//! (`oneway-core`'s admission and demultiplexing), orders the dialer's candidates, drives its
//! TURN relay, reports events and stats, and runs one driver task per listener or dial. Each
//! connection is an [`Engine`]: a sans-IO state machine wrapping one stack's peer connection,
//! fed datagrams, timeouts and commands, polled for datagrams, deadlines and notices.
//!
//! ```text
//!            Listener<S> / dial::<S>           (this crate: sockets, gathering, admission,
//!                  │      ▲                      routing, fallback, relay, events, driver)
//!   handle_datagram│      │poll → Transmit, deadline; take_notices → Notice
//!   handle_timeout │      │
//!   handle_command ▼      │
//!                S::Engine                      (a stack crate: oneway-str0m, oneway-webrtc)
//! ```
//!
//! A stack crate implements [`Stack`] (certificates, building engines) and [`Engine`]; the
//! bookkeeping every engine keeps alike is in [`session`], the handshake's decisions in
//! `oneway_core::handshake`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dialer;
pub mod engine;
pub mod fast_channels;
pub mod gather;
pub mod listener;
pub mod mdns;
pub mod net;
pub mod reach;
pub mod reply;
pub mod session;

pub use dialer::{DangerousDialConfig, DialConfig, dial};
pub use engine::{DialerEngineParams, Engine, ListenerEngineParams, Notice, Stack, Transmit};
pub use listener::{Listener, ListenerConfig, ListenerEvent, ListenerEvents, ListenerStats};
pub use net::AddressScope;
pub use oneway_connection::{
    ChannelRef, Command, Connection, ConnectionError, ConnectionEvent, ConnectionInfo, DialError,
    Progress, StackError, Stage, Timings,
};
pub use oneway_portmap::{
    Mapping, MappingEvent, MappingHandle, PortmapError, ProtocolChoice, Reachability,
};
pub use oneway_turn::{Credentials as TurnCredentials, TurnError, TurnServer};
pub use reach::PortMapping;
