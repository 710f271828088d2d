//! What a listener learns about its own addresses before it issues a token: its host
//! addresses, and the address a STUN server sees (server-reflexive).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oneway_connection::StackError;

use crate::net::Socket;

/// Tries per STUN request, and how long each waits for the answer.
pub const STUN_TRIES: u32 = 3;
/// See [`STUN_TRIES`].
pub const STUN_TRY_TIMEOUT: Duration = Duration::from_millis(500);

/// Asks `server` which address `socket` appears from (RFC 8489 Binding, XOR-MAPPED-ADDRESS).
pub async fn server_reflexive(
    socket: &Socket,
    server: SocketAddr,
) -> Result<SocketAddr, StackError> {
    let stun = |e: oneway_core::stun_client::StunClientError| {
        StackError::Io(format!("STUN server {server}: {e}"))
    };
    for _ in 0..STUN_TRIES {
        let request = oneway_core::stun_client::BindingRequest::new().map_err(stun)?;
        let unspecified = SocketAddr::new(socket.local_addr().ip(), 0);
        socket
            .send(unspecified, server, &request.bytes)
            .map_err(|e| StackError::Io(format!("STUN request to {server}: {e}")))?;
        let deadline = tokio::time::Instant::now() + STUN_TRY_TIMEOUT;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv()).await {
            let Ok(d) = received else { continue };
            if d.source != server {
                continue;
            }
            if let Some(mapped) = request.parse_response(&d.contents).map_err(stun)? {
                return Ok(mapped);
            }
        }
    }
    Err(StackError::Io(format!(
        "no answer from STUN server {server} after {STUN_TRIES} tries of {STUN_TRY_TIMEOUT:?}"
    )))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The host candidates of `sockets`: a socket bound to a concrete address is its own
/// candidate; a wildcard socket stands for every address of its family in `scope` (with the
/// socket's port), in interface order.
pub fn host_candidates(
    sockets: &[Socket],
    scope: crate::net::AddressScope,
) -> Result<Vec<SocketAddr>, StackError> {
    let addresses = crate::net::host_addresses(scope)
        .map_err(|e| StackError::Io(format!("listing interfaces: {e}")))?;
    let mut hosts = Vec::new();
    for socket in sockets {
        let local = socket.local_addr();
        if !local.ip().is_unspecified() {
            hosts.push(local);
            continue;
        }
        hosts.extend(
            addresses
                .iter()
                .filter(|ip| ip.is_ipv4() == local.is_ipv4())
                .map(|ip| SocketAddr::new(*ip, local.port())),
        );
    }
    Ok(hosts)
}
