//! What the in-band media code reads from SDP text: the media sections of an offer, their
//! direction and codecs, and whether the codecs include one this peer supports.

/// The codecs (`rtpmap` encoding names, lower case) `rtc`'s default media engine registers:
/// an offered media section needs one of them.
const SUPPORTED: &[&str] = &[
    "opus", "g722", "pcmu", "pcma", "vp8", "vp9", "h264", "h265", "av1",
];
/// Static payload types (RFC 3551) of supported codecs, valid without an `rtpmap`.
const STATIC: &[(&str, &str)] = &[("0", "pcmu"), ("8", "pcma"), ("9", "g722")];

/// One `m=` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Section {
    /// `audio`, `video` or `application`.
    pub kind: String,
    /// The port (0: rejected or stopped).
    pub port: u16,
    /// `a=mid`.
    pub mid: Option<String>,
    /// `sendrecv` (the default), `sendonly`, `recvonly` or `inactive`.
    pub direction: String,
    /// Payload types in the `m=` line's order.
    pub formats: Vec<String>,
    /// `(payload type, lower-case encoding name)` from `a=rtpmap`.
    pub rtpmap: Vec<(String, String)>,
}

impl Section {
    /// Whether the side that sent this section wants to receive media on it.
    pub fn peer_receives(&self) -> bool {
        matches!(self.direction.as_str(), "sendrecv" | "recvonly")
    }

    /// The encoding name of payload type `pt`, from `a=rtpmap` or the static table.
    pub fn codec(&self, pt: &str) -> Option<&str> {
        self.rtpmap
            .iter()
            .find(|(p, _)| p == pt)
            .map(|(_, name)| name.as_str())
            .or_else(|| STATIC.iter().find(|(p, _)| *p == pt).map(|(_, n)| *n))
    }

    /// Whether one of the offered formats is a codec this peer supports.
    pub fn has_supported_codec(&self) -> bool {
        self.formats
            .iter()
            .any(|pt| self.codec(pt).is_some_and(|c| SUPPORTED.contains(&c)))
    }

    /// The payload types that carry Opus.
    pub fn opus_payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.rtpmap
            .iter()
            .filter(|(_, name)| name == "opus")
            .filter_map(|(pt, _)| pt.parse().ok())
    }
}

/// The `m=` sections of `sdp`, in order.
pub(crate) fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or_default().to_owned();
            let port = parts
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let formats = parts.skip(1).map(str::to_owned).collect();
            out.push(Section {
                kind,
                port,
                direction: "sendrecv".to_owned(),
                formats,
                ..Default::default()
            });
            continue;
        }
        let Some(section) = out.last_mut() else {
            continue;
        };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            section.mid = Some(mid.to_owned());
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, rest)) = map.split_once(' ') {
                let name = rest.split('/').next().unwrap_or_default().to_lowercase();
                section.rtpmap.push((pt.to_owned(), name));
            }
        } else if let Some(d) = line
            .strip_prefix("a=")
            .filter(|d| matches!(*d, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
        {
            section.direction = d.to_owned();
        }
    }
    out
}

/// Why an in-band offer cannot be answered before `rtc` even sees it: no media section, or a
/// media section (audio or video, not rejected) whose codecs are all unknown to this peer.
pub(crate) fn offer_problem(sdp: &str) -> Option<String> {
    let sections = sections(sdp);
    if sections.is_empty() {
        return Some("the offer has no m= section".to_owned());
    }
    sections
        .iter()
        .filter(|s| matches!(s.kind.as_str(), "audio" | "video") && s.port != 0)
        .find(|s| !s.has_supported_codec())
        .map(|s| {
            let offered: Vec<&str> = s
                .formats
                .iter()
                .map(|pt| s.codec(pt).unwrap_or(pt))
                .collect();
            format!(
                "no supported codec in the {} section (mid {}): offered {}",
                s.kind,
                s.mid.as_deref().unwrap_or("?"),
                offered.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn reads_sections_direction_and_codecs() {
        let s = sections(OFFER);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].kind, "audio");
        assert_eq!(s[1].mid.as_deref(), Some("1"));
        assert_eq!(s[1].direction, "recvonly");
        assert!(s[1].peer_receives());
        assert_eq!(s[1].codec("0"), Some("pcmu"));
        assert_eq!(s[1].opus_payload_types().collect::<Vec<_>>(), vec![111]);
        assert_eq!(offer_problem(OFFER), None);
    }

    #[test]
    fn an_offer_with_only_unknown_codecs_is_refused() {
        let offer = OFFER.replace("111 0", "98").replace(
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:98 x-oneway-unknown/48000",
        );
        let problem = offer_problem(&offer).expect("refused");
        assert!(problem.contains("x-oneway-unknown"), "{problem}");
        // A rejected section (port 0) needs no codec.
        assert_eq!(
            offer_problem(&offer.replace("m=audio 9", "m=audio 0")),
            None
        );
    }

    #[test]
    fn text_without_sections_is_refused() {
        assert!(offer_problem("not sdp at all").is_some());
        assert!(offer_problem("").is_some());
    }
}
