//! The reply fallback (`spec/handshake.md` §11) as the shell runs it, sans-IO where it can be:
//! - the dialer learns its server-reflexive address from the token's STUN servers
//!   ([`SrflxProbe`]) and makes its reply code ([`dialer_reply`]);
//! - the listener turns a reply code into what it punches towards ([`punch_target`]) after
//!   checking it against its token, and the errors it refuses a code with ([`ReplyRefusal`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use oneway_core::punch::{MAX_REPLY_CANDIDATES, PunchRefusal, PunchTarget};
use oneway_core::stun_client::BindingRequest;
use oneway_token::derive::reply_pwd;
use oneway_token::ice::{compose_fast_start_ufrag, compose_listener_ufrag};
use oneway_token::reply::{CandidateReply, ReplyError};
use oneway_token::{Candidate, CandidateAddress, CandidateType, DerivedKeys};

/// How long a dialer waits for its STUN servers before it makes its reply code without a
/// server-reflexive candidate.
pub const SRFLX_WAIT: Duration = Duration::from_millis(1500);
/// When the probe sends its requests, after its start (a lost datagram is repeated).
const PROBE_SENDS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(750),
];

/// The peer-contract form of a candidate: `type transport address:port`
/// (`spec/peer-contract.md` §2.2).
pub fn candidate_string(c: &Candidate) -> String {
    let address = c.address.to_sdp_string();
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    format!(
        "{} {} {host}:{}",
        c.kind.sdp_name(),
        c.transport.sdp_name(),
        c.port
    )
}

/// One Binding request to one of the token's STUN servers, from the dialer's socket of that
/// family.
#[derive(Debug)]
struct Probe {
    server: SocketAddr,
    request: Option<BindingRequest>,
    mapped: Option<SocketAddr>,
}

/// A dialer's server-reflexive discovery for its reply code, sans-IO: send
/// [`SrflxProbe::poll_transmit`], hand every datagram from a server to
/// [`SrflxProbe::handle_datagram`], and read [`SrflxProbe::result`] once
/// [`SrflxProbe::is_done`].
#[derive(Debug)]
pub struct SrflxProbe {
    probes: Vec<Probe>,
    started: Instant,
    sends_done: usize,
}

impl SrflxProbe {
    /// Probes each of `servers` whose family the dialer has a socket for (`families`:
    /// `(has IPv4, has IPv6)`).
    pub fn new(now: Instant, servers: &[SocketAddr], families: (bool, bool)) -> Self {
        let probes = servers
            .iter()
            .filter(|s| if s.is_ipv4() { families.0 } else { families.1 })
            .map(|server| Probe {
                server: *server,
                request: BindingRequest::new().ok(),
                mapped: None,
            })
            .collect();
        SrflxProbe {
            probes,
            started: now,
            sends_done: 0,
        }
    }

    /// Whether `source` is one of the servers probed (its datagrams are the probe's).
    pub fn is_server(&self, source: SocketAddr) -> bool {
        self.probes.iter().any(|p| p.server == source)
    }

    /// The requests due at `now`: `(server, bytes)`.
    pub fn poll_transmit(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        while self.sends_done < PROBE_SENDS.len()
            && now >= self.started + PROBE_SENDS[self.sends_done]
        {
            self.sends_done += 1;
            for p in self.probes.iter().filter(|p| p.mapped.is_none()) {
                if let Some(request) = &p.request {
                    out.push((p.server, request.bytes.clone()));
                }
            }
        }
        out
    }

    /// When the probe needs [`SrflxProbe::poll_transmit`] or [`SrflxProbe::is_done`] again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done(self.started) {
            return None;
        }
        Some(match PROBE_SENDS.get(self.sends_done) {
            Some(after) => self.started + *after,
            None => self.started + SRFLX_WAIT,
        })
    }

    /// A datagram from `source`; `true` if it was the answer to one of the probe's requests.
    pub fn handle_datagram(&mut self, source: SocketAddr, contents: &[u8]) -> bool {
        let Some(probe) = self.probes.iter_mut().find(|p| p.server == source) else {
            return false;
        };
        let Some(request) = &probe.request else {
            return false;
        };
        match request.parse_response(contents) {
            Ok(Some(mapped)) => {
                probe.mapped = Some(mapped);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(server = %source, error = %e, "STUN answer without a mapped address");
                true
            }
        }
    }

    /// Every server answered, or the wait is over.
    pub fn is_done(&self, now: Instant) -> bool {
        self.probes.iter().all(|p| p.mapped.is_some()) || now >= self.started + SRFLX_WAIT
    }

    /// The server-reflexive addresses learned, in server order, without repeats.
    pub fn result(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for mapped in self.probes.iter().filter_map(|p| p.mapped) {
            if !out.contains(&mapped) {
                out.push(mapped);
            }
        }
        out
    }
}

/// The candidates a dialer's reply code carries (`spec/handshake.md` §11): its
/// server-reflexive addresses, then its TURN relay's, then, only if it has no
/// server-reflexive address, its host addresses (loopback only when `loopback`, as for a token
/// whose candidates are all loopback); link-local addresses never. At most
/// [`MAX_REPLY_CANDIDATES`].
pub fn reply_candidates(
    srflx: &[SocketAddr],
    relayed: Option<SocketAddr>,
    hosts: &[SocketAddr],
    loopback: bool,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let push = |kind: CandidateType, addr: SocketAddr, out: &mut Vec<Candidate>| {
        let taken = out.iter().any(|c: &Candidate| {
            c.address == CandidateAddress::Ip(addr.ip()) && c.port == addr.port()
        });
        if !taken && out.len() < MAX_REPLY_CANDIDATES {
            out.push(Candidate {
                kind,
                ..Candidate::udp_host(addr.ip(), addr.port())
            });
        }
    };
    for a in srflx {
        push(CandidateType::ServerReflexive, *a, &mut out);
    }
    if let Some(relayed) = relayed {
        push(CandidateType::Relay, relayed, &mut out);
    }
    if srflx.is_empty() {
        for a in hosts {
            let usable = if a.ip().is_loopback() {
                loopback
            } else {
                !is_link_local(a.ip())
            };
            if usable {
                push(CandidateType::Host, *a, &mut out);
            }
        }
    }
    out
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// The reply code of a dialer with local ICE credentials `(ufrag, pwd)` and `candidates`,
/// made at `now_unix`: the pwd is left out when it is the one derived from the ufrag.
pub fn dialer_reply(
    keys: &DerivedKeys,
    local_ice: &(String, String),
    fast_start: bool,
    candidates: Vec<Candidate>,
    now_unix: u64,
) -> CandidateReply {
    let (ufrag, pwd) = local_ice;
    let derived = reply_pwd(&keys.reply_key, ufrag) == *pwd;
    CandidateReply {
        issued: u32::try_from(now_unix).unwrap_or(u32::MAX),
        ufrag: ufrag.clone(),
        pwd: (!derived).then(|| pwd.clone()),
        fast_start,
        candidates,
        received_tag: None,
    }
}

/// Why a listener refused a reply code; it changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyRefusal {
    /// The code does not decode, was made for another token, or is too old.
    #[error("{0}")]
    Code(#[from] ReplyError),
    /// A code of version 1 (a browser dialer's, for a browser listener's `reply` token).
    #[error("a reply code of version 1 is for a browser listener; this listener takes owr2 codes")]
    WrongVersion,
    /// The punching bounds refused it (replayed, busy, no usable candidate).
    #[error("{0}")]
    Punch(#[from] PunchRefusal),
    /// The listener has stopped.
    #[error("the listener has stopped")]
    Stopped,
}

impl ReplyRefusal {
    /// Stable cause code (`spec/token.md` §12.3, `spec/handshake.md` §11).
    pub fn code(&self) -> &'static str {
        match self {
            ReplyRefusal::Code(e) => e.code(),
            ReplyRefusal::WrongVersion => "unknown-version",
            ReplyRefusal::Punch(p) => p.code(),
            ReplyRefusal::Stopped => "closed-locally",
        }
    }
}

/// What a listener punches towards for the reply code `text`, once it decodes and verifies
/// against this token's `keys` at `now_unix` (`spec/token.md` §12.3). Candidates the listener
/// cannot send to (unspecified, multicast, broadcast addresses) are left out.
pub fn punch_target(
    text: &str,
    keys: &DerivedKeys,
    now_unix: u64,
) -> Result<(PunchTarget, CandidateReply), ReplyRefusal> {
    let text = text.trim();
    if text.starts_with("owr1.") {
        return Err(ReplyRefusal::WrongVersion);
    }
    let reply = CandidateReply::from_text(text)?;
    reply.verify(&keys.reply_key, now_unix)?;
    let pwd = reply.pwd_or_derived(&keys.reply_key);
    let composed = if reply.fast_start {
        compose_fast_start_ufrag(&keys.token_ufrag, &pwd)
    } else {
        compose_listener_ufrag(&keys.token_ufrag, &pwd)
    };
    let listener_ufrag = composed.map_err(|e| {
        ReplyRefusal::Punch(PunchRefusal::NoUsableCandidate(format!(
            "the dialer's pwd cannot be composed: {e}"
        )))
    })?;
    let candidates: Vec<SocketAddr> = reply
        .candidates
        .iter()
        .filter_map(|c| match c.address {
            CandidateAddress::Ip(ip) if sendable(ip) && c.port != 0 => {
                Some(SocketAddr::new(ip, c.port))
            }
            _ => None,
        })
        .collect();
    // The tag (verified above) identifies the code against replay.
    let replay_key = reply.received_tag.unwrap_or_default();
    let target = PunchTarget {
        dialer_ufrag: reply.ufrag.clone(),
        dialer_pwd: pwd,
        listener_ufrag,
        candidates,
        replay_key,
    };
    Ok((target, reply))
}

/// Whether a listener may send checks to `ip`: a unicast address.
fn sendable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn srflx_first_then_relay_and_hosts_only_without_srflx() {
        let with_srflx = reply_candidates(
            &[a("203.0.113.5:4000"), a("203.0.113.5:4000")],
            Some(a("198.51.100.1:5000")),
            &[a("10.0.0.2:4000")],
            false,
        );
        let kinds: Vec<_> = with_srflx.iter().map(candidate_string).collect();
        assert_eq!(
            kinds,
            ["srflx udp 203.0.113.5:4000", "relay udp 198.51.100.1:5000"]
        );
        let hosts = reply_candidates(
            &[],
            None,
            &[
                a("127.0.0.1:1"),
                a("169.254.1.1:2"),
                a("10.0.0.2:3"),
                a("[2001:db8::1]:4"),
            ],
            false,
        );
        let kinds: Vec<_> = hosts.iter().map(candidate_string).collect();
        assert_eq!(kinds, ["host udp 10.0.0.2:3", "host udp [2001:db8::1]:4"]);
        let on_loopback = reply_candidates(&[], None, &[a("127.0.0.1:1")], true);
        assert_eq!(on_loopback.len(), 1);
    }

    #[test]
    fn the_probe_repeats_until_answered_and_gives_up_after_its_wait() {
        let start = Instant::now();
        let server = a("192.0.2.1:3478");
        let mut probe = SrflxProbe::new(start, &[server, a("[2001:db8::9]:3478")], (true, false));
        assert!(probe.is_server(server));
        let first = probe.poll_transmit(start);
        assert_eq!(first.len(), 1, "the IPv6 server has no socket");
        assert!(probe.poll_transmit(start).is_empty());
        assert_eq!(
            probe
                .poll_transmit(start + Duration::from_millis(300))
                .len(),
            1
        );
        assert!(!probe.is_done(start + Duration::from_millis(300)));
        assert!(probe.is_done(start + SRFLX_WAIT));
        assert!(probe.result().is_empty());
        // Noise from the server is not an answer.
        assert!(!probe.handle_datagram(server, b"not stun"));
    }
}
