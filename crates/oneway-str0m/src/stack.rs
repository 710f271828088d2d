//! [`Str0m`]: str0m as a [`Stack`] of the shared shell. How each role's `Rtc` is configured
//! through the Direct API; the shell does everything else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};
use str0m::channel::SctpInitData;
use str0m::config::{DtlsCert, DtlsVersion};
use str0m::{Candidate as RtcCandidate, IceCreds};

use oneway_connection::StackError;
use oneway_core::ProofRole;
use oneway_endpoint::{DialerEngineParams, Engine as _, ListenerEngineParams, Stack};
use oneway_token::derive::reply_pwd;
use oneway_token::ice::{compose_fast_start_ufrag, compose_listener_ufrag};
use oneway_token::sdp::candidate_attribute;
use oneway_token::{CandidateAddress, FastPath, Profile};

use crate::engine::{ICE_DISCONNECT_AFTER, Str0mEngine, rtc_builder};

/// The str0m stack (0.25, Direct API, aws-lc-rs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Str0m;

impl Stack for Str0m {
    const NAME: &'static str = crate::STACK;
    // str0m takes local candidates at any time.
    const RELAY_BEFORE_START: bool = false;
    type Certificate = DtlsCert;
    type Engine = Str0mEngine;
    type FastPath = ListenerFastPath;

    fn listener_fast_path() -> Result<Option<(FastPath, ListenerFastPath)>, StackError> {
        let mut init = SctpInitData::new();
        let chunk = init
            .local_init_chunk()
            .map_err(|e| StackError::Rtc(format!("SCTP INIT chunk for SNAP: {e}")))?;
        let announced = FastPath {
            dtls13: true,
            fast_start_init: Some(chunk),
            other_bits: 0,
        };
        Ok(Some((announced, ListenerFastPath { init })))
    }

    fn generate_certificate() -> Result<(DtlsCert, [u8; 32]), StackError> {
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| {
                StackError::Config("str0m could not generate a DTLS certificate".to_owned())
            })?;
        let fingerprint = Self::fingerprint(&cert)?;
        Ok((cert, fingerprint))
    }

    fn certificate_from_der(der: &[u8], pkcs8: &[u8]) -> Result<DtlsCert, StackError> {
        Ok(DtlsCert {
            certificate: der.to_vec(),
            private_key: pkcs8.to_vec(),
        })
    }

    fn fingerprint(certificate: &DtlsCert) -> Result<[u8; 32], StackError> {
        Ok(Sha256::digest(&certificate.certificate).into())
    }

    fn listener_engine(
        p: ListenerEngineParams<'_, DtlsCert, ListenerFastPath>,
    ) -> Result<Str0mEngine, StackError> {
        // A listener announcing the fast path takes DTLS 1.3 and 1.2 alike (str0m's `Auto`
        // answers the version the ClientHello offers, with no extra round trip); otherwise
        // exactly the standard handshake (DTLS 1.2).
        let version = match p.fast_path {
            Some(_) => DtlsVersion::Auto,
            None => DtlsVersion::Dtls12,
        };
        // A fast start (`/` in the composed ufrag): the dialer's ufrag is its INIT chunk.
        let mut peer_init = None;
        let snap = match (p.fast_path, p.dialer.fast_start) {
            (Some(fast), true) => {
                let chunk = dialer_init_chunk(&p.dialer.dialer_ufrag)?;
                let mut init = fast.init.clone();
                init.set_remote_init_chunk(chunk.clone());
                peer_init = Some(chunk);
                Some(init)
            }
            _ => None,
        };
        let mut rtc = rtc_builder(p.remote.ip().is_loopback())
            .set_dtls_version(version)
            .set_ice_lite(true)
            .set_dtls_cert(p.certificate.clone())
            .set_fingerprint_verification(false)
            .set_local_ice_credentials(IceCreds {
                ufrag: p.dialer.listener_ufrag.clone(),
                pass: p.keys.listener_pwd.clone(),
            })
            .build(p.now);
        for host in p.hosts {
            let candidate = RtcCandidate::host(*host, "udp")
                .map_err(|e| StackError::Rtc(format!("host candidate {host}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        let dialer_ice = IceCreds {
            ufrag: p.dialer.dialer_ufrag.clone(),
            pass: p.dialer.dialer_pwd.clone(),
        };
        let mut api = rtc.direct_api();
        api.set_ice_controlling(false);
        api.set_remote_ice_credentials(dialer_ice.clone());
        // The dialer's certificate is unknown in advance (verification is off): the in-band
        // proof authenticates it. str0m wants some remote fingerprint before DTLS starts.
        api.set_remote_fingerprint(str0m::config::Fingerprint {
            hash_func: "sha-256".to_owned(),
            bytes: vec![0; 32],
        });
        api.start_dtls(false)
            .map_err(|e| StackError::Rtc(e.to_string()))?;
        let fast_start = snap.is_some();
        match snap {
            Some(init) => api
                .start_sctp_with_snap(false, init)
                .map_err(|e| StackError::Rtc(format!("SNAP: {e}")))?,
            None => api.start_sctp(false),
        }
        let ctrl = api.create_data_channel(Str0mEngine::control_channel_config());
        let mut engine = Str0mEngine::new(
            rtc,
            ProofRole::Listener,
            p.keys.auth_key,
            p.fingerprint,
            ctrl,
            p.now,
            p.events,
        );
        engine.set_consent_grace(p.consent_timeout.saturating_sub(ICE_DISCONNECT_AFTER));
        engine.select_pairs_early(p.keys.listener_pwd.clone());
        engine.set_remote_ice(dialer_ice);
        if fast_start {
            engine.set_fast_start();
        }
        if let Some(chunk) = peer_init {
            engine.set_peer_snap_init(&chunk);
        }
        Ok(engine)
    }

    fn dialer_engine(p: DialerEngineParams<'_, DtlsCert>) -> Result<Str0mEngine, StackError> {
        let token = p.token;
        // The fast path the token offers, if this dial takes it (`spec/handshake.md` §5.4).
        let fast = token.fast.as_ref().filter(|_| p.fast_path);
        let mut snap = None;
        let mut peer_init = None;
        let (local_creds, remote_creds) = match (&p.keys.dialer_ice, &token.listener_ice) {
            // dialer-identity (`spec/handshake.md` §10.2): the listener chose our credentials
            // and certificate; it is the controlling agent.
            (Some(dialer), Some(listener)) if token.profile == Profile::DialerIdentity => (
                IceCreds {
                    ufrag: dialer.ufrag().to_owned(),
                    pass: dialer.pwd().to_owned(),
                },
                IceCreds {
                    ufrag: listener.ufrag().to_owned(),
                    pass: listener.pwd().to_owned(),
                },
            ),
            _ => {
                let mut local = IceCreds::new();
                let fast_start = fast.and_then(|f| f.fast_start_init.clone());
                if let Some(listener_init) = fast_start {
                    peer_init = Some(listener_init.clone());
                    // Fast start: our ufrag is our INIT chunk (§4.2).
                    let mut init = SctpInitData::new();
                    let chunk = init
                        .local_init_chunk()
                        .map_err(|e| StackError::Rtc(format!("SCTP INIT chunk for SNAP: {e}")))?;
                    init.set_remote_init_chunk(listener_init);
                    local.ufrag = STANDARD_NO_PAD.encode(chunk);
                    snap = Some(init);
                }
                // The pwd derived from the ufrag, so a reply code need not carry it
                // (`spec/token.md` §12.2).
                local.pass = reply_pwd(&p.keys.reply_key, &local.ufrag);
                let composed = match snap {
                    // A fast start is announced with `/`.
                    Some(_) => compose_fast_start_ufrag(&p.keys.token_ufrag, &local.pass),
                    None => compose_listener_ufrag(&p.keys.token_ufrag, &local.pass),
                };
                let listener_ufrag = composed.map_err(|e| {
                    StackError::Config(format!("composing the listener ufrag: {e}"))
                })?;
                let remote = IceCreds {
                    ufrag: listener_ufrag,
                    pass: p.keys.listener_pwd.clone(),
                };
                (local, remote)
            }
        };
        let version = if fast.is_some_and(|f| f.dtls13) {
            DtlsVersion::Dtls13
        } else {
            DtlsVersion::Dtls12
        };
        let local_ice = (local_creds.ufrag.clone(), local_creds.pass.clone());
        let mut builder = rtc_builder(p.loopback)
            .set_dtls_version(version)
            .set_local_ice_credentials(local_creds);
        if let Some(cert) = p.certificate {
            builder = builder.set_dtls_cert(cert);
        }
        let mut rtc = builder.build(p.now);
        for local in p.locals {
            match RtcCandidate::host(*local, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => {
                    tracing::debug!(%local, error = %e, "local address not usable as a candidate")
                }
            }
        }
        if let Some((relayed, base)) = p.relayed {
            match RtcCandidate::relayed(relayed, base, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%relayed, error = %e, "relayed candidate not usable"),
            }
        }
        let mut api = rtc.direct_api();
        api.set_ice_controlling(token.profile == Profile::Native);
        api.set_remote_ice_credentials(remote_creds.clone());
        api.set_remote_fingerprint(str0m::config::Fingerprint {
            hash_func: "sha-256".to_owned(),
            bytes: token.fingerprint.0.to_vec(),
        });
        api.start_dtls(true)
            .map_err(|e| StackError::Rtc(e.to_string()))?;
        let fast_start = snap.is_some();
        match snap {
            Some(init) => api
                .start_sctp_with_snap(true, init)
                .map_err(|e| StackError::Rtc(format!("SNAP: {e}")))?,
            None => api.start_sctp(true),
        }
        let ctrl = api.create_data_channel(Str0mEngine::control_channel_config());

        let mut engine = Str0mEngine::new(
            rtc,
            ProofRole::Dialer,
            p.auth_key,
            token.fingerprint.0,
            ctrl,
            p.now,
            p.events,
        );
        if let Some(mac) = p.relayed_proof {
            engine.relay_proof(mac);
        }
        engine.handshake_mut().local_ice = Some(local_ice);
        engine.set_remote_ice(remote_creds);
        if fast_start {
            engine.set_fast_start();
        }
        if let Some(chunk) = peer_init {
            engine.set_peer_snap_init(&chunk);
        }
        for (index, addr) in p.remotes {
            // Each remote keeps its token position (priority), with its resolved address.
            let Some(candidate) = token.candidates.get(*index) else {
                continue;
            };
            let resolved = oneway_token::Candidate {
                address: CandidateAddress::Ip(addr.ip()),
                ..*candidate
            };
            let line = candidate_attribute(*index, &resolved);
            match RtcCandidate::from_sdp_string(&line) {
                Ok(c) => engine.add_remote_candidate(c),
                Err(e) => tracing::warn!(%line, error = %e, "str0m refused a token candidate"),
            }
        }
        Ok(engine)
    }

    fn warm_up() {
        crate::warm_up();
    }
}

/// A str0m listener's fast-path state: its SCTP INIT chunk for SNAP, announced in the token
/// and shared by every fast-start dialer (SCTP runs inside each dialer's own DTLS session, so
/// the verification tag protects nothing there: `spec/security.md` §3).
#[derive(Clone, Debug)]
pub struct ListenerFastPath {
    init: SctpInitData,
}

/// The INIT chunk a fast-start dialer's ufrag carries (base64, standard alphabet, no padding:
/// `spec/handshake.md` §4.2), checked like the token's (`spec/token.md` §5.8).
fn dialer_init_chunk(ufrag: &str) -> Result<Vec<u8>, StackError> {
    let chunk = STANDARD_NO_PAD
        .decode(ufrag)
        .map_err(|e| StackError::Config(format!("fast-start ufrag is not base64: {e}")))?;
    if let Some(problem) = FastPath::init_chunk_problem(&chunk) {
        return Err(StackError::Config(format!("fast-start ufrag: {problem}")));
    }
    Ok(chunk)
}
