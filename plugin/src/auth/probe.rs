//! "Test connection" for the settings dialog: asks the authorization server whether
//! it knows the app, and the API whether it answers, before anything is stored.

use super::grant::{GrantError, token_request};
use crate::host::{Host, HttpRequest, Method};
use crate::settings::Settings;

/// Deadline of each probe.
const PROBE_TIMEOUT_MS: u32 = 5_000;

/// Whether the authorization server accepts the app's credentials. It is asked to
/// refresh a token that does not exist: a server that knows the client refuses the
/// grant (`invalid_grant`), one that does not refuses the client (`invalid_client`),
/// and no token is made either way. The error names the field to fix.
pub fn check_app(host: &dyn Host, settings: &Settings) -> Result<(), (&'static str, String)> {
    let made_up = format!("connection-test-{}", hex::encode(host.random_bytes(8)));
    match token_request(host, settings, &[("grant_type", "refresh_token"), ("refresh_token", &made_up)]) {
        Ok(_) => Ok(()),
        Err(GrantError::Refused(why)) if why.starts_with("invalid_client") || why.starts_with("unauthorized_client") => {
            Err(("client-id", format!("The authorization server does not accept this client ID and secret: {why}")))
        }
        Err(GrantError::Refused(_)) => Ok(()),
        Err(GrantError::Other(e)) => Err(("token-url", format!("The token server could not be asked: {e}"))),
    }
}

/// Whether the API answers at its URL: `/me` without a token is refused (401) by
/// Frame.io's API of either generation, and answered 404 by anything else.
pub fn check_api(host: &dyn Host, settings: &Settings) -> Result<(), String> {
    let url = format!("{}/me", settings.api_url);
    let req = HttpRequest { method: Method::Get, url: url.clone(), headers: Vec::new(), body: Vec::new(), timeout_ms: PROBE_TIMEOUT_MS };
    match host.http_send(req) {
        Ok(resp) if matches!(resp.status, 200 | 401 | 403) => Ok(()),
        Ok(resp) => Err(format!("{url} answered HTTP {}: is this Frame.io's API URL?", resp.status)),
        Err(e) => Err(format!("The API could not be reached: {e}")),
    }
}
