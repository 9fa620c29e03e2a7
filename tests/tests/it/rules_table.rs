//! The change rules as a table: role × document kind × key × what the document already holds,
//! one line per case (issue #13: the rules had been tested by what a change declares, never by
//! what the document held). Through `pipeline::rules::authorize`, the function every receiver
//! and every local write calls.

use omsyn_core::docs::{ChangeSummary, DocumentId, OpAction, OpSummary};
use omsyn_core::identity::{NodeKey, Role};
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::pipeline::rules::{self, DocState};
use omsyn_core::trust::Grant;
use omsyn_core::{Day, Month, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// What the document held under the key when the change was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Nothing,
    TheKey,
}

impl DocState for Held {
    fn seen(&self, _key: &str) -> bool {
        *self == Held::TheKey
    }
}

/// How the change touches the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Puts a value, declaring no predecessor.
    Put,
    /// Puts a value over the one it names as predecessor.
    Overwrite,
    Delete,
}

fn turid() -> PatientId {
    PatientId::parse("p-1111111111111111").unwrap()
}

fn egil() -> PatientId {
    PatientId::parse("p-2222222222222222").unwrap()
}

fn grant(role: Role) -> Grant {
    let node = NodeKey::generate(&mut StdRng::seed_from_u64(role as u64 + 1)).id();
    Grant {
        org: node,
        org_name: "Testkommune".into(),
        node,
        role,
        name: format!("{role}"),
        staff_id: (role != Role::HomeUnit).then(|| StaffId::parse("N1").unwrap()),
        patient: (role == Role::HomeUnit).then(turid),
        zone: Some("Sone 1".into()),
        not_before_ms: 0,
        not_after_ms: i64::MAX,
        validity_ms: 1,
        competence: None,
        explicit_access_max_ms: None,
        run_from_ms: None,
    }
}

fn month() -> Month {
    Month::parse("2026-11").unwrap()
}

/// A JSON item as the signer writes it into `doc`, of `kind` (a journal body type), dated
/// `event` under the name that kind of document dates its items by.
fn item(doc: &DocumentId, signer: &Grant, kind: &str, event: &str) -> String {
    let mut value = serde_json::json!({
        "id": "e-3333333333333333",
        "author": {"staff": signer.staff_id, "name": signer.name, "role": signer.role, "device": signer.node},
        "body": {"type": kind},
    });
    let date = match doc {
        DocumentId::Messages(..) => "sent_at",
        DocumentId::Audit(..) => "at",
        _ => "event_time",
    };
    value[date] = event.into();
    if let DocumentId::Audit(..) = doc {
        value["seq"] = 0.into();
    }
    if date == "event_time" {
        value["entered_at"] = "2026-11-23T10:00:00+01:00".into();
    }
    value.to_string()
}

/// An explicit access as `signer` records it under `access/<rest>`: the staff member and id the
/// key names, the signer's device.
fn access(signer: &Grant, rest: &str) -> String {
    let (staff, id) = rest.split_once('/').unwrap();
    serde_json::json!({
        "id": id, "staff": staff, "device": signer.node, "reason": "vikar",
        "at": "2026-11-23T09:00:00+01:00", "until_ms": 1_795_431_600_000i64,
    })
    .to_string()
}

/// A change writing `value` under `key`, dated as an honest write dates it: when the item says
/// it was entered (or sent, or logged), to the second.
fn change(signer: &Grant, key: &str, op: Op, value: String) -> ChangeSummary {
    let stated = serde_json::from_str::<serde_json::Value>(&value)
        .ok()
        .and_then(|v| {
            ["entered_at", "sent_at", "at"]
                .into_iter()
                .find_map(|k| v[k].as_str().and_then(|t| Timestamp::parse(t).ok()))
        })
        .map_or(omsyn_tests::NOW_MS, |t| {
            t.unix_millis().div_euclid(1000) * 1000
        });
    dated_change(signer, key, op, value, stated)
}

fn dated_change(signer: &Grant, key: &str, op: Op, value: String, time_ms: i64) -> ChangeSummary {
    ChangeSummary {
        hash: [0; 32],
        actor: signer.node.as_bytes().to_vec(),
        deps: vec![],
        seq: 1,
        time_ms,
        stamp: None,
        start_op: 1,
        max_op: 1,
        ops: vec![OpSummary {
            root_key: Some(key.into()),
            // A delete, like an overwrite, names what it removes.
            overwrites: op != Op::Put,
            action: match op {
                Op::Delete => OpAction::Delete,
                _ => OpAction::PutStr(value),
            },
        }],
    }
}

/// One case: `role` writes `key` of `doc` (with `op`, a `kind` of item dated `event`), the
/// document holding `held`; `expect` is `Ok` or a fragment of the refusal.
#[allow(clippy::too_many_arguments)]
fn check(
    role: Role,
    doc: &DocumentId,
    key: &str,
    op: Op,
    kind: &str,
    held: Held,
    expect: Result<(), &str>,
) {
    let signer = grant(role);
    let value = match key.strip_prefix("access/") {
        Some(rest) => access(&signer, rest),
        None => item(doc, &signer, kind, "2026-11-23T09:00:00+01:00"),
    };
    let result = rules::authorize(doc, &change(&signer, key, op, value), &signer, &held, None);
    match (expect, &result) {
        (Ok(()), Ok(())) => {}
        (Err(fragment), Err(reason)) if reason.contains(fragment) => {}
        _ => panic!(
            "{role} {op:?} {key} of {doc}, holding {held:?}: expected {expect:?}, got {result:?}"
        ),
    }
}

/// Role, document, key, how the change touches it, the item's kind, what the document held,
/// and the expected verdict.
type Case<'a> = (
    Role,
    &'a DocumentId,
    &'a str,
    Op,
    &'a str,
    Held,
    Result<(), &'a str>,
);

use Held::{Nothing, TheKey};
use Op::{Delete, Overwrite, Put};
use Role::{Base, HomeUnit, Nurse};

#[test]
fn the_rules_by_role_document_key_and_what_the_document_held() {
    let record = DocumentId::PatientRecord(turid());
    let others_record = DocumentId::PatientRecord(egil());
    let plan = DocumentId::VisitPlan(turid(), month());
    let journal = DocumentId::Journal(turid(), month());
    let others_journal = DocumentId::Journal(egil(), month());
    let messages = DocumentId::Messages(turid(), month());
    let daylog = DocumentId::DayLog(
        StaffId::parse("N1").unwrap(),
        Day::parse("2026-11-23").unwrap(),
    );
    let others_daylog = DocumentId::DayLog(
        StaffId::parse("N2").unwrap(),
        Day::parse("2026-11-23").unwrap(),
    );
    let e = "e/e-3333333333333333";
    let m = "m/e-3333333333333333";
    let may_not = "may not";
    let once = "an entry is written once";
    let never_altered = "nobody alters or deletes";
    let only_grows = "only grows";
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        // Patient record: what decides need is a base's.
        (Base,     &record, "field/zone",  Overwrite, "", TheKey,  Ok(())),
        (Nurse,    &record, "field/zone",  Overwrite, "", TheKey,  Err(may_not)),
        (Nurse,    &record, "field/zone",  Put,       "", Nothing, Err(may_not)),
        (Nurse,    &record, "field/phone", Overwrite, "", TheKey,  Ok(())),
        (HomeUnit, &record, "field/phone", Overwrite, "", TheKey,  Err("home unit")),
        (Nurse,    &record, "team/N2",     Put,       "", Nothing, Err(may_not)),
        (Nurse,    &record, "block/e-1",   Put,       "", Nothing, Err(may_not)),
        (Nurse,    &record, "med/m-1",     Put,       "", Nothing, Err(may_not)),
        (Nurse,    &record, "tiltak/t-1",  Put,       "", Nothing, Err(may_not)),
        (Base,     &record, "team/N2",     Overwrite, "", TheKey,  Ok(())),
        (Nurse,    &record, "flag/f-1",    Delete,    "", TheKey,  Err("nothing is deleted")),
        (Nurse,    &record, "access/N1/e-1", Put,     "", Nothing, Ok(())),
        (Nurse,    &record, "access/N1/e-1", Put,     "", TheKey,  Err("recorded once")),
        (Nurse,    &record, "access/N1/e-1", Overwrite, "", TheKey, Err("explicit access")),
        (Nurse,    &record, "access/N2/e-1", Put,     "", Nothing, Err("explicit access")),
        (HomeUnit, &others_record, "field/phone", Overwrite, "", TheKey, Err("its own patient")),
        // Visit plans: bases only.
        (Base,     &plan, "visit/v-1", Put, "", Nothing, Ok(())),
        (Nurse,    &plan, "visit/v-1", Put, "", Nothing, Err(may_not)),
        (HomeUnit, &plan, "visit/v-1", Put, "", Nothing, Err(may_not)),
        // The journal: new keys only, by their author, and what each role may record.
        (Nurse,    &journal, e, Put,       "note",             Nothing, Ok(())),
        (Nurse,    &journal, e, Put,       "note",             TheKey,  Err(once)),
        (Nurse,    &journal, e, Overwrite, "note",             TheKey,  Err(never_altered)),
        (Nurse,    &journal, e, Delete,    "note",             TheKey,  Err(never_altered)),
        (Nurse,    &journal, "field/x", Put, "note",           Nothing, Err(only_grows)),
        (Nurse,    &journal, e, Put,       "medication-given", Nothing, Ok(())),
        (Base,     &journal, e, Put,       "medication-given", Nothing, Err("only nurses")),
        (Base,     &journal, e, Put,       "note",             Nothing, Ok(())),
        (HomeUnit, &journal, e, Put,       "observation",      Nothing, Ok(())),
        (HomeUnit, &journal, e, Put,       "device-event",     Nothing, Ok(())),
        (Nurse,    &journal, e, Put,       "device-event",     Nothing, Err("only a home unit")),
        (Base,     &journal, e, Put,       "device-event",     Nothing, Err("only a home unit")),
        (HomeUnit, &journal, e, Put,       "note",             Nothing, Err("home unit")),
        (HomeUnit, &journal, e, Put,       "observation",      TheKey,  Err(once)),
        (HomeUnit, &others_journal, e, Put, "observation",     Nothing, Err("its own patient")),
        (Nurse,    &others_journal, e, Put, "note",            Nothing, Ok(())),
        // Messages: anyone (a home unit for its patient), new keys only.
        (HomeUnit, &messages, m, Put, "", Nothing, Ok(())),
        (Nurse,    &messages, m, Put, "", TheKey,  Err(once)),
        (Base,     &messages, m, Overwrite, "", TheKey, Err(never_altered)),
        // Day logs: the staff member's own nodes.
        (Nurse,    &daylog,        e, Put, "shift-start", Nothing, Ok(())),
        (Nurse,    &daylog,        e, Put, "shift-start", TheKey,  Err(once)),
        (Nurse,    &others_daylog, e, Put, "shift-start", Nothing, Err("own nodes")),
    ];
    for (role, doc, key, op, kind, held, expect) in cases {
        check(role, doc, key, op, kind, held, expect);
    }
}

#[test]
fn an_access_log_is_written_by_its_node_alone_and_once() {
    let nurse = grant(Nurse);
    let own = DocumentId::Audit(nurse.node, month());
    let others = DocumentId::Audit(grant(Base).node, month());
    let key = "a/000000000000";
    check(Nurse, &own, key, Put, "", Nothing, Ok(()));
    check(
        Nurse,
        &own,
        key,
        Put,
        "",
        TheKey,
        Err("an entry is written once"),
    );
    check(
        Nurse,
        &own,
        key,
        Overwrite,
        "",
        TheKey,
        Err("nobody alters"),
    );
    check(
        Nurse,
        &others,
        key,
        Put,
        "",
        Nothing,
        Err("only a node itself"),
    );
}

#[test]
fn items_dated_outside_the_bounds_or_ahead_of_the_receiver_are_refused() {
    let nurse = grant(Nurse);
    let journal = DocumentId::Journal(turid(), month());
    let e = "e/e-3333333333333333";
    let dated = |event: &str, received_at: Option<&str>| {
        let value = item(&journal, &nurse, "note", event);
        let received = received_at.map(|t| Timestamp::parse(t).unwrap().unix_millis());
        rules::authorize(
            &journal,
            &change(&nurse, e, Put, value),
            &nurse,
            &Nothing,
            received,
        )
    };
    assert!(dated("2026-11-23T09:00:00+01:00", None).is_ok());
    assert!(
        dated("9000-01-01T09:00:00+01:00", None)
            .unwrap_err()
            .contains("outside")
    );
    assert!(
        dated("1970-01-01T09:00:00+01:00", None)
            .unwrap_err()
            .contains("outside")
    );
    // Something documented to have happened two days after it was entered.
    assert!(
        dated("2026-11-25T10:00:00+01:00", None)
            .unwrap_err()
            .contains("after it was entered")
    );
    // Entered (10:00 on the 23rd) more than a day ahead of the receiver's clock.
    let early = Some("2026-11-22T08:00:00+01:00");
    assert!(
        dated("2026-11-23T09:00:00+01:00", early)
            .unwrap_err()
            .contains("ahead of this node's clock")
    );
    // A document dated outside the supported years, whatever it holds.
    let far = DocumentId::Journal(turid(), Month::from_index(2099 * 12).unwrap());
    assert!(far.is_dated_supported());
    assert!(
        Month::parse("9000-01").is_err(),
        "no document can be named in year 9000"
    );
}

/// The journal item `item` would write for `signer`, with its author's device and body replaced.
fn item_with(signer: &Grant, device: serde_json::Value, body: serde_json::Value) -> String {
    let journal = DocumentId::Journal(turid(), month());
    let mut value: serde_json::Value =
        serde_json::from_str(&item(&journal, signer, "note", "2026-11-23T09:00:00+01:00")).unwrap();
    value["author"]["device"] = device;
    value["body"] = body;
    value.to_string()
}

/// `signer` appends `value` to a journal that did not hold its key.
fn append(signer: &Grant, value: String) -> Result<(), String> {
    let journal = DocumentId::Journal(turid(), month());
    let e = "e/e-3333333333333333";
    rules::authorize(
        &journal,
        &change(signer, e, Put, value),
        signer,
        &Nothing,
        None,
    )
}

#[test]
fn a_change_is_dated_within_the_bounds_and_as_the_items_it_writes() {
    let nurse = grant(Nurse);
    let journal = DocumentId::Journal(turid(), month());
    let e = "e/e-3333333333333333";
    // The item says it was entered at 10:00 on the 23rd.
    let value = item(&journal, &nurse, "note", "2026-11-23T09:00:00+01:00");
    let entered = Timestamp::parse("2026-11-23T10:00:00+01:00")
        .unwrap()
        .unix_millis();
    let dated = |time_ms: i64, received_at: Option<i64>| {
        let change = dated_change(&nurse, e, Put, value.clone(), time_ms);
        rules::authorize(&journal, &change, &nurse, &Nothing, received_at)
    };
    assert_eq!(dated(entered, None), Ok(()));
    assert_eq!(dated(entered, Some(entered)), Ok(()));
    // Its time chooses the author's certificate: the change cannot claim one time and its
    // item show another, nor be dated before 2000 or a day ahead of the receiver.
    for other in [entered - 1000, entered + 1000, entered - 86_400_000] {
        let refused = dated(other, None).unwrap_err();
        assert!(
            refused.contains("an item is dated as its change"),
            "{refused}"
        );
    }
    assert!(dated(0, None).unwrap_err().contains("the change is dated"));
    assert!(dated(0, None).unwrap_err().contains("outside"));
    let a_day_and_more_before = Some(entered - 86_400_000 - 1);
    let refused = dated(entered, a_day_and_more_before).unwrap_err();
    assert!(refused.contains("ahead of this node's clock"), "{refused}");
}

#[test]
fn a_changes_stamp_names_its_signer_and_its_time() {
    let (nurse, base) = (grant(Nurse), grant(Base));
    let record = DocumentId::PatientRecord(turid());
    let at = Timestamp::parse("2026-11-23T10:00:00+01:00").unwrap();
    let stamped = |author: &Grant, entered: Timestamp, time_ms: i64| {
        let stamp = serde_json::json!({
            "author": {"staff": author.staff_id, "name": author.name, "role": author.role, "device": author.node},
            "entered_at": entered,
        });
        let mut change = dated_change(
            &nurse,
            "field/phone",
            Put,
            "\"+4790000000\"".into(),
            time_ms,
        );
        change.stamp = Some(stamp.to_string());
        rules::authorize(&record, &change, &nurse, &Nothing, None)
    };
    let time_ms = at.unix_millis();
    assert_eq!(stamped(&nurse, at, time_ms), Ok(()));
    // The access log and FHIR show the stamp as who wrote the change, and when.
    let refused = stamped(&base, at, time_ms).unwrap_err();
    assert!(
        refused.contains("names an author other than its signer"),
        "{refused}"
    );
    let earlier = Timestamp::from_unix_millis(time_ms - 3_600_000).unwrap();
    let refused = stamped(&nurse, earlier, time_ms).unwrap_err();
    assert!(refused.contains("dated otherwise"), "{refused}");
    let mut change = dated_change(&nurse, "field/phone", Put, "\"1\"".into(), time_ms);
    change.stamp = Some("not json".into());
    let refused = rules::authorize(&record, &change, &nurse, &Nothing, None).unwrap_err();
    assert!(refused.contains("stamp is malformed"), "{refused}");
}

#[test]
fn an_items_author_is_its_signer_in_either_case_of_hex_and_nobody_else() {
    let nurse = grant(Nurse);
    let note = serde_json::json!({"type": "note"});
    let hex = hex::encode(nurse.node.as_bytes());
    assert_eq!(
        append(&nurse, item_with(&nurse, hex.clone().into(), note.clone())),
        Ok(())
    );
    let upper = hex.to_uppercase();
    assert_eq!(
        append(&nurse, item_with(&nurse, upper.into(), note.clone())),
        Ok(())
    );
    let other = hex::encode(grant(Base).node.as_bytes());
    let refused = append(&nurse, item_with(&nurse, other.into(), note.clone()));
    assert!(
        refused
            .unwrap_err()
            .contains("claims an author other than its signer")
    );
    for bad in [
        serde_json::json!("not hex"),
        serde_json::json!(7),
        serde_json::Value::Null,
    ] {
        let refused = append(&nurse, item_with(&nurse, bad.clone(), note.clone()));
        assert!(refused.unwrap_err().contains("malformed"), "{bad}");
    }
    // Another name than the signer's: every view shows the item as that person's.
    let mut renamed: serde_json::Value =
        serde_json::from_str(&item_with(&nurse, hex.clone().into(), note.clone())).unwrap();
    renamed["author"]["name"] = "Kari Nordmann".into();
    let refused = append(&nurse, renamed.to_string());
    assert!(
        refused
            .unwrap_err()
            .contains("claims an author other than its signer")
    );
    // An author without a name is malformed, as it always was.
    let mut nameless: serde_json::Value =
        serde_json::from_str(&item_with(&nurse, hex.into(), note)).unwrap();
    nameless["author"].as_object_mut().unwrap().remove("name");
    let refused = append(&nurse, nameless.to_string());
    assert!(refused.unwrap_err().contains("malformed"));
}

#[test]
fn an_items_kind_is_read_from_its_body_as_json_reads_it() {
    let base = grant(Base);
    let home = grant(HomeUnit);
    let device = |g: &Grant| serde_json::Value::from(hex::encode(g.node.as_bytes()));
    // A key given twice counts by its last value, as a JSON object read whole keeps it.
    let twice = r#"{"type":"note","type":"medication-given"}"#;
    let value = item_with(&base, device(&base), serde_json::Value::Null)
        .replace(r#""body":null"#, &format!(r#""body":{twice}"#));
    assert!(append(&base, value).unwrap_err().contains("only nurses"));
    let cases = [
        // (body, a base may append it, a home unit may)
        (
            serde_json::json!({"type": "medication-given", "dose": {"type": "x"}}),
            false,
            false,
        ),
        (
            serde_json::json!({"dose": {"type": "observation"}, "type": "observation"}),
            true,
            true,
        ),
        (
            serde_json::json!({"nested": {"type": "observation"}}),
            true,
            false,
        ),
        (serde_json::json!({"type": 5}), true, false),
        (serde_json::json!("observation"), true, false),
        (
            serde_json::json!(["observation", {"type": "observation"}]),
            true,
            false,
        ),
        (serde_json::json!(true), true, false),
        (serde_json::json!(1.5), true, false),
        (serde_json::Value::Null, true, false),
    ];
    for (body, base_may, home_may) in cases {
        let by_base = append(&base, item_with(&base, device(&base), body.clone()));
        assert_eq!(by_base.is_ok(), base_may, "{body}: {by_base:?}");
        let by_home = append(&home, item_with(&home, device(&home), body.clone()));
        assert_eq!(by_home.is_ok(), home_may, "{body}: {by_home:?}");
    }
}

#[test]
fn the_date_bounds_in_milliseconds_are_the_bounds_as_written() {
    let ms = |t| Timestamp::parse(t).unwrap().unix_millis();
    assert_eq!(ms(rules::EARLIEST), rules::EARLIEST_MS);
    assert_eq!(ms(rules::LATEST), rules::LATEST_MS);
}

#[test]
fn an_item_whose_body_is_not_valid_json_throughout_is_refused_even_where_the_rules_do_not_look() {
    //! The rules read only a body's `type`, but every node must refuse the same items: a body
    //! JSON refuses anywhere (nesting too deep, a lone surrogate, a number out of range) is
    //! refused, wherever in the body the fault sits.
    let base = grant(Base);
    let device = serde_json::Value::from(hex::encode(base.node.as_bytes()));
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let bodies = [
        format!(r#"{{"type":"observation","extra":{deep}}}"#),
        r#"{"type":"observation","extra":"\ud800"}"#.to_owned(),
        r#"{"type":"observation","extra":1e400}"#.to_owned(),
        format!(r#"[{deep}]"#),
        r#"["\ud800"]"#.to_owned(),
    ];
    for body in bodies {
        let value = item_with(&base, device.clone(), serde_json::Value::Null)
            .replace(r#""body":null"#, &format!(r#""body":{body}"#));
        assert!(
            append(&base, value).is_err(),
            "accepted a body of {body:.60}"
        );
    }
    // The same item with a sound body is taken.
    let sound = item_with(
        &base,
        device,
        serde_json::json!({"type": "observation", "extra": [1]}),
    );
    assert!(append(&base, sound).is_ok());
}

#[test]
fn an_item_is_kept_under_its_own_name_and_no_other() {
    let nurse = grant(Nurse);
    let journal = DocumentId::Journal(turid(), month());
    let messages = DocumentId::Messages(turid(), month());
    let daylog = DocumentId::DayLog(
        StaffId::parse("N1").unwrap(),
        Day::parse("2026-11-23").unwrap(),
    );
    let audit = DocumentId::Audit(nurse.node, month());
    let at = "2026-11-23T09:00:00+01:00";
    let verdict = |doc: &DocumentId, key: &str, value: serde_json::Value| {
        rules::authorize(
            doc,
            &change(&nurse, key, Put, value.to_string()),
            &nurse,
            &Nothing,
            None,
        )
    };
    let named = |doc: &DocumentId| -> serde_json::Value {
        serde_json::from_str(&item(doc, &nurse, "note", at)).unwrap()
    };
    for (doc, own, other) in [
        (&journal, "e/e-3333333333333333", "e/e-4444444444444444"),
        (&messages, "m/e-3333333333333333", "m/e-4444444444444444"),
        (&daylog, "e/e-3333333333333333", "e/e-4444444444444444"),
        (&audit, "a/000000000000", "a/000000000001"),
    ] {
        assert_eq!(verdict(doc, own, named(doc)), Ok(()), "{doc}");
        let refused = verdict(doc, other, named(doc)).unwrap_err();
        assert!(
            refused.contains("kept under its own name"),
            "{doc}: {refused}"
        );
        let mut nameless = named(doc);
        let name = if let DocumentId::Audit(..) = doc {
            "seq"
        } else {
            "id"
        };
        nameless.as_object_mut().unwrap().remove(name);
        let refused = verdict(doc, own, nameless).unwrap_err();
        assert!(refused.contains("without its name"), "{doc}: {refused}");
    }
}

#[test]
fn an_explicit_access_names_its_signer_its_device_and_its_own_key() {
    let nurse = grant(Nurse);
    let record = DocumentId::PatientRecord(turid());
    let verdict = |key: &str, value: serde_json::Value| {
        rules::authorize(
            &record,
            &change(&nurse, key, Put, value.to_string()),
            &nurse,
            &Nothing,
            None,
        )
    };
    let own: serde_json::Value = serde_json::from_str(&access(&nurse, "N1/e-1")).unwrap();
    assert_eq!(verdict("access/N1/e-1", own.clone()), Ok(()));
    let other_device = NodeKey::generate(&mut StdRng::seed_from_u64(99)).id();
    for (field, value) in [
        ("staff", serde_json::json!("N2")),
        ("device", serde_json::json!(other_device)),
    ] {
        let mut claim = own.clone();
        claim[field] = value;
        let refused = verdict("access/N1/e-1", claim).unwrap_err();
        assert!(
            refused.contains("only by the staff member it names"),
            "{field}: {refused}"
        );
    }
    let refused = verdict("access/N1/e-2", own.clone()).unwrap_err();
    assert!(refused.contains("its own name"), "{refused}");
    let refused = verdict("access/N1/e-1/x", own).unwrap_err();
    assert!(refused.contains("its own name"), "{refused}");
    let refused = verdict("access/N1/e-1", serde_json::json!("not an access")).unwrap_err();
    assert!(refused.contains("malformed"), "{refused}");
}

#[test]
fn a_record_names_the_patient_whose_record_it_is() {
    let base = grant(Base);
    let record = DocumentId::PatientRecord(turid());
    let put = |value: &str| {
        rules::authorize(
            &record,
            &change(&base, "patient", Put, value.to_owned()),
            &base,
            &Nothing,
            None,
        )
    };
    assert_eq!(put(turid().as_str()), Ok(()));
    let refused = put(egil().as_str()).unwrap_err();
    assert!(refused.contains("names"), "{refused}");
}
