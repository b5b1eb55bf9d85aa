//! A download's byte ranges: parallel ranged `GET`s, each streamed to its offset in
//! the staging file and reported to the hasher, and retried from where it stopped.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, ETAG, HeaderMap, HeaderValue, IF_RANGE, RANGE};
use url::Url;

use super::hashing::HashFeed;
use super::resume::Checkpoint;
use super::staging::{AlignedBuf, BLOCK, StagingFile};
use super::{DownloadRequest, Failure, TransferEngine, TransferError, backoff, blocking, egress_error};
use crate::imports::http::request_headers;

/// Headers the range requests set themselves.
pub(super) const ENGINE_HEADERS: &[&str] = &["range", "if-range", "accept-encoding"];
/// Bytes of a range collected before they are written out: a multiple of the block.
/// Direct writes wait for the disk, so they must be large: in single bench runs
/// (the disk's speed swings a lot), 1 MiB was faster than 256 KiB and than 2 MiB.
const WRITE_BUFFER: usize = 1024 * 1024;

/// The shared state of one transfer's range requests.
pub(super) struct RangeFetch {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    file: Arc<StagingFile>,
    total: u64,
    /// Where the ranges start: 0, or the checkpoint a resumed transfer starts from.
    pub(super) start: u64,
    max_retries: u32,
    /// The first response's strong ETag (or the checkpoint's), sent as `If-Range` by
    /// every later request.
    pub(super) validator: Arc<OnceLock<HeaderValue>>,
    /// Bytes written to the file so far.
    pub(super) done: Arc<AtomicU64>,
    /// Told of every write, to hash the file as it is written.
    hasher: HashFeed,
    /// Write buffers between attempts, so each is allocated once per transfer.
    buffers: Mutex<Vec<AlignedBuf>>,
}

impl RangeFetch {
    pub(super) fn new(
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
    pub(super) async fn all(self, range_size: u64, concurrency: usize) -> Result<(), TransferError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
