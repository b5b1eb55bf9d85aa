//! Comment sync latency, both ways, on both API generations: how long a reviewer's
//! comment takes to appear in the DAM (simulator comment, signed webhook delivery,
//! the host's queue, the component's sync against Frame.io's API, the repository),
//! and how long a DAM user's comment takes to appear in Frame.io (admin API, the
//! component's dam-events, the queue, the post). Comments are made one at a time and
//! each is waited for with tight polling, so the figures are latencies, not queueing.
//!
//! The comments are spread over several linked files, as on a real project: each
//! sync reads its file's whole thread, so piling them all on one file would measure
//! the thread's length rather than the sync.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{Api, Seed, SimClient, SimOptions, Simulator};
use serde_json::{Value, json};

use super::child_options;
use crate::harness::AdminClient;
use crate::harness::child::ChildHost;
use crate::harness::fixture::Fixture;

/// Linked files the comments are spread over.
const FILES: usize = 20;
/// How often the DAM or Frame.io is looked at while waiting.
const POLL: Duration = Duration::from_millis(2);
/// How long one comment may take before the run is abandoned.
const PATIENCE: Duration = Duration::from_secs(60);

/// One generation's figures.
pub struct SyncFigures {
    pub api: &'static str,
    pub comments: usize,
    /// Reviewer's comment in the simulator to the comment in the DAM.
    pub to_dam: Latency,
    /// DAM comment through the admin API to the comment in Frame.io.
    pub to_frameio: Latency,
}

/// Milliseconds.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut times: Vec<f64>) -> Latency {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Latency { p50_ms: at(0.50), p99_ms: at(0.99), max_ms: times[times.len() - 1] }
    }
}

/// Measures `comments` comments each way on each generation, each on a fresh
/// host-shim child.
pub async fn measure(component: &Path, work: &Path, comments: usize) -> anyhow::Result<Vec<SyncFigures>> {
    anyhow::ensure!(comments > 0, "--sync-comments must be at least 1");
    let sim = Simulator::start(Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    super::warm_compile_cache(&sim, component, work).await?;
    let mut figures = Vec::new();
    for api in [Generation::V2, Generation::V4] {
        let dir = work.join(format!("host-sync-{}", api.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut options = child_options(&sim, component, work, &dir)?;
        options.api = api;
        let host = ChildHost::start(options).await?;
        let measured = measure_one(&sim, &host, Fixture::of(api), comments).await;
        host.stop();
        std::fs::remove_dir_all(&dir)?;
        figures.push(measured?);
    }
    sim.shutdown().await;
    Ok(figures)
}

async fn measure_one(sim: &Simulator, host: &ChildHost, fx: &'static Fixture, comments: usize) -> anyhow::Result<SyncFigures> {
    let admin = &host.admin;
    let control = SimClient::new(sim.base_url())?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    admin.connect("dana").await?;
    let folder = admin.create_folder("/SyncBench", "Sync bench").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let bound = admin.bind("dana", &folder_id, fx.account, fx.project, "Sync bench import").await?;
    let action_id = bound.body["action_id"].as_str().with_context(|| format!("bind failed: {}", bound.body))?.to_string();

    eprintln!("sync, {}: linking {FILES} files", fx.api.name());
    let mut linked = Vec::new();
    for i in 0..FILES {
        let file = add_file(&http, sim, fx, &format!("sync-bench-{i:02}.mov")).await?;
        let document = push(admin, &control, &action_id, &folder_id, &file).await?;
        linked.push((file, document));
    }
    // Let the syncs that follow each push (a push brings the file's comments) end,
    // so that they do not run inside the first measurements.
    settle(admin).await?;

    let token = control.token(fx.consenting_user, if fx.api == Generation::V4 { Api::V4 } else { Api::V2 }).await?.access_token;
    eprintln!("sync, {}: {comments} reviewer comments to the DAM, {comments} DAM comments to Frame.io, one at a time", fx.api.name());
    let (mut to_dam, mut to_frameio) = (Vec::with_capacity(comments), Vec::with_capacity(comments));
    for n in 0..comments {
        let (file, document) = &linked[n % linked.len()];
        to_dam.push(reviewer_to_dam(admin, &control, fx, file, document, n).await?);
        to_frameio.push(dam_to_frameio(admin, &http, sim, fx, &token, file, document, n).await?);
    }
    Ok(SyncFigures { api: fx.api.name(), comments, to_dam: Latency::of(to_dam), to_frameio: Latency::of(to_frameio) })
}

/// A reviewer comments; returns the milliseconds until the DAM shows the comment.
async fn reviewer_to_dam(admin: &AdminClient, control: &SimClient, fx: &Fixture, file: &str, document: &str, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let made = control.comment(fx.pusher, file, json!({ "text": format!("bench reviewer comment {n}") })).await?;
    let id = made["id"].as_str().or_else(|| made["data"]["id"].as_str()).context("the comment's id")?;
    let key = format!("frameio:{id}");
    loop {
        let thread = admin.admin_ok(reqwest::Method::GET, &format!("/documents/{document}/comments"), None).await?;
        if thread["comments"].as_array().is_some_and(|list| list.iter().any(|c| c["external_key"] == key)) {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > PATIENCE {
            bail!("reviewer comment {id} did not reach the DAM within {PATIENCE:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A DAM user comments; returns the milliseconds until Frame.io's API lists it.
#[allow(clippy::too_many_arguments)]
async fn dam_to_frameio(
    admin: &AdminClient,
    http: &reqwest::Client,
    sim: &Simulator,
    fx: &Fixture,
    token: &str,
    file: &str,
    document: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let text = format!("bench DAM comment {n}");
    let started = Instant::now();
    let body = json!({ "user": "dana", "text": text });
    admin.admin_ok(reqwest::Method::POST, &format!("/documents/{document}/comments"), Some(body)).await?;
    // Frame.io lists oldest first, and each file holds few enough comments for one
    // page: the newest is on it.
    let base = sim.base_url();
    let url = match fx.api {
        Generation::V2 => format!("{base}/v2/assets/{file}/comments?page_size=100"),
        Generation::V4 => format!("{base}/v4/accounts/{}/files/{file}/comments?page_size=100", fx.account),
    };
    loop {
        let listed: Value = http.get(&url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        let list = if listed.is_array() { &listed } else { &listed["data"] };
        if list.as_array().is_some_and(|l| l.iter().any(|c| c["text"] == text.as_str())) {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > PATIENCE {
            bail!("DAM comment {n} did not reach Frame.io within {PATIENCE:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A small uploaded file in the bound project's root; returns its id.
async fn add_file(http: &reqwest::Client, sim: &Simulator, fx: &Fixture, name: &str) -> anyhow::Result<String> {
    let url = format!("{}/_sim/assets/{}/children", sim.base_url(), fx.root);
    let body = json!({ "name": name, "filetype": "video/quicktime", "filesize": 64 * 1024 });
    let asset: Value = http.post(url).json(&body).send().await?.error_for_status()?.json().await?;
    Ok(asset["id"].as_str().context("the simulator returned no asset id")?.to_string())
}

/// Pushes a file into the bound folder; returns its document's id once imported.
async fn push(admin: &AdminClient, control: &SimClient, action_id: &str, folder_id: &str, file: &str) -> anyhow::Result<String> {
    let form = control.click(action_id, file, None).await?;
    control.submit(action_id, &form.interaction_id, file, None, json!({ "notify": "no" })).await?;
    let job = admin.wait_for_job(&format!("push:{}", form.interaction_id), Duration::from_secs(120)).await?;
    anyhow::ensure!(job.state == "done", "the push of {file} failed: {}", job.result_text.unwrap_or_default());
    let key = format!("frameio:{file}");
    let documents = admin.documents(folder_id).await?;
    let document = documents.iter().find(|d| d["external_key"] == key).with_context(|| format!("no document for {file}"))?;
    Ok(document["id"].as_str().context("document id")?.to_string())
}

/// Waits until the host has no job queued or running.
async fn settle(admin: &AdminClient) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let jobs = admin.admin_ok(reqwest::Method::GET, "/stats", None).await?["jobs"].clone();
        if jobs["queued"].as_u64().unwrap_or(0) + jobs["running"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the host's jobs did not settle: {jobs}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints the figures as a table.
pub fn print(figures: &[SyncFigures]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\n| comment sync latency ({FILES} linked files, {cores} cores) | comments | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for f in figures {
        for (what, l) in [("reviewer comment -> DAM", &f.to_dam), ("DAM comment -> Frame.io", &f.to_frameio)] {
            println!("| {}: {what} | {} | {:.1} ms | {:.1} ms | {:.1} ms |", f.api, f.comments, l.p50_ms, l.p99_ms, l.max_ms);
        }
    }
}
