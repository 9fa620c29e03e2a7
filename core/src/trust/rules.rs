//! What a signed change may do: the signer's role against the document kind and the keys the
//! change touches (documents are flat maps whose key prefixes say what they hold, see
//! [`crate::docs`]). Checked by every receiver, for every change, before it is stored or
//! forwarded; the local node checks its own writes in [`crate::repo`] the same way.
//!
//! | document | who may write |
//! |---|---|
//! | patient record: care plan (`tiltak/`, `vedtak/`), medication list (`med/`), care team, blocks, registration | base |
//! | patient record: identity fields, contacts, flags | base, nurse |
//! | patient record: explicit access `access/<staff>/…` | that staff member's node (new keys only) |
//! | visit plan | base |
//! | journal | base and nurse (medication given / not given: nurse only); home unit: observations only. New entries only, by their own author: nobody alters or deletes an entry |
//! | messages | anyone, new messages only, by their own author; pictures must be what they say (type, size, bounds) |
//! | day log of staff S | S's nodes, new entries only |
//! | access log of node N | N only, new entries only |

use serde::Deserialize;

use crate::docs::{Author, ChangeSummary, DocumentId, OpAction, OpSummary};
use crate::identity::Role;
use crate::trust::Grant;

/// Checks that `change` (already known to be signed by the node `signer` certifies) may be
/// applied to `doc`. The error says why not, for the sender and the log.
pub fn authorize(doc: &DocumentId, change: &ChangeSummary, signer: &Grant) -> Result<(), String> {
    if change.actor.as_slice() != signer.node.as_bytes() {
        return Err("the change's actor is not its signer".into());
    }
    match doc {
        DocumentId::PatientRecord(_) => {
            for op in &change.ops {
                record_op(op, signer)?;
            }
            Ok(())
        }
        DocumentId::VisitPlan(..) => require_base(signer, "edit visit plans"),
        DocumentId::Journal(..) => append_only(change, "e/", signer, journal_entry),
        DocumentId::Messages(..) => append_only(change, "m/", signer, |_, _| Ok(())),
        DocumentId::DayLog(staff, _) => {
            if signer.staff_id.as_ref() != Some(staff) {
                return Err(format!("only {staff}'s own nodes write {staff}'s day log"));
            }
            append_only(change, "e/", signer, |_, _| Ok(()))
        }
        DocumentId::Audit(node, _) => {
            if node != &signer.node {
                return Err("only a node itself writes its access log".into());
            }
            append_only(change, "a/", signer, |_, _| Ok(()))
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

fn record_op(op: &OpSummary, signer: &Grant) -> Result<(), String> {
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
        "field" | "contact" | "flag" => match signer.role {
            Role::Base | Role::Nurse => Ok(()),
            Role::HomeUnit => Err("a home unit may not edit patient records".into()),
        },
        "access" => {
            let staff = key.split('/').nth(1).unwrap_or_default();
            if signer.staff_id.as_ref().map(|s| s.as_str()) != Some(staff) || op.overwrites {
                Err("an explicit access is recorded only by the staff member it names".into())
            } else {
                Ok(())
            }
        }
        _ => Err(format!("unknown patient-record key {key:?}")),
    }
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
    author: Author,
    #[serde(default)]
    body: Option<serde_json::Value>,
    /// A message's pictures (checked here, so no node stores or serves a disguised file).
    #[serde(default)]
    attachments: Vec<crate::docs::messages::Attachment>,
}

/// Every op must put a new JSON string under `prefix`, written by the signer itself; `check`
/// sees each item's body.
fn append_only(
    change: &ChangeSummary,
    prefix: &str,
    signer: &Grant,
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
        crate::docs::messages::check_attachments(&item.attachments)
            .map_err(|e| format!("{key}: {e}"))?;
        let a = &item.author;
        if a.device != signer.node || a.role != signer.role || a.staff != signer.staff_id {
            return Err(format!(
                "{key} claims an author other than its signer (node {}, {})",
                signer.node.short(),
                signer.role
            ));
        }
        let kind = item
            .body
            .as_ref()
            .and_then(|b| b.get("type"))
            .and_then(|t| t.as_str());
        check(signer, kind)?;
    }
    Ok(())
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
        _ => Ok(()),
    }
}
