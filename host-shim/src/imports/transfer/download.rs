//! Downloads: a URL fetched into a new blob. The background task
//! 1. preallocates a staging file of the expected size;
//! 2. fetches the first range alone, to learn the object's ETag, then the others,
//!    `concurrency` at a time, each pinned to that ETag with `If-Range` so that an
//!    object replaced mid-transfer is detected rather than spliced ([`super::ranges`]);
//! 3. streams each range to its offset in the file (memory per range is bounded by a
//!    small write buffer), with direct I/O where the file system allows it
//!    ([`super::staging`]), retrying a range from where it stopped after a 5xx or a
//!    broken connection; writing through the page cache, it starts the disk's
//!    writeback of each range that is done;
//! 4. meanwhile hashes the file's written prefix as it grows ([`super::hashing`]),
//!    from copies of the bytes just written, so that once the last range lands only
//!    the tail is left to hash;
//! 5. fsyncs the file, checks size and xxHash64, and installs it as a blob.
//!
//! Checkpoints and the resumed runs they allow are in [`super::resume`]. A failed
//! download leaves neither a staging file nor a blob.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::hashing::{self, PrefixHasher};
use super::ranges::{ENGINE_HEADERS, RangeFetch};
use super::resume::{Checkpoint, Checkpoints};
use super::staging::StagingFile;
use super::{
    ActiveClaim, DownloadRequest, PROGRESS_INTERVAL, TransferEngine, TransferError, blocking, check_key, disk, egress_error, rows,
};
use crate::blobs::BlobInfo;
use crate::imports::http::request_headers;

impl TransferEngine {
    pub(super) fn validate_download(&self, req: &DownloadRequest) -> Result<(), TransferError> {
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

    /// Runs the download in a task, unless this process already runs it.
    pub(super) fn spawn_download(&self, req: DownloadRequest) {
        let Some(claim) = ActiveClaim::take(&self.inner, &req.key) else { return };
        let engine = self.clone();
        tokio::spawn(async move {
            let _claim = claim;
            let outcome = engine.run_download(&req).await;
            if let Err(e) = &outcome {
                tracing::warn!(key = %req.key, error = %e, "transfer failed");
            }
            engine.record_outcome(&req.key, outcome);
        });
    }

    /// Downloads, verifies and installs; on any failure removes the staging file.
    async fn run_download(&self, req: &DownloadRequest) -> Result<BlobInfo, TransferError> {
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

    /// Fetches into the staging file at `staged` (a new one, or the one `resume`
    /// says is written up to its checkpoint), then verifies and installs the blob.
    pub(super) async fn download_to(
        &self,
        req: &DownloadRequest,
        staged: &Path,
        resume: Option<Checkpoint>,
    ) -> Result<BlobInfo, TransferError> {
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
            if let Err(e) = rows::record_progress(&self.inner.db, key, done.load(Ordering::Relaxed)) {
                tracing::warn!(key, error = %e, "recording a transfer's progress failed");
            }
        }
    }
}

/// The staging file of the download under `key`: the same one on every run.
pub(super) fn staging_name(key: &str) -> String {
    format!("dl-{}.part", &hex::encode(Sha256::digest(key.as_bytes()))[..32])
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

#[cfg(test)]
mod tests;
