//! UDP sockets for the drivers: each bound to a concrete address (so every datagram's
//! destination is known without IP_PKTINFO), with a receive task feeding one queue.
//!
//! The queue is bounded twice: by count ([`RECEIVE_QUEUE`]) and by bytes
//! ([`RECEIVE_QUEUE_BYTES`]). Each datagram is copied into a buffer of its own length, so
//! ordinary WebRTC traffic (at most about 1.2 kB a datagram) is bounded by the count, about
//! 1.2 MiB; the byte bound stops datagrams near the 64 KiB maximum (junk: no WebRTC stack sends
//! them) from holding 1024 × 64 KiB = 64 MiB.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc};

/// Largest datagram read.
pub const MAX_DATAGRAM: usize = 65_536;
/// Datagrams queued between the receive tasks and the driver; beyond it the receive task
/// waits (the kernel buffer then drops, as UDP may).
pub const RECEIVE_QUEUE: usize = 1024;
/// Payload bytes queued between the receive tasks and the driver; beyond it the receive task
/// waits, as for [`RECEIVE_QUEUE`]. Larger than [`RECEIVE_QUEUE`] full datagrams of ordinary
/// WebRTC traffic, so it only ever binds on oversized datagrams.
pub const RECEIVE_QUEUE_BYTES: usize = 4 << 20;

/// A received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// Sender.
    pub source: SocketAddr,
    /// The socket it arrived on.
    pub destination: SocketAddr,
    /// Payload.
    pub contents: Vec<u8>,
}

/// Sockets bound to concrete addresses, and the queue their receive tasks fill.
#[derive(Debug)]
pub struct Sockets {
    sockets: Vec<Arc<UdpSocket>>,
    receiver: mpsc::Receiver<Datagram>,
    /// Permits for the bytes not queued: a receive task takes a datagram's length before
    /// queueing it, [`Sockets::recv`] gives it back.
    budget: Arc<Semaphore>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Sockets {
    /// Binds one socket per address. Addresses must not be unspecified.
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Sockets> {
        let (tx, receiver) = mpsc::channel(RECEIVE_QUEUE);
        let budget = Arc::new(Semaphore::new(RECEIVE_QUEUE_BYTES));
        let mut sockets = Vec::new();
        let mut tasks = Vec::new();
        for addr in addrs {
            if addr.ip().is_unspecified() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{addr}: bind a concrete address (this stack does not read IP_PKTINFO)"
                    ),
                ));
            }
            let socket = Arc::new(UdpSocket::from_std(
                oneway_connection::net::bind_udp(*addr)?.into(),
            )?);
            let local = socket.local_addr()?;
            let reader = Arc::clone(&socket);
            let tx = tx.clone();
            let budget = Arc::clone(&budget);
            let task = tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match reader.recv_from(&mut buf).await {
                        Ok((n, source)) => {
                            // n <= MAX_DATAGRAM < RECEIVE_QUEUE_BYTES: always satisfiable.
                            let Ok(permit) = budget.acquire_many(n.min(MAX_DATAGRAM) as u32).await
                            else {
                                return;
                            };
                            // Given back by `recv` when the datagram leaves the queue.
                            permit.forget();
                            let d = Datagram {
                                source,
                                destination: local,
                                contents: buf[..n].to_vec(),
                            };
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                        // ICMP errors (port unreachable) surface here on some systems.
                        Err(e) => tracing::debug!(error = %e, "receive failed"),
                    }
                }
            });
            tasks.push(task.abort_handle());
            sockets.push(socket);
        }
        Ok(Sockets {
            sockets,
            receiver,
            budget,
            tasks,
        })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The next datagram from any socket.
    pub async fn recv(&mut self) -> Option<Datagram> {
        let d = self.receiver.recv().await?;
        self.budget.add_permits(d.contents.len());
        Some(d)
    }

    /// Datagrams received and not yet taken by [`Sockets::recv`].
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }

    /// Payload bytes received and not yet taken by [`Sockets::recv`] (at most
    /// [`RECEIVE_QUEUE_BYTES`]).
    pub fn queued_bytes(&self) -> usize {
        RECEIVE_QUEUE_BYTES.saturating_sub(self.budget.available_permits())
    }

    /// Sends from the socket bound to `source` (UDP: a full buffer drops the datagram).
    pub fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let socket = self
            .sockets
            .iter()
            .find(|s| s.local_addr().is_ok_and(|a| a == source));
        match socket {
            Some(s) => {
                if let Err(e) = s.try_send_to(contents, destination) {
                    tracing::debug!(%destination, error = %e, "send failed");
                }
            }
            None => tracing::debug!(%source, "no socket bound to this source"),
        }
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The local address the system would send from to reach `remote` (no packet is sent).
pub fn route_source(remote: SocketAddr) -> std::io::Result<IpAddr> {
    if remote.ip().is_loopback() {
        return Ok(remote.ip());
    }
    let any: SocketAddr = if remote.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(remote)?;
    Ok(probe.local_addr()?.ip())
}

/// The machine's usable interface addresses (not loopback, not link-local), IPv4 first, in
/// interface order; with `loopback`, `127.0.0.1` first and `::1` (if usable) last.
pub fn host_addresses(loopback: bool) -> std::io::Result<Vec<IpAddr>> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    if loopback {
        v4.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    for iface in if_addrs::get_if_addrs()? {
        let ip = iface.ip();
        let usable = match ip {
            IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_unspecified(),
            IpAddr::V6(a) => !a.is_loopback() && !a.is_unicast_link_local() && !a.is_unspecified(),
        };
        if usable && !v4.contains(&ip) && !v6.contains(&ip) {
            if ip.is_ipv4() {
                v4.push(ip);
            } else {
                v6.push(ip);
            }
        }
    }
    if loopback && std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        v6.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    v4.extend(v6);
    Ok(v4)
}
