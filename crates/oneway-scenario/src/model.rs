//! The declarative model: implementation manifests (`impls/*.toml`) and scenario files
//! (`scenarios/*.toml`). Pure data plus parsing and validation; nothing here touches Docker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// A role a peer plays in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Issues the token and accepts dialers.
    Listen,
    /// Connects with the token alone.
    Dial,
}

/// How an implementation is started, read from `impls/<id>.toml`.
///
/// Commands are argument vectors; `{name}` placeholders are filled by the runner
/// (see [`Placeholders`](crate::plan::Placeholders)). Every implementation prints the
/// JSON event lines of `spec/peer-contract.md` on standard output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImplManifest {
    /// Short stable name used in cell names and `--filter` (`str0m`, `webrtc-rs`, …).
    pub id: String,
    /// Human name for reports.
    #[serde(default)]
    pub name: String,
    /// Roles it supports.
    pub roles: Vec<Role>,
    /// Where the peer process runs: `"base"` runs it inside the suite's own image (the host's
    /// `oneway` binary is `/usr/local/bin/oneway`); `"browser"` likewise, in the suite's image
    /// with Debian's Chromium and chromedriver added (built only when a selected
    /// implementation asks for it); any other value names a locally built image that is
    /// started with the host container's network namespace.
    #[serde(default = "default_image")]
    pub image: String,
    /// Optional features beyond the contract, from [`CAPABILITIES`] (`mdns`, `ipv6`, `turn`,
    /// `portmap`, `reply`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Per-cell timeout in seconds for this implementation's dialer.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Seconds the peer may need to start before its attempt begins (a browser's launch):
    /// added to the runner's wait for the listener's token and for the dialer's exit. The
    /// peer's own `t_ms` starts after it (at token decode), so it is not in reported times.
    #[serde(default)]
    pub startup_secs: u64,
    /// Left out of the matrix unless named with `oneway suite --impl` (an implementation whose
    /// image is costly to build, like the browser's).
    #[serde(default)]
    pub opt_in: bool,
    /// The profile of the tokens its listener issues (`native`, `dialer-identity`, `reply`).
    #[serde(default = "default_listen_profile")]
    pub listen_profile: String,
    /// The token profiles its dialer connects with, from the token alone.
    #[serde(default = "default_dial_profiles")]
    pub dial_profiles: Vec<String>,
    /// For a dialer that answers `listen_profile` tokens with a reply code (the `reply`
    /// capability, e.g. a browser dialer), the listener issues a `reply` token instead, with
    /// its `[listen.options]` option [`REPLY_TOKEN_OPTION`]: for a listener that cannot take
    /// a reply code for its `dialer-identity` token (Firefox cannot replace the dialer
    /// identity it chose, `spec/handshake.md` §10.2). See [`ImplManifest::uses_reply_token`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply_token_for_reply_dialers: bool,
    /// Listener command.
    #[serde(default)]
    pub listen: Option<Command>,
    /// Dialer command.
    #[serde(default)]
    pub dial: Option<Command>,
}

fn default_image() -> String {
    "base".to_owned()
}

fn default_timeout() -> u64 {
    15
}

fn default_listen_profile() -> String {
    "native".to_owned()
}

fn default_dial_profiles() -> Vec<String> {
    vec!["native".to_owned(), "dialer-identity".to_owned()]
}

/// The implementations a run uses: those named in `selected` (every id must exist), or, when
/// it is empty, every implementation that is not `opt_in`.
pub fn select_impls(
    impls: Vec<ImplManifest>,
    selected: &[String],
) -> Result<Vec<ImplManifest>, Error> {
    if selected.is_empty() {
        return Ok(impls.into_iter().filter(|i| !i.opt_in).collect());
    }
    if let Some(unknown) = selected.iter().find(|s| !impls.iter().any(|i| &i.id == *s)) {
        return Err(Error::Invalid {
            file: "--impl".to_owned(),
            message: format!(
                "no implementation {unknown:?} (known: {})",
                impls
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(impls
        .into_iter()
        .filter(|i| selected.contains(&i.id))
        .collect())
}

/// The `[listen.options]` key whose arguments make a listener issue a `reply` token (used
/// with [`ImplManifest::reply_token_for_reply_dialers`]).
pub const REPLY_TOKEN_OPTION: &str = "reply_token";

/// Token profiles (`spec/token.md`).
const PROFILES: &[&str] = &["native", "dialer-identity", "reply"];

/// The capabilities a manifest may declare (`docs/implementers.md` §2):
/// - `mdns`: the listener publishes `.local` names with its `mdns` option, the dialer resolves
///   them;
/// - `ipv6`: IPv6 host candidates;
/// - `turn`: the dialer allocates a relay with its `turn` option;
/// - `portmap`: the listener asks its router for a port mapping;
/// - `reply`: the dialer prints `reply-code` events (`spec/peer-contract.md` §2.1). A
///   listener takes reply codes when its `[listen]` has a `reply` hand-over, not through this
///   list (see [`ImplManifest::has`]);
/// - `media`: with its `media` option (`[listen.options]` and `[dial.options]`, [`MEDIA`]) each
///   role adds an audio track sending a tone of `{tone_hz}` Hz and a video track, and prints
///   `media` events for what the other side sends (`crate::media`).
pub const CAPABILITIES: &[&str] = &["mdns", "ipv6", "turn", "portmap", "reply", "media"];

/// The capability, and the option key in `[listen.options]` and `[dial.options]`, of a peer
/// that sends and checks test media (see [`CAPABILITIES`]).
pub const MEDIA: &str = "media";

/// The capability of a dialer that prints reply codes, and of a listener that takes them.
pub const REPLY: &str = "reply";

/// How a listener takes a reply code from the runner (`reply` in `[listen]`), which then plays
/// the out-of-band channel: the dialer's `reply-code` event is handed over at once.
///
/// In TOML: `reply = "stdin"` or `reply = ["argv", "with", "{reply}"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReplyToml", into = "ReplyToml")]
pub enum ReplyHandOver {
    /// The runner writes the code and `"\n"` to the listener process's standard input (kept
    /// open for the whole run).
    Stdin,
    /// The runner runs this argument vector in the listener's container (on the host for a
    /// loopback cell), with `{reply}` replaced by the code, and records its exit status.
    Command(Vec<String>),
}

impl ReplyHandOver {
    /// Stable name for records: `stdin` or `command`.
    pub fn name(&self) -> &'static str {
        match self {
            ReplyHandOver::Stdin => "stdin",
            ReplyHandOver::Command(_) => "command",
        }
    }
}

/// The TOML shapes of [`ReplyHandOver`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum ReplyToml {
    Word(String),
    Argv(Vec<String>),
}

impl TryFrom<ReplyToml> for ReplyHandOver {
    type Error = String;

    fn try_from(t: ReplyToml) -> Result<Self, String> {
        match t {
            ReplyToml::Word(w) if w == "stdin" => Ok(ReplyHandOver::Stdin),
            ReplyToml::Word(w) => Err(format!(
                "reply = {w:?}: expected \"stdin\" or an argv array containing {{reply}}"
            )),
            ReplyToml::Argv(argv) if argv.is_empty() => {
                Err("reply = []: the argv template is empty".to_owned())
            }
            ReplyToml::Argv(argv) if !argv.iter().any(|a| a.contains("{reply}")) => Err(format!(
                "reply = {argv:?}: the argv template must pass {{reply}}"
            )),
            ReplyToml::Argv(argv) => Ok(ReplyHandOver::Command(argv)),
        }
    }
}

impl From<ReplyHandOver> for ReplyToml {
    fn from(r: ReplyHandOver) -> ReplyToml {
        match r {
            ReplyHandOver::Stdin => ReplyToml::Word("stdin".to_owned()),
            ReplyHandOver::Command(argv) => ReplyToml::Argv(argv),
        }
    }
}

/// One command of a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Argument vector with `{placeholders}`.
    pub argv: Vec<String>,
    /// Extra arguments appended when the scenario asks for an option (`listener_options` for
    /// `[listen.options]`, `dialer_options` for `[dial.options]`), keyed by option (`stun`,
    /// `mdns`, `turn`).
    #[serde(default)]
    pub options: BTreeMap<String, Vec<String>>,
    /// Environment variables (`NAME = "value"`, placeholders allowed).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `[listen]` only: how the listener takes a dialer's reply code (see [`ReplyHandOver`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyHandOver>,
}

impl ImplManifest {
    /// Parses one manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, Error> {
        let manifest: ImplManifest = toml::from_str(text).map_err(|e| Error::Parse {
            file: origin.to_owned(),
            message: e.to_string(),
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    fn validate(&self, origin: &str) -> Result<(), Error> {
        let invalid = |message: String| Error::Invalid {
            file: origin.to_owned(),
            message,
        };
        if !valid_id(&self.id) {
            return Err(invalid(format!(
                "id {:?} must be lowercase letters, digits and '-'",
                self.id
            )));
        }
        if self.roles.is_empty() {
            return Err(invalid("roles is empty".into()));
        }
        for role in &self.roles {
            let command = match role {
                Role::Listen => &self.listen,
                Role::Dial => &self.dial,
            };
            match command {
                None => {
                    return Err(invalid(format!(
                        "role {role:?} is listed but [{}] is missing",
                        role_key(*role)
                    )));
                }
                Some(c) if c.argv.is_empty() => {
                    return Err(invalid(format!("[{}] argv is empty", role_key(*role))));
                }
                Some(_) => {}
            }
        }
        if let Some(dial) = &self.dial
            && !dial.argv.iter().any(|a| a.contains("{token}"))
            && !dial.env.values().any(|v| v.contains("{token}"))
        {
            return Err(invalid(
                "[dial] must pass {token} in argv or env".to_owned(),
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return Err(invalid("timeout_secs must be 1..=600".into()));
        }
        if self.startup_secs > 120 {
            return Err(invalid("startup_secs must be 0..=120".into()));
        }
        if self.dial.as_ref().is_some_and(|d| d.reply.is_some()) {
            return Err(invalid(
                "`reply` belongs in [listen] (how the listener takes a reply code); a dialer that prints reply codes declares the capability \"reply\"".to_owned(),
            ));
        }
        for c in &self.capabilities {
            if !CAPABILITIES.contains(&c.as_str()) {
                return Err(invalid(format!(
                    "unknown capability {c:?} (one of {})",
                    CAPABILITIES.join(", ")
                )));
            }
        }
        if self.has_capability(MEDIA) {
            for role in &self.roles {
                let command = match role {
                    Role::Listen => &self.listen,
                    Role::Dial => &self.dial,
                };
                if !command
                    .as_ref()
                    .is_some_and(|c| c.options.contains_key(MEDIA))
                {
                    return Err(invalid(format!(
                        "capability \"media\" needs the option `media` in [{}.options] (the arguments that add the test tracks, with {{tone_hz}}; may be empty for a listener that sends by answering)",
                        role_key(*role)
                    )));
                }
            }
        }
        if self.has_capability(REPLY) && !self.supports(Role::Dial) {
            return Err(invalid(
                "capability \"reply\" is a dialer's (it prints reply-code events), but roles has no \"dial\"; a listener takes reply codes with `reply` in [listen]".to_owned(),
            ));
        }
        for p in std::iter::once(&self.listen_profile).chain(&self.dial_profiles) {
            if !PROFILES.contains(&p.as_str()) {
                return Err(invalid(format!(
                    "unknown token profile {p:?} (one of {})",
                    PROFILES.join(", ")
                )));
            }
        }
        if self.reply_token_for_reply_dialers {
            let has_option = self
                .listen
                .as_ref()
                .is_some_and(|l| l.options.contains_key(REPLY_TOKEN_OPTION));
            if !has_option {
                return Err(invalid(format!(
                    "reply_token_for_reply_dialers needs the listener option `{REPLY_TOKEN_OPTION}` in [listen.options] (the arguments that make it issue a reply token)"
                )));
            }
            if self.reply_hand_over().is_none() {
                return Err(invalid(
                    "reply_token_for_reply_dialers needs `reply` in [listen] (a reply token is answered with a reply code only)".to_owned(),
                ));
            }
            if self.listen_profile == REPLY {
                return Err(invalid(
                    "reply_token_for_reply_dialers is for a listener whose listen_profile is not already \"reply\"".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Whether this listener issues a `reply` token (its [`REPLY_TOKEN_OPTION`] option) to
    /// `dialer` instead of a `listen_profile` one: it says so
    /// (`reply_token_for_reply_dialers`), and `dialer` does not dial `listen_profile` tokens
    /// one-way but answers them with a reply code, which this listener takes.
    pub fn uses_reply_token(&self, dialer: &ImplManifest) -> bool {
        self.reply_token_for_reply_dialers
            && dialer.needs_reply(self)
            && dialer.has(REPLY, Role::Dial)
            && self.has(REPLY, Role::Listen)
    }

    /// The profile of the token this listener issues in a cell with `dialer`.
    pub fn token_profile_for(&self, dialer: &ImplManifest) -> &str {
        if self.uses_reply_token(dialer) {
            REPLY
        } else {
            &self.listen_profile
        }
    }

    /// Whether the manifest declares this role.
    pub fn supports(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether its dialer needs the reply path for `listener`'s tokens: their profile is not
    /// one it dials one-way (it answers them with a reply code).
    pub fn needs_reply(&self, listener: &ImplManifest) -> bool {
        !self.dial_profiles.contains(&listener.listen_profile)
    }

    /// Why its dialer cannot connect to `listener`'s tokens in the suite, when it cannot: the
    /// profile is not one it dials one-way, and the reply code it would answer with has no way
    /// back (the dialer lacks the `reply` capability or the listener a `reply` hand-over).
    pub fn cannot_dial(&self, listener: &ImplManifest) -> Option<String> {
        if !self.needs_reply(listener)
            || (self.has(REPLY, Role::Dial) && listener.has(REPLY, Role::Listen))
        {
            return None;
        }
        let why = match (
            self.has(REPLY, Role::Dial),
            listener.has(REPLY, Role::Listen),
        ) {
            (false, false) => format!(
                "; it would answer with a reply code, but {} prints none (no `reply` capability) and {}'s listener takes none (no `reply` in [listen])",
                self.id, listener.id
            ),
            (false, _) => format!(
                "; it would answer with a reply code, but {} prints none (no `reply` capability)",
                self.id
            ),
            _ => format!(
                "; its reply code needs a reply channel back to the listener, and {}'s manifest has no `reply` in [listen]",
                listener.id
            ),
        };
        Some(format!(
            "{}'s listener issues {} tokens; {}'s dialer dials {} tokens only{why}",
            listener.id,
            listener.listen_profile,
            self.id,
            self.dial_profiles.join(" and ")
        ))
    }

    /// Whether the manifest declares this capability (the `capabilities` list).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether it has `capability` in `role`: the `capabilities` list, except `reply` for a
    /// listener, which is a `reply` hand-over in `[listen]`.
    pub fn has(&self, capability: &str, role: Role) -> bool {
        match (capability, role) {
            (REPLY, Role::Listen) => self.reply_hand_over().is_some(),
            _ => self.has_capability(capability),
        }
    }

    /// How its listener takes a reply code, when it does.
    pub fn reply_hand_over(&self) -> Option<&ReplyHandOver> {
        self.listen.as_ref().and_then(|l| l.reply.as_ref())
    }
}

fn role_key(role: Role) -> &'static str {
    match role {
        Role::Listen => "listen",
        Role::Dial => "dial",
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// RFC 4787 mapping behaviour of a NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// Endpoint-independent mapping (EIM): one external port per internal socket.
    EndpointIndependent,
    /// Address-dependent mapping (ADM): one external port per internal socket and remote
    /// address (any remote port of that address shares it).
    AddressDependent,
    /// Address-and-port-dependent mapping (APDM): a new external port per destination.
    AddressAndPortDependent,
}

impl Mapping {
    /// Stable name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::AddressDependent => "address-dependent",
            Mapping::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// RFC 4787 filtering behaviour of a NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Endpoint-independent filtering (EIF): anyone may send to a mapping.
    EndpointIndependent,
    /// Address-dependent filtering (ADF): only addresses the inside host sent to.
    AddressDependent,
    /// Address-and-port-dependent filtering (APDF): only exact remote `ip:port`s.
    AddressAndPortDependent,
}

impl Filtering {
    /// Stable name used in cause codes.
    pub fn name(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "endpoint-independent",
            Filtering::AddressDependent => "address-dependent",
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// A port-mapping protocol a router can offer (its miniupnpd answers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PortmapProtocol {
    /// PCP (RFC 6887), UDP 5351.
    Pcp,
    /// NAT-PMP (RFC 6886), UDP 5351.
    Natpmp,
    /// UPnP-IGD (SSDP on UDP 1900, then SOAP over HTTP).
    Upnp,
}

impl PortmapProtocol {
    /// Stable name, as in scenario files and the listener's `--portmap`.
    pub fn name(self) -> &'static str {
        match self {
            PortmapProtocol::Pcp => "pcp",
            PortmapProtocol::Natpmp => "natpmp",
            PortmapProtocol::Upnp => "upnp",
        }
    }
}

/// The port-mapping protocols a router offers (any subset; empty: the router runs no
/// miniupnpd). Written in scenario files as a list, `portmap = ["pcp", "upnp"]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<PortmapProtocol>", into = "Vec<PortmapProtocol>")]
pub struct Portmap {
    /// PCP.
    pub pcp: bool,
    /// NAT-PMP.
    pub natpmp: bool,
    /// UPnP-IGD.
    pub upnp: bool,
}

impl Portmap {
    /// No protocol: the router runs no miniupnpd.
    pub fn is_empty(&self) -> bool {
        !(self.pcp || self.natpmp || self.upnp)
    }

    /// The protocols offered, in the order a client tries them (PCP, NAT-PMP, UPnP-IGD).
    pub fn protocols(&self) -> Vec<PortmapProtocol> {
        Vec::from(*self)
    }

    /// `pcp+upnp`-style short name for reports.
    pub fn describe(&self) -> String {
        self.protocols()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("+")
    }
}

impl From<Vec<PortmapProtocol>> for Portmap {
    fn from(list: Vec<PortmapProtocol>) -> Portmap {
        Portmap {
            pcp: list.contains(&PortmapProtocol::Pcp),
            natpmp: list.contains(&PortmapProtocol::Natpmp),
            upnp: list.contains(&PortmapProtocol::Upnp),
        }
    }
}

impl From<Portmap> for Vec<PortmapProtocol> {
    fn from(p: Portmap) -> Vec<PortmapProtocol> {
        [
            (p.pcp, PortmapProtocol::Pcp),
            (p.natpmp, PortmapProtocol::Natpmp),
            (p.upnp, PortmapProtocol::Upnp),
        ]
        .into_iter()
        .filter_map(|(on, proto)| on.then_some(proto))
        .collect()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A NAT's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    /// Mapping behaviour.
    pub mapping: Mapping,
    /// Filtering behaviour.
    pub filtering: Filtering,
    /// Whether packets from inside to the NAT's own public address are looped back.
    #[serde(default)]
    pub hairpin: bool,
    /// Port-mapping protocols the router offers (miniupnpd on the router; the suite's WAN then
    /// uses a prefix miniupnpd does not count as reserved, see [`crate::topology`]).
    #[serde(default, skip_serializing_if = "Portmap::is_empty")]
    pub portmap: Portmap,
    /// The router answers but refuses every mapping (a deny-all permission rule).
    #[serde(default, skip_serializing_if = "is_false")]
    pub portmap_refuse: bool,
}

impl Nat {
    /// The common name of this behaviour (`full-cone`, `port-restricted`, …).
    pub fn common_name(&self) -> &'static str {
        match (self.mapping, self.filtering) {
            (Mapping::EndpointIndependent, Filtering::EndpointIndependent) => "full-cone",
            (Mapping::EndpointIndependent, Filtering::AddressDependent) => "restricted-cone",
            (Mapping::EndpointIndependent, Filtering::AddressAndPortDependent) => {
                "port-restricted-cone"
            }
            (Mapping::AddressDependent, _) => "address-dependent-mapping",
            (Mapping::AddressAndPortDependent, _) => "symmetric",
        }
    }

    /// Whether the routers model this combination: filtering at least as strict as the
    /// mapping (EIM with any filtering; ADM with address- or address-and-port-dependent
    /// filtering; APDM with address-and-port-dependent filtering).
    pub fn is_modelled(&self) -> bool {
        match self.mapping {
            Mapping::EndpointIndependent => true,
            Mapping::AddressDependent => self.filtering != Filtering::EndpointIndependent,
            Mapping::AddressAndPortDependent => {
                self.filtering == Filtering::AddressAndPortDependent
            }
        }
    }
}

/// What stands between a site (the listener's or the dialer's) and the WAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Edge {
    /// Directly on the public WAN segment.
    Public,
    /// Behind a NAT router.
    Nat {
        /// Its behaviour.
        #[serde(flatten)]
        nat: Nat,
    },
    /// Behind a home NAT that is itself behind a carrier-grade NAT (both EIM/APDF).
    DoubleNat {
        /// Port-mapping protocols the home router offers (its WAN address is then in the
        /// carrier-grade space, 100.64.0.0/10).
        #[serde(default, skip_serializing_if = "Portmap::is_empty")]
        portmap: Portmap,
    },
    /// Routed public addresses behind a stateful firewall that drops unsolicited inbound.
    Firewall {
        /// IPv6: the LAN, the WAN and the firewall route IPv6 (the peer behind it has IPv6
        /// only); otherwise IPv4.
        #[serde(default, skip_serializing_if = "is_false")]
        ipv6: bool,
        /// Port-mapping protocols the firewall offers (PCP opens pinholes).
        #[serde(default, skip_serializing_if = "Portmap::is_empty")]
        portmap: Portmap,
    },
    /// A router that drops all UDP (TCP may pass, e.g. to a TURN server).
    UdpBlocked,
}

impl Edge {
    /// Short description for reports.
    pub fn describe(&self) -> String {
        let base = match self {
            Edge::Public => "public".into(),
            Edge::Nat { nat } => format!(
                "{} NAT{}",
                nat.common_name(),
                if nat.hairpin { " (hairpin)" } else { "" }
            ),
            Edge::DoubleNat { .. } => "double NAT (CGNAT)".into(),
            Edge::Firewall { ipv6: false, .. } => "no-inbound firewall".into(),
            Edge::Firewall { ipv6: true, .. } => "IPv6 no-inbound firewall".into(),
            Edge::UdpBlocked => "UDP blocked".into(),
        };
        let portmap = self.portmap();
        if portmap.is_empty() {
            base
        } else {
            format!(
                "{base} with {}{}",
                portmap.describe(),
                if self.portmap_refuse() {
                    " (refusing)"
                } else {
                    ""
                }
            )
        }
    }

    /// The port-mapping protocols its router offers (empty for none).
    pub fn portmap(&self) -> Portmap {
        match self {
            Edge::Nat { nat } => nat.portmap,
            Edge::DoubleNat { portmap } | Edge::Firewall { portmap, .. } => *portmap,
            Edge::Public | Edge::UdpBlocked => Portmap::default(),
        }
    }

    /// Whether its router refuses every mapping.
    pub fn portmap_refuse(&self) -> bool {
        matches!(self, Edge::Nat { nat } if nat.portmap_refuse)
    }
}

/// Address families of a LAN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// IPv4 only.
    #[default]
    Ipv4,
    /// IPv6 only (IPv4 addresses are removed from the peers' interfaces).
    Ipv6,
    /// Both.
    DualStack,
}

/// What is done to the token's first candidate, to exercise the fallback order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirstCandidate {
    /// Packets to it are dropped silently.
    BlackHoled,
    /// Packets to it are answered with ICMP port unreachable.
    Rejected,
    /// It sits on a LAN the dialer is not on and has no route to (the dialer's address on that
    /// LAN is removed before it dials; sending fails locally).
    WrongLan,
}

/// The network a scenario builds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Topology {
    /// Both peers on one LAN segment (no router).
    SameLan {
        /// Address families.
        #[serde(default)]
        family: Family,
        /// No router and no default route at all; the listener advertises mDNS names.
        #[serde(default)]
        offline: bool,
        /// Impair the first candidate (the listener then has two interfaces).
        #[serde(default)]
        first_candidate: Option<FirstCandidate>,
    },
    /// Each peer at its own site, sites joined by the public WAN.
    Sites {
        /// The listener's edge.
        listener: Edge,
        /// The dialer's edge.
        dialer: Edge,
    },
    /// Both peers behind one NAT router, on two isolated inside LANs: the only path is the
    /// router's public address (hairpinning).
    Hairpin {
        /// Whether the router hairpins.
        hairpin: bool,
    },
}

/// Delay and loss on the dialer's access link.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// Added round-trip time in milliseconds (half on each direction).
    pub rtt_ms: u32,
    /// Loss per direction, percent.
    #[serde(default)]
    pub loss_percent: f64,
    /// Jitter per direction in milliseconds.
    #[serde(default)]
    pub jitter_ms: u32,
}

/// What a cell is expected to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// `pass` or `fail`.
    pub verdict: ExpectedVerdict,
    /// For `fail`: the dialer's cause code it must fail with (`ice-timeout`, …).
    #[serde(default)]
    pub cause: Option<String>,
    /// For `pass`: the candidate type the dialer must reach the listener by (`host`, `srflx`,
    /// `relay`, or `mapped`: the listener's port mapping, whatever type the token gives it);
    /// another type is a deviation.
    #[serde(default)]
    pub path: Option<String>,
    /// For `pass`: the route the connection must come up by, `one-way` (the dialer's checks
    /// reached a candidate of the token) or `reply` (after the runner handed the dialer's
    /// reply code to the listener, which punched towards it); another route is a deviation. A
    /// pass without it expects `one-way` once resolved for a pair
    /// ([`Scenario::expectation_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Why; shown in the report's "why" column.
    pub reason: String,
}

/// The routes a connection can come up by (`spec/peer-contract.md` §2.2, `route`).
pub const ROUTES: &[&str] = &["one-way", "reply"];

/// Expected outcome kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedVerdict {
    /// Connects and echoes.
    Pass,
    /// Fails (for the expected cause).
    Fail,
}

/// Which peer of a pair a capability is asked of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapabilitySide {
    /// Both peers need it: the override applies when either lacks it.
    #[default]
    Either,
    /// Only the dialer needs it (e.g. a TURN client on the dialer's side).
    Dialer,
    /// Only the listener needs it.
    Listener,
}

/// An expectation that applies when a capability is missing on the dialer or listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityExpectation {
    /// The capability.
    pub capability: String,
    /// Which peer must have it (default: either lacking it applies the override).
    #[serde(default)]
    pub side: CapabilitySide,
    /// The override applies only when the pair **has** each of these capabilities (each on the
    /// side that uses it: `reply` needs both the dialer's capability and the listener's
    /// hand-over), e.g. a listener without `portmap` that a `reply` pair still reaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub having: Vec<String>,
    /// The expectation when either peer lacks it.
    #[serde(flatten)]
    pub expect: Expectation,
}

/// One scenario file (`scenarios/*.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable name (defaults to the file stem).
    #[serde(default)]
    pub name: String,
    /// One line for the report.
    pub description: String,
    /// The network.
    pub topology: Topology,
    /// Impairment of the dialer's access link.
    #[serde(default)]
    pub impairment: Option<Impairment>,
    /// Listener options to ask for (`stun`, `mdns`, `turn`), mapped through each manifest.
    #[serde(default)]
    pub listener_options: Vec<String>,
    /// Listener options passed when the listener's manifest maps them and left out otherwise
    /// (the cell still runs): `stun_alt`, the STUN server's second address for RFC 5780
    /// filtering discovery, which sharpens the listener's reachability prediction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listener_options_if_mapped: Vec<String>,
    /// Dialer options to ask for (`turn`), mapped through each manifest's `[dial.options]`. A
    /// dialer whose manifest does not map one runs without it (pair it with an `[[unless]]`
    /// on the matching capability).
    #[serde(default)]
    pub dialer_options: Vec<String>,
    /// Implementation pairs as `"dialer x listener"`, or `["*"]` for every pair.
    #[serde(default = "all_pairs")]
    pub pairs: Vec<String>,
    /// The expectation for every cell.
    pub expect: Expectation,
    /// Overrides when a peer lacks a capability.
    #[serde(default)]
    pub unless: Vec<CapabilityExpectation>,
    /// Dialer timeout in seconds (overrides the manifest's).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Default repeat count (`--repeat` overrides).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Part of the small CI set (`--set ci`).
    #[serde(default)]
    pub ci: bool,
    /// Runs without Docker, in-process on loopback.
    #[serde(default)]
    pub loopback: bool,
    /// Judge the media path too (`crate::media`): a pair whose manifests both have the
    /// `media` capability runs with each side's `media` option, and passes only when data,
    /// audio and video all pass. Other pairs are judged on data alone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub media: bool,
}

fn all_pairs() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Scenario {
    /// Parses one scenario file; `name` is used when the file has none.
    pub fn parse(text: &str, name: &str) -> Result<Self, Error> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| Error::Parse {
            file: name.to_owned(),
            message: e.to_string(),
        })?;
        if scenario.name.is_empty() {
            scenario.name = name.to_owned();
        }
        scenario.validate(name)?;
        Ok(scenario)
    }

    fn validate(&self, origin: &str) -> Result<(), Error> {
        let invalid = |message: String| Error::Invalid {
            file: origin.to_owned(),
            message,
        };
        if !valid_id(&self.name) {
            return Err(invalid(format!("name {:?} is not a valid id", self.name)));
        }
        for e in std::iter::once(&self.expect).chain(self.unless.iter().map(|u| &u.expect)) {
            if e.verdict == ExpectedVerdict::Fail && e.cause.is_none() {
                return Err(invalid("an expected failure needs a cause code".into()));
            }
            if e.reason.trim().is_empty() {
                return Err(invalid("every expectation needs a reason".into()));
            }
            if let Some(p) = &e.path
                && !["host", "srflx", "prflx", "relay", "mapped"].contains(&p.as_str())
            {
                return Err(invalid(format!("unknown path type {p:?}")));
            }
            if let Some(r) = &e.route {
                if !ROUTES.contains(&r.as_str()) {
                    return Err(invalid(format!(
                        "unknown route {r:?} (one of {})",
                        ROUTES.join(", ")
                    )));
                }
                if e.verdict == ExpectedVerdict::Fail {
                    return Err(invalid(
                        "a route is expected of a pass only (a failure has none)".into(),
                    ));
                }
            }
        }
        for u in &self.unless {
            for c in std::iter::once(&u.capability).chain(&u.having) {
                if !CAPABILITIES.contains(&c.as_str()) {
                    return Err(invalid(format!(
                        "[[unless]] names unknown capability {c:?} (one of {})",
                        CAPABILITIES.join(", ")
                    )));
                }
            }
        }
        for p in &self.pairs {
            if p != "*" && p.split_once(" x ").is_none() {
                return Err(invalid(format!(
                    "pair {p:?} must be \"*\" or \"<dialer> x <listener>\""
                )));
            }
        }
        if let Topology::Sites { listener, dialer } = &self.topology {
            if !dialer.portmap().is_empty() || dialer.portmap_refuse() {
                return Err(invalid(
                    "portmap is modelled on the listener's router only".into(),
                ));
            }
            if listener.portmap_refuse()
                && listener.portmap() != Portmap::from(vec![PortmapProtocol::Upnp])
            {
                return Err(invalid(
                    "portmap_refuse needs portmap = [\"upnp\"]: with a deny-all rule miniupnpd 2.3.1 answers UPnP at once (606) but walks every external port before answering PCP or NAT-PMP (no answer within 30 s)".into(),
                ));
            }
            if let Edge::Firewall {
                ipv6: true,
                portmap,
            } = listener
                && (portmap.natpmp || portmap.upnp)
            {
                return Err(invalid(
                    "an IPv6 firewall's pinholes are modelled with PCP only (NAT-PMP is IPv4 only; UPnP pinholes need IGDv2 over IPv6)".into(),
                ));
            }
            if matches!(dialer, Edge::Firewall { ipv6: true, .. }) {
                return Err(invalid(
                    "an IPv6 firewall is modelled on the listener's side only".into(),
                ));
            }
            for edge in [listener, dialer] {
                if let Edge::Nat { nat } = edge
                    && !nat.is_modelled()
                {
                    return Err(invalid(format!(
                        "NAT mapping={} with filtering={} is not modelled (filtering must be at least as strict as the mapping)",
                        nat.mapping.name(),
                        nat.filtering.name()
                    )));
                }
            }
        }
        if let Some(i) = &self.impairment {
            if !matches!(
                self.topology,
                Topology::Sites {
                    dialer: Edge::Nat { .. },
                    ..
                }
            ) {
                return Err(invalid(
                    "an impairment needs a `sites` topology whose dialer is behind a NAT (the hop goes between dialer and router)".into(),
                ));
            }
            if i.rtt_ms > 5000 || !(0.0..=100.0).contains(&i.loss_percent) || i.jitter_ms > 1000 {
                return Err(invalid("impairment out of range".into()));
            }
        }
        if self.timeout_secs.is_some_and(|t| !(1..=600).contains(&t)) {
            return Err(invalid("timeout_secs must be 1..=600".into()));
        }
        if self.repeat.is_some_and(|r| !(1..=1000).contains(&r)) {
            return Err(invalid("repeat must be 1..=1000".into()));
        }
        Ok(())
    }

    /// The expectation for a pair, given the capabilities of its two implementations: the
    /// first `[[unless]]` that applies (its capability lacking on its side, and every one of
    /// its `having` present), else `[expect]`. Capabilities are looked up per role
    /// ([`ImplManifest::has`]: `reply` is the dialer's capability and the listener's
    /// hand-over). A pass that names no route expects `one-way`, except for a pair whose
    /// dialer answers the listener's tokens with a reply code ([`ImplManifest::needs_reply`]),
    /// which can only come up by `reply`.
    pub fn expectation_for(&self, dialer: &ImplManifest, listener: &ImplManifest) -> Expectation {
        // `reply_path`: whether the pair has the reply path at all (see below).
        let resolve = |reply_path: bool| {
            let lacks = |cap: &str, side: CapabilitySide| {
                if cap == REPLY && !reply_path {
                    return true;
                }
                let dialer_lacks = !dialer.has(cap, Role::Dial);
                let listener_lacks = !listener.has(cap, Role::Listen);
                match side {
                    CapabilitySide::Either => dialer_lacks || listener_lacks,
                    CapabilitySide::Dialer => dialer_lacks,
                    CapabilitySide::Listener => listener_lacks,
                }
            };
            self.unless
                .iter()
                .find(|u| {
                    lacks(&u.capability, u.side)
                        && u.having.iter().all(|h| !lacks(h, CapabilitySide::Either))
                })
                .map_or(&self.expect, |u| &u.expect)
                .clone()
        };
        let mut e = resolve(true);
        // A pass only by punching (`route = "reply"`) needs a reply code with the dialer's
        // candidates (`owr2.`, for a `native` token). A listener of another profile gets none:
        // a native dialer makes no code for it, and a browser dialer's `owr1.` code carries no
        // candidates (`spec/token.md` §12.1), so the listener cannot check towards the dialer.
        // Such a pair fails as without the reply path; with a code handed over, the runner names
        // the cause `reply-unreachable`.
        if e.verdict == ExpectedVerdict::Pass
            && e.route.as_deref() == Some(REPLY)
            && listener.listen_profile != "native"
        {
            let mut failed = resolve(false);
            if failed.verdict == ExpectedVerdict::Fail {
                let code_handed_over = dialer.needs_reply(listener)
                    && dialer.has(REPLY, Role::Dial)
                    && listener.has(REPLY, Role::Listen);
                if code_handed_over {
                    failed.cause = failed
                        .cause
                        .map(|c| c.replacen("listener-unreachable", "reply-unreachable", 1));
                }
                failed.reason = format!(
                    "{} (the reply path needs the dialer's candidates, which no reply code to a {} token carries)",
                    failed.reason, listener.listen_profile
                );
                return failed;
            }
        }
        if e.verdict == ExpectedVerdict::Pass {
            if dialer.needs_reply(listener) {
                if e.route.as_deref() != Some(REPLY) {
                    e.reason = format!(
                        "{} (by the reply route: {}'s dialer answers {} tokens with a reply code)",
                        e.reason,
                        dialer.id,
                        listener.token_profile_for(dialer)
                    );
                }
                e.route = Some(REPLY.to_owned());
            } else if e.route.is_none() {
                e.route = Some("one-way".to_owned());
            }
        }
        e
    }
}

/// Reads every `*.toml` file of a directory, sorted by file name.
pub fn read_dir_toml(dir: &Path) -> Result<Vec<(PathBuf, String)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.to_owned(),
        source: e,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::Io {
                path: dir.to_owned(),
                source: e,
            })?
            .path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
                path: path.clone(),
                source: e,
            })?;
            files.push((path, text));
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every manifest of a directory.
pub fn load_impls(dir: &Path) -> Result<Vec<ImplManifest>, Error> {
    let mut out: Vec<ImplManifest> = Vec::new();
    for (path, text) in read_dir_toml(dir)? {
        let m = ImplManifest::parse(&text, &path.display().to_string())?;
        if out.iter().any(|o| o.id == m.id) {
            return Err(Error::Invalid {
                file: path.display().to_string(),
                message: format!("duplicate implementation id {:?}", m.id),
            });
        }
        out.push(m);
    }
    Ok(out)
}

/// Loads every scenario of a directory.
pub fn load_scenarios(dir: &Path) -> Result<Vec<Scenario>, Error> {
    let mut out: Vec<Scenario> = Vec::new();
    for (path, text) in read_dir_toml(dir)? {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s = Scenario::parse(&text, &stem)?;
        if out.iter().any(|o| o.name == s.name) {
            return Err(Error::Invalid {
                file: path.display().to_string(),
                message: format!("duplicate scenario name {:?}", s.name),
            });
        }
        out.push(s);
    }
    Ok(out)
}
