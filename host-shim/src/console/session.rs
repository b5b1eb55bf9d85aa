//! Signed-in sessions and what protects every console request.
//!
//! A session is a random token in a cookie (`HttpOnly`, `SameSite=Strict`, path `/`),
//! kept in memory by its SHA-256 (a host restart signs everyone out). Each session has
//! its own CSRF token, put in every form the console renders and checked on every
//! POST; a POST whose `Origin` is not the console's own, or that a browser marks as
//! cross-site (`Sec-Fetch-Site`), is refused before that. The `Host` must be one of
//! the admin listener's names (`server.admin_hosts`), as for the JSON API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::ConsoleState;
use super::users::Role;

/// The session cookie's name.
pub const COOKIE: &str = "console_session";
/// The CSRF token's form field.
pub const CSRF_FIELD: &str = "_csrf";

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    /// This session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The session's cookie value, to leave it a message.
    token: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Administrator
    }
}

struct Session {
    user: String,
    role: Role,
    csrf: String,
    flash: Option<String>,
    last_used: Instant,
}

/// The sessions of one host.
pub struct Sessions {
    by_token_hash: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions { by_token_hash: Mutex::new(HashMap::new()), idle }
    }

    /// Starts a session; the cookie to set.
    pub fn start(&self, user: &str, role: Role) -> String {
        let token = random_token();
        let session = Session { user: user.into(), role, csrf: random_token(), flash: None, last_used: Instant::now() };
        let mut sessions = self.by_token_hash.lock().expect("sessions lock");
        let idle = self.idle;
        sessions.retain(|_, s| s.last_used.elapsed() < idle);
        sessions.insert(token_hash(&token), session);
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", idle.as_secs())
    }

    /// Ends the session of `token`; the cookie that clears it.
    pub fn end(&self, token: &str) -> &'static str {
        self.by_token_hash.lock().expect("sessions lock").remove(&token_hash(token));
        "console_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    }

    /// The viewer of a live session.
    fn viewer(&self, token: &str) -> Option<Viewer> {
        let mut sessions = self.by_token_hash.lock().expect("sessions lock");
        let key = token_hash(token);
        let session = sessions.get_mut(&key)?;
        if session.last_used.elapsed() >= self.idle {
            sessions.remove(&key);
            return None;
        }
        session.last_used = Instant::now();
        Some(Viewer { user: session.user.clone(), role: session.role, csrf: session.csrf.clone(), token: token.to_string() })
    }

    /// Leaves a message for the viewer's next page.
    pub fn flash(&self, viewer: &Viewer, message: impl Into<String>) {
        if let Some(session) = self.by_token_hash.lock().expect("sessions lock").get_mut(&token_hash(&viewer.token)) {
            session.flash = Some(message.into());
        }
    }

    /// The message left for the viewer, once.
    pub fn take_flash(&self, viewer: &Viewer) -> Option<String> {
        self.by_token_hash.lock().expect("sessions lock").get_mut(&token_hash(&viewer.token)).and_then(|s| s.flash.take())
    }

    /// Ends the viewer's session; the cookie that clears it.
    pub fn end_for(&self, viewer: &Viewer) -> &'static str {
        self.end(&viewer.token)
    }
}

/// The session token a request carries, if any.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// Why a request is refused before any handler sees it: a foreign `Host` (DNS
/// rebinding), or a state change from another origin.
pub fn refusal(state: &ConsoleState, method: &Method, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = state.hosts.host_refusal(headers) {
        return Some(refused);
    }
    if *method == Method::GET || *method == Method::HEAD {
        return None;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let same_origin = |origin: &str| origin == format!("http://{host}") || origin == format!("https://{host}");
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !origin.to_str().is_ok_and(same_origin) {
            return Some(forbidden("This request came from another site, so it was refused."));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(forbidden("This request came from another site, so it was refused."));
    }
    None
}

/// A plain 403 page.
pub fn forbidden(why: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Refused</title><h1>Refused</h1><p>{}</p><p><a href=\"/\">Back to the console</a></p></html>",
        super::escape(why)
    );
    (StatusCode::FORBIDDEN, axum::response::Html(body)).into_response()
}

/// Checks a submitted CSRF token against the session's, in constant time.
pub fn csrf_matches(viewer: &Viewer, submitted: &str) -> bool {
    let (a, b) = (viewer.csrf.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = Response;

    /// The signed-in viewer; without a session, a page is sent to the sign-in (and back
    /// afterwards), and a POST is refused.
    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Viewer, Response> {
        match token_of(&parts.headers).and_then(|t| state.sessions.viewer(&t)) {
            Some(viewer) => Ok(viewer),
            None if parts.method == Method::GET => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
                Err(Redirect::to(&format!("/signin?{query}")).into_response())
            }
            None => Err(forbidden("You are not signed in (or your session ended): sign in and try again.")),
        }
    }
}

/// An administrator, or a 403 page for anyone else.
pub struct Admin(pub Viewer);

impl FromRequestParts<ConsoleState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Admin, Response> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if viewer.is_admin() {
            Ok(Admin(viewer))
        } else {
            Err(forbidden("Cloud services are for administrators."))
        }
    }
}
