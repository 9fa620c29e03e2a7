//! [`OmsynNode`]: the object an app holds. One per data directory.

use std::path::PathBuf;
use std::sync::Arc;

use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::docs::journal::Entry;
use omsyn_core::repo::Correction;
use omsyn_core::service::{
    self, Dose, NewEntry, NewMessage, NewNode, Observation, RecordView, Service, ServiceError,
    TaskScope, VisitDone, When,
};
use omsyn_core::store::StoreKey;
use omsyn_core::trust::Certificate;
use omsyn_core::{NodeProfile, Repo};
use omsyn_node::clock;
use omsyn_node::net::NetOptions;
use omsyn_node::net::ticket::Ticket;

use crate::error::{OmsynError, invalid};
use crate::events::{EventSink, NodeListener};
use crate::sync::{self, SyncContext, SyncRunner};
use crate::types::*;

/// An Omsyn node inside an app: its documents in an encrypted store in `data_dir`, and (when
/// started) sync with peers in the background.
#[derive(Debug, uniffi::Object)]
pub struct OmsynNode {
    runtime: Runtime,
    ctx: SyncContext,
    sync: tokio::sync::Mutex<Option<SyncRunner>>,
}

/// The node's own tokio runtime. Dropping it must never block the app's thread or panic inside
/// an async context, so it is shut down in the background.
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Runtime, OmsynError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("omsyn")
            .enable_all()
            .build()
            .map(|rt| Runtime(Some(rt)))
            .map_err(|e| OmsynError::Storage(format!("starting the node's runtime: {e}")))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle(),
            None => unreachable!("the runtime lives until the node is dropped"),
        }
    }

    /// Runs store work on the blocking pool; the caller only awaits the result.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, OmsynError> + Send + 'static,
    ) -> Result<T, OmsynError> {
        self.handle()
            .spawn_blocking(work)
            .await
            .map_err(|e| OmsynError::Storage(format!("the operation failed: {e}")))?
    }

    /// Runs async work on the runtime (network: iroh needs a tokio context).
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, OmsynError>> + Send + 'static,
    ) -> Result<T, OmsynError> {
        self.handle()
            .spawn(work)
            .await
            .map_err(|e| OmsynError::Network(format!("the operation failed: {e}")))?
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn store_key(bytes: &[u8]) -> Result<StoreKey, OmsynError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
        OmsynError::InvalidInput(format!(
            "the store key must be 32 bytes (from the platform keystore); got {}",
            bytes.len()
        ))
    })?;
    Ok(StoreKey::from_bytes(bytes))
}

fn profile(setup: NodeSetup) -> Result<NodeProfile, OmsynError> {
    let role: omsyn_core::Role = setup.role.into();
    if setup.name.trim().is_empty() {
        return Err(OmsynError::InvalidInput("the node needs a name".into()));
    }
    let profile = NewNode {
        role,
        name: setup.name,
        staff_id: setup.staff_id,
        patient: setup.patient,
        zone: setup.zone,
    }
    .profile()?;
    match role {
        omsyn_core::Role::Nurse if profile.staff_id.is_none() => Err(OmsynError::InvalidInput(
            "a nurse's phone needs the nurse's staff id (HPR or employee number)".into(),
        )),
        omsyn_core::Role::HomeUnit if profile.patient.is_none() => Err(OmsynError::InvalidInput(
            "a home unit needs the patient it serves".into(),
        )),
        _ => Ok(profile),
    }
}

impl OmsynNode {
    async fn opened(
        runtime: Runtime,
        open: impl FnOnce() -> Result<Repo, OmsynError> + Send + 'static,
    ) -> Result<Arc<OmsynNode>, OmsynError> {
        let repo = Arc::new(runtime.blocking(open).await?);
        omsyn_node::net::daemon::dispose_off_path(&repo);
        let sink = EventSink::start()
            .map_err(|e| OmsynError::Storage(format!("starting the event thread: {e}")))?;
        let ctx = SyncContext {
            changed: omsyn_node::net::daemon::watch_commits(&repo),
            service: clock::service(repo.clone()),
            repo,
            sink,
            connected: Arc::default(),
            known_conflicts: Arc::default(),
            known_tasks: Arc::default(),
            revoked: Arc::new(tokio::sync::watch::channel(None).0),
        };
        // Conflicts already in the store are known: events announce only new ones.
        let existing = ctx.clone();
        runtime
            .blocking(move || {
                let conflicts = existing.repo.conflicts(None)?;
                if let Ok(mut known) = existing.known_conflicts.lock() {
                    known.extend(conflicts.iter().map(|c| c.id.to_string()));
                }
                let tasks = existing.repo.my_tasks(existing.service.now())?;
                if let Ok(mut known) = existing.known_tasks.lock() {
                    known.extend(tasks.iter().map(|t| (t.id.to_string(), sync::told(t))));
                }
                Ok(())
            })
            .await?;
        Ok(Arc::new(OmsynNode {
            runtime,
            ctx,
            sync: tokio::sync::Mutex::new(None),
        }))
    }

    fn live(&self) -> Result<Arc<Repo>, OmsynError> {
        match self.ctx.revoked.borrow().clone() {
            Some(reason) => Err(OmsynError::Revoked(format!(
                "this device was revoked ({reason}); its data is destroyed"
            ))),
            None => Ok(self.ctx.repo.clone()),
        }
    }

    /// Store work on the blocking pool, with the repo.
    async fn with_repo<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Repo) -> Result<T, OmsynError> + Send + 'static,
    ) -> Result<T, OmsynError> {
        let repo = self.live()?;
        self.runtime.blocking(move || work(&repo)).await
    }

    /// A request through the node's front door, on the blocking pool.
    async fn with_service<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Service) -> Result<T, OmsynError> + Send + 'static,
    ) -> Result<T, OmsynError> {
        self.live()?;
        let service = self.ctx.service.clone();
        self.runtime.blocking(move || work(&service)).await
    }

    /// A journal write; afterwards the app hears of conflicts it created (a dose twice...). The
    /// entry comes back described as the patient's journal shows it: a dose by its medication
    /// (read from `patient`'s record), a visit by its time.
    async fn write_entry(
        &self,
        patient: Option<String>,
        work: impl FnOnce(&Service) -> Result<Entry, ServiceError> + Send + 'static,
    ) -> Result<JournalEntry, OmsynError> {
        let ctx = self.ctx.clone();
        self.with_service(move |svc| {
            let entry = work(svc)?;
            // From the conflict index: cheap, and a phone holds few patients.
            sync::announce_conflicts(&ctx, None);
            Ok(JournalEntry {
                summary: svc.describe_written(patient.as_deref(), &entry.body),
                ..JournalEntry::from(&entry)
            })
        })
        .await
    }
}

#[uniffi::export]
impl OmsynNode {
    /// Creates a node in `data_dir` (which must hold none), its store encrypted with
    /// `store_key` (32 bytes the app keeps in the Android Keystore or iOS Keychain).
    #[uniffi::constructor]
    pub async fn create(
        data_dir: String,
        store_key: Vec<u8>,
        setup: NodeSetup,
    ) -> Result<Arc<OmsynNode>, OmsynError> {
        let key = self::store_key(&store_key)?;
        let profile = profile(setup)?;
        let runtime = Runtime::new()?;
        Self::opened(runtime, move || {
            let dir = PathBuf::from(data_dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| OmsynError::Storage(format!("creating {}: {e}", dir.display())))?;
            Ok(Repo::init(&dir, profile, Some(key), &mut clock::rng())?)
        })
        .await
    }

    /// Opens the node in `data_dir` with its store key. A wrong key is refused before anything
    /// is read.
    #[uniffi::constructor]
    pub async fn open(data_dir: String, store_key: Vec<u8>) -> Result<Arc<OmsynNode>, OmsynError> {
        let key = self::store_key(&store_key)?;
        let runtime = Runtime::new()?;
        Self::opened(runtime, move || {
            Ok(Repo::open(
                &PathBuf::from(data_dir),
                Some(key),
                &mut clock::rng(),
            )?)
        })
        .await
    }

    /// This node's id (its public key).
    pub fn id(&self) -> String {
        self.ctx.repo.id().to_string()
    }

    /// Receives events from now on (replacing any earlier listener); `None` stops them.
    pub fn set_listener(&self, listener: Option<Arc<dyn NodeListener>>) {
        self.ctx.sink.set_listener(listener);
    }

    /// Who this node is, and until when it is enrolled.
    pub async fn info(&self) -> Result<NodeInfo, OmsynError> {
        self.with_repo(|repo| {
            let until = repo.certificate()?.map(|c| c.grant().not_after_ms);
            Ok(NodeInfo::new(repo.id().to_string(), repo.profile(), until))
        })
        .await
    }

    /// The enrolment request to show (as text or QR code) to the base that approves it.
    pub fn enrollment_request(&self) -> String {
        self.ctx.repo.enrollment_request().to_text()
    }

    /// Installs the certificate the base issued (`omsyn-cert1:…`).
    pub async fn install_certificate(&self, certificate: String) -> Result<NodeInfo, OmsynError> {
        let cert = Certificate::from_text(certificate.trim())?;
        self.with_repo(move |repo| {
            repo.install_certificate(&cert)?;
            Ok(NodeInfo::new(
                repo.id().to_string(),
                repo.profile(),
                Some(cert.grant().not_after_ms),
            ))
        })
        .await
    }

    /// Starts syncing in the background: listens for peers and keeps a session with each of
    /// `options.peers`, reconnecting with backoff. Returns this node's ticket.
    pub async fn start_sync(&self, options: SyncOptions) -> Result<String, OmsynError> {
        self.live()?;
        let mut running = self.sync.lock().await;
        if running.is_some() {
            return Err(OmsynError::SyncState("sync is already running".into()));
        }
        let peers = options
            .peers
            .iter()
            .map(|p| p.parse::<Ticket>().map_err(|e| invalid("peer ticket", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let net = net_options(&options)?;
        let runner = self
            .runtime
            .run(SyncRunner::start(self.ctx.clone(), net, peers))
            .await?;
        let ticket = runner.ticket.clone();
        *running = Some(runner);
        Ok(ticket)
    }

    /// Stops syncing: ends every session and closes the endpoint. Documents stay.
    pub async fn stop_sync(&self) -> Result<(), OmsynError> {
        let runner = self.sync.lock().await.take();
        match runner {
            Some(runner) => {
                self.runtime
                    .run(async move {
                        runner.stop().await;
                        Ok(())
                    })
                    .await
            }
            None => Err(OmsynError::SyncState("sync is not running".into())),
        }
    }

    /// Syncs once with the peer `ticket` names, until both sides are caught up ("sync now").
    /// Uses the background endpoint when sync runs, else a short-lived one.
    pub async fn sync_now(&self, ticket: String) -> Result<SyncSummary, OmsynError> {
        self.live()?;
        let ticket: Ticket = ticket.parse().map_err(|e| invalid("peer ticket", e))?;
        let running = self.sync.lock().await.as_ref().map(|r| r.shared.clone());
        let ctx = self.ctx.clone();
        let peer = ticket.node.to_string();
        let outcome = self
            .runtime
            .run(async move {
                match running {
                    Some(shared) => sync::sync_once(&ctx, &shared, &ticket, false).await,
                    None => {
                        let shared = sync::bind(&ctx, &NetOptions::default()).await?;
                        let outcome = sync::sync_once(&ctx, &shared, &ticket, true).await;
                        shared.net.endpoint.close().await;
                        outcome
                    }
                }
            })
            .await?;
        let s = outcome.stats;
        Ok(SyncSummary {
            peer,
            caught_up: outcome.caught_up,
            docs_sent: s.docs_sent,
            docs_received: s.docs_received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            millis: u64::try_from(outcome.millis).unwrap_or(u64::MAX),
        })
    }

    /// Whether sync runs, the peers met, and how fresh each patient's documents are.
    pub async fn sync_status(&self) -> Result<SyncStatus, OmsynError> {
        let ticket = self.sync.lock().await.as_ref().map(|r| r.ticket.clone());
        let connected = self.ctx.connected.clone();
        self.with_service(move |svc| {
            let state = svc.sync_status()?;
            let live = connected.lock().map(|c| c.clone()).unwrap_or_default();
            let peer_rows = state
                .peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id.to_string(),
                    name: p.certificate.as_ref().map(|c| c.grant().name.clone()),
                    role: p.certificate.as_ref().map(|c| c.grant().role.into()),
                    connected: live.contains_key(&p.id),
                    last_seen_ms: p.record.last_seen_ms,
                    caught_up_ms: p.record.caught_up_ms,
                })
                .collect();
            let patients = state
                .patients
                .into_iter()
                .map(|(patient, name)| {
                    // The peer that holds her documents most recently in sync with ours.
                    let freshest = state
                        .peers
                        .iter()
                        .flat_map(|p| {
                            p.patients
                                .iter()
                                .filter(|f| f.patient == patient)
                                .filter_map(move |f| f.synced_ms.map(|t| (t, p.id.to_string())))
                        })
                        .max_by_key(|(t, _)| *t);
                    PatientStaleness {
                        patient: patient.to_string(),
                        name,
                        last_synced_ms: freshest.as_ref().map(|(t, _)| *t),
                        synced_with: freshest.map(|(_, p)| p),
                    }
                })
                .collect();
            Ok(SyncStatus {
                running: ticket.is_some(),
                ticket,
                peers: peer_rows,
                patients,
            })
        })
        .await
    }

    /// The work list for `day` (`YYYY-MM-DD`): a nurse's assigned visits, a home unit's
    /// patient's visits, a base's every visit; by start time.
    pub async fn work_list(&self, day: String) -> Result<Vec<WorkItem>, OmsynError> {
        self.with_service(move |svc| {
            let day = svc.day("day", Some(&day))?;
            let list = svc.work_list(day)?;
            let names = &list.staff_names;
            Ok((list.visits.into_iter())
                .map(|line| WorkItem::new(line, names))
                .collect())
        })
        .await
    }

    /// A patient's record, plan, visits, journal, messages and conflicts. The read is checked
    /// against this user's need (refused, and the refusal logged, without one) and logged.
    pub async fn patient_record(&self, patient: String) -> Result<PatientRecord, OmsynError> {
        self.with_service(move |svc| {
            let RecordView { view, purpose } = svc.record(&patient, "record")?;
            Ok(PatientRecord::new(view, purpose, &svc.staff_names()?))
        })
        .await
    }

    /// Marks the start of work on a visit in the nurse's day log.
    pub async fn start_visit(
        &self,
        visit: String,
        at_ms: Option<i64>,
    ) -> Result<String, OmsynError> {
        self.with_service(move |svc| {
            let visit = svc.visit(&visit)?;
            let entry = svc.day_log(&When::millis(at_ms), DayLogBody::VisitStart { visit })?;
            Ok(entry.id.to_string())
        })
        .await
    }

    /// Documents a visit as performed (arrival defaults to now, the mode to the planned one).
    pub async fn visit_done(
        &self,
        visit: String,
        arrival_ms: Option<i64>,
        departure_ms: Option<i64>,
        mode: Option<VisitMode>,
    ) -> Result<JournalEntry, OmsynError> {
        self.write_entry(None, move |svc| {
            svc.visit_done(VisitDone {
                visit,
                arrival: When::millis(arrival_ms),
                departure: departure_ms.map(When::Millis),
                mode: mode.map(Into::into),
            })
        })
        .await
    }

    /// Documents a visit as not performed, with why.
    pub async fn visit_missed(
        &self,
        visit: String,
        reason: MissedReason,
        note: Option<String>,
        at_ms: Option<i64>,
    ) -> Result<JournalEntry, OmsynError> {
        self.write_entry(None, move |svc| {
            svc.visit_missed(service::VisitMissed {
                visit,
                reason: reason.into(),
                note,
                at: When::millis(at_ms),
            })
        })
        .await
    }

    /// Adds a free-text journal note.
    pub async fn add_note(
        &self,
        patient: String,
        visit: Option<String>,
        text: String,
        at_ms: Option<i64>,
    ) -> Result<JournalEntry, OmsynError> {
        self.write_entry(Some(patient.clone()), move |svc| {
            svc.add_note(NewEntry {
                patient,
                visit,
                text,
                at: When::millis(at_ms),
            })
        })
        .await
    }

    /// Records a measurement (blood pressure, SpO2, weight, glucose...): a known kind's value
    /// must be one a device could measure.
    #[allow(clippy::too_many_arguments)]
    pub async fn observe(
        &self,
        patient: String,
        visit: Option<String>,
        kind: String,
        value: String,
        unit: Option<String>,
        at_ms: Option<i64>,
    ) -> Result<JournalEntry, OmsynError> {
        self.write_entry(Some(patient.clone()), move |svc| {
            svc.observe(Observation {
                patient,
                visit,
                kind,
                value,
                unit,
                at: When::millis(at_ms),
            })
        })
        .await
    }

    /// Documents a dose as given (`slot` is its time, `HH:MM`).
    pub async fn medication_given(
        &self,
        patient: String,
        medication: String,
        slot: String,
        visit: Option<String>,
        at_ms: Option<i64>,
    ) -> Result<JournalEntry, OmsynError> {
        self.dose(patient, medication, slot, visit, at_ms, None)
            .await
    }

    /// Documents a dose as not given, with why.
    pub async fn medication_not_given(
        &self,
        patient: String,
        medication: String,
        slot: String,
        reason: String,
        visit: Option<String>,
        at_ms: Option<i64>,
    ) -> Result<JournalEntry, OmsynError> {
        self.dose(patient, medication, slot, visit, at_ms, Some(reason))
            .await
    }

    /// Corrects an entry: amends its text or marks it entered in error. The original stays.
    pub async fn correct_entry(
        &self,
        patient: String,
        entry: String,
        correction: CorrectionKind,
    ) -> Result<JournalEntry, OmsynError> {
        let correction = match correction {
            CorrectionKind::Amend { text } => Correction::Amend(text),
            CorrectionKind::EnteredInError { reason } => Correction::EnteredInError(reason),
        };
        self.write_entry(Some(patient.clone()), move |svc| {
            svc.correct_entry(&patient, &entry, correction)
        })
        .await
    }

    /// A patient's messages, oldest first (a logged read).
    pub async fn messages(&self, patient: String) -> Result<Vec<PatientMessage>, OmsynError> {
        self.with_service(move |svc| {
            Ok(svc
                .messages(&patient, "messages")?
                .iter()
                .map(PatientMessage::from)
                .collect())
        })
        .await
    }

    /// Sends a message about a patient to the home, the care team or the base, with any pictures
    /// (text may be empty when there is a picture).
    pub async fn send_message(
        &self,
        patient: String,
        to: MessageRecipient,
        text: String,
        in_reply_to: Option<String>,
        pictures: Vec<MessagePicture>,
    ) -> Result<PatientMessage, OmsynError> {
        self.with_service(move |svc| {
            let message = svc.send_message(NewMessage {
                patient,
                to: to.into(),
                text,
                in_reply_to,
                pictures: pictures
                    .into_iter()
                    .map(|p| (p.content_type, p.name, p.data))
                    .collect(),
            })?;
            Ok(PatientMessage::from(&message))
        })
        .await
    }

    /// Open conflicts on this device (a logged read).
    pub async fn conflicts(&self) -> Result<Vec<OpenConflict>, OmsynError> {
        self.with_service(|svc| {
            Ok(svc
                .conflicts(None)?
                .iter()
                .map(OpenConflict::from)
                .collect())
        })
        .await
    }

    /// Resolves a conflict with a note (and, for a record field, the value to keep). The
    /// resolution is an attributable journal entry; `None` when the conflict needed none.
    pub async fn resolve_conflict(
        &self,
        conflict: String,
        note: String,
        value: Option<String>,
    ) -> Result<Option<JournalEntry>, OmsynError> {
        self.with_service(move |svc| {
            let entry = svc.resolve_conflict(&conflict, &note, value.as_deref())?;
            Ok(entry.as_ref().map(JournalEntry::from))
        })
        .await
    }

    /// The open tasks this device's user must see: alerts for her patients, calls to make again,
    /// physical visits for the zone, tasks she claimed (a logged read).
    pub async fn tasks(&self) -> Result<Vec<CareTask>, OmsynError> {
        self.with_service(|svc| {
            let me = svc.repo().profile().staff_id.clone();
            Ok(svc
                .tasks(TaskScope::Mine, None)?
                .iter()
                .map(|t| CareTask::new(t, me.as_ref()))
                .collect())
        })
        .await
    }

    /// Claims a task ("I take it"), which stops it escalating. If a colleague claimed it too,
    /// both claims stand and the result's `also_claimed_by` names her.
    pub async fn claim_task(&self, task: String) -> Result<CareTask, OmsynError> {
        let known = self.ctx.known_tasks.clone();
        self.with_service(move |svc| {
            let (_, task) = svc.claim_task(&task)?;
            // The app knows of its own claim: no event echoes it.
            if let Ok(mut known) = known.lock() {
                known.insert(task.id.to_string(), sync::told(&task));
            }
            let me = svc.repo().profile().staff_id.clone();
            Ok(CareTask::new(&task, me.as_ref()))
        })
        .await
    }

    /// Completes a task, saying what was done.
    pub async fn complete_task(&self, task: String, note: String) -> Result<(), OmsynError> {
        self.with_service(move |svc| {
            svc.complete_task(&task, &note)?;
            Ok(())
        })
        .await
    }

    /// Stops syncing (if running) before the app lets the node go. The node stays usable;
    /// releasing it (Kotlin `close()`/`destroy()`, Swift deinit) closes the store once its
    /// background tasks have ended (call this first, so a reopen right after finds it free).
    /// (Not named `close`: Kotlin's `AutoCloseable.close` takes that name.)
    pub async fn shutdown(&self) -> Result<(), OmsynError> {
        let runner = self.sync.lock().await.take();
        if let Some(runner) = runner {
            self.runtime
                .run(async move {
                    runner.stop().await;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }
}

impl OmsynNode {
    /// A dose given (`not_given: None`) or not given, with why.
    async fn dose(
        &self,
        patient: String,
        medication: String,
        slot: String,
        visit: Option<String>,
        at_ms: Option<i64>,
        not_given: Option<String>,
    ) -> Result<JournalEntry, OmsynError> {
        let dose = Dose {
            patient: patient.clone(),
            medication,
            slot,
            visit,
            at: When::millis(at_ms),
            not_given,
        };
        self.write_entry(Some(patient), move |svc| svc.record_dose(dose))
            .await
    }
}

fn net_options(options: &SyncOptions) -> Result<NetOptions, OmsynError> {
    let listen = options
        .listen
        .as_deref()
        .map(|l| l.parse().map_err(|e| invalid("listen address", e)))
        .transpose()?;
    Ok(NetOptions {
        listen,
        relay: options.relay.clone(),
        mdns: options.local_discovery,
        relay_only: false,
        relay_ca: None,
    })
}
