//! Deliberate protocol violations of the webrtc-rs engine ([`DangerousEngine`]), for the
//! misbehaving reference peer of `oneway conformance` and the refusal tests.

use oneway_core::renegotiation::SdpSummary;

/// Deliberate protocol violations of one engine, for the misbehaving reference peer of
/// `oneway conformance` (`crates/oneway-conformance`), which checks that other
/// implementations refuse them. Never set outside such runs.
#[derive(Clone, Debug, Default)]
pub struct DangerousEngine {
    /// Prove with this key instead of the token's auth key: a proof made for another token
    /// (bound to this session's certificates, so only the key is wrong).
    pub proof_key: Option<[u8; 32]>,
    /// Never send this side's proof (a listener that admits the dialer but never proves).
    pub withhold_proof: bool,
    /// Channel-0 texts sent just before this side's proof (renegotiation before the proof).
    pub before_proof: Vec<String>,
    /// Dialer: channel-0 texts sent as soon as the listener's proof verified (crafted
    /// renegotiation after authentication). In each, [`OWN_UFRAG`], [`OWN_PWD`] and
    /// [`OWN_FINGERPRINT`] are replaced by this side's ICE credentials in force and its
    /// certificate's SHA-256 (hex pairs with colons), so a crafted offer can differ from a
    /// real one in one point only.
    pub after_auth: Vec<String>,
}

/// In [`DangerousEngine::after_auth`]: this side's ICE ufrag.
pub const OWN_UFRAG: &str = "@@own-ufrag@@";
/// In [`DangerousEngine::after_auth`]: this side's ICE pwd.
pub const OWN_PWD: &str = "@@own-pwd@@";
/// In [`DangerousEngine::after_auth`]: this side's certificate fingerprint.
pub const OWN_FINGERPRINT: &str = "@@own-fingerprint@@";

impl DangerousEngine {
    /// Takes [`DangerousEngine::after_auth`], with this side's ICE credentials (from `own`, its
    /// local description) and certificate fingerprint (`local_fp`) put in.
    pub(crate) fn take_after_auth(&mut self, own: &SdpSummary, local_fp: &[u8]) -> Vec<String> {
        let fingerprint: Vec<String> = local_fp.iter().map(|b| format!("{b:02X}")).collect();
        let fingerprint = fingerprint.join(":");
        std::mem::take(&mut self.after_auth)
            .into_iter()
            .map(|text| {
                text.replace(OWN_UFRAG, own.ufrag.as_deref().unwrap_or_default())
                    .replace(OWN_PWD, own.pwd.as_deref().unwrap_or_default())
                    .replace(OWN_FINGERPRINT, &fingerprint)
            })
            .collect()
    }
}
