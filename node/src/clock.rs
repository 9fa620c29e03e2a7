//! The host's clock and entropy: the only places "now" is read and the OS random number
//! generator is drawn from (omsyn-core takes both as arguments; its clippy configuration forbids
//! reading either). A node's [`Service`] gets [`SystemClock`] and one [`seed`].

use std::sync::{Arc, OnceLock};

use omsyn_core::Repo;
use omsyn_core::service::{Clock, Service};
use omsyn_core::time::{Timestamp, Zone};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// The environment variable naming the node's time zone (IANA, e.g. `Europe/Oslo`).
pub const ZONE_VAR: &str = "OMSYN_TZ";

/// The node's time zone: `OMSYN_TZ`, or Europe/Oslo — never the host's own setting, which on a
/// server is often UTC. Read once per process; [`zone_from_env`] tells the CLI about a bad name
/// before anything runs, and here one falls back to Oslo.
pub fn zone() -> Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    *ZONE.get_or_init(|| zone_from_env().unwrap_or_default())
}

/// The zone `OMSYN_TZ` names (Europe/Oslo when unset or empty), or why it names none.
pub fn zone_from_env() -> Result<Zone, String> {
    match std::env::var(ZONE_VAR) {
        Ok(name) if !name.trim().is_empty() => {
            Zone::parse(&name).map_err(|e| format!("{ZONE_VAR}: {e}"))
        }
        _ => Ok(Zone::OSLO),
    }
}

/// Now, in the node's zone with the offset in force (+01:00 in a Norwegian winter, +02:00 in
/// summer), truncated to milliseconds: finer digits only clutter the journal.
pub fn now() -> Timestamp {
    // Milliseconds now are always within chrono's calendar.
    zone()
        .at_millis(now_ms())
        .unwrap_or_else(|| Timestamp::from_datetime(chrono::Utc::now().fixed_offset()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A moment given in milliseconds since the epoch, in the node's zone at that moment.
pub fn at_millis(ms: i64) -> Option<Timestamp> {
    zone().at_millis(ms)
}

/// The host's clock, as a service reads it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }

    fn at_millis(&self, ms: i64) -> Option<Timestamp> {
        at_millis(ms)
    }
}

/// 32 bytes of the operating system's entropy: the one place it is drawn.
pub fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    StdRng::from_os_rng().fill_bytes(&mut seed);
    seed
}

/// A generator seeded from [`seed`], for what the host makes outside a service (keys at
/// `init`, the dashboard's token, the network's keys).
pub fn rng() -> StdRng {
    StdRng::from_seed(seed())
}

/// The front door for `repo`, on the host's clock and entropy.
pub fn service(repo: Arc<Repo>) -> Arc<Service> {
    Arc::new(Service::new(repo, Arc::new(SystemClock), seed()))
}
