//! The front door: every front end — the CLI, the dashboard and the home API, the apps' bindings —
//! calls the node through one [`Service`] with typed requests, and gets typed results back.
//!
//! What a front end would otherwise each do in its own way happens here, once:
//! - **parse and validate** what a person or a device typed: ids ([`Service::patient`] also
//!   takes a patient's name when it names one patient), times ([`When`]), clinical values;
//! - **the clock and the RNG**: the host injects a [`Clock`] and a seed when it builds the
//!   service; no front end reads a clock or seeds an RNG for a request;
//! - **the need gate and the access log**: every read of patient data goes through
//!   [`Service::open`] (one patient) or [`Service::shown`] / [`Service::disclosed`] (a list, a
//!   report), which check need and log the read naming each patient;
//! - **the call into the [`Repo`]**, whose transactions judge every change by the rules peers apply.
//!
//! Front ends only translate (arguments, JSON bodies, FFI records) and render (text, JSON). One
//! file per request family: `journal` (what a nurse documents), `messages`, `care` (conflicts and
//! tasks), `visits` (the plan), `views` (a patient's record, the day, the work list), `export`.

mod care;
mod export;
mod home;
mod init;
mod journal;
mod messages;
mod records;
mod staff;
mod status;
mod views;
mod visits;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::docs::record::PatientField;
use crate::ids::{EntryId, FlagId, MedicationId, PatientId, StaffId, VisitId};
use crate::pipeline::rules;
use crate::remedy::Remedy;
use crate::repo::{Disclosure, Gate};
use crate::trust::audit::AuditAction;
use crate::{Day, Repo, RepoError, Timestamp};

pub use care::TaskScope;
pub use export::FhirExport;
pub use init::NewNode;
pub use journal::{Dose, NewEntry, Observation, VisitDone, VisitMissed};
pub use messages::NewMessage;
pub use staff::{Registered, StaffMember, UsualStaff};
pub use status::{PatientFreshness, PeerState, SyncState};
pub use views::{RecordView, ShownPatient, WorkList};
pub use visits::{ChangeVisit, PlanVisit};

/// The host's clock and time zone: the only source of "now" a request sees.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in the host's time zone.
    fn now(&self) -> Timestamp;
    /// The moment `ms` milliseconds after the Unix epoch, in the host's time zone at that
    /// moment; `None` if the host cannot name it.
    fn at_millis(&self, ms: i64) -> Option<Timestamp>;
}

/// When something happened, as a front end received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum When {
    /// Now, by the service's clock.
    #[default]
    Now,
    /// An RFC 3339 time a person typed (`2026-03-02T08:10:00+01:00`).
    Text(String),
    /// Milliseconds since the Unix epoch, as an app's platform gives them.
    Millis(i64),
}

impl When {
    /// `Some(text)` as typed, `None` as now.
    pub fn text(value: Option<&str>) -> When {
        value.map_or(When::Now, |v| When::Text(v.to_owned()))
    }

    /// `Some(ms)` as given, `None` as now.
    pub fn millis(value: Option<i64>) -> When {
        value.map_or(When::Now, When::Millis)
    }
}

/// How long a list view, once logged, is not logged again when shown again: the dashboard and
/// the apps refresh their views every few seconds, and the access log records that a person saw
/// the board, not each refresh.
const READ_LOG_INTERVAL_MS: i64 = 60_000;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value of the request is malformed or out of range; nothing was read or written.
    #[error("{field}: {reason}")]
    Invalid {
        /// The request's field, as the front ends name it (`patient`, `at`, `pictures[1]`...).
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
        /// A step that would help, for the front end to name in its own terms.
        remedy: Option<Remedy>,
    },
    /// The repo refused or failed (no need for the patient, a rule, the store).
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl ServiceError {
    /// A refusal of `field`, saying why.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> ServiceError {
        ServiceError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
            remedy: None,
        }
    }

    /// This refusal, with a step that would help.
    pub fn with_remedy(self, remedy: Remedy) -> ServiceError {
        match self {
            ServiceError::Invalid { field, reason, .. } => ServiceError::Invalid {
                field,
                reason,
                remedy: Some(remedy),
            },
            e => e,
        }
    }

    /// The step that would help, if one is known.
    pub fn remedy(&self) -> Option<&Remedy> {
        match self {
            ServiceError::Invalid { remedy, .. } => remedy.as_ref(),
            ServiceError::Repo(RepoError::AccessDenied(denied)) => denied.remedy.as_ref(),
            ServiceError::Repo(_) => None,
        }
    }
}

/// When a list view was last logged, and the patients that read named.
type LoggedView = (i64, BTreeSet<PatientId>);

/// A node's front door. Cheap to share (`Arc<Service>`): it holds the repo, the clock, one RNG
/// and which list views were logged lately.
#[derive(Debug)]
pub struct Service {
    repo: Arc<Repo>,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
    logged_views: Mutex<HashMap<String, LoggedView>>,
}

impl Service {
    /// A service over `repo`, reading time from `clock` and drawing ids from an RNG seeded
    /// with `seed` (the host's entropy; a test's fixed seed replays exactly).
    pub fn new(repo: Arc<Repo>, clock: Arc<dyn Clock>, seed: [u8; 32]) -> Service {
        Service {
            repo,
            clock,
            rng: Mutex::new(StdRng::from_seed(seed)),
            logged_views: Mutex::default(),
        }
    }

    /// The repo below (for what is not patient data: identity, peers, certificates).
    pub fn repo(&self) -> &Arc<Repo> {
        &self.repo
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Today, in the host's zone.
    pub fn today(&self) -> Day {
        self.now().day()
    }

    /// The service's RNG, for ids and nonces. A poisoned lock (a panic elsewhere while drawing)
    /// leaves a usable generator: its state is never half-written.
    pub fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The moment `when` names, checked to lie in 2000–2099.
    pub fn time(&self, field: &'static str, when: &When) -> Result<Timestamp, ServiceError> {
        let t = match when {
            When::Now => return Ok(self.now()),
            When::Text(text) => Timestamp::parse(text.trim()).map_err(|e| {
                ServiceError::invalid(field, format!("{e} (e.g. 2026-03-02T08:10:00+01:00)"))
            })?,
            When::Millis(ms) => self.clock.at_millis(*ms).ok_or_else(|| {
                ServiceError::invalid(
                    field,
                    format!("{ms} ms since 1970 is not a time the clock can name"),
                )
            })?,
        };
        // The bounds every receiver applies (a time outside is a unit mix-up, not care).
        if !(rules::EARLIEST_MS..rules::LATEST_MS).contains(&t.unix_millis()) {
            return Err(ServiceError::invalid(
                field,
                format!("{t} is outside 2000-2099 (milliseconds since 1970 expected, or RFC 3339)"),
            ));
        }
        Ok(t)
    }

    /// When something documented happened: [`Service::time`], and not more than a day after
    /// now — the grace every receiver allows a clock that is a little off; documentation
    /// records what has happened.
    pub fn event_time(&self, field: &'static str, when: &When) -> Result<Timestamp, ServiceError> {
        let t = self.time(field, when)?;
        let now = self.now();
        if t.unix_millis() > now.unix_millis().saturating_add(rules::FUTURE_GRACE_MS) {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "{t} is more than a day after now ({now}): documentation records what has happened"
                ),
            ));
        }
        Ok(t)
    }

    /// A day as typed in `field` (`YYYY-MM-DD`), today when none.
    pub fn day(&self, field: &'static str, value: Option<&str>) -> Result<Day, ServiceError> {
        match value.map(str::trim) {
            None | Some("") => Ok(self.today()),
            Some(v) => Day::parse(v).map_err(|e| ServiceError::invalid(field, e)),
        }
    }

    /// The patient `value` names: a patient id, or a name as the record spells it (any case)
    /// when exactly one patient on this node has it, or a name as a list shows it ("Kari Dahl
    /// (f. 12.03.1941)", copied from a list that told two apart).
    pub fn patient(&self, value: &str) -> Result<PatientId, ServiceError> {
        let value = value.trim();
        if let Ok(id) = PatientId::parse(value) {
            return Ok(id);
        }
        let named = if is_national_id(value) {
            self.with_national_id(value)?
        } else {
            let names = self.repo.names_and_hints()?;
            let same = |a: &str, b: &str| a.trim().to_lowercase() == b.trim().to_lowercase();
            let by_name: Vec<PatientId> = (names.iter())
                .filter(|(_, (name, _))| same(name, value))
                .map(|(id, _)| id.clone())
                .collect();
            // Not a name: a label, "NAME (what tells her apart)" — her hint or her id.
            let label = (value.strip_suffix(')')).and_then(|v| v.rsplit_once(" ("));
            match label {
                Some((name, apart)) if by_name.is_empty() => (names.iter())
                    .filter(|(id, (n, hint))| {
                        same(n, name)
                            && (id.as_str() == apart.trim()
                                || hint.as_deref().is_some_and(|h| same(h, apart)))
                    })
                    .map(|(id, _)| id.clone())
                    .collect(),
                _ => by_name,
            }
        };
        // Only patients this user may see are found by name: a lookup must not tell who else
        // the node holds. (Nothing is shown yet, so nothing is logged; the read that follows is.)
        let mut gate = self.disclose(AuditAction::Read, "patient lookup");
        let mut matches = Vec::new();
        for id in named {
            if gate.admits(&id)? {
                matches.push(id);
            }
        }
        match matches.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ServiceError::invalid(
                "patient",
                format!(
                    "no patient on this node is named {value:?}; give a patient id (p-…), a name as the record has it, or a national id (11 digits)"
                ),
            )),
            many => {
                // Each told apart (all passed the gate), beside the id to give: what tells them
                // apart is shown, so the read is logged.
                let labels = crate::repo::tell_apart(&self.repo.names_and_hints()?, many);
                let named: Vec<String> = (many.iter())
                    .map(|id| match labels.get(id) {
                        Some(label) if !label.contains(id.as_str()) => format!("{label} {id}"),
                        _ => id.to_string(),
                    })
                    .collect();
                // Logged naming these only: the others of the name stay unsaid, even in the log.
                self.shown("patient lookup", many.to_vec(), |p| p)?;
                Err(ServiceError::invalid(
                    "patient",
                    format!(
                        "{} patients are named {value:?}; give one of their ids: {}",
                        many.len(),
                        named.join(", ")
                    ),
                ))
            }
        }
    }

    /// A visit id.
    pub fn visit(&self, value: &str) -> Result<VisitId, ServiceError> {
        VisitId::parse(value.trim()).map_err(|e| ServiceError::invalid("visit", e))
    }

    /// An optional visit id.
    pub fn optional_visit(&self, value: Option<&str>) -> Result<Option<VisitId>, ServiceError> {
        value.map(|v| self.visit(v)).transpose()
    }

    /// A journal entry's id (`field` names which: `entry`, `reply_to`...).
    pub fn entry(&self, field: &'static str, value: &str) -> Result<EntryId, ServiceError> {
        EntryId::parse(value.trim()).map_err(|e| ServiceError::invalid(field, e))
    }

    /// One staff id, as typed in `field`.
    pub fn staff_member(&self, field: &'static str, value: &str) -> Result<StaffId, ServiceError> {
        staff_id(field, value)
    }

    /// A medication's id on a patient's record.
    pub fn medication(&self, value: &str) -> Result<MedicationId, ServiceError> {
        MedicationId::parse(value.trim()).map_err(|e| ServiceError::invalid("medication", e))
    }

    /// The patients whose record holds this national id (fødselsnummer), among those this user
    /// may see: only their records are read (as only a person typing one asks).
    fn with_national_id(&self, value: &str) -> Result<Vec<PatientId>, ServiceError> {
        let mut gate = self.disclose(AuditAction::Read, "patient lookup");
        let mut found = Vec::new();
        for (id, _) in self.repo.patients()? {
            if !gate.admits(&id)? {
                continue;
            }
            let record = self.repo.record(&id)?;
            if record.field(PatientField::NationalId) == Some(value) {
                found.push(id);
            }
        }
        Ok(found)
    }

    /// A field of the patient record, by the name people type (`phone`, `gp`, `location`...).
    pub fn patient_field(&self, value: &str) -> Result<PatientField, ServiceError> {
        PatientField::parse(value.trim()).ok_or_else(|| {
            let known = PatientField::ALL.map(|f| f.as_str()).join(", ");
            ServiceError::invalid(
                "field",
                format!("unknown field {value:?}; expected one of {known}"),
            )
        })
    }

    /// A safety flag's id on a patient's record.
    pub fn flag(&self, value: &str) -> Result<FlagId, ServiceError> {
        FlagId::parse(value.trim()).map_err(|e| ServiceError::invalid("flag", e))
    }

    /// Opens one patient's data for `what`: checked against this user's need (refused, and the
    /// refusal logged, without one) and logged. Returns the purpose the read was logged under.
    pub fn open(&self, patient: &PatientId, what: &str) -> Result<String, ServiceError> {
        Ok(self.repo.open_patient(self.now(), patient, what)?)
    }

    /// Whether this user may be shown `patient`'s data for `view`: the gate's answer for one
    /// patient, the read logged as `shown` logs it (a refusal too).
    pub fn may_show(&self, view: &str, patient: &PatientId) -> bool {
        (self.shown(view, vec![patient.clone()], |p| p)).is_ok_and(|shown| !shown.is_empty())
    }

    /// Keeps the `items` whose patient passes the need gate; the read of `view` is logged naming
    /// them (not again within a minute of the same view's last logged read).
    pub fn shown<T>(
        &self,
        view: &str,
        items: Vec<T>,
        patient_of: impl Fn(&T) -> &PatientId,
    ) -> Result<Vec<T>, ServiceError> {
        let mut disclosure = self.disclose(AuditAction::Read, view);
        for item in &items {
            disclosure.admits(patient_of(item))?;
        }
        let gate = self.disclosed(disclosure, view)?;
        Ok(items
            .into_iter()
            .filter(|i| gate.shows(patient_of(i)))
            .collect())
    }

    /// A read of many patients' data (a report, a board, an export) through the need gate, as
    /// it goes; end it with [`Service::disclosed`].
    pub fn disclose(&self, action: AuditAction, view: &str) -> Disclosure<'_> {
        self.repo.disclose(self.now(), action, view)
    }

    /// Ends a [`Service::disclose`]: logged naming the patients shown, unless `view` was logged
    /// within the last minute (reads and exports are logged every time; see
    /// [`READ_LOG_INTERVAL_MS`]).
    pub fn disclosed(&self, disclosure: Disclosure<'_>, view: &str) -> Result<Gate, ServiceError> {
        let now = self.now().unix_millis();
        let shown = disclosure.gate().shown.clone();
        // A refresh is not a new read only if it shows no patient the last logged read of the
        // same view did not name, and refuses nobody (a refusal is always logged).
        let covered = disclosure.gate().refused.is_empty() && self.view_covered(view, &shown, now);
        let gate = disclosure.finish_logging(!covered)?;
        if !covered {
            // Remembered only once the log entry is written: a failed write logs next time.
            self.lock_views().insert(view.to_owned(), (now, shown));
        }
        Ok(gate)
    }

    /// Whether `view`'s last logged read, within the interval, named every patient in `shown`.
    fn view_covered(&self, view: &str, shown: &BTreeSet<PatientId>, now: i64) -> bool {
        let mut logged = self.lock_views();
        // Views not logged within the interval are forgotten, so the map stays small.
        logged.retain(|_, (t, _)| now - *t < READ_LOG_INTERVAL_MS);
        logged
            .get(view)
            .is_some_and(|(_, named)| shown.is_subset(named))
    }

    fn lock_views(&self) -> MutexGuard<'_, HashMap<String, LoggedView>> {
        self.logged_views.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` with the repo, now and the service's RNG: for a family of requests that
    /// lives beside its own crate (the planner's acceptance), so it too gets its clock and RNG
    /// here.
    pub fn act<T, E>(
        &self,
        work: impl FnOnce(&Repo, Timestamp, &mut StdRng) -> Result<T, E>,
    ) -> Result<T, E> {
        let now = self.now();
        // A generator of its own, seeded from the service's: the service's lock is held for a
        // draw, not for the whole write (a plan checked over a day, a work list imported), so
        // the other front ends' writes do not queue behind it; the same seed still makes the
        // same ids for the same calls in the same order.
        let mut rng = StdRng::from_rng(&mut *self.rng());
        work(&self.repo, now, &mut rng)
    }

    /// Runs `work` with the repo, now and the RNG: a write's three inputs.
    fn write<T>(
        &self,
        work: impl FnOnce(&Repo, Timestamp, &mut StdRng) -> Result<T, RepoError>,
    ) -> Result<T, ServiceError> {
        Ok(self.act(work)?)
    }
}

/// A Norwegian national id (fødselsnummer or D-number) as typed: eleven digits.
fn is_national_id(value: &str) -> bool {
    value.len() == 11 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Refuses an empty or blank text.
fn required(field: &'static str, text: &str, what: &str) -> Result<(), ServiceError> {
    if text.trim().is_empty() {
        return Err(ServiceError::invalid(
            field,
            format!("{what} must not be empty"),
        ));
    }
    Ok(())
}

/// A staff id as typed in `field`.
fn staff_id(field: &'static str, value: &str) -> Result<StaffId, ServiceError> {
    StaffId::parse(value.trim()).map_err(|e| ServiceError::invalid(field, e))
}
