//! Connecting DAM users to Frame.io: OAuth 2.0 authorization code grant, with PKCE
//! when the Frame.io app uses it, and refresh before an access token expires.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;
use url::form_urlencoded;

use crate::error::{Error, FrameioError, Result};
use crate::frameio::FrameioApi;
use crate::frameio::v2::V2;
use crate::host::{Host, HttpRequest, Method, Message, Recipient};
use crate::settings::{self, Settings};
use crate::store;

/// How long an authorization may take, from `begin` to `complete`.
const STATE_TTL_SECS: u64 = 600;
/// Refresh this long before the access token expires, so no call races the expiry.
const REFRESH_MARGIN_SECS: u64 = 60;
/// Deadline of a token request; with the API calls around it, it stays well inside
/// the host's per-call deadline (30 s in the reference host).
const TOKEN_TIMEOUT_MS: u32 = 5_000;
/// How long one call may hold a connection's refresh lease. Longer than a token
/// request may take, so a live holder always finishes first; a holder that died
/// (trapped, or its host crashed) blocks the others no longer than this.
const REFRESH_LEASE_SECS: u64 = 10;
/// How often a call waiting for another call's refresh looks at the connection again.
const REFRESH_WAIT_MS: u32 = 50;
/// The longest a call waits for another call's refresh before giving up with a
/// passing error: a live holder is done within its token request's deadline.
const MAX_REFRESH_WAIT_MS: u32 = 6_000;
/// A token this far from its expiry is still used while another call refreshes it.
const STILL_VALID_SECS: u64 = 5;

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

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// The token endpoint's error body (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

fn connection_key(user: &str) -> String {
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
    let me = V2::new(host, &settings.api_url, &tokens.access_token).me()?;
    let connection = Connection {
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

/// The user's connection, if any.
pub fn status(host: &dyn Host, user: &str) -> Result<Option<ConnectionInfo>> {
    check_user(user)?;
    Ok(store::load::<Connection>(host, &connection_key(user))?.map(|c| c.value.info()))
}

/// Refreshes the user's access token now (or waits for a refresh already under way).
pub fn refresh(host: &dyn Host, user: &str) -> Result<ConnectionInfo> {
    let session = Session::open(host, user)?;
    let current = store::load::<Connection>(host, &connection_key(user))?.ok_or_else(|| Error::NotConnected(user.to_string()))?;
    session.token(Some(&current.value.access_token))?;
    status(host, user)?.ok_or_else(|| Error::NotConnected(user.to_string()))
}

/// Why a token request failed.
enum GrantError {
    /// The server refused the grant (`invalid_grant` and friends).
    Refused(String),
    /// Anything else: transport, server error, malformed answer.
    Other(Error),
}

fn token_request(host: &dyn Host, settings: &Settings, params: &[(&str, &str)]) -> std::result::Result<TokenResponse, GrantError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params.iter().copied());
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    if settings.use_pkce {
        // A PKCE app is a public client: it identifies itself, with no secret.
        form.append_pair("client_id", &settings.client_id);
    } else {
        let basic = STANDARD.encode(format!("{}:{}", settings.client_id, settings.client_secret));
        headers.push(("authorization".to_string(), format!("Basic {basic}")));
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

/// Calls to Frame.io on behalf of one DAM user, with a fresh access token.
pub struct Session<'h> {
    host: &'h dyn Host,
    settings: Settings,
    user: String,
}

impl<'h> Session<'h> {
    /// A session for `user`; fails if the provider is not configured.
    pub fn open(host: &'h dyn Host, user: &str) -> Result<Self> {
        check_user(user)?;
        Ok(Session { host, settings: settings::load(host)?, user: user.to_string() })
    }

    /// The provider settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs `f` with an API client. If Frame.io says the token is no longer valid
    /// although it has not expired, refreshes once and runs `f` again.
    pub fn with_api<T>(&self, f: impl Fn(&dyn FrameioApi) -> Result<T>) -> Result<T> {
        let token = self.token(None)?;
        match f(&V2::new(self.host, &self.settings.api_url, &token)) {
            Err(Error::Frameio(e)) if e.status == 401 => {
                let token = self.token(Some(&token))?;
                f(&V2::new(self.host, &self.settings.api_url, &token))
            }
            other => other,
        }
    }

    /// A valid access token: the stored one while it is fresh and is not `refused`
    /// (a token Frame.io just turned down), else a refreshed one.
    ///
    /// Refreshes are single-flight per connection: the call that wins the refresh
    /// lease (a compare-and-swap on the connection record) asks the token endpoint;
    /// every other call waits for the record to change and uses its tokens.
    fn token(&self, refused: Option<&str>) -> Result<String> {
        let key = connection_key(&self.user);
        let mut waited_ms = 0;
        loop {
            let stored = store::load::<Connection>(self.host, &key)?.ok_or_else(|| Error::NotConnected(self.user.clone()))?;
            let conn = stored.value;
            if let Some(why) = &conn.reconnect_reason {
                return Err(Error::ReconnectRequired(why.clone()));
            }
            let now = self.host.now();
            let turned_down = refused == Some(conn.access_token.as_str());
            if !turned_down && conn.expires_at > now + REFRESH_MARGIN_SECS {
                return Ok(conn.access_token);
            }
            if conn.refresh_token.is_none() {
                return Err(Error::ReconnectRequired("Frame.io gave no refresh token (is the offline scope granted?)".into()));
            }
            // A lease further out than any holder could have set (a damaged record, a
            // clock that jumped) is not honoured, so it cannot stall every call.
            let leased = conn.refresh_lease_until.is_some_and(|until| until > now && until <= now + 2 * REFRESH_LEASE_SECS);
            if leased {
                if !turned_down && conn.expires_at > now + STILL_VALID_SECS {
                    return Ok(conn.access_token);
                }
                if waited_ms >= MAX_REFRESH_WAIT_MS {
                    let why = "another call is renewing the Frame.io token and has not finished; try again shortly";
                    return Err(Error::Frameio(FrameioError::new(503, why)));
                }
                self.host.sleep_ms(REFRESH_WAIT_MS);
                waited_ms += REFRESH_WAIT_MS;
                continue;
            }
            let lease = Connection { refresh_lease_until: Some(now + REFRESH_LEASE_SECS), ..conn.clone() };
            if let Some(revision) = store::save_if(self.host, &key, Some(stored.revision), &lease)? {
                return self.refresh_with_lease(&key, revision, conn);
            }
        }
    }

    /// Asks the token endpoint for new tokens while holding the refresh lease, and
    /// stores them (releasing the lease) before anyone uses them.
    fn refresh_with_lease(&self, key: &str, revision: u64, conn: Connection) -> Result<String> {
        // `token` checked that there is one before taking the lease.
        let refresh_token = conn.refresh_token.clone().unwrap_or_default();
        match token_request(self.host, &self.settings, &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)]) {
            Ok(tokens) => {
                let renewed = Connection {
                    access_token: tokens.access_token,
                    // Frame.io may omit a new refresh token: the old one stays valid then.
                    refresh_token: tokens.refresh_token.or(conn.refresh_token.clone()),
                    expires_at: self.host.now() + tokens.expires_in.unwrap_or(3600),
                    refresh_lease_until: None,
                    ..conn
                };
                self.save_renewed(key, revision, &refresh_token, renewed)
            }
            Err(GrantError::Refused(why)) => self.mark_reconnect(key, revision, conn, why),
            Err(GrantError::Other(e)) => {
                // Release the lease so the next call may try at once; if this write
                // fails, the lease simply runs out.
                let released = Connection { refresh_lease_until: None, ..conn };
                let _ = store::save_if(self.host, key, Some(revision), &released);
                Err(e)
            }
        }
    }

    /// Stores renewed tokens. If the record changed meanwhile but still holds the
    /// refresh token we used, nobody stored newer tokens: our lease ran out and
    /// another call took it, or, with rotating refresh tokens, lost the race with the
    /// same token and marked the connection for reconnection. Ours are the newest
    /// (the old refresh token may already be spent), so they replace the record.
    fn save_renewed(&self, key: &str, revision: u64, used: &str, renewed: Connection) -> Result<String> {
        if store::save_if(self.host, key, Some(revision), &renewed)?.is_some() {
            return Ok(renewed.access_token);
        }
        if let Some(now) = store::load::<Connection>(self.host, key)? {
            let ours_are_newest = now.value.refresh_token.as_deref() == Some(used);
            if ours_are_newest && store::save_if(self.host, key, Some(now.revision), &renewed)?.is_some() {
                return Ok(renewed.access_token);
            }
        }
        self.token(None)
    }

    /// Records that the grant is gone and tells the user, once. If the record changed
    /// meanwhile, another call refreshed with this same token first (rotating refresh
    /// tokens allow one use): its tokens are valid, so use them instead.
    fn mark_reconnect(&self, key: &str, revision: u64, conn: Connection, why: String) -> Result<String> {
        let reason = format!("Frame.io refused the refresh token: {why}");
        let marked = Connection { reconnect_reason: Some(reason.clone()), refresh_lease_until: None, ..conn };
        if store::save_if(self.host, key, Some(revision), &marked)?.is_none() {
            return self.token(None);
        }
        let _ = self.host.notify(Message {
            to: Recipient::DamUser(self.user.clone()),
            subject: "Reconnect your Frame.io account".into(),
            body: format!("The DAM can no longer reach Frame.io for you: {reason}.\nConnect again to resume imports."),
            link: None,
        });
        Err(Error::ReconnectRequired(reason))
    }
}
