//! The two-way baseline: the same stack connecting the ordinary way, with an SDP offer and
//! answer carried through memory: a perfect, zero-latency signalling server. Benchmarks compare
//! one-way against it on the same machine in the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::config::DtlsCert;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::StackError;
use oneway_endpoint::net::Socket;

pub use oneway_connection::{Advertise, BaselineTimings};

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
    // The "signalling server": offer and answer travel through memory, each host candidate
    // shown as the address `advertise` chose.
    let offer = str0m::change::SdpOffer::from_sdp_string(
        &oneway_connection::rewrite_candidate_address(&offer.to_sdp_string(), addr_a, shown_a),
    )
    .map_err(|e| StackError::Rtc(e.to_string()))?;
    let answer = b
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| StackError::Rtc(e.to_string()))?;
    let answer = str0m::change::SdpAnswer::from_sdp_string(
        &oneway_connection::rewrite_candidate_address(&answer.to_sdp_string(), addr_b, shown_b),
    )
    .map_err(|e| StackError::Rtc(e.to_string()))?;
    a.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| StackError::Rtc(e.to_string()))?;

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
