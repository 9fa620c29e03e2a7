//! The dashboard's JSON API. Every handler runs its store work on the blocking pool and answers
//! errors as `{"error": "..."}` with a 4xx status for what the caller can fix.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use omsyn_core::conflict::ConflictId;
use omsyn_core::docs::DocumentId;
use omsyn_core::docs::journal::{self, EntryBody};
use omsyn_core::docs::plan::VisitChange;
use omsyn_core::escalation::TaskId;
use omsyn_core::ids::{PatientId, StaffId, VisitId};
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, Repo, RepoError, Role};
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Http;
use crate::commands::now;

/// An error answer: `{"error": message}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        status,
        message: message.to_string(),
    }
}

pub(crate) fn repo_error(e: RepoError) -> ApiError {
    let status = match &e {
        RepoError::NotFound(_) => StatusCode::NOT_FOUND,
        RepoError::AccessDenied(_)
        | RepoError::NotPermitted { .. }
        | RepoError::Unauthorized(_) => StatusCode::FORBIDDEN,
        RepoError::Invalid(_) | RepoError::Doc(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e)
}

pub(crate) fn bad_request(what: &str, e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
}

/// Runs store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    http: &Http,
    work: impl FnOnce(&Http, &Repo) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let http = http.clone();
    tokio::task::spawn_blocking(move || work(&http, &http.shared.repo.clone()))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
}

/// A request body as JSON (a malformed one is a 400 with a JSON error, like every other).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| bad_request("request body", e))
}

pub(crate) fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DayQuery {
    date: Option<String>,
    zone: Option<String>,
}

/// `GET /api/board?date=&zone=`: the day report (visits by staff and time, unassigned visits,
/// conflicts, devices, figures) and the staff directory from enrolment certificates.
pub(crate) async fn board(State(http): State<Http>, Query(q): Query<DayQuery>) -> Response {
    let day = match q.date.as_deref() {
        None | Some("") => now().day(),
        Some(d) => match Day::parse(d) {
            Ok(day) => day,
            Err(e) => return bad_request("date", e).into_response(),
        },
    };
    answer(
        blocking(&http, move |http, repo| {
            let view = format!("dashboard {day} {}", q.zone.as_deref().unwrap_or(""));
            let zone = q.zone.filter(|z| !z.is_empty());
            let mut disclosure = repo.disclose(now(), AuditAction::Read, &view);
            let report =
                omsyn_core::report::day_report(repo, day, zone.as_deref(), &mut disclosure)
                    .map_err(repo_error)?;
            http.disclosed(disclosure, &view).map_err(repo_error)?;
            Ok(json!({ "report": report, "staff": staff_directory(repo, zone.as_deref())? }))
        })
        .await,
    )
}

/// Staff with an enrolled device (not revoked): id, name, role, zone and competence.
fn staff_directory(repo: &Repo, zone: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let store = repo.store();
    let mut staff = BTreeMap::new();
    for cert in store.certificates().map_err(|e| repo_error(e.into()))? {
        let grant = cert.grant();
        let Some(id) = &grant.staff_id else { continue };
        let revoked = store
            .revocation(&grant.node)
            .map_err(|e| repo_error(e.into()))?
            .is_some();
        if revoked
            || grant.role == Role::HomeUnit
            || (zone.is_some() && grant.zone.as_deref() != zone)
        {
            continue;
        }
        staff.insert(
            id.to_string(),
            json!({
                "id": id, "name": grant.name, "role": grant.role, "zone": grant.zone,
                "competence": grant.competence,
            }),
        );
    }
    Ok(staff.into_values().collect())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Assign {
    staff: Vec<String>,
}

/// `POST /api/visits/{visit}/assign {"staff": [...]}`: reassigns a visit (at most two staff;
/// none makes it unassigned). A plan change like any other: signed, synced, kept in the revisions.
pub(crate) async fn assign(
    State(http): State<Http>,
    Path(visit): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: Assign = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let visit = match VisitId::parse(&visit) {
        Ok(v) => v,
        Err(e) => return bad_request("visit", e).into_response(),
    };
    let staff: Result<Vec<StaffId>, _> = body.staff.iter().map(|s| StaffId::parse(s)).collect();
    let staff = match staff {
        Ok(s) if s.len() <= 2 => s,
        Ok(_) => return bad_request("staff", "at most two (dobbeltbemanning)").into_response(),
        Err(e) => return bad_request("staff", e).into_response(),
    };
    answer(
        blocking(&http, move |_, repo| {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            repo.change_visit(now(), &mut rng, &visit, &VisitChange::Assign(staff))
                .map_err(repo_error)?;
            let (_, updated) = repo.visit(&visit).map_err(repo_error)?;
            Ok(json!({ "visit": updated }))
        })
        .await,
    )
}

/// `GET /api/patients/{patient}/usual-staff`: the patient's care team, and who performed the
/// patient's visits in the last 28 days (most visits first) — for keeping continuity when
/// reassigning. A logged read of the patient.
pub(crate) async fn usual_staff(State(http): State<Http>, Path(patient): Path<String>) -> Response {
    let patient = match PatientId::parse(&patient) {
        Ok(p) => p,
        Err(e) => return bad_request("patient", e).into_response(),
    };
    answer(
        blocking(&http, move |_, repo| {
            let t = now();
            repo.open_patient(t, &patient, "usual staff (dashboard)")
                .map_err(repo_error)?;
            let store = repo.store();
            let facts = store
                .with_doc(
                    &DocumentId::PatientRecord(patient.clone()),
                    omsyn_core::docs::access_facts::read,
                )
                .map_err(|e| repo_error(e.into()))?
                .unwrap_or_default();
            let since = t.unix_millis() - 28 * 24 * 3600 * 1000;
            let mut recent: BTreeMap<String, (String, usize)> = BTreeMap::new();
            // The window spans this month and at most the one before.
            let this_month = t.day().month();
            let mut months = vec![this_month];
            if let Some(first) = Day::from_unix_millis(since).map(|d| d.month())
                && first != this_month
            {
                months.insert(0, first);
            }
            for month in months {
                let Some(j) = store
                    .with_doc(&DocumentId::Journal(patient.clone(), month), journal::read)
                    .map_err(|e| repo_error(e.into()))?
                else {
                    continue;
                };
                let withdrawn: Vec<_> = j.entered_in_error().cloned().collect();
                for e in j
                    .entries
                    .iter()
                    .filter(|e| e.event_time.unix_millis() >= since && !withdrawn.contains(&e.id))
                {
                    if let (EntryBody::VisitPerformed { .. }, Some(staff)) =
                        (&e.body, &e.author.staff)
                    {
                        recent
                            .entry(staff.to_string())
                            .or_insert_with(|| (e.author.name.clone(), 0))
                            .1 += 1;
                    }
                }
            }
            let mut recent: Vec<_> = recent
                .into_iter()
                .map(|(id, (name, visits))| json!({ "id": id, "name": name, "visits": visits }))
                .collect();
            recent.sort_by_key(|v| std::cmp::Reverse(v["visits"].as_u64().unwrap_or(0)));
            let team: Vec<String> = facts
                .team
                .iter()
                .filter(|m| m.active)
                .map(|m| m.staff.to_string())
                .collect();
            Ok(json!({ "patient": patient, "care_team": team, "recent": recent }))
        })
        .await,
    )
}

/// `GET /api/conflicts`: open conflicts.
pub(crate) async fn conflicts(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |http, repo| {
            let conflicts = repo.named_conflicts(None).map_err(repo_error)?;
            let conflicts = http
                .shown(repo, "dashboard conflicts", conflicts, |c| &c.patient)
                .map_err(repo_error)?;
            Ok(json!({ "conflicts": conflicts }))
        })
        .await,
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct Resolve {
    note: String,
    value: Option<String>,
}

/// `POST /api/conflicts/{conflict}/resolve {"note": ..., "value": ...}`: resolves a conflict with
/// an attributable entry.
pub(crate) async fn resolve(
    State(http): State<Http>,
    Path(conflict): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: Resolve = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let conflict = match ConflictId::parse(&conflict) {
        Ok(c) => c,
        Err(e) => return bad_request("conflict", e).into_response(),
    };
    if body.note.trim().is_empty() {
        return bad_request("note", "say how the conflict was resolved").into_response();
    }
    answer(
        blocking(&http, move |_, repo| {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            let entry = repo
                .resolve_conflict(
                    now(),
                    &mut rng,
                    &conflict,
                    &body.note,
                    body.value.as_deref(),
                )
                .map_err(repo_error)?;
            Ok(json!({ "resolved": conflict, "entry": entry }))
        })
        .await,
    )
}

/// `GET /api/tasks`: open escalation tasks as they stand now, and when the next one changes by
/// the clock alone (the page sets its timer by it: escalation needs no sync to show).
pub(crate) async fn tasks(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |http, repo| {
            if repo.profile().role == Role::HomeUnit {
                // The devices' gateway holds this token too: tasks are for staff.
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "tasks are listed on staff and base nodes, not on a home unit",
                ));
            }
            let now = now();
            let open = repo.named_tasks(now).map_err(repo_error)?;
            let open = http
                .shown(repo, "dashboard tasks", open, |t| &t.patient)
                .map_err(repo_error)?;
            let next = open.iter().filter_map(|t| t.next_change(now)).min();
            let me = repo.author();
            let claimed_here: Vec<_> = open
                .iter()
                .filter(|t| t.claims.iter().any(|c| c.is_by(&me)))
                .map(|t| &t.id)
                .collect();
            Ok(json!({ "tasks": open, "next_change": next, "claimed_here": claimed_here }))
        })
        .await,
    )
}

/// `POST /api/tasks/{task}/claim`: the base takes the task (which also acknowledges it).
pub(crate) async fn claim(State(http): State<Http>, Path(task): Path<String>) -> Response {
    let task = match TaskId::parse(&task) {
        Ok(t) => t,
        Err(e) => return bad_request("task", e).into_response(),
    };
    answer(
        blocking(&http, move |_, repo| {
            let mut rng = rand::rngs::StdRng::from_os_rng();
            let entry = repo
                .claim_task(now(), &mut rng, &task)
                .map_err(repo_error)?;
            Ok(json!({ "claimed": task, "entry": entry }))
        })
        .await,
    )
}

/// `GET /api/events`: server-sent events, one `change` per commit to the store (local or synced),
/// so the page refreshes as devices sync.
pub(crate) async fn events(State(http): State<Http>) -> impl IntoResponse {
    use tokio_stream::StreamExt;
    let changes =
        tokio_stream::wrappers::WatchStream::new(http.shared.changed.clone()).map(|seq| {
            Ok::<_, std::convert::Infallible>(
                Event::default().event("change").data(seq.to_string()),
            )
        });
    Sse::new(changes).keep_alive(KeepAlive::default())
}
