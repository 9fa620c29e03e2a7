//! The host's clock: the only place "now" is read (omsyn-core takes time as an argument).

use omsyn_core::time::Timestamp;

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

/// Earliest and latest times a host may give for documentation: 2000-01-01 and 2100-01-01 (UTC).
/// A time outside is a unit mix-up (seconds or microseconds for milliseconds), not care.
const EARLIEST_MS: i64 = 946_684_800_000;
const LATEST_MS: i64 = 4_102_444_800_000;

/// A moment given in milliseconds since the epoch, in the host's local offset at that moment;
/// `None` outside the years 2000–2099.
pub fn at_millis(ms: i64) -> Option<Timestamp> {
    use chrono::TimeZone;
    if !(EARLIEST_MS..LATEST_MS).contains(&ms) {
        return None;
    }
    let t = chrono::Local.timestamp_millis_opt(ms).single()?;
    Some(Timestamp::from_datetime(t.fixed_offset()))
}
