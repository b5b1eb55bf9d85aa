//! The admin API's archive routes: start an archive of a Frame.io project into a
//! DAM folder, watch the archives, and read a folder's properties (where an archive
//! leaves its report).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, component_failure, connector_error, error_response, queue_jobs, reply};
use crate::imports::repository::RepositoryError;
use crate::runtime::archive::ArchiveRequest;

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

/// Queues the archive's job (a second start of an open archive joins it: same key,
/// nothing queued twice) and answers with the archive as it stands.
async fn start(State(s): State<AppState>, Json(req): Json<StartArchive>) -> Response {
    let request = ArchiveRequest { user: req.user, account_id: req.account_id, project_id: req.project_id, folder_id: req.folder_id };
    let ticket = match s.runtime.archive_start(&request).await {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(e)) => return connector_error(&e),
        Err(e) => return component_failure("archive.start", &e),
    };
    let body = json!({ "key": ticket.job.key, "archive": ticket.progress });
    queue_jobs(&s, vec![ticket.job], StatusCode::ACCEPTED, body)
}

async fn list(State(s): State<AppState>) -> Response {
    match s.runtime.archives().await {
        Ok(Ok(archives)) => Json(json!({ "archives": archives })).into_response(),
        other => reply("archive.archives", other),
    }
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
