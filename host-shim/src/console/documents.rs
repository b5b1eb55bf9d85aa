//! A document: its details and versions, and its Frame.io tab (the metadata a push
//! brought, the link back to Frame.io, the review status and the comments as a
//! timecoded thread), with "Send for review" (the connector's `send-for-review`
//! dialog).

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::chrome::{Chrome, Section};
use super::dialogs::{self, Dialog, Parts, Shown};
use super::folders::DialogPage;
use super::render::Posted;
use super::session::Viewer;
use super::{ConsoleState, html, size_text, time_text};
use crate::imports::repository::Document;
use crate::server::admin_review;

pub fn routes() -> Router<ConsoleState> {
    Router::new().route("/documents/{id}", get(document)).route("/documents/{id}/review", get(review_dialog).post(review_submit))
}

struct VersionRow {
    number: u32,
    size: String,
    added: String,
    note: String,
}

/// One comment of the thread, flattened: replies follow their parent, one level in.
struct CommentRow {
    depth: usize,
    author: String,
    text: String,
    timecode: String,
    completed: bool,
    posted: String,
}

/// A property as shown: its name without the `frameio.` prefix, and a link when the
/// value is a web address.
struct PropertyRow {
    name: String,
    value: String,
    link: bool,
}

#[derive(Template)]
#[template(path = "console/document.html")]
struct DocumentPage {
    chrome: Chrome,
    document: Document,
    folder_path: String,
    tab: String,
    versions: Vec<VersionRow>,
    frameio: Vec<PropertyRow>,
    others: Vec<PropertyRow>,
    link: Option<String>,
    review_link: Option<String>,
    status: String,
    comments: Vec<CommentRow>,
}

#[derive(Deserialize)]
struct TabQuery {
    tab: Option<String>,
}

fn is_web_link(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://")
}

/// The thread the JSON API answers, flattened for a list.
fn comment_rows(thread: &[Value], depth: usize, rows: &mut Vec<CommentRow>) {
    for c in thread {
        let text = |name: &str| c[name].as_str().unwrap_or("").to_string();
        let timecode = match (c["timecode"].as_str(), c["frame"].as_u64()) {
            (Some(tc), _) => tc.to_string(),
            (None, Some(frame)) => format!("frame {frame}"),
            _ => String::new(),
        };
        rows.push(CommentRow {
            depth: depth.min(3),
            author: text("author"),
            text: text("text"),
            timecode,
            completed: c["completed"].as_bool().unwrap_or(false),
            posted: c["created_at"].as_u64().map(time_text).unwrap_or_default(),
        });
        comment_rows(c["replies"].as_array().map_or(&[], |r| r.as_slice()), depth + 1, rows);
    }
}

async fn document(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, Query(q): Query<TabQuery>) -> Response {
    let repo = &state.app.runtime.services().repository;
    let Ok(document) = repo.get_document(&id) else {
        state.sessions.flash(&viewer, format!("There is no document {id}."));
        return Redirect::to("/folders").into_response();
    };
    let properties: BTreeMap<String, String> = repo.document_properties(&id).unwrap_or_default().into_iter().collect();
    let versions = repo
        .list_versions(&id)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|v| {
            let note = repo.version_properties(&v.id).unwrap_or_default().into_iter().find(|(n, _)| n == "frameio.comment").map(|(_, v)| v);
            VersionRow { number: v.number, size: size_text(v.size), added: time_text(v.created_at.max(0) as u64), note: note.unwrap_or_default() }
        })
        .collect();
    let mut comments = Vec::new();
    comment_rows(&admin_review::thread(&repo.list_comments(&id).unwrap_or_default()), 0, &mut comments);
    let (mut frameio, mut others) = (Vec::new(), Vec::new());
    for (name, value) in &properties {
        let row = PropertyRow { name: name.strip_prefix("frameio.").unwrap_or(name).to_string(), value: value.clone(), link: is_web_link(value) };
        if name.starts_with("frameio.") { frameio.push(row) } else { others.push(row) }
    }
    let from_frameio = !frameio.is_empty();
    let tab = match q.tab.as_deref() {
        Some("details") => "details",
        Some("frameio") => "frameio",
        _ if from_frameio => "frameio",
        _ => "details",
    };
    let folder_path = repo.get_folder(&document.folder_id).map(|f| f.path).unwrap_or_default();
    let page = DocumentPage {
        chrome: Chrome::new(&state, &viewer, Section::Folders, document.title.clone()),
        folder_path,
        tab: tab.into(),
        versions,
        link: properties.get("frameio.link").filter(|l| is_web_link(l)).cloned(),
        review_link: properties.get("frameio.review-link").filter(|l| is_web_link(l)).cloned(),
        status: properties.get("frameio.status").cloned().unwrap_or_else(|| "none".into()),
        frameio,
        others,
        comments,
        document,
    };
    html(StatusCode::OK, page.render())
}

fn review_page(state: &ConsoleState, viewer: &Viewer, document: &Document, parts: Parts) -> Response {
    let page = DialogPage {
        chrome: Chrome::new(state, viewer, Section::Folders, format!("Send {} for review", document.title)),
        heading: format!("Send \"{}\" to Frame.io for review", document.title),
        back: format!("/documents/{}?tab=frameio", document.id),
        back_label: format!("Back to {}", document.title),
        form: parts.form,
        unavailable: parts.unavailable,
        notice: parts.notice,
    };
    html(parts.status, page.render())
}

async fn review_dialog(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let Ok(document) = state.app.runtime.services().repository.get_document(&id) else {
        return Redirect::to("/folders").into_response();
    };
    if !state.switch.enabled() {
        let parts = Parts { status: StatusCode::CONFLICT, form: None, unavailable: Some("Frame.io is disabled in this DAM.".into()), notice: None };
        return review_page(&state, &viewer, &document, parts);
    }
    let post_to = format!("/documents/{id}/review");
    let dialog = Dialog { name: "send-for-review", subject: &id, post_to: &post_to };
    let shown = dialogs::describe(&state, &viewer, &dialog, &[], &[], StatusCode::OK, None).await;
    review_page(&state, &viewer, &document, Parts::of(shown))
}

async fn review_submit(State(state): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&viewer, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let Ok(document) = state.app.runtime.services().repository.get_document(&id) else {
        return Redirect::to("/folders").into_response();
    };
    if !state.switch.enabled() {
        state.sessions.flash(&viewer, "Frame.io is disabled in this DAM: nothing was sent.");
        return Redirect::to(&format!("/documents/{id}?tab=frameio")).into_response();
    }
    let post_to = format!("/documents/{id}/review");
    let dialog = Dialog { name: "send-for-review", subject: &id, post_to: &post_to };
    match dialogs::post(&state, &viewer, &dialog, &posted).await {
        Shown::Done(outcome) => {
            state.sessions.flash(&viewer, outcome.message);
            Redirect::to("/jobs").into_response()
        }
        other => review_page(&state, &viewer, &document, Parts::of(other)),
    }
}
