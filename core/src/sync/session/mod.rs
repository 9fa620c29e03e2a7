//! One sync session with one peer, as a state machine.
//!
//! Inputs are `handle_*` calls (bytes from the peer, "the local store changed"); outputs are
//! drained with [`Session::poll_transmit`] (framed bytes for the peer) and [`Session::poll_event`].
//! The session never touches a socket, a clock or a timer: the driver passes `now_ms` in and moves
//! the bytes. It does read and write the local [`Store`], which is passed in per call; the driver
//! runs those calls where blocking on the disk is fine.
//!
//! # Protocol (version 3)
//! Both sides send `Hello` with their device certificate. Each verifies the other's (issued by
//! its own organisation, naming the node the transport authenticated, valid now, not revoked) and
//! refuses the session with a clear reason otherwise. Then each sends every revocation it knows,
//! ahead of any data, and runs a *push stream*, independently and pipelined:
//! 1. From the log position the peer last acknowledged, every changed document the policy lets
//!    the peer hold is pushed: if we know which heads the peer holds, as `Changes` (exactly what
//!    it lacks); otherwise as an `Offer` of our heads, answered by `Have` or `Need`. A `PushDone`
//!    ends the round.
//! 2. The receiver applies `Changes` durably, answers offers, and then sends `Ack` for the round.
//!    An `Ack` therefore means "stored and answered": only then do we record what the peer holds.
//! 3. Answers that reveal missing data (`Need`, or a `Have` behind ours) trigger another round.
//! 4. Afterwards the session stays live: every local commit pushes a new round at once.
//!
//! Every change travels with its author's signature, preceded once per session by the author's
//! certificate. The receiver checks signature, revocation and [`crate::trust::rules`] for every
//! change before it stores (and so before it can forward) anything; a document whose changes fail
//! is answered with `Reject` and the reason, and nothing of it is stored.
//!
//! A reconnect after a shift costs one round trip and bytes proportional to what changed: the
//! acknowledged log position skips unchanged documents without naming them, and known heads make
//! offers unnecessary for documents the peer has seen before. With a peer met before, the first
//! push travels inside the `Hello` ([`Session::push_early`]), so that round trip is the only one
//! after the transport's handshake; every round goes as one compressed batch, and a large one in
//! parts acknowledged on their own, so a broken-off transfer resumes after them.

mod push;
mod receive;
mod set_aside;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use push::PendingRound;

use super::inbox::{Inbox, Unpacked};
use super::policy::{SharePolicy, ShareQuery};
use super::wire::{self, DecodeError, ErrorCode, Hash, Message, PROTOCOL_VERSION};
use crate::docs::DocumentId;
use crate::identity::{NodeId, Role};
use crate::store::{Committed, PeerDocState, PeerRecord, Store, StoreError, WriteBatch};
use crate::trust::{Certificate, Grant, Refusal};

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer speaks another protocol version.
    #[error("the peer speaks sync protocol version {theirs}; this node speaks version {ours}")]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The peer sent bytes that do not decode.
    #[error("malformed message from the peer: {0}")]
    Malformed(#[from] DecodeError),
    /// The peer broke the protocol.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// The peer ended the session with an error.
    #[error("the peer ended the session: {0}")]
    Peer(String),
    /// We refused the peer (not enrolled, expired, revoked, another organisation).
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The local store failed; nothing received in the failed batch was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Something the application may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A document changed through data from this peer.
    DocumentChanged(DocumentId),
    /// Both sides have everything the other may share: nothing is in flight.
    CaughtUp,
    /// The peer refused to hold a document we offered.
    Declined(DocumentId),
    /// The peer's certificate verified: who it is.
    PeerVerified(Box<Grant>),
    /// We refused the peer's changes of a document (forged, unauthorised); nothing was stored.
    RejectedChanges {
        /// The document.
        doc: DocumentId,
        /// Why.
        reason: String,
    },
    /// The peer refused our changes of a document.
    RejectedByPeer {
        /// The document.
        doc: DocumentId,
        /// Why.
        reason: String,
    },
    /// A revocation we did not know arrived (the driver ends sessions with that node).
    RevocationLearned(NodeId),
    /// This node itself was revoked: the driver must wipe it.
    SelfRevoked(String),
    /// The peer (a base) renewed our certificate.
    CertificateRenewed,
    /// A base told us we no longer need this document's patient: `purge` removes it.
    Withdrawn(DocumentId),
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStats {
    /// Bytes sent, frames included.
    pub bytes_sent: u64,
    /// Bytes received, frames included.
    pub bytes_received: u64,
    /// Bytes of Automerge changes sent (the payload alone).
    pub change_bytes_sent: u64,
    /// Bytes of Automerge changes received.
    pub change_bytes_received: u64,
    /// Documents we sent changes of.
    pub docs_sent: u64,
    /// Documents we received changes of.
    pub docs_received: u64,
    /// Push rounds we sent.
    pub rounds: u64,
    /// Push rounds needed until first caught up (round trips of the initial reconciliation).
    pub rounds_to_catch_up: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Open,
    Closed,
}

/// A sync session with one authenticated peer.
#[derive(Debug)]
pub struct Session {
    peer: NodeId,
    phase: Phase,
    /// Takes apart the bytes handed to [`Session::handle_bytes`] (a driver that unpacks them
    /// itself, ahead of the session, hands over [`Unpacked`] instead).
    inbox: Inbox,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<SyncEvent>,
    record: PeerRecord,
    next_round: u64,
    pushed_seq: u64,
    unacked: BTreeMap<u64, PendingRound>,
    /// Heads we offered per document: a `Have` means the peer holds at least these.
    offered: BTreeMap<DocumentId, Vec<Hash>>,
    /// Documents we have asked the peer for (`Need`) in this session.
    needed: BTreeSet<DocumentId>,
    peer_rounds_acked: u64,
    /// We asked the peer for data (`Need`) and have not seen a round of its since.
    awaiting_peer_round: bool,
    caught_up: bool,
    stats: SyncStats,
    /// The peer's verified certificate, from its `Hello` on.
    peer_grant: Option<Grant>,
    /// Signers whose certificates we sent in this session.
    certs_sent: BTreeSet<NodeId>,
    /// Revocations we sent (or received) in this session.
    revocations_known: BTreeSet<NodeId>,
    /// Documents the peer declined in this session: not offered again until the next one.
    declined: BTreeSet<DocumentId>,
    /// Before the peer's `Hello`: the grant of the certificate we hold for it, by which a first
    /// push sent with our `Hello` was shared (see [`Session::push_early`]).
    provisional_grant: Option<Grant>,
    /// The peer's store epoch that the push sent with our `Hello` assumed.
    early_epoch: Option<String>,
    /// Documents this batch of the peer's brought to exactly what the peer holds (see
    /// [`Session::note_received_log`]).
    held_by_peer: BTreeSet<DocumentId>,
    /// Stretches of our log, `(after, up_to]`, that hold only documents received from the peer
    /// and equal to its copy: nothing in them needs pushing back, so the acknowledged position
    /// moves over them and the next session does not load each such document to find that out.
    held_ranges: Vec<(u64, u64)>,
    /// Documents the peer refused changes of (in this session, or remembered from one before:
    /// `Store::refused`): sent again at each session's start, forgotten once a round that
    /// sent them is acknowledged without a refusal.
    resending: BTreeSet<DocumentId>,
    /// Build rounds a part at a time, as the driver asks ([`Session::pace`]).
    paced: bool,
    /// The round being built (paced: its parts not all queued yet).
    building: Option<push::Building>,
    /// When what the peer acknowledged was last committed durably (or first acknowledged).
    knowledge_saved_ms: Option<i64>,
    /// [`Store::revocation_commits`] when this session last sent what was new.
    revocation_commits: u64,
    /// Documents whose changes by revoked nodes this session left out, and those changes until
    /// the peer's round or part ends (see [`set_aside`]): what waits for them is not asked for
    /// again.
    left_out: set_aside::SetAside,
}

impl Session {
    /// Starts a session with `peer` (authenticated by the transport). Queues our `Hello`.
    pub fn new(peer: NodeId, store: &Store) -> Session {
        let mut session = Session {
            peer,
            phase: Phase::AwaitingHello,
            inbox: Inbox::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            record: PeerRecord::default(),
            next_round: 0,
            pushed_seq: 0,
            unacked: BTreeMap::new(),
            offered: BTreeMap::new(),
            needed: BTreeSet::new(),
            peer_rounds_acked: 0,
            awaiting_peer_round: false,
            caught_up: false,
            stats: SyncStats::default(),
            peer_grant: None,
            certs_sent: BTreeSet::new(),
            revocations_known: BTreeSet::new(),
            declined: BTreeSet::new(),
            provisional_grant: None,
            early_epoch: None,
            held_by_peer: BTreeSet::new(),
            held_ranges: Vec::new(),
            resending: BTreeSet::new(),
            paced: false,
            building: None,
            knowledge_saved_ms: None,
            revocation_commits: store.revocation_commits(),
            left_out: set_aside::SetAside::default(),
        };
        // A store that cannot read its own certificate sends none: the peer refuses, and says so.
        let certificate = store
            .own_certificate()
            .ok()
            .flatten()
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        session.send(&Message::Hello {
            version: PROTOCOL_VERSION,
            epoch: store.epoch(),
            certificate,
        });
        session
    }

    /// Builds each push round a part at a time: [`Session::push_more`] builds the next once the
    /// driver has sent what is queued, while [`Session::has_more_to_push`]. For drivers over a
    /// real link: a first sync of a base's month (hundreds of megabytes of changes) then starts
    /// at once and overlaps loading documents with sending them. Unpaced, a round is queued whole.
    pub fn pace(&mut self) {
        self.paced = true;
    }

    /// Nothing we pushed awaits the peer's acknowledgement, and no round is being built.
    fn nothing_in_flight(&self) -> bool {
        self.unacked.is_empty() && self.building.is_none()
    }

    /// The peer's verified certificate grant (after its `Hello`).
    pub fn peer_grant(&self) -> Option<&Grant> {
        self.peer_grant.as_ref()
    }

    /// Queues certificates for the peer: a base sends a peer its renewed certificate this way.
    pub fn send_certificates(&mut self, certificates: &[Certificate]) {
        if self.phase == Phase::Closed || certificates.is_empty() {
            return;
        }
        self.send(&Message::Certificates {
            certificates: certificates.iter().map(Certificate::to_bytes).collect(),
        });
    }

    /// Sends this node's first push to a peer it has met before together with its `Hello`,
    /// instead of a round trip later: a reconnect then costs the transport's handshake and one
    /// round trip. Only for a peer whose certificate we hold, valid now and not revoked: what is
    /// shared is decided by that certificate's grant (the organisation vouched for it until it
    /// expires), and the peer's own `Hello` is still verified before anything of its is accepted.
    /// Call once, before the first [`Session::poll_transmit`]; without it the first push follows
    /// the peer's `Hello`.
    pub fn push_early(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        if self.phase != Phase::AwaitingHello || self.early_epoch.is_some() {
            return Ok(());
        }
        let Some(record) = store.peer(&self.peer)? else {
            return Ok(());
        };
        let held = store.certificate_history(&self.peer)?;
        let (Some(own), Some(cert)) = (
            store.own_certificate()?,
            Certificate::in_force(&held, now_ms),
        ) else {
            return Ok(());
        };
        if cert
            .check_in_run(&held, &own.grant().org, &self.peer, now_ms)
            .is_err()
            || store.revocation(&self.peer)?.is_some()
        {
            return Ok(());
        }
        self.provisional_grant = Some(cert.grant().clone());
        self.early_epoch = Some(record.epoch.clone());
        self.record = record;
        let mark = self.outbox.len();
        self.push_from_log(store, policy, now_ms, Vec::new())?;
        let frames: Vec<Vec<u8>> = self.outbox.drain(mark..).collect();
        // The Hello is the first frame queued, and nothing was sent yet.
        if let Some(hello) = self.outbox.front_mut() {
            let rest = wire::embed_in_hello(hello, frames);
            self.outbox.extend(rest);
        }
        Ok(())
    }

    /// The push that opens a session, once the peer's `Hello` verified: revocations first (they
    /// beat any data that follows), then every document changed since the position the peer
    /// acknowledged, and `answers`: documents the peer asked for in the same batch (answering
    /// the push that went with our `Hello`). If that push went and the peer's store is the one it
    /// assumed, only what was committed since is pushed, and the answers.
    fn initial_push(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        answers: Vec<DocumentId>,
        answer_owed: bool,
    ) -> Result<(), SyncError> {
        // The early push was judged by the certificate held for the peer; the peer is judged by
        // the one in force now, which may grant another zone, patient or role (re-enrolled):
        // then everything withheld or withdrawn by the first is judged again.
        let regranted = match (self.provisional_grant.take(), &self.peer_grant) {
            (Some(early), Some(now)) => !crate::trust::same_subject(&early, now),
            _ => false,
        };
        if self.early_epoch.as_ref() == Some(&self.record.epoch) {
            // A revocation stored since the early push went.
            self.send_new_revocations(store)?;
            let answering = !answers.is_empty() || answer_owed || regranted;
            let mut docs = self.unpushed(store)?;
            docs.extend(answers);
            docs.extend(self.refused_before(store)?);
            // An owed answer goes as a round though it carries nothing: the asker waits for it.
            if !docs.is_empty() || answer_owed || regranted {
                self.push_round(store, policy, now_ms, docs, answering)?;
            }
            return Ok(());
        }
        self.push_from_log(store, policy, now_ms, answers)
    }

    /// Revocations, then a round of every document changed since the acknowledged position (and
    /// of `answers`).
    fn push_from_log(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        answers: Vec<DocumentId>,
    ) -> Result<(), SyncError> {
        self.send_new_revocations(store)?;
        self.pushed_seq = self.record.acked_seq;
        let mut docs = self.unpushed(store)?;
        docs.extend(answers);
        docs.extend(self.refused_before(store)?);
        self.push_round(store, policy, now_ms, docs, true)
    }

    /// The documents the peer refused changes of in an earlier session, to be sent again (once:
    /// a reconnect's early push listed them already).
    fn refused_before(&mut self, store: &Store) -> Result<Vec<DocumentId>, SyncError> {
        let mut refused = store.refused(&self.peer)?;
        refused.retain(|doc| self.resending.insert(doc.clone()));
        Ok(refused)
    }

    /// Documents committed after the last position pushed; advances that position to the one
    /// the same read saw, and no further.
    fn unpushed(&mut self, store: &Store) -> Result<Vec<DocumentId>, SyncError> {
        let since = store.log_since(self.pushed_seq)?;
        self.pushed_seq = self.pushed_seq.max(since.position);
        Ok(since.changed.into_iter().map(|(_, doc)| doc).collect())
    }

    /// Sends the frames queued since `mark` as compressed batches where that saves bytes.
    fn compress_since(&mut self, mark: usize, packing: wire::Packing) {
        let frames: Vec<Vec<u8>> = self.outbox.drain(mark..).collect();
        let before: usize = frames.iter().map(Vec::len).sum();
        let packed = wire::compress(frames, packing);
        let after: usize = packed.iter().map(Vec::len).sum();
        self.stats.bytes_sent = self.stats.bytes_sent - before as u64 + after as u64;
        self.outbox.extend(packed);
    }

    /// Re-checks the peer's certificate against the clock and the revocation list; closes the
    /// session (telling the peer why) once it no longer holds. Drivers call this periodically, so
    /// an idle session with an expired peer ends too.
    pub fn handle_timeout(&mut self, store: &Store, now_ms: i64) -> Result<(), SyncError> {
        if self.phase != Phase::Open {
            return Ok(());
        }
        let result = self.recheck_peer(store, now_ms);
        self.fail_on_error(result)
    }

    fn recheck_peer(&mut self, store: &Store, now_ms: i64) -> Result<(), SyncError> {
        let Some(grant) = &self.peer_grant else {
            return Ok(());
        };
        if now_ms >= grant.not_after_ms {
            return Err(Refusal::Expired {
                node: self.peer.to_string(),
                expired_ms: grant.not_after_ms,
                now_ms,
            }
            .into());
        }
        if let Some(revocation) = store.revocation(&self.peer)? {
            return Err(Refusal::Revoked {
                node: self.peer.to_string(),
                reason: revocation.body().reason.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn fail_on_error(&mut self, result: Result<(), SyncError>) -> Result<(), SyncError> {
        if let Err(e) = &result {
            let code = match e {
                SyncError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
                SyncError::Malformed(_) | SyncError::Protocol(_) => ErrorCode::Malformed,
                SyncError::Refused(_) => ErrorCode::Refused,
                SyncError::Store(_) => ErrorCode::Internal,
                SyncError::Peer(_) => {
                    self.phase = Phase::Closed;
                    return result;
                }
            };
            self.send(&Message::Error {
                code,
                message: e.to_string(),
            });
            self.phase = Phase::Closed;
        }
        result
    }

    /// The peer.
    pub fn peer(&self) -> &NodeId {
        &self.peer
    }

    /// Counters so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Whether both sides currently have everything the other may share.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// Whether the session has ended (after an error on either side).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Framed bytes to send to the peer, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<SyncEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes received from the peer. Every complete frame is processed; `Changes` are stored
    /// durably in one transaction before anything is acknowledged. On error the session is closed
    /// and an `Error` message for the peer is queued.
    pub fn handle_bytes(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        bytes: &[u8],
    ) -> Result<(), SyncError> {
        if self.peer_grant.is_some() {
            self.inbox.peer_verified();
        }
        let unpacked = self.inbox.unpack(bytes);
        self.handle_unpacked(store, policy, now_ms, unpacked)
    }

    /// [`Session::handle_bytes`] for bytes the driver took apart with an [`Inbox`] of its own
    /// (on another thread, while the session took in the bytes before). Several reads' worth
    /// may come [`Unpacked::append`]ed into one: they are stored in one write.
    pub fn handle_unpacked(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        unpacked: Unpacked,
    ) -> Result<(), SyncError> {
        if self.phase == Phase::Closed {
            return Err(SyncError::Protocol("session already closed".into()));
        }
        self.stats.bytes_received += unpacked.bytes;
        let result = match unpacked.error {
            Some(e) => Err(SyncError::Malformed(e)),
            None => self.process(store, policy, now_ms, unpacked.messages),
        };
        self.fail_on_error(result)
    }

    /// Tells the session the local store committed: pushes what changed to the peer.
    pub fn handle_local_change(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        if self.phase != Phase::Open {
            return Ok(());
        }
        // Revocations go out ahead of any data (and ahead of refusing a peer they name, so the
        // revoked device learns of it).
        self.send_new_revocations(store)?;
        let checked = self.recheck_peer(store, now_ms);
        self.fail_on_error(checked)?;
        let docs = self.unpushed(store)?;
        if docs.is_empty() {
            return Ok(());
        }
        self.push_round(store, policy, now_ms, docs, false)
    }

    /// Tells the session the local store committed `committed` (what the store's commit hook was
    /// told, [`Store::last_commit`]): pushes the documents it changed, and sends revocations and
    /// checks the peer again only if a commit since the last it saw stored one. When commits
    /// came between the last one pushed and this one (or there is none), it reads what changed
    /// from the log, as [`Session::handle_local_change`] does.
    pub fn handle_commit(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        committed: Option<&Committed>,
    ) -> Result<(), SyncError> {
        let Some(committed) = committed else {
            return self.handle_local_change(store, policy, now_ms);
        };
        if self.phase != Phase::Open {
            return Ok(());
        }
        let revocation_commits = store.revocation_commits();
        if revocation_commits != self.revocation_commits {
            self.revocation_commits = revocation_commits;
            self.send_new_revocations(store)?;
            let checked = self.recheck_peer(store, now_ms);
            self.fail_on_error(checked)?;
        }
        if committed.seq <= self.pushed_seq {
            // Pushed already: a log read since covered it.
            return Ok(());
        }
        let follows =
            committed.seq.checked_sub(committed.documents.len() as u64) == Some(self.pushed_seq);
        if !follows {
            // Commits came in between (the hook wakes a session once for several): what they
            // changed is read from the store, a revocation stored by one of them included.
            return self.handle_local_change(store, policy, now_ms);
        }
        self.pushed_seq = committed.seq;
        let docs = committed.documents.clone();
        if docs.is_empty() {
            return Ok(());
        }
        self.push_round(store, policy, now_ms, docs, false)
    }

    fn send(&mut self, message: &Message) {
        let frame = wire::encode(message);
        self.stats.bytes_sent += frame.len() as u64;
        self.outbox.push_back(frame);
    }

    /// Sends every revocation the peer has not had from us (or we from it) in this session.
    fn send_new_revocations(&mut self, store: &Store) -> Result<(), SyncError> {
        let fresh: Vec<Vec<u8>> = store
            .revocation_bytes()?
            .into_iter()
            .filter(|(node, _)| self.revocations_known.insert(*node))
            .map(|(_, bytes)| bytes)
            .collect();
        if !fresh.is_empty() {
            self.send(&Message::Revocations { revocations: fresh });
        }
        Ok(())
    }

    fn query<'a>(&'a self, store: &'a Store, now_ms: i64) -> Option<ShareQuery<'a>> {
        let grant = self.peer_grant.as_ref().or(self.provisional_grant.as_ref());
        grant.map(|peer| ShareQuery {
            store,
            now_ms,
            peer,
        })
    }

    /// Asks the policy, once the peer is verified (before that, nothing is shared).
    fn permits(
        &self,
        store: &Store,
        now_ms: i64,
        check: impl FnOnce(&ShareQuery<'_>) -> bool,
    ) -> bool {
        self.query(store, now_ms).is_some_and(|q| check(&q))
    }

    fn org_role(store: &Store) -> Option<Role> {
        store
            .own_certificate()
            .ok()
            .flatten()
            .map(|c| c.grant().role)
    }

    fn org(store: &Store) -> Result<NodeId, SyncError> {
        Ok(store
            .own_certificate()?
            .ok_or(Refusal::SelfNotEnrolled)?
            .grant()
            .org)
    }
}

/// Records that the peer holds `heads` of `doc`, and when both sides were equal.
fn remember(
    batch: &mut WriteBatch<'_>,
    peer: &NodeId,
    doc: &DocumentId,
    heads: Vec<Hash>,
    mine: &[Hash],
    now_ms: i64,
) -> Result<(), StoreError> {
    let previous = batch.peer_doc(peer, doc)?;
    remember_over(batch, (peer, doc), previous.as_ref(), heads, mine, now_ms)
}

/// [`remember`] for a caller that read what was known of `doc` already (`previous`, from the
/// same batch): one lookup per received document instead of two.
fn remember_over(
    batch: &mut WriteBatch<'_>,
    (peer, doc): (&NodeId, &DocumentId),
    previous: Option<&PeerDocState>,
    mut heads: Vec<Hash>,
    mine: &[Hash],
    now_ms: i64,
) -> Result<(), StoreError> {
    heads.sort();
    heads.dedup();
    let equal = heads == mine;
    put_known(batch, (peer, doc), previous, heads, equal, now_ms)
}

/// Records that the peer holds `heads` (sorted) of `doc`, which are ours if `equal`.
fn put_known(
    batch: &mut WriteBatch<'_>,
    (peer, doc): (&NodeId, &DocumentId),
    previous: Option<&PeerDocState>,
    heads: Vec<Hash>,
    equal: bool,
    now_ms: i64,
) -> Result<(), StoreError> {
    let equal_at_ms = if equal {
        Some(now_ms)
    } else {
        previous.and_then(|p| p.equal_at_ms)
    };
    batch.put_peer_doc(peer, doc, &PeerDocState { heads, equal_at_ms })
}
