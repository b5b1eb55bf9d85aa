//! The upload tests, against an object store's part URLs served on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use xxhash_rust::xxh64::xxh64;

use super::super::testing::{Fixture, content, fixture, fixture_with, loopback};
use super::super::{TransferConfig, TransferStatus, UploadPart};
use super::*;
use crate::db::Page;
use crate::imports::http::EgressPolicy;
use crate::imports::http::tests::serve;

/// One part as the store received it.
#[derive(Clone)]
struct Received {
    body: Vec<u8>,
    headers: AxumHeaders,
}

/// A store taking parts at `PUT /part/{n}`.
#[derive(Clone, Default)]
struct Store {
    /// Requests per part, answered or not.
    hits: Arc<Mutex<HashMap<usize, usize>>>,
    /// Parts taken, by number (the last one taken wins).
    received: Arc<Mutex<HashMap<usize, Received>>>,
    /// How many times each part is answered 503 before it is taken.
    fail_first: Arc<Mutex<HashMap<usize, usize>>>,
    /// Parts answered 403.
    forbidden: Arc<Mutex<Vec<usize>>>,
    /// Parts from this number on are never answered (their body is not read).
    hold_from: Arc<AtomicUsize>,
    /// Pause between the body's frames, to make the client wait for the socket.
    frame_pause: Arc<AtomicU64>,
    /// How many times each part is read whole, then answered `200` with headers
    /// and a body that breaks off (and not stored).
    cut_first: Arc<Mutex<HashMap<usize, usize>>>,
}

impl Store {
    fn hits(&self, part: usize) -> usize {
        self.hits.lock().unwrap().get(&part).copied().unwrap_or(0)
    }

    fn all_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

async fn store() -> (SocketAddr, Store) {
    let store = Store { hold_from: Arc::new(AtomicUsize::new(usize::MAX)), ..Store::default() };
    let router = Router::new().route("/part/{n}", put(take_part)).with_state(store.clone());
    (serve(router).await, store)
}

async fn take_part(State(store): State<Store>, Path(n): Path<usize>, headers: AxumHeaders, body: Body) -> Response {
    let hit = {
        let mut hits = store.hits.lock().unwrap();
        let hit = hits.entry(n).or_default();
        *hit += 1;
        *hit
    };
    if n >= store.hold_from.load(Ordering::SeqCst) {
        return std::future::pending().await;
    }
    if store.forbidden.lock().unwrap().contains(&n) {
        return StatusCode::FORBIDDEN.into_response();
    }
    if hit <= store.fail_first.lock().unwrap().get(&n).copied().unwrap_or(0) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let pause = Duration::from_millis(store.frame_pause.load(Ordering::SeqCst));
    let mut frames = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(frame) = frames.next().await {
        let Ok(frame) = frame else { return StatusCode::BAD_REQUEST.into_response() };
        bytes.extend_from_slice(&frame);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    if hit <= store.cut_first.lock().unwrap().get(&n).copied().unwrap_or(0) {
        return cut_answer();
    }
    store.received.lock().unwrap().insert(n, Received { body: bytes, headers });
    ([("etag", format!("\"part-{n}\""))], "").into_response()
}

/// A `200` announcing 64 bytes of answer that breaks off after 10: the status and
/// headers go out (the pause lets them be written), then the connection is cut.
fn cut_answer() -> Response {
    let head = futures_util::stream::once(async { Ok::<_, io::Error>(Bytes::from_static(&[b' '; 10])) });
    let cut = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(io::Error::new(io::ErrorKind::ConnectionAborted, "answer cut"))
    });
    let mut response = Response::new(Body::from_stream(head.chain(cut)));
    response.headers_mut().insert("content-length", "64".parse().unwrap());
    response
}

/// A blob of `len` bytes in the fixture's store.
fn blob(f: &Fixture, len: usize) -> (BlobInfo, Bytes) {
    let body = content(len);
    let staged = f.blobs.staging_file("source").unwrap();
    std::fs::write(&staged, &body).unwrap();
    (f.blobs.commit(&staged).unwrap(), body)
}

/// An upload of `blob` in parts of these sizes, to the store at `addr`.
fn request(key: &str, addr: SocketAddr, blob: &BlobInfo, sizes: &[u64]) -> UploadRequest {
    UploadRequest {
        key: key.into(),
        blob_id: blob.id.clone(),
        parts: sizes.iter().enumerate().map(|(n, &size)| UploadPart { url: format!("http://{addr}/part/{n}"), size }).collect(),
        headers: vec![("content-type".into(), "video/mp4".into()), ("x-amz-acl".into(), "private".into())],
    }
}

/// `body` cut into parts of these sizes.
fn cut<'a>(body: &'a [u8], sizes: &[u64]) -> Vec<&'a [u8]> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&size| {
            let part = &body[start..start + size as usize];
            start += size as usize;
            part
        })
        .collect()
}

/// The store took exactly these parts of `body`.
fn assert_parts_are(store: &Store, body: &[u8], sizes: &[u64]) {
    let received = store.received.lock().unwrap();
    assert_eq!(received.len(), sizes.len());
    for (n, expected) in cut(body, sizes).into_iter().enumerate() {
        assert!(received[&n].body == expected, "part {n}'s bytes differ");
    }
}

const SIZES: [u64; 3] = [300_000, 300_000, 123_457];

#[tokio::test]
async fn parts_arrive_with_their_bytes_and_headers() {
    let f = fixture();
    let (source, body) = blob(&f, SIZES.iter().sum::<u64>() as usize);
    let (addr, store) = store().await;
    let started = f.engine.start_upload(request("up", addr, &source, &SIZES)).await.unwrap();
    assert_eq!(started, TransferStatus::Running { done: 0, total: source.size });
    assert_eq!(f.outcome("up").await, TransferStatus::Complete(source.clone()), "complete carries the source blob");
    assert_eq!(source.xxhash64, format!("{:016x}", xxh64(&body, 0)));
    assert_parts_are(&store, &body, &SIZES);
    for (n, size) in SIZES.iter().enumerate() {
        let headers = &store.received.lock().unwrap()[&n].headers;
        assert_eq!(headers["content-length"], size.to_string().as_str(), "part {n}");
        assert!(headers.get("transfer-encoding").is_none(), "part {n} is not chunked");
        assert_eq!((&headers["content-type"], &headers["x-amz-acl"]), (&"video/mp4".parse().unwrap(), &"private".parse().unwrap()));
    }
    // Starting the key again returns its status and sends nothing.
    let again = f.engine.start_upload(request("up", addr, &source, &SIZES)).await.unwrap();
    assert_eq!(again, TransferStatus::Complete(source.clone()));
    assert_eq!(store.all_hits(), 3);
    let row = f.engine.list(&Page::first(10)).unwrap().0.remove(0);
    assert_eq!((row.kind.as_str(), row.state.as_str(), row.done, row.total), ("upload", "complete", source.size, source.size));
    assert_eq!(row.blob_id.as_deref(), Some(source.id.as_str()));
    // The retention sweep takes the parts with their transfer, and leaves the blob.
    assert_eq!(f.engine.prune_finished(i64::MAX).unwrap(), 1);
    let parts: i64 = f.db.with(|c| c.query_row("SELECT COUNT(*) FROM transfer_parts", [], |r| r.get(0))).unwrap();
    assert_eq!(parts, 0);
    assert_eq!(f.blobs.info(&source.id).unwrap(), Some(source));
}

#[tokio::test]
async fn bad_upload_requests_are_refused_up_front() {
    let f = fixture();
    let (source, _) = blob(&f, 1000);
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let good = || request("k", addr, &source, &[600, 400]);
    let invalid = [
        UploadRequest { key: String::new(), ..good() },
        UploadRequest { key: "k".repeat(257), ..good() },
        request("k", addr, &source, &[600, 399]),
        request("k", addr, &source, &[600, 401]),
        request("k", addr, &source, &[]),
        request("k", addr, &source, &[u64::MAX, 1001]),
        UploadRequest { blob_id: "0".repeat(64), ..good() },
        UploadRequest { blob_id: "../x".into(), ..good() },
        request("k", addr, &source, &[0; MAX_UPLOAD_PARTS + 1]),
        UploadRequest { headers: vec![("connection".into(), "close".into())], ..good() },
        UploadRequest { headers: vec![("content-length".into(), "5".into())], ..good() },
        UploadRequest { headers: vec![("expect".into(), "100-continue".into())], ..good() },
        UploadRequest { parts: vec![UploadPart { url: "ftp://127.0.0.1/a".into(), size: 1000 }], ..good() },
    ];
    for req in invalid {
        let shown = format!("{:?} {:?}", req.key, req.parts.iter().take(3).collect::<Vec<_>>());
        let refused = f.engine.start_upload(req).await;
        assert!(matches!(refused, Err(TransferError::InvalidRequest(_))), "{shown}: {refused:?}");
    }
    let elsewhere = UploadRequest { parts: vec![UploadPart { url: "https://media.example.test/a".into(), size: 1000 }], ..good() };
    assert!(matches!(f.engine.start_upload(elsewhere).await, Err(TransferError::Denied(why)) if why.starts_with("part 0")));
    assert_eq!(f.engine.status("k").unwrap(), None, "nothing was recorded");
    let parts: i64 = f.db.with(|c| c.query_row("SELECT COUNT(*) FROM transfer_parts", [], |r| r.get(0))).unwrap();
    assert_eq!(parts, 0);
}

#[tokio::test]
async fn a_part_failing_twice_with_503_is_sent_again() {
    let f = fixture();
    let (source, body) = blob(&f, SIZES.iter().sum::<u64>() as usize);
    let (addr, store) = store().await;
    store.fail_first.lock().unwrap().insert(1, 2);
    f.engine.start_upload(request("up", addr, &source, &SIZES)).await.unwrap();
    assert_eq!(f.outcome("up").await, TransferStatus::Complete(source));
    assert_eq!((store.hits(0), store.hits(1), store.hits(2)), (1, 3, 1));
    assert_parts_are(&store, &body, &SIZES);
}

#[tokio::test]
async fn a_part_whose_200_answer_breaks_off_is_sent_again() {
    let f = fixture();
    let (source, body) = blob(&f, SIZES.iter().sum::<u64>() as usize);
    let (addr, store) = store().await;
    store.cut_first.lock().unwrap().insert(0, 1);
    store.cut_first.lock().unwrap().insert(2, 2);
    f.engine.start_upload(request("up", addr, &source, &SIZES)).await.unwrap();
    assert_eq!(f.outcome("up").await, TransferStatus::Complete(source));
    assert_eq!((store.hits(0), store.hits(1), store.hits(2)), (2, 1, 3), "a cut answer is not an accepted part");
    assert_parts_are(&store, &body, &SIZES);
}

#[tokio::test]
async fn a_part_whose_answers_keep_breaking_off_fails_the_upload() {
    let f = fixture();
    let (source, _) = blob(&f, 1000);
    let (addr, store) = store().await;
    store.cut_first.lock().unwrap().insert(0, usize::MAX);
    f.engine.start_upload(request("up", addr, &source, &[1000])).await.unwrap();
    let outcome = f.outcome("up").await;
    assert!(matches!(&outcome, TransferStatus::Failed(TransferError::Io(why)) if why.contains("broke off")), "{outcome:?}");
    assert_eq!(store.hits(0), 3, "one try and max_range_retries (2) retries");
    let row = f.engine.list(&Page::first(10)).unwrap().0.remove(0);
    assert_eq!(row.checkpoint, 0, "the part was never recorded as accepted");
}

#[tokio::test]
async fn a_part_that_keeps_failing_fails_the_upload() {
    let f = fixture();
    let (source, _) = blob(&f, 1000);
    let (addr, store) = store().await;
    store.fail_first.lock().unwrap().insert(0, usize::MAX);
    f.engine.start_upload(request("up", addr, &source, &[1000])).await.unwrap();
    let outcome = f.outcome("up").await;
    assert!(matches!(&outcome, TransferStatus::Failed(TransferError::Io(why)) if why.contains("503")), "{outcome:?}");
    assert_eq!(store.hits(0), 3, "one try and max_range_retries (2) retries");
}

#[tokio::test]
async fn an_expired_part_url_fails_with_403() {
    let f = fixture();
    let (source, _) = blob(&f, SIZES.iter().sum::<u64>() as usize);
    let (addr, store) = store().await;
    store.forbidden.lock().unwrap().push(2);
    f.engine.start_upload(request("up", addr, &source, &SIZES)).await.unwrap();
    assert_eq!(f.outcome("up").await, TransferStatus::Failed(TransferError::HttpStatus(403)));
    assert_eq!(store.hits(2), 1, "a 403 is not retried");
}

#[tokio::test]
async fn a_restarted_upload_sends_only_its_unfinished_parts() {
    let f = fixture();
    let sizes = [100_000u64, 100_000, 100_000, 100_000, 100_000, 77];
    let (source, body) = blob(&f, sizes.iter().sum::<u64>() as usize);
    let (addr, store) = store().await;
    // The first host takes parts 0 to 3 (4 in flight at a time: 0 to 3 first, then
    // 4 and 5, which the store never answers).
    store.hold_from.store(4, Ordering::SeqCst);
    let config = TransferConfig { concurrency: 4, ..TransferConfig::default() };
    let engine = TransferEngine::new(f.db.clone(), f.blobs.clone(), loopback(), config).unwrap();
    let host = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let req = request("up", addr, &source, &sizes);
    host.spawn(async move { engine.start_upload(req).await.unwrap() });
    let parts_done = || -> i64 {
        f.db.with(|c| c.query_row("SELECT COUNT(*) FROM transfer_parts WHERE transfer_key = 'up' AND done", [], |r| r.get(0)))
            .unwrap()
    };
    for _ in 0..250 {
        if parts_done() == 4 && store.hits(4) + store.hits(5) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(parts_done(), 4, "parts 0 to 3 are recorded");
    // The host stops as a crash would: its tasks are dropped mid-upload.
    host.shutdown_background();
    // The last report may count bytes of parts 4 and 5 that were in flight.
    let status = f.engine.status("up").unwrap();
    assert!(matches!(status, Some(TransferStatus::Running { done, total }) if done >= 400_000 && total == source.size), "{status:?}");
    let row = f.engine.list(&Page::first(10)).unwrap().0.remove(0);
    assert_eq!((row.kind.as_str(), row.checkpoint), ("upload", 400_000), "a restart would not send the finished parts again");
    store.hits.lock().unwrap().clear();
    store.hold_from.store(usize::MAX, Ordering::SeqCst);
    f.engine.resume_unfinished().await;
    assert_eq!(f.outcome("up").await, TransferStatus::Complete(source));
    let mut hits: Vec<(usize, usize)> = store.hits.lock().unwrap().iter().map(|(&n, &h)| (n, h)).collect();
    hits.sort_unstable();
    assert_eq!(hits, [(4, 1), (5, 1)], "only the unfinished parts, once each");
    assert_parts_are(&store, &body, &sizes);
}

#[tokio::test]
async fn a_resumed_upload_whose_host_left_the_allowlist_fails() {
    let f = fixture();
    let (source, _) = blob(&f, 1000);
    let (addr, store) = store().await;
    store.hold_from.store(0, Ordering::SeqCst);
    let config = TransferConfig { concurrency: 1, ..TransferConfig::default() };
    let engine = TransferEngine::new(f.db.clone(), f.blobs.clone(), loopback(), config).unwrap();
    let host = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let req = request("up", addr, &source, &[1000]);
    host.spawn(async move { engine.start_upload(req).await.unwrap() });
    for _ in 0..250 {
        if store.hits(0) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.shutdown_background();
    // The restarted host allows no loopback.
    let stricter = EgressPolicy::new(&["*.frame.io".into()], &[]).unwrap();
    let restarted = TransferEngine::new(f.db.clone(), f.blobs.clone(), stricter, TransferConfig::default()).unwrap();
    restarted.resume_unfinished().await;
    restarted.settled("up").await;
    let status = f.engine.status("up").unwrap();
    assert!(matches!(&status, Some(TransferStatus::Failed(TransferError::Denied(why))) if why.starts_with("part 0")), "{status:?}");
    assert_eq!(store.hits(0), 1, "nothing was sent again");
}

#[tokio::test]
async fn a_part_larger_than_a_chunk_is_streamed_in_bounded_memory() {
    let f = fixture_with(TransferConfig { concurrency: 1, ..TransferConfig::default() }, loopback());
    let size = 16 * CHUNK as u64 + 3;
    let (source, body) = blob(&f, size as usize);
    let (addr, store) = store().await;
    // The store reads slowly, so the client waits for the socket with pieces queued.
    store.frame_pause.store(2, Ordering::SeqCst);
    f.engine.start_upload(request("big", addr, &source, &[size])).await.unwrap();
    assert_eq!(f.outcome("big").await, TransferStatus::Complete(source));
    assert_parts_are(&store, &body, &[size]);
    let peak = f.engine.inner.upload_held.peak();
    assert!(peak > 0, "the body was counted");
    assert!(peak <= 4 * CHUNK, "{peak} bytes were held at once for a {size}-byte part");
}

#[tokio::test]
async fn an_empty_blob_is_one_empty_part() {
    let f = fixture();
    let (source, _) = blob(&f, 0);
    let (addr, store) = store().await;
    f.engine.start_upload(request("empty", addr, &source, &[0])).await.unwrap();
    assert_eq!(f.outcome("empty").await, TransferStatus::Complete(source));
    assert_eq!(store.received.lock().unwrap()[&0].headers["content-length"], "0");
}
