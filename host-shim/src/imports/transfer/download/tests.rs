//! The download tests, against a media source served on loopback.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use rusqlite::{OptionalExtension, params};
use xxhash_rust::xxh64::xxh64;

use super::super::staging::BLOCK;
use super::super::testing::{Fixture, RANGE, content, fixture, fixture_with, loopback};
use super::super::{TransferConfig, TransferStatus};
use super::*;
use crate::db::Page;
use crate::imports::http::EgressPolicy;
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

fn request(key: &str, addr: SocketAddr, body: &[u8]) -> DownloadRequest {
    DownloadRequest {
        key: key.into(),
        url: format!("http://{addr}/media"),
        headers: vec![("x-request-id".into(), "t".into())],
        expected_size: body.len() as u64,
        expected_xxhash64: Some(format!("{:016x}", xxh64(body, 0))),
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
