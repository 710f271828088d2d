//! Snapshots: the committed scenario and manifest files as parsed and planned, the topologies
//! they build (routes and nftables rule sets), and the three report renderings.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a test may unwrap

use std::path::Path;

use oneway_core::PeerEvent;
use oneway_scenario::media::{MediaRecord, Parts};
use oneway_scenario::model::{self, ImplManifest, Scenario};
use oneway_scenario::prediction::{self, DialerPlace};
use oneway_scenario::report::{ImageInfo, Report, ScenarioInfo};
use oneway_scenario::run::{
    CellResult, PathEnd, ReplyAccepted, ReplyRecord, RunRecord, Stages, Tried,
};
use oneway_scenario::verdict::{Outcome, Stats, Verdict};
use oneway_scenario::{plan, topology};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn committed() -> (Vec<ImplManifest>, Vec<Scenario>) {
    let impls = model::load_impls(&root().join("impls")).unwrap();
    let scenarios = model::load_scenarios(&root().join("scenarios")).unwrap();
    (impls, scenarios)
}

#[test]
fn committed_files_parse_and_plan() {
    let (impls, scenarios) = committed();
    // Only the str0m manifest is pinned here, so other manifests landing do not change it.
    let str0m: Vec<ImplManifest> = impls.into_iter().filter(|i| i.id == "str0m").collect();
    let cells = plan::cells(&str0m, &scenarios);
    let lines: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                "{} => {:?}{}{}{} | {}",
                c.name,
                c.expect.verdict,
                c.expect
                    .cause
                    .as_ref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default(),
                c.expect
                    .path
                    .as_ref()
                    .map(|x| format!(" via {x}"))
                    .unwrap_or_default(),
                c.expect
                    .route
                    .as_ref()
                    .map(|x| format!(" by {x}"))
                    .unwrap_or_default(),
                c.skip.clone().unwrap_or_default()
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
    let kinds: std::collections::BTreeSet<String> = scenarios
        .iter()
        .filter(|s| !s.loopback)
        .map(|s| s.name.clone())
        .collect();
    assert!(
        kinds.len() >= 14,
        "at least 14 topology kinds, got {}",
        kinds.len()
    );
    let ci: Vec<&str> = scenarios
        .iter()
        .filter(|s| s.ci)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        ci,
        [
            "first-candidate-black-holed",
            "listener-behind-port-restricted",
            "loopback",
            "same-lan"
        ]
    );
}

#[test]
fn str0m_manifest_parses() {
    let text = std::fs::read_to_string(root().join("impls/str0m.toml")).unwrap();
    let m = ImplManifest::parse(&text, "str0m.toml").unwrap();
    insta::assert_json_snapshot!(m);
}

#[test]
fn bad_files_get_named_errors() {
    let cases = [
        (
            "id = \"X\"\nroles = [\"dial\"]\n[dial]\nargv = [\"x\", \"{token}\"]\n",
            "uppercase id",
        ),
        (
            "id = \"x\"\nroles = [\"dial\"]\n[dial]\nargv = [\"x\"]\n",
            "no token",
        ),
        ("id = \"x\"\nroles = [\"listen\"]\n", "missing command"),
        (
            "id = \"x\"\nroles = [\"dial\"]\nbogus = 1\n",
            "unknown field",
        ),
        (
            "id = \"x\"\nroles = [\"listen\"]\n[listen]\nargv = [\"l\"]\nreply = \"stdio\"\n",
            "unknown reply hand-over",
        ),
        (
            "id = \"x\"\nroles = [\"listen\"]\n[listen]\nargv = [\"l\"]\nreply = [\"answer\", \"--code\"]\n",
            "reply template without {reply}",
        ),
        (
            "id = \"x\"\nroles = [\"dial\"]\n[dial]\nargv = [\"d\", \"{token}\"]\nreply = \"stdin\"\n",
            "reply hand-over on the dialer",
        ),
        (
            "id = \"x\"\nroles = [\"dial\"]\ncapabilities = [\"telepathy\"]\n[dial]\nargv = [\"d\", \"{token}\"]\n",
            "unknown capability",
        ),
        (
            "id = \"x\"\nroles = [\"listen\"]\ncapabilities = [\"reply\"]\n[listen]\nargv = [\"l\"]\n",
            "reply capability without the dial role",
        ),
    ];
    let mut out = Vec::new();
    for (text, what) in cases {
        let e = ImplManifest::parse(text, "m.toml").unwrap_err();
        out.push(format!("{what}: {e}"));
    }
    let scenario_cases = [
        (
            "description = \"d\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"fail\"\nreason = \"r\"\n",
            "fail without cause",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"moon\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "unknown topology",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"same-lan\"\n[impairment]\nrtt_ms = 50\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "impairment without a dialer NAT",
        ),
        (
            "description = \"d\"\npairs = [\"a-b\"]\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "bad pair",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"sites\"\nlistener = { kind = \"public\" }\ndialer = { kind = \"nat\", mapping = \"address-dependent\", filtering = \"endpoint-independent\" }\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n",
            "NAT combination that is not modelled",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nroute = \"carrier-pigeon\"\nreason = \"r\"\n",
            "unknown route",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"fail\"\ncause = \"ice-timeout\"\nroute = \"reply\"\nreason = \"r\"\n",
            "route on a failure",
        ),
        (
            "description = \"d\"\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nreason = \"r\"\n[[unless]]\ncapability = \"rely\"\nverdict = \"fail\"\ncause = \"x\"\nreason = \"r\"\n",
            "unless on an unknown capability",
        ),
    ];
    for (text, what) in scenario_cases {
        let e = Scenario::parse(text, "s").unwrap_err();
        out.push(format!("{what}: {e}"));
    }
    insta::assert_snapshot!(out.join("\n"));
}

#[test]
fn every_interface_placeholder_resolves() {
    let (_, scenarios) = committed();
    for s in scenarios.iter().filter(|s| !s.loopback) {
        let l = topology::layout(&s.topology, s.impairment);
        assert_eq!(
            l.unresolved_placeholders(),
            Vec::<String>::new(),
            "{}: setup names an interface the node does not have",
            s.name
        );
    }
}

#[test]
fn topologies_of_the_default_set() {
    let (_, scenarios) = committed();
    let mut out = String::new();
    for name in [
        "listener-behind-full-cone",
        "listener-behind-restricted-cone",
        "dialer-behind-symmetric",
        "hairpin-on",
        "dialer-double-nat",
        "listener-firewalled",
        "impaired-50ms-2pct",
        "first-candidate-rejected",
        "listener-behind-adm",
    ] {
        let s = scenarios.iter().find(|s| s.name == name).unwrap();
        let l = topology::layout(&s.topology, s.impairment);
        out.push_str(&format!("### {name}\n"));
        for n in &l.networks {
            out.push_str(&format!("net {} {}\n", n.key, n.v4));
        }
        for n in &l.nodes {
            let addrs: Vec<String> = n
                .ifaces
                .iter()
                .map(|i| format!("{}={}", i.net, i.v4))
                .collect();
            out.push_str(&format!(
                "node {} [{}] {}\n",
                n.key,
                addrs.join(" "),
                n.note
            ));
            for line in &n.setup {
                out.push_str(&format!("  {}\n", line.replace('\n', "\n  ")));
            }
        }
        out.push_str(&format!("listener_block: {:?}\n\n", l.listener_block));
    }
    insta::assert_snapshot!(out);
}

/// The layouts of the port-mapping scenarios: miniupnpd's configuration and rules, the
/// 11.0.0.0/24 WAN, IPv6 on the pinhole scenario; one of them also in slot 3.
#[test]
fn topologies_of_the_portmap_scenarios() {
    let (_, scenarios) = committed();
    let mut out = String::new();
    let mut names: Vec<&str> = scenarios
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.starts_with("listener-portmap-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    for (name, slot) in names
        .iter()
        .map(|n| (*n, 0))
        .chain([("listener-portmap-pcp", 3)])
    {
        let s = scenarios.iter().find(|s| s.name == name).unwrap();
        let l = topology::layout(&s.topology, s.impairment).relocated(slot);
        assert!(l.portmap, "{name}");
        assert_eq!(l.unresolved_placeholders(), Vec::<String>::new(), "{name}");
        out.push_str(&format!("### {name} (slot {slot})\n"));
        for n in &l.networks {
            out.push_str(&format!("net {} {} {:?}\n", n.key, n.v4, n.v6));
        }
        for n in &l.nodes {
            let addrs: Vec<String> = n
                .ifaces
                .iter()
                .map(|i| match &i.v6 {
                    Some(v6) => format!("{}={},{v6}", i.net, i.v4),
                    None => format!("{}={}", i.net, i.v4),
                })
                .collect();
            out.push_str(&format!(
                "node {} [{}] {}\n",
                n.key,
                addrs.join(" "),
                n.note
            ));
            for line in &n.setup {
                out.push_str(&format!("  {}\n", line.replace('\n', "\n  ")));
            }
            for log in &n.logs {
                out.push_str(&format!("  log {log}\n"));
            }
        }
        out.push_str(&format!(
            "stun {:?} stun_alt {:?}\nlistener_block: {:?}\n\n",
            l.stun, l.stun_alt, l.listener_block
        ));
    }
    insta::assert_snapshot!(out);
}

/// No scenario without `portmap` starts miniupnpd or leaves the suite's WAN prefix.
#[test]
fn only_portmap_scenarios_run_miniupnpd() {
    let (_, scenarios) = committed();
    for s in &scenarios {
        let l = topology::layout(&s.topology, s.impairment);
        let runs = l
            .nodes
            .iter()
            .any(|n| n.setup.iter().any(|line| line.contains("miniupnpd")));
        let wants = match &s.topology {
            model::Topology::Sites { listener, dialer } => {
                !listener.portmap().is_empty() || !dialer.portmap().is_empty()
            }
            _ => false,
        };
        assert_eq!(runs, wants, "{}", s.name);
        assert_eq!(l.portmap, wants, "{}", s.name);
        let wan = l
            .networks
            .iter()
            .find(|n| n.key == "wan")
            .map(|n| n.v4.to_string());
        if wan.is_some() {
            let expected = if wants {
                "11.0.0.0/24"
            } else {
                "198.51.100.0/24"
            };
            assert_eq!(wan.as_deref(), Some(expected), "{}", s.name);
        }
    }
}

fn run(verdict: Verdict, outcome: Outcome, echo: Option<f64>) -> RunRecord {
    let connected = matches!(outcome, Outcome::Connected { .. });
    RunRecord {
        repeat: 1,
        outcome,
        verdict,
        deviation: None,
        candidates: vec![
            "host udp 10.3.0.10:40000".into(),
            "host udp 10.1.0.10:40000".into(),
        ],
        tried: vec![
            Tried {
                t_ms: 1.0,
                remote: "10.3.0.10:40000".into(),
                kind: "host".into(),
            },
            Tried {
                t_ms: 51.0,
                remote: "10.1.0.10:40000".into(),
                kind: "host".into(),
            },
        ],
        fallback_ms: connected.then_some(50.0),
        dialer_path: connected.then(|| PathEnd {
            local: "10.1.0.20:5000".into(),
            remote: "10.1.0.10:40000".into(),
            local_type: "host".into(),
            remote_type: "host".into(),
            family: "ipv4".into(),
        }),
        listener_path: connected.then(|| PathEnd {
            local: "10.1.0.10:40000".into(),
            remote: "10.1.0.20:5000".into(),
            local_type: "host".into(),
            remote_type: "host".into(),
            family: "ipv4".into(),
        }),
        dialer_route: connected.then(|| "one-way".into()),
        listener_route: connected.then(|| "one-way".into()),
        route: connected.then(|| "one-way direct".into()),
        reply_shown: false,
        reply: None,
        stages: Stages {
            decoded: Some(0.1),
            first_check: Some(1.0),
            ice: Some(60.0),
            dtls: Some(70.0),
            channel: Some(75.0),
            auth: Some(80.0),
            first_echo: echo,
        },
        impairment: None,
        stopped_early: None,
        shaping: None,
        rtt_ms: connected.then_some(0.4),
        reachability: None,
        mapping: None,
        prediction: Default::default(),
        media: None,
        parts: None,
        seconds: 3.0,
        logs: vec!["cells/001/dialer.log".into()],
    }
}

fn cell(
    name: &str,
    scenario: &str,
    verdict: Verdict,
    runs: Vec<RunRecord>,
    expected: &str,
) -> CellResult {
    let connected = runs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Connected { .. }))
        .count() as u32;
    let green = runs.iter().filter(|r| r.verdict.is_green()).count() as u32;
    let lat: Vec<f64> = runs.iter().filter_map(|r| r.stages.first_echo).collect();
    let causes = runs
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Connected { path, route } => format!(
                "connected via {path} ({})",
                oneway_scenario::verdict::display_route(route.as_deref(), path)
            ),
            Outcome::Failed { cause } => cause.clone(),
            Outcome::Error { message } => format!("error: {message}"),
        })
        .fold(Vec::new(), |mut v: Vec<String>, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        });
    CellResult {
        name: format!("str0m x str0m ({scenario})"),
        scenario: scenario.into(),
        dialer: "str0m".into(),
        listener: name.into(),
        verdict,
        expected: expected.into(),
        reason: "because".into(),
        why: (verdict == Verdict::Flaky).then(|| "expected to connect; failed: ice-timeout".into()),
        causes,
        stats: Stats::new(runs.len() as u32, connected, green, &lat),
        prediction: prediction::combine(runs.iter().map(|r| &r.prediction)),
        parts: runs
            .iter()
            .find(|r| r.echoed())
            .or(runs.first())
            .and_then(|r| r.parts),
        runs,
        rerun: format!("oneway suite --out suite-out --filter 'str0m x str0m ({scenario})'"),
    }
}

/// A run on the impaired link (userspace delayer); `rtt_ms` only when it connected.
fn impaired(mut r: RunRecord, rtt_ms: f64) -> RunRecord {
    r.impairment = Some("userspace".into());
    r.shaping = Some(oneway_scenario::model::Impairment {
        rtt_ms: 50,
        loss_percent: 2.0,
        jitter_ms: 5,
    });
    r.rtt_ms = r.stages.first_echo.map(|_| rtt_ms);
    r
}

/// The run as the runner records a listener's `reachability` (and `mapped`) lines and judges
/// them against the outcome for a dialer at `place`.
fn predicted(mut r: RunRecord, lines: &[&str], place: DialerPlace) -> RunRecord {
    for l in lines {
        r.reachability = r.reachability.or_else(|| prediction::parse_reachability(l));
        r.mapping = r.mapping.or_else(|| prediction::parse_mapping(l));
    }
    r.prediction = prediction::judge(r.reachability.as_ref(), place, &r.outcome);
    r
}

const SAME_LAN_ONLY: &str = r#"{"event":"reachability","t_ms":4.0,"scope":"same-lan-only","via":"none","reason":"nat-filters","sentence":"not reachable from outside this LAN: the NAT filters by address and port and no port mapping answered"}"#;

fn sample_report() -> Report {
    let pass = run(
        Verdict::Pass,
        Outcome::Connected {
            path: "host".into(),
            route: Some("one-way".into()),
        },
        Some(90.0),
    );
    let xfail = run(
        Verdict::ExpectedFail,
        Outcome::Failed {
            cause: "listener-unreachable: filtering=address-and-port-dependent".into(),
        },
        None,
    );
    let fail = run(
        Verdict::Fail,
        Outcome::Failed {
            cause: "ice-timeout".into(),
        },
        None,
    );
    let outside = DialerPlace::Outside { udp_blocked: false };
    let mut mapped = run(
        Verdict::Pass,
        Outcome::Connected {
            path: "mapped".into(),
            route: Some("one-way".into()),
        },
        Some(40.0),
    );
    if let Some(p) = &mut mapped.dialer_path {
        p.remote = "11.0.0.2:41000".into();
        p.remote_type = "mapped".into();
    }
    mapped.route = Some("one-way mapped".into());
    let mapped = predicted(
        mapped,
        &[
            r#"{"event":"mapped","t_ms":3.1,"protocol":"pcp","external":"11.0.0.2:41000","internal":"10.2.0.10:5000","lifetime_s":7200,"gateway":"10.2.0.254"}"#,
            r#"{"event":"reachability","t_ms":3.2,"scope":"internet","via":"mapping","reason":"mapped","sentence":"internet, via a PCP mapping 11.0.0.2:41000"}"#,
        ],
        outside,
    );
    // A listener that claims the internet while its NAT filters: the report lists it.
    let wrong = predicted(
        xfail.clone(),
        &[
            r#"{"event":"reachability","t_ms":3.2,"scope":"internet","via":{"kind":"public-host"},"reason":"public-address","sentence":"internet (public address)"}"#,
        ],
        outside,
    );
    let xfail = predicted(xfail, &[SAME_LAN_ONLY], outside);
    // The reply path: the dialer showed its code at 812 ms, the runner handed it to the
    // listener's standard input at once, the listener punched and both ends say `reply`.
    let mut punched = run(
        Verdict::Pass,
        Outcome::Connected {
            path: "prflx".into(),
            route: Some("reply".into()),
        },
        Some(905.0),
    );
    if let Some(p) = &mut punched.dialer_path {
        p.remote = "198.51.100.2:61000".into();
        p.remote_type = "prflx".into();
    }
    punched.dialer_route = Some("reply".into());
    punched.listener_route = Some("reply".into());
    punched.route = Some("reply: punched".into());
    punched.reply_shown = true;
    punched.reply = Some(ReplyRecord {
        shown_ms: 812.4,
        code: "owr2.AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA".into(),
        candidates: vec!["host udp 198.51.100.20:5000".into()],
        ignored_codes: 0,
        hand_over: "stdin".into(),
        handed_over_ms: Some(1815.0),
        not_needed: false,
        command_exit: None,
        hand_over_error: None,
        accepted: Some(ReplyAccepted {
            t_ms: 2101.0,
            dialer: "AbCd".into(),
            candidates: vec!["host udp 198.51.100.20:5000".into()],
        }),
        refused: None,
    });
    // Its listener predicted same-lan-only: about one-way, so not applicable to a reply pass.
    let punched = predicted(punched, &[SAME_LAN_ONLY], outside);
    // Media cells: each side's `media` lines judged by the runner (oneway_scenario::media).
    let with_media = |listener_sends_video: bool| {
        let mut r = run(
            Verdict::Pass,
            Outcome::Connected {
                path: "host".into(),
                route: Some("one-way".into()),
            },
            Some(160.0),
        );
        let line = |track: &str, kind: &str, packets: u64, hz: Option<u32>, frames: Option<u64>| {
            PeerEvent::Media {
                t_ms: 2000.0,
                peer: None,
                track: track.into(),
                kind: kind.into(),
                packets,
                frequency_hz: hz,
                frames,
                keyframes: frames.map(|_| 2),
                width: frames.map(|_| 320),
                height: frames.map(|_| 240),
            }
        };
        let mut dialer = vec![line("a-l", "audio", 140, Some(440), None)];
        if listener_sends_video {
            dialer.push(line("v-l", "video", 260, None, Some(84)));
        }
        let listener = [
            line("a-d", "audio", 128, Some(1001), None),
            line("v-d", "video", 230, None, Some(78)),
        ];
        let media = MediaRecord::judge(&dialer, &listener);
        r.parts = Some(Parts::of(true, Some(&media)));
        let (v, why) = oneway_scenario::media::apply(Verdict::Pass, None, Some(&media));
        r.verdict = v;
        r.deviation = why;
        r.media = Some(media);
        r
    };
    let media_pass = with_media(true);
    let media_no_video = with_media(false);
    let pass = predicted(pass, &[SAME_LAN_ONLY], DialerPlace::InsideLan);
    Report {
        format: 1,
        seconds: 42.0,
        first_cell_after: Some(3.5),
        image: Some(ImageInfo {
            tag: "oneway-suite:0123456789abcdef".into(),
            cached: true,
            seconds: 0.4,
        }),
        no_docker: None,
        impls: vec!["str0m".into()],
        scenarios: vec![
            ScenarioInfo {
                name: "same-lan".into(),
                description: "Both peers on one LAN".into(),
            },
            ScenarioInfo {
                name: "listener-behind-port-restricted".into(),
                description: "Listener behind a port-restricted NAT".into(),
            },
            ScenarioInfo {
                name: "impaired".into(),
                description: "Lossy | slow".into(),
            },
            ScenarioInfo {
                name: "listener-portmap-pcp".into(),
                description: "Listener behind a port-restricted NAT whose router offers PCP".into(),
            },
            ScenarioInfo {
                name: "listener-behind-symmetric".into(),
                description: "Listener behind a symmetric NAT".into(),
            },
            ScenarioInfo {
                name: "listener-behind-restricted-cone".into(),
                description: "Listener behind a restricted-cone NAT".into(),
            },
            ScenarioInfo {
                name: "rtt-50ms".into(),
                description: "Dialer behind a port-restricted NAT, 50 ms RTT; media".into(),
            },
            ScenarioInfo {
                name: "dialer-behind-port-restricted".into(),
                description: "Dialer behind a port-restricted NAT; media".into(),
            },
        ],
        cells: vec![
            cell(
                "str0m",
                "same-lan",
                Verdict::Pass,
                vec![pass.clone(), pass.clone()],
                "pass",
            ),
            cell(
                "str0m",
                "listener-behind-port-restricted",
                Verdict::ExpectedFail,
                vec![xfail],
                "fail (listener-unreachable: filtering=address-and-port-dependent)",
            ),
            cell(
                "str0m",
                "impaired",
                Verdict::Flaky,
                vec![impaired(pass, 52.8), impaired(fail, 0.0)],
                "pass",
            ),
            cell(
                "str0m",
                "listener-portmap-pcp",
                Verdict::Pass,
                vec![mapped],
                "pass",
            ),
            cell(
                "str0m",
                "listener-behind-symmetric",
                Verdict::ExpectedFail,
                vec![wrong],
                "fail (listener-unreachable: filtering=address-and-port-dependent)",
            ),
            cell(
                "str0m",
                "listener-behind-restricted-cone",
                Verdict::Pass,
                vec![punched],
                "pass (route reply)",
            ),
            cell("str0m", "rtt-50ms", Verdict::Pass, vec![media_pass], "pass"),
            {
                let mut c = cell(
                    "str0m",
                    "dialer-behind-port-restricted",
                    Verdict::Fail,
                    vec![media_no_video],
                    "pass",
                );
                c.why = c.runs[0].deviation.clone();
                c
            },
        ],
        interrupted: false,
        partition: None,
    }
}

#[test]
fn markdown_report() {
    insta::assert_snapshot!(sample_report().to_markdown());
}

#[test]
fn junit_report() {
    insta::assert_snapshot!(sample_report().to_junit());
}

#[test]
fn json_report_round_trips() {
    let r = sample_report();
    let json = r.to_json();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.to_json(), json);
    insta::assert_snapshot!(json);
}

#[test]
fn green_means_no_deviation() {
    let mut r = sample_report();
    assert!(!r.green());
    r.cells
        .retain(|c| c.verdict != Verdict::Flaky && c.verdict != Verdict::Fail);
    assert!(r.green());
    assert_eq!(r.summary(), "6 cells: 4 pass, 2 expected-fail in 42 s");
}

#[test]
fn predictions_are_counted_and_disagreements_listed() {
    let r = sample_report();
    // same-lan: not applicable (a LAN dialer); port-restricted: agree (same-lan-only, unreachable);
    // impaired: no reachability line; portmap: agree (internet, connected via the mapping);
    // symmetric: disagree (internet, unreachable); restricted cone: not applicable (connected
    // by the reply route; the prediction is about one-way).
    assert_eq!(
        r.prediction_summary(),
        "reachability prediction: 2 agree, 1 disagree, 5 not applicable"
    );
    let md = r.to_markdown();
    assert!(md.contains("## Prediction disagreements"));
    assert!(md.contains("✗prediction"));
    // A disagreement is not a deviation.
    assert!(!md.contains("## Deviations\n\n- **str0m x str0m (listener-behind-symmetric)"));
    let junit = r.to_junit();
    assert!(junit.contains(r#"name="reachability-prediction" value="disagree""#));
}

#[test]
fn the_reply_route_is_in_every_rendering() {
    let r = sample_report();
    let md = r.to_markdown();
    assert!(md.contains(
        "The runner hands the reply code over 1 s after the dialer showed it, unless the dialer connected meanwhile"
    ));
    assert!(md.contains("🟢 reply: punched"));
    assert!(md.contains("reply: punched; code @812 ms, handed over @1815 ms (stdin), accepted"));
    let junit = r.to_junit();
    assert!(junit.contains(r#"name="route" value="reply: punched""#));
    assert!(junit.contains(r#"name="reply-shown" value="true""#));
    assert!(junit.contains(r#"name="reply-handed-over-ms" value="1815""#));
    let json = r.to_json();
    assert!(json.contains(r#""route": "reply: punched""#));
    assert!(json.contains(r#""handed_over_ms": 1815.0"#));
}

#[test]
fn media_parts_packets_and_tones_are_in_every_rendering() {
    let r = sample_report();
    let md = r.to_markdown();
    assert!(md.contains("· data + audio + video |"), "{md}");
    assert!(md.contains("· data + audio, video ✗"), "{md}");
    assert!(md.contains("## Media"));
    assert!(md.contains("audio 140 RTP packets, tone 440 Hz (want 440 Hz)"));
    assert!(md.contains("media: no video from listener"));
    // Cells without media say nothing about it.
    let same_lan_row = md
        .lines()
        .find(|l| l.starts_with("| `same-lan` |"))
        .unwrap();
    assert!(!same_lan_row.contains(" · "), "{same_lan_row}");
    let junit = r.to_junit();
    assert!(junit.contains(r#"name="media" value="data + audio + video""#));
    assert!(junit.contains(r#"name="media" value="data + audio, video ✗""#));
    assert!(
        junit.contains("listener received: audio 128 RTP packets, tone 1001 Hz (want 1000 Hz)")
    );
    let json = r.to_json();
    assert!(json.contains(r#""frequency_hz": 1001"#));
    assert!(json.contains(r#""expected_hz": 440"#));
    assert!(json.contains(r#""packets": 140"#));
    assert!(json.contains(r#""video": false"#));
    let same_lan = r.cells.iter().find(|c| c.scenario == "same-lan").unwrap();
    assert_eq!(same_lan.parts, None);
    assert!(same_lan.runs.iter().all(|r| r.media.is_none()));
}
