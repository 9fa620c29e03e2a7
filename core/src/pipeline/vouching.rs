//! Which changes by revoked devices a message carries in.
//!
//! A revoked device's changes cannot be told apart by what they claim (a stolen phone dates its
//! changes as it likes), but those a colleague or the base built on before the revocation were
//! held, judged and built on while the device was trusted: they are part of the record, and a
//! node that meets the record later (a new base, a home unit enrolled since, an export read in)
//! takes them with what builds on them. So a revoked signer's change is taken where a change
//! that *vouches* builds on it, directly or through others of the message:
//!
//! - by a signer not revoked, made (by its own claim) before that revoked signer's revocation —
//!   each revoked device by its own revocation, not another's;
//! - with operations and an entry stamp (the author and entry time the rules check against
//!   the signer): what carries a stolen phone's changes in writes something into the record
//!   under its author's name, not an empty change nobody reads;
//! - that can itself be taken: everything it builds on is held, or in the message and taken
//!   (a change by another revoked device included only where it is vouched for in turn). A
//!   colleague that had not heard of one revocation and wrote on that phone's changes vouches
//!   for nothing through them, and its change waits.
//!
//! The last condition depends on which changes are taken, which depends on the vouchers: it is
//! found by shrinking the vouchers until nothing changes (each round linear in the message; a
//! round only ever removes vouchers, so the rounds are few: about as many as revoked signers
//! chained in the message). What is left out has nothing taken building on it.

use std::collections::HashMap;

use super::{Checked, Refusal};
use crate::docs::{Document, DocumentId};
use crate::identity::NodeId;

/// Changes by revoked nodes that nothing in their message vouched for (see the module).
#[derive(Debug, Clone)]
pub struct LeftOut {
    /// Why, for the sender and the log.
    pub why: String,
    /// The changes, checked: a session keeps them for a later message of the same document
    /// (a document sent in parts), whose changes may be the ones that vouch for them.
    pub changes: Vec<Checked>,
}

/// Splits `checked` into what is taken and what is left out (see the module). `revoked_at`
/// says when a signer was revoked (`Some(i64::MIN)` for one not known: nothing vouches for it);
/// `held` whether the document holds a change already. Returns what is kept, what was left out
/// and why, and — when a revoked signer's change is kept — what to check once the changes are
/// applied ([`Vouching::held`]).
pub(super) fn vouched_by_others(
    doc: &DocumentId,
    checked: Vec<Checked>,
    revoked_at: &dyn Fn(&NodeId) -> Option<i64>,
    held: &dyn Fn(&[u8; 32]) -> bool,
) -> (Vec<Checked>, Option<LeftOut>, Option<Vouching>) {
    if checked
        .iter()
        .all(|c| revoked_at(&c.vouched().signer).is_none())
    {
        return (checked, None, None);
    }
    let vouching = Vouching::of(&checked, revoked_at, held);
    let vouched = vouching.vouched(vouching.may_vouch.clone());
    let mut kept = Vec::with_capacity(checked.len());
    let mut left = Vec::new();
    for (i, change) in checked.into_iter().enumerate() {
        if vouching.revoked_at[i].is_none() || vouched[i] {
            kept.push(change);
        } else {
            left.push(change);
        }
    }
    let vouching = vouched.iter().any(|v| *v).then_some(vouching);
    if left.is_empty() {
        return (kept, None, vouching);
    }
    let authors: std::collections::BTreeSet<String> =
        left.iter().map(|c| c.vouched().signer.short()).collect();
    let why = format!(
        "{} change(s) of {doc} by revoked node(s) {} that no change by another node made before \
         the revocation builds on were left out",
        left.len(),
        authors.into_iter().collect::<Vec<_>>().join(", ")
    );
    (kept, Some(LeftOut { why, changes: left }), vouching)
}

/// A message's changes as a graph, for judging what vouches for what. Indexed as the message.
#[derive(Debug)]
pub(super) struct Vouching {
    hashes: Vec<[u8; 32]>,
    /// Each change's dependencies within the message.
    deps: Vec<Vec<usize>>,
    /// Whether each dependency outside the message is held.
    outside_held: Vec<bool>,
    /// When each says it was made.
    made: Vec<i64>,
    /// When each one's signer was revoked, if it was.
    revoked_at: Vec<Option<i64>>,
    /// Whether each may vouch (see the module): a signer not revoked, operations, a stamp.
    may_vouch: Vec<bool>,
    /// Dependencies before what builds on them (a change in a cycle, which hashes rule out, is
    /// in no order and taken by nothing here).
    order: Vec<usize>,
}

impl Vouching {
    fn of(
        checked: &[Checked],
        revoked_at: &dyn Fn(&NodeId) -> Option<i64>,
        held: &dyn Fn(&[u8; 32]) -> bool,
    ) -> Vouching {
        let index: HashMap<[u8; 32], usize> = (checked.iter().enumerate())
            .map(|(i, c)| (c.vouched().hash, i))
            .collect();
        let mut deps = Vec::with_capacity(checked.len());
        let mut outside_held = Vec::with_capacity(checked.len());
        for change in checked {
            let (inside, outside): (Vec<&[u8; 32]>, Vec<&[u8; 32]>) =
                change.deps().iter().partition(|d| index.contains_key(*d));
            deps.push(inside.into_iter().map(|d| index[d]).collect::<Vec<_>>());
            outside_held.push(outside.into_iter().all(held));
        }
        let revoked_at: Vec<Option<i64>> = (checked.iter())
            .map(|c| revoked_at(&c.vouched().signer))
            .collect();
        let may_vouch = (checked.iter().zip(&revoked_at))
            .map(|(c, revoked)| {
                let summary = &c.parsed().summary;
                revoked.is_none() && !summary.ops.is_empty() && summary.stamp.is_some()
            })
            .collect();
        let order = topological(&deps);
        Vouching {
            hashes: checked.iter().map(|c| c.vouched().hash).collect(),
            deps,
            outside_held,
            made: checked.iter().map(Checked::time_ms).collect(),
            revoked_at,
            may_vouch,
            order,
        }
    }

    /// Which changes are vouched for, starting from `vouchers` and dropping those that cannot
    /// be taken until none is dropped.
    fn vouched(&self, mut vouchers: Vec<bool>) -> Vec<bool> {
        loop {
            let vouched = self.vouched_by(&vouchers);
            let takeable = self.takeable(&vouched);
            let next: Vec<bool> = (vouchers.iter().zip(&takeable))
                .map(|(v, t)| *v && *t)
                .collect();
            if next == vouchers {
                return vouched;
            }
            vouchers = next;
        }
    }

    /// The revoked signers' changes that one of `vouchers` made before that signer's revocation
    /// builds on: the earliest such voucher of each change, carried from what builds on it to
    /// what it builds on, in one pass.
    fn vouched_by(&self, vouchers: &[bool]) -> Vec<bool> {
        let mut earliest = vec![i64::MAX; self.made.len()];
        for &i in self.order.iter().rev() {
            let here = if vouchers[i] {
                earliest[i].min(self.made[i])
            } else {
                earliest[i]
            };
            for &d in &self.deps[i] {
                earliest[d] = earliest[d].min(here);
            }
        }
        (self.revoked_at.iter().zip(&earliest))
            .map(|(revoked, first)| revoked.is_some_and(|at| *first < at))
            .collect()
    }

    /// Which changes can be taken with the revoked ones `vouched` for: all they build on is
    /// held, or in the message, takeable and (a revoked signer's) vouched for.
    fn takeable(&self, vouched: &[bool]) -> Vec<bool> {
        let mut takeable = vec![false; self.made.len()];
        for &i in &self.order {
            takeable[i] = self.outside_held[i]
                && (self.deps[i].iter())
                    .all(|&d| takeable[d] && (self.revoked_at[d].is_none() || vouched[d]));
        }
        takeable
    }

    /// Refuses the message if a revoked signer's change was taken while no change that vouched
    /// for it was (one failing a rule refuses the message anyway; one Automerge held back is
    /// not applied): a change never applied must not carry another in. What
    /// [`vouched_by_others`] kept makes this hold; it is checked against the document as
    /// applied all the same.
    pub(super) fn held(&self, doc: &DocumentId, target: &Document) -> Result<(), Refusal> {
        let applied: Vec<bool> = self.hashes.iter().map(|h| target.has_change(h)).collect();
        let vouchers: Vec<bool> = (self.may_vouch.iter().zip(&applied))
            .map(|(v, a)| *v && *a)
            .collect();
        let covered = self.vouched_by(&vouchers);
        let carried = (0..self.hashes.len())
            .any(|i| self.revoked_at[i].is_some() && applied[i] && !covered[i]);
        if carried {
            return Err(Refusal::from(format!(
                "{doc}: a change by a revoked node came with the only change built on it, which \
                 could not be taken (it lacks a change this node does not hold)"
            )));
        }
        Ok(())
    }
}

/// The message's changes in an order where each comes after what it builds on (Kahn's: linear
/// in the changes and their dependencies).
fn topological(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..deps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(j);
            }
        }
    }
    order
}
