//! The admin JSON API, on its own (loopback) listener. It stands in for the DAM's
//! own screens: cloud-service settings, folders, the "Bind to Frame.io" dialog, the
//! documents a push made, and the jobs behind them. Every route is in the README.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::admin_guard::{self, AdminGuard};
use super::{admin_archive, admin_review};
use super::body::{self, BodyLimits};
use super::public::OAUTH_CALLBACK;
use super::{AppState, error_response, reply};
use crate::db::Page;
use crate::runtime::{BrowseList, Property, bindings};
use crate::runtime::browse::{self, ChildKinds, EntryKind};

/// Most rows of a list in one page, and the default.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 100;

/// The admin routes, under `/admin/api`, behind the guard (outermost: nothing of a
/// refused request is read) and the body reader.
pub fn router(state: AppState, guard: Arc<AdminGuard>, body_limits: BodyLimits) -> Router {
    routes(state)
        .layer(axum::middleware::from_fn_with_state(body_limits, body::buffer))
        .layer(axum::middleware::from_fn_with_state(guard, admin_guard::check))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .merge(admin_review::routes())
        .merge(admin_archive::routes())
        .route("/admin/api/provider", get(describe).put(configure))
        .route("/admin/api/folders", get(list_folders).post(create_folder))
        .route("/admin/api/folders/{id}/documents", get(list_documents))
        .route("/admin/api/documents/{id}", get(document))
        .route("/admin/api/users/{user}/connect", post(connect))
        .route("/admin/api/users/{user}/connection", get(connection))
        .route("/admin/api/users/{user}/refresh", post(refresh))
        .route("/admin/api/users/{user}/accounts", get(accounts))
        .route("/admin/api/users/{user}/accounts/{account}/workspaces", get(workspaces))
        .route("/admin/api/users/{user}/accounts/{account}/workspaces/{workspace}/projects", get(projects))
        .route("/admin/api/users/{user}/shared-projects", get(shared_projects))
        .route("/admin/api/users/{user}/accounts/{account}/folders/{folder}/children", get(children))
        .route("/admin/api/bindings", get(list_bindings).post(bind))
        .route("/admin/api/bindings/{id}", axum::routing::delete(unbind))
        .route("/admin/api/jobs", get(list_jobs))
        .route("/admin/api/jobs/{id}", get(job))
        .route("/admin/api/transfers", get(list_transfers))
        .route("/admin/api/stats", get(stats))
        .with_state(state)
}

/// A storage or repository failure on the host's side.
fn host_failure(e: impl std::fmt::Display) -> Response {
    error_response(StatusCode::SERVICE_UNAVAILABLE, e)
}

async fn describe(State(s): State<AppState>) -> Response {
    match s.runtime.describe().await {
        Ok(d) => Json(d).into_response(),
        Err(e) => super::component_failure("describe", &e),
    }
}

#[derive(Deserialize)]
struct ProviderForm {
    settings: BTreeMap<String, String>,
}

async fn configure(State(s): State<AppState>, Json(form): Json<ProviderForm>) -> Response {
    let settings = form.settings.into_iter().map(|(name, value)| Property { name, value }).collect();
    match s.runtime.configure(settings).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        other => reply("configure", other),
    }
}

#[derive(Deserialize)]
struct NewFolder {
    path: String,
    title: String,
}

async fn create_folder(State(s): State<AppState>, Json(f): Json<NewFolder>) -> Response {
    match s.runtime.services().repository.create_folder(&f.path, &f.title) {
        Ok(folder) => (StatusCode::CREATED, Json(folder)).into_response(),
        Err(e) => error_response(StatusCode::BAD_REQUEST, e),
    }
}

async fn list_folders(State(s): State<AppState>) -> Response {
    match s.runtime.services().repository.list_folders() {
        Ok(folders) => Json(folders).into_response(),
        Err(e) => host_failure(e),
    }
}

async fn list_documents(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.runtime.services().repository.list_documents(&id) {
        Ok(docs) => Json(docs).into_response(),
        Err(e) => host_failure(e),
    }
}

/// A document with its versions and properties.
async fn document(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let repo = &s.runtime.services().repository;
    let found = repo.get_document(&id).and_then(|doc| {
        let versions = repo.list_versions(&id)?;
        let properties: BTreeMap<String, String> = repo.document_properties(&id)?.into_iter().collect();
        let comments = admin_review::thread(&repo.list_comments(&id)?);
        let status = properties.get("frameio.status").cloned();
        Ok(json!({ "document": doc, "versions": versions, "properties": properties, "comments": comments, "status": status }))
    });
    match found {
        Ok(body) => Json(body).into_response(),
        Err(e) => error_response(StatusCode::NOT_FOUND, e),
    }
}

async fn connect(State(s): State<AppState>, Path(user): Path<String>) -> Response {
    let redirect_uri = format!("{}{OAUTH_CALLBACK}", s.public_url);
    reply("oauth.begin", s.runtime.oauth_begin(&user, &redirect_uri).await)
}

async fn connection(State(s): State<AppState>, Path(user): Path<String>) -> Response {
    match s.runtime.oauth_status(&user).await {
        Ok(Ok(None)) => error_response(StatusCode::NOT_FOUND, format!("{user} has not connected a Frame.io account")),
        other => reply("oauth.status", other),
    }
}

async fn refresh(State(s): State<AppState>, Path(user): Path<String>) -> Response {
    reply("oauth.refresh", s.runtime.oauth_refresh(&user).await)
}

/// `?cursor=` (the `next` of the page before) for browse lists, and `?kinds=` (a
/// comma-separated subset of `folders,files,version-stacks`) for children.
#[derive(Deserialize)]
struct BrowseQuery {
    cursor: Option<String>,
    kinds: Option<String>,
}

async fn browse(s: &AppState, user: &str, list: BrowseList, query: &BrowseQuery, what: &str) -> Response {
    let page = s.runtime.browse(user, &list, query.cursor.as_deref()).await;
    reply(what, page.map(|listed| listed.map(page_json)))
}

/// A browse page as the admin API answers it, kinds spelt as in the WIT.
fn page_json(page: browse::Page) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = page
        .entries
        .into_iter()
        .map(|e| {
            let kind = match e.kind {
                EntryKind::Account => "account",
                EntryKind::Workspace => "workspace",
                EntryKind::Project => "project",
                EntryKind::Folder => "folder",
                EntryKind::File => "file",
                EntryKind::VersionStack => "version-stack",
            };
            json!({ "id": e.id, "name": e.name, "kind": kind, "parent_id": e.parent_id, "account_id": e.account_id, "root_folder_id": e.root_folder_id })
        })
        .collect();
    json!({ "entries": entries, "next": page.next })
}

async fn accounts(State(s): State<AppState>, Path(user): Path<String>, Query(q): Query<BrowseQuery>) -> Response {
    browse(&s, &user, BrowseList::Accounts, &q, "browse.accounts").await
}

async fn workspaces(State(s): State<AppState>, Path((user, account)): Path<(String, String)>, Query(q): Query<BrowseQuery>) -> Response {
    browse(&s, &user, BrowseList::Workspaces { account }, &q, "browse.workspaces").await
}

async fn projects(
    State(s): State<AppState>,
    Path((user, account, workspace)): Path<(String, String, String)>,
    Query(q): Query<BrowseQuery>,
) -> Response {
    browse(&s, &user, BrowseList::Projects { account, workspace }, &q, "browse.projects").await
}

async fn shared_projects(State(s): State<AppState>, Path(user): Path<String>, Query(q): Query<BrowseQuery>) -> Response {
    browse(&s, &user, BrowseList::SharedProjects, &q, "browse.shared-projects").await
}

async fn children(
    State(s): State<AppState>,
    Path((user, account, folder)): Path<(String, String, String)>,
    Query(q): Query<BrowseQuery>,
) -> Response {
    let kinds = match child_kinds(q.kinds.as_deref().unwrap_or("")) {
        Ok(kinds) => kinds,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, why),
    };
    browse(&s, &user, BrowseList::Children { account, folder, kinds }, &q, "browse.children").await
}

/// `folders,files,version-stacks` (any subset, empty for all) as WIT flags.
fn child_kinds(raw: &str) -> Result<ChildKinds, String> {
    let mut kinds = ChildKinds::empty();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        kinds |= match name {
            "folders" => ChildKinds::FOLDERS,
            "files" => ChildKinds::FILES,
            "version-stacks" => ChildKinds::VERSION_STACKS,
            other => return Err(format!("unknown kind {other:?}: use folders, files or version-stacks")),
        };
    }
    Ok(kinds)
}

async fn bind(State(s): State<AppState>, Json(req): Json<bindings::BindRequest>) -> Response {
    match s.runtime.bind(&req).await {
        Ok(Ok(binding)) => (StatusCode::CREATED, Json(binding)).into_response(),
        other => reply("bindings.bind", other),
    }
}

async fn list_bindings(State(s): State<AppState>) -> Response {
    reply("bindings.list", s.runtime.list_bindings().await)
}

async fn unbind(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.runtime.unbind(&id).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        other => reply("bindings.unbind", other),
    }
}

/// `?limit=` (at most 500, 100 by default) and `?after=` (the `next` of the page
/// before) page a list, newest first.
#[derive(Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    after: Option<String>,
    /// Jobs only: the one job queued under this key.
    key: Option<String>,
}

impl PageQuery {
    /// The page asked for; the error is the 400 reason.
    fn page(&self) -> Result<Page, String> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(format!("limit must be 1 to {MAX_PAGE}"));
        }
        let after = match &self.after {
            Some(cursor) => Some(Page::parse_cursor(cursor).ok_or("after is not a cursor this API gave")?),
            None => None,
        };
        Ok(Page { limit, after })
    }
}

/// `{"<name>": [rows], "next": cursor or null}`.
fn paged<T: serde::Serialize>(name: &str, (rows, next): (Vec<T>, Option<String>)) -> Response {
    Json(json!({ name: rows, "next": next })).into_response()
}

async fn list_jobs(State(s): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let page = match q.page() {
        Ok(page) => page,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, why),
    };
    let listed = match &q.key {
        Some(key) => s.queue.find_by_key(key).map(|job| (job.into_iter().collect(), None)),
        None => s.queue.list(&page),
    };
    match listed {
        Ok(jobs) => paged("jobs", jobs),
        Err(e) => host_failure(e),
    }
}

async fn job(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.queue.get(&id) {
        Ok(Some(job)) => Json(job).into_response(),
        Ok(None) => error_response(StatusCode::NOT_FOUND, format!("job {id} was not found")),
        Err(e) => host_failure(e),
    }
}

async fn list_transfers(State(s): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let page = match q.page() {
        Ok(page) => page,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, why),
    };
    match s.runtime.services().transfers.list(&page) {
        Ok(transfers) => paged("transfers", transfers),
        Err(e) => host_failure(e),
    }
}

/// Runtime figures: the most linear memory any call into the component has used,
/// and how many jobs are in each state.
async fn stats(State(s): State<AppState>) -> Response {
    match s.queue.counts() {
        Ok(jobs) => Json(json!({ "guest_memory_peak_bytes": s.runtime.guest_memory_peak(), "jobs": jobs })).into_response(),
        Err(e) => host_failure(e),
    }
}
