//! A deterministic simulator: N nodes running the real sans-IO sync sessions over in-memory links
//! that drop, duplicate, reorder and delay packets, with partitions, heals and crash-restarts from
//! the durable store only, under random concurrent edits. One seed replays one run exactly.
//!
//! Every node is enrolled in one organisation and shares by need ([`NeedPolicy`]): home units
//! hold their own patient, nurses their work list, the base everything. Malicious nodes (enrolled
//! insiders with valid certificates, running modified software) also send, with their real key:
//! forged changes (another's name on them), unauthorised ones (a nurse editing a visit plan or a
//! patient's zone), alterations of journal entries, re-creations of other authors' entries (seen:
//! refused; unseen: kept beside the original and raised as an integrity alert), compressed-change
//! bombs, and requests for a patient they have no need for. The properties: every acknowledged
//! entry reaches the base and stays in its journal; every node holds exactly what it needs,
//! identical to the base's copy; no honest node ever stores a crafted change it must refuse;
//! every attack kind ran and was refused; every node's access-log chain verifies after the
//! crash-restarts; and no node holds a patient it has no need for.
//!
//! Links model what QUIC gives the real nodes: a session's frames travel as packets that may be
//! lost, duplicated or reordered, and the link layer (sequence numbers, cumulative acks,
//! retransmission after a timeout) delivers them in order exactly once — or the connection dies
//! (partition, crash) and the sessions on both ends are dropped, as a real connection loss does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;

use omsyn_core::docs::journal::{self, Entry, EntryBody};
use omsyn_core::docs::plan::{self, NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::docs::{ChangeContext, Document};
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{EntryId, PatientId, StaffId, VisitId};
use omsyn_core::sync::wire::{self, Message, SignedChange};
use omsyn_core::sync::{Session, SyncEvent};
use omsyn_core::trust::{NeedPolicy, OrgKey, change_signing_bytes, need};
use omsyn_core::{DocumentId, NodeProfile, Repo, Role, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Knobs of one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes (the first is the base).
    pub nodes: usize,
    /// Random edits over the run.
    pub edits: usize,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is duplicated.
    pub duplicate: f64,
    /// Largest extra delay of a packet, in ms (reorders packets).
    pub jitter_ms: u64,
    /// How many of the nodes (the last ones) are malicious insiders.
    pub malicious: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 8,
            edits: 80,
            loss: 0.1,
            duplicate: 0.05,
            jitter_ms: 40,
            malicious: 1,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Packets sent on all links.
    pub packets: u64,
    /// Frames delivered to sessions.
    pub frames: u64,
    /// Crash-restarts.
    pub crashes: u64,
    /// Partitions.
    pub partitions: u64,
    /// Entries acknowledged by some node's write call.
    pub entries: usize,
    /// Crafted changes the malicious nodes sent.
    pub crafted: usize,
    /// `Changes` messages honest nodes rejected (forged or unauthorised).
    pub rejected: u64,
    /// Per attack kind: how many the insiders sent, and how many honest nodes refused.
    pub attacks: BTreeMap<&'static str, AttackCount>,
    /// How often, at the end, an honest node held an insider's unseen re-creation of an entry
    /// beside the original (each time with its integrity alert, or the run fails).
    pub recreations_held: u64,
}

/// What became of one kind of attack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackCount {
    /// Crafted and sent.
    pub sent: u64,
    /// Refused by an honest receiver.
    pub refused: u64,
}

/// The attack kinds, each with the words its refusal gives (see `pipeline::rules`).
pub const ATTACKS: [(&str, &str); 6] = [
    (
        "forged",
        "not a known enrolled node|claims an author other than its signer|forged or altered",
    ),
    ("unauthorised plan", "may not edit visit plans"),
    ("altered entry", "nobody alters or deletes"),
    ("re-created entry", "an entry is written once"),
    ("zone changed", "may not change a patient's zone"),
    ("compressed bomb", "compressed change is refused"),
];

#[derive(Debug)]
enum Event {
    Edit,
    Partition,
    Heal,
    Crash(usize),
    /// A packet on link (from, to) of connection `conn`: a frame with link sequence number.
    Packet {
        from: usize,
        to: usize,
        conn: u64,
        seq: u64,
        bytes: Vec<u8>,
    },
    /// A cumulative link ack from `to` back to `from`.
    LinkAck {
        from: usize,
        to: usize,
        conn: u64,
        next: u64,
    },
    Retransmit {
        from: usize,
        to: usize,
        conn: u64,
    },
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Direction {
    next_seq: u64,
    /// Sent but not acknowledged by the link.
    unacked: BTreeMap<u64, Vec<u8>>,
    /// Receiver side: next expected, and early arrivals.
    expected: u64,
    early: BTreeMap<u64, Vec<u8>>,
}

#[derive(Debug)]
struct Connection {
    id: u64,
    /// Session at each end: [lower node's, higher node's].
    sessions: [Session; 2],
    dirs: [Direction; 2],
}

#[derive(Debug)]
struct SimNode {
    dir: PathBuf,
    repo: Repo,
    rng: StdRng,
    policy: NeedPolicy,
    malicious: bool,
}

/// The simulated world.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    rng: StdRng,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    nodes: Vec<SimNode>,
    _tmp: tempfile::TempDir,
    conns: BTreeMap<(usize, usize), Connection>,
    next_conn: u64,
    partition: Option<BTreeSet<usize>>,
    /// Which pairs ever connect: the base with everyone, others sparsely (a nurse meets a few
    /// colleagues and home units, not every device in the zone).
    topology: BTreeSet<(usize, usize)>,
    patients: Vec<PatientId>,
    visits: Vec<VisitId>,
    /// A patient no nurse is assigned to: only the base may hold it.
    secret: Option<PatientId>,
    written: BTreeMap<EntryId, Entry>,
    /// Hashes of the changes malicious nodes crafted that every honest node must refuse.
    crafted: BTreeSet<[u8; 32]>,
    /// Entry keys an insider wrote again unseen (kept, with an integrity alert), by document.
    rewritten: BTreeSet<(DocumentId, String)>,
    report: SimReport,
}

const RTO_MS: u64 = 60;
const BASE_LATENCY_MS: u64 = 5;

/// The wall clock of simulated time 0, in ms since the Unix epoch (the sim's morning).
fn sim_epoch_ms() -> i64 {
    at_minute(0).unix_millis()
}

fn at_minute(n: u64) -> Timestamp {
    let n = n % (14 * 60);
    Timestamp::parse(&format!(
        "2026-11-23T{:02}:{:02}:00+01:00",
        7 + n / 60,
        n % 60
    ))
    .expect("valid sim time")
}

impl Sim {
    /// Builds the world for `seed`.
    pub fn new(seed: u64, cfg: SimConfig) -> Sim {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut rng = StdRng::seed_from_u64(seed);
        let org = crate::test_org();
        let mut topology = BTreeSet::new();
        for a in 0..cfg.nodes {
            for b in a + 1..cfg.nodes {
                if a == 0 || rng.random_bool(0.3) {
                    topology.insert((a, b));
                }
            }
        }
        let mut sim = Sim {
            cfg,
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes: Vec::new(),
            _tmp: tmp,
            conns: BTreeMap::new(),
            next_conn: 0,
            partition: None,
            topology,
            patients: Vec::new(),
            visits: Vec::new(),
            secret: None,
            written: BTreeMap::new(),
            crafted: BTreeSet::new(),
            rewritten: BTreeSet::new(),
            report: SimReport::default(),
        };
        // The base first: home units are enrolled for patients it registers.
        sim.add_node(&org, 0);
        sim.seed_patients();
        for i in 1..sim.cfg.nodes {
            sim.add_node(&org, i);
        }
        sim
    }

    fn add_node(&mut self, org: &OrgKey, i: usize) {
        let dir = self._tmp.path().join(format!("node{i}"));
        let malicious = i >= self.cfg.nodes - self.cfg.malicious.min(self.cfg.nodes - 1);
        let (role, staff, patient) = match i {
            0 => (Role::Base, Some("K0"), None),
            _ if malicious => (Role::Nurse, Some("N1"), None),
            i if i % 3 == 2 => (
                Role::HomeUnit,
                None,
                Some(self.patients[i % self.patients.len()].clone()),
            ),
            _ => (
                Role::Nurse,
                Some(["N1", "N2", "N3", "N4", "N5", "N6", "N7"][i % 7]),
                None,
            ),
        };
        let mut node_rng = StdRng::seed_from_u64(self.rng.random());
        let profile = NodeProfile {
            version: PROFILE_VERSION,
            role,
            name: format!("node {i}"),
            staff_id: staff.map(|s| StaffId::parse(s).expect("valid")),
            patient,
            zone: Some("Sone 1".into()),
        };
        let repo = Repo::init(&dir, profile, None, &mut node_rng).expect("init");
        crate::enroll(&repo, org, crate::CERT_VALIDITY_MS);
        let policy = repo.need_policy().expect("own grant");
        self.nodes.push(SimNode {
            dir,
            repo,
            rng: node_rng,
            policy,
            malicious,
        });
    }

    fn now_ms(&self) -> i64 {
        sim_epoch_ms() + self.now as i64
    }

    fn seed_patients(&mut self) {
        let base = &mut self.nodes[0];
        let t = at_minute(0);
        for i in 0..4 {
            let p = base
                .repo
                .add_patient(
                    t,
                    &mut base.rng,
                    &[
                        (PatientField::Name, format!("Pasient {i}")),
                        (PatientField::Zone, "Sone 1".into()),
                    ],
                )
                .expect("add patient");
            base.repo
                .add_medication(t, &mut base.rng, &p, "Paracet", "1", &["08:00".into()])
                .expect("add medication");
            // Patient 3 is visited by a nurse who has no device in the simulation.
            let nurse = if i == 3 { "N9" } else { "N1" };
            for h in 0..2u64 {
                let v = base
                    .repo
                    .plan_visit(
                        t,
                        &mut base.rng,
                        &NewVisit {
                            patient: p.clone(),
                            start: at_minute(60 + h * 120),
                            end: at_minute(90 + h * 120),
                            kind: VisitKind::Physical,
                            tiltak: vec![],
                            staff: vec![StaffId::parse(nurse).expect("valid")],
                        },
                    )
                    .expect("plan visit");
                if i != 3 {
                    self.visits.push(v);
                }
            }
            if i == 3 {
                self.secret = Some(p);
            } else {
                self.patients.push(p);
            }
        }
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.events.push(Some(event));
        let idx = self.events.len() - 1;
        self.queue
            .push(Reverse((self.now + delay, idx as u64, idx)));
    }

    /// Runs the simulation; panics (with the seed in the message from the caller) on a violated
    /// property.
    pub fn run(mut self) -> SimReport {
        for _ in 0..self.cfg.edits {
            let at = self.rng.random_range(0..20_000);
            self.events.push(Some(Event::Edit));
            let idx = self.events.len() - 1;
            self.queue.push(Reverse((at, idx as u64, idx)));
        }
        for k in 0..6u64 {
            self.schedule(k * 3_000 + 500, Event::Partition);
            self.schedule(k * 3_000 + 2_000, Event::Heal);
        }
        for k in 0..4u64 {
            let node = self.rng.random_range(0..self.cfg.nodes);
            self.schedule(k * 4_500 + 1_200, Event::Crash(node));
        }
        self.connect_all();
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            self.now = at;
            let Some(event) = self.events[idx].take() else {
                continue;
            };
            self.handle(event);
            assert!(self.now < 10_000_000, "simulation did not settle");
        }
        // Final heal: everyone connected until quiet.
        self.partition = None;
        self.connect_all();
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            self.now = at;
            if let Some(event) = self.events[idx].take() {
                self.handle(event);
            }
        }
        // The shift is over: devices remove what they no longer need (a reassigned visit), and
        // hand the access-log entries of that to the base.
        let end = at_minute(self.now / 100);
        for i in 0..self.nodes.len() {
            self.nodes[i].repo.purge_unneeded(end).expect("purge");
            self.local_change(i);
        }
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            self.now = at;
            if let Some(event) = self.events[idx].take() {
                self.handle(event);
            }
        }
        self.check_converged();
        self.report.entries = self.written.len();
        self.report
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some(side) => side.contains(&a) == side.contains(&b),
            None => true,
        }
    }

    fn connect_all(&mut self) {
        let pairs: Vec<(usize, usize)> = self.topology.iter().copied().collect();
        for (a, b) in pairs {
            if self.reachable(a, b) && !self.conns.contains_key(&(a, b)) {
                self.connect(a, b);
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let id = self.next_conn;
        self.next_conn += 1;
        let sa = Session::new(self.nodes[b].repo.id(), self.nodes[a].repo.store());
        let sb = Session::new(self.nodes[a].repo.id(), self.nodes[b].repo.store());
        self.conns.insert(
            (a, b),
            Connection {
                id,
                sessions: [sa, sb],
                dirs: [Direction::default(), Direction::default()],
            },
        );
        self.flush(a, b);
        // After its Hello, a malicious end sends what it crafted.
        for (side, node) in [(0, a), (1, b)] {
            if self.nodes[node].malicious {
                let frames = self.craft(node);
                self.send_frames(a, b, side, frames);
            }
        }
    }

    /// Frames a malicious node sends besides its honest session: a forged change (claiming the
    /// base as author), an unauthorised one (a nurse planning a visit), an altered journal entry,
    /// and a request for a patient it has no need for.
    fn craft(&mut self, node: usize) -> Vec<Vec<u8>> {
        let month = at_minute(0).day().month();
        let patient = self.patients[self.rng.random_range(0..self.patients.len())].clone();
        let base_author = self.nodes[0].repo.author().expect("own author");
        let n = &mut self.nodes[node];
        let key = n.repo.identity().key.clone();
        let sign = |bytes: Vec<u8>, hash: [u8; 32]| SignedChange {
            signature: key.sign(&change_signing_bytes(&hash)),
            bytes,
        };
        // Every change of a crafted document, signed by the insider and remembered as crafted.
        let sign_all = |doc: &mut Document, crafted: &mut Vec<[u8; 32]>| -> Vec<SignedChange> {
            doc.hashed_changes_since(&[])
                .into_iter()
                .map(|c| {
                    crafted.push(c.hash);
                    sign(c.bytes, c.hash)
                })
                .collect()
        };
        let mut frames = Vec::new();
        let mut crafted = Vec::new();
        // Forged: the base's name on a note, signed with the insider's own key.
        let journal_id = DocumentId::Journal(patient.clone(), month);
        let mut forged = Document::new(journal_id.clone(), base_author.device);
        let ctx = ChangeContext {
            author: base_author,
            entered_at: at_minute(1),
        };
        journal::append(
            &mut forged,
            &ctx,
            &mut n.rng,
            at_minute(1),
            EntryBody::Note {
                visit: None,
                text: "forged".into(),
            },
        )
        .expect("forge");
        frames.push(wire::encode(&Message::Changes {
            doc: journal_id.clone(),
            changes: sign_all(&mut forged, &mut crafted),
        }));
        // Unauthorised: a nurse planning a visit, validly signed.
        let plan_id = DocumentId::VisitPlan(patient.clone(), month);
        let mut plan_doc = Document::new(plan_id.clone(), n.repo.id());
        let ctx = ChangeContext {
            author: n.repo.author().expect("own author"),
            entered_at: at_minute(2),
        };
        plan::add(
            &mut plan_doc,
            &ctx,
            &mut n.rng,
            &NewVisit {
                patient: patient.clone(),
                start: at_minute(300),
                end: at_minute(330),
                kind: VisitKind::Digital,
                tiltak: vec![],
                staff: vec![StaffId::parse("N1").expect("valid")],
            },
        )
        .expect("plan");
        frames.push(wire::encode(&Message::Changes {
            doc: plan_id,
            changes: sign_all(&mut plan_doc, &mut crafted),
        }));
        // Altered: overwrite an entry of a journal it holds, validly signed.
        if let Some(change) = alter_first_entry(&n.repo, &journal_id, at_minute(3)) {
            self.report.attacks.entry("altered entry").or_default().sent += 1;
            crafted.push(change.0);
            frames.push(wire::encode(&Message::Changes {
                doc: journal_id.clone(),
                changes: vec![sign(change.1, change.0)],
            }));
        }
        frames.extend(self.craft_against_state(node, &journal_id, &mut crafted));
        // Asks for the patient it has no need for.
        if let Some(secret) = &self.secret {
            frames.push(wire::encode(&Message::Need {
                doc: DocumentId::PatientRecord(secret.clone()),
                heads: vec![],
            }));
            frames.push(wire::encode(&Message::Need {
                doc: DocumentId::VisitPlan(secret.clone(), month),
                heads: vec![],
            }));
        }
        self.report.crafted += crafted.len();
        self.crafted.extend(crafted);
        for kind in ["forged", "unauthorised plan"] {
            self.report.attacks.entry(kind).or_default().sent += 1;
        }
        frames
    }

    /// The attacks a modified client makes against what a document holds: re-creating another
    /// author's entry it has seen (refused) or as if it had not (kept beside it, an integrity
    /// alert), changing the patient's zone (refused), and a compressed-change bomb (refused
    /// before it is inflated).
    fn craft_against_state(
        &mut self,
        node: usize,
        journal: &DocumentId,
        crafted: &mut Vec<[u8; 32]>,
    ) -> Vec<Vec<u8>> {
        let n = &self.nodes[node];
        let key = n.repo.identity().key.clone();
        let sign = |c: crate::craft::Crafted| SignedChange {
            signature: key.sign(&change_signing_bytes(&c.hash)),
            bytes: c.bytes,
        };
        let at = at_minute(self.now / 100);
        let mut frames = Vec::new();
        let sent = |kind: &'static str, report: &mut SimReport| {
            report.attacks.entry(kind).or_default().sent += 1;
        };
        let others: Vec<Entry> = n
            .repo
            .journal(journal.patient().expect("a journal names a patient"))
            .map(|(entries, _)| entries)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.author.device != n.repo.id())
            .collect();
        if let Some(victim) = others.first() {
            let key_name = format!("e/{}", victim.id);
            let mut fake = victim.clone();
            fake.author = n.repo.author().expect("own author");
            // Dated as its change, as a write dates it: otherwise refused for its date, and the
            // re-creation's own rules never met.
            fake.entered_at = at;
            let value = serde_json::to_string(&fake).expect("entry JSON");
            let put = [crate::craft::Put::fresh(&key_name, &value)];
            let seen = crate::craft::change(&n.repo, journal, &n.repo, &put, None, at);
            crafted.push(seen.hash);
            frames.push(wire::encode(&Message::Changes {
                doc: journal.clone(),
                changes: vec![sign(seen)],
            }));
            sent("re-created entry", &mut self.report);
            if let Some(original) = crate::craft::change_putting(&n.repo, journal, &key_name) {
                let before = crate::craft::heads_without(&n.repo, journal, original);
                let unseen =
                    crate::craft::change(&n.repo, journal, &n.repo, &put, Some(before), at);
                // Kept in its own store too, so its next change builds on it: this attack is a
                // re-created entry, not an equivocation (two versions of one change number).
                crate::craft::plant(&n.repo, journal, &unseen);
                frames.push(wire::encode(&Message::Changes {
                    doc: journal.clone(),
                    changes: vec![sign(unseen)],
                }));
                self.rewritten.insert((journal.clone(), key_name));
            }
        }
        let record = DocumentId::PatientRecord(journal.patient().expect("patient").clone());
        if n.repo
            .store()
            .with_doc(&record, |_| ())
            .ok()
            .flatten()
            .is_some()
        {
            let put = [crate::craft::Put::fresh("field/zone", "Sone 1")];
            let zone = crate::craft::change(&n.repo, &record, &n.repo, &put, None, at);
            crafted.push(zone.hash);
            frames.push(wire::encode(&Message::Changes {
                doc: record,
                changes: vec![sign(zone)],
            }));
            sent("zone changed", &mut self.report);
        }
        // A compressed chunk inflating to far more than it weighs.
        let mut bomb = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2, 0x80, 0x10];
        bomb.extend(std::iter::repeat_n(0u8, 2048));
        frames.push(wire::encode(&Message::Changes {
            doc: journal.clone(),
            changes: vec![SignedChange {
                bytes: bomb,
                signature: [0; 64],
            }],
        }));
        sent("compressed bomb", &mut self.report);
        frames
    }

    /// Puts `frames` on the link from the node at `side` of connection (a, b).
    fn send_frames(&mut self, a: usize, b: usize, side: usize, frames: Vec<Vec<u8>>) {
        let Some(conn) = self.conns.get_mut(&(a, b)) else {
            return;
        };
        let id = conn.id;
        let mut sends = Vec::new();
        for frame in frames {
            let dir = &mut conn.dirs[side];
            let seq = dir.next_seq;
            dir.next_seq += 1;
            dir.unacked.insert(seq, frame.clone());
            sends.push((seq, frame));
        }
        let (from, to) = if side == 0 { (a, b) } else { (b, a) };
        for (seq, bytes) in sends {
            self.transmit(from, to, id, seq, bytes);
        }
        self.schedule(RTO_MS, Event::Retransmit { from, to, conn: id });
    }

    /// Moves frames queued by the sessions of connection (a, b) onto the link.
    fn flush(&mut self, a: usize, b: usize) {
        let mut sends = Vec::new();
        if let Some(conn) = self.conns.get_mut(&(a, b)) {
            for side in 0..2 {
                while let Some(frame) = conn.sessions[side].poll_transmit() {
                    let dir = &mut conn.dirs[side];
                    let seq = dir.next_seq;
                    dir.next_seq += 1;
                    dir.unacked.insert(seq, frame.clone());
                    let (from, to) = if side == 0 { (a, b) } else { (b, a) };
                    sends.push((from, to, conn.id, seq, frame));
                }
            }
        }
        for (from, to, conn, seq, bytes) in sends {
            self.transmit(from, to, conn, seq, bytes);
            self.schedule(RTO_MS, Event::Retransmit { from, to, conn });
        }
    }

    fn transmit(&mut self, from: usize, to: usize, conn: u64, seq: u64, bytes: Vec<u8>) {
        self.report.packets += 1;
        if self.rng.random_bool(self.cfg.loss) {
            return;
        }
        let copies = if self.rng.random_bool(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = BASE_LATENCY_MS + self.rng.random_range(0..=self.cfg.jitter_ms);
            self.schedule(
                delay,
                Event::Packet {
                    from,
                    to,
                    conn,
                    seq,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn key(a: usize, b: usize) -> ((usize, usize), usize) {
        if a < b { ((a, b), 0) } else { ((b, a), 1) }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Edit => self.random_edit(),
            Event::Partition => {
                let side: BTreeSet<usize> = (0..self.cfg.nodes)
                    .filter(|_| self.rng.random_bool(0.5))
                    .collect();
                self.partition = Some(side);
                self.report.partitions += 1;
                let cut: Vec<(usize, usize)> = self
                    .conns
                    .keys()
                    .copied()
                    .filter(|(a, b)| !self.reachable(*a, *b))
                    .collect();
                for k in cut {
                    self.conns.remove(&k);
                }
            }
            Event::Heal => {
                self.partition = None;
                self.connect_all();
            }
            Event::Crash(node) => {
                self.report.crashes += 1;
                self.conns.retain(|(a, b), _| *a != node && *b != node);
                let n = &mut self.nodes[node];
                // Everything in memory is gone; the node comes back from its files alone. The
                // old store must close (it holds the file's lock) before the file is reopened,
                // so an empty in-memory node stands in for that moment.
                let dir = n.dir.clone();
                let placeholder = std::mem::replace(
                    &mut n.repo,
                    omsyn_core::Repo::in_memory(
                        omsyn_core::Identity::load(&dir).expect("identity"),
                        &mut n.rng,
                    )
                    .expect("placeholder"),
                );
                drop(placeholder);
                n.repo = Repo::open(&dir, None, &mut n.rng).expect("reopen after crash");
                self.connect_all();
            }
            Event::Packet {
                from,
                to,
                conn,
                seq,
                bytes,
            } => self.deliver(from, to, conn, seq, bytes),
            Event::LinkAck {
                from,
                to,
                conn,
                next,
            } => {
                let (key, side) = Self::key(from, to);
                if let Some(c) = self.conns.get_mut(&key).filter(|c| c.id == conn) {
                    c.dirs[side].unacked.retain(|s, _| *s >= next);
                }
            }
            Event::Retransmit { from, to, conn } => {
                let (key, side) = Self::key(from, to);
                let pending: Vec<(u64, Vec<u8>)> =
                    match self.conns.get(&key).filter(|c| c.id == conn) {
                        Some(c) => c.dirs[side]
                            .unacked
                            .iter()
                            .map(|(s, b)| (*s, b.clone()))
                            .collect(),
                        None => return,
                    };
                if pending.is_empty() {
                    return;
                }
                for (seq, bytes) in pending {
                    self.transmit(from, to, conn, seq, bytes);
                }
                self.schedule(RTO_MS, Event::Retransmit { from, to, conn });
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, conn: u64, seq: u64, bytes: Vec<u8>) {
        let (key, side) = Self::key(from, to);
        let receiver_side = 1 - side;
        let Some(c) = self.conns.get_mut(&key).filter(|c| c.id == conn) else {
            return;
        };
        let dir = &mut c.dirs[side];
        if seq >= dir.expected {
            dir.early.insert(seq, bytes);
        }
        let mut ready = Vec::new();
        while let Some(b) = dir.early.remove(&dir.expected) {
            ready.push(b);
            dir.expected += 1;
        }
        let next = dir.expected;
        let now_ms = sim_epoch_ms() + self.now as i64;
        let store_node = &self.nodes[to];
        let session = &mut c.sessions[receiver_side];
        for frame in ready {
            self.report.frames += 1;
            let result =
                session.handle_bytes(store_node.repo.store(), &store_node.policy, now_ms, &frame);
            // A malicious node's own session may be confused by answers to what it crafted.
            if let Err(e) = result
                && !store_node.malicious
            {
                panic!(
                    "honest session of node {to} failed at t={}ms: {e}",
                    self.now
                );
            }
        }
        while let Some(event) = session.poll_event() {
            if let SyncEvent::RejectedChanges { reason, .. } = event {
                self.report.rejected += 1;
                if !store_node.malicious {
                    for (kind, words) in ATTACKS {
                        if words.split('|').any(|w| reason.contains(w)) {
                            self.report.attacks.entry(kind).or_default().refused += 1;
                        }
                    }
                }
            }
        }
        self.schedule(
            BASE_LATENCY_MS,
            Event::LinkAck {
                from,
                to,
                conn,
                next,
            },
        );
        // The receiving node's store may have changed: every session of that node pushes.
        self.local_change(to);
        self.flush(key.0, key.1);
    }

    fn local_change(&mut self, node: usize) {
        let keys: Vec<(usize, usize)> = self
            .conns
            .keys()
            .copied()
            .filter(|(a, b)| *a == node || *b == node)
            .collect();
        for (a, b) in keys {
            if let Some(c) = self.conns.get_mut(&(a, b)) {
                let side = if a == node { 0 } else { 1 };
                let n = &self.nodes[node];
                let now_ms = sim_epoch_ms() + self.now as i64;
                let result =
                    c.sessions[side].handle_local_change(n.repo.store(), &n.policy, now_ms);
                if let Err(e) = result
                    && !n.malicious
                {
                    panic!("node {node} failed to push: {e}");
                }
            }
            self.flush(a, b);
        }
    }

    fn random_edit(&mut self) {
        let node = self.rng.random_range(0..self.cfg.nodes);
        let minute = self.now / 100;
        let t = at_minute(minute);
        let n = &mut self.nodes[node];
        let patients: Vec<PatientId> = n
            .repo
            .patients()
            .expect("patients")
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| Some(p) != self.secret.as_ref())
            .collect();
        if patients.is_empty() {
            return;
        }
        let patient = patients[self.rng.random_range(0..patients.len())].clone();
        let visit = self.visits[self.rng.random_range(0..self.visits.len())].clone();
        let choice = match n.repo.profile().role {
            // A home unit adds its devices' measurements.
            Role::HomeUnit => 5,
            _ => self.rng.random_range(0..6),
        };
        let result: Result<Option<Entry>, omsyn_core::RepoError> =
            match (choice, n.repo.profile().role) {
                (0, _) => n
                    .repo
                    .add_note(t, &mut n.rng, &patient, None, t, "sim note")
                    .map(Some),
                (1, _) => {
                    let med = n
                        .repo
                        .record(&patient)
                        .ok()
                        .and_then(|r| r.medications.first().map(|m| m.id.clone()));
                    match med {
                        Some(m) => n
                            .repo
                            .record_dose(t, &mut n.rng, &patient, &m, "08:00", t, None, None)
                            .map(Some),
                        None => Ok(None),
                    }
                }
                (2, _) => n
                    .repo
                    .visit_performed(t, &mut n.rng, &visit, t, None, None)
                    .map(Some),
                (3, _) => n
                    .repo
                    .set_patient_field(
                        t,
                        &patient,
                        PatientField::Phone,
                        &format!("{}", self.rng.random_range(0..100)),
                    )
                    .map(|()| None),
                (4, Role::Base) => n
                    .repo
                    .change_visit(
                        t,
                        &mut n.rng,
                        &visit,
                        &VisitChange::Assign(vec![StaffId::parse("N2").expect("valid")]),
                    )
                    .map(|()| None),
                (_, _) => n
                    .repo
                    .observe(
                        t,
                        &mut n.rng,
                        &patient,
                        None,
                        t,
                        "pulse",
                        "72",
                        Some("/min"),
                    )
                    .map(Some),
            };
        match result {
            // What an insider writes may never leave it whole (it equivocates): only honest
            // nodes' entries are owed to the base.
            Ok(Some(entry)) if !self.nodes[node].malicious => {
                self.written.insert(entry.id.clone(), entry);
            }
            Ok(Some(_)) => {}
            Ok(None) => {}
            // A node may not yet hold the visit or record an edit refers to, or its role may not
            // make the edit (a base giving medication): a refusal, and nothing was acknowledged.
            Err(omsyn_core::RepoError::NotFound(_) | omsyn_core::RepoError::Unauthorized(_)) => {}
            Err(e) => panic!("edit failed on node {node}: {e}"),
        }
        self.local_change(node);
    }

    fn check_converged(&mut self) {
        let base = &self.nodes[0].repo;
        let reference: BTreeMap<String, omsyn_core::docs::Heads> =
            crate::snapshot(base).into_iter().collect();
        let now_ms = self.now_ms();
        // An insider's own copy may differ: it can make two versions of its own changes
        // (equivocate), keeping one and sending the other.
        for (i, n) in self
            .nodes
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, n)| !n.malicious)
        {
            let held: BTreeMap<String, omsyn_core::docs::Heads> =
                crate::snapshot(&n.repo).into_iter().collect();
            let grant = n.repo.grant().expect("own grant");
            for (id, heads) in &held {
                assert_eq!(
                    reference.get(id),
                    Some(heads),
                    "node {i} holds {id} unlike the base after the final heal"
                );
                let doc = DocumentId::parse(id).expect("valid id");
                assert!(
                    need::needs(base.store(), now_ms, &grant, &doc).expect("need"),
                    "node {i} holds {id} without a need for it"
                );
            }
            for id in reference.keys() {
                let doc = DocumentId::parse(id).expect("valid id");
                if need::needs(base.store(), now_ms, &grant, &doc).expect("need") {
                    assert!(held.contains_key(id), "node {i} lacks {id}, which it needs");
                }
            }
            let mut base_conflicts = base.conflicts(None).expect("conflicts");
            base_conflicts.retain(|c| held.contains_key(&format!("patient/{}", c.patient)));
            let mut conflicts = n.repo.conflicts(None).expect("conflicts");
            conflicts.retain(|c| held.contains_key(&format!("patient/{}", c.patient)));
            assert_eq!(conflicts, base_conflicts, "node {i}'s conflicts differ");
        }
        // Every acknowledged entry reached the base and stays in its journal, unaltered (an
        // insider's value under the same key may stand beside it, never in its place).
        let mut at_base = 0;
        for p in &self.patients {
            let (journal, _) = base.journal(p).expect("journal");
            at_base += self
                .written
                .values()
                .filter(|original| journal.contains(original))
                .count();
        }
        assert_eq!(
            at_base,
            self.written.len(),
            "the base lacks acknowledged entries"
        );
        self.report.recreations_held = self.check_integrity_alerts();
        self.check_access_logs();
        // No honest node stores a crafted change.
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| !n.malicious) {
            let store = n.repo.store();
            for id in store.doc_ids("").expect("list") {
                let leaked = store
                    .load(&id)
                    .expect("load")
                    .is_some_and(|d| self.crafted.iter().any(|h| d.has_change(h)));
                assert!(!leaked, "honest node {i} stored a crafted change in {id}");
            }
        }
    }
}

impl Sim {
    /// Wherever an insider's unseen re-creation of an entry stands beside the original, the
    /// node holding both shows an integrity alert for it. Returns how many such pairs were held.
    fn check_integrity_alerts(&self) -> u64 {
        let mut held = 0;
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| !n.malicious) {
            for (doc, key) in &self.rewritten {
                let patient = doc.patient().expect("a journal names a patient");
                let Ok((journal, _)) = n.repo.journal(patient) else {
                    continue;
                };
                let id = key.trim_start_matches("e/");
                if journal.iter().filter(|e| e.id.as_str() == id).count() < 2 {
                    continue;
                }
                let alerted = n.repo.conflicts(Some(patient)).expect("conflicts").iter().any(|c| {
                    matches!(&c.kind, omsyn_core::conflict::ConflictKind::EntryWrittenTwice { key: k, .. } if k == key)
                });
                assert!(
                    alerted,
                    "node {i} holds two values of {key} in {doc} without an alert"
                );
                held += 1;
            }
        }
        held
    }

    /// Every honest node's access-log chain verifies wherever it is held, after every
    /// crash-restart (an insider's may carry the equivocations it was caught at).
    fn check_access_logs(&self) {
        let insiders: BTreeSet<_> = self
            .nodes
            .iter()
            .filter(|n| n.malicious)
            .map(|n| n.repo.id())
            .collect();
        for (i, n) in self.nodes.iter().enumerate() {
            for report in n.repo.verify_audit().expect("verify") {
                if insiders.contains(&report.node) {
                    continue;
                }
                assert!(
                    report.problems.is_empty(),
                    "node {i}: the log of {} breaks: {:?}",
                    report.node.short(),
                    report.problems
                );
            }
        }
    }
}

/// Builds a change that overwrites the first journal entry of `doc` held by `repo` (an insider
/// "correcting" history in place). Returns its hash and bytes.
fn alter_first_entry(repo: &Repo, doc: &DocumentId, at: Timestamp) -> Option<([u8; 32], Vec<u8>)> {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, ReadDoc};
    let copy = repo.store().load(doc).ok()??;
    let mut am = AutoCommit::load(&copy.save()).ok()?;
    am.set_actor(automerge::ActorId::from(&repo.id().as_bytes()[..]));
    let key = am.keys(ROOT).find(|k| k.starts_with("e/"))?;
    am.put(ROOT, key, "{\"tampered\": true}").ok()?;
    // Dated as a write of its node's would be, so the rule it breaks is the one refusing it.
    let time = at.unix_millis() / 1000;
    am.commit_with(automerge::transaction::CommitOptions::default().with_time(time));
    let change = am.get_last_local_change()?;
    Some((change.hash().0, change.raw_bytes().to_vec()))
}
