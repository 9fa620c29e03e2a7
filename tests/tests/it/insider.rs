//! Issue #13: an enrolled device running modified software. A stolen phone with a patched app, or
//! a compromised home tablet, signs valid changes with its real key; every rule must hold at the
//! receiver, judged against the document the change lands in. Each attack here is a change made
//! by hand (`omsyn_tests::craft`) with a real enrolled node's key, planted in the attacker's own
//! store past its checks, and delivered both through a live session and through an export file.
//! Each is refused, or kept and raised as an integrity alert; the honest nodes' data, conflicts and
//! logs stay intact in every view.

use omsyn_core::conflict::ConflictKind;
use omsyn_core::docs::DocumentId;
use omsyn_core::docs::journal::{DoseRef, Entry, EntryBody};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{EntryId, PatientId, StaffId};
use omsyn_core::repo::Correction;
use omsyn_core::sync::SyncEvent;
use omsyn_core::trust::audit::{self, AccessEvent, AuditAction};
use omsyn_core::{Day, Repo, RepoError, Timestamp};
use omsyn_tests::craft::{self, Crafted, Put};
use omsyn_tests::{Link, NOW_MS, TestNode};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A time on the day of [`NOW_MS`].
fn today(hhmm: &str) -> Timestamp {
    let day = Day::from_unix_millis(NOW_MS).unwrap();
    Timestamp::from_day_hhmm(day, hhmm, 3600).unwrap()
}

/// How an attack reaches the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Session,
    File,
}

const BOTH: [Via; 2] = [Via::Session, Via::File];

/// A base; Kari (N1, honest) and Mons (N2, the insider), both on Turid's care team; Turid's
/// home unit; Egil, another patient (N1's only). Kari gave Turid's 08:00 dose and wrote a note;
/// everyone synced.
struct World {
    base: TestNode,
    kari: TestNode,
    mons: TestNode,
    home: TestNode,
    turid: PatientId,
    egil: PatientId,
    dose: Entry,
    note: Entry,
}

impl World {
    fn new() -> World {
        let mut base = TestNode::base(501);
        let turid = patient(&mut base, "Turid Nilsen", &["N1", "N2"]);
        let egil = patient(&mut base, "Egil Haugen", &["N1"]);
        let med = base.add_medication(&turid, "Metformin 500 mg", "08:00");
        base.repo
            .plan_visit(
                today("07:00"),
                &mut base.rng,
                &omsyn_core::docs::plan::NewVisit {
                    patient: turid.clone(),
                    start: today("08:00"),
                    end: today("08:30"),
                    kind: omsyn_core::docs::plan::VisitKind::Physical,
                    tiltak: vec![],
                    staff: vec![StaffId::parse("N1").unwrap()],
                },
            )
            .unwrap();
        let mut kari = TestNode::nurse(502, "N1");
        let mons = TestNode::nurse(503, "N2");
        let home = TestNode::home_unit(504, &turid);
        sync(&base.repo, &kari.repo);
        let (t, rng) = (today("08:10"), &mut kari.rng);
        let dose = kari
            .repo
            .record_dose(t, rng, &turid, &med, "08:00", today("08:05"), None, None)
            .unwrap();
        let note = kari
            .repo
            .add_note(t, rng, &turid, None, today("08:08"), "Turid i god form")
            .unwrap();
        sync(&kari.repo, &base.repo);
        sync(&base.repo, &mons.repo);
        sync(&base.repo, &home.repo);
        World {
            base,
            kari,
            mons,
            home,
            turid,
            egil,
            dose,
            note,
        }
    }

    fn journal_id(&self) -> DocumentId {
        DocumentId::Journal(self.turid.clone(), today("08:00").day().month())
    }

    /// The heads of Turid's journal as Mons held it before Kari's dose: a change built on them
    /// was made without seeing the dose.
    fn before_the_dose(&self) -> Vec<[u8; 32]> {
        let key = format!("e/{}", self.dose.id);
        let dose_change = craft::change_putting(&self.mons.repo, &self.journal_id(), &key).unwrap();
        craft::heads_without(&self.mons.repo, &self.journal_id(), dose_change)
    }

    /// Turid's journal of the month, as the base holds it.
    fn base_journal(&self) -> omsyn_core::docs::journal::Journal {
        let store = self.base.repo.store();
        let journal = store.with_doc(&self.journal_id(), omsyn_core::docs::journal::read);
        journal.unwrap().unwrap()
    }

    /// Mons's change to `doc`, built on `deps` (`None`: all he holds), planted in his store.
    fn mons_crafts(&self, doc: &DocumentId, puts: &[Put], deps: Option<Vec<[u8; 32]>>) -> Crafted {
        let crafted = craft::change(
            &self.mons.repo,
            doc,
            &self.mons.repo,
            puts,
            deps,
            today("11:00"),
        );
        craft::plant(&self.mons.repo, doc, &crafted);
        crafted
    }

    /// Delivers everything `from` holds to the base; the base's refusal, if any.
    fn deliver(&self, from: &Repo, via: Via) -> Option<String> {
        match via {
            Via::Session => {
                let mut link = Link::open(from, &self.base.repo);
                let (pf, pb) = (
                    from.need_policy().expect("own grant"),
                    self.base.repo.need_policy().expect("own grant"),
                );
                link.exchange((from, &pf), (&self.base.repo, &pb), NOW_MS);
                std::iter::from_fn(|| link.b.poll_event()).find_map(|e| match e {
                    SyncEvent::RejectedChanges { reason, .. } => Some(reason),
                    _ => None,
                })
            }
            Via::File => {
                let file = from.export_unchecked(None).unwrap();
                self.base
                    .repo
                    .import(today("12:00"), &file)
                    .err()
                    .map(|e| e.to_string())
            }
        }
    }

    fn base_holds(&self, doc: &DocumentId, change: &Crafted) -> bool {
        self.base
            .repo
            .store()
            .with_doc(doc, |d| d.has_change(&change.hash))
            .unwrap()
            .unwrap_or(false)
    }

    /// Kari's dose and note are still at the base, in the journal, the conflicts' evidence,
    /// the day report and the FHIR export.
    fn honest_data_intact(&self) {
        let base = &self.base.repo;
        let (journal, _) = base.journal(&self.turid).unwrap();
        for original in [&self.dose, &self.note] {
            assert!(
                journal.contains(original),
                "{} vanished from the journal",
                original.id
            );
        }
        let mut gate = omsyn_tests::gate(base);
        let report =
            omsyn_core::report::day_report(base, today("08:00").day(), None, &mut gate).unwrap();
        assert!(report.visits.iter().any(|v| v.patient == self.turid));
        let fhir = omsyn_core::fhir::export(base, today("12:00"), Some(&self.turid)).unwrap();
        let bundle = serde_json::to_string(&fhir[0].1.bundle).unwrap();
        for original in [&self.dose, &self.note] {
            assert!(
                bundle.contains(original.id.as_str()),
                "{} is in the FHIR export",
                original.id
            );
        }
    }
}

fn patient(base: &mut TestNode, name: &str, team: &[&str]) -> PatientId {
    let rng = &mut base.rng;
    base.repo
        .transaction(|tx| {
            let p = tx.add_patient(
                today("07:00"),
                rng,
                &[
                    (PatientField::Name, name.into()),
                    (PatientField::Zone, "Sone 1".into()),
                ],
            )?;
            for staff in team {
                tx.set_team_member(today("07:00"), &p, &StaffId::parse(staff).unwrap(), true)?;
            }
            Ok::<_, RepoError>(p)
        })
        .unwrap()
}

/// One need-based session each way between `a` and `b`.
fn sync(a: &Repo, b: &Repo) {
    let mut link = Link::open(a, b);
    let (pa, pb) = (
        a.need_policy().expect("own grant"),
        b.need_policy().expect("own grant"),
    );
    let errors = link.exchange((a, &pa), (b, &pb), NOW_MS);
    assert_eq!(errors, (None, None));
}

/// An entry as Mons's patched app writes it: his own author block, any id and body.
fn mons_entry(w: &World, id: &EntryId, body: EntryBody) -> String {
    let entry = Entry {
        id: id.clone(),
        author: w.mons.repo.author().expect("own author"),
        event_time: today("08:06"),
        entered_at: today("11:00"),
        body,
    };
    serde_json::to_string(&entry).unwrap()
}

fn given(w: &World) -> EntryBody {
    let EntryBody::MedicationGiven { dose, .. } = &w.dose.body else {
        panic!("the dose is a dose");
    };
    EntryBody::MedicationGiven {
        dose: dose.clone(),
        visit: None,
    }
}

fn refused(reason: Option<String>, expect: &str) {
    let reason = reason.unwrap_or_else(|| panic!("expected a refusal mentioning {expect:?}"));
    assert!(reason.contains(expect), "refused, but for {reason:?}");
}

#[test]
fn re_creating_another_nurses_dose_after_seeing_it_is_refused() {
    for via in BOTH {
        let w = World::new();
        let key = format!("e/{}", w.dose.id);
        let crafted = w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(&key, &mons_entry(&w, &w.dose.id, given(&w)))],
            None,
        );
        refused(w.deliver(&w.mons.repo, via), "already exists");
        assert!(!w.base_holds(&w.journal_id(), &crafted), "{via:?}");
        w.honest_data_intact();
    }
}

#[test]
fn re_creating_another_nurses_dose_unseen_keeps_both_and_raises_an_integrity_alert() {
    for via in BOTH {
        let w = World::new();
        let key = format!("e/{}", w.dose.id);
        // Built on the journal as it was before Kari's dose: Automerge keeps both values.
        let before = w.before_the_dose();
        let fake = mons_entry(&w, &w.dose.id, given(&w));
        let crafted = w.mons_crafts(&w.journal_id(), &[Put::fresh(&key, &fake)], Some(before));
        assert_eq!(
            w.deliver(&w.mons.repo, via),
            None,
            "{via:?}: kept, not refused"
        );
        assert!(w.base_holds(&w.journal_id(), &crafted));
        let alerts: Vec<_> = w
            .base
            .repo
            .conflicts(Some(&w.turid))
            .unwrap()
            .into_iter()
            .filter(
                |c| matches!(&c.kind, ConflictKind::EntryWrittenTwice { key: k, .. } if *k == key),
            )
            .collect();
        assert_eq!(
            alerts.len(),
            1,
            "{via:?}: an integrity alert where conflicts are"
        );
        // It names the document as people do, not by the patient's id.
        assert!(
            alerts[0].summary.contains(" in the journal of ")
                && !alerts[0].summary.contains(w.turid.as_str()),
            "{}",
            alerts[0].summary
        );
        // Both values are shown: Kari's dose, and Mons's claim beside it.
        let (journal, _) = w.base.repo.journal(&w.turid).unwrap();
        assert_eq!(journal.iter().filter(|e| e.id == w.dose.id).count(), 2);
        // A second "given" for the same dose: the safety conflict stands too.
        assert!(
            w.base
                .repo
                .conflicts(Some(&w.turid))
                .unwrap()
                .iter()
                .any(|c| matches!(c.kind, ConflictKind::DoseGivenTwice { .. }))
        );
        // Exported, the safety conflict's DetectedIssue implicates both copies, each under the
        // name its resource has (its id and its writer's device): no reference dangles.
        let fhir = omsyn_core::fhir::export(&w.base.repo, today("12:00"), Some(&w.turid)).unwrap();
        let bundle = &fhir[0].1.bundle;
        assert_eq!(dangling(bundle), Vec::<String>::new(), "{via:?}");
        let implicated = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .find(|r| r["resourceType"] == "DetectedIssue" && r["code"]["coding"].is_array())
            .map(|r| r["implicated"].as_array().unwrap().len());
        assert_eq!(implicated, Some(2), "{via:?}");
        w.honest_data_intact();
    }
}

#[test]
fn an_entry_under_a_new_key_naming_itself_as_another_entry_is_refused() {
    for via in BOTH {
        let w = World::new();
        // A key nobody used, holding an entry that says it is Kari's note: readers find items by
        // the name they carry, so it would stand beside hers as the same note.
        let key = "e/e-00000000deadbeef";
        let text = EntryBody::Note {
            visit: None,
            text: "Turid nektet alt".into(),
        };
        let posing = mons_entry(&w, &w.note.id, text);
        let crafted = w.mons_crafts(&w.journal_id(), &[Put::fresh(key, &posing)], None);
        refused(
            w.deliver(&w.mons.repo, via),
            "an item is kept under its own name",
        );
        assert!(!w.base_holds(&w.journal_id(), &crafted), "{via:?}");
        let (journal, _) = w.base.repo.journal(&w.turid).unwrap();
        assert_eq!(journal.iter().filter(|e| e.id == w.note.id).count(), 1);
        w.honest_data_intact();
    }
}

#[test]
fn an_entry_filed_under_another_month_with_an_honest_entrys_name_keeps_both_in_the_day_report() {
    for via in BOTH {
        let w = World::new();
        // Another of Kari's phones documents her 08:00 visit at Turid's.
        let mut kari = TestNode::nurse(505, "N1");
        sync(&w.base.repo, &kari.repo);
        let day = today("08:00").day();
        let visit = w.base.repo.visits_on(day).unwrap();
        let visit = visit.iter().find(|v| v.patient == w.turid).unwrap();
        let (t, rng) = (today("08:40"), &mut kari.rng);
        let performed = kari
            .repo
            .transaction(|tx| tx.visit_performed(t, rng, &visit.id, today("08:02"), None, None))
            .unwrap();
        sync(&kari.repo, &w.base.repo);
        // Mons files an entry of the same name and kind in next month's journal, dated today:
        // the rules let it in (a new key of a new document, his own name on it), and both
        // months' documents now name that entry.
        let month = day.month();
        let next = omsyn_core::Month::from_index(month.to_index() + 1).unwrap();
        let elsewhere = DocumentId::Journal(w.turid.clone(), next);
        let key = format!("e/{}", performed.id);
        let claim = mons_entry(&w, &performed.id, performed.body.clone());
        w.mons_crafts(&elsewhere, &[Put::fresh(&key, &claim)], None);
        assert_eq!(w.deliver(&w.mons.repo, via), None, "{via:?}: kept");
        // The day report from the index shows what the documents show: Kari and Mons both
        // seen at Turid's this week, neither row in place of the other.
        let base = &w.base.repo;
        let mut gate = omsyn_tests::gate(base);
        let report = omsyn_core::report::day_report(base, day, None, &mut gate).unwrap();
        let reference =
            omsyn_core::report::day_report_from_documents(base, day, None, &mut gate).unwrap();
        assert_eq!(report, reference, "{via:?}");
        let seen = &report
            .per_patient
            .iter()
            .find(|p| p.patient == w.turid)
            .unwrap()
            .staff_this_week;
        assert_eq!(seen, &["N1", "N2"], "{via:?}");
        w.honest_data_intact();
    }
}

#[test]
fn an_explicit_access_recorded_under_ones_own_name_for_someone_else_is_refused() {
    for via in BOTH {
        let w = World::new();
        let record = DocumentId::PatientRecord(w.turid.clone());
        let accomplice = omsyn_core::NodeKey::generate(&mut StdRng::seed_from_u64(9)).id();
        let id = "e-00000000000000aa";
        // The key names Mons (as the rule checks); the value — what the need index grants —
        // names another staff member and device.
        let access = serde_json::json!({
            "id": id, "staff": "N7", "device": accomplice, "reason": "vikar",
            "at": today("11:00"), "until_ms": NOW_MS + 3_600_000,
        });
        let key = format!("access/N2/{id}");
        let crafted = w.mons_crafts(&record, &[Put::fresh(&key, &access.to_string())], None);
        refused(
            w.deliver(&w.mons.repo, via),
            "recorded only by the staff member it names",
        );
        assert!(!w.base_holds(&record, &crafted), "{via:?}");
    }
}

#[test]
fn marking_another_nurses_dose_entered_in_error_withdraws_nothing() {
    for via in BOTH {
        let w = World::new();
        // Mons's own app refuses it, saying why.
        let (t, rng) = (today("11:00"), &mut StdRng::seed_from_u64(7));
        let own_app = w.mons.repo.transaction(|tx| {
            tx.correct_entry(
                t,
                rng,
                &w.turid,
                &w.dose.id,
                omsyn_core::repo::Correction::EnteredInError("feil".into()),
            )
        });
        let Err(RepoError::Unauthorized(why)) = own_app else {
            panic!("{own_app:?}");
        };
        assert!(why.contains("only its author"), "{why}");
        // A patched app writes the mark anyway: it is a new entry, kept, and readable — and
        // withdraws nothing, so the dose still counts everywhere.
        let mark = EntryBody::EnteredInError {
            target: w.dose.id.clone(),
            reason: "feil".into(),
        };
        let id = EntryId::parse("e-00000000000000bb").unwrap();
        let key = format!("e/{id}");
        w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(&key, &mons_entry(&w, &id, mark))],
            None,
        );
        assert_eq!(w.deliver(&w.mons.repo, via), None, "{via:?}: kept");
        let journal = w.base_journal();
        assert!(journal.entry(&id).is_some(), "{via:?}: the mark is kept");
        assert!(
            journal.standing().iter().any(|e| e.id == w.dose.id),
            "{via:?}: the dose stands"
        );
        let fhir = omsyn_core::fhir::export(&w.base.repo, today("12:00"), Some(&w.turid)).unwrap();
        let bundle = serde_json::to_string(&fhir[0].1.bundle).unwrap();
        assert!(!bundle.contains("entered-in-error"), "{via:?}: {bundle}");
        w.honest_data_intact();
    }
}

#[test]
fn a_second_entry_under_anothers_id_lends_its_author_no_power_to_withdraw_hers() {
    for via in BOTH {
        let w = World::new();
        // Mons writes his own entry under Kari's dose's id, built on the journal before her dose
        // (Automerge keeps both) and dated before it (so it reads first), then marks "it"
        // entered in error: the mark is his to make for his copy, and for his copy only.
        let key = format!("e/{}", w.dose.id);
        let before = w.before_the_dose();
        let mut copy: serde_json::Value =
            serde_json::from_str(&mons_entry(&w, &w.dose.id, given(&w))).unwrap();
        copy["event_time"] = serde_json::to_value(today("08:01")).unwrap();
        w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(&key, &copy.to_string())],
            Some(before),
        );
        let mark_id = EntryId::parse("e-00000000000000bd").unwrap();
        let mark = EntryBody::EnteredInError {
            target: w.dose.id.clone(),
            reason: "feil".into(),
        };
        w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(
                &format!("e/{mark_id}"),
                &mons_entry(&w, &mark_id, mark),
            )],
            None,
        );
        assert_eq!(w.deliver(&w.mons.repo, via), None, "{via:?}: kept");
        let journal = w.base_journal();
        let named: Vec<_> = journal
            .entries
            .iter()
            .filter(|e| e.id == w.dose.id)
            .collect();
        assert_eq!(named.len(), 2, "{via:?}: both are kept");
        assert_eq!(
            named[0].author,
            w.mons.repo.author().expect("own author"),
            "{via:?}: his reads first"
        );
        let standing: Vec<_> = journal
            .standing()
            .into_iter()
            .filter(|e| e.id == w.dose.id)
            .collect();
        assert_eq!(
            standing,
            vec![&w.dose],
            "{via:?}: Kari's dose stands, his copy does not"
        );
        // The FHIR export says the same: his copy entered in error, her dose completed.
        let fhir = omsyn_core::fhir::export(&w.base.repo, today("12:00"), Some(&w.turid)).unwrap();
        let mut statuses: Vec<(&str, &str)> = fhir[0].1.bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["id"].as_str().unwrap().starts_with(w.dose.id.as_str()))
            .map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap()))
            .collect();
        statuses.sort_by_key(|(_, status)| *status);
        // Each copy named by its writer's device too: neither takes the id a record system holds.
        let by =
            |device: omsyn_core::NodeId| format!("{}-{}", w.dose.id, &device.to_string()[..16]);
        let (kari, mons) = (by(w.dose.author.device), by(w.mons.repo.id()));
        assert_eq!(
            statuses,
            [
                (kari.as_str(), "completed"),
                (mons.as_str(), "entered-in-error")
            ],
            "{via:?}"
        );
        assert_eq!(dangling(&fhir[0].1.bundle), Vec::<String>::new(), "{via:?}");
        w.honest_data_intact();
    }
}

/// The references in a FHIR Bundle (`Type/id`) to no resource in it.
fn dangling(bundle: &serde_json::Value) -> Vec<String> {
    fn references<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value.as_str()) {
                        ("reference", Some(r)) => out.push(r),
                        _ => references(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| references(i, out)),
            _ => {}
        }
    }
    let resources: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let held: std::collections::BTreeSet<String> = resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect();
    let mut found = Vec::new();
    references(bundle, &mut found);
    found
        .into_iter()
        .filter(|r| !held.contains(*r))
        .map(str::to_owned)
        .collect()
}

/// Kari's own correction of her entry `target`, from her app, at `hhmm`.
fn kari_corrects(w: &mut World, target: &EntryId, hhmm: &str, correction: Correction) -> Entry {
    let (t, rng) = (today(hhmm), &mut w.kari.rng);
    w.kari
        .repo
        .transaction(|tx| tx.correct_entry(t, rng, &w.turid, target, correction))
        .unwrap()
}

/// Kari's note's resource (a DocumentReference) in the base's FHIR export: its status and its
/// description, where a correction shows.
fn exported_note(w: &World) -> (String, String) {
    let fhir = omsyn_core::fhir::export(&w.base.repo, today("12:00"), Some(&w.turid)).unwrap();
    let entries = fhir[0].1.bundle["entry"].as_array().unwrap().clone();
    let resource = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["id"] == w.note.id.as_str())
        .unwrap();
    let text = |field: &str| resource[field].as_str().unwrap().to_owned();
    (text("status"), text("description"))
}

#[test]
fn a_correction_amends_an_entry_only_from_its_author_and_anothers_is_kept_as_a_comment() {
    let mut w = World::new();
    // Mons's app lets him correct a colleague's note: a journal entry of his, readable by all.
    let (t, rng) = (today("11:00"), &mut StdRng::seed_from_u64(9));
    let text = "Turid var sliten".to_owned();
    w.mons
        .repo
        .transaction(|tx| tx.correct_entry(t, rng, &w.turid, &w.note.id, Correction::Amend(text)))
        .unwrap();
    sync(&w.mons.repo, &w.base.repo);
    assert_eq!(
        exported_note(&w),
        ("current".into(), "Nurse N2 noted: Turid var sliten".into())
    );
    // Her own amends it.
    let mine = Correction::Amend("Turid i god form, litt sliten".into());
    let note = w.note.id.clone();
    kari_corrects(&mut w, &note, "11:30", mine);
    sync(&w.kari.repo, &w.base.repo);
    assert_eq!(
        exported_note(&w),
        (
            "current".into(),
            "corrected: Turid i god form, litt sliten".into()
        )
    );
}

#[test]
fn a_mark_its_author_withdrew_withdraws_nothing() {
    let mut w = World::new();
    let note = w.note.id.clone();
    let mark = kari_corrects(
        &mut w,
        &note,
        "11:00",
        Correction::EnteredInError("feil".into()),
    );
    sync(&w.kari.repo, &w.base.repo);
    let stands = |w: &World| {
        let (journal, _) = w.base.repo.journal(&w.turid).unwrap();
        let journal = omsyn_core::docs::journal::Journal {
            entries: journal,
            ..Default::default()
        };
        journal.standing().iter().any(|e| e.id == w.note.id)
    };
    assert!(!stands(&w), "withdrawn by its author");
    assert_eq!(exported_note(&w).0, "entered-in-error");
    // The mark was the mistake: she withdraws it, and the note stands again everywhere.
    let undo = Correction::EnteredInError("feil pasient".into());
    kari_corrects(&mut w, &mark.id, "11:05", undo);
    sync(&w.kari.repo, &w.base.repo);
    assert!(stands(&w), "its withdrawal withdrawn");
    assert_eq!(exported_note(&w).0, "current");
}

#[test]
fn a_copy_of_an_entry_filed_in_another_month_does_not_stop_its_author_withdrawing_hers() {
    let mut w = World::new();
    // Mons files an entry under Kari's dose's id in the month before: no integrity alert (it is
    // another document), and it comes first when her app looks for the entry by its id.
    let month = today("08:00").day().month();
    let earlier = omsyn_core::Month::from_index(month.to_index() - 1).unwrap();
    let other_month = DocumentId::Journal(w.turid.clone(), earlier);
    let key = format!("e/{}", w.dose.id);
    w.mons_crafts(
        &other_month,
        &[Put::fresh(&key, &mons_entry(&w, &w.dose.id, given(&w)))],
        None,
    );
    assert_eq!(w.deliver(&w.mons.repo, Via::Session), None, "kept");
    sync(&w.base.repo, &w.kari.repo);
    // Her mark goes beside her own dose, and withdraws it.
    let dose = w.dose.id.clone();
    let mark = kari_corrects(
        &mut w,
        &dose,
        "11:00",
        Correction::EnteredInError("feil".into()),
    );
    let journal = w
        .kari
        .repo
        .store()
        .with_doc(&w.journal_id(), omsyn_core::docs::journal::read)
        .unwrap()
        .unwrap();
    assert!(journal.entries.contains(&mark), "filed in her dose's month");
    assert!(!journal.standing().iter().any(|e| e.id == w.dose.id));
    // A second copy of his in her dose's month too: exported, every copy is a resource of its
    // own (his two told apart), and every reference finds its resource.
    let before = w.before_the_dose();
    w.mons_crafts(
        &w.journal_id(),
        &[Put::fresh(&key, &mons_entry(&w, &w.dose.id, given(&w)))],
        Some(before),
    );
    assert_eq!(w.deliver(&w.mons.repo, Via::Session), None, "kept");
    let fhir = omsyn_core::fhir::export(&w.base.repo, today("12:00"), Some(&w.turid)).unwrap();
    let bundle = &fhir[0].1.bundle;
    let copies: std::collections::BTreeSet<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .filter(|id| id.starts_with(w.dose.id.as_str()))
        .collect();
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert_eq!(dangling(bundle), Vec::<String>::new());
}

#[test]
fn a_dispenser_event_written_by_a_nurse_is_refused() {
    for via in BOTH {
        let w = World::new();
        let EntryBody::MedicationGiven { dose, .. } = &w.dose.body else {
            panic!("the dose is a dose");
        };
        // "Dose taken" from a dispenser counts as given, which only nurses record, and only the
        // home unit speaks for its devices.
        let event = serde_json::json!({
            "type": "device-event", "device": "Evondos E300", "event_id": "1",
            "event": {"kind": "dose-taken", "dose": dose},
        });
        let id = EntryId::parse("e-00000000000000cc").unwrap();
        let mut entry: serde_json::Value =
            serde_json::from_str(&mons_entry(&w, &id, given(&w))).unwrap();
        entry["body"] = event;
        let key = format!("e/{id}");
        let crafted = w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(&key, &entry.to_string())],
            None,
        );
        refused(
            w.deliver(&w.mons.repo, via),
            "only a home unit records its devices' events",
        );
        assert!(!w.base_holds(&w.journal_id(), &crafted), "{via:?}");
    }
}

#[test]
fn a_message_written_twice_closes_where_it_is_resolved_though_the_messages_do_not_change() {
    for via in BOTH {
        let mut w = World::new();
        let (t, rng) = (today("09:00"), &mut StdRng::seed_from_u64(8));
        let to = omsyn_core::docs::messages::Recipient::CareTeam;
        let sent = w
            .home
            .repo
            .send_message(
                t,
                rng,
                &w.turid,
                to,
                "Turid har vondt i ryggen",
                None,
                vec![],
            )
            .unwrap();
        sync(&w.home.repo, &w.base.repo);
        sync(&w.base.repo, &w.mons.repo);
        // Mons writes his own text under the home unit's message, built as if unseen.
        let doc = DocumentId::Messages(w.turid.clone(), t.day().month());
        let key = format!("m/{}", sent.id);
        let honest = craft::change_putting(&w.mons.repo, &doc, &key).unwrap();
        let before = craft::heads_without(&w.mons.repo, &doc, honest);
        let mut posing: serde_json::Value = serde_json::to_value(&sent).unwrap();
        posing["author"] = serde_json::to_value(w.mons.repo.author().expect("own author")).unwrap();
        posing["text"] = "Alt vel".into();
        posing["sent_at"] = serde_json::to_value(today("11:00")).unwrap();
        w.mons_crafts(&doc, &[Put::fresh(&key, &posing.to_string())], Some(before));
        assert_eq!(w.deliver(&w.mons.repo, via), None, "{via:?}: kept");
        let written_twice = |w: &World| -> Vec<_> {
            w.base
                .repo
                .conflicts(Some(&w.turid))
                .unwrap()
                .into_iter()
                .filter(|c| matches!(&c.kind, ConflictKind::EntryWrittenTwice { key: k, .. } if *k == key))
                .collect()
        };
        let alert = written_twice(&w).pop().expect("an integrity alert");
        // The base resolves it: the resolution is a journal entry; the messages do not change.
        let (t, rng) = (today("12:00"), &mut w.base.rng);
        w.base
            .repo
            .resolve_conflict(t, rng, &alert.id, "Mons' tekst er ikke hjemmets", None)
            .unwrap();
        assert!(
            written_twice(&w).is_empty(),
            "{via:?}: closed where it was resolved"
        );
    }
}

#[test]
fn overwriting_an_entry_with_its_predecessor_named_is_refused() {
    for via in BOTH {
        let w = World::new();
        let key = format!("e/{}", w.note.id);
        let pred = craft::value_op(&w.mons.repo, &w.journal_id(), &key).unwrap();
        let put = Put {
            key: key.clone(),
            value: mons_entry(
                &w,
                &w.note.id,
                EntryBody::Note {
                    visit: None,
                    text: "endret".into(),
                },
            ),
            pred: vec![pred],
        };
        let crafted = w.mons_crafts(&w.journal_id(), &[put], None);
        refused(w.deliver(&w.mons.repo, via), "already exists");
        assert!(!w.base_holds(&w.journal_id(), &crafted));
        w.honest_data_intact();
    }
}

/// Mons reads Turid's record three times, and his log reaches the base.
fn mons_reads_and_syncs(w: &World) -> DocumentId {
    for i in 0..3 {
        let event = AccessEvent::new(
            Some(w.turid.clone()),
            AuditAction::Read,
            format!("view {i}"),
            "care team".into(),
        );
        w.mons.repo.log_access(today("09:00"), event).unwrap();
    }
    sync(&w.mons.repo, &w.base.repo);
    DocumentId::Audit(w.mons.repo.id(), today("09:00").day().month())
}

#[test]
fn re_writing_ones_own_access_log_entry_after_the_base_held_it_is_refused() {
    for via in BOTH {
        let w = World::new();
        let log = mons_reads_and_syncs(&w);
        let (entries, _) = w
            .mons
            .repo
            .store()
            .with_doc(&log, audit::read)
            .unwrap()
            .unwrap();
        let mut rewritten = entries[1].clone();
        rewritten.entry.what = "nothing to see".into();
        let put = Put::fresh(
            "a/000000000001",
            &serde_json::to_string(&rewritten).unwrap(),
        );
        let crafted = w.mons_crafts(&log, &[put], None);
        refused(w.deliver(&w.mons.repo, via), "already exists");
        assert!(!w.base_holds(&log, &crafted));
        let base_view = w
            .base
            .repo
            .store()
            .with_doc(&log, audit::read)
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(
            base_view[1], entries[1],
            "{via:?}: the base keeps what it received"
        );
    }
}

#[test]
fn a_device_restored_from_an_old_copy_cannot_rewrite_its_log_and_audit_verify_says_so() {
    for via in BOTH {
        let w = World::new();
        mons_reads_and_syncs(&w);
        // The same phone (same key, same certificate) with its data directory restored from
        // before those reads: its log starts again from entry 0.
        let restored = TestNode::nurse(503, "N2");
        let event = AccessEvent::new(None, AuditAction::Read, "work list".into(), "work".into());
        restored.repo.log_access(today("10:00"), event).unwrap();
        refused(w.deliver(&restored.repo, via), "restored from an old copy");
        let reports = w.base.repo.verify_audit().unwrap();
        let mons = reports.iter().find(|r| r.node == w.mons.repo.id()).unwrap();
        assert!(
            mons.problems
                .iter()
                .any(|p| p.contains("restored from an old copy")),
            "{via:?}: {:?}",
            mons.problems
        );
        // What the base received stays: three reads of Turid's record.
        let log = w.base.repo.audit_entries(Some(&w.turid)).unwrap();
        let reads = log
            .iter()
            .filter(|e| e.author.device == w.mons.repo.id() && e.action == AuditAction::Read);
        assert_eq!(reads.count(), 3);
    }
}

#[test]
fn a_home_unit_writing_another_patients_journal_is_refused() {
    for via in BOTH {
        let w = World::new();
        let doc = DocumentId::Journal(w.egil.clone(), today("08:00").day().month());
        let obs = Entry {
            id: EntryId::random(&mut StdRng::seed_from_u64(9)),
            author: w.home.repo.author().expect("own author"),
            event_time: today("10:00"),
            entered_at: today("10:00"),
            body: EntryBody::Observation {
                visit: None,
                kind: "pulse".into(),
                value: "70".into(),
                unit: None,
                device_reading: None,
            },
        };
        let crafted = craft::change(
            &w.home.repo,
            &doc,
            &w.home.repo,
            &[Put::fresh(
                &format!("e/{}", obs.id),
                &serde_json::to_string(&obs).unwrap(),
            )],
            Some(vec![]),
            today("10:00"),
        );
        craft::plant(&w.home.repo, &doc, &crafted);
        refused(w.deliver(&w.home.repo, via), "its own patient");
        assert!(!w.base_holds(&doc, &crafted));
    }
}

#[test]
fn a_nurse_changing_what_decides_need_is_refused() {
    let changes: [(&str, &str); 4] = [
        // The same zone: the change itself is what the base must refuse.
        ("field/zone", "Sone 1"),
        ("team/N2", "{}"),
        ("block/e-1111111111111111", "{}"),
        ("med/m-1111111111111111", "{}"),
    ];
    for via in BOTH {
        for (key, value) in changes {
            let w = World::new();
            let record = DocumentId::PatientRecord(w.turid.clone());
            let crafted = w.mons_crafts(&record, &[Put::fresh(key, value)], None);
            let reason = w.deliver(&w.mons.repo, via);
            assert!(
                reason.as_deref().is_some_and(|r| r.contains("may not")),
                "{key} via {via:?}: {reason:?}"
            );
            assert!(!w.base_holds(&record, &crafted));
            assert_eq!(
                w.base
                    .repo
                    .record(&w.turid)
                    .unwrap()
                    .field(PatientField::Zone),
                Some("Sone 1")
            );
        }
    }
}

#[test]
fn a_year_long_explicit_access_lasts_no_longer_than_the_organisations_cap_at_the_receiver() {
    for via in BOTH {
        let w = World::new();
        let record = DocumentId::PatientRecord(w.egil.clone());
        let year_ms = 365 * 24 * 3600 * 1000;
        // Dated ahead too: the base clamps the start to its own clock.
        let access = serde_json::json!({
            "id": "e-2222222222222222", "staff": "N2", "device": w.mons.repo.id(),
            "reason": "nysgjerrig", "at": Timestamp::from_unix_millis(NOW_MS + 30 * 24 * 3600 * 1000).unwrap(),
            "until_ms": NOW_MS + year_ms,
        });
        // Mons holds no copy of Egil's record: his app makes one holding only the access.
        let put = Put::fresh("access/N2/e-2222222222222222", &access.to_string());
        let crafted = craft::change(
            &w.mons.repo,
            &record,
            &w.mons.repo,
            &[put],
            None,
            today("11:00"),
        );
        craft::plant(&w.mons.repo, &record, &crafted);
        assert_eq!(
            w.deliver(&w.mons.repo, via),
            None,
            "{via:?}: an explicit access is his to ask"
        );
        assert!(w.base_holds(&record, &crafted), "{via:?}");
        let until: Vec<i64> = w
            .base
            .repo
            .store()
            .relations(&w.egil, "explicit:N2:")
            .unwrap()
            .iter()
            .map(|r| r.value)
            .collect();
        assert!(!until.is_empty());
        assert!(
            until
                .iter()
                .all(|u| *u <= NOW_MS + omsyn_core::trust::DEFAULT_EXPLICIT_ACCESS_MAX_MS),
            "{until:?}"
        );
    }
}

#[test]
fn a_compressed_change_bomb_is_refused_before_it_is_inflated() {
    let w = World::new();
    // 1 MiB of zeros deflates to about a kilobyte; a change chunk of type 2 (compressed).
    let mut bomb = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let payload = vec![0u8; 2048];
    bomb.push(payload.len() as u8 & 0x7f | 0x80);
    bomb.push((payload.len() >> 7) as u8);
    bomb.extend_from_slice(&payload);
    let reason = omsyn_core::pipeline::vouch(bomb.clone(), [0; 64]).unwrap_err();
    assert!(reason.contains("compressed"), "{reason}");
    // Through an export file.
    let file = omsyn_core::exchange::encode(&omsyn_core::exchange::Exchange {
        docs: vec![(
            w.journal_id(),
            vec![omsyn_core::sync::wire::SignedChange {
                bytes: bomb,
                signature: [0; 64],
            }],
        )],
        certificates: vec![],
        revocations: vec![],
    });
    let err = w.base.repo.import(today("12:00"), &file).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");
    w.honest_data_intact();
}

#[test]
fn changes_dated_beyond_the_bounds_are_refused() {
    for via in BOTH {
        let w = World::new();
        let id = EntryId::random(&mut StdRng::seed_from_u64(77));
        let entry = Entry {
            id: id.clone(),
            author: w.mons.repo.author().expect("own author"),
            event_time: Timestamp::parse("9000-01-01T08:00:00+01:00").unwrap(),
            entered_at: today("11:00"),
            body: EntryBody::Note {
                visit: None,
                text: "fra fremtiden".into(),
            },
        };
        let crafted = w.mons_crafts(
            &w.journal_id(),
            &[Put::fresh(
                &format!("e/{id}"),
                &serde_json::to_string(&entry).unwrap(),
            )],
            None,
        );
        refused(w.deliver(&w.mons.repo, via), "outside");
        assert!(!w.base_holds(&w.journal_id(), &crafted));
    }
}

#[test]
fn the_dose_given_twice_conflict_survives_an_insiders_attempt_to_hide_it() {
    let World {
        base,
        mut mons,
        turid,
        dose,
        ..
    } = World::new();
    let journal = DocumentId::Journal(turid.clone(), today("08:00").day().month());
    // Mons gives the same dose honestly: a conflict.
    let EntryBody::MedicationGiven { dose: given, .. } = &dose.body else {
        unreachable!("Kari's entry is a dose")
    };
    let DoseRef {
        medication, slot, ..
    } = given.clone();
    let (t, rng) = (today("08:30"), &mut mons.rng);
    mons.repo
        .record_dose(
            t,
            rng,
            &turid,
            &medication,
            &slot,
            today("08:25"),
            None,
            None,
        )
        .unwrap();
    sync(&mons.repo, &base.repo);
    let before = base.repo.conflicts(Some(&turid)).unwrap();
    assert!(
        before
            .iter()
            .any(|c| matches!(c.kind, ConflictKind::DoseGivenTwice { .. }))
    );
    // Now he re-creates Kari's dose key as a note, seen: refused; the conflict stands.
    let fake = serde_json::to_string(&Entry {
        id: dose.id.clone(),
        author: mons.repo.author().expect("own author"),
        event_time: today("08:06"),
        entered_at: today("11:00"),
        body: EntryBody::Note {
            visit: None,
            text: "ingenting".into(),
        },
    })
    .unwrap();
    let put = Put::fresh(&format!("e/{}", dose.id), &fake);
    let crafted = craft::change(
        &mons.repo,
        &journal,
        &mons.repo,
        &[put],
        None,
        today("11:00"),
    );
    craft::plant(&mons.repo, &journal, &crafted);
    sync_allowing_refusal(&mons.repo, &base.repo);
    assert_eq!(base.repo.conflicts(Some(&turid)).unwrap(), before);
}

fn sync_allowing_refusal(a: &Repo, b: &Repo) {
    let mut link = Link::open(a, b);
    let (pa, pb) = (
        a.need_policy().expect("own grant"),
        b.need_policy().expect("own grant"),
    );
    link.exchange((a, &pa), (b, &pb), NOW_MS);
}

#[test]
fn a_base_asked_by_a_home_unit_for_another_patient_transmits_nothing_of_that_patient() {
    let w = World::new();
    let (home, base) = (&w.home.repo, &w.base.repo);
    let (ph, pb) = (
        home.need_policy().expect("own grant"),
        base.need_policy().expect("own grant"),
    );
    let mut link = Link::open(home, base);
    link.exchange((home, &ph), (base, &pb), NOW_MS);
    // A patched tablet asks for Egil's documents, which it has no need for.
    let month = today("08:00").day().month();
    let asked = [
        DocumentId::PatientRecord(w.egil.clone()),
        DocumentId::Journal(w.egil.clone(), month),
        DocumentId::VisitPlan(w.egil.clone(), month),
    ];
    for doc in &asked {
        let frame = omsyn_core::sync::wire::encode(&omsyn_core::sync::wire::Message::Need {
            doc: doc.clone(),
            heads: vec![],
        });
        link.b
            .handle_bytes(base.store(), &pb, NOW_MS, &frame)
            .unwrap();
    }
    // Judged by what the base sent, not by what the tablet kept.
    let mut frames = omsyn_core::sync::wire::FrameDecoder::default();
    while let Some(bytes) = link.b.poll_transmit() {
        frames.push(&bytes).unwrap();
    }
    let mut sent = 0;
    while let Some(frame) = frames.next_frame() {
        sent += 1;
        let message = omsyn_core::sync::wire::decode(&frame).unwrap();
        use omsyn_core::sync::wire::Message::{Changes, Have, Offer};
        let about_egil = match &message {
            Changes { doc, .. } | Offer { doc, .. } | Have { doc, .. } => {
                doc.patient() == Some(&w.egil)
            }
            _ => false,
        };
        assert!(!about_egil, "the base sent {message:?}");
    }
    assert!(sent > 0, "the base answered the requests");
}

#[test]
fn a_base_anchors_every_device_log_it_receives() {
    let w = World::new();
    let log = mons_reads_and_syncs(&w);
    let (held, _) = w
        .mons
        .repo
        .store()
        .with_doc(&log, audit::read)
        .unwrap()
        .unwrap();
    let head = held.iter().map(|e| e.entry.seq).max().unwrap();
    let receipts: Vec<_> = w
        .base
        .repo
        .audit_entries(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::Receipt)
        .filter_map(|e| e.anchor)
        .filter(|a| a.node == w.mons.repo.id())
        .collect();
    let last = receipts.last().expect("a receipt of Mons's log");
    assert_eq!(last.seq, head, "the receipt names the last entry received");
    let entry = held.iter().find(|e| e.entry.seq == head).unwrap();
    assert_eq!(last.hash, entry.hash);
    assert!(
        w.base
            .repo
            .verify_audit()
            .unwrap()
            .iter()
            .all(|r| r.problems.is_empty())
    );
}

#[test]
fn a_nurses_write_to_a_patient_she_has_no_need_for_is_kept_and_flagged_at_the_base() {
    for via in BOTH {
        let w = World::new();
        // Egil is on Kari's list only: Mons has no need for him, and writes a note all the same.
        let doc = DocumentId::Journal(w.egil.clone(), today("08:00").day().month());
        let id = EntryId::random(&mut StdRng::seed_from_u64(11));
        let note = EntryBody::Note {
            visit: None,
            text: "Skrevet uten tjenstlig behov".into(),
        };
        let crafted = craft::change(
            &w.mons.repo,
            &doc,
            &w.mons.repo,
            &[Put::fresh(&format!("e/{id}"), &mons_entry(&w, &id, note))],
            Some(vec![]),
            today("11:00"),
        );
        craft::plant(&w.mons.repo, &doc, &crafted);
        assert_eq!(
            w.deliver(&w.mons.repo, via),
            None,
            "{via:?}: documentation is kept"
        );
        assert!(w.base_holds(&doc, &crafted), "{via:?}");
        // ... and the base's own log says who wrote to whom without a need, for review.
        let flagged = omsyn_tests::writes_without_need(&w.base.repo, &w.egil);
        assert_eq!(flagged.len(), 1, "{via:?}: {flagged:?}");
        assert!(flagged[0].flagged);
        assert!(
            flagged[0].what.contains(&w.mons.repo.id().short()),
            "{}",
            flagged[0].what
        );
    }
}

/// A receiver that holds nothing of a document judges a message's changes among themselves
/// (see `pipeline::Listed`): a key the message writes twice must still be found, whichever
/// way the two changes came.
#[test]
fn an_entry_written_twice_in_the_first_message_of_a_new_document_is_refused() {
    for via in BOTH {
        let w = World::new();
        // Last month's journal: nobody has written it, so the base holds nothing of it.
        let month = today("08:00").day().month();
        let last_month = omsyn_core::time::Month::from_index(month.to_index() - 1).unwrap();
        let doc = DocumentId::Journal(w.turid.clone(), last_month);
        let id = EntryId::random(&mut StdRng::seed_from_u64(21));
        let key = format!("e/{id}");
        let note = |text: &str| {
            let body = EntryBody::Note {
                visit: None,
                text: text.into(),
            };
            mons_entry(&w, &id, body)
        };
        let first = w.mons_crafts(&doc, &[Put::fresh(&key, &note("første"))], None);
        // Built on the first, which holds the key, and claiming to overwrite nothing.
        let second = w.mons_crafts(&doc, &[Put::fresh(&key, &note("andre"))], None);
        refused(
            w.deliver(&w.mons.repo, via),
            "already exists in what this change was built on",
        );
        assert!(
            !w.base_holds(&doc, &first),
            "{via:?}: nothing of the message"
        );
        assert!(!w.base_holds(&doc, &second), "{via:?}");
        w.honest_data_intact();
    }
}
