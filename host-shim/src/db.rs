//! The host's SQLite database: one file holds the connector's key-value state, the
//! repository, the blob index, the transfers and the job queue.
//!
//! One connection behind a mutex is enough for a reference host: every statement is
//! short, and serialising them makes transactions trivially isolated. The schema is
//! versioned with `PRAGMA user_version` and migrated forward on open.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rusqlite::Connection;

/// Schema steps, applied in order. Step `n` (1-based) brings `user_version` to `n`.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: every table of the first release.
    r#"
    -- The connector's storage, per tenant. A deleted key keeps its row with a NULL
    -- value so that its revision keeps increasing: a stale compare-and-swap can
    -- never match a key that was deleted and written again.
    CREATE TABLE kv (
        tenant     TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      BLOB,
        revision   INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;

    -- Complete blobs in the blob directory. A row exists only once the file is in place.
    CREATE TABLE blobs (
        id         TEXT PRIMARY KEY,
        size       INTEGER NOT NULL,
        xxhash64   TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE folders (
        id         TEXT PRIMARY KEY,
        path       TEXT NOT NULL UNIQUE,
        title      TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE documents (
        id           TEXT PRIMARY KEY,
        folder_id    TEXT NOT NULL REFERENCES folders(id),
        external_key TEXT NOT NULL,
        title        TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        UNIQUE (folder_id, external_key)
    );

    CREATE TABLE versions (
        id          TEXT PRIMARY KEY,
        document_id TEXT NOT NULL REFERENCES documents(id),
        number      INTEGER NOT NULL,
        version_key TEXT NOT NULL,
        blob_id     TEXT NOT NULL REFERENCES blobs(id),
        size        INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        UNIQUE (document_id, version_key),
        UNIQUE (document_id, number)
    );

    CREATE TABLE document_properties (
        document_id TEXT NOT NULL REFERENCES documents(id),
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        PRIMARY KEY (document_id, name)
    ) WITHOUT ROWID;

    CREATE TABLE version_properties (
        version_id TEXT NOT NULL REFERENCES versions(id),
        name       TEXT NOT NULL,
        value      TEXT NOT NULL,
        PRIMARY KEY (version_id, name)
    ) WITHOUT ROWID;

    -- Downloads into the blob store. `headers` is a JSON list of [name, value] pairs,
    -- kept so that a restarted host can resume; `error` is a JSON transfer error.
    CREATE TABLE transfers (
        key               TEXT PRIMARY KEY,
        url               TEXT NOT NULL,
        headers           TEXT NOT NULL,
        expected_size     INTEGER NOT NULL,
        expected_xxhash64 TEXT,
        state             TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed')),
        done_bytes        INTEGER NOT NULL DEFAULT 0,
        blob_id           TEXT REFERENCES blobs(id),
        error             TEXT,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL
    );

    -- Durable jobs. Times are Unix milliseconds. For a running job `run_after` is the
    -- end of its lease: past it, the job is handed out again.
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        key         TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        payload     BLOB NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        attempt     INTEGER NOT NULL DEFAULT 0,
        status_text TEXT,
        result_text TEXT,
        run_after   INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX jobs_due ON jobs (state, run_after);
    "#,
    // 2: a running transfer's last checkpoint: its first `resume_from` bytes are
    // durable in its staging file, fetched under the strong ETag `validator`.
    r#"
    ALTER TABLE transfers ADD COLUMN resume_from INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE transfers ADD COLUMN validator BLOB;
    "#,
];

/// The shared database handle. Cloning is cheap: clones share one connection.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
}

impl Database {
    /// Opens (creating if needed) the database file at `path` and migrates its schema.
    ///
    /// WAL with `synchronous=FULL` makes every committed transaction durable when the
    /// call returns, which the `storage` and `inbound` contracts require.
    pub fn open(path: &Path) -> anyhow::Result<Database> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "{} does not support WAL (journal mode {mode})", path.display());
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::prepare(conn).with_context(|| format!("migrating {}", path.display()))
    }

    /// An empty private database in memory, for tests.
    pub fn open_in_memory() -> anyhow::Result<Database> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> anyhow::Result<Database> {
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
        Ok(Database { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection, holding the lock for its duration.
    ///
    /// A panic in another holder poisons the mutex; the connection itself is still
    /// sound (an unfinished `Transaction` rolls back when dropped), so carry on.
    pub fn with<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    }
}

/// Applies the steps the database has not seen yet, each in its own transaction.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    anyhow::ensure!(
        current <= MIGRATIONS.len(),
        "the database has schema version {current}, newer than this host knows ({})",
        MIGRATIONS.len()
    );
    for (index, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(step).with_context(|| format!("schema step {}", index + 1))?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_millis() -> i64 {
    since_epoch().as_millis().try_into().unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> i64 {
    since_epoch().as_secs().try_into().unwrap_or(i64::MAX)
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A fresh identifier: `prefix` then 12 random lowercase hex digits (48 bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 6]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_names(db: &Database) -> Vec<String> {
        db.with(|c| {
            let mut stmt = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            stmt.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap()
    }

    #[test]
    fn open_creates_schema_with_wal_and_reopens_without_migrating_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite3");
        let db = Database::open(&path).unwrap();
        let (mode, sync, fk, version): (String, i64, i64, usize) = db
            .with(|c| {
                Ok::<_, rusqlite::Error>((
                    c.pragma_query_value(None, "journal_mode", |r| r.get(0))?,
                    c.pragma_query_value(None, "synchronous", |r| r.get(0))?,
                    c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?,
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        assert_eq!(version, MIGRATIONS.len());
        db.with(|c| c.execute("INSERT INTO folders VALUES ('f', '/a', 'A', 0)", [])).unwrap();
        drop(db);

        let again = Database::open(&path).unwrap();
        let count: i64 = again.with(|c| c.query_row("SELECT COUNT(*) FROM folders", [], |r| r.get(0))).unwrap();
        assert_eq!(count, 1, "reopening keeps the data");
        let tables = table_names(&again);
        for table in ["blobs", "documents", "folders", "jobs", "kv", "transfers", "versions"] {
            assert!(tables.iter().any(|t| t == table), "{table} missing from {tables:?}");
        }
    }

    #[test]
    fn a_first_release_database_migrates_with_its_transfers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite3");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(MIGRATIONS[0]).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        old.execute(
            "INSERT INTO transfers (key, url, headers, expected_size, state, created_at, updated_at)
             VALUES ('k', 'https://x.frame.io/a', '[]', 10, 'running', 0, 0)",
            [],
        )
        .unwrap();
        drop(old);
        let db = Database::open(&path).unwrap();
        let row: (u64, Option<Vec<u8>>) = db
            .with(|c| c.query_row("SELECT resume_from, validator FROM transfers WHERE key = 'k'", [], |r| Ok((r.get(0)?, r.get(1)?))))
            .unwrap();
        assert_eq!(row, (0, None), "a transfer from before checkpoints has none");
    }

    #[test]
    fn refuses_a_database_from_a_newer_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.sqlite3");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let err = Database::open(&path).err().expect("a newer schema must be refused");
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let db = Database::open_in_memory().unwrap();
        let result = db.with(|c| c.execute("INSERT INTO documents VALUES ('d', 'no-such-folder', 'k', 't', 0)", []));
        assert!(result.is_err());
    }

    #[test]
    fn new_id_has_prefix_and_twelve_hex_digits() {
        let id = new_id("fld-");
        assert_eq!(id.len(), 16);
        assert!(id.strip_prefix("fld-").unwrap().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(new_id("x"), new_id("x"));
    }
}
