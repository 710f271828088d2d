//! The two-way baseline: the same stack connecting the ordinary way, with an SDP offer and
//! answer carried by a signalling channel: through memory (a perfect, zero-latency signalling
//! server), or through whatever [`Signal`] the caller gives (the benchmarks' WebSocket relay).
//! Benchmarks compare one-way against it on the same machine in the same run.
//!
//! [`Profile::Standard`] is what a WebRTC application gets by default (DTLS 1.2, SCTP's four-way
//! handshake, the channel opened by DCEP); [`Profile::Dtls13Snap`] also gives the baseline the
//! fast-path pieces str0m 0.25 has: DTLS 1.3 and SNAP with the INIT chunks in the SDP
//! (`a=sctp-init`, draft-hancke-tsvwg-snap), so a comparison separates what one-way wins by
//! design from what the stack wins.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::config::{DtlsCert, DtlsVersion};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::StackError;
use oneway_endpoint::net::Socket;

pub use oneway_connection::{Advertise, BaselineTimings};

/// What one signalling hop returns: the session description as the other peer received it.
pub type SignalFuture = Pin<Box<dyn Future<Output = std::io::Result<String>> + Send>>;

/// A signalling channel: `signal(kind, sdp)` carries a session description of `kind`
/// (`"offer"` from the offerer to the answerer, `"answer"` back) and resolves to the text the
/// other peer received. The peers keep running while an answer is in flight, as they would
/// with a real server.
pub type Signal<'a> = &'a mut (dyn FnMut(&'static str, String) -> SignalFuture + Send);

/// Which configuration both baseline peers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// str0m's defaults, what applications run today: DTLS 1.2, SCTP's four-way handshake, the
    /// data channel opened by DCEP.
    #[default]
    Standard,
    /// DTLS 1.3 on both peers and SNAP: each side's SCTP INIT chunk travels in its SDP
    /// (`a=sctp-init`), so the association starts without SCTP's four-way handshake.
    Dtls13Snap,
}

/// The signalling of [`signalled_echo`]: the description arrives unchanged and at once.
pub fn in_memory(_kind: &'static str, sdp: String) -> SignalFuture {
    Box::pin(std::future::ready(Ok(sdp)))
}

/// Connects two str0m peers over loopback with in-memory SDP offer/answer, opens a data channel,
/// and echoes one message. `certs` are used when given (to exclude key generation from the
/// measurement, as the one-way listener's is).
pub async fn signalled_echo(
    certs: Option<(DtlsCert, DtlsCert)>,
    timeout: Duration,
) -> Result<BaselineTimings, StackError> {
    signalled_echo_via(certs, timeout, &mut Ok).await
}

/// [`signalled_echo`] with the signalling presenting each peer's host candidate as
/// `advertise(bound address)` (e.g. a delaying proxy: the baseline at an emulated RTT).
pub async fn signalled_echo_via(
    certs: Option<(DtlsCert, DtlsCert)>,
    timeout: Duration,
    advertise: Advertise<'_>,
) -> Result<BaselineTimings, StackError> {
    signalled_echo_with(certs, timeout, advertise, &mut in_memory, Profile::Standard).await
}

/// [`signalled_echo_via`] with the offer and the answer carried by `signal` (e.g. a real
/// signalling server) and both peers configured as `profile` says. The clock starts before the
/// offer is created, so the time `signal` takes is inside every stage.
pub async fn signalled_echo_with(
    certs: Option<(DtlsCert, DtlsCert)>,
    timeout: Duration,
    advertise: Advertise<'_>,
    signal: Signal<'_>,
    profile: Profile,
) -> Result<BaselineTimings, StackError> {
    let io = |e: std::io::Error| StackError::Io(e.to_string());
    let sock_a = Socket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(io)?;
    let sock_b = Socket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(io)?;
    let (addr_a, addr_b) = (sock_a.local_addr(), sock_b.local_addr());
    let (shown_a, shown_b) = (
        advertise(addr_a).map_err(io)?,
        advertise(addr_b).map_err(io)?,
    );
    let start = Instant::now();
    let build = |cert: Option<DtlsCert>| {
        let mut builder = Rtc::builder();
        if profile == Profile::Dtls13Snap {
            builder = builder
                .set_dtls_version(DtlsVersion::Dtls13)
                .set_snap_enabled(true);
        }
        if let Some(cert) = cert {
            builder = builder.set_dtls_cert(cert);
        }
        builder.build(Instant::now())
    };
    let (cert_a, cert_b) = certs.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let mut a = build(cert_a);
    let mut b = build(cert_b);
    for (rtc, sock) in [(&mut a, &sock_a), (&mut b, &sock_b)] {
        let c = Candidate::host(sock.local_addr(), "udp")
            .map_err(|e| StackError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(c);
    }
    let mut api = a.sdp_api();
    let channel = api.add_channel("data".to_owned());
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| StackError::Rtc("no offer".to_owned()))?;
    // The signalling server: offer and answer travel through `signal`, each host candidate
    // shown as the address `advertise` chose.
    let rtc_error = |e: str0m::RtcError| StackError::Rtc(e.to_string());
    let offer =
        oneway_connection::rewrite_candidate_address(&offer.to_sdp_string(), addr_a, shown_a);
    let offer = signal("offer", offer).await.map_err(io)?;
    let offer = str0m::change::SdpOffer::from_sdp_string(&offer)
        .map_err(|e| StackError::Rtc(e.to_string()))?;
    let answer = b.sdp_api().accept_offer(offer).map_err(rtc_error)?;
    let answer =
        oneway_connection::rewrite_candidate_address(&answer.to_sdp_string(), addr_b, shown_b);
    // The answerer runs while its answer is on the way, as it would with a real server.
    let mut answer_in_flight = Some(signal("answer", answer));
    let mut pending = Some(pending);
    let mut timings = BaselineTimings::default();
    let payload = b"oneway-baseline-probe";
    let mut sent = false;
    let mut b_channel: Option<ChannelId> = None;
    let deadline = start + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(StackError::Io(format!(
                "baseline did not echo within {timeout:?}"
            )));
        }
        let next_a = drain(&mut a, &sock_a, |event| match event {
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                timings.ice.get_or_insert(start.elapsed());
            }
            Event::Connected => {
                timings.dtls.get_or_insert(start.elapsed());
            }
            Event::ChannelOpen(id, _) if id == channel => {
                timings.channel.get_or_insert(start.elapsed());
            }
            Event::ChannelData(d) if d.data == payload => {
                timings.first_echo.get_or_insert(start.elapsed());
            }
            _ => {}
        })?;
        if timings.first_echo.is_some() {
            return Ok(timings);
        }
        if timings.channel.is_some() && !sent {
            if let Some(mut ch) = a.channel(channel) {
                sent = ch
                    .write(true, payload)
                    .map_err(|e| StackError::Rtc(e.to_string()))?;
            }
            continue;
        }
        let mut echo: Option<Vec<u8>> = None;
        let next_b = drain(&mut b, &sock_b, |event| match event {
            Event::ChannelOpen(id, _) => b_channel = Some(id),
            Event::ChannelData(d) => echo = Some(d.data),
            _ => {}
        })?;
        if let (Some(data), Some(id)) = (echo, b_channel) {
            if let Some(mut ch) = b.channel(id) {
                let _ = ch
                    .write(true, &data)
                    .map_err(|e| StackError::Rtc(e.to_string()))?;
            }
            continue;
        }
        let wake = next_a.min(next_b).min(deadline);
        tokio::select! {
            answer = async {
                match answer_in_flight.as_mut() {
                    Some(in_flight) => in_flight.await,
                    None => std::future::pending().await,
                }
            }, if answer_in_flight.is_some() => {
                answer_in_flight = None;
                let answer = str0m::change::SdpAnswer::from_sdp_string(&answer.map_err(io)?)
                    .map_err(|e| StackError::Rtc(e.to_string()))?;
                if let Some(pending) = pending.take() {
                    a.sdp_api().accept_answer(pending, answer).map_err(rtc_error)?;
                }
            }
            d = sock_a.recv() => feed(&mut a, d.map_err(io)?)?,
            d = sock_b.recv() => feed(&mut b, d.map_err(io)?)?,
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                a.handle_input(Input::Timeout(now)).map_err(|e| StackError::Rtc(e.to_string()))?;
                b.handle_input(Input::Timeout(now)).map_err(|e| StackError::Rtc(e.to_string()))?;
            }
        }
    }
}

fn feed(rtc: &mut Rtc, d: oneway_endpoint::net::Datagram) -> Result<(), StackError> {
    let receive = str0m::net::Receive::new(
        str0m::net::Protocol::Udp,
        d.source,
        d.destination,
        &d.contents,
    )
    .map_err(|e| StackError::Rtc(e.to_string()))?;
    rtc.handle_input(Input::Receive(Instant::now(), receive))
        .map_err(|e| StackError::Rtc(e.to_string()))
}

/// Drains `poll_output` until `Timeout`, sending datagrams and passing events to `on_event`.
fn drain(
    rtc: &mut Rtc,
    sock: &Socket,
    mut on_event: impl FnMut(Event),
) -> Result<Instant, StackError> {
    for _ in 0..crate::engine::POLL_OUTPUT_BOUND {
        match rtc
            .poll_output()
            .map_err(|e| StackError::Rtc(e.to_string()))?
        {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                let _ = sock.send(t.source, t.destination, &t.contents);
            }
            Output::Event(e) => on_event(e),
        }
    }
    Ok(Instant::now())
}
