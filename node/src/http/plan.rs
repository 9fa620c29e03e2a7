//! The dashboard's planning assistant: `POST /api/plan/suggest` (the suggestion for a day and
//! zone, as a diff of the plan as it stands) and `POST /api/plan/accept` (the moves the
//! coordinator ticked, written and logged). Both take the request `omsyn plan suggest` takes, as
//! JSON; acceptance re-checks the moves against the plan as it stands then.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use omsyn_core::RepoError;
use omsyn_core::planning::Move;
use omsyn_core::planning::accept::accept;
use serde::Deserialize;
use serde_json::json;

use super::Http;
use super::api::{ApiError, answer, error, json_body, repo_error};
use crate::plan_suggest::{SuggestRequest, names, reasons_said, suggest as make_suggestion};

/// Planning work off the async workers, through the node's front door (its clock, RNG and need
/// gate); planning's own errors answer as [`plan_error`] says.
async fn planning<T: Send + 'static>(
    http: &Http,
    work: impl FnOnce(&omsyn_core::service::Service) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let service = http.service.clone();
    tokio::task::spawn_blocking(move || work(&service))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
}

/// A failure as an answer: the store failing is ours (500); anything else — a bad date, an
/// unknown zone, a malformed shift list, a visit changed since the suggestion — the caller's.
fn plan_error(e: anyhow::Error) -> ApiError {
    if let Some(repo) = e.chain().find_map(|c| c.downcast_ref::<RepoError>())
        && matches!(repo, RepoError::Store(_))
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"));
    }
    error(StatusCode::BAD_REQUEST, format!("{e:#}"))
}

/// `POST /api/plan/suggest {date, zone, shift, shifts, priorities, ...}`: the suggestion, with
/// the patients' names and each move's reasons in words.
pub(crate) async fn suggest(State(http): State<Http>, body: axum::body::Bytes) -> Response {
    let request: SuggestRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    answer(
        planning(&http, move |svc| {
            let (suggestion, _) = make_suggestion(svc, &request).map_err(plan_error)?;
            let names: serde_json::Map<String, serde_json::Value> =
                (names(svc.repo(), &suggestion)
                    .map_err(plan_error)?
                    .into_iter())
                .map(|(p, n)| (p.to_string(), json!(n)))
                .collect();
            // Each move's reasons in the terminal's words, staff by name.
            let staff_names = svc.repo().staff_names().map_err(|e| plan_error(e.into()))?;
            let reasons = reasons_said(&suggestion, &staff_names);
            let unplaced: Vec<String> = suggestion
                .unplaced
                .iter()
                .map(|u| u.why.describe())
                .collect();
            Ok(json!({
                "suggestion": suggestion, "names": names, "reasons": reasons, "unplaced": unplaced,
            }))
        })
        .await,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptBody {
    /// The request the suggestion was made for (its day, zone and shifts).
    request: SuggestRequest,
    /// The moves accepted, as the suggestion gave them.
    moves: Vec<Move>,
}

/// `POST /api/plan/accept {request, moves}`: writes the moves the coordinator accepted as the
/// base (signed, synced) and logs the acceptance.
pub(crate) async fn accept_moves(State(http): State<Http>, body: axum::body::Bytes) -> Response {
    let body: AcceptBody = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    answer(
        planning(&http, move |svc| {
            let options = body
                .request
                .options(svc.repo(), svc.now())
                .map_err(plan_error)?;
            let accepted = svc
                .act(|repo, now, rng| accept(repo, now, rng, &options, &body.moves))
                .map_err(|e| match e {
                    omsyn_core::planning::PlanError::Repo(r) => repo_error(r),
                    other => error(StatusCode::BAD_REQUEST, other),
                })?;
            Ok(json!({ "accepted": accepted }))
        })
        .await,
    )
}
