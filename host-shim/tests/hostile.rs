//! Hostile traffic against a real host-shim process: sockets that never send a
//! request, headers and bodies sent and then stalled, more idle connections than
//! the process may open files, a flood of bad signatures, and requests to the admin
//! API from the wrong name, origin, token or content type. The host must close what
//! holds it, keep serving the admin API and signed requests, and change nothing for
//! what it refuses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use frameio_sim::{SimClient, SimOptions, Simulator};
use host_shim::harness::child::{ChildHost, ChildOptions};
use host_shim::harness::fixture;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_MS: u64 = 500;
const IDLE_MS: u64 = 1000;
const BODY_MS: u64 = 800;

struct Setup {
    sim: Simulator,
    host: ChildHost,
    _dir: tempfile::TempDir,
}

async fn start(open_files_limit: Option<u64>) -> Setup {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("target/wasm32-wasip2/wasm/frameio_connector.wasm");
    assert!(component.exists(), "{} is missing: run the tests with `cargo xtask test`", component.display());
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = ChildHost::start(ChildOptions {
        binary: env!("CARGO_BIN_EXE_host-shim").into(),
        data_dir: dir.path().join("data"),
        component,
        cache_dir: root.join("target/component-cache"),
        sim_base: sim.base_url(),
        range_size: None,
        checkpoint_bytes: None,
        rust_log: Some("info".into()),
        server_settings: vec![
            format!("header_read_timeout_ms = {HEADER_MS}"),
            format!("idle_timeout_ms = {IDLE_MS}"),
            format!("body_read_timeout_ms = {BODY_MS}"),
            "failed_verifications_burst = 5".into(),
            "failed_verifications_per_minute = 6".into(),
        ],
        api: frameio_connector::frameio::model::Generation::V2,
        open_files_limit,
    })
    .await
    .unwrap();
    Setup { sim, host, _dir: dir }
}

fn authority(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, started: Instant) -> (String, Duration) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after 10 s"),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

/// A folder bound to Spring Campaign; returns the custom action's id.
async fn bind(host: &ChildHost) -> String {
    host.admin.connect("dana").await.unwrap();
    let folder = host.admin.create_folder("/Hostile", "Hostile").await.unwrap();
    let bound = host.admin.bind("dana", folder["id"].as_str().unwrap(), fixture::REYES_STUDIO, fixture::SPRING_CAMPAIGN, "Hostile import").await.unwrap();
    assert_eq!(bound.status, 201, "{}", bound.body);
    bound.body["action_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn idle_half_sent_and_stalled_connections_are_closed_within_their_timeouts() {
    let setup = start(None).await;
    let public = authority(&setup.host.admin.public_url);
    let admin = authority(&setup.host.admin.admin_url);

    // Never a byte: closed after the idle timeout, on either listener.
    for addr in [&public, &admin] {
        let started = Instant::now();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let (_, after) = until_closed(&mut idle, started).await;
        assert!(after >= Duration::from_millis(IDLE_MS) && after < Duration::from_millis(IDLE_MS + 1500), "{after:?}");
    }

    // Half a header: closed after the header timeout, sooner than an idle one.
    let started = Instant::now();
    let mut half = TcpStream::connect(&admin).await.unwrap();
    half.write_all(b"GET /admin/api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let (_, after) = until_closed(&mut half, started).await;
    assert!(after >= Duration::from_millis(HEADER_MS) && after < Duration::from_millis(IDLE_MS), "{after:?}");

    // A body promised at 200,000 bytes, 10 sent: 408 after the body timeout, then closed.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(&public).await.unwrap();
    let head = format!("POST /frameio/actions/x HTTP/1.1\r\nHost: {public}\r\nContent-Length: 200000\r\n\r\n0123456789");
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (answer, after) = until_closed(&mut stalled, started).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after >= Duration::from_millis(BODY_MS) && after < Duration::from_millis(BODY_MS + 1500), "{after:?}");

    // A kept-alive connection is closed once it has been idle that long after an answer.
    let started = Instant::now();
    let mut kept = TcpStream::connect(&public).await.unwrap();
    kept.write_all(format!("GET /oauth/callback HTTP/1.1\r\nHost: {public}\r\n\r\n").as_bytes()).await.unwrap();
    let (answer, after) = until_closed(&mut kept, started).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(after >= Duration::from_millis(IDLE_MS), "{after:?}");
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn more_idle_connections_than_open_files_leave_the_admin_api_and_signed_clicks_served() {
    // 256 files: the host fits its caps to it (112 public, 16 admin) and keeps the rest.
    let setup = start(Some(256)).await;
    let action_id = bind(&setup.host).await;
    let public = authority(&setup.host.admin.public_url);

    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(&public).await.unwrap());
    }
    // Some of them half-sent a header, as a slow-loris client would.
    for stream in idle.iter_mut().step_by(3) {
        let _ = stream.write_all(b"POST /frameio/actions/x HTTP/1.1\r\nHost: a\r\n").await;
    }

    let stats = setup.host.admin.admin(Method::GET, "/stats", None).await.unwrap();
    assert_eq!(stats.status, 200, "{}", stats.body);
    let control = SimClient::new(setup.sim.base_url()).unwrap();
    let form = control.click(&action_id, fixture::INTERVIEW_MP4, Some(fixture::SAM)).await.unwrap();
    assert_eq!(form.status, 200, "a signed click is still answered: {}", form.body);
    assert!(form.body["fields"].is_array(), "{}", form.body);
    let log = std::fs::read_to_string(setup.host.log_path()).unwrap();
    assert!(log.contains("connection cap reached"), "the cap is logged:\n{log}");
    drop(idle);
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn a_source_failing_signatures_is_held_back_and_others_are_not() {
    let setup = start(None).await;
    let action_id = bind(&setup.host).await;
    let bindings = setup.host.admin.admin_ok(Method::GET, "/bindings", None).await.unwrap();
    let binding = bindings[0]["id"].as_str().unwrap();
    let url = format!("{}/frameio/actions/{binding}", setup.host.admin.public_url);
    // The attacker sends from another loopback address than the simulator.
    let attacker = reqwest::Client::builder().no_proxy().local_address("127.0.0.3".parse().ok()).build().unwrap();
    let forged = |ts: u64| {
        attacker
            .post(&url)
            .header("x-frameio-request-timestamp", ts.to_string())
            .header("x-frameio-signature", format!("v0={}", "0".repeat(64)))
            .body(r#"{"action_id":"a","interaction_id":"b"}"#)
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(forged(now).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    let held = forged(now).send().await.unwrap();
    let retry_after: u64 = held.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");

    let control = SimClient::new(setup.sim.base_url()).unwrap();
    let form = control.click(&action_id, fixture::INTERVIEW_MP4, Some(fixture::SAM)).await.unwrap();
    assert_eq!(form.status, 200, "Frame.io's own requests are not held back: {}", form.body);
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_refuses_strangers_and_changes_nothing() {
    let setup = start(None).await;
    let admin_url = format!("{}/admin/api", setup.host.admin.admin_url);
    let port = setup.host.admin.admin_url.rsplit(':').next().unwrap().to_string();
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let folders = || async { setup.host.admin.admin_ok(Method::GET, "/folders", None).await.unwrap() };
    let before = folders().await;

    // No token; a wrong one.
    let answer = plain.get(format!("{admin_url}/stats")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().contains_key("www-authenticate"));
    let answer = plain.get(format!("{admin_url}/stats")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(answer.status(), 401);

    // A DNS-rebound name, with a correct token even.
    let token = setup.host.admin.token();
    let rebound = plain
        .get(format!("{admin_url}/folders"))
        .header("host", format!("attacker.example:{port}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    // A cross-site form post: foreign origin, form content type.
    let form_post = plain
        .post(format!("{admin_url}/folders"))
        .header("origin", "https://attacker.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("path=%2Fx&title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form_post.status(), 403);

    // text/plain with the token (what a form with enctype=text/plain sends).
    for path in ["/folders", "/users/dana/connect", "/users/dana/refresh"] {
        let answer = plain
            .post(format!("{admin_url}{path}"))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(r#"{"path":"/x","title":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 415, "{path}");
    }
    assert_eq!(folders().await, before, "nothing was created");

    // An unknown user's connection is not found; a malformed chunked body is malformed.
    let unknown = setup.host.admin.admin(Method::GET, "/users/nobody/connection", None).await.unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let public = authority(&setup.host.admin.public_url);
    let mut stream = TcpStream::connect(&public).await.unwrap();
    let chunked = format!("POST /frameio/actions/x HTTP/1.1\r\nHost: {public}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n");
    stream.write_all(chunked.as_bytes()).await.unwrap();
    let (answer, _) = until_closed(&mut stream, Instant::now()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("malformed request body"), "{answer}");
    setup.sim.shutdown().await;
}

#[tokio::test]
async fn a_non_loopback_admin_listener_without_a_chosen_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n[server]\nadmin_listen = \"0.0.0.0:0\"\npublic_listen = \"127.0.0.1:0\"\n", dir.path()))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-shim"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("FRAMEIO_DAM_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not loopback") && stderr.contains("admin_token"), "{stderr}");
}
