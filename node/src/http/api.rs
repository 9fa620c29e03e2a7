//! The dashboard's JSON API. Every handler runs its store work on the blocking pool and answers
//! errors as `{"error": "..."}` with a 4xx status for what the caller can fix, and, where core
//! names a step that would help, `"remedy": {"kind": ...}` beside it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use omsyn_core::remedy::Remedy;
use omsyn_core::service::{ChangeVisit, Service, ServiceError};
use omsyn_core::{RepoError, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Http;

/// An error answer: `{"error": message}` with its status, and the step core named, if any.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    remedy: Option<Remedy>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.remedy {
            Some(remedy) => json!({ "error": self.message, "remedy": remedy }),
            None => json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

pub(crate) fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        status,
        message: message.to_string(),
        remedy: None,
    }
}

pub(crate) fn repo_error(e: RepoError) -> ApiError {
    service_error(ServiceError::Repo(e))
}

/// A refused request: a malformed value is the caller's (400), no need or no right 403, an
/// unknown patient, visit or entry 404, the store's failure 500.
pub(crate) fn service_error(e: ServiceError) -> ApiError {
    let status = match &e {
        ServiceError::Invalid { .. }
        | ServiceError::Repo(RepoError::Invalid(_) | RepoError::Doc(_)) => StatusCode::BAD_REQUEST,
        ServiceError::Repo(RepoError::NotFound(_)) => StatusCode::NOT_FOUND,
        ServiceError::Repo(
            RepoError::AccessDenied(_)
            | RepoError::NotPermitted { .. }
            | RepoError::Unauthorized(_),
        ) => StatusCode::FORBIDDEN,
        ServiceError::Repo(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError {
        status,
        message: e.to_string(),
        remedy: e.remedy().cloned(),
    }
}

pub(crate) fn bad_request(what: &str, e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
}

/// Runs a request through the node's front door, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    http: &Http,
    work: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let service = http.service.clone();
    tokio::task::spawn_blocking(move || work(&service))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(service_error)
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
    answer(
        blocking(&http, move |svc| {
            let day = svc.day("date", q.date.as_deref())?;
            let zone = q.zone.as_deref().filter(|z| !z.is_empty());
            let view = format!("dashboard {day} {}", zone.unwrap_or(""));
            let report = svc.report_as(&view, day, zone)?;
            let staff = svc.staff_directory(zone)?;
            Ok(json!({ "report": report, "staff": staff }))
        })
        .await,
    )
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
    if body.staff.len() > 2 {
        return bad_request("staff", "at most two (dobbeltbemanning)").into_response();
    }
    answer(
        blocking(&http, move |svc| {
            svc.change_visit(&visit, ChangeVisit::Assign(body.staff))?;
            let (_, updated) = svc.repo().visit(&svc.visit(&visit)?)?;
            // The answer shows the visit (its patient, window, history): a read like any other.
            svc.open(&updated.patient, "visit (dashboard)")?;
            Ok(json!({ "visit": updated }))
        })
        .await,
    )
}

/// `GET /api/patients/{patient}/usual-staff`: the patient's care team, and who performed the
/// patient's visits in the last 28 days (most visits first) — for keeping continuity when
/// reassigning. A logged read of the patient.
pub(crate) async fn usual_staff(State(http): State<Http>, Path(patient): Path<String>) -> Response {
    answer(
        blocking(&http, move |svc| {
            let id = svc.patient(&patient)?;
            let usual = svc.usual_staff(id.as_str(), "usual staff (dashboard)")?;
            let recent: Vec<Value> = usual
                .recent
                .iter()
                .map(|(id, name, visits)| json!({ "id": id, "name": name, "visits": visits }))
                .collect();
            Ok(json!({ "patient": id, "care_team": usual.care_team, "recent": recent }))
        })
        .await,
    )
}

/// `GET /api/conflicts`: open conflicts.
pub(crate) async fn conflicts(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |svc| {
            let conflicts = svc.repo().named_conflicts(None)?;
            let mut conflicts = svc.shown("dashboard conflicts", conflicts, |c| &c.patient)?;
            svc.tell_conflicts_apart(&mut conflicts)?;
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
    answer(
        blocking(&http, move |svc| {
            let entry = svc.resolve_conflict(&conflict, &body.note, body.value.as_deref())?;
            Ok(json!({ "resolved": conflict.trim(), "entry": entry }))
        })
        .await,
    )
}

/// `GET /api/tasks`: open escalation tasks as they stand now, and when the next one changes by
/// the clock alone (the page sets its timer by it: escalation needs no sync to show).
pub(crate) async fn tasks(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |svc| {
            let repo = svc.repo();
            if repo.profile().role == Role::HomeUnit {
                // The devices' gateway holds this token too: tasks are for staff.
                return Err(RepoError::NotPermitted {
                    role: Role::HomeUnit,
                    action: "list tasks (staff and base nodes do)",
                }
                .into());
            }
            let now = svc.now();
            let open = repo.open_tasks(now, None)?;
            // Through the gate, then named: only the shown tasks' records are read.
            let mut open = svc.shown("dashboard tasks", open, |t| &t.patient)?;
            repo.name_tasks(&mut open)?;
            let next = open.iter().filter_map(|t| t.next_change(now)).min();
            let me = repo.author()?;
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
    answer(
        blocking(&http, move |svc| {
            let (entry, claimed) = svc.claim_task(&task)?;
            Ok(json!({ "claimed": claimed.id, "entry": entry }))
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
