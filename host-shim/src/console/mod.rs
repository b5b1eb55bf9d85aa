//! The console: the reference host's web screens, on the admin listener at `/`, for
//! the people the connector is for. Administrators register Frame.io under Cloud
//! services; users connect their Frame.io account, bind folders, look at what
//! arrived (the Frame.io tab of folders and documents), send documents for review,
//! watch jobs and transfers, and archive whole Frame.io projects into folders.
//!
//! Pages are rendered on the server from templates compiled into the binary
//! (`host-shim/templates/console/`); a little plain JavaScript (`console.js`) moves
//! progress bars and re-describes a dialog when a choice changes, and every page
//! works without it. The dialogs are the connector's own (`forms`): the console
//! renders whatever fields it is given.
//!
//! The console is a separate surface from the JSON admin API on the same listener:
//! it signs people in with a session cookie instead of the bearer token, and calls
//! the same runtime, repository and queue functions the JSON API calls.

mod archives;
mod chrome;
mod cloud;
mod connect;
pub mod demo;
mod dialogs;
mod documents;
mod folders;
mod jobs;
mod render;
pub mod session;
mod signin;
pub mod switch;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::server::AppState;
use crate::server::admin_guard::AdminGuard;
use crate::server::body::{self, BodyLimits};
use session::{Sessions, Viewer};
use switch::ProviderSwitch;
use users::ConsoleConfig;

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
    pub sessions: Arc<Sessions>,
    pub users: Arc<ConsoleConfig>,
    /// The admin listener's names, checked on every request as for the JSON API.
    pub hosts: Arc<AdminGuard>,
    pub switch: Arc<ProviderSwitch>,
}

impl ConsoleState {
    pub fn new(app: AppState, users: ConsoleConfig, hosts: Arc<AdminGuard>, switch: Arc<ProviderSwitch>) -> ConsoleState {
        let idle = Duration::from_secs(users.session_idle_minutes * 60);
        ConsoleState { app, sessions: Arc::new(Sessions::new(idle)), users: Arc::new(users), hosts, switch }
    }
}

/// The console's routes, behind the request checks (outermost) and the body reader.
pub fn router(state: ConsoleState, body_limits: BodyLimits) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/console.css", get(stylesheet))
        .route("/console.js", get(script))
        .merge(signin::routes())
        .merge(cloud::routes())
        .merge(connect::routes())
        .merge(folders::routes())
        .merge(documents::routes())
        .merge(jobs::routes())
        .merge(archives::routes())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(body_limits, body::buffer))
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Refuses foreign hosts and cross-site state changes, and marks every answer as not
/// to be framed, cached or sent elsewhere.
async fn guard(State(state): State<ConsoleState>, request: Request, next: Next) -> Response {
    if let Some(refused) = session::refusal(&state, request.method(), request.headers()) {
        return with_security_headers(refused);
    }
    with_security_headers(next.run(request).await)
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    // No inline script or style anywhere: everything comes from the console itself.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn home(viewer: Viewer) -> Redirect {
    let _ = viewer;
    Redirect::to("/folders")
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", include_str!("../../templates/console/console.css"))
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("../../templates/console/console.js"))
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response
}

/// Text made safe to put in HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A rendered template, or a 500 page when rendering failed (a bug in a template).
fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (status, axum::response::Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// Queues the jobs a connector call asked for and wakes the worker, through the same
/// path as the JSON API's routes.
fn enqueue(state: &ConsoleState, jobs: Vec<crate::runtime::JobRequest>) -> Result<(), crate::queue::QueueError> {
    crate::server::enqueue_jobs(&state.app, jobs)
}

/// A Unix time for people: `2026-12-05 18:40 UTC`.
pub fn time_text(secs: u64) -> String {
    let date = frameio_connector::forms::dates::date_of(secs);
    format!("{date} {:02}:{:02} UTC", (secs % 86_400) / 3600, (secs % 3600) / 60)
}

/// A byte count for people.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}
