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

/// A moment given in milliseconds since the epoch, in the host's local offset at that moment;
/// `None` if it is out of range.
pub fn at_millis(ms: i64) -> Option<Timestamp> {
    use chrono::TimeZone;
    let t = chrono::Local.timestamp_millis_opt(ms).single()?;
    Some(Timestamp::from_datetime(t.fixed_offset()))
}
