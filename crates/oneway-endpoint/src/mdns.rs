//! mDNS host names for candidates (`spec/token.md` §3.4): the listener publishes one
//! `<uuid>.local` name per host address, as browsers do, and advertises the names instead of
//! the addresses; the dialer resolves them before checking.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{HostnameResolutionEvent, ServiceDaemon, ServiceInfo};
use rand::RngCore;

use oneway_connection::StackError;

/// DNS-SD service type under which the names are registered (the A/AAAA records are what
/// dialers query; the service record only carries them).
pub const SERVICE_TYPE: &str = "_oneway._udp.local.";

/// Published names; unregistered when dropped.
pub struct MdnsPublisher {
    daemon: ServiceDaemon,
    names: Vec<(SocketAddr, [u8; 16])>,
}

impl std::fmt::Debug for MdnsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsPublisher")
            .field("names", &self.names.len())
            .finish()
    }
}

impl MdnsPublisher {
    /// Publishes a fresh random UUID name for each address.
    pub fn publish(addrs: &[SocketAddr]) -> Result<Self, StackError> {
        let daemon = ServiceDaemon::new().map_err(|e| StackError::Io(format!("mDNS: {e}")))?;
        let mut names = Vec::new();
        for addr in addrs {
            let mut uuid = [0u8; 16];
            rand::rng().fill_bytes(&mut uuid);
            // RFC 4122 version 4, variant 1, like browsers' names.
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            let name = oneway_token::format_uuid(&uuid);
            let info = ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &format!("{name}.local."),
                addr.ip(),
                addr.port(),
                None::<HashMap<String, String>>,
            )
            .map_err(|e| StackError::Io(format!("mDNS: {e}")))?;
            daemon
                .register(info)
                .map_err(|e| StackError::Io(format!("mDNS: {e}")))?;
            names.push((*addr, uuid));
        }
        Ok(MdnsPublisher { daemon, names })
    }

    /// `(address, uuid)` of every published name.
    pub fn names(&self) -> &[(SocketAddr, [u8; 16])] {
        &self.names
    }
}

impl Drop for MdnsPublisher {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// Resolves `<uuid>.local` names, all within `timeout`. Names that do not resolve are absent
/// from the result.
pub fn resolve(
    uuids: &[[u8; 16]],
    timeout: Duration,
) -> Result<HashMap<[u8; 16], Vec<IpAddr>>, StackError> {
    let daemon = ServiceDaemon::new().map_err(|e| StackError::Io(format!("mDNS: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut pending = Vec::new();
    for uuid in uuids {
        let name = format!("{}.local.", oneway_token::format_uuid(uuid));
        let rx = daemon
            .resolve_hostname(&name, Some(timeout.as_millis() as u64))
            .map_err(|e| StackError::Io(format!("mDNS: {e}")))?;
        pending.push((*uuid, rx));
    }
    let mut found = HashMap::new();
    for (uuid, rx) in pending {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(HostnameResolutionEvent::AddressesFound(_, addrs)) => {
                    found.insert(uuid, addrs.iter().map(|a| a.to_ip_addr()).collect());
                    break;
                }
                Ok(
                    HostnameResolutionEvent::SearchTimeout(_)
                    | HostnameResolutionEvent::SearchStopped(_),
                )
                | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
    let _ = daemon.shutdown();
    Ok(found)
}
