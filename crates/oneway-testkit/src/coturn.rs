//! coturn's `turnserver` on loopback, for TURN tests: TURN over TCP (and UDP) on a free port of
//! 127.0.0.1, long-term credentials `oneway`/`oneway` in realm `oneway`, relay ports in
//! [`RELAY_PORTS`], loopback peers allowed. Nothing but loopback is contacted.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The relay port range the server allocates from (so a test can tell a relayed address).
pub const RELAY_PORTS: std::ops::RangeInclusive<u16> = 61000..=61999;
/// User name and password of the server's one user.
pub const CREDENTIALS: (&str, &str) = ("oneway", "oneway");

/// A running `turnserver`, killed on drop.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    /// Its listening address (TCP and UDP).
    pub addr: SocketAddr,
}

impl Coturn {
    /// Starts `turnserver` on loopback and waits (at most 5 s) until it accepts TCP. `None`
    /// when coturn is not installed (`apt-get install coturn`), so tests can skip.
    pub fn start() -> Option<Coturn> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let pidfile = std::env::temp_dir().join(format!("oneway-coturn-{port}.pid"));
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
                "--listening-port",
                &port.to_string(),
                "--min-port",
                &RELAY_PORTS.start().to_string(),
                "--max-port",
                &RELAY_PORTS.end().to_string(),
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--lt-cred-mech",
                "--user",
                &format!("{}:{}", CREDENTIALS.0, CREDENTIALS.1),
                "--realm",
                "oneway",
                "--allow-loopback-peers",
                "--no-software-attribute",
                "--log-file",
                "stdout",
                "--simple-log",
                "--pidfile",
            ])
            .arg(&pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("turnserver not started ({e}); skipping (apt-get install coturn)");
                return None;
            }
        };
        let server = Coturn { child, addr };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("turnserver did not listen on {addr} within 5 s");
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
