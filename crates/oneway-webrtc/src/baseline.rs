//! The two-way baseline: two `rtc` peers connecting the ordinary way, with the SDP offer and
//! answer carried through memory (a perfect, zero-latency signalling server). Benchmarks
//! compare one-way against it on the same machine in the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::negotiation::rtc_error;
use crate::{ICE_CHECK_INTERVAL, StackError};
use oneway_endpoint::net::Socket;

use oneway_connection::rewrite_candidate_address;
pub use oneway_connection::{Advertise, BaselineTimings};

fn peer(now: Instant, cert: RTCCertificate) -> Result<RTCPeerConnection, StackError> {
    RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![cert])
                .build(),
        )
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), None)
                .build(),
        )
        .build(now)
        .map_err(rtc_error("peer connection"))
}

fn add_host(pc: &mut RTCPeerConnection, local: SocketAddr) -> Result<(), StackError> {
    pc.add_local_candidate(crate::stack::host_candidate(local)?)
        .map_err(rtc_error("host candidate"))?;
    pc.add_local_candidate(Default::default())
        .map_err(rtc_error("end of candidates"))
}

/// Connects two `rtc` peers over loopback with in-memory SDP offer/answer, opens a data
/// channel, and echoes one message. `certs` are used when given (to exclude key generation
/// from the measurement, as the one-way listener's is).
pub async fn signalled_echo(
    certs: Option<(RTCCertificate, RTCCertificate)>,
    timeout: Duration,
) -> Result<BaselineTimings, StackError> {
    signalled_echo_via(certs, timeout, &mut Ok).await
}

/// [`signalled_echo`] with the signalling presenting each peer's host candidate as
/// `advertise(bound address)` (e.g. a delaying proxy: the baseline at an emulated RTT).
pub async fn signalled_echo_via(
    certs: Option<(RTCCertificate, RTCCertificate)>,
    timeout: Duration,
    advertise: Advertise<'_>,
) -> Result<BaselineTimings, StackError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let io = |e: std::io::Error| StackError::Io(e.to_string());
    let sock_a = Socket::bind(loopback).map_err(io)?;
    let sock_b = Socket::bind(loopback).map_err(io)?;
    let addr_a = sock_a.local_addr();
    let addr_b = sock_b.local_addr();
    let shown_a = advertise(addr_a).map_err(io)?;
    let shown_b = advertise(addr_b).map_err(io)?;
    let start = Instant::now();
    let (cert_a, cert_b) = match certs {
        Some(pair) => pair,
        None => (
            crate::generate_certificate()?.0,
            crate::generate_certificate()?.0,
        ),
    };
    let mut a = peer(start, cert_a)?;
    let mut b = peer(start, cert_b)?;
    let channel: RTCDataChannelId = a
        .create_data_channel("data", None)
        .map_err(rtc_error("channel"))?
        .id();
    // The "signalling server": offer and answer travel through memory, each host candidate
    // shown as the address `advertise` chose.
    let offer = a.create_offer(None).map_err(rtc_error("offer"))?;
    a.set_local_description(start, offer.clone())
        .map_err(rtc_error("offer"))?;
    add_host(&mut a, addr_a)?;
    let offer = a.local_description().unwrap_or(offer);
    let offer =
        RTCSessionDescription::offer(rewrite_candidate_address(&offer.sdp, addr_a, shown_a))
            .map_err(rtc_error("offer"))?;
    b.set_remote_description(start, offer)
        .map_err(rtc_error("remote offer"))?;
    let answer = b.create_answer(None).map_err(rtc_error("answer"))?;
    b.set_local_description(start, answer.clone())
        .map_err(rtc_error("answer"))?;
    add_host(&mut b, addr_b)?;
    let answer = b.local_description().unwrap_or(answer);
    let answer =
        RTCSessionDescription::answer(rewrite_candidate_address(&answer.sdp, addr_b, shown_b))
            .map_err(rtc_error("answer"))?;
    a.set_remote_description(start, answer)
        .map_err(rtc_error("remote answer"))?;
    // Candidates added after the descriptions reach the peer by trickle.
    trickle(&a, &mut b, (addr_a, shown_a))?;
    trickle(&b, &mut a, (addr_b, shown_b))?;

    let mut timings = BaselineTimings::default();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = Instant::now();
        // Drain both peers.
        for (pc, sockets, is_a) in [(&mut a, &sock_a, true), (&mut b, &sock_b, false)] {
            for _ in 0..64 {
                let mut progressed = false;
                while let Some(event) = pc.poll_event() {
                    progressed = true;
                    match event {
                        RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                            RTCIceConnectionState::Connected,
                        ) if is_a && timings.ice.is_none() => {
                            timings.ice = Some(start.elapsed());
                        }
                        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                            RTCPeerConnectionState::Connected,
                        ) if is_a && timings.dtls.is_none() => {
                            timings.dtls = Some(start.elapsed());
                        }
                        RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id))
                            if is_a && id == channel && timings.channel.is_none() =>
                        {
                            timings.channel = Some(start.elapsed());
                            if let Some(mut dc) = pc.data_channel(id) {
                                dc.send(now, BytesMut::from(&b"probe"[..]))
                                    .map_err(rtc_error("send"))?;
                            }
                        }
                        _ => {}
                    }
                }
                while let Some(message) = pc.poll_read() {
                    progressed = true;
                    if let RTCMessage::DataChannelMessage(id, m) = message.message {
                        if is_a {
                            timings.first_echo = Some(start.elapsed());
                            return Ok(timings);
                        }
                        if let Some(mut dc) = pc.data_channel(id) {
                            dc.send(now, m.data).map_err(rtc_error("echo"))?;
                        }
                    }
                }
                while let Some(out) = pc.poll_write() {
                    progressed = true;
                    // UDP: a failed send is a lost datagram.
                    let _ = sockets.send(
                        out.transport.local_addr,
                        out.transport.peer_addr,
                        &out.message,
                    );
                }
                if !progressed {
                    break;
                }
            }
        }
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(50));
        let wake = tokio::time::Instant::from_std(next).min(deadline);
        tokio::select! {
            Ok(d) = sock_a.recv() => read(&mut a, d),
            Ok(d) = sock_b.recv() => read(&mut b, d),
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(StackError::Io(format!("baseline did not echo within {timeout:?}")));
                }
                let now = Instant::now();
                a.handle_timeout(now).map_err(rtc_error("timeout"))?;
                b.handle_timeout(now).map_err(rtc_error("timeout"))?;
            }
        }
    }
}

/// Passes `from`'s local candidates to `to`, as a signalling server would trickle them, with
/// the host address `shown.0` rewritten to `shown.1`.
fn trickle(
    from: &RTCPeerConnection,
    to: &mut RTCPeerConnection,
    shown: (SocketAddr, SocketAddr),
) -> Result<(), StackError> {
    let Some(sctp) = from.sctp() else {
        return Ok(());
    };
    for c in sctp.transport().ice_transport().get_local_candidates() {
        let mut init = c.to_json().map_err(rtc_error("candidate"))?;
        init.candidate = rewrite_candidate_address(&init.candidate, shown.0, shown.1);
        to.add_remote_candidate(init)
            .map_err(rtc_error("remote candidate"))?;
    }
    Ok(())
}

fn read(pc: &mut RTCPeerConnection, d: oneway_endpoint::net::Datagram) {
    let message = TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: d.destination,
            peer_addr: d.source,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        },
        message: BytesMut::from(&d.contents[..]),
    };
    if let Err(e) = pc.handle_read(message) {
        tracing::debug!(error = %e, "baseline datagram refused");
    }
}
