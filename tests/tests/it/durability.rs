//! Durability with a real process: a writer appending journal entries is killed with SIGKILL at
//! random moments, again and again; every entry whose write call had returned Ok (and was printed)
//! is present after reopening.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{EntryId, StaffId};
use omsyn_core::{NodeProfile, Repo, Role};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ROUNDS: usize = 8;

#[test]
fn entries_acknowledged_before_sigkill_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let patient = {
        let repo = Repo::init(
            dir.path(),
            NodeProfile {
                version: PROFILE_VERSION,
                role: Role::Base,
                name: "crash base".into(),
                staff_id: Some(StaffId::parse("K1").unwrap()),
                patient: None,
                zone: None,
            },
            None,
            &mut rng,
        )
        .unwrap();
        let t = omsyn_tests::at("07:00");
        repo.add_patient(t, &mut rng, &[(PatientField::Name, "Tor Lund".into())])
            .unwrap()
    };
    let mut acknowledged: Vec<EntryId> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omsyn-crash-writer"))
            .arg(dir.path())
            .arg(patient.as_str())
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a random number of acknowledgements: the next write is then in flight, at a
        // point within it that differs from round to round.
        let kill_after = rng.random_range(1..40);
        for _ in 0..kill_after {
            match lines.next() {
                Some(Ok(line)) => acknowledged.push(EntryId::parse(&line).unwrap()),
                other => panic!("writer stopped early: {other:?}"),
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix.
        child.wait().unwrap();
        // Anything it managed to print before dying was acknowledged too.
        for line in lines {
            acknowledged.push(EntryId::parse(&line.unwrap()).unwrap());
        }

        let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(1)).unwrap();
        let (journal, unreadable) = repo.journal(&patient).unwrap();
        assert!(unreadable.is_empty());
        for id in &acknowledged {
            assert!(
                journal.iter().any(|e| &e.id == id),
                "round {round}: acknowledged entry {id} lost after SIGKILL"
            );
        }
    }
    assert!(acknowledged.len() >= ROUNDS);
}
