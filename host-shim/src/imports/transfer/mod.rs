//! The `transfer` import: the host moves media between URLs and its blob store in
//! the background, in parallel pieces, so file contents never pass through the
//! component.
//!
//! A transfer is a row in the `transfers` table keyed by the caller's key; starting a
//! key that exists returns its status, which makes a replayed job step harmless.
//! Both directions share the row, the key rules, the egress policy (the media
//! allowlist of `[transfer] allow_hosts`), the retry rules and the restart path:
//! - [`download`] fetches a URL into a new blob in parallel byte ranges
//!   ([`ranges`]), hashing as it writes ([`hashing`]) into a staging file
//!   ([`staging`]);
//! - [`upload`] sends a blob to presigned part URLs in parallel, streaming each
//!   part's bytes from the blob's file;
//! - [`resume`] runs again, after a host restart, what a previous run left running:
//!   a download from its last checkpoint, an upload from its unfinished parts;
//! - [`rows`] holds the SQL of the transfer rows and of an upload's part rows.
//!
//! Redirects are not followed (a redirect could leave the allowlist): a 3xx fails the
//! transfer with its status.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::http::{EgressError, EgressPolicy, address_denied, error_chain};
use crate::blobs::{BlobInfo, BlobStore};
use crate::db::{Database, Page};
use staging::BLOCK;

mod download;
mod hashing;
mod ranges;
mod resume;
mod rows;
mod staging;
mod upload;
#[cfg(test)]
mod testing;

/// Longest transfer key, in bytes (from the WIT).
pub const MAX_KEY_BYTES: usize = 256;
/// Smallest allowed `range_size`.
const MIN_RANGE_SIZE: u64 = 64 * 1024;
/// Most ranges in flight at once that the config may ask for.
const MAX_CONCURRENCY: usize = 64;
/// How often progress is recorded.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a response may stay silent before the attempt counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Transfer settings (`[transfer]` in the host's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Hosts media may be downloaded from and uploaded to: where Frame.io's
    /// `original` URLs and upload part URLs point (its object storage and CDN), in
    /// the `[http] allow_hosts` pattern syntax. Default:
    /// `*.frame.io`, `*.amazonaws.com`, `*.cloudfront.net`. Private addresses follow
    /// `[http] allow_private_networks`.
    pub allow_hosts: Vec<String>,
    /// Bytes per range request; at least 64 KiB, and a multiple of 4 KiB (so that
    /// every range starts on a block boundary, for direct I/O). Default 4 MiB: on the
    /// benchmark's machine 4 MiB beat 2 and 8 MiB (larger ranges run further ahead of
    /// the hashed prefix than the hasher keeps in memory).
    pub range_size: u64,
    /// Range requests (downloads) or part uploads in flight per transfer, 1 to 64.
    /// Default 4.
    pub concurrency: usize,
    /// Retries of one range or part after a 5xx, 408, 429, a broken connection or
    /// (parts) a stall. Default 5.
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

/// One part of an upload: a presigned `PUT` URL and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPart {
    /// Where the part goes; must pass the egress policy.
    pub url: String,
    /// How many bytes of the blob it takes, following the parts before it.
    pub size: u64,
}

/// What to upload (WIT `transfer.upload-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRequest {
    /// The caller's key, 1 to 256 bytes without control characters.
    pub key: String,
    /// The blob to send.
    pub blob_id: String,
    /// The parts in order, at most 10 000; their sizes add up to the blob's.
    pub parts: Vec<UploadPart>,
    /// Headers sent with every part (not hop-by-hop ones, `content-length`,
    /// `content-encoding` nor `expect`).
    pub headers: Vec<(String, String)>,
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
    /// Still moving bytes: `done` of `total` are written (downloads; not yet
    /// durable) or sent (uploads: the finished parts and what is in flight).
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

/// A transfer as the admin view shows it (URLs, often presigned, are left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferRow {
    /// The caller's key.
    pub key: String,
    /// `download` (a URL into a new blob) or `upload` (a blob to part URLs).
    pub kind: String,
    /// `running`, `complete` or `failed`.
    pub state: String,
    /// Bytes written (as of the last progress report).
    pub done: u64,
    /// Bytes expected.
    pub total: u64,
    /// Bytes a restart would not move again: a running download's last checkpoint,
    /// the finished parts of an upload.
    pub checkpoint: u64,
    /// The blob: a download's once complete, an upload's source from the start.
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
    /// The memory the uploads' part bodies hold.
    upload_held: Arc<upload::HeldBytes>,
}

impl TransferEngine {
    /// An engine moving media between `blobs` and what `egress` allows.
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
        let upload_held = Arc::default();
        let inner = Inner { db, blobs, egress, client, config, active: Mutex::new(HashSet::new()), settled, upload_held };
        Ok(TransferEngine { inner: Arc::new(inner) })
    }

    /// Starts fetching `req.url` into a new blob in the background, or returns the
    /// status of the transfer already started under `req.key` (whatever its URL).
    pub async fn start_download(&self, req: DownloadRequest) -> Result<TransferStatus, TransferError> {
        self.validate_download(&req)?;
        if rows::insert_download(&self.inner.db, &req)? {
            self.spawn_download(req.clone());
        }
        self.status(&req.key)?.ok_or_else(|| TransferError::Io(format!("transfer {} vanished", req.key)))
    }

    /// Starts sending the blob `req.blob_id` to its part URLs in the background, or
    /// returns the status of the transfer already started under `req.key`
    /// (whatever its parts).
    pub async fn start_upload(&self, req: UploadRequest) -> Result<TransferStatus, TransferError> {
        let blob = self.validate_upload(&req)?;
        if rows::insert_upload(&self.inner.db, &req, &blob)? {
            self.spawn_upload(req.key.clone());
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
        rows::status(&self.inner.db, key)
    }

    /// A page of transfers, newest first, and the cursor of the next page.
    pub fn list(&self, page: &Page) -> rusqlite::Result<(Vec<TransferRow>, Option<String>)> {
        rows::list(&self.inner.db, page)
    }

    /// Deletes the transfers that ended (complete or failed) before `cutoff_secs`;
    /// their blobs stay, as documents point at them. Returns how many.
    pub fn prune_finished(&self, cutoff_secs: i64) -> rusqlite::Result<usize> {
        rows::prune_finished(&self.inner.db, cutoff_secs)
    }

    /// Marks the row complete or failed. If that fails, the row stays `running` and
    /// the next start of the host runs the transfer again.
    fn record_outcome(&self, key: &str, outcome: Result<BlobInfo, TransferError>) {
        if let Err(e) = rows::record_outcome(&self.inner.db, key, &outcome) {
            tracing::error!(key, error = %e, "recording a transfer's outcome failed");
        }
    }
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

/// How one attempt at a range or a part failed.
enum Failure {
    /// Worth another attempt (5xx, 408, 429, broken connection).
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

/// 250 ms, doubling per failure, at most 8 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250 << failures.saturating_sub(1).min(5))
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T, TransferError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(disk),
        Err(e) => Err(TransferError::Io(format!("a disk task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
