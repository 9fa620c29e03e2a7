//! A base's receipts of the device logs it receives (domain.md R3, case 12).
//!
//! A device's access log is a hash chain it signs itself, so the device could rewrite it — a
//! patched app, a restored backup — and sign the new chain just as well. A base therefore
//! anchors what it received: whenever a write brings entries of a device's log, the base appends
//! to its own signed chain a receipt naming the device's last entry and its hash
//! ([`crate::trust::audit::Anchor`]). Once a base holds a receipt, any later rewrite, truncation
//! or rollback of the device's log up to that entry fails [`crate::trust::audit::verify_anchors`]
//! wherever the base's log and the device's are held. What stays undetectable is what a device
//! did and rolled back between its last sync with a base and the rollback: nobody else saw it.
//!
//! Only devices' logs are anchored: two bases anchoring each other's logs would answer every
//! receipt with another, for ever.

use std::collections::BTreeSet;

use crate::docs::{Author, ChangeContext, DocError, DocumentId};
use crate::identity::{NodeId, NodeKey, Role};
use crate::store::{StoreError, WriteBatch};
use crate::time::{Month, Timestamp};
use crate::trust::audit::{self, AccessEvent, Anchor, AuditAction, AuditEntry};
use crate::trust::{Certificate, Grant};

/// Who appends to a log in a write, and with which key.
#[derive(Debug, Clone)]
pub struct Logger<'a> {
    /// The node's author block.
    pub author: Author,
    /// Its zone.
    pub zone: Option<String>,
    /// Its key, which signs each entry.
    pub key: &'a NodeKey,
}

/// Failure to append to the access log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log document refused the entry.
    #[error(transparent)]
    Doc(#[from] DocError),
}

impl<'a> Logger<'a> {
    /// The logger of the node `grant` certifies, whose key is `key`: the author and zone the
    /// grant names.
    pub fn of(grant: &Grant, key: &'a NodeKey) -> Logger<'a> {
        Logger {
            author: Author::from(grant),
            zone: grant.zone.clone(),
            key,
        }
    }

    /// Appends `event` to this node's chain in `batch`, after its current head.
    pub fn append(
        &self,
        batch: &mut WriteBatch<'_>,
        now: Timestamp,
        event: AccessEvent,
    ) -> Result<AuditEntry, LogError> {
        let me = self.author.device;
        let head = chain_head(batch, me)?;
        let ctx = ChangeContext {
            author: self.author.clone(),
            entered_at: now,
        };
        let doc = batch.doc(&audit::doc_id(me, now.day().month()))?;
        Ok(audit::append(
            doc,
            &ctx,
            self.key,
            self.zone.clone(),
            head.as_ref(),
            event,
        )?)
    }

    /// At a base: a receipt for every device log `batch` brought news of.
    pub fn anchor_received(
        &self,
        batch: &mut WriteBatch<'_>,
        now: Timestamp,
    ) -> Result<(), LogError> {
        let me = self.author.device;
        let mut nodes = BTreeSet::new();
        for id in batch.changed_documents() {
            if let DocumentId::Audit(node, _) = id
                && node != me
                && !is_base(batch, &node)?
            {
                nodes.insert(node);
            }
        }
        for node in nodes {
            let Some(head) = chain_head(batch, node)? else {
                continue;
            };
            let anchor = Anchor {
                node,
                seq: head.seq,
                hash: hex::encode(head.hash()),
            };
            let mut event = AccessEvent::new(
                None,
                AuditAction::Receipt,
                format!(
                    "access log of node {} received up to entry {}",
                    node.short(),
                    head.seq
                ),
                "anchoring a device's log at the base".into(),
            );
            event.anchor = Some(anchor);
            self.append(batch, now, event)?;
        }
        Ok(())
    }
}

impl Logger<'_> {
    /// At a base: a flagged entry for every write `batch` received to a patient from a node
    /// this base knows no need of. The write is kept — a nurse sent to a patient while her
    /// device was offline documents what she did, and refusing it would lose care given — but
    /// someone at the base looks at why (domain.md R4: access outside the user's list).
    pub fn review_unneeded_writes(
        &self,
        batch: &mut WriteBatch<'_>,
        now: Timestamp,
    ) -> Result<(), LogError> {
        let me = self.author.device;
        let mut flagged = BTreeSet::new();
        for id in batch.changed_documents() {
            let Some(patient) = id.patient().cloned() else {
                continue;
            };
            // The commit stores these same changes: it takes them from the batch, not anew.
            // Each distinct author's key is checked once (a month holds thousands of changes by
            // one author, and checking a key costs a curve point's decompression).
            let keys: BTreeSet<[u8; 32]> = batch
                .unsaved_changes(&id)
                .iter()
                .filter_map(|c| <[u8; 32]>::try_from(c.actor.as_slice()).ok())
                .collect();
            let writers: BTreeSet<NodeId> = keys
                .into_iter()
                .filter_map(|b| NodeId::from_bytes(b).ok())
                .filter(|n| *n != me)
                .collect();
            for writer in writers {
                if flagged.contains(&(writer, patient.clone())) {
                    continue;
                }
                // Judged by what this write knows, its own rows included: a write that brings its
                // own need (an explicit access, a visit assigned with it) needs no review.
                for grant in grants_of_writes(batch, &id, &writer)? {
                    if grant.role != Role::Base
                        && !crate::trust::need::needs_in(batch, now.unix_millis(), &grant, &id)?
                    {
                        flagged.insert((writer, patient.clone()));
                        break;
                    }
                }
            }
        }
        for (writer, patient) in flagged {
            let event = AccessEvent::new(
                Some(patient.clone()),
                AuditAction::WriteWithoutNeed,
                format!("a write to {patient} by node {}", writer.short()),
                "the writer has no need this base knows of: review why".into(),
            );
            self.append(batch, now, event)?;
        }
        Ok(())
    }
}

/// The grants `writer`'s changes of `id` in `batch` were made under: its certificate in force
/// at each change's time, as the rules judged them (a home unit moved to another patient wrote
/// its earlier entries under its earlier grant). One grant where every certificate of the writer
/// grants the same subject, without reading the changes' times.
fn grants_of_writes(
    batch: &mut WriteBatch<'_>,
    id: &DocumentId,
    writer: &NodeId,
) -> Result<Vec<Grant>, LogError> {
    let certs = batch.certificate_history(writer)?;
    let Some(newest) = Certificate::newest(&certs) else {
        return Ok(Vec::new());
    };
    if certs
        .iter()
        .all(|c| crate::trust::same_subject(c.grant(), newest.grant()))
    {
        return Ok(vec![newest.grant().clone()]);
    }
    let mut grants: Vec<Grant> = Vec::new();
    for summary in batch.unsaved_summaries(id)? {
        if summary.actor.as_slice() != writer.as_bytes() {
            continue;
        }
        if let Some(cert) = Certificate::in_force(&certs, summary.time_ms)
            && !grants.contains(cert.grant())
        {
            grants.push(cert.grant().clone());
        }
    }
    Ok(grants)
}

/// Records, in this node's own log, an author's two different changes numbered alike (see
/// [`super::Equivocation`]); flagged, and reported against that author by `audit verify`.
pub fn log_equivocation(
    batch: &mut WriteBatch<'_>,
    now: Timestamp,
    equivocation: &super::Equivocation,
) -> Result<(), LogError> {
    let Some(grant) = batch.own_grant_at(now.change_millis())? else {
        return Ok(());
    };
    let key = batch.signer().clone();
    let logger = Logger::of(&grant, &key);
    let mut event = AccessEvent::new(
        equivocation.doc.patient().cloned(),
        AuditAction::Equivocation,
        equivocation.doc.to_string(),
        format!(
            "held change {}, refused change {}",
            hex::encode(&equivocation.held[..6]),
            hex::encode(&equivocation.sent[..6])
        ),
    );
    let anchor = Anchor {
        node: equivocation.node,
        seq: equivocation.seq,
        hash: hex::encode(equivocation.sent),
    };
    // A peer retries what it was refused at every session: one entry per refused change.
    let this_month = audit::doc_id(grant.node, now.day().month());
    let logged = batch.existing(&this_month)?.is_some_and(|doc| {
        audit::read(doc)
            .0
            .iter()
            .any(|e| e.entry.anchor.as_ref() == Some(&anchor))
    });
    if logged {
        return Ok(());
    }
    event.anchor = Some(anchor);
    logger.append(batch, now, event)?;
    Ok(())
}

fn is_base(batch: &mut WriteBatch<'_>, node: &NodeId) -> Result<bool, StoreError> {
    Ok(batch
        .certificate(node)?
        .is_some_and(|c| c.grant().role == Role::Base))
}

/// The last entry of `node`'s chain as `batch` sees it: the highest number in any of its months'
/// documents (a clock set back writes the next entry into an earlier month than the last).
fn chain_head(batch: &mut WriteBatch<'_>, node: NodeId) -> Result<Option<AuditEntry>, StoreError> {
    let mut months: BTreeSet<Month> = batch
        .doc_ids(&format!("audit/{node}/"))?
        .iter()
        .filter_map(DocumentId::month)
        .collect();
    months.extend(
        batch
            .touched()
            .filter(|id| matches!(id, DocumentId::Audit(n, _) if *n == node))
            .filter_map(DocumentId::month),
    );
    let mut head: Option<AuditEntry> = None;
    for month in months {
        if let Some(doc) = batch.existing(&audit::doc_id(node, month))?
            && let Some(last) = audit::chain_head(&[doc])
            && head.as_ref().is_none_or(|h| last.seq > h.seq)
        {
            head = Some(last);
        }
    }
    Ok(head)
}
