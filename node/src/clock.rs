//! The host's clock and entropy: the only places "now" is read and the OS random number
//! generator is drawn from (omsyn-core takes both as arguments; its clippy configuration forbids
//! reading either). A node's [`Service`] gets [`SystemClock`] and one [`seed`].

use std::sync::Arc;

use omsyn_core::Repo;
use omsyn_core::service::{Clock, Service};
use omsyn_core::time::Timestamp;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Now, in the host's local offset, truncated to milliseconds: finer digits only clutter the
/// journal.
pub fn now() -> Timestamp {
    let t = chrono::Local::now().fixed_offset();
    let t =
        chrono::DurationRound::duration_trunc(t, chrono::TimeDelta::milliseconds(1)).unwrap_or(t);
    Timestamp::from_datetime(t)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A moment given in milliseconds since the epoch, in the host's local offset at that moment.
pub fn at_millis(ms: i64) -> Option<Timestamp> {
    use chrono::TimeZone;
    let t = chrono::Local.timestamp_millis_opt(ms).single()?;
    Some(Timestamp::from_datetime(t.fixed_offset()))
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
