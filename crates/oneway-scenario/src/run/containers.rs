//! Container cells: the topology's networks and containers, their setup (routes, nftables,
//! impairments, coturn, captures), both peers as execs, and the teardown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::Error;
use crate::docker::{Engine, Line};
use crate::model::{Expectation, ImplManifest, ReplyHandOver, Role, Scenario};
use crate::plan::Placeholders;
use crate::topology::{self, Layout, NodeRole, NodeSpec};
use crate::verdict::Outcome;

use super::command::command;
use super::outcome::candidate_ip;
use super::reply::{ReplyChannel, ReplySink};
use super::wait::{
    DIALER_GRACE, DialerEnd, EARLY_STOP_SETTLE, Logs, TOKEN_WAIT, drain, expect_unreachable,
    linger, wait_token, watch_dialer,
};
use super::{RunRecord, Runner};

/// Points a container's resolver at loopback, where nothing answers (see the browser setup).
const NO_DNS: &str = "echo 'nameserver 127.0.0.1' > /etc/resolv.conf";

impl Runner<'_> {
    /// Runs one container cell.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn containers(
        &self,
        name: &str,
        layout: &Layout,
        scenario: &Scenario,
        expect: &Expectation,
        dialer: &ImplManifest,
        listener: &ImplManifest,
        record: &mut RunRecord,
        logs: &mut Logs,
        dir: &Path,
    ) -> Result<Outcome, Error> {
        let (Some(engine), Some(image)) = (&self.engine, &self.image) else {
            return Err(Error::NoDocker("no engine".into()));
        };
        let host_image = |m: &ImplManifest| -> Result<String, Error> {
            match crate::image::Variant::from_image(&m.image) {
                Some(crate::image::Variant::Browser) => {
                    self.browser_image.clone().ok_or_else(|| {
                        Error::Image(format!(
                            "{} needs the browser image, which was not built",
                            m.id
                        ))
                    })
                }
                _ => Ok(image.clone()),
            }
        };
        let images = NodeImages {
            base: image.clone(),
            listener: host_image(listener)?,
            dialer: host_image(dialer)?,
        };
        if self.options.keep {
            // The subnets are fixed, so a kept cell's networks would collide with the next
            // cell's: remove what the previous cell left up (only the last cell stays up).
            engine.sweep(true).await?;
        }
        let mut env = Env {
            engine,
            prefix: format!("ow-{}-{name}", engine_run(engine)),
            networks: Vec::new(),
            containers: Vec::new(),
        };
        let result = self
            .containers_inner(
                &mut env, &images, layout, scenario, expect, dialer, listener, record, logs, dir,
            )
            .await;
        if self.options.keep {
            self.note(format!(
                "--keep: {} containers of {name} left up (removed when the next cell or run starts; now: docker rm -f $(docker ps -aq --filter label=oneway.suite))",
                env.containers.len()
            ));
        } else {
            env.teardown().await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn containers_inner<'a>(
        &self,
        env: &mut Env<'_>,
        images: &'a NodeImages,
        layout: &'a Layout,
        scenario: &Scenario,
        expect: &Expectation,
        dialer: &ImplManifest,
        listener: &ImplManifest,
        record: &mut RunRecord,
        logs: &mut Logs,
        dir: &Path,
    ) -> Result<Outcome, Error> {
        let engine = env.engine;
        let unresolved = layout.unresolved_placeholders();
        if !unresolved.is_empty() {
            return Err(Error::Docker(format!(
                "the layout names interfaces its nodes do not have: {}",
                unresolved.join(", ")
            )));
        }
        // Networks, then containers, then their setup: each step's Docker calls run
        // concurrently (every created resource is recorded for teardown even when a sibling
        // call fails).
        let net_names: HashMap<&str, String> = layout
            .networks
            .iter()
            .map(|net| (net.key, format!("{}-{}", env.prefix, net.key)))
            .collect();
        let created = join_all(
            layout
                .networks
                .iter()
                .map(|net| engine.create_network(&net_names[net.key], &net.v4, net.v6.as_deref())),
        )
        .await;
        let mut failed = None;
        for r in created {
            match r {
                Ok(id) => env.networks.push(id),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let start = |node: &'a NodeSpec| {
            let nets: Vec<(String, String, Option<String>)> = node
                .ifaces
                .iter()
                .map(|i| (net_names[i.net].clone(), i.v4.clone(), i.v6.clone()))
                .collect();
            let mut sysctls = HashMap::from([
                ("net.ipv4.conf.all.rp_filter".to_owned(), "0".to_owned()),
                ("net.ipv4.conf.default.rp_filter".to_owned(), "0".to_owned()),
            ]);
            if node.forwards {
                sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            }
            if node.ifaces.iter().any(|i| i.v6.is_some()) {
                sysctls.insert("net.ipv6.conf.all.disable_ipv6".into(), "0".into());
                if node.forwards {
                    sysctls.insert("net.ipv6.conf.all.forwarding".into(), "1".into());
                }
            }
            let cname = format!("{}-{}", env.prefix, node.key);
            let image = images.of(node.role);
            async move {
                (
                    node.key,
                    engine.start_node(&cname, image, &nets, sysctls).await,
                )
            }
        };
        let started = join_all(layout.nodes.iter().map(start)).await;
        let mut ids: HashMap<&str, String> = HashMap::new();
        for (key, r) in started {
            match r {
                Ok(id) => {
                    env.containers.push(id.clone());
                    ids.insert(key, id);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if self.cancelled() {
            return Err(Error::Interrupted);
        }
        // Interface names by network, then each node's setup (nodes concurrently; the log
        // keeps the layout's order).
        let setup = |node: &'a NodeSpec| {
            let id = ids[node.key].clone();
            async move {
                let (_, addrs) = engine
                    .run_script(&id, "ip -o addr show", Duration::from_secs(10))
                    .await?;
                let mut script = node.setup.join("\n");
                for i in &node.ifaces {
                    let ifname = interface_of(&addrs, &i.v4).ok_or_else(|| {
                        Error::Docker(format!("{}: no interface has {}", node.key, i.v4))
                    })?;
                    script = script.replace(&format!("{{if:{}}}", i.net), &ifname);
                }
                let (code, output) = engine
                    .run_script(&id, &format!("set -e\n{script}"), Duration::from_secs(20))
                    .await?;
                Ok::<_, Error>((node, script, code, output))
            }
        };
        let set_up = join_all(layout.nodes.iter().map(setup)).await;
        for r in set_up {
            let (node, script, code, output) = r?;
            logs.setup.push_str(&format!(
                "== {} ({})\n{script}\n-- exit {code}\n{output}\n",
                node.key, node.note
            ));
            if node.role == NodeRole::Impair {
                record.impairment = output
                    .lines()
                    .find_map(|l| l.strip_prefix("impairment="))
                    .map(str::to_owned);
            }
            if code != 0 {
                return Err(Error::Docker(format!(
                    "setup of {} failed (exit {code}): {}",
                    node.key,
                    output.lines().last().unwrap_or_default()
                )));
            }
        }
        // Chromium and chromedriver look names up at start; the topologies have no DNS, and a
        // query to the engine's resolver is lost (about 25 s of timeouts per start). Peers in
        // the browser image get a resolver on loopback, where nothing listens: lookups fail at
        // once, and the peers only use IP addresses.
        for (key, manifest) in [("listener", listener), ("dialer", dialer)] {
            if crate::image::Variant::from_image(&manifest.image)
                != Some(crate::image::Variant::Browser)
            {
                continue;
            }
            let Some(id) = layout.node(key).map(|n| ids[n.key].clone()) else {
                continue;
            };
            let script = NO_DNS;
            let (code, output) = engine
                .run_script(&id, script, Duration::from_secs(10))
                .await?;
            logs.setup.push_str(&format!(
                "== {key}: no DNS\n{script}\n-- exit {code}\n{output}\n"
            ));
        }
        // coturn on the WAN: STUN for srflx candidates, TURN for relays.
        let mut stun_proc = None;
        if let Some(stun) = layout.node("stun") {
            if !self.has_turnserver {
                return Err(Error::Image(
                    "coturn's turnserver is not in the image (apt-get install coturn)".into(),
                ));
            }
            let stun_ip = stun
                .ifaces
                .first()
                .map_or(topology::STUN_IP, |i| i.v4.as_str());
            // Its second address (set up on the WAN interface): with two listening addresses
            // coturn answers RFC 5780's OTHER-ADDRESS and CHANGE-REQUEST (alternate port 3479).
            let alt_ip = layout
                .stun_alt
                .as_deref()
                .and_then(|a| a.rsplit_once(':'))
                .map(|(ip, _)| ip.to_owned());
            let mut argv: Vec<String> = vec!["turnserver".into(), "-n".into()];
            argv.extend(
                [
                    "--listening-ip",
                    stun_ip,
                    "--relay-ip",
                    stun_ip,
                    "--listening-port",
                    "3478",
                    "--no-tls",
                    "--no-dtls",
                    "--no-cli",
                    "--lt-cred-mech",
                    "--user",
                    "oneway:oneway",
                    "--realm",
                    "oneway",
                    "--log-file",
                    "stdout",
                    "--simple-log",
                    "--no-software-attribute",
                    "--pidfile",
                    "/tmp/turnserver.pid",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
            if let Some(alt) = &alt_ip {
                argv.splice(4..4, ["--listening-ip".to_owned(), alt.clone()]);
            }
            let mut p = engine.spawn(&ids[stun.key], &argv, &[]).await?;
            // Ready when it logs its UDP listener (bounded).
            let ready = async {
                while let Some(line) = p.lines.recv().await {
                    let text = match &line {
                        Line::Stdout(l) | Line::Stderr(l) => l.clone(),
                    };
                    logs.stun.push_str(&text);
                    logs.stun.push('\n');
                    if text.contains("listener opened on") || text.contains("Total General servers")
                    {
                        return true;
                    }
                }
                false
            };
            if !tokio::time::timeout(Duration::from_secs(5), ready)
                .await
                .unwrap_or(false)
            {
                return Err(Error::Docker("coturn did not start within 5 s".into()));
            }
            stun_proc = Some(p);
        }
        // Packet capture on every router (and the impairment hop).
        let mut captures = Vec::new();
        if self.options.capture {
            if self.has_tcpdump {
                for node in layout
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.role, NodeRole::Router | NodeRole::Impair))
                {
                    let argv = vec![
                        "/bin/sh".to_owned(),
                        "-c".to_owned(),
                        // `-Z root`: the image has no `tcpdump` user to drop privileges to (tcpdump
                        // exits after writing the file header otherwise).
                        "echo $$ > /tmp/tcpdump.pid; exec tcpdump -Z root -i any -n -U -w /tmp/capture.pcap".to_owned(),
                    ];
                    let p = engine.spawn(&ids[node.key], &argv, &[]).await?;
                    captures.push((node.key, p));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            } else {
                self.note("--capture: tcpdump is not in the image; no capture".into());
            }
        }
        let timeout = scenario.timeout_secs.unwrap_or(dialer.timeout_secs);
        let mut ph = Placeholders {
            timeout_secs: timeout,
            stun: layout.stun.clone().unwrap_or_default(),
            turn: layout.turn.clone().unwrap_or_default(),
            stun_alt: layout.stun_alt.clone().unwrap_or_default(),
            ..Default::default()
        };
        let peer = Path::new(crate::image::PEER_PATH);
        let listener_id = layout
            .node("listener")
            .map(|n| ids[n.key].clone())
            .ok_or_else(|| Error::Docker("layout has no listener".into()))?;
        let dialer_id = layout
            .node("dialer")
            .map(|n| ids[n.key].clone())
            .ok_or_else(|| Error::Docker("layout has no dialer".into()))?;
        let (largv, lenv) = command(listener, Role::Listen, dialer, scenario, &ph, peer)?;
        let how = listener.reply_hand_over();
        let mut l = PeerProc::start(
            engine,
            listener,
            &listener_id,
            &largv,
            &lenv,
            how == Some(&ReplyHandOver::Stdin),
            &mut env.containers,
        )
        .await?;
        let (token, candidates) = wait_token(
            &mut l.lines,
            &mut logs.listener,
            TOKEN_WAIT + Duration::from_secs(listener.startup_secs),
            &self.cancel,
        )
        .await?;
        record.candidates = candidates.clone();
        ph.token = token;
        if let Some(kind) = layout.first_candidate {
            let first = candidates
                .first()
                .and_then(|c| candidate_ip(c))
                .ok_or_else(|| Error::Docker("the token has no candidate".into()))?;
            let rule = topology::first_candidate_rule(kind, &first);
            let (code, output) = engine
                .run_script(&dialer_id, &rule, Duration::from_secs(10))
                .await?;
            logs.setup.push_str(&format!(
                "== dialer: first candidate {first} {kind:?}\n{rule}\n-- exit {code}\n{output}\n"
            ));
            if code != 0 {
                return Err(Error::Docker(format!(
                    "first-candidate rule failed: {output}"
                )));
            }
        }
        let (dargv, denv) = command(dialer, Role::Dial, listener, scenario, &ph, peer)?;
        // The runner plays the out-of-band channel: the dialer's reply code goes to the
        // listener's standard input, or to a command in the listener's container.
        let sink = match (how, l.stdin.take()) {
            (Some(ReplyHandOver::Stdin), Some(stdin)) => ReplySink::stdin(stdin),
            (Some(ReplyHandOver::Command(_)), _) => ReplySink::Container {
                engine,
                id: l.container.clone().unwrap_or_else(|| listener_id.clone()),
            },
            _ => ReplySink::None,
        };
        // Its clock (the hand-over's time) starts with the dialer.
        let mut reply = ReplyChannel::new(how, sink);
        let mut d = PeerProc::start(
            engine,
            dialer,
            &dialer_id,
            &dargv,
            &denv,
            false,
            &mut env.containers,
        )
        .await?;
        let limit = Duration::from_secs(timeout + dialer.startup_secs) + DIALER_GRACE;
        // An expected `listener-unreachable` cell ends as soon as that cause is certain.
        let settle = expect_unreachable(expect).then_some(EARLY_STOP_SETTLE);
        let ended = watch_dialer(
            &mut d.lines,
            &mut l.lines,
            logs,
            &mut reply,
            limit,
            settle,
            &self.cancel,
        )
        .await?;
        record.reply = reply.facts();
        let code = match ended {
            DialerEnd::StoppedEarly => {
                record.stopped_early = Some(format!(
                    "the listener saw nothing and the dialer tried no new address for {} s",
                    EARLY_STOP_SETTLE.as_secs()
                ));
                drain(&mut l.lines, &mut logs.listener);
                None
            }
            DialerEnd::Exited | DialerEnd::TimedOut => {
                let code = d.exit_code(engine).await;
                linger(&mut l.lines, &mut logs.listener).await;
                code
            }
        };
        if let Some(mut p) = stun_proc {
            drain(&mut p.lines, &mut logs.stun);
        }
        // The routers' daemon logs (miniupnpd), after the attempt.
        for node in &layout.nodes {
            for file in &node.logs {
                let script = format!(
                    "while IFS= read -r l; do echo \"$l\"; done < {file} 2>/dev/null || true"
                );
                if let Ok((_, output)) = engine
                    .run_script(&ids[node.key], &script, Duration::from_secs(5))
                    .await
                {
                    logs.setup
                        .push_str(&format!("== {}: {file}\n{output}\n", node.key));
                }
            }
        }
        for (key, _) in &captures {
            let id = &ids[*key];
            let _ = engine
                .run_script(
                    id,
                    // Shell built-ins only: the image has no `cat`.
                    "read pid < /tmp/tcpdump.pid; kill $pid; sleep 0.2",
                    Duration::from_secs(5),
                )
                .await;
            match copy_out(engine, id, "/tmp/capture.pcap").await {
                Ok(bytes) => {
                    let file = dir.join(format!("{key}.pcap"));
                    if std::fs::write(&file, bytes).is_ok() {
                        record.logs.push(format!(
                            "{}/{key}.pcap",
                            dir.strip_prefix(&self.options.out).unwrap_or(dir).display()
                        ));
                    }
                }
                Err(e) => self.note(format!("capture on {key}: {e}")),
            }
        }
        Ok(self.outcome(record, logs, code, Some(layout)))
    }
}

fn engine_run(engine: &Engine) -> String {
    engine
        .labels()
        .get(crate::docker::LABEL_RUN)
        .cloned()
        .unwrap_or_default()
}

/// Resources of one run, removed in reverse order.
struct Env<'a> {
    engine: &'a Engine,
    prefix: String,
    networks: Vec<String>,
    containers: Vec<String>,
}

impl Env<'_> {
    /// Removes the containers (concurrently), then the networks (concurrently).
    async fn teardown(&mut self) {
        let engine = self.engine;
        let containers: Vec<String> = self.containers.drain(..).collect();
        for r in join_all(containers.iter().map(|c| engine.remove_container(c))).await {
            if let Err(e) = r {
                tracing::warn!("teardown: {e}");
            }
        }
        let networks: Vec<String> = self.networks.drain(..).collect();
        for r in join_all(networks.iter().map(|n| engine.remove_network(n))).await {
            if let Err(e) = r {
                tracing::warn!("teardown: {e}");
            }
        }
    }
}

/// The interface holding `ip`, from `ip -o addr show` output.
fn interface_of(addrs: &str, ip: &str) -> Option<String> {
    addrs.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let _index = parts.next()?;
        let name = parts.next()?;
        let _family = parts.next()?;
        let cidr = parts.next()?;
        (cidr.split('/').next() == Some(ip))
            .then(|| name.split('@').next().unwrap_or(name).to_owned())
    })
}

/// The image of each node of a cell: the peers' host containers run their implementation's
/// variant (`base` or `browser`), every other node the base image.
struct NodeImages {
    base: String,
    listener: String,
    dialer: String,
}

impl NodeImages {
    fn of(&self, role: NodeRole) -> &str {
        match role {
            NodeRole::Listener => &self.listener,
            NodeRole::Dialer => &self.dialer,
            _ => &self.base,
        }
    }
}

/// A peer process: an exec in its host container (`image = "base"` or `"browser"`), or its own
/// container sharing the host container's network namespace.
pub(super) struct PeerProc {
    pub(super) lines: mpsc::UnboundedReceiver<Line>,
    /// Its standard input, when started with `stdin` (kept open until the run ends).
    stdin: Option<crate::docker::Stdin>,
    exec: Option<String>,
    container: Option<String>,
}

impl PeerProc {
    /// Starts a peer; with `stdin`, its standard input is attached and kept in the result.
    async fn start(
        engine: &Engine,
        manifest: &ImplManifest,
        host: &str,
        argv: &[String],
        env: &[String],
        stdin: bool,
        containers: &mut Vec<String>,
    ) -> Result<PeerProc, Error> {
        if crate::image::Variant::from_image(&manifest.image).is_some() {
            let e = engine.spawn_with(host, argv, env, stdin).await?;
            Ok(PeerProc {
                lines: e.lines,
                stdin: e.stdin,
                exec: Some(e.id),
                container: None,
            })
        } else if stdin {
            let (id, lines, input) = engine
                .spawn_container_with_stdin(&manifest.image, host, argv, env)
                .await?;
            containers.push(id.clone());
            Ok(PeerProc {
                lines,
                stdin: Some(input),
                exec: None,
                container: Some(id),
            })
        } else {
            let (id, lines) = engine
                .spawn_container(&manifest.image, host, argv, env)
                .await?;
            containers.push(id.clone());
            Ok(PeerProc {
                lines,
                stdin: None,
                exec: None,
                container: Some(id),
            })
        }
    }

    async fn exit_code(&self, engine: &Engine) -> Option<i64> {
        for _ in 0..50 {
            let code = match (&self.exec, &self.container) {
                (Some(e), _) => engine.exit_code(e).await.ok().flatten(),
                (_, Some(c)) => engine.container_exit_code(c).await.ok().flatten(),
                _ => None,
            };
            if code.is_some() {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Copies one file out of a container (through the archive API).
async fn copy_out(engine: &Engine, container: &str, path: &str) -> Result<Vec<u8>, Error> {
    let bytes = engine.download(container, path).await?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| Error::Docker(format!("archive: {e}")))?;
    let Some(entry) = entries.into_iter().next() else {
        return Err(Error::Docker(format!("{path}: empty archive")));
    };
    let mut entry = entry.map_err(|e| Error::Docker(format!("archive: {e}")))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out)
        .map_err(|e| Error::Docker(format!("archive: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_lookup_parses_ip_o_addr() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\n45: eth1@if46    inet 10.1.0.254/24 brd 10.1.0.255 scope global eth1\n";
        assert_eq!(interface_of(out, "10.1.0.254").as_deref(), Some("eth1"));
        assert_eq!(interface_of(out, "10.9.9.9"), None);
    }
}
