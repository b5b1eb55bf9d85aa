//! Chaos: many pushes, every form submission delivered several times, Frame.io
//! failing on purpose (rate limits, server errors, latency, cut downloads, expired
//! URLs), and the host-shim process killed with SIGKILL and restarted at random
//! moments. At the end every push must have made exactly one document version whose
//! bytes are the original's, and no job may be left unfinished.
//!
//! The run goes through the Legacy API and then through Frame.io V4, one after the
//! other (`CHAOS_API=v2` or `v4` for one). Sized for CI by default; larger runs take
//! environment variables:
//!
//! ```sh
//! cargo xtask build
//! CHAOS_PUSHES=1000 CHAOS_KILLS=40 cargo test -p host-shim --test chaos -- --nocapture
//! ```
//!
//! `CHAOS_SEED` fixes what is drawn (file sizes, redeliveries, the fault plan's seed,
//! the pauses between kills); which requests the faults and kills meet still
//! depends on timing, so a seed reproduces a run's shape, not its every event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_sim::{Content, Faults, SimClient, SimOptions, Simulator};
use futures_util::{StreamExt, stream};
use host_shim::harness::child::{ChildHost, ChildOptions, blob_path};
use frameio_connector::frameio::model::Generation;
use host_shim::harness::AdminClient;
use host_shim::harness::fixture::Fixture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Pushes delivered at the same time, as several Frame.io users would.
const LANES: usize = 8;
/// How long the jobs may take to settle once the last kill is over, through the
/// faults still injected: a step retries through about a minute of failures (two at
/// most), and the reconcile after each restart syncs every linked file. Under the
/// queue's 5-minute lease, so jobs orphaned by a kill must be resumed at restart,
/// not when their lease runs out, for the test to pass.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(240);
/// The hosts' `[transfer] range_size`.
const RANGE_SIZE: u64 = 128 << 10;
/// Deliveries of one click or submission before the test gives up on the host.
const MAX_DELIVERIES: u32 = 200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the run did, for the figures.
#[derive(Default)]
struct Tally {
    clicks: AtomicU64,
    submissions: AtomicU64,
    kills: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_lands_exactly_once_through_faults_and_kills() {
    let apis = match std::env::var("CHAOS_API").as_deref() {
        Ok("v2") => vec![Generation::V2],
        Ok("v4") => vec![Generation::V4],
        _ => vec![Generation::V2, Generation::V4],
    };
    for api in apis {
        chaos_on(Fixture::of(api)).await;
    }
}

async fn chaos_on(fx: &'static Fixture) {
    let pushes = env_or("CHAOS_PUSHES", 200) as usize;
    let max_kills = env_or("CHAOS_KILLS", 10);
    let seed = env_or("CHAOS_SEED", rand::random::<u32>().into());
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    // Tokens that need a refresh every few seconds (the connector refreshes a minute
    // before expiry), so refreshes meet faults and kills too.
    let options = SimOptions { access_token_ttl_secs: 65, ..SimOptions::default() };
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), options, ([127, 0, 0, 1], 0).into()).await.unwrap();
    let control = SimClient::new(sim.base_url()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let host = Arc::new(Mutex::new(start_host(scratch.path(), &sim, fx.api).await.unwrap()));
    let admin = host.lock().await.admin.clone();

    // An administrator's setup, before anything fails.
    admin.connect("dana").await.unwrap();
    let folder = admin.create_folder("/Chaos", "Chaos").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let bound = admin.bind("dana", &folder_id, fx.account, fx.project, "Chaos import").await.unwrap();
    assert_eq!(bound.status, 201, "{}", bound.body);
    let action_id = bound.body["action_id"].as_str().unwrap().to_string();
    let assets = add_assets(&sim, fx, pushes, &mut rng).await.unwrap();

    control.set_faults(&chaos_faults(seed)).await.unwrap();
    let tally = Arc::new(Tally::default());
    let delivering = Arc::new(AtomicBool::new(true));
    let killer = tokio::spawn(kill_at_random(host.clone(), tally.clone(), delivering.clone(), max_kills, seed));

    let redeliveries: Vec<u32> = (0..pushes).map(|_| rng.random_range(0..5)).collect();
    let work = assets.iter().zip(redeliveries).map(|((asset_id, _), extra)| {
        let (control, action_id, tally) = (&control, &action_id, tally.clone());
        async move { push(control, action_id, asset_id, extra, &tally).await }
    });
    let interactions: Vec<String> = stream::iter(work).buffer_unordered(LANES).collect::<Vec<_>>().await;
    delivering.store(false, Ordering::SeqCst);
    killer.await.unwrap();

    let admin = host.lock().await.admin.clone();
    settle(&admin).await.unwrap();
    let push_jobs = jobs_of_kind(&admin, "push").await.unwrap();
    let counts = count_states(&push_jobs);
    let faults = control.fault_counts().await.unwrap();
    control.set_faults(&Faults::default()).await.unwrap();

    let report = check_documents(&admin, &folder_id, &assets, scratch.path()).await.unwrap();
    let failed: Vec<&Value> = push_jobs.iter().filter(|j| j["state"] == "failed").collect();
    let log = {
        let mut host = host.lock().await;
        host.kill();
        std::fs::read_to_string(host.log_path()).unwrap_or_default()
    };
    println!(
        "chaos ({}): seed {seed}, pushes {pushes}, deliveries {} ({} clicks, {} submissions), kills {}, faults injected \
         {faults:?}, jobs {counts}, documents found {}, mismatches {}, duplicates {}, in {:.1} s",
        fx.api.name(),
        tally.clicks.load(Ordering::SeqCst) + tally.submissions.load(Ordering::SeqCst),
        tally.clicks.load(Ordering::SeqCst),
        tally.submissions.load(Ordering::SeqCst),
        tally.kills.load(Ordering::SeqCst),
        report.documents,
        report.mismatches.len(),
        report.duplicates.len(),
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(interactions.len(), pushes);
    assert!(tally.kills.load(Ordering::SeqCst) > 0, "the host was killed at least once");
    assert_eq!((counts["done"].as_u64(), counts["failed"].as_u64()), (Some(pushes as u64), Some(0)), "jobs: {counts}; failed: {failed:?}");
    assert!(report.mismatches.is_empty(), "mismatches: {:?}", report.mismatches);
    assert!(report.duplicates.is_empty(), "duplicates: {:?}", report.duplicates);
    assert_eq!(report.documents, pushes, "one document per pushed asset");
    assert!(faults.rate_limited + faults.server_errors + faults.cut + faults.expired > 0, "faults were injected: {faults:?}");
    for secret in [fx.client_secret, "Bearer ", "refresh_token"] {
        assert!(!log.contains(secret), "the host's log holds {secret:?}");
    }
    sim.shutdown().await;
}

/// A host killed while it imports a large file resumes the transfer from its last
/// checkpoint: after the restart the simulator is asked only for the ranges past it
/// (and those that were in flight), and the document's bytes are the original's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_import_resumes_from_its_checkpoint() {
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into()).await.unwrap();
    let control = SimClient::new(sim.base_url()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let fx = Fixture::of(Generation::V2);
    let mut host = start_host(scratch.path(), &sim, fx.api).await.unwrap();
    let admin = host.admin.clone();
    admin.connect("dana").await.unwrap();
    let folder_id = admin.create_folder("/Resume", "Resume").await.unwrap()["id"].as_str().unwrap().to_string();
    let bound = admin.bind("dana", &folder_id, fx.account, fx.project, "Resume import").await.unwrap();
    let action_id = bound.body["action_id"].as_str().unwrap().to_string();
    // 48 ranges, each answered after 200 ms, 4 at a time: about 2.5 s of transfer.
    let size = 48 * RANGE_SIZE - 1000;
    let asset_id = add_asset(&reqwest::Client::new(), &sim, fx, "camera-original.mov", size).await.unwrap();
    let slow_media = json!({ "media": { "latency": { "rate": 1.0, "delay_ms": 200 } } });
    control.set_faults(&serde_json::from_value(slow_media).unwrap()).await.unwrap();

    push(&control, &action_id, &asset_id, 0, &Tally::default()).await;
    let checkpoint = wait_for_checkpoint(&admin).await.unwrap();
    host.kill();
    let asked_before = media_requests(&control).await;
    host.restart().await.unwrap();
    settle(&host.admin).await.unwrap();
    let counts = count_states(&jobs_of_kind(&host.admin, "push").await.unwrap());
    let asked_after = media_requests(&control).await - asked_before;

    assert_eq!(counts["done"].as_u64(), Some(1), "{counts}");
    let log = std::fs::read_to_string(host.log_path()).unwrap();
    let resumed_from: u64 = log
        .lines()
        .find(|line| line.contains("resuming a transfer from its checkpoint"))
        .and_then(|line| line.split("from=").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no resume was logged: {log}"));
    assert!(resumed_from >= checkpoint, "resumed from {resumed_from}, checkpoint {checkpoint} seen before the kill");
    let left = size.div_ceil(RANGE_SIZE) - resumed_from / RANGE_SIZE;
    // Requests that reached the simulator as the host died are counted after the kill.
    let in_flight = 4;
    assert!(asked_after <= left + in_flight, "{asked_after} ranges asked for after the restart, {left} were left");
    let report = check_documents(&host.admin, &folder_id, &[(asset_id, size)], scratch.path()).await.unwrap();
    assert!(report.mismatches.is_empty() && report.duplicates.is_empty(), "{:?} {:?}", report.mismatches, report.duplicates);
    println!("resume: checkpoint {checkpoint} seen, resumed from {resumed_from}, {asked_after} of {} ranges asked for again", size.div_ceil(RANGE_SIZE));
    host.kill();
    sim.shutdown().await;
}

/// Waits until the host's only transfer has a checkpoint; returns it.
async fn wait_for_checkpoint(admin: &AdminClient) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let transfers = admin.admin_ok(reqwest::Method::GET, "/transfers", None).await?["transfers"].take();
        let checkpoint = transfers[0]["checkpoint"].as_u64().unwrap_or(0);
        if checkpoint > 0 {
            anyhow::ensure!(transfers[0]["state"] == "running", "the transfer ended before the kill: {transfers}");
            return Ok(checkpoint);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no checkpoint within 30 s")
}

/// Media requests the simulator has answered or begun answering.
async fn media_requests(control: &SimClient) -> u64 {
    control.stats().await.unwrap()["media_requests"].as_u64().unwrap()
}

/// The host as a child process of this test, so that it can be SIGKILLed.
async fn start_host(dir: &Path, sim: &Simulator, api: Generation) -> anyhow::Result<ChildHost> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("target/wasm32-wasip2/wasm/frameio_connector.wasm");
    anyhow::ensure!(component.exists(), "{} is missing: run the tests with `cargo xtask test`", component.display());
    ChildHost::start(ChildOptions {
        binary: env!("CARGO_BIN_EXE_host-shim").into(),
        data_dir: dir.join("data"),
        component,
        cache_dir: root.join("target/component-cache"),
        sim_base: sim.base_url(),
        // Several ranges per file, so that cut downloads resume mid-file.
        range_size: Some(RANGE_SIZE),
        // A checkpoint at every range of written prefix, once a second, for the
        // resume test (chaos's transfers mostly end within that second).
        checkpoint_bytes: Some(RANGE_SIZE),
        rust_log: Some("info,host_shim=debug".into()),
        server_settings: Vec::new(),
        open_files_limit: None,
        api,
    })
    .await
}

/// Files of assorted sizes (most span several ranges) in the bound project's root.
async fn add_assets(sim: &Simulator, fx: &Fixture, n: usize, rng: &mut StdRng) -> anyhow::Result<Vec<(String, u64)>> {
    let http = reqwest::Client::new();
    let mut assets = Vec::with_capacity(n);
    for i in 0..n {
        let size = rng.random_range(1_000..1_500_000u64);
        assets.push((add_asset(&http, sim, fx, &format!("chaos-{i:04}.mov"), size).await?, size));
    }
    Ok(assets)
}

/// A file of `size` bytes in the bound project's root; returns its id.
async fn add_asset(http: &reqwest::Client, sim: &Simulator, fx: &Fixture, name: &str, size: u64) -> anyhow::Result<String> {
    let body = json!({ "name": name, "filetype": "video/quicktime", "filesize": size });
    let url = format!("{}/_sim/assets/{}/children", sim.base_url(), fx.root);
    let asset: Value = http.post(url).json(&body).send().await?.error_for_status()?.json().await?;
    Ok(asset["id"].as_str().context("asset id")?.to_string())
}

/// Frame.io at its worst that still lets work through.
fn chaos_faults(seed: u64) -> Faults {
    serde_json::from_value(json!({
        "seed": seed,
        // The same plan for both generations' route classes.
        "api": {
            "asset_read": { "rate_limited": 0.03, "server_error": 0.03, "latency": { "rate": 0.1, "delay_ms": 100 } },
            "file_read": { "rate_limited": 0.03, "server_error": 0.03, "latency": { "rate": 0.1, "delay_ms": 100 } },
            "read": { "server_error": 0.05 },
            "v4_read": { "server_error": 0.05 },
            "write": { "server_error": 0.05 },
            "action_create": { "server_error": 0.05 },
            "v4_delete": { "server_error": 0.05 }
        },
        // A step gives up after eight failed attempts in a row, as it should in a
        // real outage; these rates make that far rarer than one lost push in a run.
        "token": { "server_error": 0.05 },
        "media": {
            "server_error": 0.03,
            "expired": 0.01,
            "cut": { "rate": 0.05, "after_bytes": 50_000 },
            "latency": { "rate": 0.1, "delay_ms": 50 }
        }
    }))
    .expect("a valid fault plan")
}

/// One push as Frame.io and its user make it: a click, answered with the form (the
/// user clicks again until a form comes), then the submission, delivered until the
/// host acknowledges it and then `extra` more times, as Frame.io's retries would.
async fn push(control: &SimClient, action_id: &str, asset_id: &str, extra: u32, tally: &Tally) -> String {
    let mut deliveries = 0;
    let mut deliver = |what: &str| {
        deliveries += 1;
        assert!(deliveries <= MAX_DELIVERIES, "{what} of {asset_id} not acknowledged after {MAX_DELIVERIES} deliveries");
    };
    let interaction = loop {
        deliver("the click");
        tally.clicks.fetch_add(1, Ordering::SeqCst);
        match control.click(action_id, asset_id, None).await {
            Ok(reply) if reply.status == 200 && reply.body["fields"].is_array() => break reply.interaction_id,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut acknowledged = 0;
    while acknowledged <= extra {
        deliver("the submission");
        tally.submissions.fetch_add(1, Ordering::SeqCst);
        let data = json!({ "title": "", "notify": "no" });
        match control.submit(action_id, &interaction, asset_id, None, data).await {
            Ok(reply) if reply.status == 200 && reply.body["title"] == "Asset pushed to the DAM" => acknowledged += 1,
            Ok(reply) if reply.status == 200 => panic!("submission of {asset_id} refused: {}", reply.body),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    interaction
}

/// Kills the host at random moments while pushes are delivered and jobs run, and
/// starts it again after a random pause.
async fn kill_at_random(host: Arc<Mutex<ChildHost>>, tally: Arc<Tally>, delivering: Arc<AtomicBool>, max_kills: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
    while tally.kills.load(Ordering::SeqCst) < max_kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1_200))).await;
        let admin = host.lock().await.admin.clone();
        let busy = delivering.load(Ordering::SeqCst) || job_counts(&admin).await.map_or(1, |(_, unfinished)| unfinished) > 0;
        if !busy {
            return;
        }
        let mut host = host.lock().await;
        host.kill();
        tally.kills.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        host.restart().await.expect("the host comes back after a kill");
    }
}

/// The host's job counts by state, and how many are queued or running.
async fn job_counts(admin: &AdminClient) -> anyhow::Result<(Value, u64)> {
    let jobs = admin.admin_ok(reqwest::Method::GET, "/stats", None).await?["jobs"].clone();
    let unfinished = jobs["queued"].as_u64().unwrap_or(0) + jobs["running"].as_u64().unwrap_or(0);
    Ok((jobs, unfinished))
}

/// Every job of `kind`, following the admin list's pages.
async fn jobs_of_kind(admin: &AdminClient, kind: &str) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    let mut after = None::<String>;
    loop {
        let path = match &after {
            Some(cursor) => format!("/jobs?limit=500&after={cursor}"),
            None => "/jobs?limit=500".to_string(),
        };
        let mut page = admin.admin_ok(reqwest::Method::GET, &path, None).await?;
        let jobs: Vec<Value> = serde_json::from_value(page["jobs"].take())?;
        found.extend(jobs.into_iter().filter(|j| j["kind"] == kind));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(found),
        }
    }
}

/// How many of `jobs` are in each state.
fn count_states(jobs: &[Value]) -> Value {
    let count = |state: &str| jobs.iter().filter(|j| j["state"] == state).count();
    json!({ "done": count("done"), "failed": count("failed"), "queued": count("queued"), "running": count("running") })
}

/// Waits until no job is queued or running; returns the counts by state.
async fn settle(admin: &AdminClient) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let (counts, unfinished) = job_counts(admin).await?;
        if unfinished == 0 {
            return Ok(counts);
        }
        if Instant::now() > deadline {
            let jobs = admin.admin_ok(reqwest::Method::GET, "/jobs?limit=500", None).await?;
            let stuck: Vec<&Value> = jobs["jobs"].as_array().into_iter().flatten().filter(|j| j["state"] != "done").collect();
            bail!("jobs stuck after {SETTLE_TIMEOUT:?}: {counts}; e.g. {stuck:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the folder holds, checked against what was pushed.
struct Report {
    documents: usize,
    mismatches: Vec<String>,
    duplicates: Vec<String>,
}

/// Every pushed asset must be one document with one version whose blob is named by
/// the BLAKE3 hash of the original's bytes, and whose file on disk has those bytes.
async fn check_documents(admin: &AdminClient, folder_id: &str, assets: &[(String, u64)], dir: &Path) -> anyhow::Result<Report> {
    let documents = admin.documents(folder_id).await?;
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in &documents {
        by_key.entry(doc["external_key"].as_str().unwrap_or_default().to_string()).or_default().push(doc.clone());
    }
    let mut report = Report { documents: documents.len(), mismatches: Vec::new(), duplicates: Vec::new() };
    for (asset_id, size) in assets {
        let key = format!("frameio:{asset_id}");
        let Some(docs) = by_key.get(&key) else {
            report.mismatches.push(format!("{asset_id}: no document"));
            continue;
        };
        if docs.len() > 1 || docs[0]["version_count"] != 1 {
            report.duplicates.push(format!("{asset_id}: {} documents, {} versions", docs.len(), docs[0]["version_count"]));
            continue;
        }
        let document = admin.document(docs[0]["id"].as_str().unwrap_or_default()).await?;
        let blob_id = document["versions"][0]["blob_id"].as_str().unwrap_or_default().to_string();
        let expected = expected_blob_id(asset_id, *size);
        if blob_id != expected {
            report.mismatches.push(format!("{asset_id}: blob {blob_id}, expected {expected}"));
            continue;
        }
        let path = blob_path(&dir.join("data"), &blob_id);
        let on_disk = blake3::hash(&std::fs::read(&path).with_context(|| path.display().to_string())?).to_hex().to_string();
        if on_disk != expected {
            report.mismatches.push(format!("{asset_id}: the blob file's bytes hash to {on_disk}"));
        }
    }
    Ok(report)
}

fn expected_blob_id(asset_id: &str, size: u64) -> String {
    let content = Content::new(asset_id, size);
    let mut bytes = vec![0u8; size as usize];
    content.fill(0, &mut bytes);
    blake3::hash(&bytes).to_hex().to_string()
}
