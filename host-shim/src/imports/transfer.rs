//! The `transfer` import: the host downloads media into the blob store in parallel
//! byte ranges, in the background, so file contents never pass through the component.
//!
//! A transfer is a row in the `transfers` table keyed by the caller's key; starting a
//! key that exists returns its status, which makes a replayed job step harmless. The
//! background task:
//! 1. preallocates a staging file of the expected size;
//! 2. fetches the first range alone, to learn the object's ETag, then the others,
//!    `concurrency` at a time, each pinned to that ETag with `If-Range` so that an
//!    object replaced mid-transfer is detected rather than spliced;
//! 3. streams each range to its offset in the file (memory per range is bounded by a
//!    small write buffer), with direct I/O where the file system allows it
//!    ([`staging`]), retrying a range from where it stopped after a 5xx or a broken
//!    connection; writing through the page cache, it starts the disk's writeback of
//!    each range that is done;
//! 4. meanwhile hashes the file's written prefix as it grows ([`hashing`]), from
//!    copies of the bytes just written, so that once the last range lands only the
//!    tail is left to hash;
//! 5. fsyncs the file, checks size and xxHash64, and installs it as a blob.
//!
//! Every `checkpoint_bytes` of written prefix, the transfer syncs its staging file
//! and records the prefix and the ETag it was fetched under. After a host restart,
//! [`TransferEngine::resume_unfinished`] runs the transfers left running again from
//! their last checkpoint, with that ETag as `If-Range`; a resumed run that fails for
//! any reason (the object changed, the staging file is gone or damaged, ...) starts
//! over from scratch once. A failed transfer leaves neither a staging file nor a blob.
//!
//! Redirects are not followed (a redirect could leave the allowlist): a 3xx fails the
//! transfer with its status.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, ETAG, HeaderMap, HeaderValue, IF_RANGE, RANGE};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::http::{EgressError, EgressPolicy, address_denied, error_chain, request_headers};
use crate::blobs::{BlobInfo, BlobStore};
use crate::db::{Database, Page, unix_secs};
use hashing::{HashFeed, PrefixHasher};
use staging::{AlignedBuf, BLOCK, StagingFile};

mod hashing;
mod staging;

/// Longest transfer key, in bytes (from the WIT).
pub const MAX_KEY_BYTES: usize = 256;
/// Smallest allowed `range_size`.
const MIN_RANGE_SIZE: u64 = 64 * 1024;
/// Most ranges in flight at once that the config may ask for.
const MAX_CONCURRENCY: usize = 64;
/// Bytes of a range collected before they are written out: a multiple of the block.
/// Direct writes wait for the disk, so they must be large: in single bench runs
/// (the disk's speed swings a lot), 1 MiB was faster than 256 KiB and than 2 MiB.
const WRITE_BUFFER: usize = 1024 * 1024;
/// How often progress is recorded.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a response may stay silent before the attempt counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Headers the engine sets itself.
const ENGINE_HEADERS: &[&str] = &["range", "if-range", "accept-encoding"];
/// Most rows `list` returns.
/// Transfer settings (`[transfer]` in the host's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Hosts media may be downloaded from: where Frame.io's `original` URLs point (its
    /// object storage and CDN), in the `[http] allow_hosts` pattern syntax. Default:
    /// `*.frame.io`, `*.amazonaws.com`, `*.cloudfront.net`. Private addresses follow
    /// `[http] allow_private_networks`.
    pub allow_hosts: Vec<String>,
    /// Bytes per range request; at least 64 KiB, and a multiple of 4 KiB (so that
    /// every range starts on a block boundary, for direct I/O). Default 4 MiB: on the
    /// benchmark's machine 4 MiB beat 2 and 8 MiB (larger ranges run further ahead of
    /// the hashed prefix than the hasher keeps in memory).
    pub range_size: u64,
    /// Range requests in flight per transfer, 1 to 64. Default 4.
    pub concurrency: usize,
    /// Retries of one range after a 5xx, 408, 429 or a broken connection. Default 5.
    pub max_range_retries: u32,
    /// Largest `expected-size` accepted. Default 1 TiB.
    pub max_file_size: u64,
    /// Write whole blocks with `O_DIRECT` (Linux), bypassing the page cache: faster
    /// to durable where copying into the page cache is the bottleneck. Falls back to
    /// buffered writes by itself where the file system refuses it. Default true.
    pub direct_io: bool,
    /// Bytes of written prefix between checkpoints, at least 64 KiB: at most this
    /// much (plus the ranges in flight) is fetched again when a transfer resumes
    /// after a host restart. Each checkpoint syncs the staging file. Default 256 MiB.
    pub checkpoint_bytes: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            allow_hosts: vec!["*.frame.io".into(), "*.amazonaws.com".into(), "*.cloudfront.net".into()],
            range_size: 4 << 20,
            concurrency: 4,
            max_range_retries: 5,
            max_file_size: 1 << 40,
            direct_io: true,
            checkpoint_bytes: 256 << 20,
        }
    }
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadRequest {
    /// The caller's key, 1 to 256 bytes without control characters.
    pub key: String,
    /// Source URL; must pass the egress policy.
    pub url: String,
    /// Extra request headers (not `range`, `if-range`, `accept-encoding` nor
    /// hop-by-hop ones).
    pub headers: Vec<(String, String)>,
    /// The exact size of the content.
    pub expected_size: u64,
    /// The expected xxHash64, 16 lowercase hex digits, when known.
    pub expected_xxhash64: Option<String>,
}

/// Why a transfer failed; mirrors the WIT `transfer-error`. Stored as JSON in the
/// transfer's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransferError {
    /// The URL's host, or its address, is not allowed.
    #[error("denied: {0}")]
    Denied(String),
    /// The source answered with this status. A 200 to a range request (the server
    /// ignores ranges, or the object changed and `If-Range` no longer matched) and
    /// redirects count too.
    #[error("the source answered HTTP {0}")]
    HttpStatus(u16),
    /// The content's size differs from the expected one; the value is the actual size.
    #[error("the content is {0} bytes, not the expected size")]
    SizeMismatch(u64),
    /// The content's xxHash64 differs from the expected one; the value is the actual one.
    #[error("the content's xxHash64 is {0}, not the expected one")]
    ChecksumMismatch(String),
    /// The request was refused (bad key, URL, header, hash or size).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A network or disk failure that retries could not overcome.
    #[error("i/o failure: {0}")]
    Io(String),
}

/// Where a transfer stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TransferStatus {
    /// Still moving bytes: `done` of `total` are written (not yet durable).
    Running {
        /// Bytes written so far.
        done: u64,
        /// Bytes expected in all.
        total: u64,
    },
    /// Done and verified.
    Complete(BlobInfo),
    /// Given up.
    Failed(TransferError),
}

/// A transfer as the admin view shows it (the URL, often presigned, is left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferRow {
    /// The caller's key.
    pub key: String,
    /// `running`, `complete` or `failed`.
    pub state: String,
    /// Bytes written (as of the last progress report).
    pub done: u64,
    /// Bytes expected.
    pub total: u64,
    /// Bytes a restart would resume from: the last checkpoint of a running transfer.
    pub checkpoint: u64,
    /// The blob, once complete.
    pub blob_id: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<TransferError>,
    /// When it started (Unix seconds).
    pub created_at: i64,
    /// When its row last changed (Unix seconds).
    pub updated_at: i64,
}

/// The transfer engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct TransferEngine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    blobs: BlobStore,
    egress: EgressPolicy,
    client: reqwest::Client,
    config: TransferConfig,
    /// Keys with a task in this process, so a resume never runs a transfer twice.
    active: Mutex<HashSet<String>>,
    /// Counts transfer tasks that ended (however they ended), so waiters wake up.
    settled: tokio::sync::watch::Sender<u64>,
}

impl TransferEngine {
    /// An engine downloading into `blobs`, allowed to reach what `egress` allows.
    pub fn new(db: Database, blobs: BlobStore, egress: EgressPolicy, config: TransferConfig) -> anyhow::Result<TransferEngine> {
        anyhow::ensure!(config.range_size >= MIN_RANGE_SIZE, "transfer.range_size must be at least {MIN_RANGE_SIZE}");
        anyhow::ensure!(config.range_size.is_multiple_of(BLOCK as u64), "transfer.range_size must be a multiple of {BLOCK}");
        anyhow::ensure!(
            (1..=MAX_CONCURRENCY).contains(&config.concurrency),
            "transfer.concurrency must be 1 to {MAX_CONCURRENCY}"
        );
        anyhow::ensure!(config.max_file_size > 0, "transfer.max_file_size must be positive");
        anyhow::ensure!(
            config.checkpoint_bytes >= MIN_RANGE_SIZE,
            "transfer.checkpoint_bytes must be at least {MIN_RANGE_SIZE}"
        );
        let client = egress.client_builder().read_timeout(READ_TIMEOUT).build().context("building the transfer client")?;
        let settled = tokio::sync::watch::Sender::new(0);
        let inner = Inner { db, blobs, egress, client, config, active: Mutex::new(HashSet::new()), settled };
        Ok(TransferEngine { inner: Arc::new(inner) })
    }

    /// Starts fetching `req.url` into a new blob in the background, or returns the
    /// status of the transfer already started under `req.key` (whatever its URL).
    pub async fn start_download(&self, req: DownloadRequest) -> Result<TransferStatus, TransferError> {
        self.validate(&req)?;
        if self.insert(&req)? {
            self.spawn(req.clone());
        }
        self.status(&req.key)?.ok_or_else(|| TransferError::Io(format!("transfer {} vanished", req.key)))
    }

    /// Whether a task of this engine is running the transfer under `key`.
    pub fn is_running_here(&self, key: &str) -> bool {
        self.inner.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(key)
    }

    /// Returns once no task of this engine runs the transfer under `key` any more:
    /// it completed or failed (its outcome is recorded by then), or its task ended
    /// some other way. At once if none runs it.
    pub async fn settled(&self, key: &str) {
        // Subscribed before looking, so a task that ends in between is not missed.
        let mut ended = self.inner.settled.subscribe();
        while self.is_running_here(key) {
            // The engine owns the sender as long as `self` lives: this cannot fail.
            let _ = ended.changed().await;
        }
    }

    /// The status of the transfer under `key`, `None` if there is none.
    pub fn status(&self, key: &str) -> Result<Option<TransferStatus>, TransferError> {
        check_key(key)?;
        let row = self
            .inner
            .db
            .with(|c| c.query_row(&format!("{ROW_QUERY} WHERE t.key = ?1"), [key], row_status).optional())
            .map_err(database)?;
        row.transpose()
    }

    /// A page of transfers, newest first, and the cursor of the next page.
    pub fn list(&self, page: &Page) -> rusqlite::Result<(Vec<TransferRow>, Option<String>)> {
        let rows = self.inner.db.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT key, state, done_bytes, expected_size, resume_from, blob_id, error, created_at, updated_at
                 FROM transfers {}",
                Page::sql("created_at", "key")
            ))?;
            let (time, id, limit) = page.params();
            let rows = stmt.query_map(params![time, id, limit], transfer_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(page.finish(rows, |t| (t.created_at, &t.key)))
    }

    /// Deletes the transfers that ended (complete or failed) before `cutoff_secs`;
    /// their blobs stay, as documents point at them. Returns how many.
    pub fn prune_finished(&self, cutoff_secs: i64) -> rusqlite::Result<usize> {
        self.inner.db.with(|c| {
            c.execute("DELETE FROM transfers WHERE state IN ('complete', 'failed') AND updated_at < ?1", [cutoff_secs])
        })
    }

    /// Starts again, from scratch, the transfers a previous run of the host left
    /// running. A transfer whose request no longer passes validation (say its host
    /// left the allowlist) is failed instead.
    pub async fn resume_unfinished(&self) {
        let pending = match self.unfinished() {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "listing unfinished transfers failed");
                return;
            }
        };
        for (mut request, headers) in pending {
            let restored = serde_json::from_str(&headers)
                .map_err(|e| TransferError::Io(format!("stored headers are unreadable: {e}")))
                .and_then(|headers| {
                    request.headers = headers;
                    self.validate(&request)
                });
            match restored {
                Ok(()) => self.spawn(request),
                Err(e) => self.record_outcome(&request.key, Err(e)),
            }
        }
    }

    /// The rows left running, as requests without headers, and their headers as stored.
    fn unfinished(&self) -> rusqlite::Result<Vec<(DownloadRequest, String)>> {
        self.inner.db.with(|c| {
            let mut stmt =
                c.prepare("SELECT key, url, headers, expected_size, expected_xxhash64 FROM transfers WHERE state = 'running'")?;
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

    fn validate(&self, req: &DownloadRequest) -> Result<(), TransferError> {
        check_key(&req.key)?;
        self.inner.egress.check_url(&req.url).map_err(egress_error)?;
        request_headers(&req.headers, ENGINE_HEADERS).map_err(TransferError::InvalidRequest)?;
        if req.expected_size > self.inner.config.max_file_size {
            let limit = self.inner.config.max_file_size;
            return Err(TransferError::InvalidRequest(format!(
                "{} bytes is over the host's limit of {limit}",
                req.expected_size
            )));
        }
        if let Some(hash) = &req.expected_xxhash64
            && (hash.len() != 16 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(TransferError::InvalidRequest(format!("{hash:?} is not 16 lowercase hex digits")));
        }
        Ok(())
    }

    /// Records a new running transfer; `false` if the key exists.
    fn insert(&self, req: &DownloadRequest) -> Result<bool, TransferError> {
        let headers = serde_json::to_string(&req.headers).map_err(|e| TransferError::Io(e.to_string()))?;
        let now = unix_secs();
        let inserted = self
            .inner
            .db
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

    /// Runs the transfer in a task, unless this process already runs it.
    fn spawn(&self, req: DownloadRequest) {
        let Some(claim) = ActiveClaim::take(&self.inner, &req.key) else { return };
        let engine = self.clone();
        tokio::spawn(async move {
            let _claim = claim;
            let outcome = engine.run(&req).await;
            if let Err(e) = &outcome {
                tracing::warn!(key = %req.key, error = %e, "transfer failed");
            }
            engine.record_outcome(&req.key, outcome);
        });
    }

    /// Downloads, verifies and installs; on any failure removes the staging file.
    async fn run(&self, req: &DownloadRequest) -> Result<BlobInfo, TransferError> {
        let staged = self.inner.blobs.staging_file(&staging_name(&req.key)).map_err(disk)?;
        let outcome = self.download_resuming(req, &staged).await;
        if outcome.is_err()
            && let Err(e) = std::fs::remove_file(&staged)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(path = %staged.display(), error = %e, "removing a failed transfer's staging file failed");
        }
        outcome
    }

    /// Downloads from the last checkpoint if there is one, and from scratch if there
    /// is none or resuming fails.
    async fn download_resuming(&self, req: &DownloadRequest, staged: &Path) -> Result<BlobInfo, TransferError> {
        let Some(checkpoint) = self.checkpoint(req)? else { return self.download_to(req, staged, None).await };
        let from = checkpoint.from;
        tracing::info!(key = %req.key, from, "resuming a transfer from its checkpoint");
        match self.download_to(req, staged, Some(checkpoint)).await {
            Err(e) => {
                tracing::warn!(key = %req.key, from, error = %e, "resuming the transfer failed; starting it over");
                // Forgotten before the staging file is truncated, so that a restart
                // from here on cannot resume from bytes that are gone.
                self.clear_checkpoint(&req.key)?;
                self.download_to(req, staged, None).await
            }
            done => done,
        }
    }

    /// Fetches into the staging file at `staged` (a new one, or the one `resume`
    /// says is written up to its checkpoint), then verifies and installs the blob.
    async fn download_to(&self, req: &DownloadRequest, staged: &Path, resume: Option<Checkpoint>) -> Result<BlobInfo, TransferError> {
        let file = {
            let (path, size, direct, reopen) =
                (staged.to_path_buf(), req.expected_size, self.inner.config.direct_io, resume.is_some());
            let open = move || if reopen { StagingFile::reopen(&path, size, direct) } else { StagingFile::create(&path, size, direct) };
            Arc::new(blocking(open).await?)
        };
        let started = Instant::now();
        // Dropped with this future if the fetch fails, which stops its thread.
        let hasher = PrefixHasher::start(file.file().clone(), req.expected_size, hashing::HELD_BYTES).map_err(disk)?;
        if let Some(checkpoint) = &resume {
            hasher.feed().written_before(checkpoint.from);
        }
        let direct = file.is_direct();
        if req.expected_size > 0 {
            self.fetch_with_progress(req, file, &hasher, resume).await?;
        }
        let fetched = started.elapsed();
        let (blobs, path) = (self.inner.blobs.clone(), staged.to_path_buf());
        let sealed = blocking(move || blobs.seal_with(&path, || hasher.finish())).await?;
        tracing::info!(
            key = %req.key,
            bytes = req.expected_size,
            direct,
            fetch_ms = fetched.as_millis() as u64,
            seal_ms = (started.elapsed() - fetched).as_millis() as u64,
            "transfer fetched, hashed and synced"
        );
        if let Err(mismatch) = verify(sealed.info(), req) {
            blocking(move || sealed.discard()).await?;
            return Err(mismatch);
        }
        let blobs = self.inner.blobs.clone();
        blocking(move || blobs.install(sealed)).await
    }

    /// Fetches every range (those past the checkpoint, when resuming) while a
    /// separate task records progress and checkpoints.
    async fn fetch_with_progress(
        &self,
        req: &DownloadRequest,
        file: Arc<StagingFile>,
        hasher: &PrefixHasher,
        resume: Option<Checkpoint>,
    ) -> Result<(), TransferError> {
        let fetch = RangeFetch::new(self, req, file.clone(), hasher.feed(), resume)?;
        let reporter = tokio::spawn({
            let checkpoints = Checkpoints {
                file,
                written: hasher.feed(),
                validator: fetch.validator.clone(),
                last: fetch.start,
            };
            let (engine, key, done) = (self.clone(), req.key.clone(), fetch.done.clone());
            async move { engine.report_progress(&key, &done, checkpoints).await }
        });
        let result = fetch.all(self.inner.config.range_size, self.inner.config.concurrency).await;
        reporter.abort();
        // Waited for, so that no checkpoint of this run is recorded after it ended
        // (after a failed resume has cleared the checkpoint, say).
        let _ = reporter.await;
        result
    }

    /// Every second: records the bytes written so far, for the admin view (a report,
    /// not synced), and a checkpoint when one is due. Runs until aborted.
    async fn report_progress(&self, key: &str, done: &AtomicU64, mut checkpoints: Checkpoints) {
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.checkpoint_if_due(key, &mut checkpoints).await;
            let written = done.load(Ordering::Relaxed);
            let updated = self.inner.db.with(|c| {
                c.execute(
                    "UPDATE transfers SET done_bytes = ?2, updated_at = ?3 WHERE key = ?1 AND state = 'running'",
                    params![key, written, unix_secs()],
                )
            });
            if let Err(e) = updated {
                tracing::warn!(key, error = %e, "recording a transfer's progress failed");
            }
        }
    }

    /// Once the written prefix is `checkpoint_bytes` past the last checkpoint, and
    /// the ETag the transfer is pinned to is known: syncs the staging file, then
    /// records the prefix as the point to resume from. Only strong ETags pin a
    /// transfer, so one without is never resumed.
    async fn checkpoint_if_due(&self, key: &str, checkpoints: &mut Checkpoints) {
        let prefix = checkpoints.written.prefix();
        let Some(validator) = checkpoints.validator.get() else { return };
        if prefix < checkpoints.last + self.inner.config.checkpoint_bytes {
            return;
        }
        let file = checkpoints.file.file().clone();
        if let Err(e) = blocking(move || file.sync_data()).await {
            tracing::warn!(key, error = %e, "syncing a transfer's staging file for a checkpoint failed");
            return;
        }
        let recorded = self.inner.db.with(|c| {
            c.execute(
                "UPDATE transfers SET resume_from = ?2, validator = ?3 WHERE key = ?1 AND state = 'running'",
                params![key, prefix, validator.as_bytes()],
            )
        });
        match recorded {
            Ok(_) => checkpoints.last = prefix,
            Err(e) => tracing::warn!(key, error = %e, "recording a transfer's checkpoint failed"),
        }
    }

    /// The checkpoint a previous run of the transfer recorded, if it is usable.
    fn checkpoint(&self, req: &DownloadRequest) -> Result<Option<Checkpoint>, TransferError> {
        let stored: Option<(u64, Option<Vec<u8>>)> = self
            .inner
            .db
            .with(|c| {
                c.query_row(
                    "SELECT resume_from, validator FROM transfers WHERE key = ?1 AND state = 'running'",
                    [&req.key],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
            })
            .map_err(database)?;
        let Some((from, Some(validator))) = stored else { return Ok(None) };
        let validator = HeaderValue::from_bytes(&validator).ok();
        Ok(validator.filter(|_| from > 0 && from <= req.expected_size).map(|validator| Checkpoint { from, validator }))
    }

    /// Forgets the transfer's checkpoint: its staging file is about to start over.
    fn clear_checkpoint(&self, key: &str) -> Result<(), TransferError> {
        self.inner
            .db
            .with(|c| c.execute("UPDATE transfers SET resume_from = 0, validator = NULL WHERE key = ?1", [key]))
            .map_err(database)?;
        Ok(())
    }

    /// Marks the row complete or failed. If that fails, the row stays `running` and
    /// the next start of the host runs the transfer again.
    fn record_outcome(&self, key: &str, outcome: Result<BlobInfo, TransferError>) {
        let now = unix_secs();
        let updated = match &outcome {
            Ok(blob) => self.inner.db.with(|c| {
                c.execute(
                    "UPDATE transfers SET state = 'complete', blob_id = ?2, done_bytes = ?3, error = NULL, updated_at = ?4
                     WHERE key = ?1",
                    params![key, blob.id, blob.size, now],
                )
            }),
            Err(e) => {
                let error = serde_json::to_string(e).unwrap_or_else(|_| e.to_string());
                self.inner.db.with(|c| {
                    c.execute(
                        "UPDATE transfers SET state = 'failed', error = ?2, updated_at = ?3 WHERE key = ?1",
                        params![key, error, now],
                    )
                })
            }
        };
        if let Err(e) = updated {
            tracing::error!(key, error = %e, "recording a transfer's outcome failed");
        }
    }
}

/// Where a transfer can resume: its staging file's first `from` bytes are durable,
/// and were fetched under the strong ETag `validator`.
struct Checkpoint {
    from: u64,
    validator: HeaderValue,
}

/// What the progress task needs to record checkpoints.
struct Checkpoints {
    file: Arc<StagingFile>,
    /// Knows the file's written prefix.
    written: HashFeed,
    /// The ETag the transfer is pinned to, once known.
    validator: Arc<OnceLock<HeaderValue>>,
    /// The prefix at the last checkpoint.
    last: u64,
}

/// The staging file of the transfer under `key`: the same one on every run.
fn staging_name(key: &str) -> String {
    format!("dl-{}.part", &hex::encode(Sha256::digest(key.as_bytes()))[..32])
}

/// Marks a key as running in this process for as long as it is held.
struct ActiveClaim {
    inner: Arc<Inner>,
    key: String,
}

impl ActiveClaim {
    fn take(inner: &Arc<Inner>, key: &str) -> Option<ActiveClaim> {
        let mut active = inner.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        active.insert(key.to_string()).then(|| ActiveClaim { inner: inner.clone(), key: key.to_string() })
    }
}

impl Drop for ActiveClaim {
    /// Dropped when the task ends, after its outcome is recorded (or as it unwinds):
    /// releases the key and wakes whoever waits for it.
    fn drop(&mut self) {
        let mut active = self.inner.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        active.remove(&self.key);
        drop(active);
        self.inner.settled.send_modify(|count| *count += 1);
    }
}

/// How one attempt at a range failed.
enum Failure {
    /// Worth another attempt from where it stopped (5xx, 408, 429, broken connection).
    Retryable(String),
    /// The transfer cannot succeed.
    Fatal(TransferError),
}

impl Failure {
    fn from_client(e: reqwest::Error) -> Failure {
        match address_denied(&e) {
            Some(denied) => Failure::Fatal(TransferError::Denied(denied.to_string())),
            // Presigned URLs carry their signature: keep them out of stored errors,
            // logs and the emails these reasons end up in.
            None => Failure::Retryable(error_chain(&e.without_url())),
        }
    }
}

/// The shared state of one transfer's range requests.
struct RangeFetch {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    file: Arc<StagingFile>,
    total: u64,
    /// Where the ranges start: 0, or the checkpoint a resumed transfer starts from.
    start: u64,
    max_retries: u32,
    /// The first response's strong ETag (or the checkpoint's), sent as `If-Range` by
    /// every later request.
    validator: Arc<OnceLock<HeaderValue>>,
    /// Bytes written to the file so far.
    done: Arc<AtomicU64>,
    /// Told of every write, to hash the file as it is written.
    hasher: HashFeed,
    /// Write buffers between attempts, so each is allocated once per transfer.
    buffers: Mutex<Vec<AlignedBuf>>,
}

impl RangeFetch {
    fn new(
        engine: &TransferEngine,
        req: &DownloadRequest,
        file: Arc<StagingFile>,
        hasher: HashFeed,
        resume: Option<Checkpoint>,
    ) -> Result<RangeFetch, TransferError> {
        let url = engine.inner.egress.check_url(&req.url).map_err(egress_error)?;
        let mut headers = request_headers(&req.headers, ENGINE_HEADERS).map_err(TransferError::InvalidRequest)?;
        // Byte offsets must be offsets in the object itself, not in an encoding of it.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let (start, validator) = match resume {
            Some(checkpoint) => (checkpoint.from, OnceLock::from(checkpoint.validator)),
            None => (0, OnceLock::new()),
        };
        Ok(RangeFetch {
            client: engine.inner.client.clone(),
            url,
            headers,
            file,
            total: req.expected_size,
            start,
            max_retries: engine.inner.config.max_range_retries,
            validator: Arc::new(validator),
            done: Arc::new(AtomicU64::new(start)),
            hasher,
            buffers: Mutex::new(Vec::new()),
        })
    }

    /// Fetches the first range alone to pin the validator (unless a checkpoint
    /// gave it), then the rest in parallel. The first failure cancels the ranges
    /// still in flight.
    async fn all(self, range_size: u64, concurrency: usize) -> Result<(), TransferError> {
        let (from, total) = (self.start, self.total);
        let mut ranges = (0..(total - from).div_ceil(range_size)).map(move |i| {
            let start = from + i * range_size;
            (start, (start + range_size).min(total) - 1)
        });
        if self.validator.get().is_none()
            && let Some((start, end)) = ranges.next()
            && let Some(etag) = self.range(start, end).await?
        {
            // Set once, here, before any other range runs.
            let _ = self.validator.set(etag);
        }
        let this = &self;
        stream::iter(ranges)
            .map(|(start, end)| this.range(start, end))
            .buffer_unordered(concurrency)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    /// Fetches bytes `start..=end`, retrying from where an attempt stopped, then
    /// starts their writeback. Returns the response's strong ETag.
    async fn range(&self, start: u64, end: u64) -> Result<Option<HeaderValue>, TransferError> {
        let mut pos = start;
        let mut failures = 0;
        loop {
            match self.attempt(&mut pos, end).await {
                Ok(etag) => {
                    // Direct writes leave nothing to write back but a file's last bytes,
                    // which the final fsync takes.
                    if !self.file.is_direct() {
                        let file = self.file.file().clone();
                        blocking(move || start_writeback(&file, start, end + 1 - start)).await?;
                    }
                    return Ok(etag);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retryable(why)) if failures < self.max_retries => {
                    failures += 1;
                    tracing::debug!(url = %self.url.host_str().unwrap_or(""), pos, end, failures, %why, "retrying a range");
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(Failure::Retryable(why)) => {
                    return Err(TransferError::Io(format!("bytes {pos}-{end}: {why} (gave up after {failures} retries)")));
                }
            }
        }
    }

    /// One request for bytes `*pos..=end`, advancing `*pos` past what it wrote.
    async fn attempt(&self, pos: &mut u64, end: u64) -> Result<Option<HeaderValue>, Failure> {
        let mut request =
            self.client.get(self.url.clone()).headers(self.headers.clone()).header(RANGE, format!("bytes={pos}-{end}"));
        if let Some(etag) = self.validator.get() {
            request = request.header(IF_RANGE, etag.clone());
        }
        let mut response = request.send().await.map_err(Failure::from_client)?;
        check_status(response.status(), response.headers(), self.total)?;
        check_content_range(response.headers(), *pos, end, self.total)?;
        let etag = strong_etag(response.headers());
        if let (Some(pinned), Some(sent)) = (self.validator.get(), &etag)
            && pinned != sent
        {
            return Err(Failure::Fatal(TransferError::Io("the source changed during the transfer".into())));
        }
        let mut buf = self.buffer();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if *pos + (buf.len() + chunk.len()) as u64 > end + 1 {
                        return Err(Failure::Fatal(TransferError::Io(format!("the source sent more than bytes {pos}-{end}"))));
                    }
                    let mut rest = &chunk[..];
                    while !rest.is_empty() {
                        rest = &rest[buf.fill_from(rest)..];
                        if buf.is_full() {
                            buf = self.write_blocks(pos, buf).await?;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Keep the whole blocks that arrived, so the retry asks only for the
                    // rest; it asks again for the few bytes past the last whole block.
                    self.give_back(self.write_blocks(pos, buf).await?);
                    return Err(Failure::from_client(e));
                }
            }
        }
        buf = self.write_blocks(pos, buf).await?;
        if *pos + buf.len() as u64 <= end {
            let stopped = *pos + buf.len() as u64;
            self.give_back(buf);
            return Err(Failure::Retryable(format!("the response ended early, at byte {stopped} of a range ending at {end}")));
        }
        // Less than a block is left: the end of the file, written through the page cache.
        self.give_back(self.write_tail(pos, buf).await?);
        Ok(etag)
    }

    /// A write buffer: one an earlier attempt gave back, or a new one.
    fn buffer(&self) -> AlignedBuf {
        let spare = self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        spare.unwrap_or_else(|| AlignedBuf::new(WRITE_BUFFER))
    }

    /// Keeps a write buffer for the next attempt, emptied.
    fn give_back(&self, mut buf: AlignedBuf) {
        buf.consume(buf.len());
        self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(buf);
    }

    /// Writes the whole blocks at the start of `buf` at `*pos` (a block boundary)
    /// and advances it; returns the buffer with what is left, less than a block.
    async fn write_blocks(&self, pos: &mut u64, buf: AlignedBuf) -> Result<AlignedBuf, Failure> {
        if buf.len() < BLOCK {
            return Ok(buf);
        }
        let (file, hasher, offset) = (self.file.clone(), self.hasher.clone(), *pos);
        let (mut buf, n) = blocking(move || {
            let n = file.write_blocks(&buf, offset)?;
            hasher.written(offset, &buf.bytes()[..n]);
            Ok((buf, n))
        })
        .await
        .map_err(Failure::Fatal)?;
        self.wrote(pos, n);
        buf.consume(n);
        Ok(buf)
    }

    /// Writes the last bytes of the file, fewer than a block, at `*pos`; returns the
    /// buffer.
    async fn write_tail(&self, pos: &mut u64, buf: AlignedBuf) -> Result<AlignedBuf, Failure> {
        if buf.is_empty() {
            return Ok(buf);
        }
        let (file, hasher, offset) = (self.file.clone(), self.hasher.clone(), *pos);
        let buf = blocking(move || {
            file.write_tail(buf.bytes(), offset)?;
            hasher.written(offset, buf.bytes());
            Ok(buf)
        })
        .await
        .map_err(Failure::Fatal)?;
        self.wrote(pos, buf.len());
        Ok(buf)
    }

    /// Accounts for `n` bytes just written at `*pos` (and reported to the hasher),
    /// and advances it.
    fn wrote(&self, pos: &mut u64, n: usize) {
        *pos += n as u64;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Only `206 Partial Content` carries a range. A 416 reveals the real size.
fn check_status(status: StatusCode, headers: &HeaderMap, total: u64) -> Result<(), Failure> {
    match status.as_u16() {
        206 => Ok(()),
        408 | 429 | 500..=599 => Err(Failure::Retryable(format!("HTTP {status}"))),
        416 => {
            let actual = content_range(headers).and_then(|c| c.size);
            Err(Failure::Fatal(match actual {
                Some(actual) if actual != total => TransferError::SizeMismatch(actual),
                _ => TransferError::HttpStatus(416),
            }))
        }
        code => Err(Failure::Fatal(TransferError::HttpStatus(code))),
    }
}

/// The response must be exactly the range asked for, of an object of the expected size.
fn check_content_range(headers: &HeaderMap, start: u64, end: u64, total: u64) -> Result<(), Failure> {
    match content_range(headers) {
        Some(ContentRange { size: Some(size), .. }) if size != total => Err(Failure::Fatal(TransferError::SizeMismatch(size))),
        Some(ContentRange { range: Some(range), .. }) if range == (start, end) => Ok(()),
        _ => {
            let got = headers.get(CONTENT_RANGE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            Err(Failure::Fatal(TransferError::Io(format!("asked for bytes {start}-{end}, got Content-Range {got:?}"))))
        }
    }
}

/// A parsed `Content-Range: bytes <first>-<last>/<size>`.
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    /// First and last byte; `None` for `*` (in a 416).
    range: Option<(u64, u64)>,
    /// The whole object's size; `None` for `*` (unknown).
    size: Option<u64>,
}

/// The response's `Content-Range`; `None` if it is missing or malformed.
fn content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, size) = value.strip_prefix("bytes ")?.split_once('/')?;
    let size = if size == "*" { None } else { Some(size.parse().ok()?) };
    let range = if range == "*" {
        None
    } else {
        let (first, last) = range.split_once('-')?;
        Some((first.parse().ok()?, last.parse().ok()?))
    };
    Some(ContentRange { range, size })
}

/// The ETag if it is strong: `If-Range` must not carry a weak one.
fn strong_etag(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(ETAG).filter(|v| !v.as_bytes().starts_with(b"W/")).cloned()
}

/// 250 ms, doubling per failure, at most 8 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250 << failures.saturating_sub(1).min(5))
}

fn verify(info: &BlobInfo, req: &DownloadRequest) -> Result<(), TransferError> {
    if info.size != req.expected_size {
        return Err(TransferError::SizeMismatch(info.size));
    }
    match &req.expected_xxhash64 {
        Some(expected) if *expected != info.xxhash64 => Err(TransferError::ChecksumMismatch(info.xxhash64.clone())),
        _ => Ok(()),
    }
}

fn check_key(key: &str) -> Result<(), TransferError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(TransferError::InvalidRequest(format!(
            "the key must be 1 to {MAX_KEY_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn egress_error(e: EgressError) -> TransferError {
    match e {
        EgressError::Invalid(why) => TransferError::InvalidRequest(why),
        EgressError::Denied(why) => TransferError::Denied(why),
    }
}

fn disk(e: io::Error) -> TransferError {
    TransferError::Io(format!("disk: {e}"))
}

fn database(e: rusqlite::Error) -> TransferError {
    TransferError::Io(format!("database: {e}"))
}

/// Asks the kernel to start writing bytes `start..start + len` of `file` to disk now.
/// Left alone, it would wait until dirty pages pile up or age (with gigabytes of RAM,
/// after the download), and the final fsync would then write the whole file while the
/// transfer waits. Started per finished range, writeback overlaps the download, and
/// the fsync has little left to do. It does not wait for the disk; an error it does
/// report fails the transfer, as the fsync would.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, start: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (start, len) = (i64::try_from(start).map_err(io::Error::other)?, i64::try_from(len).map_err(io::Error::other)?);
    // SAFETY: a plain system call on a descriptor `file` keeps open; it touches no memory.
    let status = unsafe { libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE) };
    if status == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Elsewhere the final fsync does all the writing.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _start: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T, TransferError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(disk),
        Err(e) => Err(TransferError::Io(format!("a disk task failed: {e}"))),
    }
}

/// A transfer joined with its blob; read by [`row_status`].
const ROW_QUERY: &str = "SELECT t.state, t.done_bytes, t.expected_size, t.error, b.id, b.size, b.xxhash64 FROM transfers t LEFT JOIN blobs b ON b.id = t.blob_id";

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
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use bytes::Bytes;
    use xxhash_rust::xxh64::xxh64;

    use super::*;
    use crate::imports::http::tests::serve;

    /// How the test source misbehaves.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// Serves ranges correctly.
        Ranges,
        /// Answers every request with the whole body and 200.
        IgnoresRanges,
        /// 403 to everything.
        Forbidden,
        /// 503 to everything.
        Unavailable,
        /// Cuts the first response for the second range half-way, once.
        CutsOnce,
        /// Changes its ETag after the first request and honours `If-Range`.
        ChangesAfterFirst,
        /// Holds every request after the first for two seconds.
        Stalls,
        /// Holds the request for the second range for half a second, so the ranges
        /// after it land first.
        HoldsSecond,
    }

    #[derive(Clone)]
    struct Source {
        body: Bytes,
        mode: Mode,
        hits: Arc<AtomicUsize>,
        cut: Arc<AtomicBool>,
        /// Requests for ranges starting here or later are never answered.
        hold_from: Arc<AtomicU64>,
        /// The object was replaced: its ETag is now `"v2"`.
        replaced: Arc<AtomicBool>,
        if_range_seen: Arc<Mutex<Vec<String>>>,
        ranges_seen: Arc<Mutex<Vec<(u64, u64)>>>,
    }

    const RANGE: u64 = MIN_RANGE_SIZE;

    /// Deterministic, non-repeating content of `len` bytes.
    fn content(len: usize) -> Bytes {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    async fn source(body: Bytes, mode: Mode) -> (SocketAddr, Source) {
        let state = Source {
            body,
            mode,
            hits: Arc::new(AtomicUsize::new(0)),
            cut: Arc::new(AtomicBool::new(false)),
            hold_from: Arc::new(AtomicU64::new(u64::MAX)),
            replaced: Arc::new(AtomicBool::new(false)),
            if_range_seen: Arc::new(Mutex::new(vec![])),
            ranges_seen: Arc::new(Mutex::new(vec![])),
        };
        let router = Router::new().route("/media", get(serve_media)).with_state(state.clone());
        (serve(router).await, state)
    }

    fn requested_range(headers: &AxumHeaders, len: u64) -> Option<(u64, u64)> {
        let spec = headers.get("range")?.to_str().ok()?.strip_prefix("bytes=")?;
        let (first, last) = spec.split_once('-')?;
        let first: u64 = first.parse().ok()?;
        let last = last.parse::<u64>().ok()?.min(len.checked_sub(1)?);
        (first <= last).then_some((first, last))
    }

    async fn serve_media(State(src): State<Source>, headers: AxumHeaders) -> Response {
        let hit = src.hits.fetch_add(1, Ordering::SeqCst);
        if let Some(v) = headers.get("if-range") {
            src.if_range_seen.lock().unwrap().push(v.to_str().unwrap().to_string());
        }
        let len = src.body.len() as u64;
        if requested_range(&headers, len).is_some_and(|(first, _)| first >= src.hold_from.load(Ordering::SeqCst)) {
            return std::future::pending().await;
        }
        let replaced = (src.mode == Mode::ChangesAfterFirst && hit > 0) || src.replaced.load(Ordering::SeqCst);
        let etag = if replaced { "\"v2\"" } else { "\"v1\"" };
        let stale = headers.get("if-range").is_some_and(|v| v != etag);
        if src.mode == Mode::Stalls && hit > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if src.mode == Mode::HoldsSecond && requested_range(&headers, len).is_some_and(|(first, _)| first == RANGE) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match src.mode {
            Mode::Forbidden => return AxumStatus::FORBIDDEN.into_response(),
            Mode::Unavailable => return AxumStatus::SERVICE_UNAVAILABLE.into_response(),
            Mode::IgnoresRanges => return ([("etag", etag)], src.body.clone()).into_response(),
            _ if stale => return ([("etag", etag)], src.body.clone()).into_response(),
            _ => {}
        }
        let Some((first, last)) = requested_range(&headers, len) else {
            return (AxumStatus::RANGE_NOT_SATISFIABLE, [("content-range", format!("bytes */{len}"))]).into_response();
        };
        src.ranges_seen.lock().unwrap().push((first, last));
        let part = src.body.slice(first as usize..=last as usize);
        let content_range = format!("bytes {first}-{last}/{len}");
        let headers = [("etag", etag.to_string()), ("content-range", content_range)];
        if src.mode == Mode::CutsOnce && first == RANGE && !src.cut.swap(true, Ordering::SeqCst) {
            // Promise the whole range, send a bit more than half (not a whole number
            // of blocks), then break the connection.
            // The pause lets the first part reach the client before the connection breaks.
            let half = part.slice(..part.len() / 2 + 1000);
            let cut = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Bytes, _>(io::Error::other("cut"))
            };
            let body = stream::once(async { Ok(half) }).chain(stream::once(cut));
            let mut response = (AxumStatus::PARTIAL_CONTENT, headers, Body::from_stream(body)).into_response();
            response.headers_mut().insert("content-length", part.len().into());
            return response;
        }
        (AxumStatus::PARTIAL_CONTENT, headers, part).into_response()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        tmp: std::path::PathBuf,
        blobs: BlobStore,
        db: Database,
        engine: TransferEngine,
    }

    fn fixture_with(config: TransferConfig, egress: EgressPolicy) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_in_memory().unwrap();
        let blobs = BlobStore::open(dir.path(), db.clone()).unwrap();
        let engine = TransferEngine::new(db.clone(), blobs.clone(), egress, config).unwrap();
        Fixture { tmp: dir.path().join("tmp"), _dir: dir, blobs, db, engine }
    }

    fn loopback() -> EgressPolicy {
        EgressPolicy::new(&["127.0.0.1".into()], &["127.0.0.0/8".into()]).unwrap()
    }

    fn fixture() -> Fixture {
        let config = TransferConfig { range_size: RANGE, concurrency: 4, max_range_retries: 2, ..TransferConfig::default() };
        fixture_with(config, loopback())
    }

    fn request(key: &str, addr: SocketAddr, body: &[u8]) -> DownloadRequest {
        DownloadRequest {
            key: key.into(),
            url: format!("http://{addr}/media"),
            headers: vec![("x-request-id".into(), "t".into())],
            expected_size: body.len() as u64,
            expected_xxhash64: Some(format!("{:016x}", xxh64(body, 0))),
        }
    }

    impl Fixture {
        /// Polls until the transfer leaves `Running`.
        async fn outcome(&self, key: &str) -> TransferStatus {
            for _ in 0..500 {
                match self.engine.status(key).unwrap() {
                    Some(TransferStatus::Running { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Some(done) => return done,
                    None => panic!("transfer {key} does not exist"),
                }
            }
            panic!("transfer {key} did not finish");
        }

        fn staging_files(&self) -> usize {
            std::fs::read_dir(&self.tmp).unwrap().count()
        }

        /// The blob is `body`: its id is the BLAKE3 hash and its checksum the xxHash64 of
        /// exactly these bytes, and its file holds them.
        fn assert_blob_is(&self, blob: &BlobInfo, body: &[u8]) {
            assert_eq!(blob.id, blake3::hash(body).to_hex().as_str());
            assert_eq!(blob.xxhash64, format!("{:016x}", xxh64(body, 0)));
            assert_eq!(blob.size, body.len() as u64);
            assert!(std::fs::read(self.blobs.path(&blob.id).unwrap()).unwrap() == body, "the blob's bytes differ");
        }
    }

    #[tokio::test]
    async fn parallel_ranges_produce_an_identical_blob() {
        let f = fixture();
        let body = content(17 * RANGE as usize + 123);
        let (addr, src) = source(body.clone(), Mode::Ranges).await;
        let started = f.engine.start_download(request("k", addr, &body)).await.unwrap();
        assert!(matches!(started, TransferStatus::Running { total, .. } if total == body.len() as u64), "{started:?}");
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
        assert_eq!(src.hits.load(Ordering::SeqCst), 18, "one request per range");
        assert_eq!(src.if_range_seen.lock().unwrap().len(), 17, "every range after the first is pinned");
        assert!(src.if_range_seen.lock().unwrap().iter().all(|v| v == "\"v1\""));
        assert_eq!(f.staging_files(), 0);
        let rows = f.engine.list(&Page::first(500)).unwrap().0;
        assert_eq!(
            (rows[0].state.as_str(), rows[0].done, rows[0].blob_id.as_deref()),
            ("complete", blob.size, Some(blob.id.as_str()))
        );
    }

    #[tokio::test]
    async fn ranges_landing_out_of_order_hash_to_the_content() {
        let f = fixture();
        let body = content(12 * RANGE as usize + 5);
        let (addr, _) = source(body.clone(), Mode::HoldsSecond).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        // The prefix stops at the second range while the ten after it land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(f.engine.status("k").unwrap(), Some(TransferStatus::Running { .. })));
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_its_transfer_ends_and_not_before() {
        let f = fixture();
        let body = content(12 * RANGE as usize + 5);
        let (addr, _) = source(body.clone(), Mode::HoldsSecond).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(200), f.engine.settled("k")).await;
        assert!(waiting.is_err(), "the transfer is still running (its second range is held back)");
        tokio::time::timeout(Duration::from_secs(10), f.engine.settled("k")).await.expect("woken when it ends");
        assert!(matches!(f.engine.status("k").unwrap(), Some(TransferStatus::Complete(_))));
        tokio::time::timeout(Duration::from_millis(100), f.engine.settled("k")).await.expect("an ended transfer: at once");
        tokio::time::timeout(Duration::from_millis(100), f.engine.settled("none")).await.expect("no transfer: at once");
    }

    #[tokio::test]
    async fn checksum_mismatch_fails_and_leaves_nothing() {
        let f = fixture();
        let body = content(3 * RANGE as usize);
        let (addr, _) = source(body.clone(), Mode::Ranges).await;
        let mut req = request("k", addr, &body);
        req.expected_xxhash64 = Some("0123456789abcdef".into());
        f.engine.start_download(req).await.unwrap();
        let actual = format!("{:016x}", xxh64(&body, 0));
        assert_eq!(f.outcome("k").await, TransferStatus::Failed(TransferError::ChecksumMismatch(actual)));
        assert_eq!(f.staging_files(), 0);
        let blobs: i64 = f.db.with(|c| c.query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0))).unwrap();
        assert_eq!(blobs, 0);
        assert_eq!(f.blobs.path(blake3::hash(&body).to_hex().as_str()), None);
    }

    #[tokio::test]
    async fn a_200_to_a_range_request_fails() {
        let f = fixture();
        let body = content(2 * RANGE as usize);
        let (addr, _) = source(body.clone(), Mode::IgnoresRanges).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        assert_eq!(f.outcome("k").await, TransferStatus::Failed(TransferError::HttpStatus(200)));
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn forbidden_fails_at_once() {
        let f = fixture();
        let body = content(1000);
        let (addr, src) = source(body.clone(), Mode::Forbidden).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        assert_eq!(f.outcome("k").await, TransferStatus::Failed(TransferError::HttpStatus(403)));
        assert_eq!(src.hits.load(Ordering::SeqCst), 1, "no retry");
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_fail() {
        let f = fixture_with(TransferConfig { range_size: RANGE, max_range_retries: 1, ..TransferConfig::default() }, loopback());
        let body = content(1000);
        let (addr, src) = source(body.clone(), Mode::Unavailable).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        assert!(matches!(f.outcome("k").await, TransferStatus::Failed(TransferError::Io(why)) if why.contains("503")));
        assert_eq!(src.hits.load(Ordering::SeqCst), 2, "one try and one retry");
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn a_cut_connection_resumes_the_range_where_it_stopped() {
        let f = fixture();
        let body = content(3 * RANGE as usize);
        let (addr, src) = source(body.clone(), Mode::CutsOnce).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
        assert_eq!(src.hits.load(Ordering::SeqCst), 4, "three ranges and one retry");
        // The retry starts at the last whole block that arrived: the bytes after it
        // are asked for again rather than written through the page cache.
        let retry_from = RANGE + (RANGE / 2 + 1000) / BLOCK as u64 * BLOCK as u64;
        assert!(src.ranges_seen.lock().unwrap().contains(&(retry_from, 2 * RANGE - 1)), "{:?}", src.ranges_seen.lock().unwrap());
    }

    #[tokio::test]
    async fn a_source_that_changes_mid_transfer_is_detected() {
        let f = fixture();
        let body = content(3 * RANGE as usize);
        let (addr, _) = source(body.clone(), Mode::ChangesAfterFirst).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        assert_eq!(f.outcome("k").await, TransferStatus::Failed(TransferError::HttpStatus(200)));
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn progress_is_recorded_while_running() {
        let f = fixture();
        let body = content(3 * RANGE as usize);
        let (addr, _) = source(body.clone(), Mode::Stalls).await;
        f.engine.start_download(request("k", addr, &body)).await.unwrap();
        let total = body.len() as u64;
        let mut seen = None;
        for _ in 0..100 {
            match f.engine.status("k").unwrap() {
                Some(TransferStatus::Running { done, .. }) if done > 0 => {
                    seen = Some(done);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(seen, Some(RANGE), "the first range is reported while the others stall");
        assert_eq!(f.engine.list(&Page::first(500)).unwrap().0[0].total, total);
        assert!(matches!(f.outcome("k").await, TransferStatus::Complete(_)));
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_fail_the_transfer() {
        let f = fixture_with(TransferConfig::default(), EgressPolicy::new(&["localhost".into()], &[]).unwrap());
        let body = content(10);
        let (addr, src) = source(body.clone(), Mode::Ranges).await;
        let req = DownloadRequest { url: format!("http://localhost:{}/media", addr.port()), ..request("k", addr, &body) };
        // The name passes the allowlist; its addresses are refused when it resolves.
        f.engine.start_download(req).await.unwrap();
        assert!(matches!(f.outcome("k").await, TransferStatus::Failed(TransferError::Denied(why)) if why.contains("localhost")));
        assert_eq!(src.hits.load(Ordering::SeqCst), 0);
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn wrong_expected_size_is_a_size_mismatch() {
        let f = fixture();
        let body = content(1000);
        let (addr, _) = source(body.clone(), Mode::Ranges).await;
        for (key, claimed) in [("short", 999), ("long", 1001)] {
            let req = DownloadRequest { expected_size: claimed, expected_xxhash64: None, ..request(key, addr, &body) };
            f.engine.start_download(req).await.unwrap();
            assert_eq!(f.outcome(key).await, TransferStatus::Failed(TransferError::SizeMismatch(1000)), "{key}");
        }
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn the_same_key_starts_one_transfer() {
        let f = fixture();
        let body = content(2 * RANGE as usize);
        let (addr, src) = source(body.clone(), Mode::Ranges).await;
        let (first, second) =
            tokio::join!(f.engine.start_download(request("k", addr, &body)), f.engine.start_download(request("k", addr, &body)));
        assert!(first.is_ok() && second.is_ok());
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        let again = f.engine.start_download(DownloadRequest { url: format!("http://{addr}/other"), ..request("k", addr, &body) });
        assert_eq!(again.await.unwrap(), TransferStatus::Complete(blob), "an existing key returns its status");
        assert_eq!(src.hits.load(Ordering::SeqCst), 2, "two ranges, fetched once");
    }

    #[tokio::test]
    async fn empty_files_need_no_request() {
        let f = fixture();
        let (addr, src) = source(Bytes::new(), Mode::Ranges).await;
        f.engine.start_download(request("k", addr, b"")).await.unwrap();
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        assert_eq!((blob.size, blob.xxhash64.as_str()), (0, "ef46db3751d8e999"));
        assert_eq!(src.hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn denied_and_malformed_requests_are_refused_up_front() {
        let f = fixture();
        let body = b"x";
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let denied = DownloadRequest { url: "https://media.example.test/a".into(), ..request("k", addr, body) };
        assert!(matches!(f.engine.start_download(denied).await, Err(TransferError::Denied(_))));
        let bad = [
            DownloadRequest { key: String::new(), ..request("k", addr, body) },
            DownloadRequest { key: "k".repeat(257), ..request("k", addr, body) },
            DownloadRequest { url: "ftp://127.0.0.1/a".into(), ..request("k", addr, body) },
            DownloadRequest { headers: vec![("Range".into(), "bytes=0-".into())], ..request("k", addr, body) },
            DownloadRequest { headers: vec![("connection".into(), "close".into())], ..request("k", addr, body) },
            DownloadRequest { expected_xxhash64: Some("ABCDEF0123456789".into()), ..request("k", addr, body) },
            DownloadRequest { expected_size: (1 << 40) + 1, ..request("k", addr, body) },
        ];
        for req in bad {
            let shown = format!("{req:?}").chars().take(120).collect::<String>();
            assert!(matches!(f.engine.start_download(req).await, Err(TransferError::InvalidRequest(_))), "{shown}");
        }
        assert_eq!(f.engine.status("k").unwrap(), None, "nothing was recorded");
        assert!(f.engine.list(&Page::first(500)).unwrap().0.is_empty());
        assert!(matches!(f.engine.status(""), Err(TransferError::InvalidRequest(_))));
    }

    #[tokio::test]
    async fn unfinished_transfers_resume_after_a_restart() {
        let f = fixture();
        let body = content(2 * RANGE as usize + 7);
        let (addr, _) = source(body.clone(), Mode::Ranges).await;
        // A row left `running` by a host that stopped, and one whose host is no longer allowed.
        let insert = |key: &str, url: String| {
            f.db.with(|c| {
                c.execute(
                    "INSERT INTO transfers (key, url, headers, expected_size, expected_xxhash64, state, done_bytes, created_at, updated_at)
                     VALUES (?1, ?2, '[]', ?3, NULL, 'running', 5, 0, 0)",
                    params![key, url, body.len() as u64],
                )
            })
            .unwrap()
        };
        insert("left-over", format!("http://{addr}/media"));
        insert("now-denied", "https://gone.example.test/media".into());
        // The stopped host left a staging file, half written with other bytes.
        let mut stale = vec![0xa5; body.len()];
        stale[..RANGE as usize].copy_from_slice(&body[..RANGE as usize]);
        std::fs::write(f.blobs.staging_file(&staging_name("left-over")).unwrap(), stale).unwrap();
        f.engine.resume_unfinished().await;
        let TransferStatus::Complete(blob) = f.outcome("left-over").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
        assert!(matches!(f.engine.status("now-denied").unwrap(), Some(TransferStatus::Failed(TransferError::Denied(_)))));
    }

    /// Where `interrupted_transfer` stops: ranges 0 to 5 are written, 6 to 12 are not.
    const HELD_AT: u64 = 6 * RANGE;

    /// A transfer `k` of 12 ranges and a bit, run in a host of its own until its
    /// checkpoint is at `HELD_AT` (the source never answers for the ranges from
    /// there), then stopped as a crash would: its tasks are dropped mid-transfer.
    /// The staging file and the row stay behind, as they would on disk. Returns the
    /// fixture (whose engine is the restarted host's), the content and its source.
    async fn interrupted_transfer() -> (Fixture, Bytes, Source) {
        let f = fixture();
        let body = content(12 * RANGE as usize + 5);
        let (addr, src) = source(body.clone(), Mode::Ranges).await;
        src.hold_from.store(HELD_AT, Ordering::SeqCst);
        let config = TransferConfig { range_size: RANGE, concurrency: 4, checkpoint_bytes: RANGE, ..TransferConfig::default() };
        let engine = TransferEngine::new(f.db.clone(), f.blobs.clone(), loopback(), config).unwrap();
        let host = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let req = request("k", addr, &body);
        host.spawn(async move { engine.start_download(req).await.unwrap() });
        let resume_from = || -> u64 {
            let row = f.db.with(|c| c.query_row("SELECT resume_from FROM transfers WHERE key = 'k'", [], |r| r.get(0)).optional());
            row.unwrap().unwrap_or(0)
        };
        for _ in 0..250 {
            if resume_from() == HELD_AT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(resume_from(), HELD_AT, "checkpointed up to the held ranges");
        host.shutdown_background();
        assert!(matches!(f.engine.status("k").unwrap(), Some(TransferStatus::Running { .. })));
        src.ranges_seen.lock().unwrap().clear();
        src.if_range_seen.lock().unwrap().clear();
        src.hold_from.store(u64::MAX, Ordering::SeqCst);
        (f, body, src)
    }

    /// The first byte of each range the source was asked for, in the order asked.
    fn range_starts(src: &Source) -> Vec<u64> {
        src.ranges_seen.lock().unwrap().iter().map(|&(first, _)| first).collect()
    }

    /// The first bytes of ranges `first..=last`, in order.
    fn ranges(first: u64, last: u64) -> Vec<u64> {
        (first..=last).map(|i| i * RANGE).collect()
    }

    /// `starts` in ascending order: ranges in flight together land in any order.
    fn sorted(mut starts: Vec<u64>) -> Vec<u64> {
        starts.sort_unstable();
        starts
    }

    #[tokio::test]
    async fn a_restarted_transfer_resumes_from_its_last_checkpoint() {
        let (f, body, src) = interrupted_transfer().await;
        f.engine.resume_unfinished().await;
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        // The blob's hashes cover the bytes written before the restart too.
        f.assert_blob_is(&blob, &body);
        assert_eq!(sorted(range_starts(&src)), ranges(6, 12), "only the ranges past the checkpoint");
        assert_eq!(src.if_range_seen.lock().unwrap().last().map(String::as_str), Some("\"v1\""), "pinned to the checkpoint's ETag");
        assert_eq!(f.staging_files(), 0);
    }

    #[tokio::test]
    async fn a_resume_whose_source_was_replaced_starts_over() {
        let (f, body, src) = interrupted_transfer().await;
        src.replaced.store(true, Ordering::SeqCst);
        f.engine.resume_unfinished().await;
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
        assert_eq!(sorted(range_starts(&src)), ranges(0, 12), "every range, from scratch");
        // It tried to resume first: pinned to the old ETag, it was answered 200.
        let pinned = src.if_range_seen.lock().unwrap().clone();
        assert_eq!(pinned.first().map(String::as_str), Some("\"v1\""), "{pinned:?}");
        assert_eq!(pinned.last().map(String::as_str), Some("\"v2\""), "{pinned:?}");
    }

    #[tokio::test]
    async fn a_resume_over_a_damaged_staging_file_starts_over() {
        let (f, body, src) = interrupted_transfer().await;
        // A byte before the checkpoint is not what was written.
        let staged = f.blobs.staging_file(&staging_name("k")).unwrap();
        let mut bytes = std::fs::read(&staged).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&staged, bytes).unwrap();
        f.engine.resume_unfinished().await;
        let TransferStatus::Complete(blob) = f.outcome("k").await else { panic!("not complete") };
        f.assert_blob_is(&blob, &body);
        let starts = range_starts(&src);
        assert_eq!(starts.len(), 7 + 13, "{starts:?}");
        assert_eq!(sorted(starts[..7].to_vec()), ranges(6, 12), "resumed first");
        assert_eq!(sorted(starts[7..].to_vec()), ranges(0, 12), "then every range, from scratch");
    }

    #[test]
    fn content_range_parsing() {
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_RANGE, HeaderValue::from_str(v).unwrap());
            content_range(&h)
        };
        assert_eq!(parse("bytes 0-9/100"), Some(ContentRange { range: Some((0, 9)), size: Some(100) }));
        assert_eq!(parse("bytes 5-9/*"), Some(ContentRange { range: Some((5, 9)), size: None }));
        assert_eq!(parse("bytes */100"), Some(ContentRange { range: None, size: Some(100) }));
        for bad in ["bytes 0-9", "items 0-9/10", "bytes a-9/10", "bytes 0-9/x", "bytes 09/10"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(content_range(&HeaderMap::new()), None);
    }

    #[test]
    fn config_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_in_memory().unwrap();
        let blobs = BlobStore::open(dir.path(), db.clone()).unwrap();
        let egress = EgressPolicy::new(&[], &[]).unwrap();
        let make = |config| TransferEngine::new(db.clone(), blobs.clone(), egress.clone(), config).is_ok();
        assert!(make(TransferConfig::default()));
        assert!(!make(TransferConfig { range_size: 1024, ..TransferConfig::default() }));
        assert!(!make(TransferConfig { concurrency: 0, ..TransferConfig::default() }));
        assert!(!make(TransferConfig { max_file_size: 0, ..TransferConfig::default() }));
        assert!(!make(TransferConfig { checkpoint_bytes: 1024, ..TransferConfig::default() }));
    }
}
