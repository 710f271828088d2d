//! A TURN relay for a dialer's tokio driver (feature `tokio`; the rest of the crate owns no
//! socket): one TCP connection to the server, driven by the sans-IO [`TurnClient`]. Two small
//! tasks own the stream halves (connect + read, write). The driver feeds the relay what they
//! report ([`Relay::recv`], [`Relay::handle_io`]) and time, adds the relayed candidate to its
//! ICE agent when [`RelayOutput::add_candidate`] says so, routes the agent's transmits from the
//! relayed address through [`Relay::send`], and hands [`RelayOutput::received`] back to the
//! agent as datagrams received on the relayed address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{TurnClient, TurnError, TurnEvent, TurnServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longest wait for the TCP connection to the TURN server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from the server at once.
const READ_BUFFER: usize = 64 * 1024;
/// Most permissions asked for peers of already permitted addresses.
const MAX_EXTRA_PERMISSIONS: usize = 8;

/// What the connection tasks report to the driver.
#[derive(Debug)]
pub enum LinkIo {
    /// Connected; bytes for the server go to `writer`.
    Connected {
        /// The connection's local address.
        local: SocketAddr,
        /// Where bytes for the server go.
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// Bytes read from the server.
    Data(Vec<u8>),
    /// The connection failed or ended.
    Closed(String),
}

/// What the driver must do after the relay handled an input.
#[derive(Debug, Default)]
pub struct RelayOutput {
    /// `(relayed, local)`: the relayed address to add to the ICE agent as a local candidate,
    /// and the local address of the connection to the server (its related address). Given
    /// once, when the allocation and its permissions are ready.
    pub add_candidate: Option<(SocketAddr, SocketAddr)>,
    /// Datagrams relayed from peers: `(peer, payload)`, received on the relayed address.
    pub received: Vec<(SocketAddr, Vec<u8>)>,
}

/// A dialer's relay: the connection, the client, and the peers it asks permissions for.
/// Dropping it closes the connection.
pub struct Relay {
    server: TurnServer,
    io: mpsc::UnboundedReceiver<LinkIo>,
    /// Whether the connection tasks may still report (false once their channel closed).
    io_open: bool,
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    client: Option<TurnClient>,
    /// The token's remote addresses (in the relay's family once allocated).
    peers: Vec<SocketAddr>,
    /// Permissions asked for and not yet answered.
    pending_permissions: usize,
    /// Permissions asked for peers of an already permitted address (see [`Relay::send`]).
    extra_permissions: usize,
    candidate_added: bool,
    /// The first failure (the relay is unusable once set), for the dial's error report.
    pub error: Option<TurnError>,
    task: tokio::task::AbortHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Starts connecting to `server`; permissions will be asked for `peers`.
    pub fn start(server: TurnServer, peers: Vec<SocketAddr>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let addr = server.addr;
        let task = tokio::spawn(connection(addr, tx)).abort_handle();
        tracing::info!(server = %addr, "connecting to the TURN server (TCP)");
        Relay {
            server,
            io: rx,
            io_open: true,
            writer: None,
            client: None,
            peers,
            pending_permissions: 0,
            extra_permissions: 0,
            candidate_added: false,
            error: None,
            task,
        }
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.client.as_ref().and_then(TurnClient::relayed)
    }

    /// Waits for the connection tasks (pending forever once they ended).
    pub async fn recv(&mut self) -> Option<LinkIo> {
        if !self.io_open {
            return std::future::pending().await;
        }
        let io = self.io.recv().await;
        self.io_open = io.is_some();
        io
    }

    /// When [`Relay::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.client.as_mut().and_then(TurnClient::poll_timeout)
    }

    /// Handles one report of the connection tasks.
    pub fn handle_io(&mut self, now: Instant, io: Option<LinkIo>) -> RelayOutput {
        match io {
            Some(LinkIo::Connected { local, writer }) => {
                tracing::debug!(%local, server = %self.server.addr, "TURN connection up");
                self.writer = Some(writer);
                match TurnClient::new(&self.server, local) {
                    Ok(mut client) => {
                        if let Err(e) = client.allocate(now) {
                            self.error.get_or_insert(e);
                        }
                        self.client = Some(client);
                    }
                    Err(e) => {
                        self.error.get_or_insert(e);
                    }
                }
            }
            Some(LinkIo::Data(bytes)) => {
                if let Some(client) = self.client.as_mut()
                    && let Err(e) = client.handle_stream_data(now, &bytes)
                {
                    self.error.get_or_insert(e);
                }
            }
            Some(LinkIo::Closed(reason)) => {
                tracing::warn!(server = %self.server.addr, %reason, "TURN connection ended");
                self.error.get_or_insert(TurnError::Unreachable(format!(
                    "{}: {reason}",
                    self.server.addr
                )));
                self.client = None;
                self.writer = None;
            }
            None => {
                self.error.get_or_insert(TurnError::Unreachable(
                    "TURN connection task ended".to_owned(),
                ));
                self.client = None;
            }
        }
        self.after_input(now)
    }

    /// Advances time.
    pub fn handle_timeout(&mut self, now: Instant) -> RelayOutput {
        if let Some(client) = self.client.as_mut() {
            client.handle_timeout(now);
        }
        self.after_input(now)
    }

    /// Sends a datagram the ICE agent addressed from the relayed address.
    pub fn send(&mut self, now: Instant, destination: SocketAddr, contents: &[u8]) {
        // A peer that sent from another port of a permitted address (a listener's reply-route
        // check, `spec/handshake.md` §11) is reachable: the client asks for that exact peer
        // too (bounded), and ICE's retries carry the check once it is granted.
        if let Some(client) = self.client.as_mut()
            && !client.is_permitted(destination)
            && client.is_ip_permitted(destination)
            && self.extra_permissions < MAX_EXTRA_PERMISSIONS
            && client.create_permission(now, destination).is_ok()
        {
            self.extra_permissions += 1;
        }
        if let Some(client) = self.client.as_mut()
            && let Err(e) = client.send_to(now, destination, contents)
        {
            // Like UDP loss: ICE retries its checks, SCTP its data.
            tracing::debug!(%destination, error = %e, "not relayed");
        }
        self.flush();
    }

    /// Handles the client's events and writes what it has for the server.
    fn after_input(&mut self, now: Instant) -> RelayOutput {
        let mut out = RelayOutput::default();
        let Some(client) = self.client.as_mut() else {
            return out;
        };
        // Bounded by the client's queue ([`crate::MAX_QUEUE`]).
        while let Some(event) = client.poll_event() {
            match event {
                TurnEvent::Allocated { relayed } => {
                    self.peers.retain(|p| p.is_ipv4() == relayed.is_ipv4());
                    for peer in self.peers.clone() {
                        match client.create_permission(now, peer) {
                            Ok(()) => self.pending_permissions += 1,
                            Err(e) => tracing::warn!(%peer, error = %e, "TURN permission"),
                        }
                    }
                }
                TurnEvent::PermissionCreated { peer } => {
                    tracing::debug!(%peer, "TURN permission granted");
                    self.pending_permissions = self.pending_permissions.saturating_sub(1);
                }
                TurnEvent::PermissionFailed { peer, error } => {
                    tracing::warn!(%peer, %error, "TURN permission refused");
                    self.pending_permissions = self.pending_permissions.saturating_sub(1);
                }
                TurnEvent::Data { peer, data } => out.received.push((peer, data)),
                TurnEvent::Failed(error) => {
                    self.error.get_or_insert(error);
                }
            }
        }
        if !self.candidate_added
            && self.pending_permissions == 0
            && let Some(relayed) = client.relayed()
            && self.peers.iter().any(|p| client.is_permitted(*p))
        {
            self.candidate_added = true;
            out.add_candidate = Some((relayed, client.local()));
        }
        self.flush();
        out
    }

    /// Hands the client's pending writes to the writer task.
    fn flush(&mut self) {
        let (Some(client), Some(writer)) = (self.client.as_mut(), self.writer.as_ref()) else {
            return;
        };
        while let Some(bytes) = client.poll_transmit() {
            if writer.send(bytes).is_err() {
                break;
            }
        }
    }
}

/// Connects to `server`, then reads until the stream ends; a writer task takes what the driver
/// sends. Every outcome is reported on `tx`.
async fn connection(server: SocketAddr, tx: mpsc::UnboundedSender<LinkIo>) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = tx.send(LinkIo::Closed(format!("connect: {e}")));
            return;
        }
        Err(_) => {
            let _ = tx.send(LinkIo::Closed(format!(
                "connect: no answer within {CONNECT_TIMEOUT:?}"
            )));
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = tx.send(LinkIo::Closed(format!("local address: {e}")));
            return;
        }
    };
    let (mut read, mut write) = stream.into_split();
    let (writer_tx, mut writer_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = writer_rx.recv().await {
            if let Err(e) = write.write_all(&bytes).await {
                tracing::debug!(error = %e, "TURN write failed");
                return;
            }
        }
    });
    if tx
        .send(LinkIo::Connected {
            local,
            writer: writer_tx,
        })
        .is_err()
    {
        writer.abort();
        return;
    }
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match read.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(LinkIo::Closed("closed by the server".to_owned()));
                break;
            }
            Ok(n) => {
                if tx.send(LinkIo::Data(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(LinkIo::Closed(format!("read: {e}")));
                break;
            }
        }
    }
    writer.abort();
}
