//! Time values. Core never reads a clock: every "now" is an argument.
//!
//! Clinical times keep the UTC offset they were recorded with (RFC 3339), because the care day of a
//! visit at 00:30 is a local notion: a visit at 00:30+01:00 belongs to that local date, not to the
//! previous UTC day.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

/// A time could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected {expected}")]
pub struct InvalidTime {
    /// What was being parsed ("time", "date", "month").
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// The expected format.
    pub expected: &'static str,
}

/// An instant with the UTC offset it was recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(DateTime<FixedOffset>);

impl Timestamp {
    /// Parses an RFC 3339 timestamp such as `2026-11-23T08:00:00+01:00`.
    pub fn parse(value: &str) -> Result<Self, InvalidTime> {
        DateTime::parse_from_rfc3339(value)
            .map(Self)
            .map_err(|_| InvalidTime {
                what: "time",
                value: value.chars().take(64).collect(),
                expected: "RFC 3339, e.g. 2026-11-23T08:00:00+01:00",
            })
    }

    /// The instant `ms` after the Unix epoch, in UTC (`None` beyond chrono's calendar).
    pub fn from_unix_millis(ms: i64) -> Option<Timestamp> {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| Timestamp(t.fixed_offset()))
    }

    /// Wraps a chrono value (used by the binary, which owns the clock).
    pub fn from_datetime(value: DateTime<FixedOffset>) -> Self {
        Self(value)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// This instant as a change made at it carries it: to the whole second, in milliseconds
    /// (Automerge keeps a change's time in seconds). What every receiver judges the change's
    /// time by, so the writer judges by it too.
    pub fn change_millis(&self) -> i64 {
        self.unix_millis().div_euclid(1000) * 1000
    }

    /// The local calendar day of this instant, in its own offset.
    pub fn day(&self) -> Day {
        Day(self.0.date_naive())
    }

    /// The time of day as `HH:MM`, in its own offset.
    pub fn hhmm(&self) -> String {
        self.0.format("%H:%M").to_string()
    }

    /// Builds a timestamp from a day, a `HH:MM` time and an offset in seconds east of UTC.
    pub fn from_day_hhmm(day: Day, hhmm: &str, offset_secs: i32) -> Result<Self, InvalidTime> {
        let err = || InvalidTime {
            what: "time of day",
            value: hhmm.chars().take(16).collect(),
            expected: "HH:MM",
        };
        let time = chrono::NaiveTime::parse_from_str(hhmm, "%H:%M").map_err(|_| err())?;
        let offset = FixedOffset::east_opt(offset_secs).ok_or_else(err)?;
        day.0
            .and_time(time)
            .and_local_timezone(offset)
            .single()
            .map(Self)
            .ok_or_else(err)
    }

    /// This instant plus `minutes` (in the same offset); unchanged if that would leave the
    /// calendar chrono can represent (hundreds of thousands of years away).
    pub fn plus_minutes(&self, minutes: i64) -> Timestamp {
        chrono::TimeDelta::try_minutes(minutes)
            .and_then(|d| self.0.checked_add_signed(d))
            .map(Self)
            .unwrap_or(*self)
    }

    /// The UTC offset this instant was recorded in, in seconds east of UTC.
    pub fn offset_secs(&self) -> i32 {
        self.0.offset().local_minus_utc()
    }

    /// The instant as Unix seconds, nanoseconds within the second and UTC offset in seconds:
    /// exactly what it holds, for binary forms (see [`Timestamp::from_parts`]).
    pub fn to_parts(&self) -> (i64, u32, i32) {
        (
            self.0.timestamp(),
            self.0.timestamp_subsec_nanos(),
            self.offset_secs(),
        )
    }

    /// Rebuilds a timestamp from [`Timestamp::to_parts`] (`None` for parts no instant has).
    pub fn from_parts(secs: i64, nanos: u32, offset_secs: i32) -> Option<Timestamp> {
        let offset = FixedOffset::east_opt(offset_secs)?;
        chrono::DateTime::from_timestamp(secs, nanos).map(|t| Timestamp(t.with_timezone(&offset)))
    }

    /// Whole minutes from `self` to `later` (negative if `later` is earlier).
    pub fn minutes_until(&self, later: &Timestamp) -> i64 {
        (later.0 - self.0).num_minutes()
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidTime;
    fn try_from(value: String) -> Result<Self, InvalidTime> {
        Self::parse(&value)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

impl std::str::FromStr for Timestamp {
    type Err = InvalidTime;
    fn from_str(s: &str) -> Result<Self, InvalidTime> {
        Self::parse(s)
    }
}

/// A local calendar day (`YYYY-MM-DD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day(NaiveDate);

impl Day {
    /// Parses `YYYY-MM-DD`.
    pub fn parse(value: &str) -> Result<Self, InvalidTime> {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(Self)
            .map_err(|_| InvalidTime {
                what: "date",
                value: value.chars().take(32).collect(),
                expected: "YYYY-MM-DD",
            })
    }

    /// Whether the day lies in [`SUPPORTED_YEARS`].
    pub fn is_supported(&self) -> bool {
        SUPPORTED_YEARS.contains(&self.0.year())
    }

    /// The month this day is in.
    pub fn month(&self) -> Month {
        Month {
            year: self.0.year(),
            month: self.0.month(),
        }
    }

    /// Days since 0001-01-01 (day 1), the compact wire form.
    pub fn to_days(&self) -> i32 {
        self.0.num_days_from_ce()
    }

    /// Rebuilds a day from [`Day::to_days`].
    pub fn from_days(days: i32) -> Option<Day> {
        NaiveDate::from_num_days_from_ce_opt(days).map(Day)
    }

    /// The UTC calendar day of an instant (ms since the Unix epoch).
    pub fn from_unix_millis(ms: i64) -> Option<Day> {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| Day(t.date_naive()))
    }

    /// The following day, or `None` at the end of chrono's range.
    pub fn next(&self) -> Option<Day> {
        self.0.succ_opt().map(Day)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl TryFrom<String> for Day {
    type Error = InvalidTime;
    fn try_from(value: String) -> Result<Self, InvalidTime> {
        Self::parse(&value)
    }
}

impl From<Day> for String {
    fn from(d: Day) -> String {
        d.to_string()
    }
}

impl std::str::FromStr for Day {
    type Err = InvalidTime;
    fn from_str(s: &str) -> Result<Self, InvalidTime> {
        Self::parse(s)
    }
}

/// The years a document may be dated in: a date outside is a unit mix-up or a forged date, never
/// care (and the wire's compact month form holds only these).
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 2000..=2099;

/// A calendar month (`YYYY-MM`): the period of visit-plan, journal and message documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(value: &str) -> Result<Self, InvalidTime> {
        let err = || InvalidTime {
            what: "month",
            value: value.chars().take(32).collect(),
            expected: "YYYY-MM",
        };
        let (y, m) = value.split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year: i32 = y.parse().map_err(|_| err())?;
        let month: u32 = m.parse().map_err(|_| err())?;
        if !(1..=12).contains(&month) || !SUPPORTED_YEARS.contains(&year) {
            return Err(err());
        }
        Ok(Self { year, month })
    }
}

impl Month {
    /// Whether the month lies in [`SUPPORTED_YEARS`].
    pub fn is_supported(&self) -> bool {
        SUPPORTED_YEARS.contains(&self.year)
    }

    /// Months since year 0 (`year * 12 + month - 1`), the compact wire form.
    pub fn to_index(&self) -> u32 {
        (self.year.max(0) as u32) * 12 + (self.month - 1)
    }

    /// Rebuilds a month from [`Month::to_index`].
    pub fn from_index(index: u32) -> Option<Month> {
        let year = i32::try_from(index / 12).ok()?;
        SUPPORTED_YEARS.contains(&year).then_some(Month {
            year,
            month: index % 12 + 1,
        })
    }
}

impl TryFrom<String> for Month {
    type Error = InvalidTime;
    fn try_from(value: String) -> Result<Self, InvalidTime> {
        Self::parse(&value)
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A time zone with its summer time, by its IANA name: where a node reads "now" and a work
/// list's local times. Europe/Oslo unless the host says otherwise (core reads no environment:
/// the binary picks the zone and hands it in). Stored times are not converted: each keeps the
/// offset its writer had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(chrono_tz::Tz);

/// A local time that cannot be read as one instant in a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalTimeError {
    /// Not a date or `HH:MM` at all.
    #[error(transparent)]
    Invalid(#[from] InvalidTime),
    /// The time falls in the hour the clocks skip when summer time begins.
    #[error("{time} does not happen in {zone} on {day}: the clocks skip it as summer time begins")]
    Skipped {
        /// The day.
        day: Day,
        /// The time asked for, `HH:MM`.
        time: String,
        /// The zone's name.
        zone: &'static str,
    },
}

impl Zone {
    /// Norway's zone: +01:00 in winter, +02:00 in summer.
    pub const OSLO: Zone = Zone(chrono_tz::Europe::Oslo);

    /// A zone by its IANA name (`Europe/Oslo`, `UTC`...).
    pub fn parse(name: &str) -> Result<Zone, InvalidTime> {
        name.trim()
            .parse::<chrono_tz::Tz>()
            .map(Zone)
            .map_err(|_| InvalidTime {
                what: "time zone",
                value: name.chars().take(64).collect(),
                expected: "an IANA zone name, e.g. Europe/Oslo",
            })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant `ms` after the Unix epoch, in this zone's offset at that instant.
    pub fn at_millis(&self, ms: i64) -> Option<Timestamp> {
        use chrono::TimeZone;
        let t = self.0.timestamp_millis_opt(ms).single()?;
        Some(Timestamp(t.fixed_offset()))
    }

    /// The same instant as `t`, in this zone's offset then (for showing a stored time).
    pub fn show(&self, t: &Timestamp) -> Timestamp {
        Timestamp(t.0.with_timezone(&self.0).fixed_offset())
    }

    /// `HH:MM` on `day`, local time in this zone, with the offset in force then. A time in the
    /// hour skipped when summer time begins is refused (02:30 on 29 March 2026 in Oslo never
    /// happens: a visit planned then must be planned anew); a time that happens twice when it
    /// ends (02:30 on 25 October 2026) is the first, still in summer time — what a list made
    /// before the night means.
    pub fn local(&self, day: Day, hhmm: &str) -> Result<Timestamp, LocalTimeError> {
        use chrono::LocalResult;
        let time = chrono::NaiveTime::parse_from_str(hhmm, "%H:%M").map_err(|_| InvalidTime {
            what: "time of day",
            value: hhmm.chars().take(16).collect(),
            expected: "HH:MM",
        })?;
        match day.0.and_time(time).and_local_timezone(self.0) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                Ok(Timestamp(t.fixed_offset()))
            }
            LocalResult::None => Err(LocalTimeError::Skipped {
                day,
                time: hhmm.to_owned(),
                zone: self.name(),
            }),
        }
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::OSLO
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
