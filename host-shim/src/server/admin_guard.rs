//! Who may call the admin API. Every request must name one of the admin API's own
//! host names (`Host`, and `Origin` when a browser sends one), which defeats DNS
//! rebinding and cross-site requests; carry the admin token as a bearer token; and,
//! to change anything, send JSON, which no HTML form can.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_response;

/// The admin API's token and names.
pub struct AdminGuard {
    token: String,
    /// Lower-case host names, IPv6 addresses in brackets.
    hosts: Vec<String>,
}

impl AdminGuard {
    pub fn new(token: String, hosts: &[String]) -> Arc<AdminGuard> {
        Arc::new(AdminGuard { token, hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect() })
    }

    fn knows(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Why the request's `Host` is refused, if it is: not exactly one, or not one of
    /// the listener's names. The console checks this too.
    pub fn host_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = match (hosts.next().and_then(|h| h.to_str().ok()), hosts.next()) {
            (Some(host), None) => host,
            _ => return Some(error_response(StatusCode::BAD_REQUEST, "exactly one Host header is required")),
        };
        if !self.knows(host_name(host)) {
            let reason = format!("{:?} is not a name of this admin API (server.admin_hosts)", host_name(host));
            return Some(error_response(StatusCode::FORBIDDEN, reason));
        }
        None
    }

    /// Why the request is refused, if it is.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if let Some(refused) = self.host_refusal(headers) {
            return Some(refused);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let known = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()).is_some_and(|url| {
                url.host_str().is_some_and(|h| self.knows(h))
            });
            if !known {
                return Some(error_response(StatusCode::FORBIDDEN, "cross-origin requests to the admin API are refused"));
            }
        }
        if !self.bearer_matches(headers) {
            let mut response = error_response(StatusCode::UNAUTHORIZED, "the admin API needs its token: Authorization: Bearer <token>");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"host-shim admin\""));
            return Some(response);
        }
        if changes_state(method) && !is_json(headers) {
            let reason = "requests that change state must send Content-Type: application/json";
            return Some(error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason));
        }
        None
    }

    fn bearer_matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else { return false };
        let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else { return false };
        constant_time_eq(token.trim().as_bytes(), self.token.as_bytes())
    }
}

/// The name part of a `Host` value: `[::1]:8081` -> `[::1]`, `localhost:8081` -> `localhost`.
fn host_name(host: &str) -> &str {
    match host.find(']') {
        Some(end) if host.starts_with('[') => &host[..=end],
        _ => host.split(':').next().unwrap_or(host),
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: refuses what [`AdminGuard`] refuses; lets the rest through.
pub async fn check(State(guard): State<Arc<AdminGuard>>, request: Request, next: Next) -> Response {
    match guard.refusal(request.method(), request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Arc<AdminGuard> {
        AdminGuard::new("t0ken".into(), &["localhost".into(), "127.0.0.1".into(), "[::1]".into()])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn status(method: Method, pairs: &[(&str, &str)]) -> Option<u16> {
        guard().refusal(&method, &headers(pairs)).map(|r| r.status().as_u16())
    }

    const OK: (&str, &str) = ("authorization", "Bearer t0ken");

    #[test]
    fn a_known_host_with_the_token_passes() {
        for host in ["127.0.0.1:8081", "localhost", "LOCALHOST:1", "[::1]:8081"] {
            assert_eq!(status(Method::GET, &[("host", host), OK]), None, "{host}");
        }
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(status(Method::POST, &[("host", "localhost"), ("origin", "http://localhost:8081"), OK, json]), None);
    }

    #[test]
    fn a_rebound_name_or_a_foreign_origin_is_forbidden() {
        assert_eq!(status(Method::GET, &[("host", "attacker.example:8081"), OK]), Some(403));
        assert_eq!(status(Method::GET, &[("host", "127.0.0.1.nip.io"), OK]), Some(403));
        assert_eq!(status(Method::GET, &[("host", "localhost"), ("origin", "https://attacker.example"), OK]), Some(403));
        assert_eq!(status(Method::GET, &[("host", "localhost"), ("origin", "null"), OK]), Some(403));
        assert_eq!(status(Method::GET, &[OK]), Some(400), "no Host");
        assert_eq!(status(Method::GET, &[("host", "localhost"), ("host", "localhost"), OK]), Some(400));
    }

    #[test]
    fn a_missing_or_wrong_token_is_unauthorized() {
        assert_eq!(status(Method::GET, &[("host", "localhost")]), Some(401));
        assert_eq!(status(Method::GET, &[("host", "localhost"), ("authorization", "Bearer t0ke")]), Some(401));
        assert_eq!(status(Method::GET, &[("host", "localhost"), ("authorization", "Basic t0ken")]), Some(401));
        assert_eq!(status(Method::GET, &[("host", "localhost"), OK, OK]), Some(401), "two tokens");
    }

    #[test]
    fn state_changes_need_json() {
        for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert_eq!(status(Method::POST, &[("host", "localhost"), OK, ("content-type", ct)]), Some(415), "{ct}");
        }
        assert_eq!(status(Method::PUT, &[("host", "localhost"), OK]), Some(415), "no content type");
        assert_eq!(status(Method::DELETE, &[("host", "localhost"), OK]), None, "no body to type");
    }
}
