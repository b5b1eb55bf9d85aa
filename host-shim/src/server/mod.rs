//! Inbound HTTP: the public listener (Frame.io's requests, the OAuth redirect) and
//! the admin JSON API, each on its own address so the admin API can stay on loopback,
//! each with its own connection cap and timeouts.

pub mod admin;
pub mod admin_archive;
pub mod admin_guard;
pub mod admin_review;
pub mod body;
pub mod connections;
pub mod listener;
pub mod public;
pub mod throttle;

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use crate::queue::JobQueue;
use crate::runtime::{ConnectorError, Runtime};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub queue: JobQueue,
    /// Wakes the worker when a job is queued.
    pub wake: Arc<Notify>,
    /// The public base URL (where Frame.io and browsers reach us).
    pub public_url: String,
    /// One permit per inbound request the component may handle at once.
    pub inbound_slots: Arc<Semaphore>,
    /// The console's address, for the OAuth redirect page to link back to.
    pub console_url: String,
}

/// A JSON error body: `{"error": reason}`.
pub fn error_response(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": reason.to_string() }))).into_response()
}

/// The HTTP status and text for a connector error.
pub fn connector_error(e: &ConnectorError) -> Response {
    let (status, text) = error_status(e);
    error_response(status, text)
}

/// The HTTP status that fits a connector error, and its text.
pub fn error_status(e: &ConnectorError) -> (StatusCode, String) {
    match e {
        ConnectorError::NotConfigured => (StatusCode::CONFLICT, "the Frame.io provider is not configured".to_string()),
        ConnectorError::NotConnected(user) => (StatusCode::CONFLICT, format!("{user} has not connected a Frame.io account")),
        ConnectorError::ReconnectRequired(why) => (StatusCode::CONFLICT, format!("reconnect required: {why}")),
        ConnectorError::InvalidInput(why) => (StatusCode::BAD_REQUEST, why.clone()),
        ConnectorError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} was not found")),
        ConnectorError::Conflict(why) => (StatusCode::CONFLICT, why.clone()),
        ConnectorError::Frameio(why) => (StatusCode::BAD_GATEWAY, why.clone()),
        ConnectorError::Host(why) => (StatusCode::SERVICE_UNAVAILABLE, why.clone()),
    }
}

/// A failed call into the component (a trap, a deadline): a bug, logged, answered 500.
pub fn component_failure(what: &str, e: &anyhow::Error) -> Response {
    tracing::error!(call = what, error = %format!("{e:#}"), "the connector component failed");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, format!("the connector failed while handling {what}"))
}

/// Turns a component call's two layers of failure into a response.
pub fn reply<T: serde::Serialize>(what: &str, result: anyhow::Result<Result<T, ConnectorError>>) -> Response {
    match result {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(e)) => connector_error(&e),
        Err(e) => component_failure(what, &e),
    }
}

/// Queues the jobs a component call asked for and wakes the worker. The JSON API's
/// routes and the console's forms both queue through here, so a job started from
/// either surface is queued the same way (a key already queued is not queued twice).
pub fn enqueue_jobs(s: &AppState, jobs: Vec<crate::runtime::JobRequest>) -> Result<(), crate::queue::QueueError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let jobs: Vec<(String, String, Vec<u8>)> = jobs.into_iter().map(|j| (j.key, j.kind, j.payload)).collect();
    s.queue.enqueue_all(&jobs)?;
    s.wake.notify_one();
    Ok(())
}

/// The answer to jobs the queue could not take.
pub fn queue_failure(e: &crate::queue::QueueError) -> Response {
    error_response(StatusCode::SERVICE_UNAVAILABLE, format!("queueing the jobs failed: {e}"))
}

/// Queues the jobs a component call asked for, wakes the worker, and answers
/// `body` with `status`; a queue that cannot take them is a 503.
pub fn queue_jobs(s: &AppState, jobs: Vec<crate::runtime::JobRequest>, status: StatusCode, body: serde_json::Value) -> Response {
    match enqueue_jobs(s, jobs) {
        Ok(()) => (status, Json(body)).into_response(),
        Err(e) => queue_failure(&e),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
