//! Typed records in the host's key-value storage, as JSON.
//!
//! Every record the connector keeps lives under one of the key prefixes below, so
//! a host administrator can tell them apart when looking at the store.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::host::{Host, HostError};

/// The provider settings.
pub const SETTINGS: &str = "settings";
/// `oauth-state/<state>`: a pending authorization.
pub const OAUTH_STATE: &str = "oauth-state/";
/// `connection/<dam user>`: a user's tokens.
pub const CONNECTION: &str = "connection/";
/// `binding/<id>`: a folder binding.
pub const BINDING: &str = "binding/";
/// `interaction/<interaction id>`: a custom-action conversation in progress.
pub const INTERACTION: &str = "interaction/";

/// The most keys one `list-keys` answers (the storage contract's cap).
pub const LISTED_AT_MOST: usize = 1000;
/// Every character a Frame.io id may hold (`frameio::is_frameio_id`), in byte order.
const ID_CHARS: &str = "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// Every key under `prefix`, in byte order, however many. A listing answers at most
/// [`LISTED_AT_MOST`] keys, so a full one is listed again one character further
/// (the keys below these prefixes end in Frame.io ids), until each part fits.
pub fn list_all(host: &dyn Host, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut prefixes = vec![prefix.to_string()];
    while let Some(prefix) = prefixes.pop() {
        let listed = host.storage_list(&prefix)?;
        if listed.len() < LISTED_AT_MOST {
            keys.extend(listed);
            continue;
        }
        // The prefix may be a whole key itself; byte order lists it first.
        if listed.first() == Some(&prefix) {
            keys.push(prefix.clone());
        }
        prefixes.extend(ID_CHARS.chars().map(|c| format!("{prefix}{c}")));
    }
    keys.sort_unstable();
    Ok(keys)
}

/// A record read from storage with the revision it had.
pub struct Stored<T> {
    pub value: T,
    pub revision: u64,
}

/// Reads and decodes a record. A value that does not decode is reported, not ignored:
/// it means the store was changed by something other than this connector.
pub fn load<T: DeserializeOwned>(host: &dyn Host, key: &str) -> Result<Option<Stored<T>>> {
    let Some(entry) = host.storage_get(key)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&entry.value)
        .map_err(|e| Error::Host(format!("stored record {key} is unreadable: {e}")))?;
    Ok(Some(Stored { value, revision: entry.revision }))
}

/// Writes a record unconditionally.
pub fn save<T: Serialize>(host: &dyn Host, key: &str, value: &T) -> Result<u64> {
    Ok(host.storage_set(key, &encode(value))?)
}

/// Writes a record that the host deletes at `expires_at` (Unix seconds); until then
/// it reads like any other.
pub fn save_expiring<T: Serialize>(host: &dyn Host, key: &str, value: &T, expires_at: u64) -> Result<u64> {
    Ok(host.storage_set_expiring(key, &encode(value), expires_at)?)
}

/// Writes a record only if it still has revision `expected` (`None`: only if absent).
/// Returns the new revision, or `None`, writing nothing, when someone else wrote it first.
pub fn save_if<T: Serialize>(host: &dyn Host, key: &str, expected: Option<u64>, value: &T) -> Result<Option<u64>> {
    match host.storage_cas(key, expected, &encode(value)) {
        Ok(revision) => Ok(Some(revision)),
        Err(HostError::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain records cannot fail: they hold no maps with
    // non-string keys and no custom serialisers.
    serde_json::to_vec(value).expect("connector records serialise to JSON")
}
