//! The SQL of transfers: one row per transfer in `transfers`, keyed by the caller's
//! key, holding what a restarted host needs to run it again, its progress as last
//! reported, its checkpoint (downloads) and its outcome; and one row per part of an
//! upload in `transfer_parts`, marked done once its URL accepted it.

use rusqlite::{OptionalExtension, Row, params};

use super::{DownloadRequest, TransferError, TransferRow, TransferStatus, UploadRequest, database};
use crate::blobs::BlobInfo;
use crate::db::{Database, Page, unix_secs};

/// A transfer joined with its blob; read by [`row_status`].
const ROW_QUERY: &str = "SELECT t.state, t.done_bytes, t.expected_size, t.error, b.id, b.size, b.xxhash64 FROM transfers t LEFT JOIN blobs b ON b.id = t.blob_id";

/// Records a new running download; `false` if the key exists.
pub(super) fn insert_download(db: &Database, req: &DownloadRequest) -> Result<bool, TransferError> {
    let headers = serde_json::to_string(&req.headers).map_err(|e| TransferError::Io(e.to_string()))?;
    let now = unix_secs();
    let inserted = db
        .with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO transfers
                     (key, url, headers, expected_size, expected_xxhash64, state, done_bytes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', 0, ?6, ?6)",
                params![req.key, req.url, headers, req.expected_size, req.expected_xxhash64, now],
            )
        })
        .map_err(database)?;
    Ok(inserted == 1)
}

/// Records a new running upload of `blob` and its parts, in one transaction;
/// `false` if the key exists (its parts are left as they are).
pub(super) fn insert_upload(db: &Database, req: &UploadRequest, blob: &BlobInfo) -> Result<bool, TransferError> {
    let headers = serde_json::to_string(&req.headers).map_err(|e| TransferError::Io(e.to_string()))?;
    let now = unix_secs();
    db.with(|c| {
        let tx = c.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO transfers
                 (key, kind, url, headers, expected_size, expected_xxhash64, state, done_bytes, blob_id, created_at, updated_at)
             VALUES (?1, 'upload', '', ?2, ?3, ?4, 'running', 0, ?5, ?6, ?6)",
            params![req.key, headers, blob.size, blob.xxhash64, blob.id, now],
        )?;
        if inserted == 1 {
            let mut part = tx.prepare_cached(
                "INSERT INTO transfer_parts (transfer_key, number, first_byte, size, url) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut first_byte = 0u64;
            for (number, p) in req.parts.iter().enumerate() {
                part.execute(params![req.key, number, first_byte, p.size, p.url])?;
                first_byte += p.size;
            }
        }
        tx.commit()?;
        Ok(inserted == 1)
    })
    .map_err(database)
}

/// One part of an upload as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PartRow {
    /// Its place among the parts, from 0.
    pub(super) number: u32,
    /// Where its bytes start in the blob.
    pub(super) first_byte: u64,
    pub(super) size: u64,
    pub(super) url: String,
    /// Whether its URL accepted it.
    pub(super) done: bool,
}

/// What an upload's task needs: the source blob, the headers (JSON, as stored) and
/// every part.
pub(super) struct UploadPlan {
    pub(super) blob_id: String,
    pub(super) headers: String,
    pub(super) parts: Vec<PartRow>,
}

/// The plan of the running upload under `key`; `None` if there is no such upload
/// running.
pub(super) fn upload_plan(db: &Database, key: &str) -> Result<Option<UploadPlan>, TransferError> {
    db.with(|c| {
        let head = c
            .query_row(
                "SELECT blob_id, headers FROM transfers WHERE key = ?1 AND kind = 'upload' AND state = 'running'",
                [key],
                |row| Ok((row.get::<_, Option<String>>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()?;
        let Some((blob_id, headers)) = head else { return Ok(None) };
        let mut stmt = c.prepare_cached(
            "SELECT number, first_byte, size, url, done FROM transfer_parts WHERE transfer_key = ?1 ORDER BY number",
        )?;
        let parts = stmt
            .query_map([key], |row| {
                Ok(PartRow { number: row.get(0)?, first_byte: row.get(1)?, size: row.get(2)?, url: row.get(3)?, done: row.get(4)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(UploadPlan { blob_id: blob_id.unwrap_or_default(), headers, parts }))
    })
    .map_err(database)
}

/// Records, durably, that part `number` of the upload under `key` was accepted,
/// with the upload's progress.
pub(super) fn record_part_done(db: &Database, key: &str, number: u32, done_bytes: u64) -> rusqlite::Result<()> {
    db.with(|c| {
        let tx = c.transaction()?;
        tx.execute("UPDATE transfer_parts SET done = 1 WHERE transfer_key = ?1 AND number = ?2", params![key, number])?;
        tx.execute(
            "UPDATE transfers SET done_bytes = ?2, updated_at = ?3 WHERE key = ?1 AND state = 'running'",
            params![key, done_bytes, unix_secs()],
        )?;
        tx.commit()
    })
}

/// The keys of the uploads left running.
pub(super) fn unfinished_uploads(db: &Database) -> rusqlite::Result<Vec<String>> {
    db.with(|c| {
        let mut stmt = c.prepare("SELECT key FROM transfers WHERE state = 'running' AND kind = 'upload'")?;
        let keys = stmt.query_map([], |row| row.get(0))?;
        keys.collect()
    })
}

/// The status of the transfer under `key`, `None` if there is none.
pub(super) fn status(db: &Database, key: &str) -> Result<Option<TransferStatus>, TransferError> {
    let row = db.with(|c| c.query_row(&format!("{ROW_QUERY} WHERE t.key = ?1"), [key], row_status).optional()).map_err(database)?;
    row.transpose()
}

/// A page of transfers, newest first, and the cursor of the next page.
pub(super) fn list(db: &Database, page: &Page) -> rusqlite::Result<(Vec<TransferRow>, Option<String>)> {
    let rows = db.with(|c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT key, state, done_bytes, expected_size,
                    CASE kind WHEN 'upload' THEN
                        (SELECT COALESCE(SUM(size), 0) FROM transfer_parts WHERE transfer_key = key AND done)
                    ELSE resume_from END,
                    blob_id, error, created_at, updated_at, kind
             FROM transfers {}",
            Page::sql("created_at", "key")
        ))?;
        let (time, id, limit) = page.params();
        let rows = stmt.query_map(params![time, id, limit], transfer_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })?;
    Ok(page.finish(rows, |t| (t.created_at, &t.key)))
}

/// Deletes the transfers that ended before `cutoff_secs`. Returns how many.
pub(super) fn prune_finished(db: &Database, cutoff_secs: i64) -> rusqlite::Result<usize> {
    db.with(|c| c.execute("DELETE FROM transfers WHERE state IN ('complete', 'failed') AND updated_at < ?1", [cutoff_secs]))
}

/// The downloads left running, as requests without headers, and their headers as
/// stored.
pub(super) fn unfinished_downloads(db: &Database) -> rusqlite::Result<Vec<(DownloadRequest, String)>> {
    db.with(|c| {
        let mut stmt =
            c.prepare("SELECT key, url, headers, expected_size, expected_xxhash64 FROM transfers
                 WHERE state = 'running' AND kind = 'download'")?;
        let rows = stmt.query_map([], |row| {
            let request = DownloadRequest {
                key: row.get(0)?,
                url: row.get(1)?,
                headers: vec![],
                expected_size: row.get(3)?,
                expected_xxhash64: row.get(4)?,
            };
            Ok((request, row.get(2)?))
        })?;
        rows.collect()
    })
}

/// Records the bytes moved so far, for the admin view and `status` (a report, not
/// synced).
pub(super) fn record_progress(db: &Database, key: &str, done: u64) -> rusqlite::Result<()> {
    db.with(|c| {
        c.execute(
            "UPDATE transfers SET done_bytes = ?2, updated_at = ?3 WHERE key = ?1 AND state = 'running'",
            params![key, done, unix_secs()],
        )
    })
    .map(drop)
}

/// The checkpoint a download recorded: the prefix its staging file holds durably,
/// and the ETag it was fetched under. `None` if the transfer is not running.
pub(super) fn checkpoint(db: &Database, key: &str) -> Result<Option<(u64, Option<Vec<u8>>)>, TransferError> {
    db.with(|c| {
        c.query_row("SELECT resume_from, validator FROM transfers WHERE key = ?1 AND state = 'running'", [key], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
    })
    .map_err(database)
}

/// Records a download's checkpoint; its staging file is synced up to `prefix`.
pub(super) fn record_checkpoint(db: &Database, key: &str, prefix: u64, validator: &[u8]) -> rusqlite::Result<()> {
    db.with(|c| {
        c.execute(
            "UPDATE transfers SET resume_from = ?2, validator = ?3 WHERE key = ?1 AND state = 'running'",
            params![key, prefix, validator],
        )
    })
    .map(drop)
}

/// Forgets a download's checkpoint: its staging file is about to start over.
pub(super) fn clear_checkpoint(db: &Database, key: &str) -> Result<(), TransferError> {
    db.with(|c| c.execute("UPDATE transfers SET resume_from = 0, validator = NULL WHERE key = ?1", [key])).map_err(database)?;
    Ok(())
}

/// Marks the row complete (with its blob) or failed (with the error).
pub(super) fn record_outcome(db: &Database, key: &str, outcome: &Result<BlobInfo, TransferError>) -> rusqlite::Result<()> {
    let now = unix_secs();
    match outcome {
        Ok(blob) => db.with(|c| {
            c.execute(
                "UPDATE transfers SET state = 'complete', blob_id = ?2, done_bytes = ?3, error = NULL, updated_at = ?4
                 WHERE key = ?1",
                params![key, blob.id, blob.size, now],
            )
        }),
        Err(e) => {
            let error = serde_json::to_string(e).unwrap_or_else(|_| e.to_string());
            db.with(|c| {
                c.execute("UPDATE transfers SET state = 'failed', error = ?2, updated_at = ?3 WHERE key = ?1", params![key, error, now])
            })
        }
    }
    .map(drop)
}

fn row_status(row: &Row) -> rusqlite::Result<Result<TransferStatus, TransferError>> {
    let state: String = row.get(0)?;
    let blob = match row.get::<_, Option<String>>(4)? {
        Some(id) => Some(BlobInfo { id, size: row.get(5)?, xxhash64: row.get(6)? }),
        None => None,
    };
    Ok(match (state.as_str(), blob) {
        ("running", _) => Ok(TransferStatus::Running { done: row.get(1)?, total: row.get(2)? }),
        ("complete", Some(blob)) => Ok(TransferStatus::Complete(blob)),
        ("failed", _) => Ok(TransferStatus::Failed(stored_error(row.get(3)?))),
        (state, _) => Err(TransferError::Io(format!("the transfer's row is inconsistent (state {state})"))),
    })
}

/// A stored error; text that is not a serialised error (written by hand, or by an
/// older host) is kept as an I/O error rather than lost.
fn stored_error(text: Option<String>) -> TransferError {
    let text = text.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(TransferError::Io(text))
}

fn transfer_row(row: &Row) -> rusqlite::Result<TransferRow> {
    Ok(TransferRow {
        key: row.get(0)?,
        state: row.get(1)?,
        done: row.get(2)?,
        total: row.get(3)?,
        checkpoint: row.get(4)?,
        blob_id: row.get(5)?,
        error: row.get::<_, Option<String>>(6)?.map(|text| stored_error(Some(text))),
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        kind: row.get(9)?,
    })
}
