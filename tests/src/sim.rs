//! A deterministic simulator: N nodes running the real sans-IO sync sessions over in-memory links
//! that drop, duplicate, reorder and delay packets, with partitions, heals and crash-restarts from
//! the durable store only, under random concurrent edits. One seed replays one run exactly.
//!
//! Links model what QUIC gives the real nodes: a session's frames travel as packets that may be
//! lost, duplicated or reordered, and the link layer (sequence numbers, cumulative acks,
//! retransmission after a timeout) delivers them in order exactly once — or the connection dies
//! (partition, crash) and the sessions on both ends are dropped, as a real connection loss does.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;

use omsyn_core::docs::journal::Entry;
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{EntryId, PatientId, StaffId, VisitId};
use omsyn_core::sync::{Session, ShareAll};
use omsyn_core::{NodeProfile, Repo, Role, Timestamp};
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
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 8,
            edits: 80,
            loss: 0.1,
            duplicate: 0.05,
            jitter_ms: 40,
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
}

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
    written: BTreeMap<EntryId, Entry>,
    report: SimReport,
}

const RTO_MS: u64 = 60;
const BASE_LATENCY_MS: u64 = 5;

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
        let nodes = (0..cfg.nodes)
            .map(|i| {
                let dir = tmp.path().join(format!("node{i}"));
                let (role, staff) = match i {
                    0 => (Role::Base, Some("K0")),
                    i if i % 3 == 2 => (Role::HomeUnit, None),
                    _ => (
                        Role::Nurse,
                        Some(["N1", "N2", "N3", "N4", "N5", "N6", "N7"][i % 7]),
                    ),
                };
                let mut node_rng = StdRng::seed_from_u64(rng.random());
                let profile = NodeProfile {
                    version: PROFILE_VERSION,
                    role,
                    name: format!("node {i}"),
                    staff_id: staff.map(|s| StaffId::parse(s).expect("valid")),
                    patient: None,
                    zone: None,
                };
                let repo = Repo::init(&dir, profile, &mut node_rng).expect("init");
                SimNode {
                    dir,
                    repo,
                    rng: node_rng,
                }
            })
            .collect();
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
            nodes,
            _tmp: tmp,
            conns: BTreeMap::new(),
            next_conn: 0,
            partition: None,
            topology,
            patients: Vec::new(),
            visits: Vec::new(),
            written: BTreeMap::new(),
            report: SimReport::default(),
        };
        sim.seed_patients();
        sim
    }

    fn seed_patients(&mut self) {
        let base = &mut self.nodes[0];
        let t = at_minute(0);
        for i in 0..3 {
            let p = base
                .repo
                .add_patient(
                    t,
                    &mut base.rng,
                    &[(PatientField::Name, format!("Pasient {i}"))],
                )
                .expect("add patient");
            base.repo
                .add_medication(t, &mut base.rng, &p, "Paracet", "1", &["08:00".into()])
                .expect("add medication");
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
                            staff: vec![StaffId::parse("N1").expect("valid")],
                        },
                    )
                    .expect("plan visit");
                self.visits.push(v);
            }
            self.patients.push(p);
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
                n.repo = Repo::open(&dir, &mut n.rng).expect("reopen after crash");
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
        let store_node = &self.nodes[to];
        for frame in ready {
            self.report.frames += 1;
            if let Err(e) = c.sessions[receiver_side].handle_bytes(
                store_node.repo.store(),
                &ShareAll,
                self.now as i64,
                &frame,
            ) {
                panic!("honest session failed at t={}ms: {e}", self.now);
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
                c.sessions[side]
                    .handle_local_change(self.nodes[node].repo.store(), &ShareAll, self.now as i64)
                    .expect("push");
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
            .collect();
        if patients.is_empty() {
            return;
        }
        let patient = patients[self.rng.random_range(0..patients.len())].clone();
        let visit = self.visits[self.rng.random_range(0..self.visits.len())].clone();
        let choice = self.rng.random_range(0..6);
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
            Ok(Some(entry)) => {
                self.written.insert(entry.id.clone(), entry);
            }
            Ok(None) => {}
            // A node may not yet hold the visit or record an edit refers to: that is a refusal,
            // not a loss, and nothing was acknowledged.
            Err(omsyn_core::RepoError::NotFound(_)) => {}
            Err(e) => panic!("edit failed on node {node}: {e}"),
        }
        self.local_change(node);
    }

    fn check_converged(&self) {
        let reference = crate::snapshot(&self.nodes[0].repo);
        let conflicts = self.nodes[0].repo.conflicts(None).expect("conflicts");
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            assert_eq!(
                crate::snapshot(&n.repo),
                reference,
                "node {i} differs from node 0 after the final heal"
            );
            assert_eq!(
                n.repo.conflicts(None).expect("conflicts"),
                conflicts,
                "node {i}'s conflicts differ"
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for p in &self.patients {
                let (journal, _) = n.repo.journal(p).expect("journal");
                for e in journal {
                    if let Some(original) = self.written.get(&e.id) {
                        assert_eq!(&e, original, "entry altered on node {i}");
                    }
                }
            }
            let mut held = 0;
            for p in &self.patients {
                held += n
                    .repo
                    .journal(p)
                    .expect("journal")
                    .0
                    .iter()
                    .filter(|e| self.written.contains_key(&e.id))
                    .count();
            }
            assert_eq!(
                held,
                self.written.len(),
                "node {i} lost acknowledged entries"
            );
        }
    }
}
