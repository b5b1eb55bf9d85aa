//! The admin API's archive routes: start an archive of a Frame.io project into a
//! DAM folder, watch the archives, and read a folder's properties (where an archive
//! leaves its report).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, component_failure, connector_error, enqueue_jobs, error_response, queue_failure, reply};
use crate::imports::repository::RepositoryError;
use crate::queue::QueueError;
use crate::runtime::ConnectorError;
use crate::runtime::archive::{ArchiveProgress, ArchiveRequest, ArchiveTicket};

/// The routes, under `/admin/api`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/api/archives", get(list).post(start))
        .route("/admin/api/folders/{id}/properties", get(folder_properties))
}

/// What the archive dialog sends.
#[derive(Deserialize)]
struct StartArchive {
    user: String,
    account_id: String,
    project_id: String,
    folder_id: String,
}

/// Why an archive did not start.
pub enum StartFailure {
    /// The connector refused the request (not connected, no such project or folder...).
    Refused(ConnectorError),
    /// The call into the component failed (a trap, a deadline): a bug.
    Component(anyhow::Error),
    /// The connector accepted it but the queue could not take its job.
    Queue(QueueError),
}

/// Asks the connector to start an archive and queues the job it answers (a second
/// start of an open archive joins it: same key, nothing queued twice). The JSON
/// route and the console's form both start archives through here.
pub async fn start_archive(s: &AppState, request: &ArchiveRequest) -> Result<ArchiveTicket, StartFailure> {
    let ticket = match s.runtime.archive_start(request).await {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(e)) => return Err(StartFailure::Refused(e)),
        Err(e) => return Err(StartFailure::Component(e)),
    };
    enqueue_jobs(s, vec![ticket.job.clone()]).map_err(StartFailure::Queue)?;
    Ok(ticket)
}

/// Starts the archive and answers with it as it stands.
async fn start(State(s): State<AppState>, Json(req): Json<StartArchive>) -> Response {
    let request = ArchiveRequest { user: req.user, account_id: req.account_id, project_id: req.project_id, folder_id: req.folder_id };
    match start_archive(&s, &request).await {
        Ok(ticket) => (StatusCode::ACCEPTED, Json(json!({ "key": ticket.job.key, "archive": archive_json(&ticket.progress) }))).into_response(),
        Err(StartFailure::Refused(e)) => connector_error(&e),
        Err(StartFailure::Component(e)) => component_failure("archive.start", &e),
        Err(StartFailure::Queue(e)) => queue_failure(&e),
    }
}

async fn list(State(s): State<AppState>) -> Response {
    match s.runtime.archives().await {
        Ok(Ok(archives)) => Json(json!({ "archives": archives.iter().map(archive_json).collect::<Vec<_>>() })).into_response(),
        other => reply("archive.archives", other),
    }
}

/// An archive as the admin API shows it: its state in lowercase, like a job's.
fn archive_json(progress: &ArchiveProgress) -> Value {
    let mut value = serde_json::to_value(progress).unwrap_or_default();
    if let Some(state) = value["state"].as_str() {
        value["state"] = state.to_lowercase().into();
    }
    value
}

async fn folder_properties(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let repo = &s.runtime.services().repository;
    match repo.get_folder(&id).and_then(|folder| Ok((folder, repo.folder_properties(&id)?))) {
        Ok((folder, properties)) => {
            let properties: std::collections::BTreeMap<String, String> = properties.into_iter().collect();
            Json(json!({ "folder": folder, "properties": properties })).into_response()
        }
        Err(e @ RepositoryError::NotFound(_)) => error_response(StatusCode::NOT_FOUND, e),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
