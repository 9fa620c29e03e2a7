//! What a signed change may do: the signer's role against the document kind, the patient the
//! document concerns, the keys the change touches, and what the document held when the change
//! was made. Checked by every receiver, for every change, before it is stored or forwarded, and
//! for the local node's own writes before they are committed (see [`super`]).
//!
//! | document | who may write |
//! |---|---|
//! | patient record: care plan (`tiltak/`, `vedtak/`), medication list (`med/`), care team, blocks, registration, the zone (`field/zone`) | base |
//! | patient record: other identity fields, contacts, flags | base, nurse |
//! | patient record: explicit access `access/<staff>/…` | that staff member's node, new keys only |
//! | visit plan | base |
//! | journal | base and nurse (medication given / not given: nurse only; device events: home unit only); home unit: its own patient's observations and device events only |
//! | messages | anyone (a home unit: its own patient's), pictures must be what they say (type, size, bounds) |
//! | day log of staff S | S's nodes |
//! | access log of node N | N only |
//!
//! Journal, messages, day logs and access logs only grow: every operation puts a new JSON item
//! under a new key that is the item's own name (its id, or an access-log entry's number),
//! written by the node the item names as its author, dated within
//! [`EARLIEST`]..[`LATEST`] and not after it was entered (with a day's grace). An item is
//! written once: a change that puts a key the document already held in the state the change
//! was built on (its dependencies) is refused, whatever its operations declare about
//! predecessors. Two values under one key can still meet — two changes made without seeing
//! each other — and that is raised as an integrity alert where conflicts are, never resolved
//! silently (see [`crate::conflict`]).
//!
//! Every change is judged by its signer's certificate in force at the change's time
//! ([`crate::trust::Certificate::in_force`]), and so the time is bounded: within
//! [`EARLIEST`]..[`LATEST`], not more than a day after the receiver's clock, and equal, to the
//! second, to the entry time of every item it writes and of its stamp (the change's message:
//! who wrote it and when, what the access log and FHIR show), which must name its signer under
//! the certificate's name. A device can reach an earlier grant only by dating its change within
//! the time it held it, and cannot show one time to the rules and another to the reader.

use serde::Deserialize;

use crate::docs::{ChangeSummary, DocumentId, OpAction, OpSummary};
use crate::identity::Role;
use crate::ids::StaffId;
use crate::time::Timestamp;
use crate::trust::Grant;

/// Dates outside these bounds are refused: a unit mix-up or a forged date, never care.
pub const EARLIEST: &str = "2000-01-01T00:00:00Z";
/// See [`EARLIEST`].
pub const LATEST: &str = "2100-01-01T00:00:00Z";
/// [`EARLIEST`] in Unix milliseconds (checked against the text in the tests).
pub const EARLIEST_MS: i64 = 946_684_800_000;
/// [`LATEST`] in Unix milliseconds.
pub const LATEST_MS: i64 = 4_102_444_800_000;
/// How far an item may be dated after it was entered (a clock a little off, a late entry).
pub const FUTURE_GRACE_MS: i64 = 24 * 3600 * 1000;

/// What the rules need to know about the document a change lands in.
pub trait DocState {
    /// Whether `key` held a value in the state the change was built on (its dependencies).
    fn seen(&self, key: &str) -> bool;
}

/// Checks that `change` (already known to be signed by the node `signer` certifies) may be
/// applied to `doc` as it stands (`state`). `received_at_ms` is the receiver's clock, for a
/// change that arrived from elsewhere: nothing entered more than a day after it is taken. The
/// error says why not, for the sender and the log.
pub fn authorize(
    doc: &DocumentId,
    change: &ChangeSummary,
    signer: &Grant,
    state: &dyn DocState,
    received_at_ms: Option<i64>,
) -> Result<(), String> {
    let dates = Dates {
        received_at_ms,
        change_ms: change.time_ms,
    };
    if !doc.is_dated_supported() {
        return Err(format!(
            "{doc} is dated outside {}–{}",
            crate::time::SUPPORTED_YEARS.start(),
            crate::time::SUPPORTED_YEARS.end()
        ));
    }
    if change.actor.as_slice() != signer.node.as_bytes() {
        return Err("the change's actor is not its signer".into());
    }
    dates.check_change()?;
    stamped_by_its_signer(change, signer)?;
    if signer.role == Role::HomeUnit
        && let Some(patient) = doc.patient()
        && signer.patient.as_ref() != Some(patient)
    {
        return Err(format!(
            "a home unit writes only to its own patient's documents, not {patient}'s"
        ));
    }
    match doc {
        DocumentId::PatientRecord(patient) => {
            for op in &change.ops {
                record_op(op, signer, state)?;
                names_its_patient(op, patient)?;
            }
            Ok(())
        }
        DocumentId::VisitPlan(..) => require_base(signer, "edit visit plans"),
        DocumentId::Journal(..) => append_only(change, "e/", signer, state, dates, journal_entry),
        DocumentId::Messages(..) => append_only(change, "m/", signer, state, dates, |_, _| Ok(())),
        DocumentId::DayLog(staff, _) => {
            if signer.staff_id.as_ref() != Some(staff) {
                return Err(format!("only {staff}'s own nodes write {staff}'s day log"));
            }
            append_only(change, "e/", signer, state, dates, |_, _| Ok(()))
        }
        DocumentId::Audit(node, _) => {
            if node != &signer.node {
                return Err("only a node itself writes its access log".into());
            }
            append_only(change, "a/", signer, state, dates, |_, _| Ok(()))
        }
    }
}

fn require_base(signer: &Grant, action: &str) -> Result<(), String> {
    if signer.role == Role::Base {
        Ok(())
    } else {
        Err(format!("a {} may not {action}", signer.role))
    }
}

fn record_op(op: &OpSummary, signer: &Grant, state: &dyn DocState) -> Result<(), String> {
    let key = op
        .root_key
        .as_deref()
        .ok_or("a patient record holds no nested objects")?;
    let prefix = key.split('/').next().unwrap_or(key);
    // Writing a register over concurrent values removes the losers: only fields are registers.
    if op.action == OpAction::Delete && prefix != "field" {
        return Err(format!("nothing is deleted from a patient record ({key})"));
    }
    match prefix {
        "patient" | "tiltak" | "vedtak" | "med" | "team" | "block" => require_base(
            signer,
            "register patients or edit care plans, medication lists, care teams or blocks",
        ),
        // The zone decides which base (and so whose need) a patient belongs to.
        "field" if key == "field/zone" => require_base(signer, "change a patient's zone"),
        "field" | "contact" | "flag" => match signer.role {
            Role::Base | Role::Nurse => Ok(()),
            Role::HomeUnit => Err("a home unit may not edit patient records".into()),
        },
        "access" => explicit_access(key, op, signer, state),
        _ => Err(format!("unknown patient-record key {key:?}")),
    }
}

/// A record's `patient` key names the patient whose record it is: conflicts and tasks derived
/// from the record are filed under it.
fn names_its_patient(op: &OpSummary, patient: &crate::ids::PatientId) -> Result<(), String> {
    match (&op.root_key, &op.action) {
        (Some(key), OpAction::PutStr(value)) if key == "patient" && value != patient.as_str() => {
            Err(format!(
                "the record of {patient} names {value:?} as its patient"
            ))
        }
        (Some(key), OpAction::PutOther | OpAction::MakeObject) if key == "patient" => {
            Err(format!("the record of {patient} names its patient as text"))
        }
        _ => Ok(()),
    }
}

/// An explicit access, as the record holds it: the need index grants it to the staff member its
/// value names, so the value — not only the key — must name the signer, from the signer's device,
/// under the key `access/<staff>/<id>` of its own id.
#[derive(Deserialize)]
struct ClaimedAccess {
    id: String,
    staff: StaffId,
    device: KeyBytes,
}

fn explicit_access(
    key: &str,
    op: &OpSummary,
    signer: &Grant,
    state: &dyn DocState,
) -> Result<(), String> {
    let not_own = || "an explicit access is recorded only by the staff member it names".to_owned();
    let staff = key.split('/').nth(1).unwrap_or_default();
    if signer.staff_id.as_ref().map(|s| s.as_str()) != Some(staff) || op.overwrites {
        return Err(not_own());
    }
    if state.seen(key) {
        return Err(format!(
            "{key} already exists: an explicit access is recorded once"
        ));
    }
    let OpAction::PutStr(json) = &op.action else {
        return Err(format!("{key}: an explicit access is JSON text"));
    };
    let claim: ClaimedAccess =
        serde_json::from_str(json).map_err(|e| format!("{key} is malformed: {e}"))?;
    if Some(&claim.staff) != signer.staff_id.as_ref() || claim.device.0 != *signer.node.as_bytes() {
        return Err(not_own());
    }
    if key != format!("access/{}/{}", claim.staff, claim.id) {
        return Err(format!(
            "{key} holds the access access/{}/{}: an item is kept under its own name",
            claim.staff, claim.id
        ));
    }
    Ok(())
}

/// Largest appended entry (journal, day log, access log): 16 KiB of text even at JSON's worst
/// escaping, with room for the header.
const MAX_ENTRY_JSON_BYTES: usize = 128 * 1024;
/// Largest appended message: its pictures in base64 plus the largest entry.
const MAX_MESSAGE_JSON_BYTES: usize =
    crate::docs::messages::MAX_PICTURE_BYTES_PER_MESSAGE / 3 * 4 + 4096 + MAX_ENTRY_JSON_BYTES;

/// The fields every appended item shares.
#[derive(Deserialize)]
struct Appended {
    /// The item's name (journal, messages, day logs): its key is `prefix` + `id`.
    #[serde(default)]
    id: Option<String>,
    /// An access-log entry's place in its node's chain: its key is `a/` + twelve digits.
    #[serde(default)]
    seq: Option<u64>,
    author: ClaimedAuthor,
    /// When it happened (journal, day log) or was sent (messages: `sent_at`), or was logged
    /// (access log: `at`).
    #[serde(default, alias = "sent_at", alias = "at")]
    event_time: Option<Timestamp>,
    /// When it was entered (journal, day log).
    #[serde(default)]
    entered_at: Option<Timestamp>,
    #[serde(default)]
    body: Option<BodyKind>,
    /// A message's pictures (checked here, so no node stores or serves a disguised file).
    #[serde(default)]
    attachments: Vec<crate::docs::messages::Attachment>,
}

/// An item's author as the item states it: the shape of [`crate::docs::Author`], with the
/// device's key as its bytes. The rules only compare it with the signer's, whose key is a
/// valid point already, so equal bytes are a valid key (and decompressing the point again, on
/// every item, cost a field exponentiation).
#[derive(Deserialize)]
struct ClaimedAuthor {
    staff: Option<StaffId>,
    name: String,
    role: Role,
    device: KeyBytes,
}

impl ClaimedAuthor {
    /// Whether this is the signer as its certificate says: device, role, staff member, and the
    /// name too (what every view shows as the author).
    fn is(&self, signer: &Grant) -> bool {
        self.device.0 == *signer.node.as_bytes()
            && self.role == signer.role
            && self.staff == signer.staff_id
            && self.name == signer.name
    }

    /// [`ClaimedAuthor::is`], or the refusal: `claim` ("e/… claims") an author other than its signer.
    fn require(&self, signer: &Grant, claim: impl FnOnce() -> String) -> Result<(), String> {
        match self.is(signer) {
            true => Ok(()),
            false => Err(format!(
                "{} an author other than its signer ({} {}, node {})",
                claim(),
                signer.role,
                signer.name,
                signer.node.short()
            )),
        }
    }
}

/// A node key's 64 hex digits (either case, as [`crate::identity::NodeId::parse`] reads
/// them), as bytes.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct KeyBytes([u8; 32]);

impl TryFrom<String> for KeyBytes {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&value, &mut bytes)
            .map_err(|_| format!("invalid node id {value:?}"))?;
        Ok(KeyBytes(bytes))
    }
}

/// What the rules read of an item's body: the string under its `type`. A body that is no
/// object, has no `type` or a `type` that is no string has none (as `body["type"]` reads
/// JSON). The rest of the body is read as JSON values and dropped, not skipped: skipping
/// checks less (nesting depth, lone surrogates, numbers out of range), and a body every
/// other node refuses must be refused here too.
struct BodyKind(Option<String>);

impl<'de> Deserialize<'de> for BodyKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindOf)
    }
}

/// Reads a body: an object's kind is the string under its `type`; any other value has none.
struct KindOf;

impl<'de> serde::de::Visitor<'de> for KindOf {
    type Value = BodyKind;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<BodyKind, A::Error> {
        let mut kind = None;
        // Like a JSON object read whole, a key given twice counts by its last value.
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                kind = map
                    .next_value::<serde_json::Value>()?
                    .as_str()
                    .map(str::to_owned);
            } else {
                map.next_value::<serde_json::Value>()?;
            }
        }
        Ok(BodyKind(kind))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BodyKind, A::Error> {
        while seq.next_element::<serde_json::Value>()?.is_some() {}
        Ok(BodyKind(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }

    fn visit_unit<E>(self) -> Result<BodyKind, E> {
        Ok(BodyKind(None))
    }
}

/// Every op must put a new JSON string under a new key with `prefix`, written by the signer
/// itself and dated within bounds; `check` sees each item's body.
fn append_only(
    change: &ChangeSummary,
    prefix: &str,
    signer: &Grant,
    state: &dyn DocState,
    dates: Dates,
    check: impl Fn(&Grant, Option<&str>) -> Result<(), String>,
) -> Result<(), String> {
    for op in &change.ops {
        let key = op.root_key.as_deref().unwrap_or_default();
        if !key.starts_with(prefix) {
            return Err(format!("unexpected key {key:?}: this document only grows"));
        }
        if op.overwrites {
            return Err(format!(
                "{key} already exists: nobody alters or deletes an entry"
            ));
        }
        if state.seen(key) {
            return Err(format!(
                "{key} already exists in what this change was built on: an entry is written once"
            ));
        }
        let OpAction::PutStr(json) = &op.action else {
            return Err(format!("{key}: entries are appended as JSON text"));
        };
        let max = if prefix == "m/" {
            MAX_MESSAGE_JSON_BYTES
        } else {
            MAX_ENTRY_JSON_BYTES
        };
        if json.len() > max {
            return Err(format!(
                "{key} is {} bytes; at most {max} are accepted",
                json.len()
            ));
        }
        let item: Appended =
            serde_json::from_str(json).map_err(|e| format!("{key} is malformed: {e}"))?;
        named_by_its_key(key, prefix, &item)?;
        crate::docs::messages::check_attachments(&item.attachments)
            .map_err(|e| format!("{key}: {e}"))?;
        item.author.require(signer, || format!("{key} claims"))?;
        dates.check(key, &item)?;
        let kind = item.body.as_ref().and_then(|b| b.0.as_deref());
        check(signer, kind)?;
    }
    Ok(())
}

/// A change's stamp, which the access log and the FHIR export show as who wrote it and when,
/// names its signer (as its certificate does) and the change's own time. A change without one
/// is shown by its signer alone.
fn stamped_by_its_signer(change: &ChangeSummary, signer: &Grant) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Stamp {
        author: ClaimedAuthor,
        entered_at: Timestamp,
    }
    let Some(text) = &change.stamp else {
        return Ok(());
    };
    let stamp: Stamp =
        serde_json::from_str(text).map_err(|e| format!("the change's stamp is malformed: {e}"))?;
    stamp
        .author
        .require(signer, || "the change's stamp names".into())?;
    if stamp.entered_at.change_millis() != change.time_ms {
        return Err(format!(
            "the change's stamp says it was entered at {}, but the change is dated otherwise",
            stamp.entered_at
        ));
    }
    Ok(())
}

/// An item is kept under its own name. Corrections, conflicts, tasks and the day index find an
/// item by the name it carries; one put under another item's key would stand in for that item
/// (a correction withdrawing both, a row of the day index replaced) though the key it took was
/// new.
fn named_by_its_key(key: &str, prefix: &str, item: &Appended) -> Result<(), String> {
    let named = match prefix {
        "a/" => item.seq.map(|seq| format!("a/{seq:012}")),
        _ => item.id.as_ref().map(|id| format!("{prefix}{id}")),
    };
    match named {
        Some(named) if named == key => Ok(()),
        Some(named) => Err(format!(
            "{key} holds an item named {named}: an item is kept under its own name"
        )),
        None => Err(format!("{key} holds an item without its name")),
    }
}

fn journal_entry(signer: &Grant, kind: Option<&str>) -> Result<(), String> {
    match (signer.role, kind) {
        (Role::HomeUnit, Some("observation" | "device-event")) => Ok(()),
        (Role::HomeUnit, _) => {
            Err("a home unit adds only its devices' observations and events to the journal".into())
        }
        (Role::Base, Some("medication-given" | "medication-not-given")) => {
            Err("only nurses record medication given or not given".into())
        }
        // A dispenser's "dose taken" counts as given, and its alarms raise tasks: only the home
        // unit its devices report to records them.
        (_, Some("device-event")) => Err("only a home unit records its devices' events".into()),
        _ => Ok(()),
    }
}

/// Bounds on the dates an appended item carries.
#[derive(Debug, Clone, Copy)]
struct Dates {
    received_at_ms: Option<i64>,
    /// When the change says it was made (its author's clock, to the second).
    change_ms: i64,
}

impl Dates {
    /// A change is dated within [`EARLIEST`]..[`LATEST`] and no later than a day after the
    /// receiver's clock: its time chooses the certificate of its author's that judges it
    /// ([`crate::trust::Certificate::in_force`]), so it is bounded like the items' dates.
    fn check_change(&self) -> Result<(), String> {
        let t = self.change_ms;
        let shown = || match Timestamp::from_unix_millis(t) {
            Some(time) => time.to_string(),
            None => format!("{t} ms after 1970"),
        };
        if !(EARLIEST_MS..LATEST_MS).contains(&t) {
            return Err(format!(
                "the change is dated {}, outside {EARLIEST}..{LATEST}",
                shown()
            ));
        }
        if let Some(now) = self.received_at_ms
            && t > now.saturating_add(FUTURE_GRACE_MS)
        {
            return Err(format!(
                "the change is dated {}, more than a day ahead of this node's clock",
                shown()
            ));
        }
        Ok(())
    }

    /// An item's dates lie within [`EARLIEST`]..[`LATEST`], what it records happened no later
    /// than a day after it was entered, and it was entered no later than a day after the
    /// receiver's clock.
    fn check(&self, key: &str, item: &Appended) -> Result<(), String> {
        for time in [item.event_time, item.entered_at].into_iter().flatten() {
            if !(EARLIEST_MS..LATEST_MS).contains(&time.unix_millis()) {
                return Err(format!(
                    "{key} is dated {time}, outside {EARLIEST}..{LATEST}"
                ));
            }
        }
        let entered = item.entered_at.or(item.event_time);
        // An item is dated as the change that writes it (a write's one clock reading): its
        // entry time shows when its author says it was written, and no change can claim one
        // time to choose its author's certificate and show another.
        if let Some(entered) = entered
            && entered.change_millis() != self.change_ms
        {
            return Err(format!(
                "{key} was entered at {entered}, but the change that writes it is dated otherwise: \
                 an item is dated as its change"
            ));
        }
        if let (Some(event), Some(entered)) = (item.event_time, item.entered_at)
            && event.unix_millis() > entered.unix_millis().saturating_add(FUTURE_GRACE_MS)
        {
            return Err(format!(
                "{key} records something at {event}, more than a day after it was entered ({entered})"
            ));
        }
        if let (Some(entered), Some(now)) = (entered, self.received_at_ms)
            && entered.unix_millis() > now.saturating_add(FUTURE_GRACE_MS)
        {
            return Err(format!(
                "{key} was entered at {entered}, more than a day ahead of this node's clock"
            ));
        }
        Ok(())
    }
}
