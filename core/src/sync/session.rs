//! One sync session with one peer, as a state machine.
//!
//! Inputs are `handle_*` calls (bytes from the peer, "the local store changed"); outputs are
//! drained with [`Session::poll_transmit`] (framed bytes for the peer) and [`Session::poll_event`].
//! The session never touches a socket, a clock or a timer: the driver passes `now_ms` in and moves
//! the bytes. It does read and write the local [`Store`], which is passed in per call; the driver
//! runs those calls where blocking on the disk is fine.
//!
//! # Protocol (version 1)
//! Both sides send `Hello`, then run a *push stream* each, independently and pipelined:
//! 1. From the log position the peer last acknowledged, every changed document the policy lets
//!    the peer hold is pushed: if we know which heads the peer holds, as `Changes` (exactly what
//!    it lacks); otherwise as an `Offer` of our heads, answered by `Have` or `Need`. A `PushDone`
//!    ends the round.
//! 2. The receiver applies `Changes` durably, answers offers, and then sends `Ack` for the round.
//!    An `Ack` therefore means "stored and answered": only then do we record what the peer holds.
//! 3. Answers that reveal missing data (`Need`, or a `Have` behind ours) trigger another round.
//! 4. Afterwards the session stays live: every local commit pushes a new round at once.
//!
//! A reconnect after a shift costs one round trip and bytes proportional to what changed: the
//! acknowledged log position skips unchanged documents without naming them, and known heads make
//! offers unnecessary for documents the peer has seen before.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::policy::SharePolicy;
use super::wire::{self, DecodeError, ErrorCode, FrameDecoder, Hash, Message, PROTOCOL_VERSION};
use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::store::{PeerDocState, PeerRecord, Store, StoreError, WriteBatch};

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
}

/// What to push of one document.
enum Push {
    Nothing,
    /// Changes, our heads, and what the peer was known to hold.
    Changes(Vec<Vec<u8>>, Vec<Hash>, Vec<Hash>),
    Offer(Vec<Hash>),
}

/// Documents smaller than this are pushed whole to a peer whose copy we know nothing of.
const PUSH_UNKNOWN_BELOW_BYTES: usize = 2048;

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
        };
        session.send(&Message::Hello {
            version: PROTOCOL_VERSION,
            epoch: store.epoch(),
        });
        session
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
        if let Err(e) = &result {
            let code = match e {
                SyncError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
                SyncError::Malformed(_) | SyncError::Protocol(_) => ErrorCode::Malformed,
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
        let docs: Vec<DocumentId> = store
            .log_since(self.pushed_seq)?
            .into_iter()
            .map(|(seq, doc)| {
                self.pushed_seq = self.pushed_seq.max(seq);
                doc
            })
            .collect();
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
        self.decoder.push(bytes)?;
        let mut messages = Vec::new();
        while let Some(frame) = self.decoder.next_frame() {
            messages.push(wire::decode(&frame)?);
        }
        if messages.is_empty() {
            return Ok(());
        }
        let mut replies = Vec::new();
        let mut to_push = BTreeSet::new();
        let mut start_initial_push = false;
        let mut acked_rounds = Vec::new();
        let mut batch = store.write()?;
        batch.set_non_durable();
        for message in messages {
            match message {
                Message::Hello { version, epoch } => {
                    if self.phase != Phase::AwaitingHello {
                        return Err(SyncError::Protocol("a second Hello".into()));
                    }
                    if version != PROTOCOL_VERSION {
                        return Err(SyncError::VersionMismatch {
                            ours: PROTOCOL_VERSION,
                            theirs: version,
                        });
                    }
                    self.open(store, &mut batch, epoch, now_ms)?;
                    start_initial_push = true;
                }
                other if self.phase != Phase::Open => {
                    return Err(SyncError::Protocol(format!(
                        "{} before Hello",
                        message_name(&other)
                    )));
                }
                Message::Changes { doc, changes } => {
                    if !policy.may_share(&self.peer, &doc) {
                        replies.push(Message::Decline { doc });
                        continue;
                    }
                    self.receive_changes(&mut batch, &doc, changes, now_ms, &mut replies)?;
                }
                Message::Offer { doc, heads } => {
                    if !policy.may_share(&self.peer, &doc) {
                        replies.push(Message::Decline { doc });
                        continue;
                    }
                    let (mine, have_all) = match batch.existing(&doc)? {
                        Some(d) => {
                            let have_all = heads.iter().all(|h| d.has_change(h));
                            (d.head_hashes(), have_all)
                        }
                        None => (Vec::new(), heads.is_empty()),
                    };
                    remember(&mut batch, &self.peer, &doc, heads.clone(), &mine, now_ms)?;
                    if have_all {
                        // We hold everything offered: send what we have beyond it, exactly.
                        replies.push(Message::Have {
                            doc: doc.clone(),
                            heads: mine.clone(),
                        });
                        if mine.iter().any(|h| !heads.contains(h)) {
                            to_push.insert(doc);
                        }
                    } else {
                        // The offer holds changes we lack. Pushing now would mean guessing what
                        // the peer lacks against heads we cannot place; ask instead. If our
                        // heads are news to the peer, it asks back (see `Need`).
                        self.needed.insert(doc.clone());
                        replies.push(Message::Need {
                            doc: doc.clone(),
                            heads: mine.clone(),
                        });
                    }
                }
                Message::Have { doc, heads } => {
                    let mine = match batch.existing(&doc)? {
                        Some(d) => d.head_hashes(),
                        None => Vec::new(),
                    };
                    // "Have" answers our offer: the peer holds its own heads and everything we
                    // offered. Recording both keeps us from resending what it has when its
                    // heads are ahead of ours (and so unknown to us).
                    let mut known = heads;
                    known.extend(self.offered.remove(&doc).unwrap_or_default());
                    remember(&mut batch, &self.peer, &doc, known.clone(), &mine, now_ms)?;
                    if !mine.is_empty() && mine.iter().any(|h| !known.contains(h)) {
                        to_push.insert(doc);
                    }
                }
                Message::Need { doc, heads } => {
                    let (mine, unknown_to_us) = match batch.existing(&doc)? {
                        Some(d) => (d.head_hashes(), heads.iter().any(|h| !d.has_change(h))),
                        None => (Vec::new(), !heads.is_empty()),
                    };
                    remember(&mut batch, &self.peer, &doc, heads, &mine, now_ms)?;
                    // The asker holds changes we lack too (the two copies diverged): ask back,
                    // once per document, so two askers cannot bounce requests forever.
                    if unknown_to_us && self.needed.insert(doc.clone()) {
                        replies.push(Message::Need {
                            doc: doc.clone(),
                            heads: mine,
                        });
                    }
                    // Always answered with a round, even an empty one: the asker waits for it.
                    to_push.insert(doc);
                }
                Message::Decline { doc } => {
                    // Record our current heads as the peer's so we stop offering until it changes.
                    if let Some(d) = batch.existing(&doc)? {
                        let mine = d.head_hashes();
                        batch.put_peer_doc(
                            &self.peer,
                            &doc,
                            &PeerDocState {
                                heads: mine,
                                equal_at_ms: None,
                            },
                        )?;
                    }
                    self.events.push_back(SyncEvent::Declined(doc));
                }
                Message::PushDone { round, .. } => {
                    replies.push(Message::Ack { round });
                    self.peer_rounds_acked += 1;
                    self.awaiting_peer_round = false;
                }
                Message::Ack { round } => acked_rounds.push(round),
                Message::Error { message, .. } => return Err(SyncError::Peer(message)),
            }
        }
        for round in acked_rounds {
            self.handle_ack(store, &mut batch, round, now_ms)?;
        }
        let settled = self.unacked.is_empty() && to_push.is_empty() && self.peer_rounds_acked > 0;
        if settled {
            self.record.caught_up_ms = Some(now_ms);
        }
        batch.put_peer(&self.peer, &self.record, false)?;
        // Durable (if any document changed) before any Ack below is sent.
        batch.commit()?;
        for reply in &replies {
            if matches!(reply, Message::Need { .. }) {
                self.awaiting_peer_round = true;
            }
            self.send(reply);
        }
        if start_initial_push {
            let docs: Vec<DocumentId> = store
                .log_since(self.record.acked_seq)?
                .into_iter()
                .map(|(seq, doc)| {
                    self.pushed_seq = self.pushed_seq.max(seq);
                    doc
                })
                .collect();
            self.pushed_seq = self.pushed_seq.max(store.seq()?);
            self.push_round(store, policy, now_ms, docs, true)?;
        } else if !to_push.is_empty() {
            // Answers a Need (or a Have behind us): always a round, so the asker sees it end.
            self.push_round(store, policy, now_ms, to_push.into_iter().collect(), true)?;
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

    fn receive_changes(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
        changes: Vec<Vec<u8>>,
        now_ms: i64,
        replies: &mut Vec<Message>,
    ) -> Result<(), SyncError> {
        let bytes: u64 = changes.iter().map(|c| c.len() as u64).sum();
        let prior = batch.peer_doc(&self.peer, doc)?;
        let target = batch.doc(doc)?;
        let before = target.head_hashes();
        let infos = target
            .apply_raw_changes(changes)
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let after = target.head_hashes();
        let lacks = target.lacks_dependencies();
        self.stats.change_bytes_received += bytes;
        self.stats.docs_received += 1;
        if before != after {
            self.events
                .push_back(SyncEvent::DocumentChanged(doc.clone()));
        }
        // The peer holds everything it sent, plus what it was known to hold: the tips of both.
        let superseded: BTreeSet<Hash> =
            infos.iter().flat_map(|i| i.deps.iter().copied()).collect();
        let mut heads: BTreeSet<Hash> = infos.iter().map(|i| i.hash).collect();
        heads.extend(prior.map(|p| p.heads).unwrap_or_default());
        heads.retain(|h| !superseded.contains(h));
        remember(
            batch,
            &self.peer,
            doc,
            heads.into_iter().collect(),
            &after,
            now_ms,
        )?;
        if lacks {
            replies.push(Message::Need {
                doc: doc.clone(),
                heads: after,
            });
        }
        Ok(())
    }

    fn handle_ack(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        round: u64,
        now_ms: i64,
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
            for (doc, pushed, prior) in pending.pushed {
                // The peer now holds what we pushed, and whatever it held that we do not know.
                let known = store.with_doc_mut(&doc, |d| {
                    let mut heads = pushed;
                    heads.extend(prior.into_iter().filter(|h| !d.has_change(h)));
                    (heads, d.head_hashes())
                })?;
                if let Some((heads, mine)) = known {
                    remember(batch, &self.peer, &doc, heads, &mine, now_ms)?;
                }
            }
            if self.unacked.is_empty() {
                self.record.acked_seq = self.record.acked_seq.max(pending.seq);
            }
        }
        Ok(())
    }

    fn push_round(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        _now_ms: i64,
        docs: Vec<DocumentId>,
        always_end_round: bool,
    ) -> Result<(), SyncError> {
        let round = self.next_round;
        self.next_round += 1;
        let mut pending = PendingRound {
            seq: self.pushed_seq,
            pushed: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        let mut sent_anything = false;
        for doc in docs {
            if !seen.insert(doc.clone()) || !policy.may_share(&self.peer, &doc) {
                continue;
            }
            let known = store.peer_doc(&self.peer, &doc)?;
            let plan = store.with_doc_mut(&doc, |d| {
                let mine = d.head_hashes();
                match known {
                    Some(known) if known.heads == mine => Push::Nothing,
                    Some(known) => {
                        let changes = d.changes_since(&known.heads);
                        if changes.is_empty() {
                            Push::Nothing
                        } else {
                            Push::Changes(changes, mine, known.heads)
                        }
                    }
                    None => {
                        // Nothing known of the peer's copy. A small document is cheaper to send
                        // whole (duplicates are harmless) than to offer and wait a round trip for.
                        let changes = d.changes_since(&[]);
                        let size: usize = changes.iter().map(Vec::len).sum();
                        if size <= PUSH_UNKNOWN_BELOW_BYTES {
                            Push::Changes(changes, mine, Vec::new())
                        } else {
                            Push::Offer(mine)
                        }
                    }
                }
            })?;
            match plan {
                None | Some(Push::Nothing) => {}
                Some(Push::Changes(changes, mine, prior)) => {
                    self.send_changes(&doc, changes);
                    pending.pushed.push((doc, mine, prior));
                    sent_anything = true;
                }
                Some(Push::Offer(heads)) => {
                    self.offered.insert(doc.clone(), heads.clone());
                    self.send(&Message::Offer { doc, heads });
                    sent_anything = true;
                }
            }
        }
        // The first round, and answers to the peer, always end with PushDone: that is how the
        // other side learns a request was served. Live rounds with nothing in them are not sent.
        if !sent_anything && !always_end_round {
            self.next_round -= 1;
            if self.unacked.is_empty() {
                self.record.acked_seq = self.record.acked_seq.max(pending.seq);
            }
            return Ok(());
        }
        self.send(&Message::PushDone {
            round,
            seq: pending.seq,
        });
        self.unacked.insert(round, pending);
        self.stats.rounds += 1;
        Ok(())
    }

    fn send_changes(&mut self, doc: &DocumentId, changes: Vec<Vec<u8>>) {
        self.stats.docs_sent += 1;
        let mut part = Vec::new();
        let mut part_bytes = 0;
        for change in changes {
            self.stats.change_bytes_sent += change.len() as u64;
            if part_bytes + change.len() > CHANGES_MESSAGE_TARGET_BYTES && !part.is_empty() {
                self.send(&Message::Changes {
                    doc: doc.clone(),
                    changes: std::mem::take(&mut part),
                });
                part_bytes = 0;
            }
            part_bytes += change.len();
            part.push(change);
        }
        if !part.is_empty() {
            self.send(&Message::Changes {
                doc: doc.clone(),
                changes: part,
            });
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
        Message::Changes { .. } => "Changes",
        Message::Offer { .. } => "Offer",
        Message::Have { .. } => "Have",
        Message::Need { .. } => "Need",
        Message::Decline { .. } => "Decline",
        Message::PushDone { .. } => "PushDone",
        Message::Ack { .. } => "Ack",
        Message::Error { .. } => "Error",
    }
}
