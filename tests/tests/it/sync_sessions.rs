//! The sync protocol's state machine, two nodes back to back in memory.

use std::sync::{Arc, Mutex};

use omsyn_core::DocumentId;
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::store::{Committed, PeerRecord};
use omsyn_core::sync::wire::{self, Message};
use omsyn_core::sync::{Session, ShareAll, SyncError, SyncEvent};
use omsyn_tests::{Link, NOW_MS, TestNode, at, snapshot};

fn base_with_patients(n: usize) -> (TestNode, Vec<PatientId>) {
    let mut base = TestNode::base(31);
    let rng = &mut base.rng;
    let patients = base
        .repo
        .transaction(|tx| {
            (0..n)
                .map(|i| {
                    let p =
                        tx.add_patient(at("07:00"), rng, &[(PatientField::Name, format!("P{i}"))])?;
                    tx.plan_visit(
                        at("07:00"),
                        rng,
                        &NewVisit {
                            patient: p.clone(),
                            start: at("09:00"),
                            end: at("09:30"),
                            kind: VisitKind::Physical,
                            tiltak: vec![],
                            staff: vec![StaffId::parse("N1").unwrap()],
                        },
                    )?;
                    Ok(p)
                })
                .collect::<Result<Vec<_>, omsyn_core::RepoError>>()
        })
        .unwrap();
    (base, patients)
}

#[test]
fn first_contact_copies_every_document_and_both_report_caught_up() {
    let (base, _) = base_with_patients(5);
    let nurse = TestNode::nurse(32, "N1");
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
    assert!(link.a.is_caught_up() && link.b.is_caught_up());
    let events: Vec<_> = std::iter::from_fn(|| link.b.poll_event()).collect();
    assert!(events.contains(&SyncEvent::CaughtUp));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, SyncEvent::DocumentChanged(d) if d.patient().is_some()))
            .count(),
        10,
        "five records and five plans arrived"
    );
}

#[test]
fn concurrent_offline_edits_converge_on_reconnect_with_small_overhead() {
    let (mut base, patients) = base_with_patients(200);
    let mut nurse = TestNode::nurse(33, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);

    // Offline: each side changes 5 patients.
    for p in &patients[..5] {
        base.repo
            .set_patient_field(at("10:00"), p, PatientField::Phone, "900 00 000")
            .unwrap();
    }
    for p in &patients[5..10] {
        nurse
            .repo
            .add_note(
                at("10:00"),
                &mut nurse.rng,
                p,
                None,
                at("10:00"),
                "dokumentert offline",
            )
            .unwrap();
    }
    let _ = &mut base.rng;
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
    let (a, b) = (link.a.stats(), link.b.stats());
    assert_eq!(a.docs_sent, 5);
    assert_eq!(b.docs_sent, 5);
    let (total, changes) = (
        a.bytes_sent + b.bytes_sent,
        a.change_bytes_sent + b.change_bytes_sent,
    );
    // Trust's fixed costs: the two Hellos carry certificates (~420 bytes each) and every change
    // its author's signature (64 bytes, 10 changes). Reconciliation itself stays as small as before
    // (and each push is compressed, so the total may be below the changes' own bytes).
    let trust = 2 * 450 + 10 * 64;
    assert!(
        total < changes + 600 + trust,
        "{total} bytes for {changes} bytes of changes, 10 changed of 400 documents"
    );
    assert_eq!(a.rounds_to_catch_up, 1, "one round trip");
}

#[test]
fn a_live_change_is_pushed_without_a_new_session() {
    let (mut base, patients) = base_with_patients(3);
    let nurse = TestNode::nurse(34, "N1");
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    base.repo
        .add_flag(at("11:00"), &mut base.rng, &patients[0], "fall-risk", None)
        .unwrap();
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    let rec = nurse.repo.record(&patients[0]).unwrap();
    assert_eq!(rec.flags.len(), 1);
}

#[test]
fn a_peer_speaking_another_version_is_told_so_and_the_session_ends() {
    let (base, _) = base_with_patients(1);
    let other = TestNode::nurse(36, "N1");
    let mut session = Session::new(other.repo.id(), base.repo.store());
    let mut hello = wire::encode(&Message::Hello {
        version: wire::PROTOCOL_VERSION,
        epoch: [0; 16],
        certificate: Vec::new(),
    });
    let (ours, theirs) = (wire::PROTOCOL_VERSION, wire::PROTOCOL_VERSION + 1);
    hello[5] = theirs as u8; // the version's little-endian low byte
    let err = session
        .handle_bytes(base.repo.store(), &ShareAll, NOW_MS, &hello)
        .unwrap_err();
    assert!(
        matches!(err, SyncError::VersionMismatch { ours: o, theirs: t } if o == ours && t == theirs),
        "{err}"
    );
    let mut reply = Vec::new();
    while let Some(b) = session.poll_transmit() {
        reply.extend(b);
    }
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains(&format!("version {theirs}")) && text.contains(&format!("version {ours}")),
        "{text}"
    );
    assert!(session.is_closed());
}

#[test]
fn garbage_and_oversized_frames_end_the_session_and_harm_nothing() {
    let (base, _) = base_with_patients(2);
    let before = snapshot(&base.repo);
    let other = TestNode::nurse(37, "N1");
    let cases: Vec<Vec<u8>> = vec![
        vec![0xff; 64],
        {
            let mut f = (u32::MAX).to_le_bytes().to_vec();
            f.push(1);
            f
        },
        wire::encode(&Message::Ack { round: 0 }),
        {
            let mut hello = wire::encode(&Message::Hello {
                version: wire::PROTOCOL_VERSION,
                epoch: [1; 16],
                certificate: Vec::new(),
            });
            let mut bad = vec![5, 0, 0, 0, 2, 9, 9, 9, 9];
            hello.append(&mut bad);
            hello
        },
    ];
    for bytes in cases {
        let mut session = Session::new(other.repo.id(), base.repo.store());
        let result = session.handle_bytes(base.repo.store(), &ShareAll, NOW_MS, &bytes);
        assert!(result.is_err(), "accepted {bytes:?}");
        assert!(session.is_closed());
        assert_eq!(snapshot(&base.repo), before);
    }
}

/// Adds a journal note of text that does not compress (several KB once saved, well above what is
/// pushed whole to a stranger); returns its length.
fn add_large_note(base: &mut TestNode, patient: &PatientId) -> usize {
    let long: String = (0..900u32)
        .map(|i| format!("{:04x} ", i.wrapping_mul(2_654_435_761) >> 16))
        .collect();
    base.repo
        .add_note(
            at("08:00"),
            &mut base.rng,
            patient,
            None,
            at("08:00"),
            &long,
        )
        .unwrap();
    long.len()
}

#[test]
fn a_new_peer_gets_every_change_of_journals_stored_as_a_snapshot_and_changes_after_it() {
    //! A device with nothing asks for a large journal another node wrote, and is sent whole a
    //! large one the base wrote alone: the base, with neither loaded, sends the changes in each
    //! snapshot and those stored after it as they are stored, and the newcomer ends with the
    //! base's journals.
    let (mut base, patients) = base_with_patients(2);
    let mut writer = TestNode::nurse(45, "N1");
    let journals: Vec<DocumentId> = patients
        .iter()
        .map(|p| DocumentId::Journal(p.clone(), at("08:00").day().month()))
        .collect();
    let hand_in = |writer: &TestNode| {
        Link::open(&base.repo, &writer.repo).pump(&base.repo, &writer.repo, &ShareAll)
    };
    hand_in(&writer);
    // Enough in one session (over 64 KiB) to be stored at the base as a snapshot...
    for _ in 0..16 {
        add_large_note(&mut writer, &patients[0]);
    }
    hand_in(&writer);
    // ...and three sessions of one note each, stored after it.
    for _ in 0..3 {
        add_large_note(&mut writer, &patients[0]);
        hand_in(&writer);
    }
    for _ in 0..19 {
        add_large_note(&mut base, &patients[1]);
    }
    base.repo.store().clear_cache();
    let newcomer = TestNode::nurse(46, "N1");
    let mut link = Link::open(&base.repo, &newcomer.repo);
    link.pump(&base.repo, &newcomer.repo, &ShareAll);
    assert!(link.a.is_caught_up() && link.b.is_caught_up());
    let held = snapshot(&newcomer.repo);
    assert_eq!(held, snapshot(&base.repo));
    for journal in [&journals[0], &journals[1]] {
        assert!(held.iter().any(|(doc, _)| *doc == journal.to_string()));
    }
}

/// A nurse and the home unit of `patient`, who have never met each other.
fn strangers(patient: &PatientId) -> (TestNode, TestNode) {
    (TestNode::nurse(38, "N1"), TestNode::home_unit(39, patient))
}

#[test]
fn first_contact_between_two_holders_of_a_large_document_offers_instead_of_resending() {
    let (mut base, patients) = base_with_patients(1);
    let journal_bytes = add_large_note(&mut base, &patients[0]);
    let (nurse, home) = strangers(&patients[0]);
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    // The journal grows after the nurse left; the home unit gets the newer version.
    base.repo
        .add_note(
            at("09:00"),
            &mut base.rng,
            &patients[0],
            None,
            at("09:00"),
            "senere notat",
        )
        .unwrap();
    Link::open(&base.repo, &home.repo).pump(&base.repo, &home.repo, &ShareAll);
    // Both hold the journal, the home unit a newer one.
    let mut link = Link::open(&nurse.repo, &home.repo);
    link.pump(&nurse.repo, &home.repo, &ShareAll);
    let a = link.a.stats();
    // Small documents (the record, the plan) go whole — cheaper than a round trip; the journal is
    // offered by its heads, and the answer "have" means it is never sent.
    assert!(
        a.change_bytes_sent < journal_bytes as u64,
        "the nurse resent the large journal the home unit already had: {a:?}"
    );
    assert!(link.a.is_caught_up() && link.b.is_caught_up());
    assert_eq!(snapshot(&nurse.repo), snapshot(&home.repo));
}

#[test]
fn two_strangers_whose_copies_of_a_large_document_diverged_converge() {
    let (mut base, patients) = base_with_patients(1);
    add_large_note(&mut base, &patients[0]);
    let (mut nurse, mut home) = strangers(&patients[0]);
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    Link::open(&base.repo, &home.repo).pump(&base.repo, &home.repo, &ShareAll);
    nurse
        .repo
        .add_note(
            at("10:00"),
            &mut nurse.rng,
            &patients[0],
            None,
            at("10:00"),
            "fra sykepleier",
        )
        .unwrap();
    home.repo
        .observe(
            at("10:05"),
            &mut home.rng,
            &patients[0],
            None,
            at("10:05"),
            "spo2",
            "96",
            Some("%"),
        )
        .unwrap();
    let mut link = Link::open(&nurse.repo, &home.repo);
    link.pump(&nurse.repo, &home.repo, &ShareAll);
    assert_eq!(snapshot(&nurse.repo), snapshot(&home.repo));
    assert!(link.a.is_caught_up() && link.b.is_caught_up());
}

/// Delivers what both sides queued at the same moment (one flight each way), again and again,
/// until both are caught up; returns how many flights that took.
fn flights_until_caught_up(a: (&mut Session, &TestNode), b: (&mut Session, &TestNode)) -> usize {
    let ((sa, na), (sb, nb)) = (a, b);
    for flight in 1..=10 {
        let from_a: Vec<Vec<u8>> = std::iter::from_fn(|| sa.poll_transmit()).collect();
        let from_b: Vec<Vec<u8>> = std::iter::from_fn(|| sb.poll_transmit()).collect();
        for bytes in from_a {
            sb.handle_bytes(nb.repo.store(), &ShareAll, NOW_MS, &bytes)
                .unwrap();
        }
        for bytes in from_b {
            sa.handle_bytes(na.repo.store(), &ShareAll, NOW_MS, &bytes)
                .unwrap();
        }
        if sa.is_caught_up() && sb.is_caught_up() {
            return flight;
        }
    }
    panic!("not caught up after 10 flights each way");
}

/// A base and a nurse who synced before; then each documents offline. Returns a reconnect's
/// flights each way until both are caught up, with or without the push sent with the Hello.
fn reconnect_flights(early: bool) -> usize {
    let (base, patients) = base_with_patients(20);
    let mut nurse = TestNode::nurse(40, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    let t = at("10:00");
    for (i, p) in patients.iter().take(3).enumerate() {
        let text = format!("notat {i}");
        nurse
            .repo
            .add_note(t, &mut nurse.rng, p, None, t, &text)
            .unwrap();
        base.repo
            .set_patient_field(t, p, PatientField::Phone, "900")
            .unwrap();
    }
    let mut a = Session::new(nurse.repo.id(), base.repo.store());
    let mut b = Session::new(base.repo.id(), nurse.repo.store());
    if early {
        a.push_early(base.repo.store(), &ShareAll, NOW_MS).unwrap();
        b.push_early(nurse.repo.store(), &ShareAll, NOW_MS).unwrap();
    }
    let flights = flights_until_caught_up((&mut a, &base), (&mut b, &nurse));
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
    flights
}

#[test]
fn a_reconnect_with_a_peer_met_before_takes_one_round_trip_hello_included() {
    // Each side's changes travel with its Hello; the second flight acknowledges them.
    assert_eq!(reconnect_flights(true), 2);
    // Without: Hellos, then pushes, then acknowledgements.
    assert_eq!(reconnect_flights(false), 3);
}

#[test]
fn a_first_sync_broken_off_resumes_without_sending_again_what_was_acknowledged() {
    let (mut base, patients) = base_with_patients(80);
    for p in &patients {
        add_large_note(&mut base, p);
    }
    // What a whole first sync sends, to another new phone.
    let other = TestNode::nurse(42, "N1");
    let mut whole = Link::open(&base.repo, &other.repo);
    whole.pump(&base.repo, &other.repo, &ShareAll);
    let total = whole.a.stats().change_bytes_sent as usize;
    let nurse = TestNode::nurse(41, "N1");
    let mut a = Session::new(nurse.repo.id(), base.repo.store());
    let mut b = Session::new(base.repo.id(), nurse.repo.store());
    let (bs, ns) = (base.repo.store(), nurse.repo.store());
    // Flights until the base sends the journals the nurse asked for; then the link breaks right
    // after the nurse acknowledged the first part of them. (A flight arrives as one read, as it
    // does from a QUIC stream; the journals frame by frame, to break off between parts.)
    'flights: for _ in 0..10 {
        let from_a: Vec<Vec<u8>> = std::iter::from_fn(|| a.poll_transmit()).collect();
        let from_b: Vec<u8> = std::iter::from_fn(|| b.poll_transmit()).flatten().collect();
        // The journals come in parts, each a frame (a compressed batch) of its own.
        if from_a.len() > 1 {
            for bytes in &from_a {
                b.handle_bytes(ns, &ShareAll, NOW_MS, bytes).unwrap();
                if let Some(ack) = b.poll_transmit() {
                    a.handle_bytes(bs, &ShareAll, NOW_MS, &ack).unwrap();
                    break 'flights;
                }
            }
        }
        b.handle_bytes(ns, &ShareAll, NOW_MS, &from_a.concat())
            .unwrap();
        if !from_b.is_empty() {
            a.handle_bytes(bs, &ShareAll, NOW_MS, &from_b).unwrap();
        }
    }
    assert!(!b.is_caught_up(), "the transfer was broken off");
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
    let resent = link.a.stats().change_bytes_sent as usize;
    // The first part holds at least 128 KiB of changes: none of it is sent again.
    assert!(
        resent + 128 * 1024 <= total,
        "{resent} bytes of {total} went in the second session"
    );
}

/// Every frame `session` has queued, as one read.
fn flight(session: &mut Session) -> Vec<u8> {
    std::iter::from_fn(|| session.poll_transmit())
        .flatten()
        .collect()
}

/// A base of 80 patients with large notes and an empty nurse, in paced sessions: a first sync
/// that goes a part at a time.
struct PacedFirstSync {
    base: TestNode,
    patients: Vec<PatientId>,
    nurse: TestNode,
    /// The base's session.
    a: Session,
    /// The nurse's session.
    b: Session,
}

impl PacedFirstSync {
    fn new(nurse_seed: u64) -> Self {
        let (mut base, patients) = base_with_patients(80);
        for p in &patients {
            add_large_note(&mut base, p);
        }
        let nurse = TestNode::nurse(nurse_seed, "N1");
        let mut a = Session::new(nurse.repo.id(), base.repo.store());
        let mut b = Session::new(base.repo.id(), nurse.repo.store());
        a.pace();
        b.pace();
        PacedFirstSync {
            base,
            patients,
            nurse,
            a,
            b,
        }
    }

    /// Hands each side's queued frames to the other; whether either had any.
    fn exchange(&mut self) -> bool {
        let (bs, ns) = (self.base.repo.store(), self.nurse.repo.store());
        let from_a = flight(&mut self.a);
        if !from_a.is_empty() {
            self.b.handle_bytes(ns, &ShareAll, NOW_MS, &from_a).unwrap();
        }
        let from_b = flight(&mut self.b);
        if !from_b.is_empty() {
            self.a.handle_bytes(bs, &ShareAll, NOW_MS, &from_b).unwrap();
        }
        !from_a.is_empty() || !from_b.is_empty()
    }

    /// Lets each side build the next part of a round under way.
    fn push_more(&mut self) {
        let (bs, ns) = (self.base.repo.store(), self.nurse.repo.store());
        self.a.push_more(bs, &ShareAll, NOW_MS).unwrap();
        self.b.push_more(ns, &ShareAll, NOW_MS).unwrap();
    }

    /// Once part of the round went: a note in the journal of each of the first `n` patients at
    /// the base, told to its session (the commit joins the round).
    fn note_mid_round(&mut self, n: usize) {
        assert!(self.a.has_more_to_push(), "the base's push went whole");
        let t = at("11:00");
        for p in &self.patients[..n] {
            self.base
                .repo
                .add_note(t, &mut self.base.rng, p, None, t, "Skrevet underveis")
                .unwrap();
        }
        let bs = self.base.repo.store();
        self.a.handle_local_change(bs, &ShareAll, NOW_MS).unwrap();
    }
}

#[test]
fn a_paced_first_sync_broken_off_mid_round_leaves_nothing_behind_when_resumed() {
    //! A paced session builds a large round a part at a time while the parts before travel. A
    //! commit made meanwhile joins the round; the acknowledgement of a part must not move the
    //! acknowledged log position past documents the round has not sent yet.
    let mut sync = PacedFirstSync::new(44);
    let mut noted = false;
    for _ in 0..20 {
        sync.exchange();
        if sync.b.stats().docs_received > 0 && !noted {
            // The round is under way: only a part of it went. A commit now joins it.
            sync.note_mid_round(1);
            noted = true;
        } else if noted {
            // Every part sent so far is acknowledged, and the round goes on: neither side is
            // caught up. Break off here.
            assert!(
                sync.a.has_more_to_push(),
                "the round ended too soon for this test"
            );
            assert!(
                !sync.a.is_caught_up() && !sync.b.is_caught_up(),
                "caught up mid-round"
            );
            break;
        }
        sync.push_more();
    }
    assert!(noted, "the round never got under way");
    let PacedFirstSync {
        base, nurse, a, b, ..
    } = sync;
    let held = snapshot(&base.repo).len() as u64;
    assert!(
        b.stats().docs_received < held,
        "broken off before the end: {} of {held} documents",
        b.stats().docs_received
    );
    drop((a, b));
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
}

#[test]
fn a_document_changed_after_a_paced_round_sent_it_goes_out_before_the_round_ends() {
    //! A commit during a paced round joins it. A document the round had already sent in an
    //! earlier part must be looked at again: otherwise the round's Ack moved the acknowledged
    //! log position past the new change, and it never reached the peer.
    let mut sync = PacedFirstSync::new(45);
    let mut noted = false;
    for _ in 0..400 {
        let moved = sync.exchange();
        if sync.b.stats().docs_received > 0 && !noted {
            // Part of the round went: every patient's journal changes now, those sent included.
            sync.note_mid_round(sync.patients.len());
            noted = true;
        }
        sync.push_more();
        if noted && !moved && sync.a.is_caught_up() && sync.b.is_caught_up() {
            break;
        }
    }
    assert!(noted, "the round never got under way");
    assert!(
        sync.a.is_caught_up() && sync.b.is_caught_up(),
        "the session did not end"
    );
    // The same session delivered everything, the notes written mid-round included.
    assert_eq!(snapshot(&sync.nurse.repo), snapshot(&sync.base.repo));
}

#[test]
fn a_document_asked_for_in_the_batch_that_brings_the_hello_is_sent() {
    //! The push sent with a Hello can be answered (`Need` of a document offered in it) in the
    //! same read as the peer's own Hello, when a lossy link delays the Hello. That answer was
    //! dropped: the session reported caught up, and the shift never left the phone.
    let (mut base, patients) = base_with_patients(2);
    let mut nurse = TestNode::nurse(43, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    let _ = &mut base.rng;
    // A month's first entries, too large to push whole to a peer whose copy is unknown (over
    // 256 KiB, though only the nurse wrote them): offered.
    let long: String = (0..900u32)
        .map(|i| format!("{:04x} ", i.wrapping_mul(2_654_435_761) >> 16))
        .collect();
    let t = at("10:00");
    for _ in 0..60 {
        nurse
            .repo
            .add_note(t, &mut nurse.rng, &patients[0], None, t, &long)
            .unwrap();
    }
    let mut a = Session::new(base.repo.id(), nurse.repo.store());
    let mut b = Session::new(nurse.repo.id(), base.repo.store());
    a.push_early(nurse.repo.store(), &ShareAll, NOW_MS).unwrap();
    b.push_early(base.repo.store(), &ShareAll, NOW_MS).unwrap();
    // The base's Hello is held back; the nurse's Hello and offer reach the base, which answers.
    let held: Vec<u8> = std::iter::from_fn(|| b.poll_transmit()).flatten().collect();
    for bytes in std::iter::from_fn(|| a.poll_transmit()).collect::<Vec<_>>() {
        b.handle_bytes(base.repo.store(), &ShareAll, NOW_MS, &bytes)
            .unwrap();
    }
    // Hello and answer arrive at the nurse in one read.
    let answer: Vec<u8> = std::iter::from_fn(|| b.poll_transmit()).flatten().collect();
    let together = [held, answer].concat();
    a.handle_bytes(nurse.repo.store(), &ShareAll, NOW_MS, &together)
        .unwrap();
    flights_until_caught_up((&mut a, &nurse), (&mut b, &base));
    assert_eq!(
        snapshot(&nurse.repo),
        snapshot(&base.repo),
        "the offered journal arrived"
    );
}

/// The in-memory per-document baseline of `omsyn bench sync`: every document of both sides
/// loaded once, then Automerge sync rounds with no store involved.
#[test]
fn the_in_memory_baseline_brings_diverged_copies_together_and_then_has_nothing_to_say() {
    use omsyn_core::sync::baseline::InMemoryPerDocumentSync;
    let (base, patients) = base_with_patients(6);
    let mut nurse = TestNode::nurse(41, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    let ids = base.repo.store().doc_ids("").unwrap();
    let mut a = InMemoryPerDocumentSync::load(base.repo.store(), &ids).unwrap();
    let mut b = InMemoryPerDocumentSync::load(nurse.repo.store(), &ids).unwrap();
    let exchange = |a: &mut InMemoryPerDocumentSync, b: &mut InMemoryPerDocumentSync| {
        for round in 0..10 {
            let (from_a, from_b) = (a.generate(), b.generate());
            if from_a.is_empty() && from_b.is_empty() {
                return round;
            }
            b.receive(from_a).unwrap();
            a.receive(from_b).unwrap();
        }
        panic!("the baseline did not settle in 10 rounds");
    };
    exchange(&mut a, &mut b);
    // A shift apart: each side changes a different patient through its store.
    let seqs = (
        base.repo.store().seq().unwrap(),
        nurse.repo.store().seq().unwrap(),
    );
    base.repo
        .set_patient_field(at("10:00"), &patients[0], PatientField::Phone, "900")
        .unwrap();
    let t = at("10:00");
    nurse
        .repo
        .add_note(
            t,
            &mut nurse.rng,
            &patients[1],
            None,
            t,
            "dokumentert offline",
        )
        .unwrap();
    let changed = |node: &TestNode, seq| -> Vec<_> {
        node.repo
            .store()
            .log_since(seq)
            .unwrap()
            .changed
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    };
    let (changed_a, changed_b) = (changed(&base, seqs.0), changed(&nurse, seqs.1));
    a.refresh(base.repo.store(), &changed_a).unwrap();
    b.refresh(nurse.repo.store(), &changed_b).unwrap();
    a.reconnect();
    b.reconnect();
    assert!(exchange(&mut a, &mut b) > 0, "the changes travelled");
    for id in changed_a.iter().chain(&changed_b) {
        assert!(a.heads(id).is_some());
        assert_eq!(a.heads(id), b.heads(id), "{id} converged");
    }
    assert!(a.generate().is_empty() && b.generate().is_empty());
}

/// What a session stored from the peer, equal to the peer's copy, is not looked at again to be
/// pushed back: the acknowledged position moves over it, so the next reconnect does not load
/// (and decrypt) each such document only to find the peer holds it.
#[test]
fn documents_received_and_equal_to_the_peers_copy_are_not_pushed_back_next_time() {
    let (base, patients) = base_with_patients(20);
    let nurse = TestNode::nurse(42, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    let reconnect = || {
        let mut a = Session::new(nurse.repo.id(), base.repo.store());
        let mut b = Session::new(base.repo.id(), nurse.repo.store());
        a.push_early(base.repo.store(), &ShareAll, NOW_MS).unwrap();
        b.push_early(nurse.repo.store(), &ShareAll, NOW_MS).unwrap();
        flights_until_caught_up((&mut a, &base), (&mut b, &nurse));
        (a.stats(), b.stats())
    };
    for p in &patients[..3] {
        base.repo
            .set_patient_field(at("10:00"), p, PatientField::Phone, "900")
            .unwrap();
    }
    let (_, nurse_side) = reconnect();
    assert_eq!(nurse_side.docs_received, 3);
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
    let record = nurse.repo.store().peer(&base.repo.id()).unwrap().unwrap();
    assert_eq!(
        record.acked_seq,
        nurse.repo.store().seq().unwrap(),
        "the nurse's log holds nothing the base lacks"
    );
    assert!(
        nurse
            .repo
            .store()
            .log_since(record.acked_seq)
            .unwrap()
            .changed
            .is_empty(),
        "so the next session starts with nothing to examine"
    );
    // A change of the nurse's own to a document it received still goes to the base.
    let mut nurse = nurse;
    let t = at("11:00");
    nurse
        .repo
        .add_note(t, &mut nurse.rng, &patients[0], None, t, "etter vakt")
        .unwrap();
    let nurse = nurse;
    let mut a = Session::new(nurse.repo.id(), base.repo.store());
    let mut b = Session::new(base.repo.id(), nurse.repo.store());
    a.push_early(base.repo.store(), &ShareAll, NOW_MS).unwrap();
    b.push_early(nurse.repo.store(), &ShareAll, NOW_MS).unwrap();
    flights_until_caught_up((&mut a, &base), (&mut b, &nurse));
    assert!(b.stats().docs_sent >= 1, "the note went to the base");
    assert_eq!(snapshot(&nurse.repo), snapshot(&base.repo));
}

/// Moves bytes both ways until quiet, without telling either session of local commits.
fn deliver(link: &mut Link, a: &TestNode, b: &TestNode) {
    loop {
        let mut moved = false;
        while let Some(bytes) = link.a.poll_transmit() {
            link.b
                .handle_bytes(b.repo.store(), &ShareAll, NOW_MS, &bytes)
                .unwrap();
            moved = true;
        }
        while let Some(bytes) = link.b.poll_transmit() {
            link.a
                .handle_bytes(a.repo.store(), &ShareAll, NOW_MS, &bytes)
                .unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// Tells A's session of the last commit A's store made (as the daemon's driver does when the
/// hook wakes it), and delivers what it sends.
fn push_last_commit(link: &mut Link, a: &TestNode, b: &TestNode) {
    let committed = a.repo.store().last_commit();
    link.a
        .handle_commit(a.repo.store(), &ShareAll, NOW_MS, committed.as_deref())
        .unwrap();
    deliver(link, a, b);
}

/// The commits the store's hook was told of, kept for the test to read.
fn record_commits(node: &TestNode) -> Arc<Mutex<Vec<Committed>>> {
    let told = Arc::new(Mutex::new(Vec::new()));
    let sink = told.clone();
    node.repo
        .store()
        .set_commit_hook(Box::new(move |c| sink.lock().unwrap().push(c.clone())));
    told
}

#[test]
fn a_commit_tells_the_session_which_documents_to_push() {
    let (mut base, patients) = base_with_patients(3);
    let nurse = TestNode::nurse(35, "N1");
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    let told = record_commits(&base);
    base.repo
        .add_flag(at("11:00"), &mut base.rng, &patients[0], "fall-risk", None)
        .unwrap();
    let commits = told.lock().unwrap().clone();
    assert_eq!(commits.len(), 1, "one durable commit, one call");
    let record = DocumentId::PatientRecord(patients[0].clone());
    assert!(commits[0].documents.contains(&record));
    assert_eq!(commits[0].revocation_commits, 0);
    assert_eq!(
        base.repo.store().last_commit().as_deref(),
        Some(&commits[0]),
        "the store keeps what it told the hook"
    );
    push_last_commit(&mut link, &base, &nurse);
    assert_eq!(nurse.repo.record(&patients[0]).unwrap().flags.len(), 1);
}

#[test]
fn a_session_told_only_of_the_last_of_two_commits_reads_the_first_from_the_log() {
    let (mut base, patients) = base_with_patients(3);
    let nurse = TestNode::nurse(36, "N1");
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);
    base.repo
        .add_flag(at("11:00"), &mut base.rng, &patients[0], "fall-risk", None)
        .unwrap();
    base.repo
        .add_flag(at("11:05"), &mut base.rng, &patients[1], "allergy", None)
        .unwrap();
    // A watch channel keeps only the newest value: the session hears of the second commit only.
    push_last_commit(&mut link, &base, &nurse);
    assert_eq!(nurse.repo.record(&patients[0]).unwrap().flags.len(), 1);
    assert_eq!(nurse.repo.record(&patients[1]).unwrap().flags.len(), 1);
}

#[test]
fn a_commit_that_changes_nothing_a_listener_acts_on_tells_nobody() {
    let (base, _) = base_with_patients(1);
    let nurse = TestNode::nurse(37, "N1");
    let told = record_commits(&base);
    let store = base.repo.store();
    // An empty durable write, and one of peer knowledge alone.
    store.write().unwrap().commit().unwrap();
    let mut batch = store.write().unwrap();
    batch
        .put_peer(&nurse.repo.id(), &PeerRecord::default(), false)
        .unwrap();
    batch.commit().unwrap();
    assert!(
        told.lock().unwrap().is_empty(),
        "{:?}",
        told.lock().unwrap()
    );
}

#[test]
fn a_note_written_between_a_push_and_its_acknowledgement_is_not_shown_as_synced() {
    //! The app shows when a patient's documentation was last known to be at the base. A push's
    //! Ack records the pushed documents as equal as of when their changes were taken: a note
    //! written after that, while the Ack was on its way, must not look synced at the Ack's time.
    let (base, patients) = base_with_patients(1);
    let mut nurse = TestNode::nurse(47, "N1");
    Link::open(&base.repo, &nurse.repo).pump(&base.repo, &nurse.repo, &ShareAll);
    let patient = &patients[0];
    let t = at("10:00");
    nurse
        .repo
        .add_note(t, &mut nurse.rng, patient, None, t, "Før")
        .unwrap();
    let (pushed_ms, acked_ms, caught_up_ms) = (NOW_MS + 10_000, NOW_MS + 70_000, NOW_MS + 90_000);
    let mut phone = Session::new(base.repo.id(), nurse.repo.store());
    let mut office = Session::new(nurse.repo.id(), base.repo.store());
    phone
        .push_early(nurse.repo.store(), &ShareAll, pushed_ms)
        .unwrap();
    office
        .push_early(base.repo.store(), &ShareAll, pushed_ms)
        .unwrap();
    while let Some(bytes) = phone.poll_transmit() {
        office
            .handle_bytes(base.repo.store(), &ShareAll, pushed_ms, &bytes)
            .unwrap();
    }
    // The base stored the first note and acknowledged it; the second is written meanwhile.
    nurse
        .repo
        .add_note(t, &mut nurse.rng, patient, None, t, "Etter")
        .unwrap();
    while let Some(bytes) = office.poll_transmit() {
        phone
            .handle_bytes(nurse.repo.store(), &ShareAll, acked_ms, &bytes)
            .unwrap();
    }
    assert!(
        phone.stats().docs_sent > 0,
        "the first note went in the push"
    );
    // Documents whose heads still match count as synced at the last catch-up (later than
    // both times above); the journal, changed since its push, as of the push.
    let synced = nurse
        .repo
        .patient_synced_at(&base.repo.id(), Some(caught_up_ms), patient)
        .unwrap();
    assert_eq!(synced, Some(pushed_ms));
}
