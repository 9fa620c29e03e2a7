//! A writer process for the crash test: appends journal notes to the node in `argv[1]` forever and
//! prints each entry's id on stdout only after the write call returned Ok. The test kills it with
//! SIGKILL at random moments and checks every printed id survived.

use std::io::Write;

use omsyn_core::ids::PatientId;
use omsyn_core::{Repo, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(patient), Some(seed)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: omsyn-crash-writer DATA_DIR PATIENT_ID SEED");
        std::process::exit(2);
    };
    let repo = match Repo::open(
        std::path::Path::new(&dir),
        None,
        &mut StdRng::seed_from_u64(0),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    let Ok(patient) = PatientId::parse(&patient) else {
        eprintln!("bad patient id");
        std::process::exit(2);
    };
    let mut rng = StdRng::seed_from_u64(seed.parse().unwrap_or(0));
    let t = Timestamp::parse("2026-11-23T08:00:00+01:00").unwrap_or_else(|_| std::process::exit(3));
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        match repo.add_note(
            t,
            &mut rng,
            &patient,
            None,
            t,
            &format!("note {i} from writer"),
        ) {
            Ok(entry) => {
                if writeln!(out, "{}", entry.id)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    std::process::exit(0);
                }
            }
            Err(e) => {
                eprintln!("write failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
