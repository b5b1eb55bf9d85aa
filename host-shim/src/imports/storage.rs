//! The `storage` import: durable key-value state for the connector, one namespace per
//! tenant, in the host's SQLite database.
//!
//! Limits (from the WIT): keys are 1 to 512 bytes of printable ASCII, values at most
//! 1 MiB. Revisions start at 1 and increase on every write of a key, including across
//! a delete or an expiry: a deleted or expired key keeps a tombstone row so that a
//! compare-and-swap prepared before the delete can never succeed against a value
//! written after it. The retention sweep ([`KvStore::purge`]) removes tombstones and
//! expired keys; the highest revision it removed becomes the tenant's floor, and a key
//! written afresh starts above it, so the guarantee outlives the rows.
//!
//! Values are sealed (see [`crate::sealing`]) before they reach SQLite: the connector
//! keeps client secrets, OAuth tokens and signing secrets here, and the host cannot
//! tell which values those are, so it seals them all. Each value is bound to its
//! tenant and key; one that does not open is reported as unavailable, never returned.
//! Keys and revisions stay in clear text: they name records, they are not secrets.

use std::fmt;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::db::{Database, unix_secs};
use crate::sealing::SealingKey;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value, in bytes (of the plaintext: sealing adds 41 bytes on disk).
pub const MAX_VALUE_BYTES: u32 = 1 << 20;
/// Most keys `list_keys` returns.
pub const MAX_LISTED_KEYS: usize = 1000;

/// A stored value and its revision. `Debug` shows the value's size only: values hold
/// the connector's secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The revision of this value (1 for the first write).
    pub revision: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("revision", &self.revision)
            .finish()
    }
}

/// Why a storage call failed; mirrors the WIT `storage-error`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// `compare_and_swap` found a different revision; nothing was written.
    #[error("the key's revision is not the expected one")]
    Conflict,
    /// The key is empty, too long or not printable ASCII.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value exceeds the limit (the limit in bytes).
    #[error("value larger than {0} bytes")]
    TooLarge(u32),
    /// The database failed; safe to retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Unavailable(e.to_string())
    }
}

/// Separates the storage's associated data from anything else the same key may seal.
const AAD_LABEL: &[u8] = b"host-shim kv\0";

/// The key-value store as one tenant sees it.
#[derive(Clone)]
pub struct KvStore {
    db: Database,
    tenant: String,
    sealing: Arc<SealingKey>,
}

impl KvStore {
    /// The store of `tenant` (the host validates tenant names in its config), sealing
    /// values with `key`.
    pub fn new(db: Database, tenant: &str, key: Arc<SealingKey>) -> KvStore {
        KvStore { db, tenant: tenant.to_string(), sealing: key }
    }

    /// Reads a key; `None` when absent.
    pub fn get(&self, key: &str) -> Result<Option<Entry>, StorageError> {
        check_key(key)?;
        let row: Option<(Vec<u8>, u64)> = self.db.with(|c| {
            c.query_row(
                "SELECT value, revision FROM kv
                 WHERE tenant = ?1 AND key = ?2 AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?3)",
                params![self.tenant, key, unix_secs()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })?;
        let Some((sealed, revision)) = row else { return Ok(None) };
        let value = self.sealing.open(&self.aad(key), &sealed).map_err(|e| {
            // Tampering, a value copied from another key, or a host started with the
            // wrong key: the operator needs to know which key, never its contents.
            tracing::warn!(tenant = %self.tenant, key, error = %e, "a stored value could not be opened");
            StorageError::Unavailable("stored value failed authentication".into())
        })?;
        Ok(Some(Entry { value, revision }))
    }

    /// What a value is bound to: the label, the tenant (length first, so no two
    /// tenant and key pairs run together into the same bytes) and the key.
    fn aad(&self, key: &str) -> Vec<u8> {
        let tenant = self.tenant.as_bytes();
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + 8 + tenant.len() + key.len());
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
        aad.extend_from_slice(tenant);
        aad.extend_from_slice(key.as_bytes());
        aad
    }

    /// Writes a key unconditionally and returns its new revision.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<u64, StorageError> {
        self.write(key, None, value, None)
    }

    /// Writes a key that reads as absent from `expires_at` (Unix seconds) on.
    pub fn set_expiring(&self, key: &str, value: &[u8], expires_at: u64) -> Result<u64, StorageError> {
        self.write(key, None, value, Some(i64::try_from(expires_at).unwrap_or(i64::MAX)))
    }

    /// Writes a key only if its current revision is `expected` (`None`: the key must
    /// not exist). Returns the new revision, or `Conflict` with nothing written.
    pub fn compare_and_swap(&self, key: &str, expected: Option<u64>, value: &[u8]) -> Result<u64, StorageError> {
        self.write(key, Some(expected), value, None)
    }

    /// Reads the revision and writes in one immediate transaction, so no other writer
    /// can slip in between the check and the write. `condition` is `None` for an
    /// unconditional write, `Some(expected)` for compare-and-swap. The value is sealed
    /// before the lock is taken, keeping the critical section short.
    fn write(&self, key: &str, condition: Option<Option<u64>>, value: &[u8], expires_at: Option<i64>) -> Result<u64, StorageError> {
        check_key(key)?;
        check_value(value)?;
        let sealed = self.sealing.seal(&self.aad(key), value);
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (live, last) = self.current(&tx, key)?;
            if let Some(expected) = condition
                && live != expected
            {
                return Err(StorageError::Conflict);
            }
            let revision = match last {
                Some(last) => last,
                None => self.floor(&tx)?,
            } + 1;
            tx.execute(
                "INSERT INTO kv (tenant, key, value, revision, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
                                                          updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                params![self.tenant, key, sealed, revision, unix_secs(), expires_at],
            )?;
            tx.commit()?;
            Ok(revision)
        })
    }

    /// The highest revision of this tenant's purged rows (0 if none was purged).
    fn floor(&self, c: &Connection) -> rusqlite::Result<u64> {
        c.query_row("SELECT revision FROM kv_floor WHERE tenant = ?1", [&self.tenant], |row| row.get(0))
            .optional()
            .map(Option::unwrap_or_default)
    }

    /// The key's live revision (`None` if absent, deleted or expired) and its last
    /// revision including tombstones (`None` if no row is left).
    fn current(&self, c: &Connection, key: &str) -> rusqlite::Result<(Option<u64>, Option<u64>)> {
        let row: Option<(bool, u64)> = c
            .query_row(
                "SELECT value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?3), revision
                 FROM kv WHERE tenant = ?1 AND key = ?2",
                params![self.tenant, key, unix_secs()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((true, revision)) => (Some(revision), Some(revision)),
            Some((false, revision)) => (None, Some(revision)),
            None => (None, None),
        })
    }

    /// Removes a key; returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool, StorageError> {
        check_key(key)?;
        let changed = self.db.with(|c| {
            c.execute(
                "UPDATE kv SET value = NULL, revision = revision + 1, updated_at = ?3, expires_at = NULL
                 WHERE tenant = ?1 AND key = ?2 AND value IS NOT NULL AND (expires_at IS NULL OR expires_at > ?3)",
                params![self.tenant, key, unix_secs()],
            )
        })?;
        Ok(changed == 1)
    }

    /// Keys starting with `prefix` (which may be empty), in byte order, at most 1000.
    ///
    /// The prefix is matched with a range on the primary key rather than `LIKE`, so
    /// `%` and `_` in keys are plain characters and the index is used.
    pub fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let limit = MAX_LISTED_KEYS as i64;
        let keys = self.db.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key FROM kv
                 WHERE tenant = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) AND value IS NOT NULL
                       AND (expires_at IS NULL OR expires_at > ?5)
                 ORDER BY key LIMIT ?4",
            )?;
            let rows =
                stmt.query_map(params![self.tenant, prefix, prefix_end(prefix), limit, unix_secs()], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })?;
        Ok(keys)
    }
}

/// Deletes, for every tenant, the keys expired by `now` (Unix seconds) and the
/// tombstones of deleted keys, raising each tenant's revision floor to the highest
/// revision removed. Returns how many rows went.
pub fn purge(db: &Database, now: i64) -> rusqlite::Result<usize> {
    db.with(|c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let gone = "value IS NULL OR (expires_at IS NOT NULL AND expires_at <= ?1)";
        tx.execute(
            &format!(
                "INSERT INTO kv_floor (tenant, revision) SELECT tenant, MAX(revision) FROM kv WHERE {gone} GROUP BY tenant
                 ON CONFLICT (tenant) DO UPDATE SET revision = MAX(revision, excluded.revision)"
            ),
            [now],
        )?;
        let removed = tx.execute(&format!("DELETE FROM kv WHERE {gone}"), [now])?;
        tx.commit()?;
        Ok(removed)
    })
}

/// The smallest string greater than every string starting with `prefix`, or `None`
/// for the empty prefix. Keys are printable ASCII (at most `~`, 0x7E), so bumping
/// the last byte stays within ASCII and compares correctly under SQLite's BINARY
/// collation (plain byte order).
fn prefix_end(prefix: &str) -> Option<String> {
    let (last, head) = prefix.as_bytes().split_last()?;
    let mut end = head.to_vec();
    end.push(last + 1);
    String::from_utf8(end).ok()
}

fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::InvalidKey(format!("the key is {} bytes, over {MAX_KEY_BYTES}", key.len())));
    }
    if let Some(at) = key.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
        return Err(StorageError::InvalidKey(format!("byte {at} of the key is not printable ASCII")));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), StorageError> {
    if value.len() > MAX_VALUE_BYTES as usize {
        return Err(StorageError::TooLarge(MAX_VALUE_BYTES));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(tenant: &str) -> KvStore {
        KvStore::new(Database::open_in_memory().unwrap(), tenant, Arc::new(SealingKey::generate()))
    }

    #[test]
    fn set_get_delete_round_trip_with_increasing_revisions() {
        let kv = store("t");
        assert_eq!(kv.get("a").unwrap(), None);
        assert_eq!(kv.set("a", b"one").unwrap(), 1);
        assert_eq!(kv.set("a", b"two").unwrap(), 2);
        assert_eq!(kv.get("a").unwrap(), Some(Entry { value: b"two".to_vec(), revision: 2 }));
        assert!(kv.delete("a").unwrap());
        assert!(!kv.delete("a").unwrap(), "a second delete finds nothing");
        assert_eq!(kv.get("a").unwrap(), None);
        assert_eq!(kv.set("a", b"three").unwrap(), 4, "revisions keep increasing across a delete");
    }

    fn row_count(kv: &KvStore) -> i64 {
        kv.db.with(|c| c.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))).unwrap()
    }

    #[test]
    fn an_expired_key_reads_as_absent_and_a_later_set_clears_the_deadline() {
        let kv = store("t");
        let now = unix_secs() as u64;
        assert_eq!(kv.set_expiring("live", b"v", now + 3600).unwrap(), 1);
        assert_eq!(kv.get("live").unwrap().unwrap().value, b"v");
        assert_eq!(kv.set_expiring("gone", b"v", now - 1).unwrap(), 1);
        assert_eq!(kv.get("gone").unwrap(), None);
        assert_eq!(kv.list_keys("").unwrap(), ["live"]);
        assert!(!kv.delete("gone").unwrap(), "an expired key is not there to delete");
        assert_eq!(kv.compare_and_swap("gone", Some(1), b"stale"), Err(StorageError::Conflict));
        assert_eq!(kv.compare_and_swap("gone", None, b"new").unwrap(), 2, "written afresh above the expired revision");
        assert_eq!(kv.get("gone").unwrap().unwrap().value, b"new", "compare-and-swap cleared the deadline");
    }

    #[test]
    fn purge_removes_expired_keys_and_tombstones_and_revisions_never_repeat() {
        let kv = store("t");
        let now = unix_secs();
        for revision in 1..=3 {
            assert_eq!(kv.set("deleted", b"v").unwrap(), revision);
        }
        kv.delete("deleted").unwrap();
        kv.set_expiring("expiring", b"v", now as u64 + 10).unwrap();
        kv.set("kept", b"v").unwrap();
        assert_eq!(purge(&kv.db, now).unwrap(), 1, "only the tombstone has gone by now");
        assert_eq!(purge(&kv.db, now + 10).unwrap(), 1, "the expired key goes at its deadline");
        assert_eq!(row_count(&kv), 1);
        assert_eq!(kv.get("kept").unwrap().unwrap().value, b"v");
        // A revision read before the delete (3) can never match the key written again.
        assert_eq!(kv.set("deleted", b"again").unwrap(), 5, "above the floor of purged revisions");
        assert_eq!(kv.compare_and_swap("deleted", Some(3), b"stale"), Err(StorageError::Conflict));
        assert_eq!(store_sharing(&kv, "other").set("deleted", b"v").unwrap(), 1, "each tenant has its own floor");
    }

    fn store_sharing(kv: &KvStore, tenant: &str) -> KvStore {
        KvStore::new(kv.db.clone(), tenant, kv.sealing.clone())
    }

    #[test]
    fn rows_stay_bounded_under_a_steady_stream_of_expiring_writes() {
        // One conversation a second, each kept an hour, swept every minute of a
        // simulated three hours: the table never holds more than an hour and a minute.
        let kv = store("t");
        let start = unix_secs();
        let mut most = 0;
        for second in 0..3 * 3600 {
            kv.set_expiring(&format!("interaction/{second}"), b"v", (start + second + 3600) as u64).unwrap();
            if second % 60 == 0 {
                purge(&kv.db, start + second).unwrap();
            }
            most = most.max(row_count(&kv));
        }
        assert!(most <= 3600 + 60, "at most {most} rows");
        assert!(most >= 3600, "rows live their hour: {most}");
    }

    #[test]
    fn compare_and_swap_creates_if_absent_only() {
        let kv = store("t");
        assert_eq!(kv.compare_and_swap("k", None, b"first").unwrap(), 1);
        assert_eq!(kv.compare_and_swap("k", None, b"second"), Err(StorageError::Conflict));
        assert_eq!(kv.get("k").unwrap().unwrap().value, b"first");
    }

    #[test]
    fn compare_and_swap_conflict_leaves_value_unchanged() {
        let kv = store("t");
        kv.set("k", b"v1").unwrap();
        kv.set("k", b"v2").unwrap();
        assert_eq!(kv.compare_and_swap("k", Some(1), b"stale"), Err(StorageError::Conflict));
        assert_eq!(kv.get("k").unwrap(), Some(Entry { value: b"v2".to_vec(), revision: 2 }));
        assert_eq!(kv.compare_and_swap("k", Some(2), b"v3").unwrap(), 3);
        assert_eq!(kv.get("k").unwrap().unwrap().value, b"v3");
    }

    #[test]
    fn compare_and_swap_on_missing_key_with_a_revision_conflicts() {
        let kv = store("t");
        assert_eq!(kv.compare_and_swap("k", Some(1), b"v"), Err(StorageError::Conflict));
        assert_eq!(kv.get("k").unwrap(), None);
    }

    #[test]
    fn stale_revision_does_not_match_after_delete_and_recreate() {
        let kv = store("t");
        kv.set("k", b"old").unwrap();
        kv.delete("k").unwrap();
        kv.compare_and_swap("k", None, b"new").unwrap();
        assert_eq!(kv.compare_and_swap("k", Some(1), b"stale"), Err(StorageError::Conflict));
        assert_eq!(kv.get("k").unwrap().unwrap().value, b"new");
    }

    #[test]
    fn tenants_are_isolated() {
        let db = Database::open_in_memory().unwrap();
        let key = Arc::new(SealingKey::generate());
        let a = KvStore::new(db.clone(), "a", key.clone());
        let b = KvStore::new(db, "b", key);
        a.set("shared", b"from a").unwrap();
        assert_eq!(b.get("shared").unwrap(), None);
        assert_eq!(b.set("shared", b"from b").unwrap(), 1);
        assert_eq!(a.get("shared").unwrap().unwrap().value, b"from a");
        assert_eq!(a.list_keys("").unwrap(), vec!["shared"]);
        assert!(b.delete("shared").unwrap());
        assert!(a.get("shared").unwrap().is_some());
    }

    #[test]
    fn key_limits() {
        let kv = store("t");
        assert!(matches!(kv.get(""), Err(StorageError::InvalidKey(_))));
        assert!(matches!(kv.set(&"k".repeat(513), b""), Err(StorageError::InvalidKey(_))));
        assert_eq!(kv.set(&"k".repeat(512), b"").unwrap(), 1);
        for bad in ["tab\there", "new\nline", "é", "nul\0"] {
            assert!(matches!(kv.set(bad, b"v"), Err(StorageError::InvalidKey(_))), "{bad:?}");
        }
        assert_eq!(kv.set(" !~", b"v").unwrap(), 1, "space and ~ are printable");
    }

    #[test]
    fn value_limit() {
        let kv = store("t");
        let max = vec![7u8; MAX_VALUE_BYTES as usize];
        assert_eq!(kv.set("big", &max).unwrap(), 1);
        assert_eq!(kv.get("big").unwrap().unwrap().value.len(), max.len());
        let over = vec![7u8; MAX_VALUE_BYTES as usize + 1];
        assert_eq!(kv.set("big", &over), Err(StorageError::TooLarge(MAX_VALUE_BYTES)));
        assert_eq!(kv.compare_and_swap("big", Some(1), &over), Err(StorageError::TooLarge(MAX_VALUE_BYTES)));
        assert_eq!(kv.get("big").unwrap().unwrap().revision, 1);
    }

    #[test]
    fn list_keys_matches_prefix_exactly_including_like_wildcards() {
        let kv = store("t");
        for key in ["a%b", "a%c", "aXb", "a_1", "ab", "a", "b", "a~", "a%"] {
            kv.set(key, b"v").unwrap();
        }
        assert_eq!(kv.list_keys("a%").unwrap(), vec!["a%", "a%b", "a%c"]);
        assert_eq!(kv.list_keys("a_").unwrap(), vec!["a_1"]);
        assert_eq!(kv.list_keys("a").unwrap(), vec!["a", "a%", "a%b", "a%c", "aXb", "a_1", "ab", "a~"]);
        assert_eq!(kv.list_keys("a~").unwrap(), vec!["a~"]);
        assert_eq!(kv.list_keys("c").unwrap(), Vec::<String>::new());
        assert_eq!(kv.list_keys("").unwrap().len(), 9);
        kv.delete("a%b").unwrap();
        assert_eq!(kv.list_keys("a%").unwrap(), vec!["a%", "a%c"], "deleted keys are not listed");
        assert!(matches!(kv.list_keys("bad\n"), Err(StorageError::InvalidKey(_))));
    }

    #[test]
    fn list_keys_returns_at_most_1000_in_byte_order() {
        let kv = store("t");
        for i in 0..1005 {
            kv.set(&format!("k{i:04}"), b"").unwrap();
        }
        let keys = kv.list_keys("k").unwrap();
        assert_eq!(keys.len(), MAX_LISTED_KEYS);
        assert_eq!(keys.first().map(String::as_str), Some("k0000"));
        assert_eq!(keys.last().map(String::as_str), Some("k0999"));
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    fn raw_values(db: &Database) -> Vec<Vec<u8>> {
        db.with(|c| {
            let mut stmt = c.prepare("SELECT value FROM kv WHERE value IS NOT NULL")?;
            stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<Vec<u8>>>>()
        })
        .unwrap()
    }

    #[test]
    fn debug_output_shows_the_size_of_a_value_not_its_bytes() {
        let entry = Entry { value: b"fio-sim-web-secret".to_vec(), revision: 3 };
        assert_eq!(format!("{entry:?}"), "Entry { value: <18 bytes>, revision: 3 }");
    }

    #[test]
    fn no_value_is_stored_in_clear_text_in_the_rows_or_the_files() {
        const SECRET: &[u8] = b"fio-sim-web-secret-7c1e";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite3");
        let db = Database::open(&path).unwrap();
        let kv = KvStore::new(db.clone(), "t", Arc::new(SealingKey::generate()));
        let record = [br#"{"access_token":""#.as_slice(), SECRET, b"\"}"].concat();
        kv.set("connection/dana", &record).unwrap();
        kv.compare_and_swap("settings", None, &record).unwrap();
        assert_eq!(kv.get("connection/dana").unwrap().unwrap().value, record, "the store still reads it back");

        let rows = raw_values(&db);
        assert_eq!(rows.len(), 2);
        let clear = |row: &Vec<u8>| contains(row, SECRET) || contains(row, b"access_token");
        assert!(!rows.iter().any(clear), "a row holds clear text");

        let mut files = 0;
        let mut keys_seen = false;
        for suffix in ["", "-wal", "-shm"] {
            let Ok(bytes) = std::fs::read(dir.path().join(format!("host.sqlite3{suffix}"))) else { continue };
            files += 1;
            assert!(!contains(&bytes, SECRET), "host.sqlite3{suffix} holds the secret");
            assert!(!contains(&bytes, b"access_token"), "host.sqlite3{suffix} holds a field name in clear");
            keys_seen |= contains(&bytes, b"connection/dana");
        }
        assert!(files >= 2, "the database and its WAL are on disk");
        // The key is stored in clear: finding it proves the scan reads what was written.
        assert!(keys_seen, "the scan found none of the written rows");
    }

    #[test]
    fn a_value_moved_to_another_key_or_tenant_or_tampered_with_is_refused() {
        let db = Database::open_in_memory().unwrap();
        let key = Arc::new(SealingKey::generate());
        let a = KvStore::new(db.clone(), "a", key.clone());
        let b = KvStore::new(db.clone(), "b", key);
        a.set("binding/1", b"signing secret").unwrap();
        a.set("binding/2", b"other").unwrap();
        b.set("binding/1", b"b's own").unwrap();
        // Copies the raw value of a/binding/1 to another row, as someone with the file could.
        let copy_to = |tenant: &str, key: &str| {
            let sql = "UPDATE kv SET value = (SELECT value FROM kv WHERE tenant = 'a' AND key = 'binding/1')
                       WHERE tenant = ?1 AND key = ?2";
            db.with(|c| c.execute(sql, params![tenant, key])).unwrap()
        };
        let refused = Err(StorageError::Unavailable("stored value failed authentication".into()));

        copy_to("a", "binding/2");
        assert_eq!(a.get("binding/2"), refused, "moved to another key");
        copy_to("b", "binding/1");
        assert_eq!(b.get("binding/1"), refused, "moved to another tenant");
        let tamper = "UPDATE kv SET value = CAST(value || x'00' AS BLOB) WHERE tenant = 'a' AND key = 'binding/1'";
        db.with(|c| c.execute(tamper, [])).unwrap();
        assert_eq!(a.get("binding/1"), refused, "tampered with");

        let other_key = KvStore::new(db, "a", Arc::new(SealingKey::generate()));
        other_key.set("fresh", b"v").unwrap();
        assert_eq!(a.get("fresh"), refused, "sealed under another key");
        assert_eq!(a.set("binding/2", b"rewritten").unwrap(), 2, "a refused value can be overwritten");
        assert_eq!(a.get("binding/2").unwrap().unwrap().value, b"rewritten");
    }
}
