//! What the peer sends, read and taken apart ahead of the session: a task of its own reads the
//! stream and unpacks each read ([`Inbox`]: frames, inflated batches, and once the session has
//! verified the peer's Hello every change's signature checked and its Automerge chunk parsed) on
//! the blocking pool, while the driver's session judges and stores what came before. On a machine with two cores a base's month then has its
//! signatures checked on one while the other applies, derives and commits.
//!
//! Reads that pile up while the session is busy are handed over together, so they are stored in
//! one write (one commit, and each document's indexes derived once for all of them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use iroh::endpoint::{ReadError, RecvStream};
use omsyn_core::sync::{Inbox, Unpacked};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest read of the stream.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Unpacked reads waiting for the session: enough to keep the checking thread busy while the
/// session stores, bounded so a slow session holds back the stream (QUIC's flow control then
/// slows the peer) instead of memory growing.
const QUEUED_READS: usize = 8;
/// At most this many bytes of changes go into one write when reads have piled up: a write's
/// documents stay in memory until it commits.
const WRITE_CHANGE_BYTES: usize = 8 * 1024 * 1024;

/// One session's reading side, running until the stream ends or this is dropped.
#[derive(Debug)]
pub(crate) struct Inflow {
    rx: mpsc::Receiver<Result<Unpacked, ReadError>>,
    /// Taken off the queue but not handed over with what came before it (malformed bytes, or
    /// a write already full).
    held: Option<Result<Unpacked, ReadError>>,
    reader: JoinHandle<()>,
    /// Time spent unpacking, in microseconds (the session's busy time does not include it).
    unpack_us: Arc<AtomicU64>,
    /// Set once the session verified the peer's Hello: changes are checked ahead from then on
    /// (see [`Inbox`]; before, the session checks them after the Hello).
    peer_verified: Arc<AtomicBool>,
    /// When the stream was last read (any bytes), in milliseconds since `started`.
    last_read_ms: Arc<AtomicU64>,
    started: Instant,
}

impl Inflow {
    /// Starts reading `recv`.
    pub(crate) fn start(recv: RecvStream) -> Inflow {
        let (tx, rx) = mpsc::channel(QUEUED_READS);
        let unpack_us = Arc::new(AtomicU64::new(0));
        let peer_verified = Arc::new(AtomicBool::new(false));
        let last_read_ms = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let reader = tokio::spawn(read(
            recv,
            tx,
            Arc::clone(&unpack_us),
            Arc::clone(&peer_verified),
            (Arc::clone(&last_read_ms), started),
        ));
        Inflow {
            rx,
            held: None,
            reader,
            unpack_us,
            peer_verified,
            last_read_ms,
            started,
        }
    }

    /// When bytes of the peer last came (or the reading started): a message of many reads is
    /// still coming while they do.
    pub(crate) fn last_read(&self) -> Instant {
        self.started + std::time::Duration::from_millis(self.last_read_ms.load(Ordering::Relaxed))
    }

    /// The session verified the peer: what is read from now on has its changes checked here.
    pub(crate) fn peer_verified(&self) {
        self.peer_verified.store(true, Ordering::Relaxed);
    }

    /// What the peer sent next: every read unpacked since the last call (at least one; up to
    /// [`WRITE_CHANGE_BYTES`] of changes, each message weighing a little more: `Unpacked::weight`), or the error that ended the stream. `None` once the
    /// peer finished the stream.
    pub(crate) async fn next(&mut self) -> Option<Result<Unpacked, ReadError>> {
        let first = match self.held.take() {
            Some(held) => held,
            None => self.rx.recv().await?,
        };
        let Ok(mut merged) = first else {
            return Some(first);
        };
        while !merged.is_malformed() && merged.weight() < WRITE_CHANGE_BYTES {
            match self.rx.try_recv() {
                Ok(Ok(more)) if !more.is_malformed() => merged.append(more),
                Ok(other) => {
                    self.held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(Ok(merged))
    }

    /// Milliseconds spent unpacking so far.
    pub(crate) fn unpack_ms(&self) -> u64 {
        self.unpack_us.load(Ordering::Relaxed) / 1000
    }
}

impl Drop for Inflow {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads `recv` and unpacks each read on the blocking pool, in order, until the stream ends,
/// fails, breaks the protocol or nobody takes what it unpacks.
async fn read(
    mut recv: RecvStream,
    tx: mpsc::Sender<Result<Unpacked, ReadError>>,
    unpack_us: Arc<AtomicU64>,
    peer_verified: Arc<AtomicBool>,
    (last_read_ms, started): (Arc<AtomicU64>, Instant),
) {
    let mut inbox = Inbox::default();
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    // Bytes that completed no message yet wait for the read that does.
    let mut pending = Unpacked::default();
    loop {
        let n = match recv.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                break;
            }
        };
        let since = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        last_read_ms.store(since, Ordering::Relaxed);
        let bytes = buf[..n].to_vec();
        if peer_verified.load(Ordering::Relaxed) {
            inbox.peer_verified();
        }
        let started = Instant::now();
        let unpacking = tokio::task::spawn_blocking(move || {
            let unpacked = inbox.unpack(&bytes);
            (inbox, unpacked)
        })
        .await;
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        unpack_us.fetch_add(us, Ordering::Relaxed);
        let Ok((back, unpacked)) = unpacking else {
            // The unpacking panicked on these bytes: the session must end with an error, not
            // take it for the peer closing the stream.
            pending.append(Unpacked::unreadable(n as u64));
            let _ = tx.send(Ok(pending)).await;
            break;
        };
        inbox = back;
        let malformed = unpacked.is_malformed();
        pending.append(unpacked);
        if pending.is_empty() {
            continue;
        }
        if tx.send(Ok(std::mem::take(&mut pending))).await.is_err() || malformed {
            break;
        }
    }
}
