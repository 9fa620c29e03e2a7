//! What the peer sends: a batch of its messages taken into one write (its Hello, revocations
//! and certificates, changes through the change pipeline, offers, answers and acknowledgements),
//! committed durably, then answered.

use std::collections::BTreeSet;

use super::super::inbox::Received;
use super::{Phase, Session, SyncError, SyncEvent, put_known, remember, remember_over};
use crate::docs::DocumentId;
use crate::identity::Role;
use crate::pipeline;
use crate::store::{PeerRecord, Store, WriteBatch};
use crate::sync::policy::SharePolicy;
use crate::sync::wire::{Hash, Message, PROTOCOL_VERSION};
use crate::trust::{self, Certificate, Refusal, Revocation};

impl Session {
    pub(super) fn process(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        now_ms: i64,
        messages: Vec<Received>,
    ) -> Result<(), SyncError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut inbound = Inbound::default();
        self.held_by_peer.clear();
        let mut batch = store.write()?;
        // Peer knowledge only, unless something stored below needs keeping (a document, a
        // revocation, a certificate, a withdrawal: each makes the write durable again).
        batch.set_non_durable();
        for message in messages {
            if self.phase == Phase::Open
                && let Received::Other(Message::Error { message, .. }) = message
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

    /// Takes one message from the peer into `batch`, noting in `inbound` what it asks of us.
    pub(super) fn receive(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        batch: &mut WriteBatch<'_>,
        now_ms: i64,
        message: Received,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        match message {
            Received::Changes { doc, changes } => {
                self.receive_checked(store, policy, batch, now_ms, doc, changes, inbound)
            }
            Received::Other(message) => {
                self.receive_message(store, policy, batch, now_ms, message, inbound)
            }
        }
    }

    /// A document's changes, checked as far as their bytes allow (see [`super::super::inbox`]).
    #[allow(clippy::too_many_arguments)]
    fn receive_checked(
        &mut self,
        store: &Store,
        policy: &dyn SharePolicy,
        batch: &mut WriteBatch<'_>,
        now_ms: i64,
        doc: DocumentId,
        changes: Result<Vec<pipeline::Checked>, String>,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        if self.phase != Phase::Open {
            return Err(SyncError::Protocol("Changes before Hello".into()));
        }
        if !self.permits(store, now_ms, |q| policy.may_accept(q, &doc)) {
            inbound.replies.push(Message::Decline { doc });
            return Ok(());
        }
        self.receive_changes(store, batch, &doc, changes, now_ms, &mut inbound.replies)
    }

    /// Any message but changes.
    fn receive_message(
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
                self.refused_by_peer(batch, &doc)?;
                self.events
                    .push_back(SyncEvent::RejectedByPeer { doc, reason });
            }
            // Changes that came before the Hello was verified: the inbox left them for here.
            Message::Changes { doc, changes } => {
                let checked = pipeline::check_all(&mut Default::default(), changes);
                self.receive_checked(store, policy, batch, now_ms, doc, checked, inbound)?;
            }
            Message::Offer { doc, .. }
                if !self.permits(store, now_ms, |q| policy.may_accept(q, &doc)) =>
            {
                inbound.replies.push(Message::Decline { doc });
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
            Message::Decline { doc } => self.receive_decline(batch, doc)?,
            Message::PushDone { round, .. } => {
                self.acknowledge(round, &mut inbound.replies);
                self.peer_rounds_acked += 1;
                self.awaiting_peer_round = false;
            }
            // A part of a round: acknowledged like one, but the round goes on.
            Message::PartDone { round } => self.acknowledge(round, &mut inbound.replies),
            Message::Ack { round } => inbound.acked_rounds.push(round),
            // Taken by `process`, which ends the session on it.
            Message::Error { .. } => {}
        }
        Ok(())
    }

    /// The peer has no need for `doc`: we stop offering it, until the next session reconsiders
    /// (the peer's need may have grown by then). A document not held here is nothing to
    /// withhold: a peer naming made-up ids leaves no rows.
    fn receive_decline(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
    ) -> Result<(), SyncError> {
        if !batch.holds(&doc)? {
            return Ok(());
        }
        batch.set_withheld(&self.peer, &doc, true)?;
        self.declined.insert(doc.clone());
        self.events.push_back(SyncEvent::Declined(doc));
        Ok(())
    }

    /// The peer's Hello: our protocol version, a certificate of our organisation, not revoked;
    /// then the session opens.
    pub(super) fn receive_hello(
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
    pub(super) fn receive_withdraw(
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
    pub(super) fn receive_offer(
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
    pub(super) fn receive_have(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        heads: Vec<[u8; 32]>,
        now_ms: i64,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        // A Have answers our Offer, of a document held here; of any other it says nothing.
        let offered = self.offered.remove(&doc);
        let mine = match batch.existing(&doc)? {
            Some(d) => d.head_hashes(),
            None if offered.is_none() => return Ok(()),
            None => Vec::new(),
        };
        // Recording both keeps us from resending what it has when its heads are ahead of ours
        // (and so unknown to us).
        let mut known = heads;
        known.extend(offered.unwrap_or_default());
        remember(batch, &self.peer, &doc, known.clone(), &mine, now_ms)?;
        if !mine.is_empty() && mine.iter().any(|h| !known.contains(h)) {
            inbound.to_push.insert(doc);
        }
        Ok(())
    }

    /// The peer asks for what we hold of a document beyond its heads.
    pub(super) fn receive_need(
        &mut self,
        batch: &mut WriteBatch<'_>,
        doc: DocumentId,
        heads: Vec<[u8; 32]>,
        now_ms: i64,
        inbound: &mut Inbound,
    ) -> Result<(), SyncError> {
        // Always answered with a round, even an empty one: the asker waits for it.
        if !batch.holds(&doc)? {
            // Nothing of it here, so nothing to push and nothing to remember of the peer's
            // copy (a peer naming made-up ids leaves no rows); if it holds changes, ask.
            inbound.empty_answer_owed = true;
            if !heads.is_empty() && self.needed.insert(doc.clone()) {
                inbound.replies.push(Message::Need {
                    doc,
                    heads: Vec::new(),
                });
            }
            return Ok(());
        }
        inbound.to_push.insert(doc.clone());
        if heads.is_empty() && batch.loaded(&doc).is_none() {
            // The asker holds nothing of it (a new device's first sync): whether we hold it is
            // all there is to compare. Loading it here, for each document a new base asks for,
            // would load a month twice: the round reads its changes from the store.
            let previous = batch.peer_doc(&self.peer, &doc)?;
            let held = batch.holds(&doc)?;
            put_known(
                batch,
                (&self.peer, &doc),
                previous.as_ref(),
                heads,
                !held,
                now_ms,
            )?;
            return Ok(());
        }
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
        Ok(())
    }

    /// Commits what the peer's messages brought, with what we now know of the peer, durably
    /// before any Ack is sent.
    pub(super) fn commit_received(
        &mut self,
        store: &Store,
        mut batch: WriteBatch<'_>,
        now_ms: i64,
        inbound: &Inbound,
    ) -> Result<(), SyncError> {
        // Documents the peer asked for in this batch go out in a round made below: until it is
        // acknowledged, the log position must not move past them.
        for round in &inbound.acked_rounds {
            self.handle_ack(&mut batch, *round, &inbound.to_push)?;
        }
        let settled =
            self.nothing_in_flight() && inbound.to_push.is_empty() && self.peer_rounds_acked > 0;
        if settled {
            self.record.caught_up_ms = Some(now_ms);
        }
        batch.put_peer(&self.peer, &self.record, false)?;
        // What the peer holds is knowledge a lost write only understates (a resend, never lost
        // data), so this write skips the fsync (made non-durable where the batch began) — but
        // not for ever: during a long first sync what the peer acknowledged is made durable
        // every few seconds, so a node that dies part-way does not send all of it again. The
        // clock starts at a session's first acknowledgement: a short reconnect pays no fsync.
        let due = !inbound.acked_rounds.is_empty() && {
            let since = *self.knowledge_saved_ms.get_or_insert(now_ms);
            now_ms.saturating_sub(since) >= KNOWLEDGE_DURABLE_EVERY_MS
        };
        if due {
            self.knowledge_saved_ms = Some(now_ms);
            batch.set_durable();
        }
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
    pub(super) fn answer(
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
            let owed = inbound.empty_answer_owed;
            self.initial_push(store, policy, now_ms, to_push, owed)?;
        } else if !to_push.is_empty() || inbound.empty_answer_owed {
            // Answers a Need (or a Have behind us): always a round, so the asker sees it end.
            self.push_round(store, policy, now_ms, to_push, true)?;
        }
        let now_caught_up =
            self.nothing_in_flight() && self.peer_rounds_acked > 0 && !self.awaiting_peer_round;
        if now_caught_up && !self.caught_up {
            if self.stats.rounds_to_catch_up == 0 {
                self.stats.rounds_to_catch_up = self.stats.rounds;
            }
            self.events.push_back(SyncEvent::CaughtUp);
        }
        self.caught_up = now_caught_up;
        Ok(())
    }

    pub(super) fn open(
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
    pub(super) fn receive_changes(
        &mut self,
        store: &Store,
        batch: &mut WriteBatch<'_>,
        doc: &DocumentId,
        changes: Result<Vec<pipeline::Checked>, String>,
        now_ms: i64,
        replies: &mut Vec<Message>,
    ) -> Result<(), SyncError> {
        let changes = match changes {
            Ok(changes) => changes,
            Err(reason) => return self.refuse_changes(batch, doc, reason.into(), now_ms, replies),
        };
        let bytes: u64 = changes.iter().map(|c| c.vouched().bytes.len() as u64).sum();
        let changes = self.left_out.joined(doc, changes);
        let own = store.own_certificate()?.ok_or(Refusal::SelfNotEnrolled)?;
        let mut authors = pipeline::WriteAuthors {
            batch,
            own: own.grant(),
        };
        let admitted = match pipeline::admit_checked(&mut authors, doc, changes, now_ms) {
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
        if let Some(left_out) = admitted.left_out {
            // The sender is told when its round (or part) ends: a later part may carry them in.
            self.left_out.keep(doc, left_out);
        }
        // What waits for changes left out here waits for good: asking for it again would bring
        // the same changes, left out again (a document sent in parts: round after round).
        if admitted.lacks_dependencies && !self.left_out.contains(doc) {
            replies.push(Message::Need {
                doc: doc.clone(),
                heads: after,
            });
        }
        Ok(())
    }

    /// Acknowledges the peer's round (or part), telling it first which of its changes stay
    /// left out (see [`super::set_aside`]): the sender tries those documents again at its next
    /// session (what was taken is skipped then), where an `Ack` alone would settle them.
    fn acknowledge(&mut self, round: u64, replies: &mut Vec<Message>) {
        for (doc, reason) in self.left_out.round_ended() {
            self.events.push_back(SyncEvent::RejectedChanges {
                doc: doc.clone(),
                reason: reason.clone(),
            });
            replies.push(Message::Reject { doc, reason });
        }
        replies.push(Message::Ack { round });
    }

    /// The peer's changes to `doc` were refused (all of them): it is told why, and an
    /// equivocation is logged against its author.
    pub(super) fn refuse_changes(
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
    pub(super) fn note_peer_heads(
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
        heads.extend(prior.iter().flat_map(|p| p.heads.iter().copied()));
        heads.retain(|h| !superseded.contains(h));
        if heads.iter().eq(after.iter()) {
            self.held_by_peer.insert(doc.clone());
        } else {
            self.held_by_peer.remove(doc);
        }
        remember_over(
            batch,
            (&self.peer, doc),
            prior.as_ref(),
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
    pub(super) fn note_received_log(
        &mut self,
        store: &Store,
        before: u64,
        end: u64,
    ) -> Result<(), SyncError> {
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
        if self.nothing_in_flight() {
            self.skip_held_ranges();
        }
        Ok(())
    }

    /// Verifies the peer's certificate from its `Hello`; refuses the session if it does not hold.
    pub(super) fn verify_peer(
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
        // Whether it is valid now is asked of the certificate in force, which may be another.
        cert.check_names(&own.grant().org, &self.peer)?;
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
        // The peer is judged by its certificate in force now, not by the one it brought: a
        // device re-enrolled for another patient, zone or role may still hold its older grant,
        // unexpired, and present it (a modified app would); and one renewed ahead of time is
        // judged by the one still running. The newest is sent to a device that presented
        // another, which keeps it if it is a renewal of its own.
        let held = batch.certificate_history(&self.peer)?;
        let judged = Certificate::in_force(&held, now_ms).unwrap_or(&cert);
        judged.check_in_run(&held, &own.grant().org, &self.peer, now_ms)?;
        // Valid to the end of its run (renewals this node kept only the first of): what the
        // session's later checks of the clock hold the peer to.
        let mut grant = judged.grant().clone();
        grant.not_after_ms = Certificate::run_until(&held, judged);
        if let Some(newest) = batch.certificate(&self.peer)?
            && newest != cert
        {
            self.send(&Message::Certificates {
                certificates: vec![newest.to_bytes()],
            });
        }
        self.events
            .push_back(SyncEvent::PeerVerified(Box::new(grant.clone())));
        self.peer_grant = Some(grant);
        Ok(())
    }

    pub(super) fn receive_revocations(
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

    pub(super) fn receive_certificates(
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
            // Our earlier ones (to judge our own earlier changes coming back) join the history
            // only.
            if cert.node() == store.actor() {
                let own = store.own_certificate()?.ok_or(Refusal::SelfNotEnrolled)?;
                let same_grant = trust::same_subject(own.grant(), cert.grant());
                if !same_grant {
                    batch.keep_own_earlier_certificate(&cert)?;
                } else if batch.put_certificate(&cert)? {
                    self.events.push_back(SyncEvent::CertificateRenewed);
                }
                continue;
            }
            batch.put_certificate(&cert)?;
        }
        Ok(())
    }
}

/// Longest a session keeps what the peer acknowledged in commits a crash may lose.
const KNOWLEDGE_DURABLE_EVERY_MS: i64 = 5_000;

/// What one batch of the peer's messages asks of us, gathered while they are taken in and
/// answered once their batch is committed.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    /// Messages to send back.
    replies: Vec<Message>,
    /// Documents to push in answer.
    to_push: BTreeSet<DocumentId>,
    /// The peer asked for a document not held here: answered by a round of nothing.
    empty_answer_owed: bool,
    /// The peer's Hello arrived: the session's first push follows.
    start_initial_push: bool,
    /// Our rounds the peer acknowledged.
    acked_rounds: Vec<u64>,
}

pub(super) fn message_name(message: &Message) -> &'static str {
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
