//! Connecting DAM users to Frame.io: the authorization code grant with state (and
//! PKCE, always on Adobe IMS), and tokens renewed before they expire.
//!
//! `grant` speaks to the authorization server of either generation; `lease` hands
//! out valid tokens, renewing them single-flight.

mod grant;
mod lease;
mod probe;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::frameio::model::Generation;
use crate::frameio::transport::FixedToken;
use crate::frameio::{self, FrameioApi};
use crate::host::Host;
use crate::settings::{self, Settings};
use crate::store;
use grant::{GrantError, token_request};
pub use lease::Session;
pub use probe::{check_api, check_app};

/// How long an authorization may take, from `begin` to `complete`.
const STATE_TTL_SECS: u64 = 600;

/// Where to send the user's browser (WIT `oauth.authorization`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub url: String,
    pub state: String,
}

/// What the DAM sees of a connection (WIT `oauth.connection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub user: String,
    pub frameio_user: String,
    pub expires_at: u64,
}

/// A pending authorization, stored under its state value.
#[derive(Serialize, Deserialize)]
struct PendingAuthorization {
    user: String,
    redirect_uri: String,
    code_verifier: Option<String>,
    expires_at: u64,
}

/// A user's stored tokens.
#[derive(Clone, Serialize, Deserialize)]
struct Connection {
    /// Connections made before V4 support have no generation: they are v2.
    #[serde(default)]
    generation: Generation,
    user: String,
    frameio_user: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: u64,
    /// Set when the grant was refused: the user must connect again.
    reconnect_reason: Option<String>,
    /// While set and in the future, one call is refreshing the tokens and every
    /// other call waits for its result instead of refreshing too (single flight).
    #[serde(default)]
    refresh_lease_until: Option<u64>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("user", &self.user)
            .field("frameio_user", &self.frameio_user)
            .field("expires_at", &self.expires_at)
            .field("reconnect_reason", &self.reconnect_reason)
            .field("refresh_lease_until", &self.refresh_lease_until)
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn info(&self) -> ConnectionInfo {
        ConnectionInfo { user: self.user.clone(), frameio_user: self.frameio_user.clone(), expires_at: self.expires_at }
    }
}

pub(crate) fn connection_key(user: &str) -> String {
    format!("{}{user}", store::CONNECTION)
}

fn check_user(user: &str) -> Result<()> {
    let ok = !user.is_empty() && user.len() <= 256 && user.chars().all(|c| c.is_ascii_graphic());
    if ok { Ok(()) } else { Err(Error::InvalidInput(format!("malformed DAM user id {user:?}"))) }
}

fn random_token(host: &dyn Host, bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(host.random_bytes(bytes))
}

/// Starts a connection: returns the URL to send the user's browser to.
pub fn begin(host: &dyn Host, user: &str, redirect_uri: &str) -> Result<Authorization> {
    check_user(user)?;
    let settings = settings::load(host)?;
    Url::parse(redirect_uri).map_err(|e| Error::InvalidInput(format!("redirect URI is not a URL: {e}")))?;
    let state = random_token(host, 24);
    let code_verifier = settings.use_pkce.then(|| random_token(host, 32));
    let mut url = Url::parse(&settings.authorization_url)
        .map_err(|e| Error::Host(format!("stored authorization URL is invalid: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &settings.scopes.join(" "))
            .append_pair("state", &state);
        if let Some(verifier) = &code_verifier {
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            query.append_pair("code_challenge", &challenge).append_pair("code_challenge_method", "S256");
        }
    }
    let pending = PendingAuthorization {
        user: user.to_string(),
        redirect_uri: redirect_uri.to_string(),
        code_verifier,
        expires_at: host.now() + STATE_TTL_SECS,
    };
    store::save_expiring(host, &format!("{}{state}", store::OAUTH_STATE), &pending, pending.expires_at)?;
    Ok(Authorization { url: url.into(), state })
}

/// Completes a connection from the redirect's `state` and `code`.
pub fn complete(host: &dyn Host, state: &str, code: &str) -> Result<ConnectionInfo> {
    let refused = || Error::InvalidInput("this sign-in link is unknown, expired or already used; connect again".into());
    if state.is_empty() || state.len() > 128 || code.is_empty() || code.len() > 2048 {
        return Err(refused());
    }
    let key = format!("{}{state}", store::OAUTH_STATE);
    let pending: PendingAuthorization = store::load(host, &key)?.ok_or_else(refused)?.value;
    // Deleting first makes the state single-use even if two redirects race.
    if !host.storage_delete(&key)? || pending.expires_at < host.now() {
        return Err(refused());
    }
    let settings = settings::load(host)?;
    let mut params = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &pending.redirect_uri)];
    if let Some(verifier) = &pending.code_verifier {
        params.push(("code_verifier", verifier));
    }
    let tokens = token_request(host, &settings, &params).map_err(|e| match e {
        GrantError::Refused(why) => Error::InvalidInput(format!("Frame.io refused the authorization code: {why}")),
        GrantError::Other(e) => e,
    })?;
    let api = frameio::client(settings.api, host, &settings.api_url, &settings.web_url, Box::new(FixedToken(tokens.access_token.clone())), None);
    let me = api.me()?;
    let connection = Connection {
        generation: settings.api,
        user: pending.user.clone(),
        frameio_user: me.display(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: host.now() + tokens.expires_in.unwrap_or(3600),
        reconnect_reason: None,
        refresh_lease_until: None,
    };
    store::save(host, &connection_key(&pending.user), &connection)?;
    Ok(connection.info())
}

/// The user's connection, if any. Once Frame.io has refused its refresh token, the
/// connection is no use until the user connects again: `ReconnectRequired`, with
/// the reason, as every other call for that user answers.
pub fn status(host: &dyn Host, user: &str) -> Result<Option<ConnectionInfo>> {
    check_user(user)?;
    match store::load::<Connection>(host, &connection_key(user))? {
        Some(stored) => match stored.value.reconnect_reason {
            Some(why) => Err(Error::ReconnectRequired(why)),
            None => Ok(Some(stored.value.info())),
        },
        None => Ok(None),
    }
}

/// Refreshes the user's access token now (or waits for a refresh already under way).
pub fn refresh(host: &dyn Host, user: &str) -> Result<ConnectionInfo> {
    check_user(user)?;
    let session = Session::new(host, settings::load(host)?, user);
    let current = store::load::<Connection>(host, &connection_key(user))?.ok_or_else(|| Error::NotConnected(user.to_string()))?;
    frameio::transport::TokenSource::token(&session, Some(&current.value.access_token))?;
    status(host, user)?.ok_or_else(|| Error::NotConnected(user.to_string()))
}

/// A Frame.io client acting for DAM user `user`, with tokens from their connection.
pub fn api_for<'h>(host: &'h dyn Host, settings: &Settings, user: &str) -> Result<Box<dyn FrameioApi + 'h>> {
    check_user(user)?;
    let session = Session::new(host, settings.clone(), user);
    Ok(frameio::client(settings.api, host, &settings.api_url, &settings.web_url, Box::new(session), Some(user)))
}

#[cfg(test)]
mod tests;
