//! A full account of a token for people (`Display`) and machines (`serde`), as
//! `oneway inspect` prints it.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::binary::{FIXED_OVERHEAD, ext};
use crate::qr::token_qr;
use crate::sdp::{LISTENER_MID, candidate_priority, write_session};
use crate::text::TextForm;
use crate::token::{CandidateAddress, Profile, Token};

/// Everything `oneway inspect` reports about a token.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// Format version.
    pub version: u8,
    /// Profile name.
    pub profile: &'static str,
    /// The text form the token was read from (`compact`, `qr` or `binary`).
    pub read_from: &'static str,
    /// The compact text form.
    pub text: String,
    /// SHA-256 fingerprint, SDP notation.
    pub fingerprint: String,
    /// The secret, hex. Whoever holds the token holds it already.
    pub secret: String,
    /// Values derived from the secret.
    pub derived: DerivedView,
    /// Candidates in fallback order.
    pub candidates: Vec<CandidateView>,
    /// Expiry, if any.
    pub expiry: Option<ExpiryView>,
    /// Whether the listener accepts only one dialer.
    pub single_use: bool,
    /// The label, if any.
    pub label: Option<String>,
    /// SCTP parameters in force.
    pub sctp: SctpView,
    /// The listener's fast-path features (`fast`), if it announces any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast: Option<FastView>,
    /// The STUN servers the listener used (`stun`), in its order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stun: Vec<String>,
    /// Optional extensions this codec does not know.
    pub unknown_extensions: Vec<RawExtensionView>,
    /// Sizes of every form and part.
    pub size: SizeView,
    /// The remote description the token implies.
    pub sdp: SdpView,
}

/// The `fast` extension (`spec/token.md` §5.8).
#[derive(Clone, Debug, Serialize)]
pub struct FastView {
    /// The listener accepts DTLS 1.3.
    pub dtls13: bool,
    /// Size of the listener's SCTP INIT chunk for a fast start, if it offers one.
    pub fast_start_init_bytes: Option<usize>,
    /// Feature bits version 1 does not define.
    pub other_bits: u8,
}

/// Derived credentials and keys.
#[derive(Clone, Debug, Serialize)]
pub struct DerivedView {
    /// The token ufrag (what a listener demultiplexes by).
    pub token_ufrag: String,
    /// The listener's ICE ufrag as the dialer writes it.
    pub listener_ufrag: String,
    /// The listener's ICE pwd.
    pub listener_pwd: String,
    /// The in-band authentication key, hex.
    pub auth_key: String,
    /// The dialer's ICE ufrag, when the listener chose it.
    pub dialer_ufrag: Option<String>,
    /// The dialer's ICE pwd, when the listener chose it.
    pub dialer_pwd: Option<String>,
}

/// One candidate.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateView {
    /// 1-based position: the fallback order.
    pub order: usize,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// `host`, `srflx` or `relay`.
    pub kind: &'static str,
    /// `ipv4`, `ipv6` or `mdns`.
    pub family: &'static str,
    /// Address as written in SDP.
    pub address: String,
    /// Port.
    pub port: u16,
    /// ICE priority written into the SDP.
    pub priority: u32,
    /// Bytes in the binary form.
    pub bytes: usize,
    /// The port-mapping protocol that opened it (`pcp`, `natpmp`, `upnp`), from `mapped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapped_by: Option<&'static str>,
}

/// Expiry.
#[derive(Clone, Debug, Serialize)]
pub struct ExpiryView {
    /// Unix seconds.
    pub unix: u64,
    /// RFC 3339, UTC.
    pub utc: String,
    /// Seconds left at inspection time (negative once expired).
    pub seconds_left: i64,
    /// Whether it had expired at inspection time.
    pub expired: bool,
}

/// SCTP parameters.
#[derive(Clone, Debug, Serialize)]
pub struct SctpView {
    /// Port.
    pub port: u16,
    /// max-message-size.
    pub max_message_size: u32,
    /// Whether these are the defaults (no `sctp` extension).
    pub default: bool,
}

/// An unknown optional extension.
#[derive(Clone, Debug, Serialize)]
pub struct RawExtensionView {
    /// Type.
    pub ty: u8,
    /// Value, hex.
    pub value: String,
}

/// Sizes.
#[derive(Clone, Debug, Serialize)]
pub struct SizeView {
    /// Binary form, bytes.
    pub binary: usize,
    /// Compact text form (`ow1.`), characters.
    pub text: usize,
    /// QR text form (`OW1.`), characters.
    pub qr_text: usize,
    /// QR version of the bare token at level M.
    pub qr_version: Option<i16>,
    /// QR modules per side.
    pub qr_modules: Option<usize>,
    /// Bytes per part of the binary form.
    pub breakdown: Vec<SizePart>,
}

/// One part of the binary form.
#[derive(Clone, Debug, Serialize)]
pub struct SizePart {
    /// Which part.
    pub part: String,
    /// Its size in bytes.
    pub bytes: usize,
}

/// The implied remote description.
#[derive(Clone, Debug, Serialize)]
pub struct SdpView {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub sdp_type: &'static str,
    /// What the text stands for.
    pub note: &'static str,
    /// SDP text (LF line ends for display).
    pub text: String,
}

/// Placeholder shown where the dialer's own ICE pwd goes in a `native` answer.
pub const DIALER_PWD_PLACEHOLDER: &str = "<dialer-ice-pwd>";

impl Inspection {
    /// Inspects `token`, read from `form` (`None` for binary), at `now_unix_secs`.
    pub fn new(token: &Token, form: Option<TextForm>, now_unix_secs: u64) -> Self {
        let keys = token.derive();
        let text = token.to_text().unwrap_or_default();
        let qr_text = token.to_qr_text().unwrap_or_default();
        let qr = token_qr(token, None).ok();
        let (listener_ufrag, listener_pwd) = match &token.listener_ice {
            Some(ice) => (ice.ufrag().to_owned(), ice.pwd().to_owned()),
            None => (
                format!("{}+{DIALER_PWD_PLACEHOLDER}", keys.token_ufrag),
                keys.listener_pwd.clone(),
            ),
        };

        let mut breakdown = vec![
            part("version, profile", 2),
            part("fingerprint", 32),
            part("secret", 16),
            part("candidate count", 1),
        ];
        breakdown.extend(
            token
                .candidates
                .iter()
                .enumerate()
                .map(|(i, c)| part(&format!("candidate {}", i + 1), c.encoded_len())),
        );
        breakdown.push(part("extension count", 1));
        breakdown.extend(token.wire_extensions().iter().map(|(ty, value)| {
            part(
                &format!("extension {ty:#04x} {}", ext::name(*ty)),
                2 + value.len(),
            )
        }));
        breakdown.push(part("crc32", 4));
        debug_assert_eq!(
            breakdown.iter().map(|p| p.bytes).sum::<usize>(),
            token.encoded_len()
        );
        debug_assert!(FIXED_OVERHEAD <= token.encoded_len());

        let mut sdp = String::new();
        let (sdp_type, note) = if token.profile == Profile::Native {
            write_session(&mut sdp, LISTENER_MID, true);
            token.write_data_section(
                &mut sdp,
                LISTENER_MID,
                &listener_ufrag,
                &listener_pwd,
                "passive",
            );
            (
                "answer",
                "the listener's answer to a dialer offer with mid 0; the dialer puts its own ICE pwd in the ufrag",
            )
        } else {
            write_session(&mut sdp, LISTENER_MID, false);
            token.write_data_section(
                &mut sdp,
                LISTENER_MID,
                &listener_ufrag,
                &listener_pwd,
                "actpass",
            );
            ("offer", "the listener's offer, rebuilt from the token")
        };

        Inspection {
            version: crate::binary::VERSION,
            profile: token.profile.name(),
            read_from: match form {
                Some(TextForm::Compact) => "compact",
                Some(TextForm::Qr) => "qr",
                None => "binary",
            },
            fingerprint: token.fingerprint.to_sdp_hex(),
            secret: hex(&token.secret.0),
            derived: DerivedView {
                token_ufrag: keys.token_ufrag.clone(),
                listener_ufrag,
                listener_pwd,
                auth_key: hex(&keys.auth_key),
                dialer_ufrag: keys.dialer_ice.as_ref().map(|c| c.ufrag().to_owned()),
                dialer_pwd: keys.dialer_ice.as_ref().map(|c| c.pwd().to_owned()),
            },
            candidates: token
                .candidates
                .iter()
                .enumerate()
                .map(|(i, c)| CandidateView {
                    order: i + 1,
                    transport: c.transport.sdp_name(),
                    kind: c.kind.sdp_name(),
                    family: match c.address {
                        CandidateAddress::Ip(std::net::IpAddr::V4(_)) => "ipv4",
                        CandidateAddress::Ip(std::net::IpAddr::V6(_)) => "ipv6",
                        CandidateAddress::Mdns(_) => "mdns",
                    },
                    address: c.address.to_sdp_string(),
                    port: c.port,
                    priority: candidate_priority(i),
                    bytes: c.encoded_len(),
                    mapped_by: token
                        .mapped
                        .iter()
                        .find(|m| usize::from(m.index) == i)
                        .map(|m| m.protocol.name()),
                })
                .collect(),
            expiry: token.expires_at.map(|unix| ExpiryView {
                unix,
                utc: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix))
                    .to_string(),
                seconds_left: unix as i64 - now_unix_secs as i64,
                expired: token.check_expiry(now_unix_secs).is_err(),
            }),
            single_use: token.single_use,
            label: token.label.clone(),
            sctp: SctpView {
                port: token.sctp_params().port,
                max_message_size: token.sctp_params().max_message_size,
                default: token.sctp.is_none(),
            },
            fast: token.fast.as_ref().map(|fast| FastView {
                dtls13: fast.dtls13,
                fast_start_init_bytes: fast.fast_start_init.as_ref().map(Vec::len),
                other_bits: fast.other_bits,
            }),
            stun: token.stun.iter().map(ToString::to_string).collect(),
            unknown_extensions: token
                .unknown_extensions
                .iter()
                .map(|raw| RawExtensionView {
                    ty: raw.ty,
                    value: hex(&raw.value),
                })
                .collect(),
            size: SizeView {
                binary: token.encoded_len(),
                text: text.len(),
                qr_text: qr_text.len(),
                qr_version: qr.as_ref().map(|q| q.version),
                qr_modules: qr.as_ref().map(|q| q.modules),
                breakdown,
            },
            sdp: SdpView {
                sdp_type,
                note,
                text: sdp.replace("\r\n", "\n"),
            },
            text,
        }
    }
}

fn part(name: &str, bytes: usize) -> SizePart {
    SizePart {
        part: name.to_owned(),
        bytes,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "oneway token v{} · profile {} · read from {} form",
            self.version, self.profile, self.read_from
        )?;
        if let Some(label) = &self.label {
            writeln!(f, "label          {label}")?;
        }
        writeln!(f, "fingerprint    sha-256 {}", self.fingerprint)?;
        writeln!(f, "secret         {}", self.secret)?;
        match &self.expiry {
            None => writeln!(f, "expires        never")?,
            Some(e) if e.expired => writeln!(
                f,
                "expires        {} (EXPIRED {}s ago)",
                e.utc, -e.seconds_left
            )?,
            Some(e) => writeln!(f, "expires        {} (in {}s)", e.utc, e.seconds_left)?,
        }
        writeln!(
            f,
            "single use     {}",
            if self.single_use { "yes" } else { "no" }
        )?;
        writeln!(
            f,
            "sctp           port {}, max-message-size {}{}",
            self.sctp.port,
            self.sctp.max_message_size,
            if self.sctp.default { " (defaults)" } else { "" }
        )?;
        if let Some(fast) = &self.fast {
            let mut features = Vec::new();
            if fast.dtls13 {
                features.push("DTLS 1.3".to_owned());
            }
            if let Some(n) = fast.fast_start_init_bytes {
                features.push(format!(
                    "fast start (SNAP, no DCEP, early data; SCTP INIT {n} B)"
                ));
            }
            if fast.other_bits != 0 {
                features.push(format!("unknown bits {:#04x}", fast.other_bits));
            }
            writeln!(f, "fast path      {}", features.join(", "))?;
        }
        if !self.stun.is_empty() {
            writeln!(f, "stun servers   {}", self.stun.join(", "))?;
        }
        writeln!(f, "\ncandidates (fallback order)")?;
        for c in &self.candidates {
            let host = if c.family == "ipv6" {
                format!("[{}]", c.address)
            } else {
                c.address.clone()
            };
            let mapped = c
                .mapped_by
                .map(|p| format!(", opened by {p} port mapping"))
                .unwrap_or_default();
            writeln!(
                f,
                "  {:>2}. {} {:<5} {:<4} {host}:{} (priority {}{mapped})",
                c.order, c.transport, c.kind, c.family, c.port, c.priority
            )?;
        }
        writeln!(f, "\nICE credentials and keys (spec/token.md §7)")?;
        writeln!(f, "  token ufrag     {}", self.derived.token_ufrag)?;
        writeln!(f, "  listener ufrag  {}", self.derived.listener_ufrag)?;
        writeln!(f, "  listener pwd    {}", self.derived.listener_pwd)?;
        writeln!(f, "  auth key        {}", self.derived.auth_key)?;
        if let (Some(u), Some(p)) = (&self.derived.dialer_ufrag, &self.derived.dialer_pwd) {
            writeln!(f, "  dialer ufrag    {u}")?;
            writeln!(f, "  dialer pwd      {p}")?;
        }
        for raw in &self.unknown_extensions {
            writeln!(
                f,
                "unknown optional extension {:#04x}: {}",
                raw.ty, raw.value
            )?;
        }
        writeln!(f, "\nsize")?;
        writeln!(
            f,
            "  binary {} B · text {} chars · QR text {} chars{}",
            self.size.binary,
            self.size.text,
            self.size.qr_text,
            match (self.size.qr_version, self.size.qr_modules) {
                (Some(v), Some(m)) => format!(" · QR version {v} ({m}×{m} modules, level M)"),
                _ => String::new(),
            }
        )?;
        for p in &self.size.breakdown {
            writeln!(f, "  {:>4} B  {}", p.bytes, p.part)?;
        }
        writeln!(
            f,
            "\nremote description ({}: {})",
            self.sdp.sdp_type, self.sdp.note
        )?;
        for line in self.sdp.text.lines() {
            writeln!(f, "  {line}")?;
        }
        write!(f, "\ntext  {}", self.text)
    }
}
