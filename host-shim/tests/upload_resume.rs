//! Sending a DAM version to Frame.io for review survives the host dying mid-upload
//! and Frame.io's storage failing parts, on both API generations.
//!
//! The host runs as a child process so that it can be SIGKILLed. Its document's
//! version is generated content written straight into its blob store (the harness's
//! `seed_document`), and the simulator cuts files into small parts, so a few MiB
//! make dozens of part PUTs.
//!
//! ```sh
//! cargo xtask build
//! cargo test -p host-shim --test upload_resume -- --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{Api, Content, SimClient, SimOptions, Simulator};
use host_shim::harness::child::{ChildHost, ChildOptions};
use host_shim::harness::fixture::Fixture;
use host_shim::harness::{AdminClient, SeededDocument, seed_document};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The simulator's part size: small, so that a few MiB make many parts.
const PART: u64 = 256 << 10;
/// Part PUTs the host keeps in flight (`[transfer] concurrency`, default 4). A part
/// whose body was already in the simulator's socket when the host died is still
/// taken after the kill, and counts there, on top of the parts sent again.
const IN_FLIGHT: u64 = 4;
/// How long a send may take, restarts included.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The host is killed once a quarter to three quarters of the parts are accepted;
/// after the restart only the parts it had not recorded as accepted go again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_upload_sends_only_the_unfinished_parts_again() {
    for api in [Generation::V2, Generation::V4] {
        killed_mid_upload(Fixture::of(api)).await.unwrap_or_else(|e| panic!("{}: {e:#}", api.name()));
    }
}

/// Part PUTs answered 500 or 503 are sent again until the file is whole: Frame.io
/// ends up with exactly the DAM's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_part_uploads_end_in_a_byte_identical_file() {
    // The host gives a part up after 5 retries. At 15% per attempt, six failures in
    // a row for one of 48 parts is about a 1-in-2000 run.
    let faults = json!({ "seed": 20240611, "upload": { "server_error": 0.15 } });
    for api in [Generation::V2, Generation::V4] {
        through_part_faults(Fixture::of(api), &faults).await.unwrap_or_else(|e| panic!("{}: {e:#}", api.name()));
    }
}

/// Part PUTs cut off after the simulator read the whole body and sent `200` and its
/// headers (the part was not stored, and the client cannot know it was) must be sent
/// again too, as must 500s and 503s: Frame.io ends up with exactly the DAM's bytes.
/// The host counts a part only once its answer was read to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_cut_part_uploads_end_in_a_byte_identical_file() {
    // At 8% + 8% per attempt, six failures in a row for one of 48 parts is about a
    // 1-in-2000 run.
    let faults = json!({ "seed": 20240611, "upload": { "server_error": 0.08, "cut": { "rate": 0.08, "after_bytes": 0 } } });
    for api in [Generation::V2, Generation::V4] {
        through_part_faults(Fixture::of(api), &faults).await.unwrap_or_else(|e| panic!("{}: {e:#}", api.name()));
    }
}

async fn killed_mid_upload(fx: &'static Fixture) -> anyhow::Result<()> {
    let started = Instant::now();
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), sim_options(), ([127, 0, 0, 1], 0).into()).await?;
    let control = SimClient::new(sim.base_url())?;
    let scratch = tempfile::tempdir()?;
    // 32 parts, the last one short; each PUT answered after 250 ms, 4 at a time:
    // about 2 s of upload, so the kill has a wide window to land in.
    let size = 32 * PART - 1000;
    let total_parts = size.div_ceil(PART);
    let key = format!("upload-resume-{}", fx.api.name());
    let title = format!("{key}.mov");
    let data = scratch.path().join("data");
    let seeded = seed_document(&data, "/Resume", &title, &key, size)?;
    let mut host = start_host(&data, &sim, fx.api).await?;
    let binding_id = connect_and_bind(&host.admin, fx, &seeded).await?;
    control.set_faults(&serde_json::from_value(json!({ "upload": { "latency": { "rate": 1.0, "delay_ms": 250 } } }))?).await?;

    let job_key = send_for_review(&host.admin, &seeded, &binding_id).await?;
    let accepted = wait_for_upload_progress(&host.admin, size / 4, size * 3 / 4).await?;
    host.kill();
    let asked_before = part_requests(&control).await?;
    let left = total_parts - accepted.div_ceil(PART);
    host.restart().await?;
    let job = host.admin.wait_for_job(&job_key, JOB_TIMEOUT).await?;
    anyhow::ensure!(job.state == "done", "the send failed after the restart: {:?}", job.result_text);
    let asked_after = part_requests(&control).await? - asked_before;

    let file_id = check_frameio_file(&host.admin, &sim, &control, fx, &seeded, &key, &title).await?;
    println!(
        "{}: killed with {accepted} of {size} bytes accepted ({left} of {total_parts} parts left); {asked_after} part PUTs after \
         the restart; file {file_id}; in {:.1} s",
        fx.api.name(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        asked_after <= left + IN_FLIGHT,
        "{asked_after} part PUTs after the restart, but only {left} parts were unfinished (plus {IN_FLIGHT} in flight)"
    );
    anyhow::ensure!(asked_after >= 1, "nothing was sent after the restart, yet {left} parts were unfinished");
    host.kill();
    sim.shutdown().await;
    Ok(())
}

async fn through_part_faults(fx: &'static Fixture, faults: &Value) -> anyhow::Result<()> {
    let started = Instant::now();
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), sim_options(), ([127, 0, 0, 1], 0).into()).await?;
    let control = SimClient::new(sim.base_url())?;
    let scratch = tempfile::tempdir()?;
    let size = 48 * PART - 777;
    let key = format!("upload-faults-{}", fx.api.name());
    let title = format!("{key}.mov");
    let data = scratch.path().join("data");
    let seeded = seed_document(&data, "/Faults", &title, &key, size)?;
    let host = start_host(&data, &sim, fx.api).await?;
    let binding_id = connect_and_bind(&host.admin, fx, &seeded).await?;
    // A fixed seed draws the same faults for the same sequence of requests.
    control.set_faults(&serde_json::from_value(faults.clone())?).await?;

    let job_key = send_for_review(&host.admin, &seeded, &binding_id).await?;
    // Checked as soon as the host's transfer ends, rather than through the job: a
    // part the host wrongly counts as accepted leaves Frame.io's file unfinished,
    // which the job only gives up on a minute later.
    let transfer = wait_for_upload_end(&host.admin).await?;
    let injected = control.fault_counts().await?.upload;
    anyhow::ensure!(transfer["state"] == "complete", "the upload failed: {transfer} (faults injected: {injected:?})");
    let named = files_named(&control, &sim.base_url(), fx, &title).await?;
    anyhow::ensure!(named.len() == 1, "Frame.io files named {title}: {named:?}");
    if let Err(e) = control.content_hash(&named[0]).await {
        bail!(
            "the host's upload is complete but Frame.io's file is not ({e:#}): a part was counted as accepted that Frame.io \
             did not store (faults injected: {injected:?})"
        );
    }
    let job = host.admin.wait_for_job(&job_key, JOB_TIMEOUT).await?;
    anyhow::ensure!(job.state == "done", "the send failed: {:?} (faults injected: {injected:?})", job.result_text);
    let file_id = check_frameio_file(&host.admin, &sim, &control, fx, &seeded, &key, &title).await?;
    let asked = part_requests(&control).await?;
    println!(
        "{}: {} parts, faults injected {injected:?}, {asked} part PUTs reached the part handler; file {file_id}; in {:.1} s",
        fx.api.name(),
        size.div_ceil(PART),
        started.elapsed().as_secs_f64()
    );
    let wanted = |rate: &Value| rate.as_f64().unwrap_or(0.0) > 0.0;
    let upload_plan = &faults["upload"];
    anyhow::ensure!(!wanted(&upload_plan["server_error"]) || injected.server_errors > 0, "no server error was injected: {injected:?}");
    anyhow::ensure!(!wanted(&upload_plan["cut"]["rate"]) || injected.cut > 0, "no part answer was cut: {injected:?}");
    host.stop();
    sim.shutdown().await;
    Ok(())
}

/// Waits until the host's upload is no longer running; returns its row.
async fn wait_for_upload_end(admin: &AdminClient) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let transfers = admin.admin_ok(reqwest::Method::GET, "/transfers", None).await?["transfers"].take();
        let upload = transfers.as_array().into_iter().flatten().find(|t| t["kind"] == "upload").cloned();
        if let Some(upload) = upload.filter(|u| u["state"] != "running") {
            return Ok(upload);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the upload did not end within 30 s")
}

fn sim_options() -> SimOptions {
    SimOptions { upload_part_size: PART, ..SimOptions::default() }
}

/// The host as a child process of this test, so that it can be SIGKILLed.
async fn start_host(data: &Path, sim: &Simulator, api: Generation) -> anyhow::Result<ChildHost> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("target/wasm32-wasip2/wasm/frameio_connector.wasm");
    anyhow::ensure!(component.exists(), "{} is missing: run `cargo xtask build` first", component.display());
    ChildHost::start(ChildOptions {
        binary: env!("CARGO_BIN_EXE_host-shim").into(),
        data_dir: data.to_path_buf(),
        component,
        cache_dir: root.join("target/component-cache"),
        sim_base: sim.base_url(),
        range_size: None,
        checkpoint_bytes: None,
        rust_log: Some("info,host_shim=debug".into()),
        server_settings: Vec::new(),
        open_files_limit: None,
        api,
    })
    .await
}

/// Connects Dana and binds the seeded document's folder to the fixture's project;
/// returns the binding's id.
async fn connect_and_bind(admin: &AdminClient, fx: &Fixture, seeded: &SeededDocument) -> anyhow::Result<String> {
    admin.connect("dana").await?;
    let bound = admin.bind("dana", &seeded.folder_id, fx.account, fx.project, "Upload test import").await?;
    anyhow::ensure!(bound.status == 201, "bind: {} {}", bound.status, bound.body);
    Ok(bound.body["id"].as_str().context("binding id")?.to_string())
}

/// Sends the document's newest version for review to the binding's project; the job's key.
async fn send_for_review(admin: &AdminClient, seeded: &SeededDocument, binding_id: &str) -> anyhow::Result<String> {
    let body = json!({ "user": "dana", "binding_id": binding_id, "reviewers": [], "description": "upload test" });
    let answer = admin.admin(reqwest::Method::POST, &format!("/documents/{}/review", seeded.document_id), Some(body)).await?;
    anyhow::ensure!(answer.status == 202, "send for review: {} {}", answer.status, answer.body);
    Ok(answer.body["job_key"].as_str().context("job_key")?.to_string())
}

/// Waits until the host's upload has between `from` and `to` bytes of parts
/// accepted; returns that figure.
async fn wait_for_upload_progress(admin: &AdminClient, from: u64, to: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let transfers = admin.admin_ok(reqwest::Method::GET, "/transfers", None).await?["transfers"].take();
        let upload = transfers.as_array().into_iter().flatten().find(|t| t["kind"] == "upload");
        if let Some(upload) = upload {
            let accepted = upload["checkpoint"].as_u64().unwrap_or(0);
            if upload["state"] != "running" || accepted > to {
                bail!("the upload got past {to} bytes before it could be killed: {upload}");
            }
            if accepted >= from {
                return Ok(accepted);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the upload did not reach {from} bytes within 30 s")
}

/// Part PUTs that reached the simulator's part handler (faulted ones do not).
async fn part_requests(control: &SimClient) -> anyhow::Result<u64> {
    control.stats().await?["upload_part_requests"].as_u64().context("no upload_part_requests in /_sim/stats")
}

/// Checks that Frame.io holds exactly one file named `title` in the project's root,
/// the one the document links to, with exactly the seeded bytes; returns its id.
async fn check_frameio_file(
    admin: &AdminClient,
    sim: &Simulator,
    control: &SimClient,
    fx: &Fixture,
    seeded: &SeededDocument,
    key: &str,
    title: &str,
) -> anyhow::Result<String> {
    let document = admin.document(&seeded.document_id).await?;
    let file_id = document["properties"]["frameio.review-file-id"].as_str().with_context(|| format!("no review file: {document}"))?.to_string();
    let stored = control.content_hash(&file_id).await?;
    let expected_sha256 = hex::encode(Sha256::digest(generated(key, seeded.blob.size)));
    anyhow::ensure!(stored["uploaded"] == true, "not an uploaded file: {stored}");
    anyhow::ensure!(stored["size"] == seeded.blob.size, "size: {stored}, expected {}", seeded.blob.size);
    anyhow::ensure!(stored["xx_hash"] == seeded.blob.xxhash64.as_str(), "xxHash64: {stored}, expected {}", seeded.blob.xxhash64);
    anyhow::ensure!(stored["sha256"] == expected_sha256.as_str(), "SHA-256: {stored}, expected {expected_sha256}");

    let named = files_named(control, &sim.base_url(), fx, title).await?;
    anyhow::ensure!(named == [file_id.clone()], "Frame.io files named {title}: {named:?}, expected only {file_id}");
    Ok(file_id)
}

/// The seeded content, generated again.
fn generated(key: &str, size: u64) -> Vec<u8> {
    let mut bytes = vec![0; size as usize];
    Content::new(key, size).fill(0, &mut bytes);
    bytes
}

/// The ids of the files named `name` in the fixture project's root, through the
/// generation's own API.
async fn files_named(control: &SimClient, base: &str, fx: &Fixture, name: &str) -> anyhow::Result<Vec<String>> {
    let api = if fx.api == Generation::V4 { Api::V4 } else { Api::V2 };
    let token = control.token(fx.consenting_user, api).await?.access_token;
    let url = match fx.api {
        Generation::V2 => format!("{base}/v2/assets/{}/children?page_size=100", fx.root),
        Generation::V4 => format!("{base}/v4/accounts/{}/folders/{}/children?page_size=100", fx.account, fx.root),
    };
    let http = reqwest::Client::builder().no_proxy().build()?;
    let listed: Value = http.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    let list = if listed.is_array() { &listed } else { &listed["data"] };
    Ok(list.as_array().into_iter().flatten().filter(|a| a["name"] == name).filter_map(|a| a["id"].as_str().map(str::to_string)).collect())
}
