//! The catalogue: every check, the role of the implementation it tests, the spec section it
//! cites and its requirement level. The order here is the order of the report.

use oneway_scenario::model::Role;
use serde::{Deserialize, Serialize};

/// RFC 2119 requirement level of the spec sentence a check tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// A failure makes the implementation non-conformant.
    Must,
    /// A failure is reported, but the implementation can still be conformant.
    Should,
}

impl Level {
    /// `MUST` or `SHOULD`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        }
    }
}

/// One check of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stable id (`listener-refuses-wrong-secret`, …), used by `--check`.
    pub id: &'static str,
    /// The role the implementation under test plays.
    pub role: Role,
    /// What is checked, in one line.
    pub title: &'static str,
    /// The spec sections it cites.
    pub spec: &'static str,
    /// Requirement level.
    pub level: Level,
}

/// Every check, in report order: the implementation as listener, then as dialer.
pub const CHECKS: &[Check] = &[
    Check {
        id: "listener-refuses-wrong-secret",
        role: Role::Listen,
        title: "refuses a dialer with the wrong secret (no answer, no connection)",
        spec: "handshake.md §4.3 step 3, token.md §7",
        level: Level::Must,
    },
    Check {
        id: "listener-refuses-wrong-proof",
        role: Role::Listen,
        title: "refuses a dialer with valid ICE but a wrong proof, with `auth-failed` on channel 0",
        spec: "handshake.md §5.2 step 2, §5.3",
        level: Level::Must,
    },
    Check {
        id: "listener-reports-refusals",
        role: Role::Listen,
        title: "reports a refused dialer as a `refused` event with its cause code",
        spec: "handshake.md §7 (last paragraph), peer-contract.md §2",
        level: Level::Should,
    },
    Check {
        id: "listener-refuses-replayed-single-use-token",
        role: Role::Listen,
        title: "refuses a second dialer of a single-use token",
        spec: "handshake.md §7 (single use), token.md §5.4",
        level: Level::Must,
    },
    Check {
        id: "listener-refuses-expired-token",
        role: Role::Listen,
        title: "refuses a dialer of a token past its expiry",
        spec: "token.md §5.1, handshake.md §7 (expiry)",
        level: Level::Must,
    },
    Check {
        id: "listener-ignores-foreign-ufrag",
        role: Role::Listen,
        title: "never answers checks with another token's ufrag (integrity keyed with its own pwd)",
        spec: "handshake.md §4.3 step 3.2",
        level: Level::Must,
    },
    Check {
        id: "listener-no-state-after-vanished-dialer",
        role: Role::Listen,
        title: "a dialer that vanishes mid-handshake leaves no state: a later dial connects",
        spec: "handshake.md §4.3, §5.3 (proof-timeout), §7 (limits)",
        level: Level::Must,
    },
    Check {
        id: "listener-serves-during-garbage",
        role: Role::Listen,
        title: "garbage and oversized datagrams do not stop service to a good dialer",
        spec: "handshake.md §4.3 steps 3.1 and 4, security.md §4",
        level: Level::Must,
    },
    Check {
        id: "listener-refuses-renegotiation-before-proof",
        role: Role::Listen,
        title: "refuses `ice-restart`/`offer` sent before the proof, with `auth-failed`",
        spec: "handshake.md §5.3, §6",
        level: Level::Must,
    },
    Check {
        id: "dialer-refuses-wrong-fingerprint",
        role: Role::Dial,
        title: "refuses a listener whose certificate is not the token's fingerprint",
        spec: "handshake.md §3 step 4, §5.3, §8 (fingerprint-mismatch)",
        level: Level::Must,
    },
    Check {
        id: "dialer-refuses-listener-without-proof",
        role: Role::Dial,
        title: "refuses a listener that never proves (`auth-timeout`)",
        spec: "handshake.md §3 step 8, §5.2 step 3, §8",
        level: Level::Must,
    },
    Check {
        id: "dialer-refuses-proof-for-another-token",
        role: Role::Dial,
        title: "refuses a listener proof made for another token (`auth-failed`)",
        spec: "handshake.md §5.2 step 3, §5.3",
        level: Level::Must,
    },
    Check {
        id: "dialer-refuses-expired-token",
        role: Role::Dial,
        title: "refuses an expired token with `expired`, exit 2, before sending anything",
        spec: "token.md §5.1, §8 step 5, handshake.md §3 step 1, peer-contract.md §3",
        level: Level::Must,
    },
    Check {
        id: "dialer-names-malformed-token",
        role: Role::Dial,
        title: "refuses a malformed token with the named error of token.md §8, exit 2",
        spec: "token.md §8, peer-contract.md §1, §3",
        level: Level::Must,
    },
    Check {
        id: "dialer-falls-back-in-token-order",
        role: Role::Dial,
        title: "falls back past a dead first candidate, trying candidates in token order",
        spec: "handshake.md §3 step 5, §4.1, peer-contract.md §2 (candidate-tried)",
        level: Level::Must,
    },
    Check {
        id: "dialer-reports-refusal-cause",
        role: Role::Dial,
        title: "reports `refused` with the cause code the listener sent (`accept-queue-full`)",
        spec: "handshake.md §5.2 step 3, §8, peer-contract.md §1",
        level: Level::Must,
    },
];

/// The check with this id.
pub fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}
