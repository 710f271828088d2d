//! Cells: a pure function of the manifests and scenarios, with stable names
//! `"<dialer> x <listener> (<scenario>)"` (the libp2p test-plans convention).

use serde::Serialize;

use crate::model::{Expectation, ImplManifest, MEDIA, REPLY_TOKEN_OPTION, Role, Scenario};

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// `"<dialer> x <listener> (<scenario>)"`.
    pub name: String,
    /// Scenario name.
    pub scenario: String,
    /// Dialer implementation id.
    pub dialer: String,
    /// Listener implementation id.
    pub listener: String,
    /// The profile of the token the listener issues in this cell: its `listen_profile`, or
    /// `reply` when it gives this dialer a reply token ([`ImplManifest::uses_reply_token`]).
    pub token_profile: String,
    /// What is expected.
    pub expect: Expectation,
    /// When set, the cell is not run, for this reason.
    pub skip: Option<String>,
    /// Whether the media path is judged too ([`media_for`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub media: bool,
}

/// Whether a cell judges media (`crate::media`): the scenario asks for it (`media = true`)
/// and both manifests have the `media` capability.
pub fn media_for(scenario: &Scenario, dialer: &ImplManifest, listener: &ImplManifest) -> bool {
    scenario.media && dialer.has_capability(MEDIA) && listener.has_capability(MEDIA)
}

/// Values substituted into manifest commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placeholders {
    /// `{token}`: the listener's token.
    pub token: String,
    /// `{timeout_secs}`.
    pub timeout_secs: u64,
    /// `{stun}`: STUN server `ip:port`.
    pub stun: String,
    /// `{turn}`: TURN server `ip:port` (user `oneway`, password `oneway`).
    pub turn: String,
    /// `{stun_alt}`: the STUN server's second address `ip:port` (RFC 5780 filtering
    /// discovery: the same coturn, which answers OTHER-ADDRESS and CHANGE-REQUEST).
    pub stun_alt: String,
    /// `{ttl_secs}`: a token lifetime in seconds (the `ttl` listener option, which
    /// `oneway conformance` asks for to test the listener's expiry check).
    pub ttl_secs: u64,
    /// `{tone_hz}`: the frequency of the test tone this peer sends (the `media` option;
    /// [`crate::media::LISTENER_TONE_HZ`], [`crate::media::DIALER_TONE_HZ`]).
    pub tone_hz: u32,
}

impl Placeholders {
    /// Fills the `{name}` placeholders of one argument.
    pub fn fill(&self, arg: &str) -> String {
        arg.replace("{token}", &self.token)
            .replace("{timeout_secs}", &self.timeout_secs.to_string())
            .replace("{stun}", &self.stun)
            .replace("{turn}", &self.turn)
            .replace("{stun_alt}", &self.stun_alt)
            .replace("{ttl_secs}", &self.ttl_secs.to_string())
            .replace("{tone_hz}", &self.tone_hz.to_string())
            .replace("{turn_user}", "oneway")
            .replace("{turn_password}", "oneway")
    }
}

/// Builds every cell of `scenarios` × the implementation pairs each one names.
pub fn cells(impls: &[ImplManifest], scenarios: &[Scenario]) -> Vec<Cell> {
    let mut out = Vec::new();
    for s in scenarios {
        for d in impls.iter().filter(|i| i.supports(Role::Dial)) {
            for l in impls.iter().filter(|i| i.supports(Role::Listen)) {
                let pair = format!("{} x {}", d.id, l.id);
                if !s.pairs.iter().any(|p| p == "*" || *p == pair) {
                    continue;
                }
                let skip = l.listen.as_ref().and_then(|cmd| {
                    s.listener_options
                        .iter()
                        .find(|o| !cmd.options.contains_key(*o))
                        .map(|o| format!("{} has no listener option `{o}` in its manifest", l.id))
                });
                let skip = skip.or_else(|| d.cannot_dial(l));
                let skip = skip.or_else(|| {
                    (s.loopback && (d.image != "base" || l.image != "base")).then(|| {
                        "loopback cells run host binaries; this pair needs its own image".to_owned()
                    })
                });
                out.push(Cell {
                    name: format!("{pair} ({})", s.name),
                    scenario: s.name.clone(),
                    dialer: d.id.clone(),
                    listener: l.id.clone(),
                    token_profile: l.token_profile_for(d).to_owned(),
                    expect: s.expectation_for(d, l),
                    skip,
                    media: media_for(s, d, l),
                });
            }
        }
    }
    out
}

/// The `[listen.options]` keys the listener of a cell with `dialer` is started with: the
/// scenario's `listener_options`, `loopback` for a loopback scenario, and
/// [`REPLY_TOKEN_OPTION`] when the listener gives this dialer a `reply` token
/// ([`ImplManifest::uses_reply_token`]).
pub fn listener_options(
    scenario: &Scenario,
    listener: &ImplManifest,
    dialer: &ImplManifest,
) -> Vec<String> {
    let mut options = scenario.listener_options.clone();
    if scenario.loopback {
        options.push("loopback".into());
    }
    if listener.uses_reply_token(dialer) {
        options.push(REPLY_TOKEN_OPTION.to_owned());
    }
    options
}

/// Keeps the cells whose name contains any of `filters` (all cells when empty) and none of
/// `ignores`. Returns the kept cells and, for each dropped cell, why.
pub fn filter(
    cells: Vec<Cell>,
    filters: &[String],
    ignores: &[String],
) -> (Vec<Cell>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for c in cells {
        if !filters.is_empty() && !filters.iter().any(|f| c.name.contains(f.as_str())) {
            dropped.push(format!("{}: matches no --filter", c.name));
        } else if let Some(i) = ignores.iter().find(|i| c.name.contains(i.as_str())) {
            dropped.push(format!("{}: matches --ignore {i:?}", c.name));
        } else {
            kept.push(c);
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, roles: &str) -> ImplManifest {
        ImplManifest::parse(
            &format!(
                "id = \"{id}\"\nroles = [{roles}]\n[listen]\nargv = [\"l\"]\noptions = {{ stun = [\"--stun\", \"{{stun}}\"] }}\n[dial]\nargv = [\"d\", \"{{token}}\"]\n"
            ),
            id,
        )
        .unwrap()
    }

    #[test]
    fn pairs_follow_roles_and_skip_missing_options() {
        let impls = vec![
            manifest("a", "\"listen\", \"dial\""),
            manifest("b", "\"dial\""),
        ];
        let s = Scenario::parse(
            "description = \"x\"\nlistener_options = [\"stun\"]\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "s",
        )
        .unwrap();
        let cells = cells(&impls, std::slice::from_ref(&s));
        let names: Vec<_> = cells.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a x a (s)", "b x a (s)"]);
        assert!(cells.iter().all(|c| c.skip.is_none()));
        let mut s2 = s.clone();
        s2.listener_options = vec!["mdns".into()];
        assert!(super::cells(&impls, &[s2])[0].skip.is_some());
        let (kept, dropped) = filter(cells, &["b x".into()], &[]);
        assert_eq!(kept.len(), 1);
        assert_eq!(dropped, ["a x a (s): matches no --filter"]);
    }

    /// A manifest with the `media` capability and its options in both roles.
    fn media_manifest(id: &str) -> ImplManifest {
        ImplManifest::parse(
            &format!(
                "id = \"{id}\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [\"media\"]\n[listen]\nargv = [\"l\"]\noptions = {{ media = [\"--send-audio\", \"tone:{{tone_hz}}\", \"--send-video\"] }}\n[dial]\nargv = [\"d\", \"{{token}}\"]\noptions = {{ media = [\"--send-audio\", \"tone:{{tone_hz}}\", \"--send-video\"] }}\n"
            ),
            id,
        )
        .unwrap()
    }

    #[test]
    fn media_is_judged_when_the_scenario_asks_and_both_have_it() {
        let m = media_manifest("m");
        let plain = manifest("p", "\"listen\", \"dial\"");
        let text = "description = \"x\"\nmedia = true\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n";
        let s = Scenario::parse(text, "s").unwrap();
        let cells = cells(&[m.clone(), plain.clone()], std::slice::from_ref(&s));
        let media: Vec<(&str, bool)> = cells.iter().map(|c| (c.name.as_str(), c.media)).collect();
        assert_eq!(
            media,
            [
                ("m x m (s)", true),
                ("m x p (s)", false),
                ("p x m (s)", false),
                ("p x p (s)", false)
            ]
        );
        let without = Scenario::parse(&text.replace("media = true\n", ""), "s").unwrap();
        assert!(!media_for(&without, &m, &m));
        // The capability without the option is refused, naming what is missing.
        let e = ImplManifest::parse(
            "id = \"x\"\nroles = [\"dial\"]\ncapabilities = [\"media\"]\n[dial]\nargv = [\"d\", \"{token}\"]\n",
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("[dial.options]"), "{e}");
    }

    #[test]
    fn a_dialer_side_capability_only_looks_at_the_dialer() {
        let with = ImplManifest::parse(
            "id = \"t\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [\"turn\"]\n[listen]\nargv = [\"l\"]\n[dial]\nargv = [\"d\", \"{token}\"]\n",
            "t",
        )
        .unwrap();
        let without = manifest("n", "\"listen\", \"dial\"");
        let s = Scenario::parse(
            "description = \"x\"\ndialer_options = [\"turn\"]\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\npath = \"relay\"\nreason = \"r\"\n[[unless]]\ncapability = \"turn\"\nside = \"dialer\"\nverdict = \"fail\"\ncause = \"listener-unreachable\"\nreason = \"r\"\n",
            "s",
        )
        .unwrap();
        use crate::model::ExpectedVerdict::{Fail, Pass};
        assert_eq!(s.expectation_for(&with, &without).verdict, Pass);
        assert_eq!(s.expectation_for(&with, &with).verdict, Pass);
        assert_eq!(s.expectation_for(&without, &with).verdict, Fail);
        // Dialer options never skip a cell.
        let cells = cells(&[with, without], &[s]);
        assert!(cells.iter().all(|c| c.skip.is_none()));
    }

    #[test]
    fn token_profiles_skip_pairs_that_need_a_reply_and_opt_in_needs_naming() {
        let browser = ImplManifest::parse(
            "id = \"browser\"\nroles = [\"listen\", \"dial\"]\nimage = \"browser\"\nopt_in = true\nlisten_profile = \"dialer-identity\"\ndial_profiles = [\"native\"]\n[listen]\nargv = [\"l\"]\n[dial]\nargv = [\"d\", \"{token}\"]\n",
            "browser",
        )
        .unwrap();
        let native = manifest("n", "\"listen\", \"dial\"");
        let s = Scenario::parse(
            "description = \"x\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "s",
        )
        .unwrap();
        let impls = vec![native, browser];
        let cells = cells(&impls, &[s]);
        let skipped: Vec<_> = cells
            .iter()
            .filter(|c| c.skip.is_some())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(skipped, ["browser x browser (s)"]);
        assert!(
            cells[3].skip.as_deref().unwrap().contains(
                "browser prints none (no `reply` capability) and browser's listener takes none"
            ),
            "{:?}",
            cells[3].skip
        );
        let default = crate::model::select_impls(impls.clone(), &[]).unwrap();
        assert_eq!(default.len(), 1);
        let named = crate::model::select_impls(impls.clone(), &["browser".into()]).unwrap();
        assert_eq!(named[0].id, "browser");
        assert!(crate::model::select_impls(impls, &["nope".into()]).is_err());
        assert!(
            ImplManifest::parse(
                "id = \"x\"\nroles = [\"dial\"]\ndial_profiles = [\"bogus\"]\n[dial]\nargv = [\"d\", \"{token}\"]\n",
                "x"
            )
            .is_err()
        );
    }

    fn browser(extra: &str, listen_extra: &str) -> ImplManifest {
        ImplManifest::parse(
            &format!(
                "id = \"browser\"\nroles = [\"listen\", \"dial\"]\n{extra}listen_profile = \"dialer-identity\"\ndial_profiles = [\"native\"]\n[listen]\nargv = [\"l\"]\n{listen_extra}[dial]\nargv = [\"d\", \"{{token}}\"]\n"
            ),
            "browser",
        )
        .unwrap()
    }

    #[test]
    fn browser_pairs_run_by_the_reply_route_when_the_listener_takes_codes() {
        let s = Scenario::parse(
            "description = \"x\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\npath = \"host\"\nreason = \"r\"\n",
            "s",
        )
        .unwrap();
        // A hand-over on the listener, the capability on the dialer: the cell runs, by `reply`.
        let b = browser("capabilities = [\"reply\"]\n", "reply = \"stdin\"\n");
        let c = &cells(std::slice::from_ref(&b), std::slice::from_ref(&s))[0];
        assert_eq!(c.skip, None);
        assert_eq!(c.expect.route.as_deref(), Some("reply"));
        assert_eq!(c.expect.path.as_deref(), Some("host"));
        assert!(
            c.expect
                .reason
                .contains("answers dialer-identity tokens with a reply code")
        );
        // An argv template is a hand-over too.
        let b = browser(
            "capabilities = [\"reply\"]\n",
            "reply = [\"answer\", \"{reply}\"]\n",
        );
        assert_eq!(cells(&[b], std::slice::from_ref(&s))[0].skip, None);
        // No hand-over: skipped, saying so.
        let b = browser("capabilities = [\"reply\"]\n", "");
        let skip = cells(&[b], std::slice::from_ref(&s))[0]
            .skip
            .clone()
            .unwrap();
        assert!(
            skip.contains("browser's manifest has no `reply` in [listen]"),
            "{skip}"
        );
        // A hand-over but a dialer that prints no code: skipped.
        let b = browser("", "reply = \"stdin\"\n");
        let skip = cells(&[b], std::slice::from_ref(&s))[0]
            .skip
            .clone()
            .unwrap();
        assert!(
            skip.contains("browser prints none (no `reply` capability)"),
            "{skip}"
        );
    }

    #[test]
    fn reply_expectations_follow_the_dialer_capability_and_the_listener_hand_over() {
        let native = |id: &str, caps: &str, reply: &str| {
            ImplManifest::parse(
                &format!(
                    "id = \"{id}\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [{caps}]\n[listen]\nargv = [\"l\"]\n{reply}[dial]\nargv = [\"d\", \"{{token}}\"]\n"
                ),
                id,
            )
            .unwrap()
        };
        let full = native("full", "\"reply\", \"portmap\"", "reply = \"stdin\"\n");
        let no_code = native("nocode", "\"portmap\"", "reply = \"stdin\"\n");
        let no_hand = native("nohand", "\"reply\"", "");
        let s = Scenario::parse(
            "description = \"x\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nroute = \"reply\"\nreason = \"punch\"\n[[unless]]\ncapability = \"reply\"\nverdict = \"fail\"\ncause = \"listener-unreachable\"\nreason = \"one-way only\"\n",
            "s",
        )
        .unwrap();
        use crate::model::ExpectedVerdict::{Fail, Pass};
        let e = s.expectation_for(&full, &full);
        assert_eq!((e.verdict, e.route.as_deref()), (Pass, Some("reply")));
        // The dialer's capability is `capabilities`; the listener's is its hand-over.
        assert_eq!(s.expectation_for(&no_code, &full).verdict, Fail);
        assert_eq!(s.expectation_for(&full, &no_hand).verdict, Fail);
        assert_eq!(s.expectation_for(&no_hand, &no_code).verdict, Pass);
        // `having`: a listener without portmap that a reply pair still reaches.
        let s = Scenario::parse(
            "description = \"x\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\npath = \"mapped\"\nreason = \"mapped\"\n[[unless]]\ncapability = \"portmap\"\nside = \"listener\"\nhaving = [\"reply\"]\nverdict = \"pass\"\nroute = \"reply\"\nreason = \"punch\"\n[[unless]]\ncapability = \"portmap\"\nside = \"listener\"\nverdict = \"fail\"\ncause = \"listener-unreachable\"\nreason = \"no mapping\"\n",
            "s",
        )
        .unwrap();
        let e = s.expectation_for(&full, &full);
        assert_eq!(
            (e.verdict, e.route.as_deref(), e.path.as_deref()),
            (Pass, Some("one-way"), Some("mapped"))
        );
        let no_map = native("nomap", "\"reply\"", "reply = \"stdin\"\n");
        let e = s.expectation_for(&full, &no_map);
        assert_eq!((e.verdict, e.route.as_deref()), (Pass, Some("reply")));
        assert_eq!(s.expectation_for(&no_code, &no_map).verdict, Fail);
        assert_eq!(s.expectation_for(&full, &no_hand).verdict, Fail);
        // A browser-style listener (dialer-identity tokens): no reply code carries candidates
        // to it, so a pass that needs punching is the one-way failure; with a code handed over
        // (a dialer that answers such tokens with a code), its cause is `reply-unreachable`.
        let browser = |id: &str| {
            ImplManifest::parse(
                &format!(
                    "id = \"{id}\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [\"reply\"]\nlisten_profile = \"dialer-identity\"\ndial_profiles = [\"native\"]\n[listen]\nargv = [\"l\"]\nreply = \"stdin\"\n[dial]\nargv = [\"d\", \"{{token}}\"]\n"
                ),
                id,
            )
            .unwrap()
        };
        let b = browser("b");
        let e = s.expectation_for(&full, &b);
        assert_eq!(
            (e.verdict, e.cause.as_deref()),
            (Fail, Some("listener-unreachable"))
        );
        let e = s.expectation_for(&b, &b);
        assert_eq!(
            (e.verdict, e.cause.as_deref()),
            (Fail, Some("reply-unreachable"))
        );
        // A browser dialer of a native listener punches as any dialer.
        let e = s.expectation_for(&b, &no_map);
        assert_eq!((e.verdict, e.route.as_deref()), (Pass, Some("reply")));
    }

    #[test]
    fn a_listener_that_cannot_replace_the_dialer_identity_gives_reply_dialers_a_reply_token() {
        let s = Scenario::parse(
            "description = \"x\"\nlistener_options = [\"stun\"]\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "s",
        )
        .unwrap();
        let listen = "reply = \"stdin\"\n[listen.options]\nstun = [\"--stun\", \"{stun}\"]\nreply_token = [\"--profile\", \"reply\"]\n";
        let firefox = ImplManifest::parse(
            &format!(
                "id = \"firefox\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [\"reply\"]\nlisten_profile = \"dialer-identity\"\ndial_profiles = [\"native\"]\nreply_token_for_reply_dialers = true\n[listen]\nargv = [\"l\"]\n{listen}[dial]\nargv = [\"d\", \"{{token}}\"]\n"
            ),
            "firefox",
        )
        .unwrap();
        let chromium = browser(
            "capabilities = [\"reply\"]\n",
            "reply = \"stdin\"\noptions = { stun = [\"--stun\", \"{stun}\"] }\n",
        );
        let native = manifest("n", "\"listen\", \"dial\"");
        // A browser dialer of the Firefox listener: a reply token, by the reply route.
        for dialer in [&chromium, &firefox] {
            assert!(firefox.uses_reply_token(dialer), "{}", dialer.id);
            assert_eq!(
                listener_options(&s, &firefox, dialer),
                ["stun", "reply_token"]
            );
        }
        // A native dialer dials its dialer-identity token one-way; a Chromium listener keeps
        // dialer-identity tokens for every dialer.
        assert!(!firefox.uses_reply_token(&native));
        assert_eq!(listener_options(&s, &firefox, &native), ["stun"]);
        assert!(!chromium.uses_reply_token(&firefox));
        let impls = [native, chromium, firefox];
        let all = cells(&impls, std::slice::from_ref(&s));
        let profile = |name: &str| {
            let c = all.iter().find(|c| c.name == name).expect(name);
            assert_eq!(c.skip, None, "{name}");
            (c.token_profile.as_str(), c.expect.route.as_deref())
        };
        assert_eq!(profile("browser x firefox (s)"), ("reply", Some("reply")));
        assert_eq!(profile("firefox x firefox (s)"), ("reply", Some("reply")));
        assert_eq!(
            profile("n x firefox (s)"),
            ("dialer-identity", Some("one-way"))
        );
        assert_eq!(
            profile("firefox x browser (s)"),
            ("dialer-identity", Some("reply"))
        );
        let c = all
            .iter()
            .find(|c| c.name == "browser x firefox (s)")
            .unwrap();
        assert!(
            c.expect
                .reason
                .contains("answers reply tokens with a reply code"),
            "{}",
            c.expect.reason
        );
        // The argv: the option's arguments after the scenario's.
        let ph = Placeholders {
            stun: "198.51.100.3:3478".into(),
            ..Default::default()
        };
        let options = listener_options(&s, &impls[2], &impls[1]);
        let (argv, _) = crate::run::command_line(
            &impls[2],
            Role::Listen,
            &crate::run::OptionSet {
                listener: &options,
                ..Default::default()
            },
            &ph,
            std::path::Path::new("/peer"),
        )
        .unwrap();
        assert_eq!(
            argv,
            ["l", "--stun", "198.51.100.3:3478", "--profile", "reply"]
        );
    }

    #[test]
    fn reply_token_for_reply_dialers_needs_its_option_and_a_hand_over() {
        let parse = |listen: &str| {
            ImplManifest::parse(
                &format!(
                    "id = \"f\"\nroles = [\"listen\"]\nlisten_profile = \"dialer-identity\"\nreply_token_for_reply_dialers = true\n[listen]\nargv = [\"l\"]\n{listen}"
                ),
                "f",
            )
        };
        let err = parse("reply = \"stdin\"\n").unwrap_err().to_string();
        assert!(
            err.contains("needs the listener option `reply_token`"),
            "{err}"
        );
        let err = parse("[listen.options]\nreply_token = [\"--profile\", \"reply\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `reply` in [listen]"), "{err}");
        assert!(
            parse(
                "reply = \"stdin\"\n[listen.options]\nreply_token = [\"--profile\", \"reply\"]\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn placeholders_fill() {
        let p = Placeholders {
            token: "ow1.x".into(),
            timeout_secs: 9,
            stun: "198.51.100.3:3478".into(),
            turn: String::new(),
            stun_alt: "198.51.100.7:3478".into(),
            ttl_secs: 3,
            tone_hz: 440,
        };
        assert_eq!(p.fill("tone:{tone_hz}"), "tone:440");
        assert_eq!(p.fill("--timeout={timeout_secs}s"), "--timeout=9s");
        assert_eq!(p.fill("{stun_alt}"), "198.51.100.7:3478");
        assert_eq!(p.fill("{token}"), "ow1.x");
        assert_eq!(p.fill("{ttl_secs}s"), "3s");
    }
}
