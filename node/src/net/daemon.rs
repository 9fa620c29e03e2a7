//! `omsyn run`: serve the node's documents to peers, continuously.
//!
//! Task layout (every task lives in one `JoinSet`, so shutdown aborts them all):
//! - the accept loop: one session task per incoming connection, at most [`MAX_PEERS`] at once;
//! - one dial loop per configured peer: connect, run a live session, and on any end wait with
//!   exponential backoff (1 s doubling to 30 s, each wait cut by up to half: see [`jittered`])
//!   before trying again — a nurse's phone walks in and out of coverage all day, and each
//!   reconnect resumes from what the peer acknowledged;
//! - the store's commit hook feeds a `watch` channel that wakes every live session to push.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use iroh::endpoint::{ConnectOptions, Connection, RecvStream, SendStream, ZeroRttStatus};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::admission::{Unverified, hello_limit};
use super::driver::{Mode, OnVerified, Opened, Streams, drive};
use super::events::NetEvent;
use super::shared::revoked;
pub use super::shared::{OnRevoked, Shared, dispose_off_path, watch_commits};
use super::ticket::Ticket;
use super::{ALPN, node_id};

/// Most concurrent peer sessions a node serves.
pub const MAX_PEERS: usize = 64;
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Shared {
    /// Runs one session on an open connection, with this node's need-based sharing policy.
    async fn session(
        &self,
        conn: &iroh::endpoint::Connection,
        streams: Streams,
        opened: Result<Opened>,
        peer: omsyn_core::NodeId,
        mode: Mode,
        on_verified: Option<OnVerified>,
    ) -> Result<super::driver::Outcome> {
        let result = match opened {
            Ok(opened) => drive(conn, streams, opened, peer, self, mode, on_verified).await,
            Err(e) => Err(e),
        };
        self.emit(NetEvent::PeerLost {
            peer,
            error: result.as_ref().err().map(|e| format!("{e:#}")),
        });
        result
    }
}

/// Serves until `shutdown` completes.
pub async fn run(
    shared: Shared,
    peers: Vec<Ticket>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut tasks = JoinSet::new();
    let slots = Arc::new(Semaphore::new(MAX_PEERS));
    for ticket in peers {
        let id = shared.net.learn(&ticket)?;
        tasks.spawn(dial_loop(shared.clone(), id, ticket.node));
    }
    if let Some(mdns) = shared.net.mdns.clone() {
        tasks.spawn(discover_loop(shared.clone(), mdns));
    }
    tasks.spawn(shared.net.clone().announce_address_changes());
    let accept = accept_loop(shared.clone(), slots);
    let revoked = revoked(&shared.on_revoked);
    tokio::pin!(accept);
    tokio::pin!(shutdown);
    tokio::pin!(revoked);
    tokio::select! {
        result = &mut accept => result?,
        () = &mut shutdown => info!("shutting down"),
        () = &mut revoked => info!("this node was revoked: stopping"),
    }
    tasks.shutdown().await;
    shared.net.endpoint.close().await;
    Ok(())
}

/// Accepts connections; each session runs in this loop's own `JoinSet`, which aborts them all when
/// the loop is dropped at shutdown.
async fn accept_loop(shared: Shared, slots: Arc<Semaphore>) -> Result<()> {
    let mut tasks = JoinSet::new();
    let unverified = Arc::new(Unverified::default());
    // Handshakes under way: bounded apart from the session slots, which a handshake takes only
    // once it completes.
    let handshakes = Arc::new(Semaphore::new(MAX_PEERS));
    while let Some(incoming) = shared.net.endpoint.accept().await {
        // Reap finished sessions so the set does not grow with every connection ever made.
        while tasks.try_join_next().is_some() {}
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            warn!("refusing a connection: {MAX_PEERS} handshakes already under way");
            incoming.refuse();
            continue;
        };
        let (shared, unverified, slots) = (shared.clone(), unverified.clone(), slots.clone());
        tasks.spawn(async move {
            if let Err(e) = serve_incoming(shared, incoming, handshake, unverified, slots).await {
                warn!(error = format!("{e:#}"), "incoming session failed");
            }
        });
    }
    Ok(())
}

/// A session slot for a connection whose handshake is complete: a free one, or the one the
/// connection that has waited longest without a verified `Hello` held (closed for it).
async fn slot_for(
    slots: &Arc<Semaphore>,
    unverified: &Unverified,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !unverified.evict_oldest() {
        return None;
    }
    // The closed connection's task ends and gives its slot back.
    tokio::time::timeout(Duration::from_secs(2), slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Serves one incoming connection. It takes one of the node's session slots once its handshake
/// is complete (a handshake proves the peer's address and key, nothing more: one that never
/// completes holds no slot); until the session verifies the peer's `Hello` it is one of
/// [`Unverified`]'s, and the handshake, the peer's stream and a silence before the `Hello`
/// each end at [`hello_limit`].
async fn serve_incoming(
    shared: Shared,
    incoming: iroh::endpoint::Incoming,
    handshake: tokio::sync::OwnedSemaphorePermit,
    unverified: Arc<Unverified>,
    slots: Arc<Semaphore>,
) -> Result<()> {
    let limit = hello_limit();
    let conn = tokio::time::timeout(limit, incoming)
        .await
        .context("the handshake did not complete in time")?
        .context("handshake")?;
    drop(handshake);
    let Some(_slot) = slot_for(&slots, &unverified).await else {
        warn!("closing a connection: {MAX_PEERS} peers already connected");
        conn.close(
            super::admission::NO_HELLO_CLOSE,
            b"too many peers connected",
        );
        return Ok(());
    };
    if conn.alpn() != ALPN {
        conn.close(1u32.into(), b"unsupported protocol");
        return Ok(());
    }
    let peer = node_id(conn.remote_id())?;
    info!(peer = %peer.short(), "peer connected");
    let place = unverified.admit(&conn);
    // Our side of the session is built while the peer's stream and first bytes come, and
    // those bytes are unpacked (their signatures checked) meanwhile.
    let accepting = async {
        match tokio::time::timeout(limit, conn.accept_bi()).await {
            Ok(accepted) => accepted.map(Streams::start).map_err(anyhow::Error::from),
            Err(_) => {
                conn.close(super::admission::NO_HELLO_CLOSE, b"no stream in time");
                Err(anyhow::anyhow!(
                    "the peer opened no stream within {} ms",
                    limit.as_millis()
                ))
            }
        }
    };
    let (streams, opened) = tokio::join!(accepting, Opened::prepare(&shared, peer));
    let settle = {
        let unverified = unverified.clone();
        move || unverified.settle(place)
    };
    let result = match streams.context("accepting the sync stream") {
        Ok(streams) => {
            let verified: OnVerified = Box::new(settle.clone());
            shared
                .session(&conn, streams, opened, peer, Mode::Live, Some(verified))
                .await
        }
        Err(e) => Err(e),
    };
    settle();
    info!(peer = %peer.short(), "peer disconnected");
    result.map(|_| ())
}

/// Dials peers found on the local network. Of two nodes that find each other, only the one with
/// the smaller id dials, so the pair ends up with one session, not two.
async fn discover_loop(shared: Shared, mdns: iroh_mdns_address_lookup::MdnsAddressLookup) {
    use tokio_stream::StreamExt;
    let Ok(me) = node_id(shared.net.endpoint.id()) else {
        return;
    };
    let mut dialing = BTreeSet::new();
    let mut loops = JoinSet::new();
    let mut events = mdns.subscribe().await;
    while let Some(event) = events.next().await {
        let iroh_mdns_address_lookup::DiscoveryEvent::Discovered { endpoint_info, .. } = event
        else {
            continue;
        };
        let id = endpoint_info.endpoint_id;
        let Ok(peer) = node_id(id) else { continue };
        if peer <= me || !dialing.insert(peer) {
            continue;
        }
        info!(peer = %peer.short(), "found on the local network");
        loops.spawn(dial_loop(shared.clone(), id, peer));
    }
}

/// Keeps a live session with one peer, reconnecting with backoff. After a session that got
/// going, however it ended (a phone walking out of the house), the next try comes after the
/// shortest wait: the path may be back in a second. Only failures to connect back off further.
pub async fn dial_loop(shared: Shared, id: iroh::EndpointId, peer: omsyn_core::NodeId) {
    let mut backoff = BACKOFF_START;
    let mut reached = true;
    let me = node_id(shared.net.endpoint.id()).map_or([0; 32], |me| *me.as_bytes());
    for attempt in 0u64.. {
        // After a failed connect, the session is built only once a connection is made: a phone
        // out of coverage retries all day, and building a push for each try would spend battery.
        let early = if reached {
            Early::Overlap
        } else {
            Early::AfterConnect
        };
        let (connected, result) = dial(&shared, id, peer, Mode::Live, early).await;
        reached = connected;
        if connected {
            backoff = BACKOFF_START;
        }
        match (result, connected) {
            (Ok(_), _) => {}
            (Err(e), true) => {
                info!(peer = %peer.short(), error = format!("{e:#}"), retry_in = ?backoff, "session ended")
            }
            (Err(e), false) => {
                info!(peer = %peer.short(), error = format!("{e:#}"), retry_in = ?backoff, "peer unreachable")
            }
        }
        tokio::time::sleep(jittered(backoff, &me, peer.as_bytes(), attempt)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `backoff` cut by a fraction below a half that differs from node to node and from try to
/// try: when a base restarts, every phone's session with it ends at the same moment, and
/// without it they would all dial again in the same instant, each doubling of the wait in
/// step, more handshakes at once than the base takes. Derived from the two nodes' keys and
/// the try's number rather than drawn, so that a test can show where it falls.
fn jittered(backoff: Duration, me: &[u8; 32], peer: &[u8; 32], attempt: u64) -> Duration {
    let word = |key: &[u8; 32]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&key[..8]);
        u64::from_le_bytes(bytes)
    };
    // splitmix64's finaliser: every input bit moves about half of the output's.
    let mut x = word(me) ^ word(peer).rotate_left(17) ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    // A fraction of a half in 1/65,536ths.
    let cut = u32::try_from(x >> 48).unwrap_or(0);
    backoff - backoff.mul_f64(f64::from(cut) / 131_072.0)
}

/// One session with the peer a ticket names, until both sides are caught up (`omsyn sync`, and
/// an app's "sync now"); abandoned when the peer sends nothing for `idle_limit`.
pub async fn sync_with(
    shared: &Shared,
    ticket: &Ticket,
    idle_limit: std::time::Duration,
) -> Result<super::driver::Outcome> {
    let id = shared.net.learn(ticket)?;
    dial_once(shared, id, ticket.node, Mode::UntilCaughtUp { idle_limit }).await
}

/// Connects to a peer and runs one session.
pub async fn dial_once(
    shared: &Shared,
    id: iroh::EndpointId,
    peer: omsyn_core::NodeId,
    mode: Mode,
) -> Result<super::driver::Outcome> {
    dial(shared, id, peer, mode, Early::Overlap).await.1
}

/// When a dial builds our side of the session (Hello, first push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Early {
    /// While QUIC's handshake runs: the push is ready when the connection is.
    Overlap,
    /// Once connected: nothing is built for a connection that fails.
    AfterConnect,
}

/// Connects to a peer and runs one session; says whether the connection was made.
async fn dial(
    shared: &Shared,
    id: iroh::EndpointId,
    peer: omsyn_core::NodeId,
    mode: Mode,
    early: Early,
) -> (bool, Result<super::driver::Outcome>) {
    let started = std::time::Instant::now();
    let connecting = match shared
        .net
        .endpoint
        .connect_with_opts(id, ALPN, ConnectOptions::new())
        .await
        .with_context(|| format!("connecting to {}", peer.short()))
    {
        Ok(connecting) => connecting,
        Err(e) => return (false, Err(e)),
    };
    let dialled = match connecting.into_0rtt() {
        Ok(zero_rtt) => with_early_data(shared, zero_rtt, peer).await,
        Err(connecting) => with_handshake(shared, connecting, peer, early).await,
    };
    // Where a reconnect's time goes (`OMSYN_LOG=omsyn_node::net=debug`): the handshake here,
    // the session's own steps in the driver.
    tracing::debug!(peer = %peer.short(), elapsed = ?started.elapsed(), "QUIC handshake done");
    let Dialled {
        conn,
        streams,
        opened,
    } = match dialled.with_context(|| format!("connecting to {}", peer.short())) {
        Ok(dialled) => dialled,
        Err(e) => return (false, Err(e)),
    };
    let result = match streams.context("opening the sync stream") {
        Ok(streams) => {
            let streams = Streams::start(streams);
            shared
                .session(&conn, streams, opened, peer, mode, None)
                .await
        }
        Err(e) => Err(e),
    };
    conn.close(0u32.into(), b"done");
    (true, result)
}

/// A connection made, with the session's stream (or why it could not be opened) and our side of
/// the session for it.
struct Dialled {
    conn: Connection,
    streams: Result<(SendStream, RecvStream)>,
    opened: Result<Opened>,
}

/// A connection by a full handshake: our side of the session is built meanwhile (or after it,
/// for `Early::AfterConnect`), and the stream opened once it is done.
async fn with_handshake(
    shared: &Shared,
    connecting: iroh::endpoint::Connecting,
    peer: omsyn_core::NodeId,
    early: Early,
) -> Result<Dialled> {
    let (connected, opened) = match early {
        Early::Overlap => {
            let (connected, opened) = tokio::join!(connecting, Opened::prepare(shared, peer));
            (connected, Some(opened))
        }
        Early::AfterConnect => (connecting.await, None),
    };
    let conn = connected?;
    let opened = match opened {
        Some(opened) => opened,
        None => Opened::prepare(shared, peer).await,
    };
    let streams = conn.open_bi().await.map_err(Into::into);
    Ok(Dialled {
        conn,
        streams,
        opened,
    })
}

/// A connection to a peer this endpoint has met since it started (it holds a TLS session
/// ticket of it): our Hello and first push go in QUIC's first flight, as 0-RTT data, instead of
/// a round trip later. On a rural link that is the push's whole transfer time saved, and a lost
/// datagram of the handshake's end no longer makes the peer drop the push (QUIC discards
/// 1-RTT data that arrives before the handshake is complete; 0-RTT data it keeps).
///
/// 0-RTT data can be replayed by someone on the path, so the peer must not act on it before the
/// handshake is complete: our accept loop takes a stream only from a finished handshake (a
/// replayed one never finishes), and a push is idempotent besides (signed changes, by hash).
/// 0-RTT data is encrypted under the resumption secret alone, without the fresh key exchange
/// that gives the rest of the connection forward secrecy: someone who recorded it and later
/// takes the peer's session cache from its memory could read that first push.
///
/// A peer that no longer holds our ticket refuses the early data — it restarted, or served more
/// connections since than its session cache holds (256) — and the session then starts again
/// on the connection, as it would have without 0-RTT.
///
/// The push is built before the connection is known to work, even after failed tries
/// (`Early::AfterConnect` does not apply): tickets are single-use, two come with each
/// connection, and every try takes one, so a dial loop out of coverage builds at most two
/// pushes before it is back to full handshakes.
async fn with_early_data(
    shared: &Shared,
    zero_rtt: iroh::endpoint::OutgoingZeroRttConnection,
    peer: omsyn_core::NodeId,
) -> Result<Dialled> {
    let (streams, opened) = tokio::join!(zero_rtt.open_bi(), Opened::prepare(shared, peer));
    let early: Result<((SendStream, RecvStream), Opened)> = async {
        let (mut streams, mut opened) = (streams?, opened?);
        opened.send_early(&mut streams.0).await?;
        Ok((streams, opened))
    }
    .await;
    let (conn, accepted) = match zero_rtt.handshake_completed().await? {
        ZeroRttStatus::Accepted(conn) => (conn, true),
        ZeroRttStatus::Rejected(conn) => (conn, false),
    };
    if accepted {
        // The peer takes the first stream it sees: if ours failed, no second one would be
        // taken, so the session fails with it.
        let (streams, opened) = match early {
            Ok((streams, opened)) => (Ok(streams), Ok(opened)),
            Err(e) => (
                Err(e),
                Err(anyhow::anyhow!("no session: its stream failed")),
            ),
        };
        if streams.is_ok() {
            info!(peer = %peer.short(), "the peer took our Hello and push sent with the handshake (0-RTT)");
        }
        return Ok(Dialled {
            conn,
            streams,
            opened,
        });
    }
    // What was sent early never reaches the peer's session: start it afresh.
    info!(peer = %peer.short(), "the peer did not take what we sent with the handshake (0-RTT): sending it again");
    let (streams, opened) = tokio::join!(conn.open_bi(), Opened::prepare(shared, peer));
    Ok(Dialled {
        conn,
        streams: streams.map_err(Into::into),
        opened,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::jittered;

    #[test]
    fn a_fleet_reconnecting_after_a_base_restart_spreads_its_tries_over_half_the_backoff() {
        let base = [7u8; 32];
        let backoff = Duration::from_secs(1);
        let waits: Vec<Duration> = (0..200u8)
            .map(|phone| jittered(backoff, &[phone; 32], &base, 0))
            .collect();
        for wait in &waits {
            assert!(*wait > backoff / 2 && *wait <= backoff, "{wait:?}");
        }
        // Spread over the whole half: every tenth of it holds some phones, none most of them.
        let mut tenths = [0usize; 10];
        for wait in &waits {
            let tenth = ((backoff - *wait).as_secs_f64() / 0.05) as usize;
            tenths[tenth.min(9)] += 1;
        }
        assert!(tenths.iter().all(|n| (5..=50).contains(n)), "{tenths:?}");
        // The same phone waits a different time at its next try.
        let tries: std::collections::BTreeSet<Duration> = (0..20)
            .map(|attempt| jittered(backoff, &[3; 32], &base, attempt))
            .collect();
        assert!(tries.len() >= 18, "{tries:?}");
    }
}
