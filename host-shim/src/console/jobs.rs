//! Jobs and transfers: every job with its state and reason, with a retry for a
//! failed one, and every transfer, both ways, with a progress bar that
//! `console.js` keeps moving from `/jobs/progress.json` (the page works, unmoving,
//! without it).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::chrome::{Chrome, Section};
use super::render::Posted;
use super::session::Viewer;
use super::{ConsoleState, html, size_text, time_text};
use crate::db::{Page, unix_millis};
use crate::imports::transfer::TransferRow;
use crate::queue::JobRow;

/// Rows shown of each list: the newest.
const SHOWN: u32 = 100;

pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/jobs", get(page))
        .route("/jobs/progress.json", get(progress))
        .route("/jobs/{id}/retry", post(retry))
}

struct JobView {
    id: String,
    kind: String,
    key: String,
    state: String,
    text: String,
    attempt: u32,
    updated: String,
}

struct TransferView {
    key: String,
    direction: &'static str,
    state: String,
    done: u64,
    total: u64,
    amount: String,
    error: String,
}

impl TransferView {
    fn of(t: TransferRow) -> TransferView {
        TransferView {
            direction: if t.kind == "upload" { "Upload to Frame.io" } else { "Download from Frame.io" },
            amount: format!("{} of {}", size_text(t.done), size_text(t.total)),
            error: t.error.map(|e| e.to_string()).unwrap_or_default(),
            key: t.key,
            state: t.state,
            done: t.done,
            total: t.total.max(1),
        }
    }
}

impl JobView {
    fn of(j: JobRow) -> JobView {
        JobView {
            text: j.result_text.clone().or(j.status_text.clone()).unwrap_or_default(),
            updated: time_text((j.updated_at / 1000).max(0) as u64),
            id: j.id,
            kind: j.kind,
            key: j.key,
            state: j.state,
            attempt: j.attempt,
        }
    }
}

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    chrome: Chrome,
    jobs: Vec<JobView>,
    transfers: Vec<TransferView>,
    problem: Option<String>,
}

fn lists(state: &ConsoleState) -> Result<(Vec<JobRow>, Vec<TransferRow>), String> {
    let (jobs, _) = state.app.queue.list(&Page::first(SHOWN)).map_err(|e| e.to_string())?;
    let (transfers, _) = state.app.runtime.services().transfers.list(&Page::first(SHOWN)).map_err(|e| e.to_string())?;
    Ok((jobs, transfers))
}

async fn page(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    let (jobs, transfers, problem) = match lists(&state) {
        Ok((jobs, transfers)) => (jobs, transfers, None),
        Err(e) => (Vec::new(), Vec::new(), Some(format!("The lists could not be read: {e}"))),
    };
    let page = JobsPage {
        chrome: Chrome::new(&state, &viewer, Section::Jobs, "Jobs and transfers"),
        jobs: jobs.into_iter().map(JobView::of).collect(),
        transfers: transfers.into_iter().map(TransferView::of).collect(),
        problem,
    };
    html(StatusCode::OK, page.render())
}

/// What the page's script needs to move its bars and states.
async fn progress(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    let _ = viewer;
    match lists(&state) {
        Ok((jobs, transfers)) => {
            // Rows as `console.js` moves them, on this page and on Archives alike.
            let transfers = transfers.into_iter().map(TransferView::of).map(|t| {
                json!({ "row": format!("transfer:{}", t.key), "state": t.state, "done": t.done, "total": t.total, "texts": { "amount": t.amount } })
            });
            let jobs = jobs
                .into_iter()
                .map(JobView::of)
                .map(|j| json!({ "row": format!("job:{}", j.id), "state": j.state, "texts": { "text": j.text, "attempt": j.attempt } }));
            Json(json!({ "rows": transfers.chain(jobs).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e }))).into_response(),
    }
}

async fn retry(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = Posted::read(&viewer, &headers, &body) {
        return refused;
    }
    let message = match state.app.queue.retry_failed(&id, unix_millis()) {
        Ok(true) => {
            state.app.wake.notify_one();
            tracing::info!(user = %viewer.user, job = %id, "a failed job retried from the console");
            format!("Job {id} runs again from the step that failed.")
        }
        Ok(false) => format!("Job {id} has not failed, so it was left as it is."),
        Err(e) => format!("The job could not be retried: {e}"),
    };
    state.sessions.flash(&viewer, message);
    Redirect::to("/jobs").into_response()
}
