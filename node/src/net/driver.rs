//! Drives one [`Session`] over one QUIC stream: feeds it what the peer sends and what the local
//! store commits, and writes out what it queues. One task per peer session.
//!
//! The session's calls touch the store (redb: disk IO, fsync on durable commits), so they run in
//! `block_in_place`: the runtime moves other tasks off this worker thread meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use iroh::endpoint::{Connection, RecvStream, SendStream};
use omsyn_core::sync::{Session, SharePolicy, SyncEvent, SyncStats, Unpacked};
use omsyn_core::{NodeId, Repo};
use tracing::{debug, error, info, warn};

use super::events::NetEvent;
use super::inflow::Inflow;
use super::now_ms;
use super::shared::{OnRevoked, Shared, revoked};

/// Called once when the session has verified the peer's `Hello` (see [`super::admission`]).
pub type OnVerified = Box<dyn FnOnce() + Send>;

/// How a session should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stay connected and push every local change (the daemon).
    Live,
    /// End once both sides are caught up (`omsyn sync`); give up when the peer sends nothing for
    /// `idle_limit` (it stalled: a live connection whose other end does not answer).
    UntilCaughtUp { idle_limit: Duration },
}

impl Mode {
    /// Until caught up, with the default patience for a silent peer.
    pub const ONCE: Mode = Mode::UntilCaughtUp {
        idle_limit: IDLE_LIMIT,
    };

    /// How long the peer may stay silent before the session is abandoned; `None` for a live
    /// session, which waits for the peer as long as the connection lives (QUIC's keep-alive and
    /// idle timeout notice a dead one).
    fn idle_limit(self) -> Option<Duration> {
        match self {
            Mode::Live => None,
            Mode::UntilCaughtUp { idle_limit } => Some(idle_limit),
        }
    }

    fn until_caught_up(self) -> bool {
        matches!(self, Mode::UntilCaughtUp { .. })
    }
}

/// What a finished session reports.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Outcome {
    pub stats: SyncStats,
    pub caught_up: bool,
    pub millis: u128,
    /// When this side first knew both sides held everything: before the streams are closed.
    #[serde(skip)]
    pub caught_up_at: Option<Instant>,
}

/// A session to catch up is abandoned when the peer sends nothing for this long (the peer
/// stalled), unless told otherwise (`omsyn sync --idle-timeout`).
pub const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// The code a session abandoned for the peer's silence closes its connection with (0 is a
/// normal end).
const IDLE_CLOSE: iroh::endpoint::VarInt = iroh::endpoint::VarInt::from_u32(2);
/// How long a finished session waits for the peer to close before dropping the connection.
const LINGER: Duration = Duration::from_secs(2);
/// How often an idle session re-checks the peer's certificate (expiry, revocation).
const RECHECK: Duration = Duration::from_secs(1);
/// Least time between two progress events of a session.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A session opened before its stream: our Hello and first push built.
pub struct Opened {
    session: Session,
    policy: Arc<dyn SharePolicy>,
    busy_us: u64,
}

impl Opened {
    /// Opens a session with `peer` on a blocking thread, so that the caller can wait for QUIC's
    /// handshake or for the peer's stream meanwhile: on a reconnect, building the first push
    /// (reading what changed, compressing it) then costs the peer no waiting. A dial that
    /// fails wastes it; the push is paced (its first part only), so that is bounded.
    pub async fn prepare(shared: &Shared, peer: NodeId) -> Result<Opened> {
        let repo = shared.repo.clone();
        tokio::task::spawn_blocking(move || Opened::open(&repo, peer))
            .await
            .context("opening the session")?
    }

    fn open(repo: &Repo, peer: NodeId) -> Result<Opened> {
        let started = Instant::now();
        let policy: Arc<dyn SharePolicy> = Arc::new(repo.need_policy()?);
        let mut session = Session::new(peer, repo.store());
        session.pace();
        // A peer met before gets our first push with our Hello: one round trip less.
        session.push_early(repo.store(), policy.as_ref(), now_ms())?;
        debug!(peer = %peer.short(), took = ?started.elapsed(), "hello and early push queued");
        Ok(Opened {
            session,
            policy,
            busy_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

impl Opened {
    /// Writes our Hello and first push to `send` before the connection's handshake is complete
    /// (0-RTT): the driver then finds them sent.
    pub async fn send_early(&mut self, send: &mut SendStream) -> Result<()> {
        // The handshake's own timeout bounds this: a connection that fails fails the write.
        flush(&mut self.session, send, None).await
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

/// The session's stream pair, its receiving side already being read ([`Inflow`]).
pub struct Streams {
    send: SendStream,
    inflow: Inflow,
}

impl Streams {
    /// Starts reading and unpacking what the peer sends on `recv` at once: a responder builds
    /// its first push meanwhile ([`Opened::prepare`]), and the dialer's push that waited in the
    /// stream has its signatures checked on the other core instead of after it.
    pub fn start((send, recv): (SendStream, RecvStream)) -> Streams {
        Streams {
            send,
            inflow: Inflow::start(recv),
        }
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

/// Runs a session on `conn` until it ends: `opened` on the stream pair (opened or accepted).
pub async fn drive(
    conn: &Connection,
    Streams {
        mut send,
        mut inflow,
    }: Streams,
    opened: Opened,
    peer: NodeId,
    shared: &Shared,
    mode: Mode,
    mut on_verified: Option<OnVerified>,
) -> Result<Outcome> {
    let Opened {
        mut session,
        policy,
        busy_us,
    } = opened;
    let link = Link::new(shared, peer, policy, busy_us);
    let mut changed = shared.changed.clone();
    let mut recheck = tokio::time::interval(RECHECK);
    let revoked = revoked(&shared.on_revoked);
    tokio::pin!(revoked);
    let mut progress = Progress::default();
    let mut caught_up_at = None;
    // One deadline for the whole session, pushed back by what the peer sends: a timeout around
    // each wait would start again whenever another branch (the 1 s recheck) ran first, and
    // never fire. What counts is any bytes read (a large message crossing a slow link takes
    // many reads) or a message taken, so our own work is never the peer's silence.
    let idle_limit = mode.idle_limit();
    let silence = tokio::time::sleep(idle_limit.unwrap_or(IDLE_LIMIT));
    tokio::pin!(silence);
    // An accepted connection whose peer has shown no verified Hello and sent nothing for this
    // long holds its slot for nothing (one that keeps sending is evicted by newcomers instead:
    // see `admission`; a large first push on a slow link is not cut off).
    let on_probation = on_verified.is_some();
    let hello_limit = super::admission::hello_limit();
    let hello_by = tokio::time::sleep(hello_limit);
    tokio::pin!(hello_by);
    flush(&mut session, &mut send, idle_limit).await?;
    // Our own first writes (a large first push on a slow link) are not the peer's silence.
    let mut last_taken = Instant::now();
    debug!(peer = %peer.short(), elapsed = ?link.started.elapsed(), "hello written to the stream");
    loop {
        let result = tokio::select! {
            () = &mut revoked => bail!("this node was revoked"),
            () = &mut silence, if idle_limit.is_some() => {
                let limit = idle_limit.unwrap_or(IDLE_LIMIT);
                let heard = inflow.last_read().max(last_taken);
                if heard.elapsed() < limit {
                    silence.as_mut().reset((heard + limit).into());
                    continue;
                }
                // Not a normal end: the peer must not take it for one.
                conn.close(IDLE_CLOSE, b"the peer sent nothing");
                bail!("the peer sent nothing for {} s", limit.as_secs())
            }
            () = &mut hello_by, if on_probation && session.peer_grant().is_none() => {
                let heard = inflow.last_read().max(last_taken);
                if heard.elapsed() < hello_limit {
                    hello_by.as_mut().reset((heard + hello_limit).into());
                    continue;
                }
                conn.close(super::admission::NO_HELLO_CLOSE, b"no verified Hello in time");
                bail!("the peer sent nothing for {} ms before its Hello was verified", hello_limit.as_millis())
            }
            next = inflow.next() => {
                last_taken = Instant::now();
                if let Some(limit) = idle_limit {
                    silence.as_mut().reset((last_taken + limit).into());
                }
                let unpacked = match next {
                    None => {
                        debug!(peer = %peer.short(), "peer closed the stream");
                        break;
                    }
                    Some(Err(_)) if closed_normally(conn) => break,
                    Some(r) => r.context("reading from the peer")?,
                };
                let taken = link.take_unpacked(&mut session, &mut progress, unpacked)?;
                if session.peer_grant().is_some()
                    && let Some(verified) = on_verified.take()
                {
                    verified();
                }
                taken
            }
            seen = changed.changed() => {
                if seen.is_err() {
                    break;
                }
                // The commit tells the session what changed; the log is read only if commits
                // came in between.
                link.in_session(|| {
                    let committed = link.repo.store().last_commit();
                    let store = link.repo.store();
                    session.handle_commit(store, link.policy.as_ref(), now_ms(), committed.as_deref())
                })
            }
            _ = recheck.tick() => link.in_session(|| {
                session.handle_timeout(link.repo.store(), now_ms())
            }),
            // What was queued is sent (or buffered by the transport): the next part of a round.
            () = std::future::ready(()), if session.has_more_to_push() => link.in_session(|| {
                session.push_more(link.repo.store(), link.policy.as_ref(), now_ms())
            }),
            _ = conn.closed() => break,
        };
        if let Err(e) = result {
            return Err(end_with(e, &mut session, &mut send, conn, peer).await);
        }
        drain_events(&mut session, shared, peer)?;
        if session.peer_grant().is_some() {
            inflow.peer_verified();
        }
        flush(&mut session, &mut send, idle_limit).await?;
        if session.is_caught_up() {
            caught_up_at.get_or_insert_with(Instant::now);
        }
        if mode.until_caught_up() && session.is_caught_up() {
            let policy = link.policy.as_ref();
            finish_gracefully(&mut session, &link.repo, policy, &mut send, &mut inflow).await;
            break;
        }
    }
    Ok(link
        .close(&session, &inflow, send, conn, mode, caught_up_at)
        .await)
}

/// What every step of one session's drive uses besides the session and its streams.
struct Link<'a> {
    shared: &'a Shared,
    repo: Arc<Repo>,
    policy: Arc<dyn SharePolicy>,
    peer: NodeId,
    started: Instant,
    /// Time spent in the session's calls (the store's work: checking, applying, deriving,
    /// committing; building pushes), in microseconds: logged when the session ends, to tell a
    /// node's work from waiting on the link.
    busy_us: AtomicU64,
}

impl<'a> Link<'a> {
    fn new(shared: &'a Shared, peer: NodeId, policy: Arc<dyn SharePolicy>, busy_us: u64) -> Self {
        Link {
            shared,
            repo: shared.repo.clone(),
            policy,
            peer,
            started: Instant::now(),
            busy_us: AtomicU64::new(busy_us),
        }
    }

    /// Runs a session call that touches the store (off the runtime's async path), counting its
    /// time as busy.
    fn in_session<T>(&self, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = tokio::task::block_in_place(call);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy_us.fetch_add(us, Ordering::Relaxed);
        result
    }

    /// Ends a session that ran its course, and reports it.
    async fn close(
        &self,
        session: &Session,
        inflow: &Inflow,
        mut send: SendStream,
        conn: &Connection,
        mode: Mode,
        caught_up_at: Option<Instant>,
    ) -> Outcome {
        let _ = send.finish();
        info!(
            peer = %self.peer.short(),
            elapsed_ms = self.started.elapsed().as_millis(),
            busy_ms = self.busy_us.load(Ordering::Relaxed) / 1000,
            unpack_ms = inflow.unpack_ms(),
            "session over"
        );
        if mode == Mode::Live {
            // Let our last frames reach the peer before the connection is dropped.
            let _ = tokio::time::timeout(LINGER, conn.closed()).await;
        }
        Outcome {
            stats: session.stats(),
            caught_up: session.is_caught_up(),
            millis: self.started.elapsed().as_millis(),
            caught_up_at,
        }
    }

    /// Feeds what the peer sent (unpacked ahead, see [`Inflow`]) to the session and handles the
    /// events it caused. Returns the session's verdict; fails only when an event ends the
    /// session while the session itself went on (this node revoked).
    fn take_unpacked(
        &self,
        session: &mut Session,
        progress: &mut Progress,
        unpacked: Unpacked,
    ) -> Result<Result<(), omsyn_core::sync::SyncError>> {
        let handling = Instant::now();
        let change_bytes = unpacked.change_bytes();
        let result = self.in_session(|| {
            session.handle_unpacked(self.repo.store(), self.policy.as_ref(), now_ms(), unpacked)
        });
        debug!(peer = %self.peer.short(), change_bytes, took = ?handling.elapsed(), elapsed = ?self.started.elapsed(), "handled bytes from the peer");
        // Events first, even on error: a revocation of this node arrives with the refusal.
        let events = drain_events(session, self.shared, self.peer);
        progress.tell(session, self.shared, self.peer);
        if result.is_ok() {
            events?;
        }
        Ok(result)
    }
}

/// Tells subscribers how a session that is still catching up gets on, at most every
/// [`PROGRESS_EVERY`] and only when something arrived.
#[derive(Debug, Default)]
struct Progress {
    last: Option<Instant>,
    received: u64,
}

impl Progress {
    fn tell(&mut self, session: &Session, shared: &Shared, peer: NodeId) {
        let stats = session.stats();
        let due = self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if session.is_caught_up() || stats.bytes_received == self.received || !due {
            return;
        }
        self.last = Some(Instant::now());
        self.received = stats.bytes_received;
        shared.emit(NetEvent::Progress { peer, stats });
    }
}

/// Ends a failed session: tells the peer why (the session queued the reason, and a revocation
/// before it) and gives it a moment to read it, since closing the connection would drop unsent
/// data; then logs.
async fn end_with(
    e: omsyn_core::sync::SyncError,
    session: &mut Session,
    send: &mut SendStream,
    conn: &Connection,
    peer: NodeId,
) -> anyhow::Error {
    let _ = tokio::time::timeout(LINGER, flush(session, send, None)).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(LINGER, conn.closed()).await;
    // Said once, by whoever gets the error: the daemon's loops log it, `omsyn sync` prints it.
    tracing::debug!(peer = %peer.short(), error = %e, "sync session ended");
    e.into()
}

/// Handles every event the session queued; fails when one ends the session (this node revoked).
fn drain_events(session: &mut Session, shared: &Shared, peer: NodeId) -> Result<()> {
    let mut outcome = Ok(());
    while let Some(event) = session.poll_event() {
        if let Err(e) = handle_event(session, shared, peer, event) {
            outcome = Err(e);
        }
    }
    outcome
}

/// Logs a session event, tells subscribers, and acts on the ones that need the node: renewing a
/// peer's certificate, wiping this node when it learns it was revoked.
fn handle_event(
    session: &mut Session,
    shared: &Shared,
    peer: NodeId,
    event: SyncEvent,
) -> Result<()> {
    let p = peer.short();
    match event {
        SyncEvent::CaughtUp => caught_up(session, shared, peer),
        SyncEvent::Withdrawn(doc) => {
            info!(peer = %p, %doc, "the base withdrew a patient from this device");
            shared.emit(NetEvent::Withdrawn { doc });
        }
        SyncEvent::DocumentChanged(doc) => {
            debug!(peer = %p, %doc, "received");
            shared.emit(NetEvent::DocumentReceived { peer, doc });
        }
        SyncEvent::Declined(doc) => info!(peer = %p, %doc, "peer declined: no need for it"),
        SyncEvent::PeerVerified(grant) => {
            info!(peer = %p, role = %grant.role, name = %grant.name, "peer verified");
            shared.emit(NetEvent::PeerConnected {
                peer,
                role: grant.role,
                name: grant.name.clone(),
            });
            renew_if_due(session, shared, peer, &grant);
        }
        SyncEvent::RejectedChanges { doc, reason } => {
            warn!(peer = %p, %doc, %reason, "refused changes from the peer");
            shared.emit(NetEvent::Refused {
                peer,
                doc,
                reason,
                by_peer: false,
            });
        }
        SyncEvent::RejectedByPeer { doc, reason } => {
            warn!(peer = %p, %doc, %reason, "the peer refused our changes");
            shared.emit(NetEvent::Refused {
                peer,
                doc,
                reason,
                by_peer: true,
            });
        }
        SyncEvent::RevocationLearned(node) => {
            warn!(peer = %p, revoked = %node.short(), "learned a revocation")
        }
        SyncEvent::CertificateRenewed => info!(peer = %p, "our certificate was renewed"),
        SyncEvent::SelfRevoked(reason) => return self_revoked(shared, &reason),
    }
    Ok(())
}

/// Logs and tells subscribers that the session caught up; after a base, purges what this device
/// no longer needs.
fn caught_up(session: &Session, shared: &Shared, peer: NodeId) {
    let s = session.stats();
    info!(
        peer = %peer.short(),
        docs_sent = s.docs_sent,
        change_bytes_sent = s.change_bytes_sent,
        bytes_sent = s.bytes_sent,
        bytes_received = s.bytes_received,
        "caught up"
    );
    shared.emit(NetEvent::CaughtUp {
        peer,
        stats: session.stats(),
    });
    // Caught up with a base: it holds everything this device wrote, so documents the
    // device no longer needs (reassigned visits, blocks) can go now.
    let with_base = session
        .peer_grant()
        .is_some_and(|g| g.role == omsyn_core::Role::Base);
    if with_base && shared.repo.profile().role != omsyn_core::Role::Base {
        // Off the session's path: the purge reads every patient held (milliseconds on a
        // phone holding thousands), and the peer waits for nothing of it.
        let repo = shared.repo.clone();
        tokio::task::spawn_blocking(move || purge(&repo));
    }
}

/// This node learnt it was revoked: it destroys its store key and data, then exits or, in an
/// app, reports it and fails every session from now on.
fn self_revoked(shared: &Shared, reason: &str) -> Result<()> {
    error!(%reason, "this node was revoked: destroying its store key and data");
    super::wipe(&shared.repo);
    match &shared.on_revoked {
        OnRevoked::ExitProcess => std::process::exit(3),
        OnRevoked::Report(flag) => {
            // The flag first: from now on every session and call refuses to go on.
            flag.send_replace(Some(reason.to_owned()));
            shared.emit(NetEvent::Revoked {
                reason: reason.to_owned(),
            });
            bail!("this node was revoked: {reason}");
        }
    }
}

fn purge(repo: &Repo) {
    let started = Instant::now();
    let result = repo.purge_unneeded(crate::clock::now());
    debug!(took = ?started.elapsed(), "looked for documents no longer needed");
    match result {
        Ok(report) if !report.purged.is_empty() => {
            info!(
                patients = report.purged.len(),
                "removed the documents of patients this device no longer needs"
            )
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "purging documents no longer needed failed"),
    }
}

/// A base holding the organisation key renews a peer's certificate once half its validity has
/// passed, so a device in regular contact never expires, and a lost one stops within a period.
fn renew_if_due(
    session: &mut Session,
    shared: &Shared,
    peer: NodeId,
    grant: &omsyn_core::trust::Grant,
) {
    let Some(org) = &shared.org else {
        return;
    };
    let now = now_ms();
    if grant.not_after_ms - now > grant.validity_ms / 2 {
        return;
    }
    // From the grant the session judged the peer by (its certificate in force now), not the
    // newest held: a re-enrolment dated ahead must not begin early by being renewed from now.
    let renewed = org.renew_grant(grant, now);
    info!(peer = %peer.short(), until = renewed.grant().not_after_ms, "renewed the peer's certificate");
    session.send_certificates(&[renewed]);
}

/// Ends our side of the stream and lets the peer finish: our last acknowledgements must reach it
/// before the connection closes (closing a QUIC connection drops unsent stream data).
async fn finish_gracefully(
    session: &mut Session,
    repo: &Repo,
    policy: &dyn SharePolicy,
    send: &mut SendStream,
    inflow: &mut Inflow,
) {
    let _ = send.finish();
    let drain = async {
        while let Some(Ok(unpacked)) = inflow.next().await {
            let _ = tokio::task::block_in_place(|| {
                session.handle_unpacked(repo.store(), policy, now_ms(), unpacked)
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

/// Writes what the session queued. With `patience`, a peer that takes none of it for that long
/// (its application stopped reading, so QUIC's flow control holds the stream) ends the
/// session; a slow peer that takes some now and then does not.
async fn flush(
    session: &mut Session,
    send: &mut SendStream,
    patience: Option<Duration>,
) -> Result<()> {
    while let Some(bytes) = session.poll_transmit() {
        let Some(limit) = patience else {
            send.write_all(&bytes)
                .await
                .context("writing to the peer")?;
            continue;
        };
        let mut at = 0;
        while at < bytes.len() {
            match tokio::time::timeout(limit, send.write(&bytes[at..])).await {
                Ok(written) => at += written.context("writing to the peer")?,
                Err(_) => bail!("the peer took nothing for {} s", limit.as_secs()),
            }
        }
    }
    Ok(())
}
