//! Connect: each user's own Frame.io connection. Starting one sends the browser to
//! Frame.io's sign-in (or Adobe IMS, for V4), which comes back to the host's OAuth
//! redirect and from there to this page; the page says who is connected and until
//! when the current token runs, and checks the connection on request. A connection
//! Frame.io no longer honours (it refused the refresh token, on a check or on any
//! call that needed Frame.io) is shown as one to make again, with Reconnect.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::chrome::{Chrome, Section};
use super::dialogs::explain;
use super::render::Posted;
use super::session::Viewer;
use super::{ConsoleState, html, time_text};
use crate::runtime::ConnectorError;
use crate::server::public::OAUTH_CALLBACK;

pub fn routes() -> Router<ConsoleState> {
    Router::new().route("/connect", get(show).post(start)).route("/connect/check", post(check))
}

/// A connection as the page shows it.
struct ConnectionView {
    frameio_user: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "console/connect.html")]
struct ConnectPage {
    chrome: Chrome,
    connection: Option<ConnectionView>,
    /// Why Frame.io no longer accepts the connection, which must be made again.
    reconnect: Option<String>,
    problem: Option<String>,
}

async fn show(State(state): State<ConsoleState>, viewer: Viewer) -> Response {
    let (connection, reconnect, problem, status) = match state.app.runtime.oauth_status(&viewer.user).await {
        Ok(Ok(Some(c))) => {
            let view = ConnectionView { frameio_user: c.frameio_user, expires: time_text(c.expires_at) };
            (Some(view), None, None, StatusCode::OK)
        }
        Ok(Ok(None)) => (None, None, None, StatusCode::OK),
        Ok(Err(ConnectorError::ReconnectRequired(why))) => (None, Some(why), None, StatusCode::OK),
        Ok(Err(e)) => {
            let (status, why) = explain(&e);
            (None, None, Some(why), status)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "oauth.status failed");
            (None, None, Some("The connector failed; the host's log says why.".into()), StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    let page = ConnectPage { chrome: Chrome::new(&state, &viewer, Section::Connect, "Connect"), connection, reconnect, problem };
    html(status, page.render())
}

async fn start(State(state): State<ConsoleState>, viewer: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = Posted::read(&viewer, &headers, &body) {
        return refused;
    }
    if !state.switch.enabled() {
        state.sessions.flash(&viewer, "Frame.io is disabled in this DAM.");
        return Redirect::to("/connect").into_response();
    }
    let redirect_uri = format!("{}{OAUTH_CALLBACK}", state.app.public_url);
    match state.app.runtime.oauth_begin(&viewer.user, &redirect_uri).await {
        // To Frame.io's (or Adobe's) sign-in; it comes back to the host's redirect URI.
        Ok(Ok(authorization)) => Redirect::to(&authorization.url).into_response(),
        Ok(Err(e)) => {
            state.sessions.flash(&viewer, explain(&e).1);
            Redirect::to("/connect").into_response()
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "oauth.begin failed");
            state.sessions.flash(&viewer, "The connector failed; the host's log says why.");
            Redirect::to("/connect").into_response()
        }
    }
}

/// Renews the token now: a connection Frame.io no longer honours says so here.
async fn check(State(state): State<ConsoleState>, viewer: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = Posted::read(&viewer, &headers, &body) {
        return refused;
    }
    let message = match state.app.runtime.oauth_refresh(&viewer.user).await {
        Ok(Ok(c)) => format!("Frame.io renewed the sign-in of {}; it now runs until {}.", c.frameio_user, time_text(c.expires_at)),
        Ok(Err(ConnectorError::ReconnectRequired(why))) => {
            format!("Frame.io refused to renew your sign-in ({why}). Connect again with the button below.")
        }
        Ok(Err(e)) => explain(&e).1,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "oauth.refresh failed");
            "The connector failed; the host's log says why.".into()
        }
    };
    state.sessions.flash(&viewer, message);
    Redirect::to("/connect").into_response()
}
