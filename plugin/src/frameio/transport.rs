//! What both API clients share: bearer-token calls over the host's `http` import,
//! one retry with a renewed token when Frame.io refuses one, and error decoding.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::pacing::Pacer;
use crate::error::{Error, FrameioError, Result};
use crate::host::{Host, HostError, HttpRequest, HttpResponse, Method};

/// Deadline for one API call. A step makes a few calls, and all of them must fit in
/// the host's per-call deadline (30 s in the reference host); a slower answer is a
/// timeout, which a job retries, rather than a trap.
const TIMEOUT_MS: u32 = 5_000;

/// Where access tokens come from (the connection's token lease, in `auth`).
pub trait TokenSource {
    /// A valid access token. `refused` is a token Frame.io just turned down although
    /// it had not expired: the source must not hand it out again.
    fn token(&self, refused: Option<&str>) -> Result<String>;
}

/// A token that is used as it is and never renewed (right after sign-in).
pub struct FixedToken(pub String);

impl TokenSource for FixedToken {
    fn token(&self, refused: Option<&str>) -> Result<String> {
        match refused {
            Some(_) => Err(Error::ReconnectRequired("Frame.io refused the new access token".into())),
            None => Ok(self.0.clone()),
        }
    }
}

/// Calls one API base URL with tokens from a [`TokenSource`].
pub struct Transport<'h> {
    host: &'h dyn Host,
    base_url: String,
    tokens: Box<dyn TokenSource + 'h>,
    pacer: Option<Pacer<'h>>,
}

impl<'h> Transport<'h> {
    /// A transport to `base_url` (for example `https://api.frame.io/v4`).
    pub fn new(host: &'h dyn Host, base_url: &str, tokens: Box<dyn TokenSource + 'h>) -> Self {
        Transport { host, base_url: base_url.trim_end_matches('/').to_string(), tokens, pacer: None }
    }

    /// The same transport, pacing its calls under the rate limits of `user`'s
    /// connection (shared with every other call of that connection).
    pub fn paced(self, user: &str) -> Self {
        Transport { pacer: Some(Pacer::new(self.host, user)), ..self }
    }

    /// Sends a request to `path` (below the base URL, with its query). An error
    /// status becomes `Error::Frameio`. A 401 is answered once more with a renewed
    /// token, since Frame.io may revoke a token before its announced expiry.
    pub fn send(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<HttpResponse> {
        let token = self.tokens.token(None)?;
        match self.send_with(&token, method, path, body) {
            Err(Error::Frameio(e)) if e.status == 401 => {
                let renewed = self.tokens.token(Some(&token))?;
                self.send_with(&renewed, method, path, body)
            }
            other => other,
        }
    }

    /// GETs `path` and decodes the answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        decode(&self.send(Method::Get, path, None)?)
    }

    fn send_with(&self, token: &str, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<HttpResponse> {
        if let Some(pacer) = &self.pacer {
            pacer.admit(method, path)?;
        }
        let mut headers =
            vec![("authorization".to_string(), format!("Bearer {token}")), ("accept".to_string(), "application/json".to_string())];
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        let req = HttpRequest {
            method,
            url: format!("{}{}", self.base_url, path),
            headers,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            timeout_ms: TIMEOUT_MS,
        };
        let resp = self.host.http_send(req).map_err(unreachable_error)?;
        if let Some(pacer) = &self.pacer {
            pacer.learn(method, path, &resp)?;
        }
        if resp.status >= 400 {
            return Err(Error::Frameio(error_from(&resp)));
        }
        Ok(resp)
    }
}

/// A transport failure: no answer from Frame.io at all.
fn unreachable_error(e: HostError) -> Error {
    match e {
        HostError::Refused(why) => Error::Host(format!("the host refused to reach Frame.io: {why}")),
        other => Error::Frameio(FrameioError::new(0, other.to_string())),
    }
}

/// Decodes a JSON answer; a body that does not fit is Frame.io's error, not ours.
pub fn decode<T: DeserializeOwned>(resp: &HttpResponse) -> Result<T> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        Error::Frameio(FrameioError::new(resp.status, format!("unexpected response from Frame.io: {e}")))
    })
}

/// Error bodies: v2 sends `{"code", "message", "errors": [{"detail"}]}`, V4 sends
/// `{"errors": [{"title", "detail"}]}`. Both decode here.
#[derive(Deserialize)]
struct WireError {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<WireErrorDetail>,
}

#[derive(Deserialize)]
struct WireErrorDetail {
    title: Option<String>,
    detail: Option<String>,
}

fn error_from(resp: &HttpResponse) -> FrameioError {
    let parsed: Option<WireError> = serde_json::from_slice(&resp.body).ok();
    let first = parsed.as_ref().and_then(|e| e.errors.first());
    let detail = first.and_then(|d| d.detail.clone());
    let headline = parsed.as_ref().and_then(|e| e.message.clone()).or_else(|| first.and_then(|d| d.title.clone()));
    let message = match (headline, detail) {
        (Some(h), Some(d)) if h != d => format!("{h}: {d}"),
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) => format!("HTTP {}", resp.status),
    };
    FrameioError { status: resp.status, message, retry_after_ms: retry_hint(resp) }
}

/// How long Frame.io asks us to wait: `Retry-After` in seconds when present, else,
/// for a 429 with no requests left, the time the bucket takes to free one request
/// (`x-ratelimit-window` ms over `x-ratelimit-limit`; the whole window when the limit
/// is not told). Whoever retries bounds it (see `jobs::retry`).
fn retry_hint(resp: &HttpResponse) -> Option<u32> {
    let number = |name| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let hint_ms = match number("retry-after") {
        Some(secs) => secs.saturating_mul(1000),
        None if resp.status == 429 && number("x-ratelimit-remaining") == Some(0) => {
            number("x-ratelimit-window")? / number("x-ratelimit-limit").filter(|l| *l > 0).unwrap_or(1)
        }
        None => return None,
    };
    Some(u32::try_from(hint_ms).unwrap_or(u32::MAX))
}

/// `path` with `pairs` appended as a query string, percent-encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_string();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs.iter().copied());
    format!("{path}?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn both_generations_error_bodies_give_their_message() {
        let v2 = response(404, &[], r#"{"code":404,"message":"Not Found","errors":[{"detail":"no such asset"}]}"#);
        assert_eq!(error_from(&v2).message, "Not Found: no such asset");
        let v4 = response(422, &[], r#"{"errors":[{"title":"Invalid value","detail":"name can't be blank","source":{"pointer":"/data/name"}}]}"#);
        assert_eq!(error_from(&v4).message, "Invalid value: name can't be blank");
        assert_eq!(error_from(&response(502, &[], "<html>")).message, "HTTP 502");
    }

    #[test]
    fn a_spent_rate_limit_asks_to_wait_for_one_request_to_free() {
        let limited = response(429, &[("x-ratelimit-remaining", "0"), ("x-ratelimit-window", "60000")], "{}");
        assert_eq!(error_from(&limited).retry_after_ms, Some(60_000));
        let leaky = response(429, &[("x-ratelimit-limit", "40"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-window", "60000")], "{}");
        assert_eq!(error_from(&leaky).retry_after_ms, Some(1_500), "one request frees every window / limit");
        let told = response(503, &[("retry-after", "7")], "{}");
        assert_eq!(error_from(&told).retry_after_ms, Some(7_000));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(with_query("/a", &[("after", "x&y=z"), ("page_size", "100")]), "/a?after=x%26y%3Dz&page_size=100");
        assert_eq!(with_query("/a", &[]), "/a");
    }
}
