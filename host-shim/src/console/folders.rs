//! Folders: the DAM's folder tree, a folder's documents, and its Frame.io tab (the
//! binding: project, custom action, who bound it and when), with "Bind to Frame.io"
//! (the connector's `bind` dialog) and "Unbind".

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::chrome::{Chrome, Section};
use super::dialogs::{self, Dialog, Parts, Shown, explain};
use super::render::{FormView, Posted};
use super::session::Viewer;
use super::{ConsoleState, html, time_text};
use crate::imports::repository::Folder;
use crate::runtime::bindings::Binding;

pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/folders", get(tree).post(create))
        .route("/folders/{id}", get(folder))
        .route("/folders/{id}/bind", get(bind_dialog).post(bind_submit))
        .route("/folders/{id}/unbind", post(unbind))
}

/// One line of the tree: a folder, or a path segment no folder stands for.
struct TreeRow {
    label: String,
    depth: usize,
    folder_id: Option<String>,
    bound_to: Option<String>,
}

/// The folders as an indented tree, parents before children, by path.
fn tree_rows(folders: &[Folder], bindings: &[Binding]) -> Vec<TreeRow> {
    let by_path: BTreeMap<&str, &Folder> = folders.iter().map(|f| (f.path.trim_end_matches('/'), f)).collect();
    let mut paths: Vec<String> = Vec::new();
    for path in by_path.keys() {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for n in 1..=segments.len() {
            let prefix = format!("/{}", segments[..n].join("/"));
            if !paths.contains(&prefix) {
                paths.push(prefix);
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let folder = by_path.get(path.as_str());
            let depth = path.matches('/').count() - 1;
            TreeRow {
                label: folder.map_or_else(|| path.rsplit('/').next().unwrap_or("").to_string(), |f| f.title.clone()),
                depth: depth.min(6),
                folder_id: folder.map(|f| f.id.clone()),
                bound_to: folder.and_then(|f| bindings.iter().find(|b| b.folder_id == f.id)).map(|b| b.project_name.clone()),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/folders.html")]
struct TreePage {
    chrome: Chrome,
    rows: Vec<TreeRow>,
    problem: Option<String>,
    path: String,
    title: String,
}

/// The bindings, or none with the reason (the tree is still worth showing).
async fn bindings(state: &ConsoleState) -> (Vec<Binding>, Option<String>) {
    match state.app.runtime.list_bindings().await {
        Ok(Ok(list)) => (list, None),
        Ok(Err(e)) => (Vec::new(), Some(explain(&e).1)),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "bindings.list failed");
            (Vec::new(), Some("The connector failed to list bindings; the host's log says why.".into()))
        }
    }
}

async fn tree_page(state: &ConsoleState, viewer: &Viewer, status: StatusCode, problem: Option<String>, path: &str, title: &str) -> Response {
    let folders = state.app.runtime.services().repository.list_folders().unwrap_or_default();
    let (bindings, unlisted) = bindings(state).await;
    let page = TreePage {
        chrome: Chrome::new(state, viewer, Section::Folders, "Folders"),
        rows: tree_rows(&folders, &bindings),
        problem: problem.or(unlisted.filter(|_| !folders.is_empty())),
        path: path.into(),
        title: title.into(),
    };
    html(status, page.render())
}

async fn tree(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    tree_page(&state, &viewer, StatusCode::OK, None, "", "").await
}

async fn create(State(state): State<ConsoleState>, viewer: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&viewer, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let (path, title) = (posted.get("path").trim().to_string(), posted.get("title").trim().to_string());
    let title = if title.is_empty() { path.rsplit('/').next().unwrap_or("").to_string() } else { title };
    match state.app.runtime.services().repository.create_folder(&path, &title) {
        Ok(folder) => {
            state.sessions.flash(&viewer, format!("Folder {} made.", folder.path));
            Redirect::to(&format!("/folders/{}", folder.id)).into_response()
        }
        Err(e) => tree_page(&state, &viewer, StatusCode::BAD_REQUEST, Some(format!("The folder was not made: {e}")), &path, &title).await,
    }
}

/// A document of the folder, as listed.
struct DocumentRow {
    id: String,
    title: String,
    versions: u32,
    status: String,
    from_frameio: bool,
}

/// The binding's facts, for the Frame.io tab.
struct BindingView {
    id: String,
    project: String,
    action: String,
    api: String,
    user: String,
    bound_at: String,
}

#[derive(Template)]
#[template(path = "console/folder.html")]
struct FolderPage {
    chrome: Chrome,
    folder: Folder,
    tab: String,
    documents: Vec<DocumentRow>,
    binding: Option<BindingView>,
    problem: Option<String>,
}

#[derive(Deserialize)]
struct TabQuery {
    tab: Option<String>,
}

async fn folder(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, Query(q): Query<TabQuery>) -> Response {
    let repo = &state.app.runtime.services().repository;
    let folder = match repo.get_folder(&id) {
        Ok(folder) => folder,
        Err(_) => return tree_page(&state, &viewer, StatusCode::NOT_FOUND, Some(format!("There is no folder {id}.")), "", "").await,
    };
    let documents = repo
        .list_documents(&id)
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let props: BTreeMap<String, String> = repo.document_properties(&d.id).unwrap_or_default().into_iter().collect();
            DocumentRow {
                status: props.get("frameio.status").cloned().unwrap_or_default(),
                from_frameio: props.keys().any(|k| k.starts_with("frameio.")),
                id: d.id,
                title: d.title,
                versions: d.version_count,
            }
        })
        .collect();
    let (bindings, problem) = bindings(&state).await;
    let binding = bindings.into_iter().find(|b| b.folder_id == id).map(|b| BindingView {
        id: b.id,
        project: b.project_name,
        action: b.action_name,
        api: if b.api == "v4" { "Frame.io V4".into() } else { "Legacy API v2".into() },
        user: b.user,
        bound_at: time_text(b.created_at),
    });
    let tab = match q.tab.as_deref() {
        Some("frameio") => "frameio",
        _ => "documents",
    };
    let page = FolderPage {
        chrome: Chrome::new(&state, &viewer, Section::Folders, folder.path.clone()),
        folder,
        tab: tab.into(),
        documents,
        binding,
        problem,
    };
    html(StatusCode::OK, page.render())
}

#[derive(Template)]
#[template(path = "console/dialog.html")]
pub struct DialogPage {
    pub chrome: Chrome,
    pub heading: String,
    pub back: String,
    pub back_label: String,
    pub form: Option<FormView>,
    pub unavailable: Option<String>,
    pub notice: Option<String>,
}

fn bind_page(state: &ConsoleState, viewer: &Viewer, folder: &Folder, parts: Parts) -> Response {
    let page = DialogPage {
        chrome: Chrome::new(state, viewer, Section::Folders, format!("Bind {}", folder.path)),
        heading: format!("Bind {} to Frame.io", folder.path),
        back: format!("/folders/{}?tab=frameio", folder.id),
        back_label: format!("Back to {}", folder.path),
        form: parts.form,
        unavailable: parts.unavailable,
        notice: parts.notice,
    };
    html(parts.status, page.render())
}

async fn bind_dialog(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let Ok(folder) = state.app.runtime.services().repository.get_folder(&id) else {
        return tree_page(&state, &viewer, StatusCode::NOT_FOUND, Some(format!("There is no folder {id}.")), "", "").await;
    };
    if !state.switch.enabled() {
        let parts = Parts { status: StatusCode::CONFLICT, form: None, unavailable: Some("Frame.io is disabled in this DAM.".into()), notice: None };
        return bind_page(&state, &viewer, &folder, parts);
    }
    let post_to = format!("/folders/{id}/bind");
    let dialog = Dialog { name: "bind", subject: &id, post_to: &post_to };
    let shown = dialogs::describe(&state, &viewer, &dialog, &[], &[], StatusCode::OK, None).await;
    bind_page(&state, &viewer, &folder, Parts::of(shown))
}

async fn bind_submit(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&viewer, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let Ok(folder) = state.app.runtime.services().repository.get_folder(&id) else {
        return tree_page(&state, &viewer, StatusCode::NOT_FOUND, Some(format!("There is no folder {id}.")), "", "").await;
    };
    if !state.switch.enabled() {
        state.sessions.flash(&viewer, "Frame.io is disabled in this DAM: nothing was bound.");
        return Redirect::to(&format!("/folders/{id}?tab=frameio")).into_response();
    }
    let post_to = format!("/folders/{id}/bind");
    let dialog = Dialog { name: "bind", subject: &id, post_to: &post_to };
    match dialogs::post(&state, &viewer, &dialog, &posted).await {
        Shown::Done(outcome) => {
            state.sessions.flash(&viewer, outcome.message);
            Redirect::to(&format!("/folders/{id}?tab=frameio")).into_response()
        }
        other => bind_page(&state, &viewer, &folder, Parts::of(other)),
    }
}

async fn unbind(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&viewer, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let binding = posted.get("binding").to_string();
    let message = match state.app.runtime.unbind(&binding).await {
        Ok(Ok(())) => {
            tracing::info!(user = %viewer.user, %binding, "unbound in the console");
            "Unbound: the custom action is gone from Frame.io; the documents stay.".to_string()
        }
        Ok(Err(e)) => format!("Nothing was unbound: {}", explain(&e).1),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "bindings.unbind failed");
            "The connector failed; the host's log says why.".to_string()
        }
    };
    state.sessions.flash(&viewer, message);
    Redirect::to(&format!("/folders/{id}?tab=frameio")).into_response()
}
