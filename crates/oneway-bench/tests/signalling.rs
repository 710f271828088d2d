//! The benchmarks' WebSocket relay: descriptions reach the other member of a room and no one
//! else, directly and through the delaying TCP proxy.

use std::time::Duration;

use oneway_bench::signalling::{Client, DelayingTcpProxy, PeerPair, Relay};

#[tokio::test]
async fn offer_and_answer_cross_the_relay_within_one_room() {
    let relay = Relay::start().await.expect("relay");
    let pair = PeerPair::join(relay.addr(), "a").await.expect("join a");
    let mut stranger = Client::join(relay.addr(), "b").await.expect("join b");
    let offer = pair.carry("offer", "v=0 offer".to_owned()).await;
    assert_eq!(offer.expect("offer"), "v=0 offer");
    let answer = pair.carry("answer", "v=0 answer".to_owned()).await;
    assert_eq!(answer.expect("answer"), "v=0 answer");
    // The member of room b saw nothing of room a: its next message is the one sent in b.
    let other = PeerPair::join(relay.addr(), "b")
        .await
        .expect("join b twice");
    other
        .carry("offer", "v=0 for b".to_owned())
        .await
        .expect("offer in b");
    let seen = stranger
        .receive_description("offer")
        .await
        .expect("b's offer");
    assert_eq!(seen, "v=0 for b");
}

#[tokio::test]
async fn the_delaying_proxy_carries_the_signalling() {
    let relay = Relay::start().await.expect("relay");
    let proxy = DelayingTcpProxy::start(relay.addr(), Duration::from_millis(5))
        .await
        .expect("proxy");
    let pair = PeerPair::join(proxy.addr(), "r")
        .await
        .expect("join via proxy");
    let sdp = "v=0\r\n".repeat(2000);
    let received = pair.carry("offer", sdp.clone()).await.expect("offer");
    assert_eq!(
        received, sdp,
        "a large description arrives whole and in order"
    );
}

#[tokio::test]
async fn a_message_before_joining_ends_the_connection() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let relay = Relay::start().await.expect("relay");
    let tcp = tokio::net::TcpStream::connect(relay.addr())
        .await
        .expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/", relay.addr()), tcp)
        .await
        .expect("handshake");
    ws.send(Message::text(r#"{"type":"offer","sdp":"x"}"#))
        .await
        .expect("send");
    // The relay drops the connection without forwarding anything.
    let next = ws.next().await;
    assert!(
        !matches!(next, Some(Ok(Message::Text(_)))),
        "the relay answered a client outside any room: {next:?}"
    );
}
