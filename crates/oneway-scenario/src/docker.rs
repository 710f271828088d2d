//! The Docker engine, through the `bollard` client that `testcontainers` re-exports.
//!
//! Everything created carries the label [`LABEL`] plus the run's id and the runner's process
//! id, so a sweep can remove whatever a crashed or interrupted run left behind.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use testcontainers::bollard::Docker;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use testcontainers::bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
};
use testcontainers::bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use crate::Error;

/// Label carried by every container, network and image the suite creates.
pub const LABEL: &str = "oneway.suite";
/// Label with the run id.
pub const LABEL_RUN: &str = "oneway.suite.run";
/// Label with the runner's process id (a sweep removes resources of dead runners).
pub const LABEL_PID: &str = "oneway.suite.pid";

/// How long one Docker API call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    run: String,
}

fn docker_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Docker(format!("{what}: {e}"))
}

async fn timed<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| docker_err(what, e)),
        Err(_) => Err(Error::Docker(format!("{what}: no answer within 60 s"))),
    }
}

/// One line of a process's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A standard-output line.
    Stdout(String),
    /// A standard-error line.
    Stderr(String),
}

/// A process started with `docker exec`, streaming its output lines.
#[derive(Debug)]
pub struct Exec {
    /// Exec id (for its exit code).
    pub id: String,
    /// Output lines, each stream split on its own.
    pub lines: mpsc::UnboundedReceiver<Line>,
    /// Its standard input, when it was started with one attached.
    pub stdin: Option<Stdin>,
}

/// The standard input of a process in a container (an attached exec or container). Dropping
/// it closes the attach stream.
pub struct Stdin(pub std::pin::Pin<Box<dyn AsyncWrite + Send>>);

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stdin")
    }
}

impl Engine {
    /// Connects to the engine `DOCKER_HOST` names (`unix:///path` or plain `tcp://host:port`;
    /// for an engine on another machine, forward its socket over SSH to one of these), else
    /// the default socket, and checks that it answers within 3 seconds. `run` is this run's
    /// id, put on every label.
    ///
    /// Every call goes through the engine's API (containers, execs, archives, logs), so the
    /// engine may be on another machine; the loopback cells still run on this one.
    pub async fn connect(run: &str) -> Result<Engine, Error> {
        let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let named = |e: String| match &host {
            Some(h) => Error::NoDocker(format!("DOCKER_HOST={h}: {e}")),
            None => Error::NoDocker(e),
        };
        let docker = Docker::connect_with_defaults().map_err(|e| named(e.to_string()))?;
        let docker = tokio::time::timeout(Duration::from_secs(3), docker.negotiate_version())
            .await
            .map_err(|_| named("the engine did not answer within 3 s".into()))?
            .map_err(|e| named(e.to_string()))?;
        tokio::time::timeout(Duration::from_secs(3), docker.ping())
            .await
            .map_err(|_| named("the engine did not answer within 3 s".into()))?
            .map_err(|e| named(e.to_string()))?;
        Ok(Engine {
            docker,
            run: run.to_owned(),
        })
    }

    /// The bollard client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Labels for a new resource.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_owned(), "1".to_owned()),
            (LABEL_RUN.to_owned(), self.run.clone()),
            (LABEL_PID.to_owned(), std::process::id().to_string()),
        ])
    }

    /// Removes containers and networks labelled [`LABEL`]: all of this run's (`this_run`),
    /// and any whose runner process is gone. Returns how many resources were removed.
    pub async fn sweep(&self, this_run: bool) -> Result<usize, Error> {
        let filters = HashMap::from([("label", vec![LABEL])]);
        let containers = timed(
            "listing containers",
            self.docker.list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        let stale = |labels: Option<&HashMap<String, String>>| {
            let Some(labels) = labels else { return false };
            if this_run && labels.get(LABEL_RUN) == Some(&self.run) {
                return true;
            }
            match labels.get(LABEL_PID).and_then(|p| p.parse::<u32>().ok()) {
                Some(pid) => {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }
                None => true,
            }
        };
        let mut removed = 0;
        for c in containers {
            if stale(c.labels.as_ref())
                && let Some(id) = c.id
            {
                self.remove_container(&id).await?;
                removed += 1;
            }
        }
        let networks = timed(
            "listing networks",
            self.docker.list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            )),
        )
        .await?;
        for n in networks {
            if stale(n.labels.as_ref())
                && let Some(id) = n.id
            {
                self.remove_network(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Creates a bridge network with fixed subnets. Not `internal`: Docker's isolation rules
    /// for internal networks drop routed traffic whose source is outside the subnet, which
    /// every NAT scenario needs; instead every container's default route is replaced, so
    /// nothing leaves through the bridge's gateway.
    pub async fn create_network(
        &self,
        name: &str,
        v4: &str,
        v6: Option<&str>,
    ) -> Result<String, Error> {
        let mut config = vec![IpamConfig {
            subnet: Some(v4.to_owned()),
            ..Default::default()
        }];
        if let Some(v6) = v6 {
            config.push(IpamConfig {
                subnet: Some(v6.to_owned()),
                ..Default::default()
            });
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            enable_ipv6: Some(v6.is_some()),
            ipam: Some(Ipam {
                config: Some(config),
                ..Default::default()
            }),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_ip_masquerade".to_owned(),
                "false".to_owned(),
            )])),
            labels: Some(self.labels()),
            ..Default::default()
        };
        let created = timed(
            &format!("creating network {name} ({v4})"),
            self.docker.create_network(request),
        )
        .await?;
        Ok(created.id)
    }

    /// Removes a network (ignores one that is already gone).
    pub async fn remove_network(&self, id: &str) -> Result<(), Error> {
        match tokio::time::timeout(CALL_TIMEOUT, self.docker.remove_network(id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.to_string().contains("404") || e.to_string().contains("No such") => {
                Ok(())
            }
            Ok(Err(e)) => Err(docker_err(&format!("removing network {id}"), e)),
            Err(_) => Err(Error::Docker(format!("removing network {id}: timeout"))),
        }
    }

    /// Creates and starts a container on `networks` (`(network, ipv4, ipv6)`, the first one is
    /// attached at creation, the others before start), running `sleep infinity`.
    pub async fn start_node(
        &self,
        name: &str,
        image: &str,
        networks: &[(String, String, Option<String>)],
        sysctls: HashMap<String, String>,
    ) -> Result<String, Error> {
        let endpoint = |v4: &str, v6: &Option<String>| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(v4.to_owned()),
                ipv6_address: v6.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = networks
            .first()
            .ok_or_else(|| Error::Docker(format!("node {name} has no network")))?;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["/bin/sleep".into(), "infinity".into()]),
            labels: Some(self.labels()),
            env: Some(vec![
                "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ]),
            host_config: Some(HostConfig {
                cap_add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                sysctls: Some(sysctls),
                network_mode: Some(first.0.clone()),
                devices: Some(vec![testcontainers::bollard::models::DeviceMapping {
                    path_on_host: Some("/dev/net/tun".into()),
                    path_in_container: Some("/dev/net/tun".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]),
                init: Some(false),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    first.0.clone(),
                    endpoint(&first.1, &first.2),
                )])),
            }),
            ..Default::default()
        };
        let created = timed(
            &format!("creating container {name}"),
            self.docker.create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                body,
            ),
        )
        .await?;
        for (net, v4, v6) in networks.iter().skip(1) {
            timed(
                &format!("attaching {name} to {net}"),
                self.docker.connect_network(
                    net,
                    NetworkConnectRequest {
                        container: created.id.clone(),
                        endpoint_config: Some(endpoint(v4, v6)),
                    },
                ),
            )
            .await?;
        }
        self.start_container(&format!("container {name}"), &created.id)
            .await?;
        Ok(created.id)
    }

    /// Starts a created container (`what` names it in errors).
    async fn start_container(&self, what: &str, id: &str) -> Result<(), Error> {
        timed(
            &format!("starting {what}"),
            self.docker.start_container(
                id,
                None::<testcontainers::bollard::query_parameters::StartContainerOptions>,
            ),
        )
        .await
    }

    /// Force-removes a container (ignores one that is already gone).
    pub async fn remove_container(&self, id: &str) -> Result<(), Error> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match tokio::time::timeout(
            CALL_TIMEOUT,
            self.docker.remove_container(id, Some(options)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.to_string().contains("404") || e.to_string().contains("No such") => {
                Ok(())
            }
            Ok(Err(e)) => Err(docker_err(&format!("removing container {id}"), e)),
            Err(_) => Err(Error::Docker(format!("removing container {id}: timeout"))),
        }
    }

    /// Starts `argv` in a container and streams its output.
    pub async fn spawn(
        &self,
        container: &str,
        argv: &[String],
        env: &[String],
    ) -> Result<Exec, Error> {
        self.spawn_with(container, argv, env, false).await
    }

    /// [`Engine::spawn`], with the process's standard input attached when `stdin` (returned
    /// in [`Exec::stdin`]; the process sees end of file when it is dropped).
    pub async fn spawn_with(
        &self,
        container: &str,
        argv: &[String],
        env: &[String],
        stdin: bool,
    ) -> Result<Exec, Error> {
        let created = timed(
            "creating exec",
            self.docker.create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv.to_vec()),
                    env: Some(env.to_vec()),
                    ..Default::default()
                },
            ),
        )
        .await?;
        let started = timed(
            "starting exec",
            self.docker.start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            ),
        )
        .await?;
        match started {
            StartExecResults::Attached { output, input } => Ok(Exec {
                id: created.id,
                lines: forward_lines(output),
                stdin: stdin.then(|| Stdin(input)),
            }),
            StartExecResults::Detached => Err(Error::Docker("exec started detached".into())),
        }
    }

    /// The exit code of a finished exec (`None` while it runs).
    pub async fn exit_code(&self, exec: &str) -> Result<Option<i64>, Error> {
        let inspected = timed("inspecting exec", self.docker.inspect_exec(exec)).await?;
        Ok(exit_of(inspected.running, inspected.exit_code))
    }

    /// Starts a container of `image` running `argv` in the network namespace of container
    /// `host` (how a third-party image joins a topology), and streams its output.
    pub async fn spawn_container(
        &self,
        image: &str,
        host: &str,
        argv: &[String],
        env: &[String],
    ) -> Result<(String, mpsc::UnboundedReceiver<Line>), Error> {
        self.spawn_peer_container(image, &format!("container:{host}"), argv, env)
            .await
    }

    /// [`Engine::spawn_container`] with the process's standard input open and attached (a
    /// listener that takes reply codes on standard input).
    pub async fn spawn_container_with_stdin(
        &self,
        image: &str,
        host: &str,
        argv: &[String],
        env: &[String],
    ) -> Result<(String, mpsc::UnboundedReceiver<Line>, Stdin), Error> {
        let (id, lines, stdin) = self
            .spawn_peer(image, &format!("container:{host}"), argv, env, true)
            .await?;
        let stdin = stdin.ok_or_else(|| Error::Docker("no standard input attached".into()))?;
        Ok((id, lines, stdin))
    }

    /// Starts a container of `image` running `argv` with Docker network mode `network_mode`
    /// (`container:<host>` in a topology, `none` to try an image alone), and streams its
    /// output. This is the only way the suite starts a third-party image, so what it sets is
    /// what such a peer gets (`docs/implementers.md`, "What the container provides"): the
    /// image's own user, working directory and environment, plus `env`; no extra mounts,
    /// capabilities or resource limits.
    pub async fn spawn_peer_container(
        &self,
        image: &str,
        network_mode: &str,
        argv: &[String],
        env: &[String],
    ) -> Result<(String, mpsc::UnboundedReceiver<Line>), Error> {
        let (id, lines, _) = self
            .spawn_peer(image, network_mode, argv, env, false)
            .await?;
        Ok((id, lines))
    }

    /// [`Engine::spawn_peer_container`], with standard input open and attached when `stdin`
    /// (attached after the start: nothing is written before the runner has a reply code).
    async fn spawn_peer(
        &self,
        image: &str,
        network_mode: &str,
        argv: &[String],
        env: &[String],
        stdin: bool,
    ) -> Result<(String, mpsc::UnboundedReceiver<Line>, Option<Stdin>), Error> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(argv.to_vec()),
            env: Some(env.to_vec()),
            open_stdin: stdin.then_some(true),
            stdin_once: stdin.then_some(false),
            labels: Some(self.labels()),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = timed(
            &format!("creating a container of {image}"),
            self.docker.create_container(
                None::<testcontainers::bollard::query_parameters::CreateContainerOptions>,
                body,
            ),
        )
        .await?;
        self.start_container(&format!("a container of {image}"), &created.id)
            .await?;
        let input = if stdin {
            let attached = timed(
                &format!("attaching to the standard input of a container of {image}"),
                self.docker.attach_container(
                    &created.id,
                    Some(
                        AttachContainerOptionsBuilder::new()
                            .stdin(true)
                            .stream(true)
                            .build(),
                    ),
                ),
            )
            .await?;
            Some(Stdin(attached.input))
        } else {
            None
        };
        let logs = self.docker.logs(
            &created.id,
            Some(
                testcontainers::bollard::query_parameters::LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        Ok((created.id, forward_lines(logs), input))
    }

    /// The exit code of a container (`None` while it runs).
    pub async fn container_exit_code(&self, id: &str) -> Result<Option<i64>, Error> {
        let inspected = timed(
            "inspecting container",
            self.docker.inspect_container(
                id,
                None::<testcontainers::bollard::query_parameters::InspectContainerOptions>,
            ),
        )
        .await?;
        let state = inspected.state.unwrap_or_default();
        Ok(exit_of(state.running, state.exit_code))
    }

    /// Downloads a path from a container as a tar archive.
    pub async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, Error> {
        let mut stream = self.docker.download_from_container(
            container,
            Some(
                testcontainers::bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
                    .path(path)
                    .build(),
            ),
        );
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| docker_err(&format!("downloading {path}"), e))?;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Runs `sh -c script` in a container and waits (bounded by `limit`) for it to end.
    /// Returns the exit code and the combined output.
    pub async fn run_script(
        &self,
        container: &str,
        script: &str,
        limit: Duration,
    ) -> Result<(i64, String), Error> {
        let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        self.run_argv(container, &argv, limit).await
    }

    /// Runs `argv` in a container and waits (bounded by `limit`) for it to end. Returns the
    /// exit code and the combined output.
    pub async fn run_argv(
        &self,
        container: &str,
        argv: &[String],
        limit: Duration,
    ) -> Result<(i64, String), Error> {
        let script = argv.join(" ");
        let mut exec = self.spawn(container, argv, &[]).await?;
        let mut output = String::new();
        let collect = async {
            while let Some(line) = exec.lines.recv().await {
                match line {
                    Line::Stdout(l) | Line::Stderr(l) => {
                        output.push_str(&l);
                        output.push('\n');
                    }
                }
            }
        };
        if tokio::time::timeout(limit, collect).await.is_err() {
            return Err(Error::Docker(format!(
                "`{script}` did not finish within {limit:?}"
            )));
        }
        // The stream ends just before the exec is marked as finished; poll briefly.
        for _ in 0..50 {
            if let Some(code) = self.exit_code(&exec.id).await? {
                return Ok((code, output));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(Error::Docker(format!("`{script}`: no exit code")))
    }
}

/// The exit code of an exec or a container once it is no longer running.
fn exit_of(running: Option<bool>, exit_code: Option<i64>) -> Option<i64> {
    if running == Some(true) {
        None
    } else {
        exit_code
    }
}

/// Forwards a Docker output stream (an attached exec, or a container's followed logs) as
/// lines, stdout and stderr split separately; a last unterminated line is sent at the end.
fn forward_lines<S, E>(stream: S) -> mpsc::UnboundedReceiver<Line>
where
    S: futures_util::Stream<Item = Result<LogOutput, E>> + Send + 'static,
    E: Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut out = LineSplitter::default();
        let mut err = LineSplitter::default();
        while let Some(Ok(chunk)) = stream.next().await {
            match chunk {
                LogOutput::StdOut { message } => {
                    for l in out.push(&message) {
                        let _ = tx.send(Line::Stdout(l));
                    }
                }
                LogOutput::StdErr { message } => {
                    for l in err.push(&message) {
                        let _ = tx.send(Line::Stderr(l));
                    }
                }
                _ => {}
            }
        }
        if let Some(l) = out.finish() {
            let _ = tx.send(Line::Stdout(l));
        }
        if let Some(l) = err.finish() {
            let _ = tx.send(Line::Stderr(l));
        }
    });
    rx
}

/// Splits a byte stream into lines (bounded: a line longer than 1 MiB is cut).
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

const MAX_LINE: usize = 1 << 20;

impl LineSplitter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' || self.pending.len() >= MAX_LINE {
                lines.push(String::from_utf8_lossy(&self.pending).into_owned());
                self.pending.clear();
                if b == b'\n' {
                    continue;
                }
            }
            self.pending.push(b);
        }
        lines
    }

    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| String::from_utf8_lossy(&self.pending).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_joins_chunks_into_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"{\"event\":"), Vec::<String>::new());
        assert_eq!(s.push(b"\"token\"}\nlog"), vec!["{\"event\":\"token\"}"]);
        assert_eq!(s.finish().as_deref(), Some("log"));
    }
}
