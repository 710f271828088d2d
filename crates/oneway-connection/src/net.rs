//! The UDP socket every stack's driver binds: non-blocking, IPv6 sockets IPv6-only, and kernel
//! buffers of [`SOCKET_BUFFER`] each way.

use std::io;
use std::net::SocketAddr;

/// Kernel send and receive buffer asked for each socket (SO_SNDBUF/SO_RCVBUF). The default
/// (about 208 KiB) overflows when a listener's one socket takes a burst of handshakes or a fast
/// transfer, and every datagram lost there waits out a retransmission timer; the kernel caps
/// the request at `net.core.{r,w}mem_max`.
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Binds a non-blocking UDP socket to `addr` (a wildcard such as `0.0.0.0:0`, or a specific
/// address) with [`SOCKET_BUFFER`]-sized kernel buffers (best effort: a smaller buffer only
/// costs throughput). IPv6 sockets do not take IPv4-mapped traffic.
pub fn bind_udp(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "SO_RCVBUF not set");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "SO_SNDBUF not set");
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}
