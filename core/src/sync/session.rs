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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::policy::{SharePolicy, ShareQuery};
use super::wire::{
    self, DecodeError, ErrorCode, FrameDecoder, Hash, Message, PROTOCOL_VERSION, SignedChange,
};
use crate::docs::{self, DocumentId};
use crate::identity::{NodeId, Role};
use crate::pipeline;
use crate::store::{Committed, PeerDocState, PeerRecord, Store, StoreError, WriteBatch};
use crate::trust::{self, Certificate, Grant, Refusal, Revocation};

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

/// One push round awaiting the peer's `Ack`.
#[derive(Debug, Default)]
struct PendingRound {
    seq: u64,
    /// Documents whose changes we sent: our heads then, and what the peer was known to hold.
    pushed: Vec<(DocumentId, Vec<Hash>, Vec<Hash>)>,
    /// Documents withheld until now that this round sends or offers: no longer withheld once
    /// the peer acknowledges the round (if the session dies first, they stay withheld and are
    /// reconsidered next time).
    released: Vec<DocumentId>,
    /// Documents of patients this round withdraws from the peer: once it acknowledges, we
    /// forget it held them (it removes them), so they are sent again if the need returns.
    withdrawn: Vec<DocumentId>,
}

/// What to push of one document.
enum Push {
    Nothing,
    /// Changes, our heads, and what the peer was known to hold.
    Changes(Vec<docs::HashedChange>, Vec<Hash>, Vec<Hash>),
    Offer(Vec<Hash>),
}

/// Documents smaller than this are pushed whole to a peer whose copy we know nothing of.
const PUSH_UNKNOWN_BELOW_BYTES: usize = 2048;

/// Documents only this node wrote are pushed whole to a peer whose copy is unknown up to this
/// size (beyond, offered: a peer that got them through a third node is not sent them twice).
const PUSH_OWN_BELOW_BYTES: usize = 256 * 1024;

/// A push round sends this many bytes of changes at most before a part of it is acknowledged
/// on its own (a first sync of thousands of documents resumes where it broke off).
const ROUND_PART_BYTES: usize = 128 * 1024;

/// Keep each `Changes` message well below the frame limit.
const CHANGES_MESSAGE_TARGET_BYTES: usize = wire::MAX_FRAME_BYTES / 2;

/// A sync session with one authenticated peer.
#[derive(Debug)]
pub struct Session {
    peer: NodeId,
    phase: Phase,
    decoder: FrameDecoder,
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
}

impl Session {
    /// Starts a session with `peer` (authenticated by the transport). Queues our `Hello`.
    pub fn new(peer: NodeId, store: &Store) -> Session {
        let mut session = Session {
            peer,
            phase: Phase::AwaitingHello,
            decoder: FrameDecoder::default(),
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
        let (Some(own), Some(cert)) = (store.own_certificate()?, store.certificate(&self.peer)?)
        else {
            return Ok(());
        };
        if cert.check(&own.grant().org, &self.peer, now_ms).is_err()
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
    ) -> Result<(), SyncError> {
        self.provisional_grant = None;
        if self.early_epoch.as_ref() == Some(&self.record.epoch) {
            let answering = !answers.is_empty();
            let mut docs = self.unpushed(store)?;
            docs.extend(answers);
            if !docs.is_empty() {
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
        self.push_round(store, policy, now_ms, docs, true)
    }

    /// Documents committed after the last position pushed; advances that position to the one
    /// the same read saw, and no further.
    fn unpushed(&mut self, store: &Store) -> Result<Vec<DocumentId>, SyncError> {
        let since = store.log_since(self.pushed_seq)?;
        self.pushed_seq = self.pushed_seq.max(since.position);
        Ok(since.changed.into_iter().map(|(_, doc)| doc).collect())
    }

    /// Sends the frames queued since `mark` as compressed batches where that saves bytes.
    fn compress_since(&mut self, mark: usize) {
        let frames: Vec<Vec<u8>> = self.outbox.drain(mark..).collect();
        let before: usize = frames.iter().map(Vec::len).sum();
        let packed = wire::compress(frames);
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
        if self.phase == Phase::Closed {
            return Err(SyncError::Protocol("session already closed".into()));
        }
        self.stats.bytes_received += bytes.len() as u64;
        let result = self.process(store, policy, now_ms, bytes);
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
    /// checks the peer again only if it stored one. When commits came between the last one
    /// pushed and this one (or there is none), it reads what changed from the log, as
    /// [`Session::handle_local_change`] does.
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
        if committed.revocations {
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
        let docs = if follows {
            self.pushed_seq = committed.seq;
            committed.documents.clone()
        } else {
            self.unpushed(store)?
        };
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

    fn process(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        bytes: &[u8],
    ) -> Result<(), SyncError> {
        let messages = self.decode_frames(bytes)?;
        if messages.is_empty() {
            return Ok(());
        }
        let mut inbound = Inbound::default();
        self.held_by_peer.clear();
        let mut batch = store.write()?;
        batch.set_non_durable();
        for message in messages {
            if self.phase == Phase::Open
                && let Message::Error { message, .. } = message
            {
                // Keep what arrived before it (a revocation above all), then end.
                pipeline::commit(batch, &pipeline::DeriveContext::of(store, Some(now_ms)))?;
                return Err(SyncError::Peer(message));
            }
            self.receive(store, policy, &mut batch, now_ms, message, &mut inbound)?;
        }
        self.commit_received(store, batch, now_ms, &inbound)?;
        self.answer(store, policy, now_ms, inbound)
    }

    /// Every complete message in the bytes received so far.
    fn decode_frames(&mut self, bytes: &[u8]) -> Result<Vec<Message>, SyncError> {
        self.decoder.push(bytes)?;
        let mut messages = Vec::new();
        while let Some(frame) = self.decoder.next_frame() {
            messages.push(wire::decode(&frame)?);
        }
        Ok(messages)
    }

    /// Takes one message from the peer into `batch`, noting in `inbound` what it asks of us.
    fn receive(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        batch: &mut WriteBatch<'_>,
        now_ms: i64,
        message: Message,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        match message {
            Message::Hello {
                version,
                epoch,
                certificate,
            } => {
                self.receive_hello(store, batch, now_ms, version, epoch, &certificate)?;
                inbound.start_initial_push = true;
            }
            other if self.phase != Phase::Open => {
                return Err(SyncError::Protocol(format!(
                    "{} before Hello",
                    message_name(&other)
                )));
            }
            Message::Revocations { revocations } => {
                self.receive_revocations(store, batch, revocations)?;
            }
            Message::Certificates { certificates } => {
                self.receive_certificates(store, batch, certificates)?;
            }
            Message::Withdraw { doc, blocked } => {
                self.receive_withdraw(batch, doc, blocked, now_ms)?
            }
            Message::Reject { doc, reason } => {
                // Nothing we know of the peer changes: what it refused it does not hold, and
                // what we send later of the document is judged again, change by change.
                self.events
                    .push_back(SyncEvent::RejectedByPeer { doc, reason });
            }
            Message::Changes { doc, .. } | Message::Offer { doc, .. }
                if !self.permits(store, now_ms, |q| policy.may_accept(q, &doc)) =>
            {
                inbound.replies.push(Message::Decline { doc });
            }
            Message::Changes { doc, changes } => {
                self.receive_changes(store, batch, &doc, changes, now_ms, &mut inbound.replies)?;
            }
            Message::Offer { doc, heads } => {
                self.receive_offer(batch, doc, heads, now_ms, inbound)?
            }
            Message::Have { doc, heads } => {
                self.receive_have(batch, doc, heads, now_ms, inbound)?
            }
            Message::Need { doc, heads } => {
                self.receive_need(batch, doc, heads, now_ms, inbound)?
            }
            Message::Decline { doc } => {
                // Reconsidered at the next session (the peer's need may have grown by then).
                batch.set_withheld(&self.peer, &doc, true)?;
                self.declined.insert(doc.clone());
                self.events.push_back(SyncEvent::Declined(doc));
            }
            Message::PushDone { round, .. } => {
                inbound.replies.push(Message::Ack { round });
                self.peer_rounds_acked += 1;
                self.awaiting_peer_round = false;
            }
            // A part of a round: acknowledged like one, but the round goes on.
            Message::PartDone { round } => inbound.replies.push(Message::Ack { round }),
            Message::Ack { round } => inbound.acked_rounds.push(round),
            // Taken by `process`, which ends the session on it.
            Message::Error { .. } => {}
        }
        Ok(())
    }

    /// The peer's Hello: our protocol version, a certificate of our organisation, not revoked;
    /// then the session opens.
    fn receive_hello(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        now_ms: i64,
        version: u16,
        epoch: [u8; 16],
        certificate: &[u8],
    ) -> Result<(), SyncError> {
        if self.phase != Phase::AwaitingHello {
            return Err(SyncError::Protocol("a second Hello".into()));
        }
        if version != PROTOCOL_VERSION {
            return Err(SyncError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            });
        }
        self.verify_peer(store, batch, certificate, now_ms)?;
        self.open(store, batch, epoch, now_ms)
    }

    /// A base tells this device it no longer needs a patient's documents.
    fn receive_withdraw(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        blocked: bool,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        // Only a base decides that a device's need ended.
        if self
            .peer_grant
            .as_ref()
            .is_some_and(|g| g.role == Role::Base)
            && let Some(patient) = doc.patient()
        {
            batch.set_withdrawn(patient, Some((now_ms, blocked)))?;
            self.events.push_back(SyncEvent::Withdrawn(doc));
        }
        Ok(())
    }

    /// The peer offers a document by its heads.
    fn receive_offer(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        heads: Vec<[u8; 32]>,
        now_ms: i64,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        let (mine, have_all) = match batch.existing(&doc)? {
            Some(d) => {
                let have_all = heads.iter().all(|h| d.has_change(h));
                (d.head_hashes(), have_all)
            }
            None => (Vec::new(), heads.is_empty()),
        };
        remember(batch, &self.peer, &doc, heads.clone(), &mine, now_ms)?;
        if have_all {
            // We hold everything offered: send what we have beyond it, exactly.
            inbound.replies.push(Message::Have {
                doc: doc.clone(),
                heads: mine.clone(),
            });
            if mine.iter().any(|h| !heads.contains(h)) {
                inbound.to_push.insert(doc);
            }
        } else {
            // The offer holds changes we lack. Pushing now would mean guessing what the peer
            // lacks against heads we cannot place; ask instead. If our heads are news to the
            // peer, it asks back (see `Need`).
            self.needed.insert(doc.clone());
            inbound.replies.push(Message::Need { doc, heads: mine });
        }
        Ok(())
    }

    /// The peer answers our offer: it holds its own heads and everything we offered.
    fn receive_have(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        heads: Vec<[u8; 32]>,
        now_ms: i64,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        let mine = match batch.existing(&doc)? {
            Some(d) => d.head_hashes(),
            None => Vec::new(),
        };
        // Recording both keeps us from resending what it has when its heads are ahead of ours
        // (and so unknown to us).
        let mut known = heads;
        known.extend(self.offered.remove(&doc).unwrap_or_default());
        remember(batch, &self.peer, &doc, known.clone(), &mine, now_ms)?;
        if !mine.is_empty() && mine.iter().any(|h| !known.contains(h)) {
            inbound.to_push.insert(doc);
        }
        Ok(())
    }

    /// The peer asks for what we hold of a document beyond its heads.
    fn receive_need(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        heads: Vec<[u8; 32]>,
        now_ms: i64,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        let (mine, unknown_to_us) = match batch.existing(&doc)? {
            Some(d) => (d.head_hashes(), heads.iter().any(|h| !d.has_change(h))),
            None => (Vec::new(), !heads.is_empty()),
        };
        remember(batch, &self.peer, &doc, heads, &mine, now_ms)?;
        // The asker holds changes we lack too (the two copies diverged): ask back, once per
        // document, so two askers cannot bounce requests forever.
        if unknown_to_us && self.needed.insert(doc.clone()) {
            inbound.replies.push(Message::Need {
                doc: doc.clone(),
                heads: mine,
            });
        }
        // Always answered with a round, even an empty one: the asker waits for it.
        inbound.to_push.insert(doc);
        Ok(())
    }

    /// Commits what the peer's messages brought, with what we now know of the peer, durably
    /// before any Ack is sent.
    fn commit_received(
        &mut self,
        store: &Store,
        mut batch: WriteBatch<'_>,
        now_ms: i64,
        inbound: &Inbound,
    ) -> Result<(), SyncError> {
        // Documents the peer asked for in this batch go out in a round made below: until it is
        // acknowledged, the log position must not move past them.
        let answer_owed = !inbound.to_push.is_empty();
        for round in &inbound.acked_rounds {
            self.handle_ack(store, &mut batch, *round, now_ms, answer_owed)?;
        }
        let settled =
            self.unacked.is_empty() && inbound.to_push.is_empty() && self.peer_rounds_acked > 0;
        if settled {
            self.record.caught_up_ms = Some(now_ms);
        }
        batch.put_peer(&self.peer, &self.record, false)?;
        // The log position before this write: the write lock is held, so nothing commits between.
        // This commit gives its changed documents the positions right after it (at least these
        // many: deriving may add the access log); a writer committing after it takes later ones.
        // This node's own access log may gain entries in this very commit (receipts of what
        // arrived, reviews, equivocations): never count it as held by the peer.
        let me = store.actor();
        self.held_by_peer
            .retain(|doc| !matches!(doc, DocumentId::Audit(node, _) if *node == me));
        let log_before = if self.held_by_peer.is_empty() {
            None
        } else {
            Some((store.seq()?, batch.changed_documents().len() as u64))
        };
        // Durable (if any document changed) before any Ack below is sent.
        pipeline::commit(batch, &pipeline::DeriveContext::of(store, Some(now_ms)))?;
        if let Some((before, written)) = log_before {
            self.note_received_log(store, before, before + written)?;
        }
        Ok(())
    }

    /// Sends the replies and the pushes the peer's messages asked for; notes when both sides
    /// are caught up.
    fn answer(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        inbound: Inbound,
    ) -> Result<(), SyncError> {
        for reply in &inbound.replies {
            if matches!(reply, Message::Need { .. }) {
                self.awaiting_peer_round = true;
            }
            self.send(reply);
        }
        let to_push: Vec<DocumentId> = inbound.to_push.into_iter().collect();
        if inbound.start_initial_push {
            // The peer's Hello and its answer to the push that went with ours can come together.
            self.initial_push(store, policy, now_ms, to_push)?;
        } else if !to_push.is_empty() {
            // Answers a Need (or a Have behind us): always a round, so the asker sees it end.
            self.push_round(store, policy, now_ms, to_push, true)?;
        }
        let now_caught_up =
            self.unacked.is_empty() && self.peer_rounds_acked > 0 && !self.awaiting_peer_round;
        if now_caught_up && !self.caught_up {
            if self.stats.rounds_to_catch_up == 0 {
                self.stats.rounds_to_catch_up = self.stats.rounds;
            }
            self.events.push_back(SyncEvent::CaughtUp);
        }
        self.caught_up = now_caught_up;
        Ok(())
    }

    fn open(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        epoch: [u8; 16],
        now_ms: i64,
    ) -> Result<(), SyncError> {
        let epoch = hex::encode(epoch);
        let mut record = store.peer(&self.peer)?.unwrap_or_default();
        // A peer whose store was recreated no longer holds what we knew it held.
        let forget = record.epoch != epoch;
        if forget {
            record = PeerRecord {
                epoch,
                ..PeerRecord::default()
            };
        }
        record.last_seen_ms = Some(now_ms);
        batch.put_peer(&self.peer, &record, forget)?;
        self.record = record;
        self.phase = Phase::Open;
        Ok(())
    }

    /// Passes a document's changes through the change pipeline; a refusal is answered with
    /// `Reject` and leaves nothing of the message behind.
    fn receive_changes(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
        changes: Vec<SignedChange>,
        now_ms: i64,
        replies: &mut Vec<Message>,
    ) -> Result<(), SyncError> {
        let bytes: u64 = changes.iter().map(|c| c.bytes.len() as u64).sum();
        let own = store.own_certificate()?.ok_or(Refusal::SelfNotEnrolled)?;
        let carried = BTreeMap::new();
        let mut authors = pipeline::WriteAuthors {
            batch,
            carried: &carried,
            own: own.grant(),
        };
        let admitted = match pipeline::admit(&mut authors, doc, changes, now_ms) {
            Ok(admitted) => admitted,
            Err(refusal) => return self.refuse_changes(batch, doc, refusal, now_ms, replies),
        };
        if let (Some(patient), Some(Role::Base)) =
            (doc.patient(), self.peer_grant.as_ref().map(|g| g.role))
        {
            // The base shares the patient again: the need is back.
            batch.set_withdrawn(patient, None)?;
        }
        self.stats.change_bytes_received += bytes;
        self.stats.docs_received += 1;
        if !admitted.applied.is_empty() {
            self.events
                .push_back(SyncEvent::DocumentChanged(doc.clone()));
        }
        let after = self.note_peer_heads(batch, doc, &admitted, now_ms)?;
        if admitted.lacks_dependencies {
            replies.push(Message::Need {
                doc: doc.clone(),
                heads: after,
            });
        }
        Ok(())
    }

    /// The peer's changes to `doc` were refused (all of them): it is told why, and an
    /// equivocation is logged against its author.
    fn refuse_changes(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
        refusal: pipeline::Refusal,
        now_ms: i64,
        replies: &mut Vec<Message>,
    ) -> Result<(), SyncError> {
        if let (Some(equivocation), Some(now)) = (
            &refusal.equivocation,
            crate::time::Timestamp::from_unix_millis(now_ms),
        ) {
            pipeline::log_equivocation(batch, now, equivocation)
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
        }
        self.events.push_back(SyncEvent::RejectedChanges {
            doc: doc.clone(),
            reason: refusal.reason.clone(),
        });
        replies.push(Message::Reject {
            doc: doc.clone(),
            reason: refusal.reason,
        });
        Ok(())
    }

    /// Records what the peer holds of `doc` after its changes were admitted: everything it sent,
    /// plus what it was known to hold — the tips of both. Returns our heads now.
    fn note_peer_heads(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
        admitted: &pipeline::Admitted,
        now_ms: i64,
    ) -> Result<Vec<Hash>, SyncError> {
        let prior = batch.peer_doc(&self.peer, doc)?;
        let after = batch
            .existing(doc)?
            .map(|d| d.head_hashes())
            .unwrap_or_default();
        let infos = &admitted.applied;
        let superseded: BTreeSet<Hash> =
            infos.iter().flat_map(|i| i.deps.iter().copied()).collect();
        let mut heads: BTreeSet<Hash> = infos.iter().map(|i| i.hash).collect();
        heads.extend(prior.map(|p| p.heads).unwrap_or_default());
        heads.retain(|h| !superseded.contains(h));
        if heads.iter().eq(after.iter()) {
            self.held_by_peer.insert(doc.clone());
        } else {
            self.held_by_peer.remove(doc);
        }
        remember(
            batch,
            &self.peer,
            doc,
            heads.into_iter().collect(),
            &after,
            now_ms,
        )?;
        Ok(after)
    }

    /// After a write that stored the peer's changes: the log entries it made (those after
    /// `before`, up to `end`) for documents now equal to the peer's copy need no push back to
    /// it. Records them as a stretch the pushed and acknowledged positions may move over. Stops
    /// at the first entry of anything else (a document we hold more of) and at `end`: a writer
    /// that committed since may have moved a received document's entry past it with a change of
    /// its own, which still goes.
    fn note_received_log(&mut self, store: &Store, before: u64, end: u64) -> Result<(), SyncError> {
        let mut up_to = before;
        for (seq, doc) in store.log_since(before)?.changed {
            if seq > end || !self.held_by_peer.contains(&doc) {
                break;
            }
            up_to = seq;
        }
        self.held_by_peer.clear();
        if up_to == before {
            return Ok(());
        }
        if self.pushed_seq >= before {
            self.pushed_seq = self.pushed_seq.max(up_to);
        }
        self.held_ranges.push((before, up_to));
        if self.unacked.is_empty() {
            self.skip_held_ranges();
        }
        Ok(())
    }

    /// Moves the acknowledged position over the stretches of received documents it reaches.
    fn skip_held_ranges(&mut self) {
        let mut moved = true;
        while moved {
            moved = false;
            for &(after, up_to) in &self.held_ranges {
                if after <= self.record.acked_seq && self.record.acked_seq < up_to {
                    self.record.acked_seq = up_to;
                    moved = true;
                }
            }
        }
        let acked = self.record.acked_seq;
        self.held_ranges.retain(|&(_, up_to)| up_to > acked);
    }

    fn handle_ack(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        round: u64,
        now_ms: i64,
        answer_owed: bool,
    ) -> Result<(), SyncError> {
        let done: Vec<u64> = self.unacked.range(..=round).map(|(r, _)| *r).collect();
        if done.is_empty() {
            return Err(SyncError::Protocol(format!(
                "Ack for unknown round {round}"
            )));
        }
        for r in done {
            let Some(pending) = self.unacked.remove(&r) else {
                continue;
            };
            for doc in &pending.released {
                batch.set_withheld(&self.peer, doc, false)?;
            }
            for doc in &pending.withdrawn {
                batch.forget_peer_doc(&self.peer, doc)?;
            }
            for (doc, pushed, prior) in pending.pushed {
                // The peer now holds what we pushed, and whatever it held that we do not know.
                let known = store.with_doc(&doc, |d| {
                    let mut heads = pushed;
                    heads.extend(prior.into_iter().filter(|h| !d.has_change(h)));
                    (heads, d.head_hashes())
                })?;
                if let Some((heads, mine)) = known {
                    remember(batch, &self.peer, &doc, heads, &mine, now_ms)?;
                }
            }
            if self.unacked.is_empty() && !answer_owed {
                self.record.acked_seq = self.record.acked_seq.max(pending.seq);
                self.skip_held_ranges();
            }
        }
        Ok(())
    }

    fn push_round(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        docs: Vec<DocumentId>,
        always_end_round: bool,
    ) -> Result<(), SyncError> {
        let mut out = RoundOut {
            round: self.next_round,
            mark: self.outbox.len(),
            part_bytes: 0,
            pending: PendingRound {
                seq: self.pushed_seq,
                ..PendingRound::default()
            },
            sent_anything: false,
        };
        self.next_round += 1;
        let withheld_before = self.withheld_to_reconsider(store, &docs, always_end_round)?;
        let mut withhold = Vec::new();
        // Only a base tells a device that its need ended (asked once, not per document).
        let i_am_base = Self::org_role(store) == Some(Role::Base);
        let mut seen = BTreeSet::new();
        for doc in docs.into_iter().chain(withheld_before.iter().cloned()) {
            if !seen.insert(doc.clone()) || self.declined.contains(&doc) {
                continue;
            }
            if !self.permits(store, now_ms, |q| policy.may_send(q, &doc)) {
                if !withheld_before.contains(&doc) {
                    withhold.push(doc.clone());
                }
                if i_am_base {
                    self.withdraw_if_held(store, doc, &withheld_before, &mut withhold, &mut out)?;
                }
                continue;
            }
            if withheld_before.contains(&doc) {
                out.pending.released.push(doc.clone());
            }
            self.push_doc(store, doc, &mut out)?;
        }
        if !withhold.is_empty() {
            withhold.dedup();
            let mut batch = store.write()?;
            for doc in &withhold {
                batch.set_withheld(&self.peer, doc, true)?;
            }
            pipeline::commit(batch, &pipeline::DeriveContext::of(store, Some(now_ms)))?;
        }
        self.end_round(out, always_end_round);
        Ok(())
    }

    /// What we withheld from the peer that a round reconsiders (the peer's need may have grown):
    /// at a round that opens or answers, everything withheld; otherwise what a changed record or
    /// plan concerns (a visit assigned, a care team joined).
    fn withheld_to_reconsider(
        &self,
        store: &Store,
        docs: &[DocumentId],
        always_end_round: bool,
    ) -> Result<BTreeSet<DocumentId>, SyncError> {
        let mut withheld = BTreeSet::new();
        if always_end_round {
            withheld.extend(store.withheld(&self.peer, None)?);
            return Ok(withheld);
        }
        let patients: BTreeSet<_> = docs
            .iter()
            .filter(|d| matches!(d, DocumentId::PatientRecord(_) | DocumentId::VisitPlan(..)))
            .filter_map(|d| d.patient().cloned())
            .collect();
        for patient in &patients {
            withheld.extend(store.withheld(&self.peer, Some(patient))?);
        }
        Ok(withheld)
    }

    /// At a base: tells a device that holds `doc`, which it no longer needs, that the need ended.
    /// The device removes all of the patient's documents: forget that it held any of them, and
    /// withhold them all, so every one is sent again if the need returns.
    fn withdraw_if_held(
        &mut self,
        store: &Store,
        doc: DocumentId,
        withheld_before: &BTreeSet<DocumentId>,
        withhold: &mut Vec<DocumentId>,
        out: &mut RoundOut,
    ) -> Result<(), SyncError> {
        let Some(peer) = &self.peer_grant else {
            return Ok(());
        };
        if store.peer_doc(&self.peer, &doc)?.is_none() {
            return Ok(());
        }
        let blocked = crate::trust::need::blocked(store, peer, &doc)?;
        if let Some(patient) = doc.patient() {
            for other in store.patient_doc_ids(patient)? {
                if !withheld_before.contains(&other) {
                    withhold.push(other.clone());
                }
                out.pending.withdrawn.push(other);
            }
        }
        self.send(&Message::Withdraw { doc, blocked });
        out.sent_anything = true;
        Ok(())
    }

    /// Pushes what the peer lacks of `doc`: its changes, or an offer of its heads.
    fn push_doc(
        &mut self,
        store: &Store,
        doc: DocumentId,
        out: &mut RoundOut,
    ) -> Result<(), SyncError> {
        let known = store.peer_doc(&self.peer, &doc)?;
        let me = store.actor();
        let plan = store.with_doc(&doc, |d| plan_push(d, known, me))?;
        match plan {
            None | Some(Push::Nothing) => {}
            Some(Push::Changes(changes, mine, prior)) => {
                out.part_bytes += changes.iter().map(|c| c.bytes.len()).sum::<usize>();
                self.send_changes(store, &doc, changes)?;
                out.pending.pushed.push((doc, mine, prior));
                out.sent_anything = true;
                if out.part_bytes >= ROUND_PART_BYTES {
                    self.end_part(&mut out.pending, &mut out.round, &mut out.mark);
                    out.part_bytes = 0;
                }
            }
            Some(Push::Offer(heads)) => {
                self.offered.insert(doc.clone(), heads.clone());
                self.send(&Message::Offer { doc, heads });
                out.sent_anything = true;
            }
        }
        Ok(())
    }

    /// Ends a round: the first round, and answers to the peer, always end with PushDone (that is
    /// how the other side learns a request was served); live rounds with nothing in them are
    /// not sent.
    fn end_round(&mut self, out: RoundOut, always_end_round: bool) {
        if !out.sent_anything && !always_end_round {
            self.next_round -= 1;
            if self.unacked.is_empty() {
                self.record.acked_seq = self.record.acked_seq.max(out.pending.seq);
                self.skip_held_ranges();
            }
            return;
        }
        self.send(&Message::PushDone {
            round: out.round,
            seq: out.pending.seq,
        });
        self.compress_since(out.mark);
        self.unacked.insert(out.round, out.pending);
        self.stats.rounds += 1;
    }

    /// Ends a part of a large round: what was sent so far is acknowledged on its own (as round
    /// `round`), so an interrupted transfer resumes after it; the round goes on as `round + 1`.
    /// A part acknowledges documents, not a log position: only the round's last part does.
    fn end_part(&mut self, pending: &mut PendingRound, round: &mut u64, mark: &mut usize) {
        self.send(&Message::PartDone { round: *round });
        self.compress_since(*mark);
        let seq = pending.seq;
        let mut part = std::mem::take(pending);
        pending.seq = seq;
        part.seq = self.record.acked_seq;
        self.unacked.insert(*round, part);
        *round = self.next_round;
        self.next_round += 1;
        *mark = self.outbox.len();
    }

    fn send_changes(
        &mut self,
        store: &Store,
        doc: &DocumentId,
        changes: Vec<docs::HashedChange>,
    ) -> Result<(), SyncError> {
        self.stats.docs_sent += 1;
        self.send_signer_certificates(store, &changes)?;
        let mut part = Vec::new();
        let mut part_bytes = 0;
        for change in changes {
            self.stats.change_bytes_sent += change.bytes.len() as u64;
            if part_bytes + change.bytes.len() > CHANGES_MESSAGE_TARGET_BYTES && !part.is_empty() {
                self.send(&Message::Changes {
                    doc: doc.clone(),
                    changes: std::mem::take(&mut part),
                });
                part_bytes = 0;
            }
            part_bytes += change.bytes.len();
            // A change held without a signature (written by another node before format 3) goes
            // out unsigned: the peer refuses it, and says so.
            part.push(SignedChange {
                bytes: change.bytes,
                signature: change.signature.unwrap_or([0; 64]),
            });
        }
        if !part.is_empty() {
            self.send(&Message::Changes {
                doc: doc.clone(),
                changes: part,
            });
        }
        Ok(())
    }

    /// Sends the certificates of the changes' signers that the peer has not had from us yet.
    fn send_signer_certificates(
        &mut self,
        store: &Store,
        changes: &[docs::HashedChange],
    ) -> Result<(), SyncError> {
        let mut certificates = Vec::new();
        for change in changes {
            let Ok(bytes) = <[u8; 32]>::try_from(change.actor.as_slice()) else {
                continue;
            };
            let Ok(signer) = NodeId::from_bytes(bytes) else {
                continue;
            };
            // Ours travelled in our Hello; the peer's own it holds.
            if signer == self.peer || signer == store.actor() || !self.certs_sent.insert(signer) {
                continue;
            }
            if let Some(cert) = store.certificate(&signer)? {
                certificates.push(cert.to_bytes());
            }
        }
        if !certificates.is_empty() {
            self.send(&Message::Certificates { certificates });
        }
        Ok(())
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

    /// Verifies the peer's certificate from its `Hello`; refuses the session if it does not hold.
    fn verify_peer(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        certificate: &[u8],
        now_ms: i64,
    ) -> Result<(), SyncError> {
        let own = store.own_certificate()?.ok_or(Refusal::SelfNotEnrolled)?;
        let node = self.peer.to_string();
        if certificate.is_empty() {
            return Err(Refusal::NotEnrolled(node).into());
        }
        let cert =
            Certificate::from_bytes(certificate).map_err(|e| Refusal::InvalidCertificate {
                node: node.clone(),
                reason: e.to_string(),
            })?;
        cert.check(&own.grant().org, &self.peer, now_ms)?;
        if let Some(revocation) = store.revocation(&self.peer)? {
            // Tell the revoked device, so it wipes itself; then refuse it.
            self.send(&Message::Revocations {
                revocations: vec![revocation.to_bytes()],
            });
            return Err(Refusal::Revoked {
                node,
                reason: revocation.body().reason.clone(),
            }
            .into());
        }
        batch.put_certificate(&cert)?;
        self.events
            .push_back(SyncEvent::PeerVerified(Box::new(cert.grant().clone())));
        self.peer_grant = Some(cert.grant().clone());
        Ok(())
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

    fn receive_revocations(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        revocations: Vec<Vec<u8>>,
    ) -> Result<(), SyncError> {
        let org = Self::org(store)?;
        for bytes in revocations {
            let revocation = Revocation::from_bytes(&bytes)
                .map_err(|e| SyncError::Protocol(format!("a revocation does not verify: {e}")))?;
            let body = revocation.body();
            if body.org != org {
                return Err(SyncError::Protocol(
                    "a revocation from another organisation".into(),
                ));
            }
            self.revocations_known.insert(body.node);
            if !batch.put_revocation(&revocation)? {
                continue;
            }
            self.events
                .push_back(SyncEvent::RevocationLearned(body.node));
            if body.node == store.actor() {
                self.events
                    .push_back(SyncEvent::SelfRevoked(body.reason.clone()));
            }
            if body.node == self.peer {
                return Err(Refusal::Revoked {
                    node: self.peer.to_string(),
                    reason: body.reason.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn receive_certificates(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        certificates: Vec<Vec<u8>>,
    ) -> Result<(), SyncError> {
        let org = Self::org(store)?;
        for bytes in certificates {
            let cert = Certificate::from_bytes(&bytes)
                .map_err(|e| SyncError::Protocol(format!("a certificate does not verify: {e}")))?;
            if cert.grant().org != org {
                return Err(SyncError::Protocol(
                    "a certificate from another organisation".into(),
                ));
            }
            // Our own certificate comes back renewed from a base; it must still describe us.
            if cert.node() == store.actor() {
                let own = store.own_certificate()?.ok_or(Refusal::SelfNotEnrolled)?;
                let same_grant = trust::same_subject(own.grant(), cert.grant());
                if same_grant && batch.put_certificate(&cert)? {
                    self.events.push_back(SyncEvent::CertificateRenewed);
                }
                continue;
            }
            batch.put_certificate(&cert)?;
        }
        Ok(())
    }
}

/// What one batch of the peer's messages asks of us, gathered while they are taken in and
/// answered once their batch is committed.
#[derive(Debug, Default)]
struct Inbound {
    /// Messages to send back.
    replies: Vec<Message>,
    /// Documents to push in answer.
    to_push: BTreeSet<DocumentId>,
    /// The peer's Hello arrived: the session's first push follows.
    start_initial_push: bool,
    /// Our rounds the peer acknowledged.
    acked_rounds: Vec<u64>,
}

/// A push round being built.
#[derive(Debug)]
struct RoundOut {
    /// Its number (a large round's parts take the next ones).
    round: u64,
    /// Where its frames start in the outbox (compressed together when it ends).
    mark: usize,
    /// Bytes of changes in the current part.
    part_bytes: usize,
    /// What the peer's Ack of it settles.
    pending: PendingRound,
    /// Whether it carries anything.
    sent_anything: bool,
}

/// What to push of `doc` to a peer known to hold `known` (`None`: nothing known of its copy).
fn plan_push(doc: &docs::Document, known: Option<PeerDocState>, me: NodeId) -> Push {
    let mine = doc.head_hashes();
    match known {
        Some(known) if known.heads == mine => Push::Nothing,
        Some(known) => {
            let changes = doc.hashed_changes_since(&known.heads);
            if changes.is_empty() {
                Push::Nothing
            } else {
                Push::Changes(changes, mine, known.heads)
            }
        }
        None => {
            // Our own access log reaches a peer only from us (or through a base that got it from
            // us): when the peer's copy is unknown, sending it whole saves the round trip an
            // offer costs, and is the common case (a device handing its log to a base).
            let ours_alone = matches!(doc.id(), DocumentId::Audit(node, _) if *node == me);
            // A small document is cheaper to send whole (duplicates are harmless) than to offer
            // and wait a round trip for; so is one only this node wrote (a month's first
            // entries, written offline): the peer has it only if a third node passed it on.
            let changes = doc.hashed_changes_since(&[]);
            let size: usize = changes.iter().map(|c| c.bytes.len()).sum();
            let mine_alone =
                size <= PUSH_OWN_BELOW_BYTES && changes.iter().all(|c| c.actor == me.as_bytes());
            if size <= PUSH_UNKNOWN_BELOW_BYTES || ours_alone || mine_alone {
                Push::Changes(changes, mine, Vec::new())
            } else {
                Push::Offer(mine)
            }
        }
    }
}

/// Records that the peer holds `heads` of `doc`, and when both sides were equal.
fn remember(
    batch: &mut WriteBatch<'_>,
    peer: &NodeId,
    doc: &DocumentId,
    mut heads: Vec<Hash>,
    mine: &[Hash],
    now_ms: i64,
) -> Result<(), StoreError> {
    heads.sort();
    heads.dedup();
    let previous = batch.peer_doc(peer, doc)?;
    let equal_at_ms = if heads == mine {
        Some(now_ms)
    } else {
        previous.and_then(|p| p.equal_at_ms)
    };
    batch.put_peer_doc(peer, doc, &PeerDocState { heads, equal_at_ms })
}

fn message_name(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "Hello",
        Message::Revocations { .. } => "Revocations",
        Message::Certificates { .. } => "Certificates",
        Message::Reject { .. } => "Reject",
        Message::Withdraw { .. } => "Withdraw",
        Message::Changes { .. } => "Changes",
        Message::Offer { .. } => "Offer",
        Message::Have { .. } => "Have",
        Message::Need { .. } => "Need",
        Message::Decline { .. } => "Decline",
        Message::PushDone { .. } => "PushDone",
        Message::PartDone { .. } => "PartDone",
        Message::Ack { .. } => "Ack",
        Message::Error { .. } => "Error",
    }
}
