//! Transfers outlive the host's process. A download records a checkpoint every
//! `checkpoint_bytes` of written prefix: it syncs its staging file and records the
//! prefix and the ETag it was fetched under. After a host restart,
//! [`TransferEngine::resume_unfinished`] runs the downloads left running again from
//! their last checkpoint, with that ETag as `If-Range`; a resumed run that fails for
//! any reason (the object changed, the staging file is gone or damaged, ...) starts
//! over from scratch once. An upload left running sends the parts it had not
//! finished ([`super::upload`] records each finished part).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use reqwest::header::HeaderValue;

use super::hashing::HashFeed;
use super::staging::StagingFile;
use super::{DownloadRequest, TransferEngine, TransferError, blocking, rows};
use crate::blobs::BlobInfo;

/// Where a download can resume: its staging file's first `from` bytes are durable,
/// and were fetched under the strong ETag `validator`.
pub(super) struct Checkpoint {
    pub(super) from: u64,
    pub(super) validator: HeaderValue,
}

/// What the progress task needs to record checkpoints.
pub(super) struct Checkpoints {
    pub(super) file: Arc<StagingFile>,
    /// Knows the file's written prefix.
    pub(super) written: HashFeed,
    /// The ETag the transfer is pinned to, once known.
    pub(super) validator: Arc<OnceLock<HeaderValue>>,
    /// The prefix at the last checkpoint.
    pub(super) last: u64,
}

impl TransferEngine {
    /// Runs again the transfers a previous run of the host left running: downloads
    /// from their last checkpoint (or from scratch), uploads from their first
    /// unfinished part. A transfer whose request no longer passes validation (say
    /// its host left the allowlist) is failed instead.
    pub async fn resume_unfinished(&self) {
        let pending = rows::unfinished_downloads(&self.inner.db).unwrap_or_else(|e| {
            tracing::error!(error = %e, "listing unfinished downloads failed");
            vec![]
        });
        for (mut request, headers) in pending {
            let restored = serde_json::from_str(&headers)
                .map_err(|e| TransferError::Io(format!("stored headers are unreadable: {e}")))
                .and_then(|headers| {
                    request.headers = headers;
                    self.validate_download(&request)
                });
            match restored {
                Ok(()) => self.spawn_download(request),
                Err(e) => self.record_outcome(&request.key, Err(e)),
            }
        }
        // An upload's task reads its parts from the database and checks them again
        // itself, so a fresh start and a resumed one take the same path.
        match rows::unfinished_uploads(&self.inner.db) {
            Ok(keys) => keys.into_iter().for_each(|key| self.spawn_upload(key)),
            Err(e) => tracing::error!(error = %e, "listing unfinished uploads failed"),
        }
    }

    /// Downloads from the last checkpoint if there is one, and from scratch if there
    /// is none or resuming fails.
    pub(super) async fn download_resuming(&self, req: &DownloadRequest, staged: &Path) -> Result<BlobInfo, TransferError> {
        let Some(checkpoint) = self.checkpoint(req)? else { return self.download_to(req, staged, None).await };
        let from = checkpoint.from;
        tracing::info!(key = %req.key, from, "resuming a transfer from its checkpoint");
        match self.download_to(req, staged, Some(checkpoint)).await {
            Err(e) => {
                tracing::warn!(key = %req.key, from, error = %e, "resuming the transfer failed; starting it over");
                // Forgotten before the staging file is truncated, so that a restart
                // from here on cannot resume from bytes that are gone.
                rows::clear_checkpoint(&self.inner.db, &req.key)?;
                self.download_to(req, staged, None).await
            }
            done => done,
        }
    }

    /// Once the written prefix is `checkpoint_bytes` past the last checkpoint, and
    /// the ETag the transfer is pinned to is known: syncs the staging file, then
    /// records the prefix as the point to resume from. Only strong ETags pin a
    /// transfer, so one without is never resumed.
    pub(super) async fn checkpoint_if_due(&self, key: &str, checkpoints: &mut Checkpoints) {
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
        match rows::record_checkpoint(&self.inner.db, key, prefix, validator.as_bytes()) {
            Ok(()) => checkpoints.last = prefix,
            Err(e) => tracing::warn!(key, error = %e, "recording a transfer's checkpoint failed"),
        }
    }

    /// The checkpoint a previous run of the download recorded, if it is usable.
    fn checkpoint(&self, req: &DownloadRequest) -> Result<Option<Checkpoint>, TransferError> {
        let Some((from, Some(validator))) = rows::checkpoint(&self.inner.db, &req.key)? else { return Ok(None) };
        let validator = HeaderValue::from_bytes(&validator).ok();
        Ok(validator.filter(|_| from > 0 && from <= req.expected_size).map(|validator| Checkpoint { from, validator }))
    }
}
