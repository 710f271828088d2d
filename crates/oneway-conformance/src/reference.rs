//! The reference peer that misbehaves on purpose, built from the project's own components: the
//! shared shell (`oneway_endpoint::{Listener, dial}`) on the webrtc-rs engine with a deliberate
//! violation switched on ([`Misbehaving`]), the dialer's `dangerous` knobs, forged tokens
//! (`oneway-token`), and crafted STUN checks and raw datagrams from a plain UDP socket.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_connection::{Connection, ConnectionEvent, DialError, StackError};
use oneway_endpoint::{DialConfig, DialerEngineParams, ListenerEngineParams, Stack};
use oneway_token::{DerivedKeys, Profile, Secret, Token};
use oneway_webrtc::WebrtcRs;
use oneway_webrtc::engine::RtcEngine;
use str0m::ice::{StunMessage, TransId};

/// One deliberate violation of a [`Misbehaving`] engine.
pub trait Violation: Clone + Copy + Debug + Default + Send + Sync + 'static {
    /// Applied to every listener engine.
    fn listener(_engine: &mut RtcEngine) {}
    /// Applied to every dialer engine.
    fn dialer(_engine: &mut RtcEngine) {}
}

/// The webrtc-rs stack with the violation `V` switched on in every engine it builds; used as
/// the stack of a normal `Listener<S>` or `dial::<S>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Misbehaving<V: Violation>(PhantomData<V>);

impl<V: Violation> Stack for Misbehaving<V> {
    const NAME: &'static str = "webrtc-rs (misbehaving)";
    const RELAY_BEFORE_START: bool = <WebrtcRs as Stack>::RELAY_BEFORE_START;
    type Certificate = <WebrtcRs as Stack>::Certificate;
    type Engine = RtcEngine;
    type FastPath = <WebrtcRs as Stack>::FastPath;

    fn generate_certificate() -> Result<(Self::Certificate, [u8; 32]), StackError> {
        WebrtcRs::generate_certificate()
    }

    fn certificate_from_der(der: &[u8], pkcs8: &[u8]) -> Result<Self::Certificate, StackError> {
        WebrtcRs::certificate_from_der(der, pkcs8)
    }

    fn fingerprint(certificate: &Self::Certificate) -> Result<[u8; 32], StackError> {
        WebrtcRs::fingerprint(certificate)
    }

    fn listener_engine(
        params: ListenerEngineParams<'_, Self::Certificate, Self::FastPath>,
    ) -> Result<RtcEngine, StackError> {
        let mut engine = WebrtcRs::listener_engine(params)?;
        V::listener(&mut engine);
        Ok(engine)
    }

    fn dialer_engine(
        params: DialerEngineParams<'_, Self::Certificate>,
    ) -> Result<RtcEngine, StackError> {
        let mut engine = WebrtcRs::dialer_engine(params)?;
        V::dialer(&mut engine);
        Ok(engine)
    }
}

/// A listener that admits every dialer whose proof verifies but never sends its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverProves;

impl Violation for NeverProves {
    fn listener(engine: &mut RtcEngine) {
        engine.dangerous_mut().withhold_proof = true;
    }
}

/// A listener whose proof is made with another token's auth key (bound to the right
/// certificates: only the key is wrong).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProvesForAnotherToken;

/// The other token's secret ([`ProvesForAnotherToken`]).
pub const OTHER_SECRET: Secret = Secret([0x5a; 16]);

impl Violation for ProvesForAnotherToken {
    fn listener(engine: &mut RtcEngine) {
        engine.dangerous_mut().proof_key =
            Some(DerivedKeys::derive(&OTHER_SECRET, Profile::Native).auth_key);
    }
}

/// A dialer that sends `ice-restart` and `offer` on channel 0 before its proof.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenegotiatesBeforeProof;

impl Violation for RenegotiatesBeforeProof {
    fn dialer(engine: &mut RtcEngine) {
        use oneway_core::signal::Message;
        engine.dangerous_mut().before_proof = vec![
            Message::IceRestart {
                ufrag: "cnfm".to_owned(),
                pwd: "conformanceconformance".to_owned(),
            }
            .encode(),
            Message::Offer {
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n".to_owned(),
            }
            .encode(),
        ];
    }
}

/// A dial by the reference dialer (str0m, through the shared shell) that gives up after
/// `timeout`.
pub fn dial_config(timeout: Duration) -> DialConfig<oneway_str0m::Str0m> {
    DialConfig {
        timeout,
        ..Default::default()
    }
}

/// Opens the `data` channel on `conn`, sends one message and waits (at most `wait`) for the
/// listener to echo it (`spec/peer-contract.md` §1); the round trip on success.
pub async fn echo(conn: &mut Connection, wait: Duration) -> Result<Duration, String> {
    let run = async {
        let channel = conn
            .open_channel("data")
            .await
            .map_err(|e| format!("opening `data`: {e}"))?;
        let payload = format!("oneway-conformance {:?}", Instant::now());
        let sent = Instant::now();
        conn.send_text(channel, &payload)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        while let Some(event) = conn.next_event().await {
            match event {
                ConnectionEvent::Data { data, .. } if data == payload.as_bytes() => {
                    return Ok(sent.elapsed());
                }
                ConnectionEvent::Closed { code, reason } => {
                    return Err(format!("closed before the echo: {code}: {reason}"));
                }
                _ => {}
            }
        }
        Err("connection ended before the echo".to_owned())
    };
    tokio::time::timeout(wait, run)
        .await
        .unwrap_or_else(|_| Err(format!("no echo within {wait:?}")))
}

/// A good dial of `token` by the reference dialer, with an echo; `Ok(description)` or why not.
pub async fn good_dial(token: &Token, timeout: Duration) -> Result<String, String> {
    let mut conn = oneway_endpoint::dial(token, &dial_config(timeout))
        .await
        .map_err(|e| format!("the good dialer failed: {}: {e}", e.code()))?;
    let rtt = echo(&mut conn, timeout).await?;
    conn.close("conformance check done");
    Ok(format!(
        "a good dialer connected and got its echo ({rtt:.1?})"
    ))
}

/// The code of a dial's failure, or `connected` (after closing the connection).
pub fn outcome_code(result: Result<Connection, DialError>) -> String {
    match result {
        Ok(conn) => {
            conn.close("conformance check done");
            "connected".to_owned()
        }
        Err(e) => e.code().to_owned(),
    }
}

/// A STUN Binding request with `username` and MESSAGE-INTEGRITY keyed with `pwd`, claiming
/// the ICE role `controlling`; its bytes and transaction id.
pub fn binding_request(username: &str, pwd: &str, controlling: bool) -> (Vec<u8>, [u8; 12]) {
    let tie_breaker = rand::random::<u64>();
    let message = StunMessage::binding_request(
        username,
        TransId::new(),
        controlling,
        tie_breaker,
        1 << 24,
        false,
    );
    let mut buf = vec![0u8; 1500];
    let n = message
        .to_bytes(Some(pwd.as_bytes()), &mut buf, oneway_testkit::sha1_hmac)
        .unwrap_or(0);
    buf.truncate(n);
    let id = oneway_testkit::trans_id(&buf).unwrap_or_default();
    (buf, id)
}

/// What a dialer of `token` puts in its checks: `(listener ufrag, dialer ufrag, pwd keying the
/// integrity, whether the dialer is controlling)`, for a fresh dialer. `token_ufrag` replaces
/// the token's own ufrag (to forge a check with another token's).
pub fn check_parts(token: &Token, token_ufrag: Option<&str>) -> (String, String, String, bool) {
    let keys = token.derive();
    match (&token.listener_ice, &keys.dialer_ice) {
        // dialer-identity (`spec/handshake.md` §10.2): the listener's own credentials, the
        // dialer's derived ones; the dialer is controlled.
        (Some(listener), Some(dialer)) => (
            token_ufrag.unwrap_or(listener.ufrag()).to_owned(),
            dialer.ufrag().to_owned(),
            listener.pwd().to_owned(),
            false,
        ),
        _ => {
            let ufrag = token_ufrag.unwrap_or(&keys.token_ufrag);
            let composed =
                oneway_token::ice::compose_listener_ufrag(ufrag, &oneway_testkit::ice_string(24))
                    .unwrap_or_default();
            (
                composed,
                oneway_testkit::ice_string(8),
                keys.listener_pwd.clone(),
                true,
            )
        }
    }
}

/// A fresh dialer's check for `token` (a genuine one with `token_ufrag = None`).
pub fn check_for(token: &Token, token_ufrag: Option<&str>) -> (Vec<u8>, [u8; 12]) {
    let (listener, dialer, pwd, controlling) = check_parts(token, token_ufrag);
    binding_request(&format!("{listener}:{dialer}"), &pwd, controlling)
}

/// The first candidate of `token` the reference peer can reach (UDP, an IP address; IPv4
/// first).
pub fn first_address(token: &Token) -> Option<SocketAddr> {
    let addrs: Vec<SocketAddr> = token
        .candidates
        .iter()
        .filter_map(|c| match (c.transport, c.address) {
            (oneway_token::Transport::Udp, oneway_token::CandidateAddress::Ip(ip)) => {
                Some(SocketAddr::new(ip, c.port))
            }
            _ => None,
        })
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

/// A plain UDP socket on the loopback address of `to`'s family, for crafted datagrams.
pub fn loopback_socket(to: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let local: SocketAddr = if to.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(socket)
}

/// Garbage for a listener's socket, datagram `i` of a flood: random bytes of every size up
/// to 1400, oversized datagrams (up to 65000 bytes), empty ones, STUN headers with lying
/// lengths, DTLS-looking records, Binding requests without integrity or with a random
/// USERNAME.
pub fn garbage(i: usize) -> Vec<u8> {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let mut random = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.random()).collect() };
    match i % 8 {
        0 => {
            let len = 1 + (i * 7919) % 1400;
            random(len)
        }
        1 => random(65000 - (i % 100)),
        2 => Vec::new(),
        3 => {
            // A STUN Binding request header whose length claims far more than follows.
            let mut d = vec![0x00, 0x01, 0xff, 0xfc, 0x21, 0x12, 0xa4, 0x42];
            d.extend(random(12));
            d.extend(random(20));
            d
        }
        4 => {
            // A DTLS handshake record (ClientHello-like) from an unknown address.
            let mut d = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
            d.extend(random(256));
            d
        }
        5 => {
            // A Binding request with a USERNAME but no MESSAGE-INTEGRITY.
            let user = format!(
                "{}:{}",
                oneway_testkit::ice_string(40),
                oneway_testkit::ice_string(8)
            );
            let message = StunMessage::binding_request(&user, TransId::new(), true, 1, 1, false);
            let mut buf = vec![0u8; 1500];
            let n = message
                .to_bytes(None, &mut buf, oneway_testkit::sha1_hmac)
                .unwrap_or(0);
            buf.truncate(n);
            buf
        }
        6 => {
            // A Binding request with a random USERNAME and integrity.
            binding_request(
                &format!(
                    "{}:{}",
                    oneway_testkit::ice_string(33),
                    oneway_testkit::ice_string(8)
                ),
                &oneway_testkit::ice_string(24),
                true,
            )
            .0
        }
        _ => {
            // RTP-looking bytes.
            let mut d = vec![0x80, 0x6f];
            d.extend(random(160));
            d
        }
    }
}
