//! Uploads: a blob sent to presigned part URLs (an object store's multipart upload).
//!
//! Each part is one `PUT` of its byte range of the blob, with `Content-Length` and
//! the caller's headers; `concurrency` parts are in flight at a time. A part's body
//! is read from the blob's file in `CHUNK`-sized pieces as the connection takes
//! them, so an upload holds a few chunks per part in flight, whatever the part's
//! size, and the bytes never pass through the component.
//!
//! A part counts as accepted only once its success answer was read to its end: a
//! `200` whose answer breaks off after the headers may not have been stored.
//!
//! A part that fails with a 5xx, 408 or 429, a broken connection or answer, or a
//! stall (no piece taken and no answer for `STALL_TIMEOUT`) is sent again whole, after a
//! capped exponential backoff, up to `max_range_retries` times: a `PUT` cannot be
//! resumed half-way. A 403 fails the transfer with `http-status(403)` at once, as a
//! presigned URL that expired will not get better; so does any other status that
//! is not a success, and a redirect. Each part the store accepted is recorded
//! durably before the next is counted, so a host that restarts sends only the parts
//! that were not ([`super::resume`]). Once every part is accepted the transfer is
//! complete, and carries the source blob.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use url::Url;

use super::rows::{self, PartRow};
use super::{
    ActiveClaim, Failure, PROGRESS_INTERVAL, READ_TIMEOUT, TransferEngine, TransferError, UploadRequest, backoff, blocking, check_key,
    database, egress_error,
};
use crate::blobs::BlobInfo;
use crate::imports::http::request_headers;

/// Most parts an upload may have (from the WIT; S3's limit too).
pub const MAX_UPLOAD_PARTS: usize = 10_000;
/// Bytes read from the blob's file per piece of a part's body. The HTTP client
/// queues a few pieces per connection (up to about 400 KiB) before it waits for
/// the socket, so an upload holds about `concurrency` x 3 pieces, 3 MiB at the
/// defaults.
const CHUNK: usize = 256 * 1024;
/// A part that takes no piece and gets no answer for this long counts as failed.
const STALL_TIMEOUT: Duration = READ_TIMEOUT;
/// The longest answer to a part's `PUT` that is read (and discarded).
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Headers the caller may not give: the engine sends the blob's bytes as they are
/// stored (no `content-encoding`) and does not wait for `100 Continue`.
const UPLOAD_ENGINE_HEADERS: &[&str] = &["content-encoding", "expect"];

impl TransferEngine {
    /// Checks an upload request before anything is recorded; returns the blob to send.
    pub(super) fn validate_upload(&self, req: &UploadRequest) -> Result<BlobInfo, TransferError> {
        check_key(&req.key)?;
        if req.parts.len() > MAX_UPLOAD_PARTS {
            return Err(TransferError::InvalidRequest(format!("{} parts is over the limit of {MAX_UPLOAD_PARTS}", req.parts.len())));
        }
        request_headers(&req.headers, UPLOAD_ENGINE_HEADERS).map_err(TransferError::InvalidRequest)?;
        for (number, part) in req.parts.iter().enumerate() {
            self.inner.egress.check_url(&part.url).map_err(|e| in_part(number, egress_error(e)))?;
        }
        let blob = self.inner.blobs.info(&req.blob_id).map_err(database)?;
        let Some(blob) = blob.filter(|b| self.inner.blobs.path(&b.id).is_some()) else {
            return Err(TransferError::InvalidRequest(format!("blob {:?} is not in the blob store", req.blob_id)));
        };
        let sum = req.parts.iter().try_fold(0u64, |sum, part| sum.checked_add(part.size));
        if sum != Some(blob.size) {
            let sum = sum.map_or_else(|| "more than 2^64".to_string(), |sum| sum.to_string());
            return Err(TransferError::InvalidRequest(format!("the parts add up to {sum} bytes, the blob has {}", blob.size)));
        }
        Ok(blob)
    }

    /// Runs the upload under `key` (as recorded) in a task, unless this process
    /// already runs it.
    pub(super) fn spawn_upload(&self, key: String) {
        let Some(claim) = ActiveClaim::take(&self.inner, &key) else { return };
        let engine = self.clone();
        tokio::spawn(async move {
            let _claim = claim;
            let outcome = engine.run_upload(&key).await;
            if let Err(e) = &outcome {
                tracing::warn!(%key, error = %e, "upload failed");
            }
            engine.record_outcome(&key, outcome);
        });
    }

    /// Sends the parts not yet accepted, checking again what the request was
    /// checked for (a restarted host may have a new allowlist, the blob may be gone),
    /// while a separate task records progress.
    async fn run_upload(&self, key: &str) -> Result<BlobInfo, TransferError> {
        let plan = rows::upload_plan(&self.inner.db, key)?
            .ok_or_else(|| TransferError::Io(format!("upload {key} is not running")))?;
        let headers: Vec<(String, String)> = serde_json::from_str(&plan.headers)
            .map_err(|e| TransferError::Io(format!("stored headers are unreadable: {e}")))?;
        let headers = request_headers(&headers, UPLOAD_ENGINE_HEADERS).map_err(TransferError::InvalidRequest)?;
        let blob = self.inner.blobs.info(&plan.blob_id).map_err(database)?;
        let (Some(blob), Some(path)) = (blob, self.inner.blobs.path(&plan.blob_id)) else {
            return Err(TransferError::Io(format!("blob {} is no longer in the blob store", plan.blob_id)));
        };
        let mut pending = Vec::new();
        for part in plan.parts.iter().filter(|p| !p.done) {
            let url = self.inner.egress.check_url(&part.url).map_err(|e| in_part(part.number as usize, egress_error(e)))?;
            pending.push((part.clone(), url));
        }
        let file = blocking(move || File::open(path)).await?;
        let on_disk = file.metadata().map_err(super::disk)?.len();
        if on_disk != blob.size {
            return Err(TransferError::Io(format!("blob {} is {on_disk} bytes on disk, not {}", blob.id, blob.size)));
        }
        let finished = plan.parts.iter().filter(|p| p.done).map(|p| p.size).sum();
        let upload = Arc::new(PartUpload {
            engine: self.clone(),
            key: key.to_string(),
            file: Arc::new(file),
            headers,
            progress: Progress::new(finished),
        });
        let reporter = tokio::spawn({
            let upload = upload.clone();
            async move { upload.report_progress().await }
        });
        let sent = stream::iter(pending)
            .map(|(part, url)| upload.send(part, url))
            .buffer_unordered(self.inner.config.concurrency)
            .try_for_each(|()| async { Ok(()) })
            .await;
        reporter.abort();
        // Waited for, so that no progress report of this run lands after its outcome.
        let _ = reporter.await;
        sent.map(|()| blob)
    }
}

/// The shared state of one upload's part requests.
struct PartUpload {
    engine: TransferEngine,
    key: String,
    /// The blob's file, read at each part's offsets.
    file: Arc<File>,
    headers: HeaderMap,
    progress: Progress,
}

impl PartUpload {
    /// Sends one part, again after a retryable failure, and records it accepted.
    async fn send(&self, part: PartRow, url: Url) -> Result<(), TransferError> {
        let mut failures = 0;
        loop {
            let (attempt, sent) = self.progress.start_attempt();
            let outcome = self.attempt(&part, &url, sent).await;
            match outcome {
                Ok(()) => {
                    let done = self.progress.end_attempt(attempt, Some(part.size));
                    return rows::record_part_done(&self.engine.inner.db, &self.key, part.number, done).map_err(database);
                }
                Err(failure) => {
                    self.progress.end_attempt(attempt, None);
                    match failure {
                        Failure::Fatal(e) => return Err(in_part(part.number as usize, e)),
                        Failure::Retryable(why) if failures < self.engine.inner.config.max_range_retries => {
                            failures += 1;
                            let host = url.host_str().unwrap_or("");
                            tracing::debug!(key = %self.key, part = part.number, host, failures, %why, "retrying a part");
                            tokio::time::sleep(backoff(failures)).await;
                        }
                        Failure::Retryable(why) => {
                            return Err(TransferError::Io(format!("part {}: {why} (gave up after {failures} retries)", part.number)));
                        }
                    }
                }
            }
        }
    }

    /// One `PUT` of the part, its body streamed from the file; fails as stalled if
    /// neither a piece is taken nor an answer comes for `STALL_TIMEOUT`.
    async fn attempt(&self, part: &PartRow, url: &Url, sent: Arc<AtomicU64>) -> Result<(), Failure> {
        let activity = Activity::new();
        let held = self.engine.inner.upload_held.clone();
        let body = part_body(self.file.clone(), part.first_byte, part.size, sent, activity.clone(), held);
        let request = self
            .engine
            .inner
            .client
            .put(url.clone())
            .headers(self.headers.clone())
            // Set here, the length frames the streamed body (else it would go chunked,
            // which presigned object-store URLs refuse).
            .header(CONTENT_LENGTH, part.size)
            .body(reqwest::Body::wrap_stream(body))
            .send();
        tokio::pin!(request);
        let response = loop {
            tokio::select! {
                response = &mut request => break response.map_err(Failure::from_client)?,
                () = tokio::time::sleep(STALL_TIMEOUT / 8) => {
                    if activity.idle() >= STALL_TIMEOUT {
                        return Err(Failure::Retryable(format!("no progress for {} s", STALL_TIMEOUT.as_secs())));
                    }
                }
            }
        };
        match response.status().as_u16() {
            200..=299 => read_to_end(response).await,
            408 | 429 | 500..=599 => Err(Failure::Retryable(format!("HTTP {}", response.status()))),
            code => Err(Failure::Fatal(TransferError::HttpStatus(code))),
        }
    }

    /// Every second: records the bytes sent so far, for the admin view and `status`.
    /// Runs until aborted.
    async fn report_progress(&self) {
        let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = rows::record_progress(&self.engine.inner.db, &self.key, self.progress.done()) {
                tracing::warn!(key = %self.key, error = %e, "recording an upload's progress failed");
            }
        }
    }
}

/// Reads a success answer to its end, discarding it. A store writes the status
/// line before it has finished with the part, so a `200` whose answer breaks off
/// (the connection cut, fewer bytes than its `Content-Length`) says nothing about
/// whether the part was stored: only a whole answer counts the part as accepted.
/// A broken one is retryable like any broken connection; a stalled one ends with
/// the client's read timeout (`READ_TIMEOUT`, the stall timeout too).
async fn read_to_end(mut response: reqwest::Response) -> Result<(), Failure> {
    let mut read = 0;
    while let Some(chunk) = response.chunk().await.map_err(broken_answer)? {
        read += chunk.len();
        // Part answers are empty or a few hundred bytes of XML: one that goes on and
        // on is not a store's answer, and must not hold the part forever.
        if read > MAX_ANSWER_BYTES {
            return Err(Failure::Retryable(format!("the answer went on past {MAX_ANSWER_BYTES} bytes")));
        }
    }
    Ok(())
}

/// A success answer broken off while being read.
fn broken_answer(e: reqwest::Error) -> Failure {
    match Failure::from_client(e) {
        Failure::Retryable(why) => Failure::Retryable(format!("the answer broke off: {why}")),
        fatal => fatal,
    }
}

/// A part's bytes `first_byte..first_byte + size` of `file`, read a chunk at a time
/// as the connection asks for the next one. Each chunk read counts in `sent` and
/// as activity, and in `held` until the client lets go of it.
fn part_body(
    file: Arc<File>,
    first_byte: u64,
    size: u64,
    sent: Arc<AtomicU64>,
    activity: Activity,
    held: Arc<HeldBytes>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    stream::try_unfold(0u64, move |pos| {
        let (file, sent, activity, held) = (file.clone(), sent.clone(), activity.clone(), held.clone());
        async move {
            if pos >= size {
                return Ok(None);
            }
            let n = (size - pos).min(CHUNK as u64) as usize;
            let offset = first_byte + pos;
            let read = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0; n];
                file.read_exact_at(&mut chunk, offset).map(|()| chunk)
            });
            let chunk = read.await.map_err(io::Error::other)??;
            sent.fetch_add(n as u64, Ordering::Relaxed);
            activity.touch();
            Ok(Some((Bytes::from_owner(Held::new(chunk, held.clone())), pos + n as u64)))
        }
    })
}

/// The bytes of part bodies read from disk and not yet let go of by the HTTP
/// client, across the engine's uploads, and the most there ever were: what
/// uploading costs in memory, which must not grow with the parts.
#[derive(Default)]
pub(super) struct HeldBytes {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl HeldBytes {
    /// The most bytes held at once so far (the tests bound it).
    #[cfg(test)]
    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// A chunk of a part's body, counted in its engine's [`HeldBytes`] while it lives.
struct Held {
    chunk: Vec<u8>,
    held: Arc<HeldBytes>,
}

impl Held {
    fn new(chunk: Vec<u8>, held: Arc<HeldBytes>) -> Held {
        let now = held.now.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
        held.peak.fetch_max(now, Ordering::Relaxed);
        Held { chunk, held }
    }
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.chunk
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.now.fetch_sub(self.chunk.len(), Ordering::Relaxed);
    }
}

/// When a part's attempt last made progress.
#[derive(Clone)]
struct Activity(Arc<(Instant, AtomicU64)>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new((Instant::now(), AtomicU64::new(0))))
    }

    fn touch(&self) {
        self.0.1.store(self.0.0.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last progress (or the start).
    fn idle(&self) -> Duration {
        self.0.0.elapsed().saturating_sub(Duration::from_millis(self.0.1.load(Ordering::Relaxed)))
    }
}

/// An upload's bytes sent: the parts accepted, plus what the attempts in flight
/// have sent. An attempt that fails stops counting (its part is sent again whole),
/// so the figure may step back, but never below the parts accepted.
struct Progress(Mutex<ProgressState>);

struct ProgressState {
    finished: u64,
    next_attempt: u64,
    in_flight: HashMap<u64, Arc<AtomicU64>>,
}

impl Progress {
    fn new(finished: u64) -> Progress {
        Progress(Mutex::new(ProgressState { finished, next_attempt: 0, in_flight: HashMap::new() }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new attempt's id and the counter its body adds to.
    fn start_attempt(&self) -> (u64, Arc<AtomicU64>) {
        let mut state = self.lock();
        let id = state.next_attempt;
        state.next_attempt += 1;
        let sent = Arc::new(AtomicU64::new(0));
        state.in_flight.insert(id, sent.clone());
        (id, sent)
    }

    /// Ends an attempt, `accepted` with its part's size if the part was; returns the
    /// bytes sent then. Its counter no longer counts, even if a body the client
    /// still holds reads on.
    fn end_attempt(&self, id: u64, accepted: Option<u64>) -> u64 {
        let mut state = self.lock();
        state.in_flight.remove(&id);
        state.finished += accepted.unwrap_or(0);
        state.finished + state.in_flight.values().map(|sent| sent.load(Ordering::Relaxed)).sum::<u64>()
    }

    fn done(&self) -> u64 {
        let state = self.lock();
        state.finished + state.in_flight.values().map(|sent| sent.load(Ordering::Relaxed)).sum::<u64>()
    }
}

/// Names the part an error is about; the URL stays out, as it carries a signature.
fn in_part(number: usize, e: TransferError) -> TransferError {
    match e {
        TransferError::Denied(why) => TransferError::Denied(format!("part {number}: {why}")),
        TransferError::InvalidRequest(why) => TransferError::InvalidRequest(format!("part {number}: {why}")),
        TransferError::Io(why) => TransferError::Io(format!("part {number}: {why}")),
        other => other,
    }
}

#[cfg(test)]
mod tests;
