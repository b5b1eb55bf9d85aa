//! Token requests to the authorization server: Frame.io's legacy OAuth server for
//! v2, Adobe IMS for V4. They differ in how the client proves who it is.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use url::form_urlencoded;

use crate::error::{Error, FrameioError};
use crate::frameio::model::Generation;
use crate::host::{Host, HttpRequest, Method};
use crate::settings::Settings;

/// Deadline of a token request; with the API calls around it, it stays well inside
/// the host's per-call deadline (30 s in the reference host).
const TOKEN_TIMEOUT_MS: u32 = 5_000;

/// The token endpoint's answer.
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
    pub(super) expires_in: Option<u64>,
}

/// The token endpoint's error body (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

/// Why a token request failed.
pub(super) enum GrantError {
    /// The server refused the grant (`invalid_grant` and friends).
    Refused(String),
    /// Anything else: transport, server error, malformed answer.
    Other(Error),
}

pub(super) fn token_request(host: &dyn Host, settings: &Settings, params: &[(&str, &str)]) -> std::result::Result<TokenResponse, GrantError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params.iter().copied());
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match (settings.api, settings.use_pkce) {
        // Adobe IMS takes the client's credentials in the body, secret and all.
        (Generation::V4, _) => {
            form.append_pair("client_id", &settings.client_id);
            if !settings.client_secret.is_empty() {
                form.append_pair("client_secret", &settings.client_secret);
            }
        }
        // A PKCE app on Frame.io's legacy server is a public client: it identifies
        // itself, with no secret.
        (Generation::V2, true) => {
            form.append_pair("client_id", &settings.client_id);
        }
        (Generation::V2, false) => {
            let basic = STANDARD.encode(format!("{}:{}", settings.client_id, settings.client_secret));
            headers.push(("authorization".to_string(), format!("Basic {basic}")));
        }
    }
    let req = HttpRequest {
        method: Method::Post,
        url: settings.token_url.clone(),
        headers,
        body: form.finish().into_bytes(),
        timeout_ms: TOKEN_TIMEOUT_MS,
    };
    let resp = host
        .http_send(req)
        .map_err(|e| GrantError::Other(Error::Frameio(FrameioError::new(0, e.to_string()))))?;
    if resp.status == 400 || resp.status == 401 {
        let why = serde_json::from_slice::<TokenError>(&resp.body)
            .map(|e| match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            })
            .unwrap_or_else(|_| format!("HTTP {}", resp.status));
        return Err(GrantError::Refused(why));
    }
    if resp.status >= 300 {
        let message = format!("token endpoint answered HTTP {}", resp.status);
        return Err(GrantError::Other(Error::Frameio(FrameioError::new(resp.status, message))));
    }
    serde_json::from_slice(&resp.body).map_err(|e| {
        GrantError::Other(Error::Frameio(FrameioError::new(resp.status, format!("malformed token response: {e}"))))
    })
}

