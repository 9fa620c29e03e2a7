//! What we send: push rounds (changes, offers, withdrawals; withheld documents reconsidered),
//! their parts, and what the peer's acknowledgement of a round settles.

use std::collections::{BTreeSet, VecDeque};

use super::{Phase, Session, SyncError, remember};
use crate::docs::outline::{self, Outline};
use crate::docs::{self, DocumentId};
use crate::identity::{NodeId, Role};
use crate::pipeline;
use crate::store::{PeerDocState, Store, StoreError, StoredParts, WriteBatch};
use crate::sync::policy::SharePolicy;
use crate::sync::wire::{self, Hash, Message, SignedChange};

impl Session {
    /// Moves the acknowledged position over the stretches of received documents it reaches.
    pub(super) fn skip_held_ranges(&mut self) {
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

    /// Settles the rounds up to `round`, which the peer acknowledged. `asked` are the documents
    /// the peer asked for (or described) in the same batch: what it said of them there is what
    /// it holds after the round, so the round's assumption does not overwrite it.
    pub(super) fn handle_ack(
        &mut self,
        batch: &mut WriteBatch<'_>,
        round: u64,
        asked: &BTreeSet<DocumentId>,
    ) -> Result<(), SyncError> {
        let answer_owed = !asked.is_empty();
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
            for pushed in pending
                .pushed
                .into_iter()
                .filter(|p| !asked.contains(&p.doc))
            {
                if self.resending.remove(&pushed.doc) {
                    batch.set_refused(&self.peer, &pushed.doc, false)?;
                }
                remember(
                    batch,
                    &self.peer,
                    &pushed.doc,
                    pushed.peer_holds,
                    &pushed.mine,
                    pushed.taken_ms,
                )?;
            }
            if self.nothing_in_flight() && !answer_owed {
                self.record.acked_seq = self.record.acked_seq.max(pending.seq);
                self.skip_held_ranges();
            }
        }
        Ok(())
    }

    /// The peer refused what a round sent of `doc` (a message's changes are taken whole or not
    /// at all): it holds none of it, so the round's `Ack` records nothing of `doc`, and `doc`
    /// is remembered to be sent again at the next session's start (`Store::refused`).
    pub(super) fn refused_by_peer(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
    ) -> Result<(), SyncError> {
        let building = self.building.as_mut().map(|b| &mut b.out.pending);
        let mut sent = self.resending.contains(doc);
        for pending in self.unacked.values_mut().chain(building) {
            let before = pending.pushed.len();
            pending.pushed.retain(|p| &p.doc != doc);
            sent |= pending.pushed.len() != before;
        }
        // A refusal of what we did not send (a made-up id) is nothing to send again.
        if !sent {
            return Ok(());
        }
        self.resending.insert(doc.clone());
        Ok(batch.set_refused(&self.peer, doc, true)?)
    }

    /// Pushes `docs` as a round. A paced session (see [`Session::pace`]) builds the round a
    /// part at a time, as the driver asks for more ([`Session::push_more`]); a round asked for
    /// while one is being built joins it, so rounds never interleave and the round's end still
    /// answers every request it took in.
    pub(super) fn push_round(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        docs: Vec<DocumentId>,
        always_end_round: bool,
    ) -> Result<(), SyncError> {
        let withheld = self.withheld_to_reconsider(store, &docs, always_end_round)?;
        if let Some(building) = &mut self.building {
            // A joining document may have gone out in an earlier part as it was then (or been
            // offered, and is now asked for): it is looked at again, or the round's Ack would
            // move the acknowledged position past a change never sent.
            for doc in docs.iter().chain(&withheld) {
                building.seen.remove(doc);
            }
            building.docs.extend(docs);
            building.docs.extend(withheld.iter().cloned());
            building.withheld_before.extend(withheld);
            building.always_end_round |= always_end_round;
            building.out.pending.seq = self.pushed_seq;
            return Ok(());
        }
        let out = RoundOut {
            round: self.next_round,
            mark: self.outbox.len(),
            part_bytes: 0,
            pending: PendingRound {
                seq: self.pushed_seq,
                ..PendingRound::default()
            },
            sent_anything: false,
            unrefused: Vec::new(),
        };
        self.next_round += 1;
        let mut queue: VecDeque<DocumentId> = docs.into();
        queue.extend(withheld.iter().cloned());
        self.building = Some(Building {
            out,
            docs: queue,
            withheld_before: withheld,
            withhold: Vec::new(),
            seen: BTreeSet::new(),
            // Only a base tells a device that its need ended (asked once, not per document).
            i_am_base: Self::org_role(store) == Some(Role::Base),
            always_end_round,
        });
        self.build_round(store, policy, now_ms)
    }

    /// Whether a round is still being built: the driver asks for more with
    /// [`Session::push_more`] once it has sent what is queued.
    pub fn has_more_to_push(&self) -> bool {
        self.building.is_some() && self.phase != Phase::Closed
    }

    /// Builds the next part of the round being built (a paced session's), after the driver sent
    /// what was queued: the work of loading documents overlaps with the link carrying the parts
    /// before, and a large first sync is never held in memory whole.
    pub fn push_more(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        if !self.has_more_to_push() {
            return Ok(());
        }
        let result = self.build_round(store, policy, now_ms);
        self.fail_on_error(result)
    }

    /// Pushes the round's documents until a part is full (paced) or none is left; then ends it.
    fn build_round(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        let Some(mut b) = self.building.take() else {
            return Ok(());
        };
        // Frames queued since the last part (replies, sent already or not) are not this part's.
        b.out.mark = self.outbox.len();
        while let Some(doc) = b.docs.pop_front() {
            let parts = self.next_round;
            self.push_listed(store, policy, now_ms, doc, &mut b)?;
            if self.paced && self.next_round != parts && !b.docs.is_empty() {
                self.building = Some(b);
                return Ok(());
            }
        }
        if !b.withhold.is_empty() || !b.out.unrefused.is_empty() {
            b.withhold.dedup();
            let mut batch = store.write()?;
            for doc in &b.withhold {
                batch.set_withheld(&self.peer, doc, true)?;
            }
            for doc in &b.out.unrefused {
                batch.set_refused(&self.peer, doc, false)?;
            }
            pipeline::commit(batch, &pipeline::DeriveContext::of(store, Some(now_ms)))?;
        }
        self.end_round(b.out, b.always_end_round);
        Ok(())
    }

    /// One document of a round being built: pushed, or withheld (and withdrawn from a device
    /// that holds it) when the peer may not hold it.
    fn push_listed(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        doc: DocumentId,
        b: &mut Building,
    ) -> Result<(), SyncError> {
        if !b.seen.insert(doc.clone()) || self.declined.contains(&doc) {
            return Ok(());
        }
        if !self.permits(store, now_ms, |q| policy.may_send(q, &doc)) {
            if !b.withheld_before.contains(&doc) {
                b.withhold.push(doc.clone());
            }
            if b.i_am_base {
                self.withdraw_if_held(store, doc, &b.withheld_before, &mut b.withhold, &mut b.out)?;
            }
            return Ok(());
        }
        if b.withheld_before.contains(&doc) {
            b.out.pending.released.push(doc.clone());
        }
        self.push_doc(store, now_ms, doc, &mut b.out)
    }

    /// What we withheld from the peer that a round reconsiders (the peer's need may have grown):
    /// at a round that opens or answers, everything withheld; otherwise what a changed record or
    /// plan concerns (a visit assigned, a care team joined).
    pub(super) fn withheld_to_reconsider(
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
    pub(super) fn withdraw_if_held(
        &mut self,
        store: &Store,
        doc: DocumentId,
        withheld_before: &BTreeSet<DocumentId>,
        withhold: &mut Vec<DocumentId>,
        out: &mut RoundOut,
    ) -> Result<(), SyncError> {
        // The grant this round is judged by: in a push sent with our Hello, the certificate held
        // for the peer. A block made while the device was away is told in that first push: a
        // later round reconsiders what was withheld only when it answers the peer or the
        // patient's record or plan changes again.
        let Some(peer) = self.peer_grant.as_ref().or(self.provisional_grant.as_ref()) else {
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
    pub(super) fn push_doc(
        &mut self,
        store: &Store,
        now_ms: i64,
        doc: DocumentId,
        out: &mut RoundOut,
    ) -> Result<(), SyncError> {
        let known = store.peer_doc(&self.peer, &doc)?;
        let me = store.actor();
        // Where the peer holds nothing we know of, decided from the stored chunks when they
        // tell, without loading the document (see `plan_unloaded`).
        let unloaded = match &known {
            Some(k) if !k.heads.is_empty() => None,
            _ => match store.unloaded(&doc)? {
                Some(stored) => plan_unloaded(&doc, &stored, known.is_none(), me, now_ms)?,
                None => None,
            },
        };
        let plan = match unloaded {
            Some(push) => Some(push),
            None => store.with_doc(&doc, |d| plan_push(d, known, me, now_ms))?,
        };
        match plan {
            // Nothing to send: the peer holds what was refused (it came another way).
            None | Some(Push::Nothing) if self.resending.remove(&doc) => out.unrefused.push(doc),
            None | Some(Push::Nothing) => {}
            Some(Push::Changes(changes, pushed)) => {
                out.part_bytes += changes.iter().map(|c| c.bytes.len()).sum::<usize>();
                self.send_changes(store, &doc, changes)?;
                out.pending.pushed.push(pushed);
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
    pub(super) fn end_round(&mut self, out: RoundOut, always_end_round: bool) {
        if !out.sent_anything && !always_end_round {
            self.next_round -= 1;
            if self.nothing_in_flight() {
                self.record.acked_seq = self.record.acked_seq.max(out.pending.seq);
                self.skip_held_ranges();
            }
            return;
        }
        self.send(&Message::PushDone {
            round: out.round,
            seq: out.pending.seq,
        });
        self.compress_since(out.mark, self.packing());
        self.unacked.insert(out.round, out.pending);
        self.stats.rounds += 1;
    }

    /// Ends a part of a large round: what was sent so far is acknowledged on its own (as round
    /// `round`), so an interrupted transfer resumes after it; the round goes on as `round + 1`.
    /// A part acknowledges documents, not a log position: only the round's last part does.
    pub(super) fn end_part(
        &mut self,
        pending: &mut PendingRound,
        round: &mut u64,
        mark: &mut usize,
    ) {
        self.send(&Message::PartDone { round: *round });
        self.compress_since(*mark, self.packing());
        let seq = pending.seq;
        let mut part = std::mem::take(pending);
        pending.seq = seq;
        part.seq = self.record.acked_seq;
        self.unacked.insert(*round, part);
        *round = self.next_round;
        self.next_round += 1;
        *mark = self.outbox.len();
    }

    /// How to pack what is sent now: tightly until the session has sent [`BULK_AFTER_BYTES`] of
    /// changes, fast after (a first sync sends most of its changes in answer rounds, a few
    /// documents each, so the size of a round does not tell).
    fn packing(&self) -> wire::Packing {
        if self.stats.change_bytes_sent > BULK_AFTER_BYTES {
            wire::Packing::Fast
        } else {
            wire::Packing::Tight
        }
    }

    pub(super) fn send_changes(
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
    pub(super) fn send_signer_certificates(
        &mut self,
        store: &Store,
        changes: &[docs::HashedChange],
    ) -> Result<(), SyncError> {
        let mut certificates = Vec::new();
        // Each distinct signer once: checking a key costs a curve point's decompression.
        let signers: BTreeSet<[u8; 32]> = changes
            .iter()
            .filter_map(|c| <[u8; 32]>::try_from(c.actor.as_slice()).ok())
            .collect();
        for bytes in signers {
            let Ok(signer) = NodeId::from_bytes(bytes) else {
                continue;
            };
            if !self.certs_sent.insert(signer) {
                continue;
            }
            // All of them: each change is judged by the one in force when it was made. Our
            // newest travelled in our Hello; our earlier ones (a name we wrote under before a
            // re-enrolment) judge our earlier changes. The peer's own changes come back to it
            // only when it lost them (a phone restored empty, knowing its newest certificate
            // alone): it is sent its own but the newest, which it holds.
            let held = match signer {
                s if s == store.actor() => store.own_certificate()?,
                s if s == self.peer => store.certificate(&s)?,
                _ => None,
            };
            for cert in store.certificate_history(&signer)? {
                if held.as_ref() != Some(&cert) {
                    certificates.push(cert.to_bytes());
                }
            }
        }
        for part in certificates.chunks(wire::MAX_CREDENTIALS) {
            self.send(&Message::Certificates {
                certificates: part.to_vec(),
            });
        }
        Ok(())
    }
}

/// One push round awaiting the peer's `Ack`.
#[derive(Debug, Default)]
pub(super) struct PendingRound {
    seq: u64,
    /// Documents whose changes we sent.
    pushed: Vec<Pushed>,
    /// Documents withheld until now that this round sends or offers: no longer withheld once
    /// the peer acknowledges the round (if the session dies first, they stay withheld and are
    /// reconsidered next time).
    released: Vec<DocumentId>,
    /// Documents of patients this round withdraws from the peer: once it acknowledges, we
    /// forget it held them (it removes them), so they are sent again if the need returns.
    withdrawn: Vec<DocumentId>,
}

/// What to push of one document.
pub(super) enum Push {
    Nothing,
    /// Changes, and what the peer holds once it has them.
    Changes(Vec<docs::HashedChange>, Pushed),
    Offer(Vec<Hash>),
}

/// A document whose changes a round sends, as it was when they were taken: what its `Ack`
/// records is known then. (Taken again at the `Ack`, a reconnect that pushed more documents
/// than the cache holds loaded and decrypted each of them a second time.)
#[derive(Debug)]
pub(super) struct Pushed {
    pub(super) doc: DocumentId,
    /// The peer's heads once it holds the changes: ours, and any it held that we did not.
    pub(super) peer_holds: Vec<Hash>,
    /// Our heads.
    pub(super) mine: Vec<Hash>,
    /// When the changes were taken: the last moment both sides are known to hold `mine` (a
    /// change written before the Ack is not in it, so the Ack's own time would overstate it).
    pub(super) taken_ms: i64,
}

/// Documents smaller than this are pushed whole to a peer whose copy we know nothing of.
pub(super) const PUSH_UNKNOWN_BELOW_BYTES: usize = 2048;

/// Documents only this node wrote are pushed whole to a peer whose copy is unknown up to this
/// size (beyond, offered: a peer that got them through a third node is not sent them twice).
pub(super) const PUSH_OWN_BELOW_BYTES: usize = 256 * 1024;

/// A push round sends this many bytes of changes at most before a part of it is acknowledged
/// on its own (a first sync of thousands of documents resumes where it broke off).
pub(super) const ROUND_PART_BYTES: usize = 128 * 1024;

/// A session that has sent this many bytes of changes is a bulk transfer (a first sync): what
/// it sends after is packed for the processor rather than the link. A reconnect, a shift's
/// push of 60 entries (about 45 KB of changes), stays below it.
pub(super) const BULK_AFTER_BYTES: u64 = 1024 * 1024;

/// Keep each `Changes` message well below the frame limit.
pub(super) const CHANGES_MESSAGE_TARGET_BYTES: usize = wire::MAX_FRAME_BYTES / 2;

/// A push round being built, with the documents it has still to go through.
#[derive(Debug)]
pub(super) struct Building {
    out: RoundOut,
    docs: VecDeque<DocumentId>,
    /// What was withheld from the peer before the round: sent now if the peer may hold it.
    withheld_before: BTreeSet<DocumentId>,
    /// What the round finds the peer may not hold: withheld when the round ends.
    withhold: Vec<DocumentId>,
    /// Documents gone through (one may be listed twice).
    seen: BTreeSet<DocumentId>,
    i_am_base: bool,
    always_end_round: bool,
}

/// A push round being built.
#[derive(Debug)]
pub(super) struct RoundOut {
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
    /// Documents the peer refused before and holds now (nothing to send: they came another
    /// way), forgotten as refused when the round ends.
    unrefused: Vec<DocumentId>,
}

/// What to push of `doc` to a peer known to hold `known` (`None`: nothing known of its copy).
pub(super) fn plan_push(
    doc: &docs::Document,
    known: Option<PeerDocState>,
    me: NodeId,
    now_ms: i64,
) -> Push {
    let mine = doc.head_hashes();
    match known {
        Some(known) if known.heads == mine => Push::Nothing,
        Some(known) => {
            let changes = doc.hashed_changes_since(&known.heads);
            if changes.is_empty() {
                Push::Nothing
            } else {
                let mut peer_holds = mine.clone();
                peer_holds.extend(known.heads.into_iter().filter(|h| !doc.has_change(h)));
                Push::Changes(changes, pushed(doc, peer_holds, mine, now_ms))
            }
        }
        None => push_to_unknown(doc.id(), doc.hashed_changes_since(&[]), mine, me, now_ms),
    }
}

/// What to push of `doc`, whose heads are `mine` and whose changes are all `changes`, to a peer
/// whose copy is unknown.
fn push_to_unknown(
    doc: &DocumentId,
    changes: Vec<docs::HashedChange>,
    mine: Vec<Hash>,
    me: NodeId,
    now_ms: i64,
) -> Push {
    // Our own access log reaches a peer only from us (or through a base that got it from us):
    // when the peer's copy is unknown, sending it whole saves the round trip an offer costs,
    // and is the common case (a device handing its log to a base).
    let ours_alone = own_access_log(doc, me);
    // A small document is cheaper to send whole (duplicates are harmless) than to offer and
    // wait a round trip for; so is one only this node wrote (a month's first entries, written
    // offline): the peer has it only if a third node passed it on.
    let size: usize = changes.iter().map(|c| c.bytes.len()).sum();
    let mine_alone =
        size <= PUSH_OWN_BELOW_BYTES && changes.iter().all(|c| c.actor == me.as_bytes());
    if size <= PUSH_UNKNOWN_BELOW_BYTES || ours_alone || mine_alone {
        push_whole(doc, changes, mine, now_ms)
    } else {
        Push::Offer(mine)
    }
}

/// What [`plan_push`] would decide for a peer that holds nothing we know of (`unknown`: its copy
/// is unknown; otherwise it told us it holds none), from the document's stored chunks without
/// loading it: an offer from its outline, or every change with only its snapshot loaded (a new
/// base's first sync asks for each document of a month; loading each applied every change
/// stored after its snapshot only to take it out again). `None` where the chunks do not tell:
/// the caller loads the document then.
fn plan_unloaded(
    doc: &DocumentId,
    stored: &StoredParts,
    unknown: bool,
    me: NodeId,
    now_ms: i64,
) -> Result<Option<Push>, StoreError> {
    let Some(walked) = outline::walk(&stored.parts) else {
        return Ok(None);
    };
    if let Some(offer) = unknown
        .then(|| offer_unread(&walked.outline, doc, me))
        .flatten()
    {
        return Ok(Some(offer));
    }
    let mine = walked.outline.heads.clone();
    let Some(changes) = walked.changes(doc, &stored.signatures, me)? else {
        return Ok(None);
    };
    Ok(Some(match (unknown, mine.is_empty()) {
        (true, _) => push_to_unknown(doc, changes, mine, me, now_ms),
        // Both hold nothing of it (an empty document), as `plan_push` finds.
        (false, true) => Push::Nothing,
        (false, false) => push_whole(doc, changes, mine, now_ms),
    }))
}

/// The offer [`plan_push`] would make of a stored document to a peer whose copy is unknown,
/// decided from its outline alone (its chunks' headers): a new base's first sync offers every
/// document of a month, and loading each to offer it, then again to send it once the peer asks,
/// loaded every snapshot twice. `None` where the outline cannot tell (the caller loads the
/// document then): the node's own access log, documents only this node may have written, and
/// snapshots small enough that their changes might be sent whole (a snapshot holds its changes'
/// operations in columns, about as large as the changes or smaller; changes after it count as
/// stored).
pub(super) fn offer_unread(outline: &Outline, doc: &DocumentId, me: NodeId) -> Option<Push> {
    let ours_alone = own_access_log(doc, me);
    let others_wrote = outline.actors.iter().any(|a| a.as_slice() != me.as_bytes());
    (!ours_alone && others_wrote && outline.bytes > PUSH_UNKNOWN_BELOW_BYTES)
        .then(|| Push::Offer(outline.heads.clone()))
}

/// Whether `doc` is this node's own access log, which reaches a peer only from us: always sent
/// whole to a peer whose copy is unknown (see [`plan_push`], [`offer_unread`]).
fn own_access_log(doc: &DocumentId, me: NodeId) -> bool {
    matches!(doc, DocumentId::Audit(node, _) if *node == me)
}

fn pushed(doc: &docs::Document, peer_holds: Vec<Hash>, mine: Vec<Hash>, taken_ms: i64) -> Pushed {
    Pushed {
        doc: doc.id().clone(),
        peer_holds,
        mine,
        taken_ms,
    }
}

/// Every change of `doc` (whose heads are `mine`) to a peer that holds none of it: once it has
/// them, it holds what we do.
fn push_whole(
    doc: &DocumentId,
    changes: Vec<docs::HashedChange>,
    mine: Vec<Hash>,
    taken_ms: i64,
) -> Push {
    Push::Changes(
        changes,
        Pushed {
            doc: doc.clone(),
            peer_holds: mine.clone(),
            mine,
            taken_ms,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};
    use rand::SeedableRng;

    use super::*;
    use crate::docs::outline::outline;
    use crate::identity::NodeKey;

    fn node(seed: u64) -> NodeId {
        NodeKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed)).id()
    }

    /// A stored snapshot of `notes` notes of `bytes` bytes each, written by `author`.
    fn snapshot(author: NodeId, notes: usize, bytes: usize) -> Vec<u8> {
        let mut am = Automerge::new().with_actor(ActorId::from(&author.as_bytes()[..]));
        for i in 0..notes {
            let mut tx = am.transaction();
            // Text that does not compress away (a snapshot's columns are compressed).
            let mut x = i as u64 + 1;
            let text: String = (0..bytes)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    char::from(b'a' + ((x >> 59) as u8) % 26)
                })
                .collect();
            tx.put(ROOT, format!("e/{i}"), text).unwrap();
            tx.commit();
        }
        am.save()
    }

    /// What `plan_push` decides for a peer whose copy is unknown, and what the outline decides.
    fn both(doc: &DocumentId, stored: &[u8], me: NodeId) -> (Push, Option<Push>) {
        let loaded = docs::Document::load(doc.clone(), stored, me).unwrap();
        let unread = offer_unread(&outline(&[stored.to_vec()]).unwrap(), doc, me);
        (plan_push(&loaded, None, me, 0), unread)
    }

    #[test]
    fn an_offer_made_from_the_snapshots_outline_is_the_offer_loading_it_makes() {
        let (me, nurse) = (node(1), node(2));
        let doc = DocumentId::parse("journal/p-00000000000000a1/2026-11").unwrap();
        let (loaded, unread) = both(&doc, &snapshot(nurse, 40, 200), me);
        let (Push::Offer(loaded), Some(Push::Offer(unread))) = (loaded, unread) else {
            panic!("both offer a month's journal others wrote");
        };
        assert_eq!(unread, loaded);
    }

    #[test]
    fn documents_that_may_be_sent_whole_are_loaded_to_decide() {
        let (me, nurse) = (node(1), node(2));
        let doc = DocumentId::parse("journal/p-00000000000000a1/2026-11").unwrap();
        // Written by this node alone: sent whole to a peer that may not have it.
        let (loaded, unread) = both(&doc, &snapshot(me, 40, 200), me);
        assert!(matches!(loaded, Push::Changes(..)) && unread.is_none());
        // Small: sent whole rather than offered.
        let (loaded, unread) = both(&doc, &snapshot(nurse, 2, 100), me);
        assert!(matches!(loaded, Push::Changes(..)) && unread.is_none());
        // The node's own access log: always sent whole.
        let audit = DocumentId::Audit(me, crate::time::Month::parse("2026-11").unwrap());
        let (loaded, unread) = both(&audit, &snapshot(nurse, 40, 200), me);
        assert!(matches!(loaded, Push::Changes(..)) && unread.is_none());
    }
}
