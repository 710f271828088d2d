//! The two-way baseline: two `rtc` peers connecting the ordinary way, with the SDP offer and
//! answer carried through memory (a perfect, zero-latency signalling server) or through
//! whatever [`Signal`] the caller gives (the benchmarks' WebSocket relay). Benchmarks compare
//! one-way against it on the same machine in the same run. The configuration is `rtc`'s
//! standard one (DTLS 1.2, SCTP's four-way handshake, DCEP): `rtc` 0.21 has neither DTLS 1.3
//! nor SNAP.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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

/// What one signalling hop returns: the session description as the other peer received it.
pub type SignalFuture = Pin<Box<dyn Future<Output = std::io::Result<String>> + Send>>;

/// A signalling channel: `signal(kind, sdp)` carries a session description of `kind`
/// (`"offer"` from the offerer to the answerer, `"answer"` back) and resolves to the text the
/// other peer received. The peers keep running while an answer is in flight, as they would
/// with a real server. (The same type as `oneway_str0m::baseline::Signal`.)
pub type Signal<'a> = &'a mut (dyn FnMut(&'static str, String) -> SignalFuture + Send);

/// The signalling of [`signalled_echo`]: the description arrives unchanged and at once.
pub fn in_memory(_kind: &'static str, sdp: String) -> SignalFuture {
    Box::pin(std::future::ready(Ok(sdp)))
}

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
    signalled_echo_with(certs, timeout, advertise, &mut in_memory).await
}

/// [`signalled_echo_via`] with the offer and the answer carried by `signal` (e.g. a real
/// signalling server). The clock starts before the offer is created, so the time `signal`
/// takes is inside every stage.
pub async fn signalled_echo_with(
    certs: Option<(RTCCertificate, RTCCertificate)>,
    timeout: Duration,
    advertise: Advertise<'_>,
    signal: Signal<'_>,
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
    // The signalling server: offer and answer travel through `signal`, each host candidate
    // shown as the address `advertise` chose.
    let offer = a.create_offer(None).map_err(rtc_error("offer"))?;
    a.set_local_description(start, offer.clone())
        .map_err(rtc_error("offer"))?;
    add_host(&mut a, addr_a)?;
    let offer = a.local_description().unwrap_or(offer);
    let offer = signal(
        "offer",
        rewrite_candidate_address(&offer.sdp, addr_a, shown_a),
    )
    .await
    .map_err(io)?;
    let offer = RTCSessionDescription::offer(offer).map_err(rtc_error("offer"))?;
    b.set_remote_description(start, offer)
        .map_err(rtc_error("remote offer"))?;
    // Candidates added after the descriptions reach the peer by trickle (in memory: the
    // descriptions carry them too).
    trickle(&a, &mut b, (addr_a, shown_a))?;
    let answer = b.create_answer(None).map_err(rtc_error("answer"))?;
    b.set_local_description(start, answer.clone())
        .map_err(rtc_error("answer"))?;
    add_host(&mut b, addr_b)?;
    let answer = b.local_description().unwrap_or(answer);
    // The answerer runs while its answer is on the way, as it would with a real server.
    let mut answer_in_flight = Some(signal(
        "answer",
        rewrite_candidate_address(&answer.sdp, addr_b, shown_b),
    ));
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
            answer = async {
                match answer_in_flight.as_mut() {
                    Some(in_flight) => in_flight.await,
                    None => std::future::pending().await,
                }
            }, if answer_in_flight.is_some() => {
                answer_in_flight = None;
                let answer = RTCSessionDescription::answer(answer.map_err(io)?)
                    .map_err(rtc_error("answer"))?;
                a.set_remote_description(Instant::now(), answer)
                    .map_err(rtc_error("remote answer"))?;
                trickle(&b, &mut a, (addr_b, shown_b))?;
            }
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
