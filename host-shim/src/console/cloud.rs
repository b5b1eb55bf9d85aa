//! Cloud services (administrators only): Frame.io's settings, from the connector's
//! `provider-settings` dialog, with "Test connection", and enabling or disabling
//! Frame.io in this DAM.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::chrome::{Chrome, Section};
use super::dialogs::{self, Dialog, Parts, Shown};
use super::render::{FormView, Posted};
use super::session::Admin;
use super::{ConsoleState, html};

pub fn routes() -> Router<ConsoleState> {
    Router::new().route("/cloud", get(show).post(submit)).route("/cloud/switch", post(switch))
}

const SETTINGS: Dialog<'static> = Dialog { name: "provider-settings", subject: "", post_to: "/cloud" };

#[derive(Template)]
#[template(path = "console/cloud.html")]
struct CloudPage {
    chrome: Chrome,
    enabled: bool,
    form: Option<FormView>,
    unavailable: Option<String>,
    notice: Option<String>,
}

fn page(state: &ConsoleState, admin: &Admin, parts: Parts) -> Response {
    let page = CloudPage {
        chrome: Chrome::new(state, &admin.0, Section::Cloud, "Cloud services"),
        enabled: state.switch.enabled(),
        form: parts.form,
        unavailable: parts.unavailable,
        notice: parts.notice,
    };
    html(parts.status, page.render())
}

async fn show(State(state): State<ConsoleState>, admin: Admin) -> Response {
    let shown = dialogs::describe(&state, &admin.0, &SETTINGS, &[], &[], StatusCode::OK, None).await;
    page(&state, &admin, Parts::of(shown))
}

async fn submit(State(state): State<ConsoleState>, admin: Admin, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&admin.0, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    match dialogs::post(&state, &admin.0, &SETTINGS, &posted).await {
        Shown::Done(outcome) => {
            tracing::info!(user = %admin.0.user, "Frame.io settings saved in the console");
            state.sessions.flash(&admin.0, outcome.message);
            Redirect::to("/cloud").into_response()
        }
        other => page(&state, &admin, Parts::of(other)),
    }
}

async fn switch(State(state): State<ConsoleState>, admin: Admin, headers: HeaderMap, body: Bytes) -> Response {
    let posted = match Posted::read(&admin.0, &headers, &body) {
        Ok(posted) => posted,
        Err(refused) => return refused,
    };
    let enable = posted.get("enabled") == "true";
    let message = match state.switch.set(enable) {
        Ok(()) if enable => "Frame.io is enabled: users can connect, bind and send, and Frame.io's requests are taken.",
        Ok(()) => "Frame.io is disabled: Frame.io's requests are refused and users cannot connect, bind or send.",
        Err(e) => {
            tracing::error!(error = %e, "the Frame.io switch could not be saved");
            "The switch could not be saved; the host's log says why."
        }
    };
    tracing::info!(user = %admin.0.user, enabled = enable, "Frame.io switched in the console");
    state.sessions.flash(&admin.0, message);
    Redirect::to("/cloud").into_response()
}
