//! Archives: every project archive the connector knows (which project, into which
//! folder, who started it, where it stands and what it has copied), with a bar per
//! archive that `console.js` keeps moving from `/archives/progress.json`, as it does
//! on Jobs and transfers; and "Archive a Frame.io project here" on a folder.
//!
//! The project picker is the connector's bind dialog with only its account,
//! workspace and project fields kept: the connector lists them as the user's
//! connection sees them, so the console needs no Frame.io knowledge of its own. The
//! archive starts through the same function as the JSON API's route.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::chrome::{Chrome, Section};
use super::dialogs::{self, Dialog, Parts, explain};
use super::folders::DialogPage;
use super::render::{ACTION_FIELD, FormView, Posted, REFRESH};
use super::session::Viewer;
use super::{ConsoleState, html, size_text, time_text};
use crate::imports::repository::Folder;
use crate::runtime::ConnectorError;
use crate::runtime::archive::{ArchiveProgress, ArchiveRequest, ArchiveState};
use crate::server::admin_archive::{StartFailure, start_archive};

pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/archives", get(page))
        .route("/archives/progress.json", get(progress))
        .route("/folders/{id}/archive", get(archive_dialog).post(archive_submit))
}

/// One archive, ready for the template and for the live answer.
struct ArchiveView {
    key: String,
    project: String,
    folder_id: String,
    /// The destination's path, or its id when the folder is gone.
    folder: String,
    user: String,
    state: &'static str,
    /// The state as read: a queued archive says how many wait before it.
    label: String,
    folders: u32,
    documents: u32,
    versions: u32,
    comments: u32,
    bytes: String,
    skipped: u32,
    found: u32,
    message: String,
    /// The bar: assets finished (copied or left out) of assets found.
    done: u32,
    total: u32,
    amount: String,
    started: String,
}

impl ArchiveView {
    fn of(a: ArchiveProgress, paths: &HashMap<String, String>) -> ArchiveView {
        let c = a.counts;
        let (state, label) = match a.state {
            ArchiveState::Queued if a.ahead == 0 => ("queued", "queued, next".to_string()),
            ArchiveState::Queued => ("queued", format!("queued, {} ahead", a.ahead)),
            ArchiveState::Running => ("running", "running".into()),
            ArchiveState::Done => ("done", "done".into()),
            ArchiveState::Failed => ("failed", "failed".into()),
        };
        // A version stack with a version left out counts a document and a skip, so
        // the sum can pass what was found: the bar stops at full.
        let done = (c.documents + c.skipped).min(c.found);
        ArchiveView {
            folder: paths.get(&a.folder_id).cloned().unwrap_or_else(|| a.folder_id.clone()),
            amount: format!("{done} of {} assets", c.found),
            started: time_text(a.started_at.unwrap_or(a.queued_at)),
            key: a.key,
            project: a.project_name,
            folder_id: a.folder_id,
            user: a.user,
            state,
            label,
            folders: c.folders,
            documents: c.documents,
            versions: c.versions,
            comments: c.comments,
            bytes: size_text(c.bytes),
            skipped: c.skipped,
            found: c.found,
            message: a.message,
            done,
            total: c.found.max(1),
        }
    }

    /// The row as `console.js` moves it: bar, state and every text that changes.
    fn live(&self) -> Value {
        json!({
            "row": format!("archive:{}", self.key),
            "state": self.state,
            "label": self.label,
            "done": self.done,
            "total": self.total,
            "texts": {
                "amount": self.amount,
                "folders": self.folders,
                "documents": self.documents,
                "versions": self.versions,
                "comments": self.comments,
                "bytes": self.bytes,
                "skipped": self.skipped,
                "found": self.found,
                "message": self.message,
            },
        })
    }
}

/// Every archive, or why they could not be listed.
async fn archives(state: &ConsoleState) -> Result<Vec<ArchiveView>, (StatusCode, String)> {
    let list = match state.app.runtime.archives().await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return Err(explain(&e)),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "archive.archives failed");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "The connector failed to list archives; the host's log says why.".into()));
        }
    };
    let folders = state.app.runtime.services().repository.list_folders().unwrap_or_default();
    let paths: HashMap<String, String> = folders.into_iter().map(|f| (f.id, f.path)).collect();
    Ok(list.into_iter().map(|a| ArchiveView::of(a, &paths)).collect())
}

#[derive(Template)]
#[template(path = "console/archives.html")]
struct ArchivesPage {
    chrome: Chrome,
    archives: Vec<ArchiveView>,
    problem: Option<String>,
}

async fn page(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    let (archives, problem) = match archives(&state).await {
        Ok(list) => (list, None),
        Err((_, why)) => (Vec::new(), Some(why)),
    };
    let page = ArchivesPage { chrome: Chrome::new(&state, &viewer, Section::Archives, "Archives"), archives, problem };
    html(StatusCode::OK, page.render())
}

/// What the page's script needs to move its bars, counts and states.
async fn progress(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    let _ = viewer;
    match archives(&state).await {
        Ok(list) => Json(json!({ "rows": list.iter().map(ArchiveView::live).collect::<Vec<_>>() })).into_response(),
        Err((_, why)) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": why }))).into_response(),
    }
}

/// The bind dialog's fields that pick a project; the others are the bind's own.
const PICKER: [&str; 3] = ["account", "workspace", "project"];

/// The bind dialog as the archive's project picker.
fn picker(mut form: FormView, folder: &Folder) -> FormView {
    form.fields.retain(|f| PICKER.contains(&f.name.as_str()));
    form.intro = format!(
        "The whole project is copied into {}: its folders, files, version stacks and comments. It runs in the background; Archives shows how far it is.",
        folder.path
    );
    form.submit_label = "Start the archive".into();
    form.actions.clear();
    form
}

fn dialog_page(state: &ConsoleState, viewer: &Viewer, folder: &Folder, parts: Parts) -> Response {
    let page = DialogPage {
        chrome: Chrome::new(state, viewer, Section::Archives, format!("Archive into {}", folder.path)),
        heading: format!("Archive a Frame.io project into {}", folder.path),
        back: format!("/folders/{}?tab=frameio", folder.id),
        back_label: format!("Back to {}", folder.path),
        form: parts.form.map(|form| picker(form, folder)),
        unavailable: parts.unavailable,
        notice: parts.notice,
    };
    html(parts.status, page.render())
}

/// The picker, described by the connector with `values` and each of `problems`.
async fn show(state: &ConsoleState, viewer: &Viewer, folder: &Folder, posted: Option<&Posted>, problems: &[(String, String)], status: StatusCode) -> Response {
    let post_to = format!("/folders/{}/archive", folder.id);
    let dialog = Dialog { name: "bind", subject: &folder.id, post_to: &post_to };
    let values = posted.map(Posted::values).unwrap_or_default();
    let shown = dialogs::describe(state, viewer, &dialog, &values, problems, status, None).await;
    dialog_page(state, viewer, folder, Parts::of(shown))
}

/// The folder, or the page that says it is not there (or that Frame.io is off).
fn destination(state: &ConsoleState, viewer: &Viewer, id: &str) -> Result<Folder, Box<Response>> {
    let Ok(folder) = state.app.runtime.services().repository.get_folder(id) else {
        let page = DialogPage {
            chrome: Chrome::new(state, viewer, Section::Archives, "Archive"),
            heading: "Archive a Frame.io project".into(),
            back: "/folders".into(),
            back_label: "Folders".into(),
            form: None,
            unavailable: Some(format!("There is no folder {id}.")),
            notice: None,
        };
        return Err(Box::new(html(StatusCode::NOT_FOUND, page.render())));
    };
    if !state.switch.enabled() {
        let parts = Parts { status: StatusCode::CONFLICT, form: None, unavailable: Some("Frame.io is disabled in this DAM.".into()), notice: None };
        return Err(Box::new(dialog_page(state, viewer, &folder, parts)));
    }
    Ok(folder)
}

async fn archive_dialog(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    match destination(&state, &viewer, &id) {
        Ok(folder) => show(&state, &viewer, &folder, None, &[], StatusCode::OK).await,
        Err(page) => *page,
    }
}

async fn archive_submit(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&viewer, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let folder = match destination(&state, &viewer, &id) {
        Ok(folder) => folder,
        Err(page) => return *page,
    };
    if posted.get(ACTION_FIELD) == REFRESH {
        return show(&state, &viewer, &folder, Some(&posted), &[], StatusCode::OK).await;
    }
    let problem = |field: &str, why: String| vec![(field.to_string(), why)];
    if posted.get("project").is_empty() {
        return show(&state, &viewer, &folder, Some(&posted), &problem("project", "Choose a project.".into()), StatusCode::BAD_REQUEST).await;
    }
    let request = ArchiveRequest {
        user: viewer.user.clone(),
        account_id: posted.get("account").to_string(),
        project_id: posted.get("project").to_string(),
        folder_id: folder.id.clone(),
    };
    let (status, problems) = match start_archive(&state.app, &request).await {
        Ok(ticket) => {
            tracing::info!(user = %viewer.user, key = %ticket.progress.key, folder = %folder.id, "an archive started from the console");
            let project = ticket.progress.project_name;
            state.sessions.flash(&viewer, format!("The archive of {project} into {} is under way: its bar below moves as it copies.", folder.path));
            return Redirect::to("/archives").into_response();
        }
        // The folder was found above, so a missing thing is the project.
        Err(StartFailure::Refused(ConnectorError::NotFound(what))) => {
            (StatusCode::NOT_FOUND, problem("project", format!("{what} was not found, or you cannot see it.")))
        }
        Err(StartFailure::Refused(e)) => {
            let (status, why) = explain(&e);
            (status, problem("", why))
        }
        Err(StartFailure::Component(e)) => {
            tracing::error!(error = %format!("{e:#}"), "archive.start failed");
            (StatusCode::INTERNAL_SERVER_ERROR, problem("", "The connector failed; the host's log says why.".into()))
        }
        Err(StartFailure::Queue(e)) => (StatusCode::SERVICE_UNAVAILABLE, problem("", format!("The archive's job could not be queued: {e}"))),
    };
    show(&state, &viewer, &folder, Some(&posted), &problems, status).await
}
