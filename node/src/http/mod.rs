//! `omsyn run --http ADDR`: the coordinator's dashboard and its JSON API, served by the daemon
//! against the same open store, so what the page changes syncs like any other change.
//!
//! **Access:** the listener binds loopback unless told otherwise, and every request needs the
//! daemon's session token (printed at start as the dashboard's URL): `GET /?token=T` sets it as an
//! `HttpOnly`, `SameSite=Strict` cookie named after the port (two daemons on one host do not
//! overwrite each other's), and API clients may send `Authorization: Bearer T` instead. A request
//! that changes anything must also come from the dashboard's own origin (`Origin`,
//! `Sec-Fetch-Site`): a page on another local port is the same *site* for cookies, not the same
//! origin. Reads are logged in the access log as the node's own (at most once a minute per view,
//! so live refreshes do not flood the log).

mod api;
mod home;
mod plan;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rand::RngCore;

use crate::net::daemon::Shared;

const DASHBOARD: &str = include_str!("dashboard.html");
const COOKIE: &str = "omsyn_token_";

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) shared: Shared,
    /// The node's front door: every handler's request goes through it.
    pub(crate) service: Arc<omsyn_core::service::Service>,
    /// The cookie carrying the token: `omsyn_token_<port>`.
    cookie: Arc<String>,
    /// `http://<address>`: what `Origin` must say on requests that change something.
    origin: Arc<String>,
    token: Arc<String>,
}

/// A bound dashboard: its address and the URL to open (with the token).
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) url: String,
    local: SocketAddr,
    token: String,
}

/// Binds the dashboard's listener and makes its session token.
pub(crate) async fn bind(addr: SocketAddr) -> Result<Bound> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http {addr}"))?;
    let local = listener.local_addr().context("--http address")?;
    let mut bytes = [0u8; 16];
    omsyn_node::clock::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Bound {
        url: format!("http://{local}/?token={token}"),
        listener,
        local,
        token,
    })
}

/// Serves until the task is aborted.
pub(crate) async fn serve(
    bound: Bound,
    shared: Shared,
    service: Arc<omsyn_core::service::Service>,
) -> Result<()> {
    let http = Http {
        cookie: Arc::new(format!("{COOKIE}{}", bound.local.port())),
        origin: Arc::new(format!("http://{}", bound.local)),
        shared,
        service,
        token: Arc::new(bound.token),
    };
    let api = Router::new()
        .route("/board", get(api::board))
        .route("/visits/{visit}/assign", post(api::assign))
        .route("/patients/{patient}/usual-staff", get(api::usual_staff))
        .route("/conflicts", get(api::conflicts))
        .route("/conflicts/{conflict}/resolve", post(api::resolve))
        .route("/events", get(api::events))
        .route("/tasks", get(api::tasks))
        .route("/tasks/{task}/claim", post(api::claim))
        .route("/plan/suggest", post(plan::suggest))
        .route("/plan/accept", post(plan::accept_moves))
        .route("/home/today", get(home::today))
        .route(
            "/home/messages",
            get(home::messages).post(home::send_message),
        )
        .route("/home/device-events", post(home::device_event))
        .route("/home/messages/{message}/pictures/{n}", get(home::picture))
        .layer(middleware::from_fn_with_state(http.clone(), require_token));
    let app = Router::new()
        .route("/", get(page))
        .nest("/api", api)
        .with_state(http);
    axum::serve(bound.listener, app)
        .await
        .context("serving the dashboard")
}

#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The page. With the right `?token=` it sets the cookie and redirects to the bare URL (so the
/// token leaves the address bar); without a valid cookie it refuses.
async fn page(
    State(http): State<Http>,
    axum::extract::Query(query): axum::extract::Query<TokenQuery>,
    request: Request,
) -> Response {
    if let Some(token) = query.token {
        if !same_token(&token, &http.token) {
            return (StatusCode::UNAUTHORIZED, "wrong token").into_response();
        }
        let cookie = format!("{}={token}; HttpOnly; SameSite=Strict; Path=/", http.cookie);
        return ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response();
    }
    if !authorised(&http, &request) {
        return (
            StatusCode::UNAUTHORIZED,
            "open the dashboard URL that `omsyn run --http` printed (it carries the session token)",
        )
            .into_response();
    }
    Html(DASHBOARD).into_response()
}

fn authorised(http: &Http, request: &Request) -> bool {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            c.trim()
                .strip_prefix(http.cookie.as_str())
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
        .next();
    bearer
        .map(str::to_owned)
        .or(cookie)
        .is_some_and(|t| same_token(&t, &http.token))
}

/// Compares in time independent of where the strings differ.
fn same_token(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// A request that changes something comes from the dashboard's own page (or from a client that
/// sends no browser headers at all, i.e. not a browser: it needed the token anyway).
fn same_origin(http: &Http, request: &Request) -> bool {
    let headers = request.headers();
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_none_or(|o| o.to_str().is_ok_and(|o| o == http.origin.as_str()));
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|s| s.to_str().is_ok_and(|s| s == "same-origin"));
    origin_ok && site_ok
}

async fn require_token(State(http): State<Http>, request: Request, next: Next) -> Response {
    if !authorised(&http, &request) {
        api::error(StatusCode::UNAUTHORIZED, "missing or wrong session token").into_response()
    } else if request.method() != axum::http::Method::GET && !same_origin(&http, &request) {
        api::error(
            StatusCode::FORBIDDEN,
            "changes are accepted from the dashboard's own page only",
        )
        .into_response()
    } else {
        next.run(request).await
    }
}
