//! UDP sockets that report each datagram's destination address (IP_PKTINFO, via `quinn-udp`)
//! and send from a chosen source address, plus the host addresses to advertise.
//!
//! One wildcard socket per address family serves every local address, and str0m still sees
//! the real destination of each datagram, which it needs to match its host candidates.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram read. WebRTC keeps datagrams under the path MTU (~1200 bytes); this
/// leaves room for jumbo loopback packets and truncates nothing a stack sends.
pub const RECV_BUFFER: usize = 2048;
/// Most buffers one [`Socket::recv_batch`] reads.
pub const RECV_BATCH: usize = 32;
/// Buffers read at once when the socket has GRO (each holds up to [`GRO_BUFFER`] bytes of
/// datagrams coalesced by the kernel, e.g. from a GSO sender on this host).
pub const GRO_BATCH: usize = 8;
/// Size of one receive buffer under GRO: the kernel coalesces at most 64 KiB.
pub const GRO_BUFFER: usize = 64 * 1024;
/// Most bytes one GSO send carries (the kernel's limit is 64 KiB per call).
pub const GSO_MAX_BYTES: usize = 60 * 1024;
pub use oneway_connection::net::SOCKET_BUFFER;

/// One bound UDP socket with its `quinn-udp` state.
#[derive(Debug)]
pub struct Socket {
    socket: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    /// [`RECV_BATCH`] receive buffers of [`RECV_BUFFER`] bytes, reused by every
    /// [`Socket::recv_batch`] (locked only inside the non-blocking read, never across an await).
    scratch: std::sync::Mutex<Vec<u8>>,
}

/// One received datagram.
#[derive(Debug)]
pub struct Datagram {
    /// Sender.
    pub source: SocketAddr,
    /// The address it was sent to: the socket's port with the real destination IP.
    pub destination: SocketAddr,
    /// Payload.
    pub contents: Vec<u8>,
}

impl Socket {
    /// Binds `addr` (a wildcard such as `0.0.0.0:0` or a specific address).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = oneway_connection::net::bind_udp(addr)?;
        let state = UdpSocketState::new((&socket).into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        let local = socket.local_addr()?;
        Ok(Socket {
            socket,
            state,
            local,
            scratch: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The bound address (with the port the system chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits for one datagram.
    pub async fn recv(&self) -> io::Result<Datagram> {
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            self.socket.readable().await?;
            let mut meta = [RecvMeta::default()];
            let result = self.socket.try_io(Interest::READABLE, || {
                self.state.recv(
                    (&self.socket).into(),
                    &mut [IoSliceMut::new(&mut buf)],
                    &mut meta,
                )
            });
            match result {
                Ok(_) => {
                    let m = &meta[0];
                    let ip = m.dst_ip.unwrap_or(self.local.ip());
                    buf.truncate(m.len.min(RECV_BUFFER));
                    return Ok(Datagram {
                        source: normalize(m.addr),
                        destination: SocketAddr::new(normalize_ip(ip), self.local.port()),
                        contents: buf,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for datagrams and returns every one the kernel holds, up to [`RECV_BATCH`], read
    /// with one `recvmmsg` where the platform has it: a driver woken once handles a burst.
    pub async fn recv_batch(&self) -> io::Result<Vec<Datagram>> {
        loop {
            self.socket.readable().await?;
            match self
                .socket
                .try_io(Interest::READABLE, || self.read_queued())
            {
                Ok(batch) => return Ok(batch),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One non-blocking batched read (`WouldBlock` when nothing is queued).
    fn read_queued(&self) -> io::Result<Vec<Datagram>> {
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // With GRO on (quinn-udp enables it where it can), one buffer may hold many datagrams:
        // a buffer of one datagram's size would truncate them.
        let (size, count) = if self.state.gro_segments() > 1 {
            (GRO_BUFFER, GRO_BATCH)
        } else {
            (RECV_BUFFER, RECV_BATCH)
        };
        scratch.resize(size * count, 0);
        let mut metas = [RecvMeta::default(); RECV_BATCH];
        let metas = &mut metas[..count];
        let mut slices: Vec<IoSliceMut<'_>> =
            scratch.chunks_mut(size).map(IoSliceMut::new).collect();
        let count = self.state.recv((&self.socket).into(), &mut slices, metas)?;
        let mut batch = Vec::with_capacity(count);
        for (meta, slice) in metas.iter().zip(&slices).take(count) {
            let ip = meta.dst_ip.unwrap_or(self.local.ip());
            let destination = SocketAddr::new(normalize_ip(ip), self.local.port());
            let len = meta.len.min(slice.len());
            // With GRO one buffer holds several datagrams, `stride` bytes apart.
            let stride = if meta.stride == 0 { len } else { meta.stride };
            for contents in slice[..len].chunks(stride.max(1)) {
                batch.push(Datagram {
                    source: normalize(meta.addr),
                    destination,
                    contents: contents.to_vec(),
                });
            }
        }
        Ok(batch)
    }

    /// Sends `contents`, several datagrams of `segment` bytes each (the last may be shorter),
    /// in one call with UDP GSO. Only when [`Socket::max_gso_segments`] allows as many.
    fn send_segments(
        &self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        segment: usize,
    ) -> io::Result<()> {
        let src_ip = (!source.ip().is_unspecified()).then_some(source.ip());
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: Some(segment),
            src_ip,
        };
        self.state.try_send((&self.socket).into(), &transmit)
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `contents` to `destination` from `source`'s IP (when it is a specific address).
    /// Failures to send are returned; callers log and drop them, as UDP loss would.
    pub fn send(
        &self,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> io::Result<()> {
        let src_ip = (!source.ip().is_unspecified()).then_some(source.ip());
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip,
        };
        // A direct non-blocking send: UDP needs no readiness bookkeeping, and a full kernel
        // buffer (WouldBlock) is reported like any loss.
        self.state.try_send((&self.socket).into(), &transmit)
    }
}

fn normalize(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalize_ip(addr.ip()), addr.port())
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The sockets of one endpoint: at most one per address family.
#[derive(Debug, Default)]
pub struct SocketSet {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

impl SocketSet {
    /// Groups bound sockets by family (the first of each family is kept).
    pub fn new(sockets: Vec<Socket>) -> Self {
        let mut set = SocketSet::default();
        for socket in sockets {
            let slot = if socket.local_addr().is_ipv4() {
                &mut set.v4
            } else {
                &mut set.v6
            };
            slot.get_or_insert(socket);
        }
        set
    }

    /// The socket for `destination`'s family.
    pub fn for_family(&self, ipv4: bool) -> Option<&Socket> {
        if ipv4 {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.v4
            .iter()
            .chain(&self.v6)
            .map(Socket::local_addr)
            .collect()
    }

    /// Whether no socket is bound.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// The next datagram on any of the sockets.
    pub async fn recv(&self) -> io::Result<Datagram> {
        async fn one(socket: Option<&Socket>) -> io::Result<Datagram> {
            match socket {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            d = one(self.v4.as_ref()) => d,
            d = one(self.v6.as_ref()) => d,
        }
    }

    /// The datagrams queued on one of the sockets, waiting for at least one
    /// ([`Socket::recv_batch`]).
    pub async fn recv_batch(&self) -> io::Result<Vec<Datagram>> {
        async fn one(socket: Option<&Socket>) -> io::Result<Vec<Datagram>> {
            match socket {
                Some(s) => s.recv_batch().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            d = one(self.v4.as_ref()) => d,
            d = one(self.v6.as_ref()) => d,
        }
    }

    /// Sends every datagram of `batch`, in order; runs of same-size datagrams between the same
    /// addresses go out in one GSO call where the socket has GSO (one syscall instead of one
    /// per datagram). Failures are logged and dropped, as UDP loss would be.
    pub fn send_batch(&self, batch: &[crate::engine::Transmit]) {
        let mut start = 0;
        while start < batch.len() {
            let first = &batch[start];
            let size = first.contents.len();
            let socket = self.for_family(first.destination.is_ipv4());
            let max = match socket {
                Some(s) if size > 0 => s.max_gso_segments().min(GSO_MAX_BYTES / size),
                _ => 1,
            };
            let mut end = start + 1;
            while end < batch.len() && end - start < max {
                let o = &batch[end];
                if o.source != first.source
                    || o.destination != first.destination
                    || o.contents.len() > size
                    || o.contents.is_empty()
                {
                    break;
                }
                end += 1;
                // A shorter datagram can only end a GSO run.
                if o.contents.len() < size {
                    break;
                }
            }
            let run = &batch[start..end];
            start = end;
            if let (Some(socket), true) = (socket, run.len() > 1) {
                let mut contents = Vec::with_capacity(run.iter().map(|o| o.contents.len()).sum());
                for o in run {
                    contents.extend_from_slice(&o.contents);
                }
                match socket.send_segments(first.source, first.destination, &contents, size) {
                    Ok(()) => continue,
                    // GSO refused (quinn-udp then turns it off): send them one by one.
                    Err(e) => tracing::debug!(error = %e, "GSO send failed; sending singly"),
                }
            }
            for o in run {
                self.send(o.source, o.destination, &o.contents);
            }
        }
    }

    /// Sends from `source` to `destination` on the matching family's socket; failures are
    /// logged and dropped, as UDP loss would be.
    pub fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        match self.for_family(destination.is_ipv4()) {
            Some(socket) => {
                if let Err(e) = socket.send(source, destination, contents) {
                    tracing::debug!(%destination, error = %e, "send failed");
                }
            }
            None => tracing::debug!(%destination, "no socket of this address family"),
        }
    }
}

/// Which local addresses to advertise as host candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressScope {
    /// Every non-loopback, non-link-local interface address.
    Interfaces,
    /// Only loopback (tests, single-machine use).
    LoopbackOnly,
    /// Interfaces and loopback.
    InterfacesAndLoopback,
}

/// The machine's addresses in `scope`, IPv4 first, in interface order.
pub fn host_addresses(scope: AddressScope) -> io::Result<Vec<IpAddr>> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let want_loopback = scope != AddressScope::Interfaces;
    let want_interfaces = scope != AddressScope::LoopbackOnly;
    if want_loopback {
        v4.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if want_interfaces {
        for iface in if_addrs::get_if_addrs()? {
            let ip = iface.ip();
            let usable = match ip {
                IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_unspecified(),
                IpAddr::V6(a) => {
                    !a.is_loopback() && !a.is_unicast_link_local() && !a.is_unspecified()
                }
            };
            if usable && !v4.contains(&ip) && !v6.contains(&ip) {
                if ip.is_ipv4() {
                    v4.push(ip)
                } else {
                    v6.push(ip)
                }
            }
        }
    }
    if want_loopback && (want_interfaces || v6.is_empty()) && ipv6_loopback_usable() {
        v6.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    v4.extend(v6);
    Ok(v4)
}

fn ipv6_loopback_usable() -> bool {
    std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}
