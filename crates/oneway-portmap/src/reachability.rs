//! From where a listener can be reached, and why: a pure function of what the listener measured
//! itself (its host addresses, its server-reflexive address, the port-mapping outcome and the
//! NAT's filtering behaviour from RFC 5780 tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::{Mapping, PortmapError, Protocol};

/// RFC 5780 §4.4 filtering behaviour of the NAT (or firewall) in front of the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatFiltering {
    /// Endpoint-independent: anyone may send to the mapped address (test II answered).
    EndpointIndependent,
    /// Address-dependent: only addresses the listener has sent to (test III answered, II not).
    AddressDependent,
    /// Address-and-port-dependent: only the exact address and port sent to (neither answered).
    AddressAndPortDependent,
    /// Not measured, or the STUN server cannot tell (no OTHER-ADDRESS, test I failed).
    Unknown,
}

impl NatFiltering {
    fn words(self) -> &'static str {
        match self {
            NatFiltering::EndpointIndependent => "does not filter",
            NatFiltering::AddressDependent => "filters by address",
            NatFiltering::AddressAndPortDependent => "filters by address and port",
            NatFiltering::Unknown => "may filter (its filtering could not be measured)",
        }
    }
}

/// What the listener measured, the input of [`assess`].
#[derive(Clone, Debug, Default)]
pub struct ReachabilityInputs<'a> {
    /// The host candidate addresses (the listener's own interface addresses).
    pub host: &'a [SocketAddr],
    /// The server-reflexive address STUN reported, if STUN was asked and answered.
    pub server_reflexive: Option<SocketAddr>,
    /// The port-mapping outcome; `None` when mapping was not attempted (`--no-portmap`).
    pub mapping: Option<&'a Result<Mapping, PortmapError>>,
    /// The filtering behaviour from RFC 5780 tests, if they ran.
    pub filtering: Option<NatFiltering>,
}

/// Who can reach the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Only peers on the same LAN (or behind the same NAT).
    SameLanOnly,
    /// Peers on the internet.
    Internet,
}

/// Through what the listener is reachable from the internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Via {
    /// One of its own addresses is public.
    PublicHost {
        /// That address.
        address: SocketAddr,
    },
    /// A port mapping on the gateway.
    Mapping {
        /// The protocol that made it.
        protocol: Protocol,
        /// The mapped external address.
        external: SocketAddr,
    },
    /// A NAT with endpoint-independent filtering: its server-reflexive address works for anyone.
    NonFilteringNat {
        /// The server-reflexive address.
        srflx: SocketAddr,
    },
    /// Nothing: same LAN only.
    None,
}

/// Why the verdict is what it is (a stable code, serialized in kebab-case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A host address is public and nothing shows a filtering firewall.
    PublicAddress,
    /// A port mapping with a public external address.
    Mapped,
    /// The NAT's filtering is endpoint-independent.
    NatDoesNotFilter,
    /// The NAT filters and no usable mapping exists.
    NatFilters,
    /// The host address is public but a firewall in front of it filters.
    FirewallFilters,
    /// The NAT's filtering is unknown and no usable mapping exists.
    NatFilteringUnknown,
    /// The mapping's external address (or the server-reflexive one) is private or carrier-grade.
    NotPublic,
    /// No public address, no server-reflexive address, no mapping: nothing says it is reachable.
    NoExternalAddress,
}

impl Reason {
    /// The stable code, e.g. `nat-filters`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::PublicAddress => "public-address",
            Reason::Mapped => "mapped",
            Reason::NatDoesNotFilter => "nat-does-not-filter",
            Reason::NatFilters => "nat-filters",
            Reason::FirewallFilters => "firewall-filters",
            Reason::NatFilteringUnknown => "nat-filtering-unknown",
            Reason::NotPublic => "not-public",
            Reason::NoExternalAddress => "no-external-address",
        }
    }
}

/// The verdict: scope, the way in, a reason code and a plain-words sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reachability {
    /// Who can reach the listener.
    pub scope: Scope,
    /// Through what.
    pub via: Via,
    /// Why (stable code).
    pub reason: Reason,
    /// The verdict in plain words, for the user.
    pub sentence: String,
}

/// Whether `ip` is reachable from the internet as an address: not private (RFC 1918),
/// carrier-grade (100.64.0.0/10), loopback, link-local, unique-local (fc00::/7), unspecified,
/// multicast or broadcast. Documentation prefixes count as public (test networks use them as
/// their internet).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xffc0) == 0xfe80
                || (first & 0xfe00) == 0xfc00
                || v6 == Ipv6Addr::UNSPECIFIED)
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || a >= 240)
}

fn why_not_private(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 100 => "carrier-grade NAT space",
        IpAddr::V4(_) => "a private address",
        IpAddr::V6(_) => "not a global address",
    }
}

/// Decides from where the listener can be reached. Pure: the same inputs give the same verdict.
///
/// Order: a mapping with a public external address wins; then a public host address (unless
/// the filtering tests show a firewall); then a server-reflexive address behind a NAT that does
/// not filter; everything else is "same LAN only", with the reason.
pub fn assess(inputs: &ReachabilityInputs<'_>) -> Reachability {
    let mapped = match inputs.mapping {
        Some(Ok(m)) => Some(m),
        _ => None,
    };
    if let Some(m) = mapped
        && is_public(m.external.ip())
    {
        return Reachability {
            scope: Scope::Internet,
            via: Via::Mapping {
                protocol: m.protocol,
                external: m.external,
            },
            reason: Reason::Mapped,
            sentence: format!(
                "internet, via a {} {} {}",
                m.protocol.name(),
                // An IPv6 firewall pinhole keeps the address and port.
                if m.external == m.internal {
                    "pinhole"
                } else {
                    "mapping"
                },
                m.external
            ),
        };
    }
    // Why the mapping does not help, for the "not reachable" sentences.
    let mapping_words = match inputs.mapping {
        None => "port mapping is off".to_owned(),
        Some(Ok(m)) => format!(
            "the {} mapping {} is itself behind another NAT ({}): a mapping at the home router \
             behind a carrier-grade NAT does not make the listener reachable",
            m.protocol.name(),
            m.external,
            why_not_private(m.external.ip())
        ),
        Some(Err(
            e @ (PortmapError::Timeout { .. }
            | PortmapError::NoGateway { .. }
            | PortmapError::Unavailable { .. }),
        )) => {
            format!("no port mapping answered ({})", e.code())
        }
        Some(Err(e)) => format!("the port mapping failed ({}: {e})", e.code()),
    };
    let mapping_not_public = matches!(inputs.mapping, Some(Ok(_)));

    if let Some(host) = inputs.host.iter().find(|a| is_public(a.ip())) {
        return match inputs.filtering {
            Some(f @ (NatFiltering::AddressDependent | NatFiltering::AddressAndPortDependent)) => {
                Reachability {
                    scope: Scope::SameLanOnly,
                    via: Via::None,
                    reason: Reason::FirewallFilters,
                    sentence: format!(
                        "not reachable from outside this LAN: the address {} is public but a \
                         firewall {} and {mapping_words}",
                        host.ip(),
                        f.words()
                    ),
                }
            }
            _ => Reachability {
                scope: Scope::Internet,
                via: Via::PublicHost { address: *host },
                reason: Reason::PublicAddress,
                sentence: format!("internet (public address {})", host.ip()),
            },
        };
    }

    let Some(srflx) = inputs.server_reflexive else {
        let (reason, sentence) = if mapping_not_public {
            (
                Reason::NotPublic,
                format!("not reachable from outside this LAN: {mapping_words}"),
            )
        } else {
            (
                Reason::NoExternalAddress,
                format!("same LAN only: no public address, no STUN answer, and {mapping_words}"),
            )
        };
        return Reachability {
            scope: Scope::SameLanOnly,
            via: Via::None,
            reason,
            sentence,
        };
    };
    if !is_public(srflx.ip()) {
        return Reachability {
            scope: Scope::SameLanOnly,
            via: Via::None,
            reason: Reason::NotPublic,
            sentence: format!(
                "not reachable from outside this LAN: the address STUN sees, {}, is {}, and {mapping_words}",
                srflx.ip(),
                why_not_private(srflx.ip())
            ),
        };
    }
    match inputs.filtering.unwrap_or(NatFiltering::Unknown) {
        NatFiltering::EndpointIndependent => Reachability {
            scope: Scope::Internet,
            via: Via::NonFilteringNat { srflx },
            reason: Reason::NatDoesNotFilter,
            sentence: "internet (the NAT does not filter)".to_owned(),
        },
        f @ (NatFiltering::AddressDependent | NatFiltering::AddressAndPortDependent) => {
            Reachability {
                scope: Scope::SameLanOnly,
                via: Via::None,
                reason: if mapping_not_public {
                    Reason::NotPublic
                } else {
                    Reason::NatFilters
                },
                sentence: format!(
                    "not reachable from outside this LAN: the NAT {} and {mapping_words}",
                    f.words()
                ),
            }
        }
        NatFiltering::Unknown => Reachability {
            scope: Scope::SameLanOnly,
            via: Via::None,
            reason: if mapping_not_public {
                Reason::NotPublic
            } else {
                Reason::NatFilteringUnknown
            },
            sentence: format!(
                "same LAN only, probably: the NAT {} and {mapping_words}",
                NatFiltering::Unknown.words()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn mapping(external: &str) -> Result<Mapping, PortmapError> {
        Ok(Mapping {
            protocol: Protocol::Pcp,
            external: sa(external),
            internal: sa("192.168.1.10:41000"),
            lifetime: Duration::from_secs(7200),
            gateway: sa("192.168.1.1:5351"),
        })
    }

    const LAN: [SocketAddr; 1] = [SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
        41000,
    )];

    #[test]
    fn public_mapping_wins() {
        let m = mapping("203.0.113.7:41000");
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.7:5000")),
            mapping: Some(&m),
            filtering: Some(NatFiltering::AddressAndPortDependent),
        });
        assert_eq!(r.scope, Scope::Internet);
        assert_eq!(r.reason, Reason::Mapped);
        assert_eq!(r.sentence, "internet, via a PCP mapping 203.0.113.7:41000");
        assert_eq!(
            r.via,
            Via::Mapping {
                protocol: Protocol::Pcp,
                external: sa("203.0.113.7:41000")
            }
        );
    }

    #[test]
    fn mapping_behind_cgnat_is_not_reachable() {
        let m = mapping("100.64.0.7:41000");
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.9:6000")),
            mapping: Some(&m),
            filtering: Some(NatFiltering::AddressAndPortDependent),
        });
        assert_eq!(r.scope, Scope::SameLanOnly);
        assert_eq!(r.reason, Reason::NotPublic);
        assert!(r.sentence.contains("carrier-grade NAT"), "{}", r.sentence);
        // And with no STUN answer at all.
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            mapping: Some(&m),
            ..Default::default()
        });
        assert_eq!((r.scope, r.reason), (Scope::SameLanOnly, Reason::NotPublic));
        // A private (RFC 1918) external address too.
        let m = mapping("10.1.0.2:41000");
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            mapping: Some(&m),
            server_reflexive: Some(sa("203.0.113.9:6000")),
            filtering: Some(NatFiltering::Unknown),
        });
        assert_eq!((r.scope, r.reason), (Scope::SameLanOnly, Reason::NotPublic));
        assert!(r.sentence.contains("a private address"), "{}", r.sentence);
    }

    #[test]
    fn public_host_is_internet() {
        let host = [sa("192.168.1.10:41000"), sa("198.51.100.20:41000")];
        let r = assess(&ReachabilityInputs {
            host: &host,
            ..Default::default()
        });
        assert_eq!(r.scope, Scope::Internet);
        assert_eq!(
            r.via,
            Via::PublicHost {
                address: sa("198.51.100.20:41000")
            }
        );
        assert_eq!(r.sentence, "internet (public address 198.51.100.20)");
        let r = assess(&ReachabilityInputs {
            host: &host,
            filtering: Some(NatFiltering::EndpointIndependent),
            ..Default::default()
        });
        assert_eq!(r.reason, Reason::PublicAddress);
    }

    #[test]
    fn public_host_behind_filtering_firewall() {
        let host = [sa("[2001:db8::20]:41000")];
        let err = Err(PortmapError::Timeout {
            protocol: Protocol::Pcp,
            gateway: sa("[2001:db8::1]:5351"),
            millis: 900,
        });
        let r = assess(&ReachabilityInputs {
            host: &host,
            server_reflexive: Some(sa("[2001:db8::20]:41000")),
            mapping: Some(&err),
            filtering: Some(NatFiltering::AddressDependent),
        });
        assert_eq!(r.scope, Scope::SameLanOnly);
        assert_eq!(r.reason, Reason::FirewallFilters);
        assert!(
            r.sentence
                .contains("firewall filters by address and no port mapping answered"),
            "{}",
            r.sentence
        );
        // A PCP pinhole through that firewall makes it reachable.
        let pin = Ok(Mapping {
            protocol: Protocol::Pcp,
            external: sa("[2001:db8::20]:41000"),
            internal: sa("[2001:db8::20]:41000"),
            lifetime: Duration::from_secs(60),
            gateway: sa("[2001:db8::1]:5351"),
        });
        let r = assess(&ReachabilityInputs {
            host: &host,
            mapping: Some(&pin),
            filtering: Some(NatFiltering::AddressDependent),
            ..Default::default()
        });
        assert_eq!((r.scope, r.reason), (Scope::Internet, Reason::Mapped));
        assert_eq!(
            r.sentence,
            "internet, via a PCP pinhole [2001:db8::20]:41000"
        );
    }

    #[test]
    fn non_filtering_nat() {
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.7:5000")),
            mapping: None,
            filtering: Some(NatFiltering::EndpointIndependent),
        });
        assert_eq!(r.scope, Scope::Internet);
        assert_eq!(r.sentence, "internet (the NAT does not filter)");
        assert_eq!(
            r.via,
            Via::NonFilteringNat {
                srflx: sa("203.0.113.7:5000")
            }
        );
    }

    #[test]
    fn filtering_nat_without_mapping() {
        let err = Err(PortmapError::NoGateway { family: "IPv4" });
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.7:5000")),
            mapping: Some(&err),
            filtering: Some(NatFiltering::AddressAndPortDependent),
        });
        assert_eq!(r.scope, Scope::SameLanOnly);
        assert_eq!(r.reason, Reason::NatFilters);
        assert_eq!(
            r.sentence,
            "not reachable from outside this LAN: the NAT filters by address and port and no \
             port mapping answered (no-gateway)"
        );
        let refused = Err(PortmapError::Refused {
            protocol: Protocol::Pcp,
            result: "NOT_AUTHORIZED".into(),
        });
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.7:5000")),
            mapping: Some(&refused),
            filtering: Some(NatFiltering::AddressDependent),
        });
        assert!(
            r.sentence
                .contains("filters by address and the port mapping failed (portmap-refused"),
            "{}",
            r.sentence
        );
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("203.0.113.7:5000")),
            mapping: None,
            filtering: Some(NatFiltering::AddressDependent),
        });
        assert!(
            r.sentence.ends_with("port mapping is off"),
            "{}",
            r.sentence
        );
    }

    #[test]
    fn unknown_filtering_is_same_lan() {
        for filtering in [None, Some(NatFiltering::Unknown)] {
            let r = assess(&ReachabilityInputs {
                host: &LAN,
                server_reflexive: Some(sa("203.0.113.7:5000")),
                mapping: None,
                filtering,
            });
            assert_eq!(r.scope, Scope::SameLanOnly);
            assert_eq!(r.reason, Reason::NatFilteringUnknown);
        }
    }

    #[test]
    fn carrier_grade_srflx() {
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            server_reflexive: Some(sa("100.64.3.4:5000")),
            mapping: None,
            filtering: Some(NatFiltering::EndpointIndependent),
        });
        assert_eq!((r.scope, r.reason), (Scope::SameLanOnly, Reason::NotPublic));
        assert!(r.sentence.contains("carrier-grade"), "{}", r.sentence);
    }

    #[test]
    fn nothing_measured_is_same_lan() {
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            ..Default::default()
        });
        assert_eq!(r.scope, Scope::SameLanOnly);
        assert_eq!(r.reason, Reason::NoExternalAddress);
        assert!(r.sentence.starts_with("same LAN only"), "{}", r.sentence);
    }

    #[test]
    fn public_address_classes() {
        for (ip, public) in [
            ("203.0.113.7", true),
            ("11.0.0.1", true),
            ("10.0.0.1", false),
            ("172.16.3.1", false),
            ("192.168.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("100.128.0.1", true),
            ("169.254.1.1", false),
            ("127.0.0.1", false),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("2001:db8::1", true),
            ("2a00::1", true),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(is_public(ip.parse().expect("ip")), public, "{ip}");
        }
    }

    #[test]
    fn serializes_to_json() {
        let m = mapping("203.0.113.7:41000");
        let r = assess(&ReachabilityInputs {
            host: &LAN,
            mapping: Some(&m),
            ..Default::default()
        });
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["scope"], "internet");
        assert_eq!(json["reason"], "mapped");
        assert_eq!(json["via"]["kind"], "mapping");
        assert_eq!(json["via"]["protocol"], "pcp");
        assert_eq!(json["via"]["external"], "203.0.113.7:41000");
        assert_eq!(Reason::NatFilters.code(), "nat-filters");
    }
}
