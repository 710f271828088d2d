//! The webrtc-rs listener of `oneway listen --stack webrtc-rs` (`crates/oneway-webrtc`, on the
//! sans-IO `rtc` crate). Serving dialers, dialing and the peer-contract events are the same code
//! for every stack (`peer.rs`); only the listener's setup differs.
//!
//! What this peer does not do, refused as bad arguments (exit 2): `--mdns` (the listener
//! publishes no `.local` names, and its dialer does not resolve them), and `--bind` with an
//! unspecified address (it binds one socket per concrete address; without `--bind` it binds
//! every usable interface address).

use std::net::SocketAddr;

use anyhow::Context as _;
use oneway_webrtc::{Listener, ListenerConfig, STACK};

use super::{ListenArgs, Served, served};
use crate::Usage;

/// Starts the webrtc-rs listener `args` ask for (`stun`: the resolved `--stun` server).
pub(super) async fn listener(
    args: &ListenArgs,
    stun: Option<SocketAddr>,
) -> anyhow::Result<Served> {
    if args.mdns {
        anyhow::bail!(Usage(
            "--stack webrtc-rs does not implement mDNS candidates (--mdns); use --stack str0m"
                .to_owned()
        ));
    }
    if let Some(a) = args.bind.iter().find(|a| a.ip().is_unspecified()) {
        anyhow::bail!(Usage(format!(
            "--stack webrtc-rs binds concrete addresses: --bind {a} is unspecified (omit --bind to use every interface address)"
        )));
    }
    let mut config = if args.bind.is_empty() {
        ListenerConfig::interfaces(args.loopback).context("choosing addresses to bind")?
    } else {
        ListenerConfig {
            bind: args.bind.clone(),
            ..ListenerConfig::loopback()
        }
    };
    config.single_use = args.single_use;
    config.ttl = args.ttl;
    config.label = args.label.clone();
    config.stun = stun;
    let listener = Listener::bind(config)
        .await
        .context("starting the listener")?;
    Ok(served!(STACK, listener))
}
