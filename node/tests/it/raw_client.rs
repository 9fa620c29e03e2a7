//! A hostile peer: a real iroh endpoint that speaks our ALPN but sends arbitrary bytes.

use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr, SecretKey};

/// Sends `bytes` to the node in `ticket` on the sync ALPN; returns what it answered (lossy text).
pub(crate) async fn send_raw(ticket: &str, bytes: &[u8]) -> String {
    let rest = ticket.strip_prefix("omsyn1:").unwrap();
    let (id, addrs) = rest.split_once('@').unwrap();
    let mut key = [0u8; 32];
    hex_decode(id, &mut key);
    let id = iroh::EndpointId::from_bytes(&key).unwrap();
    let mut addr = EndpointAddr::new(id);
    for a in addrs.split(',') {
        addr = addr.with_ip_addr(a.parse().unwrap());
    }
    let mut secret = [0u8; 32];
    secret[0] = bytes.len() as u8;
    secret[1] = 7;
    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&secret))
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let conn = endpoint.connect(addr, b"omsyn/sync/1").await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
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

fn hex_decode(text: &str, out: &mut [u8; 32]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).unwrap();
    }
}
