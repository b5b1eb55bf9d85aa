//! The admin API's review routes: a document's comments as a thread, what a DAM user
//! does in the DAM's review panel (comment, reply, edit, delete, set the review
//! status), and the "Send to Frame.io for review" dialog. Each change is stored in the
//! repository first (a comment's with its event, see [`crate::dam_outbox`]), then told
//! to the connector (`dam-events.notify`, `review.send`), and the jobs it asks for are
//! queued.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, component_failure, connector_error, error_response, queue_jobs};
use crate::dam_outbox::{self, Change, Said, Untold};
use crate::imports::repository::{Comment, RepositoryError};
use crate::runtime::dam_events::{Event, StatusChange};
use crate::runtime::review::{Destination, ReviewRequest};
use crate::runtime::wit::frameio_dam::connector::repository::RenditionKind;

/// The routes, under `/admin/api`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/api/documents/{id}/comments", get(list).post(add))
        .route("/admin/api/documents/{id}/status", put(set_status))
        .route("/admin/api/comments/{id}", put(edit).delete(remove))
        .route("/admin/api/documents/{id}/review", post(send_for_review))
        .route("/admin/api/review/capabilities", get(capabilities))
}

async fn capabilities(State(s): State<AppState>) -> Response {
    super::reply("review.capabilities", s.runtime.review_capabilities().await)
}

/// The send dialog's fields.
#[derive(Deserialize)]
struct SendForReview {
    user: String,
    #[serde(default)]
    version: u32,
    /// The binding whose project receives it, or whose workspace holds the structure.
    binding_id: String,
    /// Into the automatic show/episode structure rather than the project's root.
    #[serde(default)]
    structure: bool,
    #[serde(default)]
    reviewers: Vec<String>,
    #[serde(default)]
    description: String,
    expires_at: Option<u64>,
    password: Option<String>,
    /// `master` (default) or `proxy`.
    rendition: Option<String>,
    #[serde(default)]
    allow_download: bool,
    #[serde(default)]
    watermark: bool,
}

async fn send_for_review(State(s): State<AppState>, Path(document_id): Path<String>, Json(req): Json<SendForReview>) -> Response {
    let rendition = match req.rendition.as_deref().unwrap_or("master") {
        "master" => RenditionKind::Master,
        "proxy" => RenditionKind::Proxy,
        other => return error_response(StatusCode::BAD_REQUEST, format!("rendition is master or proxy, not {other:?}")),
    };
    let destination = if req.structure { Destination::Structure(req.binding_id) } else { Destination::Binding(req.binding_id) };
    let request = ReviewRequest {
        user: req.user,
        document_id,
        version: req.version,
        destination,
        reviewers: req.reviewers,
        description: req.description,
        expires_at: req.expires_at,
        password: req.password,
        rendition,
        allow_download: req.allow_download,
        watermark: req.watermark,
    };
    let ticket = match s.runtime.review_send(&request).await {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(e)) => return connector_error(&e),
        Err(e) => return component_failure("review.send", &e),
    };
    let key = ticket.job.key.clone();
    queue_jobs(&s, vec![ticket.job], StatusCode::ACCEPTED, json!({ "job_key": key }))
}

/// A document's comments, threaded: replies under their parents.
pub fn thread(comments: &[Comment]) -> Vec<Value> {
    fn node(comment: &Comment, all: &[Comment]) -> Value {
        let replies: Vec<Value> = all.iter().filter(|c| c.parent_id.as_deref() == Some(comment.id.as_str())).map(|c| node(c, all)).collect();
        let mut value = serde_json::to_value(comment).expect("comments serialise to JSON");
        value["replies"] = replies.into();
        value
    }
    comments.iter().filter(|c| c.parent_id.is_none()).map(|c| node(c, comments)).collect()
}

fn repository_failure(e: RepositoryError) -> Response {
    let status = match e {
        RepositoryError::NotFound(_) => StatusCode::NOT_FOUND,
        RepositoryError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_response(status, e)
}

async fn list(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.runtime.services().repository.list_comments(&id) {
        Ok(comments) => Json(json!({ "comments": thread(&comments) })).into_response(),
        Err(e) => repository_failure(e),
    }
}

/// What a DAM user writes.
#[derive(Deserialize)]
struct NewComment {
    user: String,
    text: String,
    frame: Option<u64>,
    parent_id: Option<String>,
}

async fn add(State(s): State<AppState>, Path(document_id): Path<String>, Json(req): Json<NewComment>) -> Response {
    let repo = &s.runtime.services().repository;
    let added = repo.add_user_comment(&document_id, req.parent_id.as_deref(), &req.user, &req.text, req.frame, |c, comment| {
        dam_outbox::record(c, vec![Change::Added(Said::of(comment, &req.user))])
    });
    let (comment, pending) = match added {
        Ok(added) => added,
        Err(e) => return repository_failure(e),
    };
    tell_connector(&s, pending, StatusCode::CREATED, json!(comment)).await
}

/// A DAM user's edit.
#[derive(Deserialize)]
struct Edit {
    user: String,
    text: String,
    frame: Option<u64>,
}

async fn edit(State(s): State<AppState>, Path(id): Path<String>, Json(req): Json<Edit>) -> Response {
    let repo = &s.runtime.services().repository;
    let edited = repo.edit_user_comment(&id, &req.text, req.frame, |c, comment| {
        dam_outbox::record(c, vec![Change::Edited(Said::of(comment, &req.user))])
    });
    let (comment, pending) = match edited {
        Ok(edited) => edited,
        Err(e) => return repository_failure(e),
    };
    tell_connector(&s, pending, StatusCode::OK, json!(comment)).await
}

/// Who deletes.
#[derive(Deserialize)]
struct Who {
    user: String,
}

/// Deletes a comment and its replies, and tells the connector of each, replies first:
/// each may have reached Frame.io on its own (V4 has no replies).
async fn remove(State(s): State<AppState>, Path(id): Path<String>, Json(req): Json<Who>) -> Response {
    let removed = s.runtime.services().repository.remove_user_comment(&id, |c, thread| {
        dam_outbox::record(c, thread.iter().map(|comment| Change::Deleted(Said::of(comment, &req.user))).collect())
    });
    let (thread, pending) = match removed {
        Ok(removed) => removed,
        Err(e) => return repository_failure(e),
    };
    let deleted: Vec<&str> = thread.iter().map(|c| c.id.as_str()).collect();
    tell_connector(&s, pending, StatusCode::OK, json!({ "deleted": deleted })).await
}

/// A review status change.
#[derive(Deserialize)]
struct NewStatus {
    user: String,
    status: String,
}

async fn set_status(State(s): State<AppState>, Path(document_id): Path<String>, Json(req): Json<NewStatus>) -> Response {
    let event = Event::StatusChanged(StatusChange { document_id: document_id.clone(), user: req.user, status: req.status.clone() });
    // The connector checks the status first: an unknown one changes nothing.
    let jobs = match s.runtime.dam_event(&event).await {
        Ok(Ok(jobs)) => jobs,
        Ok(Err(e)) => return connector_error(&e),
        Err(e) => return component_failure("dam-events.notify", &e),
    };
    let stored = s.runtime.services().repository.set_document_properties(&document_id, &[("frameio.status".into(), req.status.clone())]);
    if let Err(e) = stored {
        return repository_failure(e);
    }
    queue_jobs(&s, jobs, StatusCode::OK, json!({ "status": req.status }))
}

/// Tells the connector of a DAM change already stored with its events, queues what
/// it asks for, and answers `body`. A connector that refuses the change leaves it in
/// the DAM only; a host stopped before the jobs are queued tells it again at start
/// (see [`dam_outbox`]).
async fn tell_connector(s: &AppState, pending: dam_outbox::Pending, status: StatusCode, body: Value) -> Response {
    match dam_outbox::tell(&s.runtime, &s.queue, pending).await {
        Ok(_) => {
            s.wake.notify_one();
            (status, Json(body)).into_response()
        }
        Err(Untold::Refused(e)) => connector_error(&e),
        Err(Untold::Failed(e)) => component_failure("dam-events.notify", &e),
        Err(Untold::Queue(e)) => error_response(StatusCode::SERVICE_UNAVAILABLE, format!("queueing the jobs failed: {e}")),
    }
}
