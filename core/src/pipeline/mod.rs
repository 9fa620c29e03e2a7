//! The change pipeline: the one road by which a change enters a store.
//!
//! A change enters in one of three ways — written here ([`crate::repo::Transaction`]), received
//! from a peer ([`crate::sync::Session`]) or read from an export file ([`crate::repo::Repo::import`])
//! — and each takes the same steps, in this module:
//!
//! 1. **Take it apart once, cheapest first** ([`inbound::vouch`], received changes): its size,
//!    its chunk header, its hash and its author's signature, before any operation is parsed.
//! 2. **Its author** ([`WriteAuthors`]): a certificate of this organisation, not revoked, the
//!    one in force when the change was made. One lookup serves sessions and imports: the
//!    certificates the write holds (stored, or received in it before the changes).
//! 3. **Judged against the document it lands in** ([`rules::authorize`]): the signer's role, the
//!    patient the document concerns, the keys it touches, whether a key already existed in the
//!    state the change was built on. A change's own declarations (its predecessors) are not
//!    trusted: what it would do to the document is.
//! 4. **Signed** (local writes; the store signs the node's own changes as it commits them) or
//!    kept with its signature (received ones), so it can be forwarded and verified again.
//! 5. **Stored** in one durable write ([`crate::store::WriteBatch`]) with everything derived from
//!    it: conflicts, integrity alerts, escalation tasks, need-based relations, indexes.
//! 6. **Told**: the store's commit hook names the documents the commit changed.
//!
//! A refused change leaves nothing behind: the document is put back as it was before the
//! message that carried it, and the error says why, for the sender and the log.

mod columns;
mod derive;
pub mod inbound;
mod receipts;
pub mod rules;
mod vouching;

use std::collections::{BTreeMap, HashMap, btree_map};

pub use columns::MAX_OPERATIONS;
pub use derive::DeriveContext;
pub(crate) use derive::decode_list;
pub use inbound::{Checked, MAX_CHANGE_BYTES, Vouched, check, check_all, vouch};
pub use receipts::{LogError, Logger, log_equivocation};
pub use vouching::LeftOut;

use crate::docs::{ChangeSummary, Document, DocumentId, ParsedChange, RawChangeInfo};
use crate::identity::NodeId;
use crate::store::{Store, StoreError, WriteBatch};
use crate::sync::wire::SignedChange;
use crate::trust::{Certificate, Grant};

/// Change authors as a write knows them: this node's own grant, and what the write's
/// transaction holds — everything stored, plus the certificates and revocations received in it
/// (a session's, or those an export file carries, put in the write before its changes). Each
/// change is judged by its author's certificate in force when it was made
/// ([`crate::trust::Certificate::in_force`]): the one its organisation issued last by then,
/// whichever one a sender brought. Sessions and imports both look authors up through it.
#[derive(Debug)]
pub struct WriteAuthors<'a, 'b> {
    /// The write.
    pub batch: &'a mut WriteBatch<'b>,
    /// This node's own grant (its own changes verify even before it is enrolled: by this).
    pub own: &'a Grant,
}

impl WriteAuthors<'_, '_> {
    /// The certificates of a change's signer, a certified node of this organisation, and
    /// whether it is revoked; `None` for this node itself before it is enrolled, judged by its
    /// own grant.
    fn certificates(&mut self, doc: &DocumentId, signer: &NodeId) -> Result<Signer, String> {
        let certs = self
            .batch
            .certificate_history(signer)
            .map_err(|e| e.to_string())?;
        if *signer == self.own.node {
            // Its own changes coming back (a restore, its own export read in): each judged by
            // its certificate in force when made, as every peer judged it; by its profile's
            // claims before enrolment.
            return Ok(Signer {
                certs: (!certs.is_empty()).then_some(certs),
                revoked_at_ms: None,
            });
        }
        if certs.is_empty() {
            return Err(format!(
                "the author {} of a change of {doc} is not a known enrolled node",
                signer.short()
            ));
        }
        let revoked_at_ms =
            (self.batch.revocation(signer).map_err(|e| e.to_string())?).map(|r| r.body().at_ms);
        Ok(Signer {
            certs: Some(certs),
            revoked_at_ms,
        })
    }
}

/// A change's signer as a write knows it.
#[derive(Debug)]
struct Signer {
    /// Its certificates (see [`WriteAuthors::certificates`]).
    certs: Option<Vec<Certificate>>,
    /// When it was revoked, if it is: its changes are taken only where a change made before
    /// then by another builds on them.
    revoked_at_ms: Option<i64>,
}

/// The grant a change made at `at_ms` is judged by: its author's certificate in force then
/// ([`Certificate::in_force`]), or, for this node's own changes before it was enrolled, what
/// its profile claims.
fn grant_at<'g>(own: &'g Grant, certs: &'g Option<Vec<Certificate>>, at_ms: i64) -> &'g Grant {
    match certs
        .as_deref()
        .and_then(|c| Certificate::in_force(c, at_ms))
    {
        Some(cert) => cert.grant(),
        None => own,
    }
}

/// Why received changes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason, for the sender and the log.
    pub reason: String,
    /// Set when the sender's changes collide with what this node holds under the same author
    /// and number: the author made two different changes numbered alike.
    pub equivocation: Option<Box<Equivocation>>,
}

/// Two different changes by one author with the same number in one document: a modified node,
/// or one restored from an old copy that wrote again what it had written before. Automerge can
/// hold only one; the one held stays, the other is refused, and the receiver logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The author.
    pub node: NodeId,
    /// The document.
    pub doc: DocumentId,
    /// The number both changes carry.
    pub seq: u64,
    /// The change held here.
    pub held: [u8; 32],
    /// The change refused.
    pub sent: [u8; 32],
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Refusal {
            reason,
            equivocation: None,
        }
    }
}

/// What [`admit`] did to a document.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// The changes applied (new to this node), with their dependencies.
    pub applied: Vec<RawChangeInfo>,
    /// Some changes wait for dependencies this node lacks: they were not applied (ask for them).
    pub lacks_dependencies: bool,
    /// Changes by revoked nodes that nothing taken builds on were left out (see
    /// `pipeline/vouching.rs`): what builds on them waits for them; the caller tells the sender
    /// why (a session at the end of the sender's round or part).
    pub left_out: Option<LeftOut>,
}

/// Verifies received `changes` of `doc` and applies them to the document in the write, all or
/// nothing: a change that fails any step refuses the whole message, and the document is put
/// back as it was. `received_at_ms` is this node's clock: items dated more than a day after it
/// are refused. Changes already held are skipped; changes whose dependencies this node lacks are
/// left out (`lacks_dependencies`), never applied unjudged.
pub fn admit(
    authors: &mut WriteAuthors<'_, '_>,
    doc: &DocumentId,
    changes: Vec<SignedChange>,
    received_at_ms: i64,
) -> Result<Admitted, Refusal> {
    let checked = inbound::check_all(&mut crate::identity::Verifiers::default(), changes)?;
    admit_checked(authors, doc, checked, received_at_ms)
}

/// [`admit`] for changes whose bytes were checked already ([`inbound::check`], perhaps on
/// another thread): their authors, and everything judged against the document, follow here.
pub fn admit_checked(
    authors: &mut WriteAuthors<'_, '_>,
    doc: &DocumentId,
    checked: Vec<Checked>,
    received_at_ms: i64,
) -> Result<Admitted, Refusal> {
    // Each signer looked up once: a message holds a document's changes by a few authors (a
    // month's journal, hundreds of changes), and nothing in the write changes between them.
    let mut signers: BTreeMap<NodeId, Signer> = BTreeMap::new();
    for change in &checked {
        let signer = change.vouched().signer;
        if let btree_map::Entry::Vacant(slot) = signers.entry(signer) {
            slot.insert(authors.certificates(doc, &signer)?);
        }
    }
    let target = authors.batch.doc(doc).map_err(|e| e.to_string())?;
    // Each change once, and only those not held: a change sent twice in one message is one
    // change to judge (a hostile sender's copy must not count apart from the original).
    let mut seen = std::collections::HashSet::new();
    let checked: Vec<Checked> = (checked.into_iter())
        .filter(|c| !target.has_change(&c.vouched().hash) && seen.insert(c.vouched().hash))
        .collect();
    let revoked_at =
        |signer: &NodeId| (signers.get(signer)).map_or(Some(i64::MIN), |s| s.revoked_at_ms);
    let (checked, left_out, vouching) =
        vouching::vouched_by_others(doc, checked, &revoked_at, &|h| target.has_change(h));
    let own = authors.own;
    let mut incoming = Vec::with_capacity(checked.len());
    for change in checked {
        let (vouched, parsed) = change.into_parts();
        let certs = &signers
            .get(&vouched.signer)
            .ok_or_else(|| format!("the author of a change of {doc} was not looked up"))?
            .certs;
        let grant = grant_at(own, certs, parsed.summary.time_ms);
        incoming.push((vouched, grant, parsed));
    }
    if incoming.is_empty() {
        return Ok(Admitted {
            left_out,
            ..Admitted::default()
        });
    }
    let before = target.head_hashes();
    let result =
        apply_judged(target, doc, incoming, received_at_ms).and_then(|admitted| match &vouching {
            Some(vouching) => vouching.held(doc, target).map(|()| admitted),
            None => Ok(admitted),
        });
    if result.is_err() {
        target.revert_to(&before).map_err(|e| e.to_string())?;
    }
    result.map(|admitted| Admitted {
        left_out,
        ..admitted
    })
}

/// Applies the checked changes and judges each against the state it was built on. The caller
/// puts the document back if this fails.
fn apply_judged(
    target: &mut Document,
    doc: &DocumentId,
    incoming: Vec<(Vouched, &Grant, ParsedChange)>,
    received_at_ms: i64,
) -> Result<Admitted, Refusal> {
    let mut judged = Vec::with_capacity(incoming.len());
    let mut parsed = Vec::with_capacity(incoming.len());
    for (vouched, grant, change) in incoming {
        judged.push((vouched, grant));
        parsed.push(change);
    }
    // Whether the document held nothing before these changes: what they find in it then comes
    // from among them alone (see `Listed`).
    let held_nothing = target.is_empty();
    let applied = match target.apply_parsed(parsed) {
        Ok(applied) => applied,
        // Automerge refuses a change numbered like one it holds by the same author: say which.
        Err(e) => {
            return Err(judged
                .iter()
                .find_map(|(v, _)| equivocation(target, doc, v))
                .unwrap_or_else(|| e.to_string().into()));
        }
    };
    let lacks_dependencies = target.lacks_dependencies();
    if lacks_dependencies {
        // Automerge holds such changes back and would apply them, unjudged, once their
        // dependencies arrive: keep only what is applied now.
        let heads = target.head_hashes();
        target.revert_to(&heads).map_err(|e| e.to_string())?;
    }
    let (summaries, applied): (Vec<ChangeSummary>, Vec<RawChangeInfo>) =
        applied.into_iter().unzip();
    let listed = Listed::of(&summaries, held_nothing);
    let mut infos = Vec::new();
    for (((vouched, grant), summary), info) in judged.into_iter().zip(&summaries).zip(applied) {
        // Without changes held back, every change listed is held now (those held before were
        // left out above): only then is asking Automerge for each needed.
        if lacks_dependencies && !target.has_change(&vouched.hash) {
            continue;
        }
        if !listed.continues_own_chain(target, summary) {
            return Err(Refusal::from(format!(
                "{doc}: change {} of node {} does not build on the node's own change before it",
                summary.seq,
                vouched.signer.short()
            )));
        }
        let state = HeldAt {
            doc: target,
            deps: &summary.deps,
            listed: &listed,
        };
        rules::authorize(doc, summary, grant, &state, Some(received_at_ms))
            .map_err(|reason| Refusal::from(format!("{doc}: {reason}")))?;
        target.add_signature(vouched.hash, vouched.signature);
        infos.push(info);
    }
    Ok(Admitted {
        applied: infos,
        lacks_dependencies,
        left_out: None,
    })
}

/// What one message's changes of a document say about each other, so that judging each need
/// not ask Automerge what the message itself tells (a new base's first sync judges 290,000
/// changes, most of them against others of the same message). Every answer is the one
/// Automerge's own records of the applied changes would give.
struct Listed<'a> {
    /// Each change by hash: its author, number and last operation, as Automerge records them
    /// (it keeps both as 32-bit numbers: a change whose numbers do not fit is not listed, and
    /// Automerge is asked as before).
    chain: HashMap<[u8; 32], (&'a [u8], u64, u64)>,
    /// When the document held nothing before the message: how many of the message's operations
    /// touch each root key. `None` otherwise.
    keys: Option<HashMap<&'a str, u32>>,
}

impl<'a> Listed<'a> {
    fn of(summaries: &'a [ChangeSummary], held_nothing: bool) -> Listed<'a> {
        let fits = |n: u64| u32::try_from(n).is_ok();
        let chain = summaries
            .iter()
            .filter(|s| fits(s.seq) && fits(s.max_op))
            .map(|s| (s.hash, (s.actor.as_slice(), s.seq, s.max_op)))
            .collect();
        let keys = held_nothing.then(|| {
            let mut keys: HashMap<&str, u32> = HashMap::new();
            for key in summaries
                .iter()
                .flat_map(|s| &s.ops)
                .filter_map(|op| op.root_key.as_deref())
            {
                *keys.entry(key).or_default() += 1;
            }
            keys
        });
        Listed { chain, keys }
    }

    /// [`Document::continues_own_chain`], reading the author's change before `change` from the
    /// message when it is there.
    fn continues_own_chain(&self, target: &Document, change: &ChangeSummary) -> bool {
        if change.seq <= 1 {
            return true;
        }
        change.deps.iter().any(|dep| match self.chain.get(dep) {
            Some((actor, seq, max_op)) => {
                *actor == change.actor.as_slice()
                    && *seq == change.seq - 1
                    && change.start_op > *max_op
            }
            None => target.continues_own_chain(
                &change.actor,
                change.seq,
                change.start_op,
                std::slice::from_ref(dep),
            ),
        })
    }

    /// Whether root key `key` surely held no value in any state a change of the message was
    /// built on: the document held nothing before the message, and one operation of it alone
    /// touches the key (that of the change being judged, which is not in its own history).
    fn surely_unseen(&self, key: &str) -> bool {
        self.keys
            .as_ref()
            .is_some_and(|keys| keys.get(key) == Some(&1))
    }
}

impl DeriveContext {
    /// The context of a write on `store` at `now_ms` (this node's clock, when known), under the
    /// organisation's policy as this node's newest certificate states it (the organisation's
    /// current policy, whichever certificate judges its writes).
    pub fn of(store: &Store, now_ms: Option<i64>) -> DeriveContext {
        let cap = store
            .own_certificate()
            .ok()
            .flatten()
            .map_or(crate::trust::DEFAULT_EXPLICIT_ACCESS_MAX_MS, |c| {
                c.grant().explicit_access_cap_ms()
            });
        DeriveContext {
            now_ms,
            explicit_access_max_ms: cap,
        }
    }
}

/// Derives what follows from every document `batch` changed and commits it durably: the last
/// step of every write, whichever way its changes came. At a base, a write that brought a
/// device's access-log entries also anchors them (see [`receipts`]), under the base's
/// certificate in force at the write's time as this write holds it (a renamed base's new
/// certificate may arrive in it).
pub fn commit(mut batch: WriteBatch<'_>, ctx: &DeriveContext) -> Result<(), StoreError> {
    derive::derive(&mut batch, ctx)?;
    let now = ctx
        .now_ms
        .and_then(crate::time::Timestamp::from_unix_millis);
    if let Some(now) = now
        && let Some(grant) = batch.own_grant_at(now.change_millis())?
        && grant.role == crate::Role::Base
    {
        // After deriving, so need is judged with this write's own relations.
        let key = batch.signer().clone();
        let logger = Logger::of(&grant, &key);
        logger
            .review_unneeded_writes(&mut batch, now)
            .and_then(|()| logger.anchor_received(&mut batch, now))
            .map_err(|e| StoreError::Corrupt(format!("logging at the base: {e}")))?;
    }
    batch.commit()
}

/// How many documents one write of [`rederive_all`] derives again. A write holds every document
/// it derives until it commits: in one write, a municipality's month (6,000 documents) held
/// 575 MB at its peak.
const REDERIVE_PER_WRITE: usize = 256;

/// Derives every stored document's indexes again (a store migrated from an older format), in
/// order of patient and month, [`REDERIVE_PER_WRITE`] to a write; a document that does not
/// load is left for `omsyn check` to report. The store's request to derive again is cleared by
/// the last write, so a node stopped half-way derives everything again when it next opens
/// (deriving replaces what a document derived before: doing it twice changes nothing).
pub fn rederive_all(store: &Store, ctx: &DeriveContext) -> Result<(), StoreError> {
    rederive_writes(store, ctx, usize::MAX)
}

/// [`rederive_all`], stopping after `writes` writes, as a node stopped half-way would.
pub fn rederive_writes(
    store: &Store,
    ctx: &DeriveContext,
    writes: usize,
) -> Result<(), StoreError> {
    let mut ids = store.doc_ids("")?;
    // A visit plan's rows read the month's journal, and the journal's the plan: side by side,
    // each is loaded once, unless a write's end falls between them (then each write loads it).
    ids.sort_by_cached_key(|id| (id.patient().cloned(), id.month(), id.to_string()));
    // An empty store still has its request cleared, by one empty write.
    let parts: Vec<&[DocumentId]> = match ids.is_empty() {
        true => vec![&[]],
        false => ids.chunks(REDERIVE_PER_WRITE).collect(),
    };
    let last = parts.len() - 1;
    for (n, part) in parts.into_iter().enumerate().take(writes) {
        let mut batch = store.write()?;
        batch.rederive(part, n == last);
        for id in part {
            match batch.existing(id) {
                Ok(_) => {}
                Err(StoreError::Doc(_)) => batch.set_aside(id),
                Err(e) => return Err(e),
            }
        }
        commit(batch, ctx)?;
    }
    Ok(())
}

/// The refusal of `vouched` if it collides with a held change of the same author and number.
fn equivocation(target: &Document, doc: &DocumentId, vouched: &Vouched) -> Option<Refusal> {
    let (seq, held) = target.collision(&vouched.bytes)?;
    Some(Refusal {
        reason: format!(
            "{doc}: node {} sent a change numbered {seq} unlike the one it made before: rewritten, or restored from an old copy",
            vouched.signer.short()
        ),
        equivocation: Some(Box::new(Equivocation {
            node: vouched.signer,
            doc: doc.clone(),
            seq,
            held,
            sent: vouched.hash,
        })),
    })
}

/// Checks the local node's new changes in every document `batch` touched against the rules its
/// peers apply, so it never commits what they would refuse: each by `grant_at` its time, the
/// node's certificate in force then, as they judge it.
pub fn check_local(
    batch: &mut WriteBatch<'_>,
    grant_at: &dyn Fn(i64) -> Result<Grant, String>,
) -> Result<(), String> {
    let touched: Vec<DocumentId> = batch.touched().cloned().collect();
    let none = Listed::of(&[], false);
    for id in &touched {
        // The batch's one extraction of these changes, parsed once: the commit signs and
        // stores the same.
        let summaries = batch.unsaved_summaries(id).map_err(|e| e.to_string())?;
        let Some(doc) = batch.loaded(id) else {
            continue;
        };
        for summary in &summaries {
            let state = HeldAt {
                doc,
                deps: &summary.deps,
                listed: &none,
            };
            rules::authorize(id, summary, &grant_at(summary.time_ms)?, &state, None)?;
        }
    }
    Ok(())
}

/// A document as the rules see it for one change: what it held when the change was built.
struct HeldAt<'a> {
    doc: &'a Document,
    deps: &'a [[u8; 32]],
    /// The other changes of the message it came in (none for a local write).
    listed: &'a Listed<'a>,
}

impl rules::DocState for HeldAt<'_> {
    fn seen(&self, key: &str) -> bool {
        !self.listed.surely_unseen(key) && self.doc.held_at(key, self.deps)
    }
}
