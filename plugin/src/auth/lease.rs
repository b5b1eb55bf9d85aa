//! The single-flight token lease: every call for a connection gets a valid access
//! token, and when it must be renewed exactly one call asks the token endpoint
//! while the others wait for its result.

use super::grant::{GrantError, token_request};
use super::{Connection, connection_key};
use crate::error::{Error, FrameioError, Result};
use crate::frameio::transport::TokenSource;
use crate::host::{Host, Message, Recipient};
use crate::settings::Settings;
use crate::store;

/// Refresh this long before the access token expires, so no call races the expiry.
const REFRESH_MARGIN_SECS: u64 = 60;
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


/// The tokens of one DAM user's connection.
pub struct Session<'h> {
    host: &'h dyn Host,
    settings: Settings,
    user: String,
}

impl TokenSource for Session<'_> {
    fn token(&self, refused: Option<&str>) -> Result<String> {
        self.valid_token(refused)
    }
}

impl<'h> Session<'h> {
    /// The session of `user`, whose connection must be for `settings.api`.
    pub fn new(host: &'h dyn Host, settings: Settings, user: &str) -> Self {
        Session { host, settings, user: user.to_string() }
    }

    /// A valid access token: the stored one while it is fresh and is not `refused`
    /// (a token Frame.io just turned down), else a refreshed one.
    ///
    /// Refreshes are single-flight per connection: the call that wins the refresh
    /// lease (a compare-and-swap on the connection record) asks the token endpoint;
    /// every other call waits for the record to change and uses its tokens.
    fn valid_token(&self, refused: Option<&str>) -> Result<String> {
        let key = connection_key(&self.user);
        let mut waited_ms = 0;
        loop {
            let stored = store::load::<Connection>(self.host, &key)?.ok_or_else(|| Error::NotConnected(self.user.clone()))?;
            let conn = stored.value;
            if let Some(why) = &conn.reconnect_reason {
                return Err(Error::ReconnectRequired(why.clone()));
            }
            if conn.generation != self.settings.api {
                return Err(Error::ReconnectRequired(format!(
                    "this connection was made for the Frame.io {} API and the provider now uses {}",
                    conn.generation.name(),
                    self.settings.api.name()
                )));
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
        self.valid_token(None)
    }

    /// Records that the grant is gone and tells the user, once. If the record changed
    /// meanwhile, another call refreshed with this same token first (rotating refresh
    /// tokens allow one use): its tokens are valid, so use them instead.
    fn mark_reconnect(&self, key: &str, revision: u64, conn: Connection, why: String) -> Result<String> {
        let reason = format!("Frame.io refused the refresh token: {why}");
        let marked = Connection { reconnect_reason: Some(reason.clone()), refresh_lease_until: None, ..conn };
        if store::save_if(self.host, key, Some(revision), &marked)?.is_none() {
            return self.valid_token(None);
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
