//! Drives one [`Session`] over one QUIC stream: feeds it what the peer sends and what the local
//! store commits, and writes out what it queues. One task per peer session.
//!
//! The session's calls touch the store (redb: disk IO, fsync on durable commits), so they run in
//! `block_in_place`: the runtime moves other tasks off this worker thread meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use iroh::endpoint::{Connection, RecvStream, SendStream};
use omsyn_core::sync::{Session, SharePolicy, SyncEvent, SyncStats};
use omsyn_core::{NodeId, Repo};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::now_ms;

/// How a session should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Stay connected and push every local change (the daemon).
    Live,
    /// End once both sides are caught up (`omsyn sync`).
    UntilCaughtUp,
}

/// What a finished session reports.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) stats: SyncStats,
    pub(crate) caught_up: bool,
    pub(crate) millis: u128,
}

/// A session that did not settle in this long is abandoned (the peer stalled).
const IDLE_LIMIT: Duration = Duration::from_secs(120);
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// How long a finished session waits for the peer to close before dropping the connection.
const LINGER: Duration = Duration::from_secs(2);

/// Runs a session on `conn` until it ends. `opened` is the stream pair (opened or accepted).
pub(crate) async fn drive(
    conn: &Connection,
    (mut send, mut recv): (SendStream, RecvStream),
    peer: NodeId,
    repo: Arc<Repo>,
    policy: Arc<dyn SharePolicy>,
    mut changed: watch::Receiver<u64>,
    mode: Mode,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut session = Session::new(peer, repo.store());
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    flush(&mut session, &mut send).await?;
    loop {
        tokio::select! {
            read = tokio::time::timeout(IDLE_LIMIT, recv.read(&mut buf)) => {
                let n = match read {
                    Err(_) if mode == Mode::Live => continue,
                    Err(_) => bail!("the peer went silent for {}s", IDLE_LIMIT.as_secs()),
                    Ok(Err(_)) if closed_normally(conn) => break,
                    Ok(r) => r.context("reading from the peer")?,
                };
                let Some(n) = n else {
                    debug!(peer = %peer.short(), "peer closed the stream");
                    break;
                };
                let result = tokio::task::block_in_place(|| {
                    session.handle_bytes(repo.store(), policy.as_ref(), now_ms(), &buf[..n])
                });
                if let Err(e) = result {
                    // Tell the peer why before hanging up, and give it a moment to read it:
                    // closing the connection would drop the unsent reason.
                    let _ = flush(&mut session, &mut send).await;
                    let _ = send.finish();
                    let _ = tokio::time::timeout(LINGER, conn.closed()).await;
                    warn!(peer = %peer.short(), error = %e, "sync session ended");
                    return Err(e.into());
                }
            }
            seen = changed.changed() => {
                if seen.is_err() {
                    break;
                }
                tokio::task::block_in_place(|| {
                    session.handle_local_change(repo.store(), policy.as_ref(), now_ms())
                })?;
            }
            _ = conn.closed() => break,
        }
        flush(&mut session, &mut send).await?;
        while let Some(event) = session.poll_event() {
            match event {
                SyncEvent::CaughtUp => {
                    info!(peer = %peer.short(), "caught up")
                }
                SyncEvent::DocumentChanged(doc) => debug!(peer = %peer.short(), %doc, "received"),
                SyncEvent::Declined(doc) => info!(peer = %peer.short(), %doc, "peer declined"),
            }
        }
        if mode == Mode::UntilCaughtUp && session.is_caught_up() {
            finish_gracefully(
                &mut session,
                &repo,
                policy.as_ref(),
                &mut send,
                &mut recv,
                &mut buf,
            )
            .await;
            break;
        }
    }
    let _ = send.finish();
    if mode == Mode::Live {
        // Let our last frames reach the peer before the connection is dropped.
        let _ = tokio::time::timeout(LINGER, conn.closed()).await;
    }
    Ok(Outcome {
        stats: session.stats(),
        caught_up: session.is_caught_up(),
        millis: started.elapsed().as_millis(),
    })
}

/// Ends our side of the stream and lets the peer finish: our last acknowledgements must reach it
/// before the connection closes (closing a QUIC connection drops unsent stream data).
async fn finish_gracefully(
    session: &mut Session,
    repo: &Repo,
    policy: &dyn SharePolicy,
    send: &mut SendStream,
    recv: &mut RecvStream,
    buf: &mut [u8],
) {
    let _ = send.finish();
    let drain = async {
        while let Ok(Some(n)) = recv.read(buf).await {
            let _ = tokio::task::block_in_place(|| {
                session.handle_bytes(repo.store(), policy, now_ms(), &buf[..n])
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

/// Whether the peer closed the connection on purpose (code 0) rather than failing.
fn closed_normally(conn: &Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(close))
            if close.error_code == iroh::endpoint::VarInt::from_u32(0)
    )
}

async fn flush(session: &mut Session, send: &mut SendStream) -> Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        send.write_all(&bytes)
            .await
            .context("writing to the peer")?;
    }
    Ok(())
}
