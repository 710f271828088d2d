//! A real signalling server for the two-way baselines: a small WebSocket relay on loopback that
//! forwards each session description from one member of a room to the others, reached through
//! a TCP proxy that delays every byte (the TCP counterpart of the UDP delaying proxy the
//! datagrams cross).
//!
//! Protocol (text frames, JSON): a client sends `{"type":"join","room":R}` and the relay
//! answers `{"type":"joined","room":R}`; any other message from a member of `R` (an
//! `RTCSessionDescriptionInit`, `{"type":"offer","sdp":…}`) is forwarded verbatim to the other
//! members of `R`.
//!
//! **Placement.** Each peer's connection to the relay gets `rtt / 4` each way, so a peer-relay
//! round trip is half the peers' RTT and a description takes `rtt / 2` from one peer to the
//! other: the relay sits on the path between the peers, the best place a server can be, and
//! offer plus answer cost one RTT. Both peers connect and join before the clock starts, as an
//! application keeps its signalling connection open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Why the relay or a client failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignallingError {
    /// A socket operation failed.
    #[error("signalling i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket handshake or a frame failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The relay or the other peer sent something this protocol does not have.
    #[error("signalling protocol: {0}")]
    Protocol(String),
    /// The connection closed before the expected message.
    #[error("signalling connection closed")]
    Closed,
}

impl From<SignallingError> for std::io::Error {
    fn from(e: SignallingError) -> Self {
        match e {
            SignallingError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

/// The WebSocket relay, running on loopback until dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts the relay on an ephemeral loopback port.
    pub async fn start() -> Result<Relay, SignallingError> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let rooms: Rooms = Arc::default();
        let task = tokio::spawn(async move {
            let mut next_id = 0u64;
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                next_id += 1;
                let (rooms, id) = (rooms.clone(), next_id);
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, id, rooms).await {
                        tracing::debug!(%peer, error = %e, "signalling client ended");
                    }
                });
            }
        });
        Ok(Relay { addr, task })
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: join a room, then forward every message to the room's others.
async fn serve(stream: TcpStream, id: u64, rooms: Rooms) -> Result<(), SignallingError> {
    stream.set_nodelay(true)?;
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut room: Option<String> = None;
    let result = async {
        while let Some(message) = stream.next().await {
            let text = match message? {
                Message::Text(text) => text,
                Message::Close(_) => break,
                _ => continue,
            };
            match (&room, parse(&text)?) {
                (None, v) if v["type"] == "join" => {
                    let name = v["room"]
                        .as_str()
                        .ok_or_else(|| SignallingError::Protocol("join without a room".into()))?
                        .to_owned();
                    lock(&rooms)
                        .entry(name.clone())
                        .or_default()
                        .push((id, tx.clone()));
                    let _ = tx.send(Message::text(
                        json!({"type": "joined", "room": name}).to_string(),
                    ));
                    room = Some(name);
                }
                (Some(name), _) => {
                    let others: Vec<_> = lock(&rooms)
                        .get(name)
                        .map(|members| {
                            members
                                .iter()
                                .filter(|(other, _)| *other != id)
                                .map(|(_, tx)| tx.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    for other in others {
                        let _ = other.send(Message::text(text.as_str()));
                    }
                }
                (None, _) => {
                    return Err(SignallingError::Protocol(
                        "a message before joining a room".into(),
                    ));
                }
            }
        }
        Ok(())
    }
    .await;
    if let Some(name) = room {
        let mut rooms = lock(&rooms);
        if let Some(members) = rooms.get_mut(&name) {
            members.retain(|(other, _)| *other != id);
            if members.is_empty() {
                rooms.remove(&name);
            }
        }
    }
    writer.abort();
    result
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse(text: &str) -> Result<Value, SignallingError> {
    serde_json::from_str(text).map_err(|e| SignallingError::Protocol(format!("not JSON: {e}")))
}

/// One peer's open signalling connection, joined to a room.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// Connects to the relay at `addr` (or a proxy in front of it) and joins `room`.
    pub async fn join(addr: SocketAddr, room: &str) -> Result<Client, SignallingError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await?;
        let mut client = Client { ws };
        client
            .ws
            .send(Message::text(
                json!({"type": "join", "room": room}).to_string(),
            ))
            .await?;
        let joined = client.receive().await?;
        if joined["type"] != "joined" {
            return Err(SignallingError::Protocol(format!(
                "expected joined, got {joined}"
            )));
        }
        Ok(client)
    }

    /// Sends a session description of `kind` (`offer` or `answer`).
    pub async fn send_description(&mut self, kind: &str, sdp: &str) -> Result<(), SignallingError> {
        let message = json!({"type": kind, "sdp": sdp}).to_string();
        self.ws.send(Message::text(message)).await?;
        Ok(())
    }

    /// Waits for the next session description of `kind`; returns its SDP.
    pub async fn receive_description(&mut self, kind: &str) -> Result<String, SignallingError> {
        let message = self.receive().await?;
        match (message["type"].as_str(), message["sdp"].as_str()) {
            (Some(k), Some(sdp)) if k == kind => Ok(sdp.to_owned()),
            _ => Err(SignallingError::Protocol(format!(
                "expected an {kind}, got {message}"
            ))),
        }
    }

    async fn receive(&mut self) -> Result<Value, SignallingError> {
        loop {
            match self.ws.next().await.ok_or(SignallingError::Closed)?? {
                Message::Text(text) => return parse(&text),
                Message::Close(_) => return Err(SignallingError::Closed),
                _ => {}
            }
        }
    }
}

/// Two peers' signalling connections to one relay, joined to one fresh room: the offerer's and
/// the answerer's.
#[derive(Debug)]
pub struct PeerPair {
    offerer: Arc<tokio::sync::Mutex<Client>>,
    answerer: Arc<tokio::sync::Mutex<Client>>,
}

impl PeerPair {
    /// Connects both peers to `addr` and joins them to `room`.
    pub async fn join(addr: SocketAddr, room: &str) -> Result<PeerPair, SignallingError> {
        let offerer = Client::join(addr, room).await?;
        let answerer = Client::join(addr, room).await?;
        Ok(PeerPair {
            offerer: Arc::new(tokio::sync::Mutex::new(offerer)),
            answerer: Arc::new(tokio::sync::Mutex::new(answerer)),
        })
    }

    /// Carries `sdp` of `kind` through the relay: an offer from the offerer to the answerer,
    /// anything else from the answerer to the offerer. Resolves to the text received.
    pub fn carry(
        &self,
        kind: &'static str,
        sdp: String,
    ) -> impl std::future::Future<Output = Result<String, SignallingError>> + Send + 'static {
        let (from, to) = if kind == "offer" {
            (self.offerer.clone(), self.answerer.clone())
        } else {
            (self.answerer.clone(), self.offerer.clone())
        };
        async move {
            from.lock().await.send_description(kind, &sdp).await?;
            to.lock().await.receive_description(kind).await
        }
    }
}

/// A TCP proxy on loopback in front of `target` that delays every byte by `delay` in each
/// direction (order and spacing kept), until dropped.
#[derive(Debug)]
pub struct DelayingTcpProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DelayingTcpProxy {
    /// Starts the proxy on an ephemeral loopback port.
    pub async fn start(target: SocketAddr, delay: Duration) -> std::io::Result<DelayingTcpProxy> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut pumps = Vec::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                pumps.retain(|p: &AbortOnDrop| !p.0.is_finished());
                pumps.push(AbortOnDrop(tokio::spawn(delayed_copy(
                    in_read, out_write, delay,
                ))));
                pumps.push(AbortOnDrop(tokio::spawn(delayed_copy(
                    out_read, in_write, delay,
                ))));
            }
        });
        Ok(DelayingTcpProxy { addr, task })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayingTcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    // Ends by itself once `tx` is gone and the queue is delivered.
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    // Let the writer deliver what is still queued, then end.
    let _ = writer.await;
}
