//! The client against coturn's `turnserver` on loopback (`oneway_testkit::coturn`; skipped when
//! it is not installed), over a plain blocking TCP stream: Allocate with long-term credentials,
//! CreatePermission, data both ways (Send/Data indications first, ChannelData once the channel
//! is bound), and a wrong password reported as `turn-auth-failed`.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use oneway_testkit::coturn::{CREDENTIALS, Coturn, RELAY_PORTS};
use oneway_turn::{Credentials, TurnClient, TurnError, TurnEvent, TurnServer};

struct Harness {
    stream: TcpStream,
    client: TurnClient,
}

impl Harness {
    fn connect(addr: SocketAddr, password: &str) -> Harness {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let server = TurnServer {
            addr,
            credentials: Credentials {
                username: CREDENTIALS.0.to_owned(),
                password: password.to_owned(),
            },
        };
        let client = TurnClient::new(&server, stream.local_addr().expect("local")).expect("client");
        Harness { stream, client }
    }

    /// Writes what the client has, reads what the server sent, until `want` matches an event
    /// (at most 5 s).
    fn pump_until(&mut self, mut want: impl FnMut(&TurnEvent) -> bool) -> TurnEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            self.flush();
            while let Some(event) = self.client.poll_event() {
                if want(&event) {
                    return event;
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("server closed the connection"),
                Ok(n) => self
                    .client
                    .handle_stream_data(Instant::now(), &buf[..n])
                    .expect("stream"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
            self.client.handle_timeout(Instant::now());
        }
        panic!("no matching event within 5 s");
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            self.stream.write_all(&bytes).expect("write");
        }
    }
}

#[test]
fn allocate_permit_and_relay_both_ways() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let mut h = Harness::connect(coturn.addr, CREDENTIALS.1);
    h.client.allocate(Instant::now()).expect("allocate");
    let TurnEvent::Allocated { relayed } =
        h.pump_until(|e| matches!(e, TurnEvent::Allocated { .. }))
    else {
        unreachable!()
    };
    assert!(RELAY_PORTS.contains(&relayed.port()), "{relayed}");
    assert_eq!(h.client.relayed(), Some(relayed));

    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer");
    peer.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let peer_addr = peer.local_addr().expect("addr");
    assert!(matches!(
        h.client.send_to(Instant::now(), peer_addr, b"early"),
        Err(TurnError::NoPermission(_))
    ));
    h.client
        .create_permission(Instant::now(), peer_addr)
        .expect("permission");
    h.pump_until(|e| *e == TurnEvent::PermissionCreated { peer: peer_addr });

    // Several rounds: the first goes as a Send indication while the channel is bound, the
    // later ones as ChannelData (odd lengths exercise the padding over TCP).
    for round in 0..4u8 {
        let out = vec![b'a' + round; 5 + usize::from(round)];
        h.client
            .send_to(Instant::now(), peer_addr, &out)
            .expect("send");
        h.flush();
        let mut buf = [0u8; 2048];
        let (n, from) = peer.recv_from(&mut buf).expect("relayed datagram");
        assert_eq!(from, relayed);
        assert_eq!(&buf[..n], &out[..]);

        let back = vec![b'A' + round; 3 + usize::from(round)];
        peer.send_to(&back, relayed).expect("reply");
        let event = h.pump_until(|e| matches!(e, TurnEvent::Data { .. }));
        assert_eq!(
            event,
            TurnEvent::Data {
                peer: peer_addr,
                data: back
            }
        );
        // Let the ChannelBind answer arrive between rounds.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wrong_password_is_turn_auth_failed() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let mut h = Harness::connect(coturn.addr, "wrong");
    h.client.allocate(Instant::now()).expect("allocate");
    let event = h.pump_until(|e| matches!(e, TurnEvent::Failed(_)));
    let TurnEvent::Failed(error) = event else {
        unreachable!()
    };
    assert_eq!(error.code(), "turn-auth-failed", "{error}");
    assert!(
        matches!(error, TurnError::AuthFailed { code: 401, .. }),
        "{error:?}"
    );
    assert!(h.client.is_failed());
}
