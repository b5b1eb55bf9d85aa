//! Signing in and out.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::render::Posted;
use super::session::Viewer;
use super::{ConsoleState, html};

pub fn routes() -> Router<ConsoleState> {
    Router::new().route("/signin", get(page).post(sign_in)).route("/signout", post(sign_out))
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    next: String,
    name: String,
    problem: String,
    no_users: bool,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this console: never another site (`//host`), so the sign-in
/// cannot be used to send someone elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n.to_string(),
        _ => "/".to_string(),
    }
}

async fn page(State(state): State<ConsoleState>, Query(q): Query<Next>) -> Response {
    let page = SignInPage { next: safe_next(q.next.as_deref()), name: String::new(), problem: String::new(), no_users: state.users.users.is_empty() };
    html(StatusCode::OK, page.render())
}

async fn sign_in(State(state): State<ConsoleState>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| form.iter().rev().find(|(n, _)| n == name).map_or(String::new(), |(_, v)| v.clone());
    let (name, password, next) = (get("name"), get("password"), safe_next(Some(&get("next"))));
    // Hashing takes a moment of CPU: off the request threads.
    let users = state.users.clone();
    let checked_name = name.clone();
    let role = tokio::task::spawn_blocking(move || users.sign_in(&checked_name, &password)).await.ok().flatten();
    match role {
        Some(role) => {
            let cookie = state.sessions.start(&name, role);
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookies are ASCII"));
            response
        }
        None => {
            tracing::warn!(user = %name, "a console sign-in was refused");
            let page = SignInPage { next, name, problem: "That name and password do not match.".into(), no_users: state.users.users.is_empty() };
            html(StatusCode::UNAUTHORIZED, page.render())
        }
    }
}

async fn sign_out(State(state): State<ConsoleState>, viewer: Viewer, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = Posted::read(&viewer, &headers, &body) {
        return refused;
    }
    let cookie = state.sessions.end_for(&viewer);
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(cookie));
    response
}
