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
    // 3: retention. A key may expire (Unix seconds). Expired keys and tombstones are
    // deleted by the retention sweep; `kv_floor` keeps the highest revision a tenant's
    // deleted rows had, and new rows start above it, so revisions still never repeat.
    // The indexes serve the sweep and the admin lists' paging.
    r#"
    ALTER TABLE kv ADD COLUMN expires_at INTEGER;
    CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX kv_tombstones ON kv (updated_at) WHERE value IS NULL;
    CREATE TABLE kv_floor (
        tenant   TEXT PRIMARY KEY,
        revision INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX jobs_finished ON jobs (updated_at) WHERE state IN ('done', 'failed');
    CREATE INDEX transfers_finished ON transfers (updated_at) WHERE state IN ('complete', 'failed');
    "#,
    // 4: comments on documents, made in the DAM or synced from Frame.io (those have
    // the connector's external key, unique per document).
    r#"
    CREATE TABLE comments (
        id              TEXT PRIMARY KEY,
        document_id     TEXT NOT NULL REFERENCES documents(id),
        external_key    TEXT,
        parent_id       TEXT REFERENCES comments(id),
        author          TEXT NOT NULL,
        text            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        frame           INTEGER,
        timecode        TEXT,
        duration_frames INTEGER,
        page            INTEGER,
        annotation      TEXT,
        completed       INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX comments_key ON comments (document_id, external_key) WHERE external_key IS NOT NULL;
    CREATE INDEX comments_document ON comments (document_id, created_at);
    "#,
    // 5: renditions the DAM made of a version besides its master (a proxy).
    r#"
    CREATE TABLE renditions (
        version_id TEXT NOT NULL REFERENCES versions(id),
        kind       TEXT NOT NULL,
        blob_id    TEXT NOT NULL REFERENCES blobs(id),
        media_type TEXT NOT NULL,
        PRIMARY KEY (version_id, kind)
    ) WITHOUT ROWID;
    "#,
    // 6: uploads. A transfer is a download (a URL into a new blob) or an upload (a
    // blob to presigned part URLs); an upload's `blob_id` is its source from the
    // start, and its `url` is empty, as each part has its own. Every part is a row,
    // `done` once the part's URL accepted it, so a restarted host sends only the
    // others. Parts go with their transfer when the retention sweep deletes it.
    r#"
    ALTER TABLE transfers ADD COLUMN kind TEXT NOT NULL DEFAULT 'download' CHECK (kind IN ('download', 'upload'));
    CREATE TABLE transfer_parts (
        transfer_key TEXT NOT NULL REFERENCES transfers(key) ON DELETE CASCADE,
        number       INTEGER NOT NULL,
        first_byte   INTEGER NOT NULL,
        size         INTEGER NOT NULL,
        url          TEXT NOT NULL,
        done         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (transfer_key, number)
    ) WITHOUT ROWID;
    "#,
    // 7: folders the connector makes (an archived project's tree): each has a parent
    // and the connector's key, unique among its siblings, so a replayed step finds
    // the folder it made; and properties on folders (the project's metadata).
    r#"
    ALTER TABLE folders ADD COLUMN parent_id TEXT REFERENCES folders(id);
    ALTER TABLE folders ADD COLUMN external_key TEXT;
    CREATE UNIQUE INDEX folders_key ON folders (parent_id, external_key) WHERE external_key IS NOT NULL;
    CREATE TABLE folder_properties (
        folder_id TEXT NOT NULL REFERENCES folders(id),
        name      TEXT NOT NULL,
        value     TEXT NOT NULL,
        PRIMARY KEY (folder_id, name)
    ) WITHOUT ROWID;
    "#,
    // 8: DAM changes not yet told to the connector (`dam_outbox`): written with the
    // change, deleted with the queueing of the jobs the connector asks for, told
    // again when the host starts.
    r#"
    CREATE TABLE dam_events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        event      TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
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

/// A page of a list ordered newest first by a time and then an id: at most `limit`
/// rows, after the row that `after` names. The cursor is the last row's time and id,
/// so rows added meanwhile never shift a page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub limit: u32,
    pub after: Option<(i64, String)>,
}

impl Page {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Page {
        Page { limit, after: None }
    }

    /// The SQL condition and order for a page of `table` by `time` and `id`, taking
    /// `?1` (the cursor's time or NULL), `?2` (its id) and `?3` (how many rows).
    pub fn sql(time: &str, id: &str) -> String {
        format!("WHERE (?1 IS NULL OR ({time}, {id}) < (?1, ?2)) ORDER BY {time} DESC, {id} DESC LIMIT ?3")
    }

    /// The cursor's time, id, and one more row than the page holds (to tell whether
    /// another page follows), as the parameters of [`Page::sql`].
    pub fn params(&self) -> (Option<i64>, String, u32) {
        let (time, id) = self.after.clone().unzip();
        (time, id.unwrap_or_default(), self.limit + 1)
    }

    /// Cuts the rows fetched with [`Page::params`] to the page, with the cursor of the
    /// next page if there is one.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (i64, &str)) -> (Vec<T>, Option<String>) {
        if rows.len() <= self.limit as usize {
            return (rows, None);
        }
        rows.truncate(self.limit as usize);
        let next = rows.last().map(|row| {
            let (time, id) = key(row);
            format!("{time}.{id}")
        });
        (rows, next)
    }

    /// Reads a cursor made by [`Page::finish`].
    pub fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
        let (time, id) = cursor.split_once('.')?;
        Some((time.parse().ok()?, id.to_string()))
    }
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
        db.with(|c| c.execute("INSERT INTO folders (id, path, title, created_at) VALUES ('f', '/a', 'A', 0)", [])).unwrap();
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
        let kind: String = db.with(|c| c.query_row("SELECT kind FROM transfers WHERE key = 'k'", [], |r| r.get(0))).unwrap();
        assert_eq!(kind, "download", "a transfer from before uploads is a download");
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
