//! Bookkeeping every engine keeps the same way, whatever its stack: the application channels
//! and the opens waiting for their reply ([`ChannelTable`]), the bounded send queue
//! ([`SendQueue`]), stage times and the path ([`PathRecord`]), and the answer to a command on
//! a closed connection ([`reply_closed`]). Engines own one of each and call them; the
//! handshake's decisions are in `oneway_core::handshake`.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_connection::{ChannelRef, Command, ConnectionEvent, Timings};
use oneway_core::ProofRole;
use oneway_core::handshake::{self, Failure, is_dtls, is_stun_binding};
use tokio::sync::oneshot;

use crate::engine::Notice;

/// Most bytes queued for application channels; beyond it `send` fails.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// Where the reply to an `open` command goes.
pub type OpenReply = oneshot::Sender<Result<ChannelRef, String>>;

/// A connection's application channels: the stack's channel ids and the [`ChannelRef`]s the
/// application holds, and the opens waiting for the channel to come up.
#[derive(Debug)]
pub struct ChannelTable<Id> {
    by_id: HashMap<Id, ChannelRef>,
    by_ref: HashMap<ChannelRef, Id>,
    next_ref: u32,
    pending: Vec<(Id, OpenReply)>,
}

impl<Id> Default for ChannelTable<Id> {
    fn default() -> Self {
        ChannelTable {
            by_id: HashMap::new(),
            by_ref: HashMap::new(),
            next_ref: 1,
            pending: Vec::new(),
        }
    }
}

impl<Id: Copy + Eq + Hash> ChannelTable<Id> {
    /// This side asked the stack to open channel `id`; `reply` gets its reference once open.
    pub fn requested(&mut self, id: Id, reply: OpenReply) {
        self.pending.push((id, reply));
    }

    /// Channel `id` opened: answers the open that asked for it, or returns the event that
    /// tells the application the peer opened it.
    pub fn opened(&mut self, id: Id, label: String) -> Option<ConnectionEvent> {
        let channel = ChannelRef::new(self.next_ref);
        self.next_ref += 1;
        self.by_id.insert(id, channel);
        self.by_ref.insert(channel, id);
        match self.pending.iter().position(|(p, _)| *p == id) {
            Some(pos) => {
                let (_, reply) = self.pending.remove(pos);
                let _ = reply.send(Ok(channel));
                None
            }
            None => Some(ConnectionEvent::ChannelOpen { channel, label }),
        }
    }

    /// Channel `id` closed: its reference, if it was an application channel.
    pub fn closed(&mut self, id: Id) -> Option<ChannelRef> {
        let channel = self.by_id.remove(&id)?;
        self.by_ref.remove(&channel);
        Some(channel)
    }

    /// The application's reference for channel `id`.
    pub fn channel(&self, id: Id) -> Option<ChannelRef> {
        self.by_id.get(&id).copied()
    }

    /// The stack's id for `channel`.
    pub fn id(&self, channel: ChannelRef) -> Option<Id> {
        self.by_ref.get(&channel).copied()
    }

    /// The connection ended: every open still waiting fails with `reason`.
    pub fn fail_pending(&mut self, reason: &str) {
        for (_, reply) in self.pending.drain(..) {
            let _ = reply.send(Err(reason.to_owned()));
        }
    }
}

/// Application messages waiting for room in the stack's send buffer, at most
/// [`MAX_QUEUED_BYTES`] of payload.
#[derive(Debug)]
pub struct SendQueue<Id> {
    queue: VecDeque<(Id, bool, Vec<u8>)>,
    bytes: usize,
}

impl<Id> Default for SendQueue<Id> {
    fn default() -> Self {
        SendQueue {
            queue: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<Id: Copy + Eq + Hash> SendQueue<Id> {
    /// Queues a message for `channel` (binary or text); fails for an unknown channel or a full
    /// queue (the peer is not reading).
    pub fn push(
        &mut self,
        channels: &ChannelTable<Id>,
        channel: ChannelRef,
        binary: bool,
        data: Vec<u8>,
    ) -> Result<(), String> {
        let Some(id) = channels.id(channel) else {
            return Err(format!("unknown channel {channel:?}"));
        };
        if self.bytes + data.len() > MAX_QUEUED_BYTES {
            return Err("send queue full (16 MiB): the peer is not reading".to_owned());
        }
        self.bytes += data.len();
        self.queue.push_back((id, binary, data));
        Ok(())
    }

    /// The oldest message: `(channel id, binary, payload)`.
    pub fn pop(&mut self) -> Option<(Id, bool, Vec<u8>)> {
        let item = self.queue.pop_front()?;
        self.bytes -= item.2.len();
        Some(item)
    }

    /// Puts back a message [`SendQueue::pop`] took (the stack had no room for it yet).
    pub fn unpop(&mut self, item: (Id, bool, Vec<u8>)) {
        self.bytes += item.2.len();
        self.queue.push_front(item);
    }
}

/// Stage times, the candidates a dialer tried, and the selected pair, recorded from the
/// datagrams an engine sends and receives.
#[derive(Clone, Debug)]
pub struct PathRecord {
    role: ProofRole,
    /// Stage times.
    pub timings: Timings,
    /// Dialer: remote addresses checked, in order, with the time of the first check.
    pub tried: Vec<(SocketAddr, Duration)>,
    /// `(local, remote)` of the first DTLS datagram after ICE connected.
    pub selected: Option<(SocketAddr, SocketAddr)>,
}

impl PathRecord {
    /// A record for `role`, started at `started`.
    pub fn new(role: ProofRole, started: Instant) -> Self {
        PathRecord {
            role,
            timings: Timings::new(started),
            tried: Vec::new(),
            selected: None,
        }
    }

    /// A datagram arrived; `ice_connected`: this side's ICE has a working pair.
    pub fn received(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        ice_connected: bool,
    ) {
        if self.timings.first_check.is_none() && is_stun_binding(contents) {
            self.timings.first_check = Some(now);
        }
        if self.selected.is_none() && ice_connected && is_dtls(contents) {
            self.selected = Some((destination, source));
        }
    }

    /// A datagram leaves.
    pub fn sent(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        ice_connected: bool,
    ) {
        if self.role == ProofRole::Dialer
            && is_stun_binding(contents)
            && !self.tried.iter().any(|(a, _)| *a == destination)
        {
            self.tried.push((
                destination,
                now.saturating_duration_since(self.timings.started),
            ));
            if self.timings.first_check.is_none() {
                self.timings.first_check = Some(now);
            }
        }
        if self.selected.is_none() && ice_connected && is_dtls(contents) {
            self.selected = Some((source, destination));
        }
    }
}

/// The handshake state every engine keeps alike: its role and keys, whether both proofs have
/// verified, the notices for the shell, and the path record. Engines own one and read the
/// peer's proof through it, so the decisions are the same for every stack.
#[derive(Debug)]
pub struct Handshake {
    /// This side.
    pub role: ProofRole,
    /// The key proofs are made with (the token's).
    pub auth_key: [u8; 32],
    /// SHA-256 of the listener's certificate (the token's fingerprint).
    pub listener_fp: [u8; 32],
    /// Both proofs verified.
    pub authenticated: bool,
    /// What the shell has not been told yet.
    pub notices: Vec<Notice>,
    /// Stage times, the candidates tried and the selected pair.
    pub path: PathRecord,
    /// Dialer: its local ICE ufrag and pwd, as its checks carry them (a reply code names them,
    /// `spec/handshake.md` §11); set by the stack when it builds the engine.
    pub local_ice: Option<(String, String)>,
}

impl Handshake {
    /// The state of a handshake of `role` that starts at `started`.
    pub fn new(
        role: ProofRole,
        auth_key: [u8; 32],
        listener_fp: [u8; 32],
        started: Instant,
    ) -> Self {
        Handshake {
            role,
            auth_key,
            listener_fp,
            authenticated: false,
            notices: Vec::new(),
            path: PathRecord::new(role, started),
            local_ice: None,
        }
    }

    /// This side's proof for this session's `(listener, dialer)` fingerprints.
    pub fn own_proof(&self, fingerprints: ([u8; 32], [u8; 32])) -> [u8; 32] {
        handshake::own_proof(self.role, &self.auth_key, fingerprints)
    }

    /// The peer's proof `mac` arrived; `fingerprints` are this DTLS session's. A dialer is then
    /// authenticated; a listener tells the shell (`DialerProven`), which settles admission and
    /// calls the engine's `admit` or `reject`. An error is the cause to refuse the peer with.
    pub fn on_peer_proof(
        &mut self,
        now: Instant,
        fingerprints: Option<([u8; 32], [u8; 32])>,
        mac: &[u8; 32],
    ) -> Result<(), Failure> {
        handshake::check_peer_proof(
            self.role,
            &self.auth_key,
            &self.listener_fp,
            fingerprints,
            mac,
        )?;
        match self.role {
            ProofRole::Listener => self.notices.push(Notice::DialerProven),
            ProofRole::Dialer => self.authenticate(now),
        }
        Ok(())
    }

    /// Both proofs verified.
    pub fn authenticate(&mut self, now: Instant) {
        self.authenticated = true;
        self.path.timings.authenticated = Some(now);
        self.notices.push(Notice::Authenticated);
    }
}

/// Answers a command that reached a connection already closed.
pub fn reply_closed(command: Command) {
    let closed = "connection closed".to_owned();
    match command {
        Command::Open { reply, .. } => {
            let _ = reply.send(Err(closed));
        }
        Command::Send { reply, .. } | Command::IceRestart { reply } => {
            let _ = reply.send(Err(closed));
        }
        Command::AddTrack { reply, .. }
        | Command::RemoveTrack { reply, .. }
        | Command::SetTrackDirection { reply, .. } => {
            let _ = reply.send(Err(closed));
        }
        Command::Close { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_is_answered_and_a_peer_open_is_an_event() {
        let mut table = ChannelTable::<u16>::default();
        let (reply, mut answer) = oneshot::channel();
        table.requested(5, reply);
        assert_eq!(table.opened(5, "mine".to_owned()), None);
        let mine = answer.try_recv().expect("answered").expect("ok");
        let Some(ConnectionEvent::ChannelOpen { channel, label }) =
            table.opened(8, "theirs".to_owned())
        else {
            panic!("a peer's channel is an event");
        };
        assert_eq!(label, "theirs");
        assert_ne!(channel, mine);
        assert_eq!(table.id(mine), Some(5));
        assert_eq!(table.closed(5), Some(mine));
        assert_eq!(table.id(mine), None);
        assert_eq!(table.closed(5), None);
    }

    #[test]
    fn the_send_queue_is_bounded_and_refuses_unknown_channels() {
        let mut table = ChannelTable::<u16>::default();
        let Some(ConnectionEvent::ChannelOpen { channel, .. }) = table.opened(1, String::new())
        else {
            panic!("event");
        };
        let mut queue = SendQueue::default();
        assert!(
            queue
                .push(&table, ChannelRef::new(99), true, vec![1])
                .is_err()
        );
        queue
            .push(&table, channel, true, vec![0; MAX_QUEUED_BYTES])
            .expect("fits");
        assert!(queue.push(&table, channel, true, vec![0]).is_err());
        let item = queue.pop().expect("queued");
        queue.push(&table, channel, false, vec![0]).expect("room");
        queue.unpop(item);
        assert_eq!(
            queue.pop().map(|(_, b, d)| (b, d.len())),
            Some((true, MAX_QUEUED_BYTES))
        );
    }

    #[test]
    fn the_dialer_records_each_remote_once_and_the_first_dtls_pair() {
        let start = Instant::now();
        let mut path = PathRecord::new(ProofRole::Dialer, start);
        let local: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:2".parse().expect("addr"),
            "127.0.0.1:3".parse().expect("addr"),
        );
        path.sent(start, local, a, &[0, 1], false);
        path.sent(start, local, b, &[0, 1], false);
        path.sent(start, local, a, &[0, 1], false);
        assert_eq!(
            path.tried.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![a, b]
        );
        path.sent(start, local, b, &[22], false);
        assert_eq!(
            path.selected, None,
            "DTLS before ICE connected selects nothing"
        );
        path.sent(start, local, b, &[22], true);
        assert_eq!(path.selected, Some((local, b)));
        let mut listener = PathRecord::new(ProofRole::Listener, start);
        listener.sent(start, local, a, &[0, 1], false);
        assert!(listener.tried.is_empty());
        listener.received(start, a, local, &[22], true);
        assert_eq!(listener.selected, Some((local, a)));
    }
}
