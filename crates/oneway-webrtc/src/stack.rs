//! [`WebrtcRs`]: webrtc-rs's sans-IO `rtc` crate as a [`Stack`] of the shared shell: how each
//! role's peer connection is configured; the shell does everything else.

use std::time::{Duration, SystemTime};

use oneway_connection::StackError;
use oneway_core::ProofRole;
use oneway_endpoint::{DialerEngineParams, Engine as _, ListenerEngineParams, Stack};
use oneway_token::Profile;
use oneway_token::derive::reply_pwd;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, RTCDtlsRole, RTCIceCandidate,
    RTCIceCandidateInit,
};
use sha2::{Digest, Sha256};

use crate::engine::{CONTROL_LABEL, RtcEngine, control_channel_init};
use crate::negotiation::{Negotiation, media_engine, rtc_error};

/// The webrtc-rs stack (`rtc` 0.21, sans-IO).
#[derive(Clone, Copy, Debug, Default)]
pub struct WebrtcRs;

impl Stack for WebrtcRs {
    const NAME: &'static str = crate::STACK;
    // `rtc` takes local candidates before end-of-candidates only.
    const RELAY_BEFORE_START: bool = true;
    type Certificate = RTCCertificate;
    type Engine = RtcEngine;
    // No fast path: webrtc-rs `rtc` 0.21 has neither DTLS 1.3 nor SNAP.
    type FastPath = ();

    fn generate_certificate() -> Result<(RTCCertificate, [u8; 32]), StackError> {
        crate::generate_certificate()
    }

    fn certificate_from_der(der: &[u8], pkcs8: &[u8]) -> Result<RTCCertificate, StackError> {
        let provider = rtc::crypto::default_provider()
            .map_err(|e| StackError::Config(format!("crypto provider: {e}")))?;
        // `rtc` only uses `expires` to refuse stale certificates.
        let expires = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        RTCCertificate::from_pkcs8(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            vec![der.to_vec().into()],
            pkcs8,
            expires,
        )
        .map_err(|e| StackError::Config(format!("certificate: {e}")))
    }

    fn fingerprint(certificate: &RTCCertificate) -> Result<[u8; 32], StackError> {
        let der = certificate
            .dtls_certificate
            .certificate
            .first()
            .ok_or_else(|| StackError::Config("certificate without DER".to_owned()))?;
        Ok(Sha256::digest(der.as_ref()).into())
    }

    fn listener_engine(
        p: ListenerEngineParams<'_, RTCCertificate>,
    ) -> Result<RtcEngine, StackError> {
        let consent = p.consent_timeout;
        let settings = SettingEngineBuilder::new()
            .with_ice_credentials(p.dialer.listener_ufrag.clone(), p.keys.listener_pwd.clone())
            .with_lite(true)
            // The dialer's certificate is unknown in advance: the in-band proof authenticates it.
            .with_disable_certificate_fingerprint_verification(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            // `rtc` counts the first sixth of the consent timeout as "disconnected", the rest
            // until "failed".
            .with_ice_timeouts(Some(consent / 6), Some(consent - consent / 6), None)
            .build();
        let (pc, ctrl) = peer_connection(p.now, p.certificate.clone(), settings)?;
        let mut engine = RtcEngine::new(
            pc,
            ProofRole::Listener,
            Negotiation::Listener {
                remote: p.remote,
                sctp: p.sctp,
                local_ice: (p.dialer.listener_ufrag.clone(), p.keys.listener_pwd.clone()),
            },
            p.keys.auth_key,
            p.fingerprint,
            p.fingerprint,
            ctrl,
            p.now,
            p.events,
        );
        engine.answer_implied_offer(p.now, &p.dialer.dialer_ufrag, &p.dialer.dialer_pwd)?;
        for local in p.hosts {
            engine.add_local_candidate(host_candidate(*local)?)?;
        }
        Ok(engine)
    }

    fn dialer_engine(p: DialerEngineParams<'_, RTCCertificate>) -> Result<RtcEngine, StackError> {
        let token = p.token;
        let (cert, local_fp) = match p.certificate {
            Some(cert) => {
                let fp = Self::fingerprint(&cert)?;
                (cert, fp)
            }
            None => crate::generate_certificate()?,
        };
        let interval = p.ice_check_interval.unwrap_or(crate::ICE_CHECK_INTERVAL);
        // The ICE failed timeout (25 s by default) would end a dial whose listener takes the
        // reply code later than that (`spec/handshake.md` §11): stretch it to the dial timeout,
        // and end a disconnected connection the default's time later in the engine instead.
        let failed_after = p.timeout.max(ICE_FAILED_TIMEOUT) + ICE_DISCONNECTED_TIMEOUT;
        let mut settings = SettingEngineBuilder::new()
            .with_ice_timeouts(Some(ICE_DISCONNECTED_TIMEOUT), Some(failed_after), None)
            .with_ice_connection_attempts(Some(interval), None)
            .with_srflx_acceptance_min_wait(Some(crate::REFLEXIVE_ACCEPTANCE_WAIT))
            .with_prflx_acceptance_min_wait(Some(crate::REFLEXIVE_ACCEPTANCE_WAIT))
            .with_relay_acceptance_min_wait(Some(crate::RELAY_ACCEPTANCE_WAIT));
        let local_ice = if token.profile == Profile::DialerIdentity {
            let Some(ice) = &p.keys.dialer_ice else {
                return Err(StackError::Config(
                    "dialer-identity token without listener-ice".to_owned(),
                ));
            };
            // The ICE credentials the listener chose for us; we answer its offer as DTLS client.
            settings = settings.with_answering_dtls_role(RTCDtlsRole::Client);
            (ice.ufrag().to_owned(), ice.pwd().to_owned())
        } else {
            // A random ufrag and the pwd derived from it, so a reply code need not carry the
            // pwd (`spec/token.md` §12.2).
            let ufrag = random_ufrag();
            let pwd = reply_pwd(&p.keys.reply_key, &ufrag);
            (ufrag, pwd)
        };
        settings = settings.with_ice_credentials(local_ice.0.clone(), local_ice.1.clone());
        let (pc, ctrl) = peer_connection(p.now, cert, settings.build())?;
        let mut engine = RtcEngine::new(
            pc,
            ProofRole::Dialer,
            Negotiation::Dialer {
                token: Box::new(token.clone()),
            },
            p.auth_key,
            token.fingerprint.0,
            local_fp,
            ctrl,
            p.now,
            p.events,
        );
        engine.relayed_proof = p.relayed_proof;
        engine.consent_after_disconnect = Some(ICE_FAILED_TIMEOUT - ICE_DISCONNECTED_TIMEOUT);
        engine.handshake_mut().local_ice = Some(local_ice);
        let mut locals = Vec::new();
        for local in p.locals {
            locals.push(host_candidate(*local)?);
        }
        if let Some((relayed, base)) = p.relayed {
            let candidate = CandidateRelayConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: relayed.ip().to_string(),
                    port: relayed.port(),
                    component: 1,
                    ..Default::default()
                },
                rel_addr: base.ip().to_string(),
                rel_port: base.port(),
                ..Default::default()
            }
            .new_candidate_relay()
            .map_err(rtc_error("relayed candidate"))?;
            tracing::info!(%relayed, "relayed candidate added");
            locals.push(
                RTCIceCandidate::from(&candidate)
                    .to_json()
                    .map_err(rtc_error("relayed candidate"))?,
            );
        }
        engine.start_dialer(p.now, locals)?;
        Ok(engine)
    }
}

/// A peer connection with `certificate`, `settings` and `rtc`'s default codecs, and its
/// channel 0 (negotiated, id 0), as both roles build it.
fn peer_connection(
    now: std::time::Instant,
    certificate: RTCCertificate,
    settings: rtc::peer_connection::configuration::setting_engine::SettingEngine,
) -> Result<
    (
        rtc::peer_connection::RTCPeerConnection,
        rtc::data_channel::RTCDataChannelId,
    ),
    StackError,
> {
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![certificate])
                .build(),
        )
        .with_setting_engine(settings)
        .with_media_engine(media_engine()?)
        .build(now)
        .map_err(rtc_error("peer connection"))?;
    let ctrl = pc
        .create_data_channel(CONTROL_LABEL, Some(control_channel_init()))
        .map_err(rtc_error("channel 0"))?
        .id();
    Ok((pc, ctrl))
}

/// A host candidate for `local`, as `rtc` takes it.
pub(crate) fn host_candidate(
    local: std::net::SocketAddr,
) -> Result<RTCIceCandidateInit, StackError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(rtc_error("host candidate"))?;
    RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(rtc_error("host candidate"))
}

/// `rtc`'s default ICE disconnected timeout.
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(5);
/// `rtc`'s default ICE failed timeout: a connection without consent this long is lost.
const ICE_FAILED_TIMEOUT: Duration = Duration::from_secs(25);

/// A random ICE ufrag of 8 ice-chars (48 bits, RFC 8445 §5.3 asks for at least 24).
fn random_ufrag() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}
