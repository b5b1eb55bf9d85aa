//! The public listener: everything under `/frameio/` goes to the component's
//! `inbound.handle` unchanged (raw body, all headers), and `/oauth/callback`
//! completes a user's connection.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;

use super::body::{self, BodyLimits};
use super::throttle::{self, FailureLimiter};
use super::{AppState, component_failure, error_response, unix_now};
use crate::runtime::inbound;

/// Where Frame.io's requests arrive; custom action URLs are `<public url>/frameio/...`.
pub const INBOUND_PREFIX: &str = "/frameio";
/// The OAuth redirect URI path.
pub const OAUTH_CALLBACK: &str = "/oauth/callback";

/// The public routes. A body is read whole (within the size cap and deadline)
/// before a handler runs; a source whose signatures keep failing is turned away
/// before its body is read.
pub fn router(state: AppState, body_limits: BodyLimits, limiter: Option<Arc<FailureLimiter>>) -> Router {
    let buffered = axum::middleware::from_fn_with_state(body_limits, body::buffer);
    let inbound = Router::new().route("/frameio/{*rest}", any(inbound_request)).with_state(state.clone()).layer(buffered.clone());
    // Only Frame.io's routes are throttled: the limiter counts failed signatures.
    let inbound = match limiter {
        Some(limiter) => inbound.layer(axum::middleware::from_fn_with_state(limiter, throttle::limit)),
        None => inbound,
    };
    let oauth = Router::new().route(OAUTH_CALLBACK, get(oauth_callback)).with_state(state).layer(buffered);
    inbound.merge(oauth)
}

async fn inbound_request(State(state): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let req = inbound_from(&method, &uri, &headers, body);
    let reply = {
        // Never closed: acquiring fails only on a closed semaphore.
        let _slot = state.inbound_slots.acquire().await.expect("the inbound semaphore is never closed");
        state.runtime.handle_inbound(&req).await
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return component_failure("an inbound request", &e),
    };
    if !reply.enqueue.is_empty() {
        let jobs: Vec<(String, String, Vec<u8>)> =
            reply.enqueue.iter().map(|j| (j.key.clone(), j.kind.clone(), j.payload.clone())).collect();
        if let Err(e) = state.queue.enqueue_all(&jobs) {
            // Not queued means not accepted: Frame.io must deliver again.
            tracing::error!(error = %e, "queueing jobs failed");
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable; try again");
        }
        state.wake.notify_one();
    }
    response_from(reply)
}

fn inbound_from(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> inbound::Request {
    let path = uri.path().strip_prefix(INBOUND_PREFIX).unwrap_or("/");
    inbound::Request {
        method: method.as_str().to_string(),
        path: if path.is_empty() { "/".into() } else { path.to_string() },
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.to_vec(),
        received_at: unix_now(),
    }
}

fn response_from(reply: inbound::Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    for (name, value) in reply.headers {
        // The component's headers are passed on when they are valid HTTP; a bad one is dropped.
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn oauth_callback(State(state): State<AppState>, Query(query): Query<CallbackQuery>) -> Response {
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return page(StatusCode::BAD_REQUEST, "Frame.io connection refused", &format!("Frame.io said: {error} {detail}"));
    }
    let (Some(code), Some(oauth_state)) = (query.code, query.state) else {
        return page(StatusCode::BAD_REQUEST, "Frame.io connection failed", "The redirect carried no code or state.");
    };
    match state.runtime.oauth_complete(&oauth_state, &code).await {
        Ok(Ok(connection)) => {
            let text = format!("{} is connected as {}. You can close this window.", connection.user, connection.frameio_user);
            // Back to the console, where the person who connected sees their connection.
            let back = format!("{}/connect", state.console_url);
            linked_page(StatusCode::OK, "Connected to Frame.io", &text, Some(("Back to the console", &back)))
        }
        Ok(Err(e)) => page(StatusCode::BAD_REQUEST, "Frame.io connection failed", &super::error_status(&e).1),
        Err(e) => component_failure("the OAuth redirect", &e),
    }
}

/// A minimal HTML page for the person whose browser followed the redirect.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    linked_page(status, title, text, None)
}

/// [`page`], with a link (its text and address) under the text.
fn linked_page(status: StatusCode, title: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let link = link.map_or(String::new(), |(label, href)| format!("<p><a href=\"{}\">{}</a></p>", escape(href), escape(label)));
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>{0}</title><h1>{0}</h1><p>{1}</p>{link}",
        escape(title),
        escape(text)
    );
    (status, Html(html)).into_response()
}

