//! Shared helpers for Omsyn's integration tests: building nodes, a fixed test clock, and merging
//! replicas through the public export/import path.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly by design.

pub mod craft;
pub mod planday;
pub mod sim;

use omsyn_core::docs::Heads;
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{MedicationId, PatientId, StaffId};
use omsyn_core::trust::OrgKey;
use omsyn_core::{Identity, NodeKey, NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A node in memory with a seeded RNG of its own.
#[derive(Debug)]
pub struct TestNode {
    /// The node.
    pub repo: Repo,
    /// Its RNG (seeded: runs replay).
    pub rng: StdRng,
}

impl TestNode {
    /// A base-office node.
    pub fn base(seed: u64) -> TestNode {
        Self::new(seed, Role::Base, "Base Øst", Some("K001"))
    }

    /// A nurse node for staff member `staff`.
    pub fn nurse(seed: u64, staff: &str) -> TestNode {
        Self::new(seed, Role::Nurse, &format!("Nurse {staff}"), Some(staff))
    }

    /// A home unit serving `patient`.
    pub fn home_unit(seed: u64, patient: &PatientId) -> TestNode {
        Self::with_profile(
            seed,
            NodeProfile {
                version: PROFILE_VERSION,
                role: Role::HomeUnit,
                name: format!("Home of {patient}"),
                staff_id: None,
                patient: Some(patient.clone()),
                zone: Some("Sone 1".into()),
            },
        )
    }

    /// A node with the given role, enrolled in the test organisation ([`test_org`]).
    pub fn new(seed: u64, role: Role, name: &str, staff: Option<&str>) -> TestNode {
        Self::with_profile(
            seed,
            NodeProfile {
                version: PROFILE_VERSION,
                role,
                name: name.to_owned(),
                staff_id: staff.map(|s| StaffId::parse(s).expect("test staff id is valid")),
                patient: None,
                zone: Some("Sone 1".into()),
            },
        )
    }

    /// Registers a patient named `name` at 07:00 (a base plans the day then).
    pub fn add_patient(&mut self, name: &str) -> PatientId {
        self.repo
            .add_patient(
                at("07:00"),
                &mut self.rng,
                &[(PatientField::Name, name.to_owned())],
            )
            .expect("the test patient registers")
    }

    /// Adds `name` to `patient`'s medication list at 07:00, one tablet at `slot`.
    pub fn add_medication(&mut self, patient: &PatientId, name: &str, slot: &str) -> MedicationId {
        self.repo
            .add_medication(
                at("07:00"),
                &mut self.rng,
                patient,
                name,
                "1 tablett",
                &[slot.to_owned()],
            )
            .expect("the test medication is added")
    }

    /// A node with `profile`, enrolled in the test organisation.
    pub fn with_profile(seed: u64, profile: NodeProfile) -> TestNode {
        let node = Self::unenrolled(seed, profile);
        enroll(&node.repo, &test_org(), CERT_VALIDITY_MS);
        node
    }

    /// A node with `profile` that is not enrolled anywhere.
    pub fn unenrolled(seed: u64, profile: NodeProfile) -> TestNode {
        let mut rng = StdRng::seed_from_u64(seed);
        let identity = Identity {
            key: NodeKey::generate(&mut rng),
            profile,
        };
        let repo = Repo::in_memory(identity, &mut rng).expect("in-memory store opens");
        TestNode { repo, rng }
    }
}

/// How long test certificates last: a month around [`NOW_MS`].
pub const CERT_VALIDITY_MS: i64 = 30 * 24 * 3600 * 1000;

/// The organisation every test node is enrolled in (the same key in every test).
pub fn test_org() -> OrgKey {
    OrgKey::generate("Testkommune", &mut StdRng::seed_from_u64(0x0_5e_ed))
}

/// Enrolls `repo` in `org` with a certificate valid from a day before [`NOW_MS`] for `validity_ms`.
pub fn enroll(repo: &Repo, org: &OrgKey, validity_ms: i64) {
    let cert = org
        .approve(&repo.enrollment_request(), NOW_MS - DAY_MS, validity_ms)
        .expect("test enrolment is valid");
    repo.install_certificate(&cert)
        .expect("certificate installs");
}

/// One day in ms.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// `2026-11-23T{hhmm}:00+01:00`.
pub fn at(hhmm: &str) -> Timestamp {
    Timestamp::parse(&format!("2026-11-23T{hhmm}:00+01:00")).expect("test time is valid")
}

/// Copies everything `from` holds into `to` (one direction), through export and import.
pub fn push(from: &Repo, to: &Repo) {
    let bytes = from.export_unchecked(None).expect("export");
    // A receiving clock after every test's data: merging, not dating, is what these test.
    let later = Timestamp::parse("2026-12-31T00:00:00+01:00").expect("test time is valid");
    to.import(later, &bytes).expect("import");
}

/// Exchanges everything both ways.
pub fn sync(a: &Repo, b: &Repo) {
    push(a, b);
    push(b, a);
}

/// Every document a node holds with its heads, in id order: equal snapshots mean equal replicas.
pub fn snapshot(repo: &Repo) -> Vec<(String, Heads)> {
    let store = repo.store();
    store
        .doc_ids("")
        .expect("list documents")
        .into_iter()
        .map(|id| {
            let heads = store
                .with_doc(&id, |d| d.clone().heads())
                .expect("load")
                .expect("listed document exists");
            (id.to_string(), heads)
        })
        .collect()
}

/// Two sync sessions wired back to back in memory, pumped until neither has anything to say.
#[derive(Debug)]
pub struct Link {
    /// A's session with B.
    pub a: omsyn_core::sync::Session,
    /// B's session with A.
    pub b: omsyn_core::sync::Session,
}

/// A fixed "now" for sessions in tests (ms since the Unix epoch): 2026-11-23T12:00:00+01:00, the
/// day [`at`] writes on.
pub const NOW_MS: i64 = 1_795_431_600_000;

impl Link {
    /// Opens sessions between `a` and `b`.
    pub fn open(a: &Repo, b: &Repo) -> Link {
        Link {
            a: omsyn_core::sync::Session::new(b.id(), a.store()),
            b: omsyn_core::sync::Session::new(a.id(), b.store()),
        }
    }

    /// Moves bytes both ways until quiet, each side with its own policy, at `now_ms`. Errors do
    /// not panic: each side's first error is returned (as text), for tests of refusals.
    pub fn exchange(
        &mut self,
        (a, pa): (&Repo, &dyn omsyn_core::sync::SharePolicy),
        (b, pb): (&Repo, &dyn omsyn_core::sync::SharePolicy),
        now_ms: i64,
    ) -> (Option<String>, Option<String>) {
        let (mut ea, mut eb) = (None, None);
        for _ in 0..100 {
            if let Err(e) = self.a.handle_local_change(a.store(), pa, now_ms) {
                ea.get_or_insert(e.to_string());
            }
            if let Err(e) = self.b.handle_local_change(b.store(), pb, now_ms) {
                eb.get_or_insert(e.to_string());
            }
            let mut moved = false;
            while let Some(bytes) = self.a.poll_transmit() {
                moved = true;
                if !self.b.is_closed()
                    && let Err(e) = self.b.handle_bytes(b.store(), pb, now_ms, &bytes)
                {
                    eb.get_or_insert(e.to_string());
                }
            }
            while let Some(bytes) = self.b.poll_transmit() {
                moved = true;
                if !self.a.is_closed()
                    && let Err(e) = self.a.handle_bytes(a.store(), pa, now_ms, &bytes)
                {
                    ea.get_or_insert(e.to_string());
                }
            }
            if !moved {
                return (ea, eb);
            }
        }
        panic!("sessions did not settle");
    }

    /// Moves bytes both ways until quiet; returns the number of exchanges (a bound on rounds).
    pub fn pump(
        &mut self,
        a: &Repo,
        b: &Repo,
        policy: &dyn omsyn_core::sync::SharePolicy,
    ) -> usize {
        let mut exchanges = 0;
        loop {
            // The daemon's commit hook does this; here the test plays the daemon.
            self.a
                .handle_local_change(a.store(), policy, NOW_MS)
                .expect("a pushes");
            self.b
                .handle_local_change(b.store(), policy, NOW_MS)
                .expect("b pushes");
            let mut moved = false;
            while let Some(bytes) = self.a.poll_transmit() {
                self.b
                    .handle_bytes(b.store(), policy, NOW_MS, &bytes)
                    .expect("b handles a's bytes");
                moved = true;
            }
            while let Some(bytes) = self.b.poll_transmit() {
                self.a
                    .handle_bytes(a.store(), policy, NOW_MS, &bytes)
                    .expect("a handles b's bytes");
                moved = true;
            }
            if !moved {
                return exchanges;
            }
            exchanges += 1;
            assert!(exchanges < 100, "sessions did not settle");
        }
    }
}

/// What `repo`'s access log holds flagged for review about `patient` as a write without a need.
pub fn writes_without_need(
    repo: &Repo,
    patient: &PatientId,
) -> Vec<omsyn_core::trust::audit::AuditEntry> {
    repo.audit_entries(Some(patient))
        .expect("the access log reads")
        .into_iter()
        .filter(|e| e.action == omsyn_core::trust::audit::AuditAction::WriteWithoutNeed)
        .collect()
}

/// The need gate a test's report or list passes, at [`NOW_MS`]'s day (its log is not the test's
/// concern: tests of the gate finish their disclosures).
pub fn gate(repo: &Repo) -> omsyn_core::repo::Disclosure<'_> {
    repo.disclose(
        at("12:00"),
        omsyn_core::trust::audit::AuditAction::Read,
        "test report",
    )
}

/// A writable copy of `files` of the data directory `tests/fixtures/<name>`, its key files
/// owner-only again (git keeps no permissions, and a node refuses a key others can read).
pub fn fixture_copy(name: &str, files: &[&str]) -> tempfile::TempDir {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let dir = tempfile::tempdir().expect("temporary directory");
    for file in files {
        let to = dir.path().join(file);
        std::fs::copy(fixture.join(file), &to).expect("fixture file copies");
        #[cfg(unix)]
        if file.ends_with(".key") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                .expect("key file permissions");
        }
    }
    dir
}

/// Runs `work` on a thread of its own and returns what it returns, or panics naming `what` if
/// it has not returned within `limit` (a defect that would hang the suite fails it instead;
/// the thread is left to the process's end).
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    match result.recv_timeout(limit) {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {limit:?}"),
    }
}
