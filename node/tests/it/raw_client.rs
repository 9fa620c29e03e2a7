//! A hostile peer: a real iroh endpoint that speaks our ALPN but sends arbitrary bytes, or an
//! enrolled node's key with bytes a modified app would send.

use iroh::endpoint::{RecvStream, SendStream, presets};
use iroh::{Endpoint, EndpointAddr, SecretKey};
use omsyn_core::sync::wire::{self, FrameDecoder, Message};

/// Sends `bytes` to the node in `ticket` on the sync ALPN; returns what it answered (lossy text).
pub(crate) async fn send_raw(ticket: &str, bytes: &[u8]) -> String {
    let mut secret = [0u8; 32];
    secret[0] = bytes.len() as u8;
    secret[1] = 7;
    let (endpoint, mut send, mut recv) = open(ticket, secret).await;
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        reply.extend_from_slice(&buf[..n]);
    }
    endpoint.close().await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Sends `bytes` to the node in `ticket` as the node whose secret key is `secret` (an enrolled
/// node's, so its Hello is taken); returns the node's messages up to the first `until` takes,
/// or to the stream's end. Fails after 60 s.
pub(crate) async fn converse(
    ticket: &str,
    secret: [u8; 32],
    bytes: &[u8],
    until: impl Fn(&Message) -> bool,
) -> Vec<Message> {
    let (endpoint, mut send, mut recv) = open(ticket, secret).await;
    send.write_all(bytes).await.unwrap();
    let messages = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        read_until(&mut recv, until),
    )
    .await
    .expect("the node answered within 60 s");
    let _ = send.finish();
    endpoint.close().await;
    messages
}

/// The `Hello` the enrolled node in `data` sends (with its real certificate), and its secret key:
/// what a modified app on that device holds.
pub(crate) fn enrolled_hello(data: &std::path::Path) -> ([u8; 32], Vec<u8>) {
    use rand::SeedableRng;
    let repo =
        omsyn_core::Repo::open(data, None, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
    let store = repo.store();
    let hello = wire::encode(&Message::Hello {
        version: wire::PROTOCOL_VERSION,
        epoch: store.epoch(),
        certificate: store.own_certificate().unwrap().unwrap().to_bytes(),
    });
    (repo.identity().key.secret_bytes(), hello)
}

/// `n` sessions with the node in `ticket`, each opened with `hello` by the node whose key is
/// `secret` and held open once the node has pushed to it (so has verified that Hello). Fails
/// after 60 s.
pub(crate) async fn verified_sessions(
    ticket: &str,
    secret: [u8; 32],
    hello: &[u8],
    n: usize,
) -> Vec<(iroh::endpoint::Connection, SendStream, RecvStream)> {
    let endpoint = loopback_endpoint(secret, Vec::new()).await;
    let mut held = Vec::new();
    for _ in 0..n {
        let conn = endpoint
            .connect(addr_of(ticket), b"omsyn/sync/1")
            .await
            .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(hello).await.unwrap();
        let pushed = read_until(&mut recv, |m| matches!(m, Message::PushDone { .. }));
        tokio::time::timeout(std::time::Duration::from_secs(60), pushed)
            .await
            .expect("the node pushed to the session within 60 s");
        held.push((conn, send, recv));
    }
    // The endpoint lives as long as its connections are held: it is dropped with the runtime.
    std::mem::forget(endpoint);
    held
}

/// Reads the node's messages until one that `until` takes, or the stream's end.
async fn read_until(recv: &mut RecvStream, until: impl Fn(&Message) -> bool) -> Vec<Message> {
    let mut decoder = FrameDecoder::default();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        decoder.push(&buf[..n]).unwrap();
        while let Some(frame) = decoder.next_frame() {
            let message = wire::decode(&frame).unwrap();
            let done = until(&message);
            messages.push(message);
            if done {
                return messages;
            }
        }
    }
    messages
}

/// A peer that takes a session and never answers: a real endpoint on the sync ALPN, bound to
/// loopback, that accepts connections and their streams and reads what it is sent, writing
/// nothing. Returns the endpoint (it serves while the runtime runs) and its ticket.
pub(crate) async fn silent_peer() -> (Endpoint, String) {
    let endpoint = loopback_endpoint([9u8; 32], vec![b"omsyn/sync/1".to_vec()]).await;
    let serving = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = serving.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((_send, mut recv)) = conn.accept_bi().await {
                    let mut buf = [0u8; 4096];
                    while let Ok(Some(_)) = recv.read(&mut buf).await {}
                }
            });
        }
    });
    let id: String = endpoint
        .id()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let addr = endpoint.bound_sockets()[0];
    (endpoint, format!("omsyn1:{id}@{addr}"))
}

/// A connection to the node in `ticket` on the sync ALPN, as the node with key `secret`, with a
/// stream opened on it.
async fn open(ticket: &str, secret: [u8; 32]) -> (Endpoint, SendStream, RecvStream) {
    let (endpoint, conn) = connect(ticket, secret).await;
    let (send, recv) = conn.open_bi().await.unwrap();
    (endpoint, send, recv)
}

/// A connection to the node in `ticket` on the sync ALPN, as the node with key `secret`.
async fn connect(ticket: &str, secret: [u8; 32]) -> (Endpoint, iroh::endpoint::Connection) {
    let endpoint = loopback_endpoint(secret, Vec::new()).await;
    let conn = endpoint
        .connect(addr_of(ticket), b"omsyn/sync/1")
        .await
        .unwrap();
    (endpoint, conn)
}

/// The address a ticket names.
fn addr_of(ticket: &str) -> EndpointAddr {
    let rest = ticket.strip_prefix("omsyn1:").unwrap();
    let (id, addrs) = rest.split_once('@').unwrap();
    let mut key = [0u8; 32];
    hex_decode(id, &mut key);
    let id = iroh::EndpointId::from_bytes(&key).unwrap();
    let mut addr = EndpointAddr::new(id);
    for a in addrs.split(',') {
        addr = addr.with_ip_addr(a.parse().unwrap());
    }
    addr
}

/// An endpoint on loopback with the key `secret`, accepting `alpns`.
async fn loopback_endpoint(secret: [u8; 32], alpns: Vec<Vec<u8>>) -> Endpoint {
    Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .alpns(alpns)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap()
}

fn hex_decode(text: &str, out: &mut [u8; 32]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).unwrap();
    }
}

/// Connections to the node in `ticket` on the sync ALPN, one per fresh key (anybody can make
/// one: no enrolment is needed for a QUIC handshake), each with its handshake complete and a
/// stream opened but nothing ever sent. Held until the endpoints are dropped.
pub(crate) async fn silent_connections(
    ticket: &str,
    n: u8,
) -> Vec<(Endpoint, iroh::endpoint::Connection)> {
    let mut held = Vec::new();
    for i in 0..n {
        let mut secret = [0x5a; 32];
        secret[0] = i;
        let (endpoint, conn) = connect(ticket, secret).await;
        held.push((endpoint, conn));
    }
    held
}

/// A connection to the node in `ticket` by a fresh key with a stream that carries one byte of a
/// frame and nothing more: the node never receives a `Hello`.
pub(crate) async fn stalled_stream(
    ticket: &str,
) -> (Endpoint, iroh::endpoint::Connection, SendStream, RecvStream) {
    let (endpoint, conn) = connect(ticket, [0x6b; 32]).await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0x10]).await.unwrap();
    (endpoint, conn, send, recv)
}
