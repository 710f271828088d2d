//! Captures real, complete (non-trickle) SDP offers from two Rust WebRTC stacks
//! so that `oneway-token` can be tested against what they actually emit.
//!
//! Usage: `capture-native-sdp <outdir>`
//!
//! Writes, into `<outdir>`:
//! - `str0m-datachannel.sdp`       str0m `Rtc`, host candidates 192.0.2.10:50000 and
//!   [2001:db8::10]:50002, one data channel via the SDP API.
//! - `str0m-datachannel-lite.sdp`  the same with `set_ice_lite(true)`.
//! - `webrtc-rs-datachannel.sdp`   webrtc-rs peer connection (no ICE servers), one data
//!   channel, offer set as local description, gathering waited for (10 s bound).
//!
//! str0m binds nothing (candidates are declared). webrtc-rs binds real UDP sockets on
//! every non-loopback, non-link-local interface address, so run this inside the network
//! namespace that `../capture_native.sh` sets up (dummy0 with 192.0.2.10 and
//! 2001:db8::10 only); no STUN/TURN server is configured, so nothing is sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

const CHANNEL_LABEL: &str = "oneway";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let outdir: PathBuf = args
        .next()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("usage: capture-native-sdp <outdir>"))?;
    if args.next().is_some() {
        bail!("usage: capture-native-sdp <outdir>");
    }
    std::fs::create_dir_all(&outdir).with_context(|| format!("creating {}", outdir.display()))?;

    let full = str0m_offer(false)?;
    write_sdp(&outdir, "str0m-datachannel.sdp", &full)?;
    let lite = str0m_offer(true)?;
    write_sdp(&outdir, "str0m-datachannel-lite.sdp", &lite)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building tokio runtime")?;
    let webrtc_rs = rt.block_on(webrtc_rs_offer())?;
    write_sdp(&outdir, "webrtc-rs-datachannel.sdp", &webrtc_rs)?;
    // Do not wait for stray driver tasks.
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn write_sdp(outdir: &Path, name: &str, sdp: &str) -> Result<()> {
    let path = outdir.join(name);
    // Exactly as the stack produced it: no normalisation of line endings or whitespace.
    std::fs::write(&path, sdp.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} ({} bytes)", path.display(), sdp.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// str0m 0.25
// ---------------------------------------------------------------------------------------

fn str0m_offer(ice_lite: bool) -> Result<String> {
    use str0m::{Candidate, Rtc};

    let mut rtc: Rtc = Rtc::builder().set_ice_lite(ice_lite).build(Instant::now());

    let v4: SocketAddr = "192.0.2.10:50000".parse()?;
    let v6: SocketAddr = "[2001:db8::10]:50002".parse()?;
    for addr in [v4, v6] {
        let cand = Candidate::host(addr, "udp")
            .map_err(|e| anyhow!("str0m Candidate::host({addr}): {e}"))?;
        if rtc.add_local_candidate(cand).is_none() {
            bail!("str0m rejected local candidate {addr}");
        }
    }

    let mut api = rtc.sdp_api();
    let _cid = api.add_channel(CHANNEL_LABEL.to_string());
    let (offer, _pending) = api
        .apply()
        .ok_or_else(|| anyhow!("str0m sdp_api().apply() produced no offer"))?;
    Ok(offer.to_sdp_string())
}

// ---------------------------------------------------------------------------------------
// webrtc-rs (webrtc 0.21, sans-I/O `rtc` core + async driver)
// ---------------------------------------------------------------------------------------

struct GatherHandler {
    complete_tx: tokio::sync::mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl webrtc::peer_connection::PeerConnectionEventHandler for GatherHandler {
    async fn on_ice_gathering_state_change(
        &self,
        state: webrtc::peer_connection::RTCIceGatheringState,
    ) {
        eprintln!("webrtc-rs: ICE gathering state {state:?}");
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            let _ = self.complete_tx.try_send(());
        }
    }

    async fn on_ice_candidate(&self, event: webrtc::peer_connection::RTCPeerConnectionIceEvent) {
        eprintln!("webrtc-rs: local candidate {:?}", event.candidate);
    }
}

async fn webrtc_rs_offer() -> Result<String> {
    use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder};

    // webrtc 0.21 has no `gathering_complete_promise`; the gathering state is delivered
    // to the event handler instead, and we wait on that (bounded).
    let (complete_tx, mut complete_rx) = tokio::sync::mpsc::channel::<()>(4);
    let handler = Arc::new(GatherHandler { complete_tx });

    // No ICE servers: host candidates only, no STUN/TURN traffic.
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![])
        .build();

    // Wildcards expand to one socket per non-loopback, non-link-local interface address
    // (webrtc 0.21 `driver.rs::expand_wildcard`).
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_handler(handler)
        .with_udp_addrs(vec!["0.0.0.0:0".to_string(), "[::]:0".to_string()])
        .build()
        .await
        .context("webrtc-rs PeerConnectionBuilder::build")?;

    let _dc = pc
        .create_data_channel(CHANNEL_LABEL, None)
        .await
        .context("webrtc-rs create_data_channel")?;
    let offer = pc
        .create_offer(None)
        .await
        .context("webrtc-rs create_offer")?;
    pc.set_local_description(offer)
        .await
        .context("webrtc-rs set_local_description")?;

    match tokio::time::timeout(Duration::from_secs(10), complete_rx.recv()).await {
        Ok(Some(())) => {}
        Ok(None) => bail!("webrtc-rs: gathering channel closed before completion"),
        Err(_) => bail!("webrtc-rs: ICE gathering did not complete within 10 s"),
    }

    let sdp = pc
        .local_description()
        .await
        .ok_or_else(|| anyhow!("webrtc-rs: no local description after gathering"))?
        .sdp;

    if let Err(e) = tokio::time::timeout(Duration::from_secs(3), pc.close()).await {
        eprintln!("webrtc-rs: close timed out: {e}");
    }
    Ok(sdp)
}
