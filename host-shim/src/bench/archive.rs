//! Project archive: how close a whole archive runs to the floor Frame.io's
//! documented rate limits put under it, and a big original killed half way.
//!
//! **At the floor.** For each API generation a simulator enforces the documented
//! limits and holds a generated project; a host-shim child archives it through the
//! admin API. Each limit is a bucket per endpoint (method and path, ids aside) that
//! lets `limit` requests through at once and then one per `window / limit`, so an
//! endpoint's requests need at least `(requests - limit) / limit × window`; a class's floor
//! is its busiest endpoint's, and the archive's the largest class's, since buckets
//! drain side by side. The simulator counts every endpoint's requests, so the floor
//! comes from what the archive actually asked for (counted from its start), and
//! wall time over floor says how much of the run was spent on anything but the
//! binding bucket. The DAM's copy is then compared with the project's tree.
//!
//! **A big original.** A project holding one file of G GiB (content generated on
//! the fly by the simulator, so nothing is stored) is archived; once the download
//! passes half way the host is SIGKILLed and restarted, and the transfer goes on
//! from its last checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{Api, GenerateSpec, Seed, SimClient, SimOptions, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use super::child_options;
use crate::harness::AdminClient;
use crate::harness::archive::{dam_copy, expected_copy};
use crate::harness::child::ChildHost;
use crate::harness::fixture::{self, Fixture};

/// How often the archive's state is read.
const POLL: Duration = Duration::from_millis(250);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long one archive may take.
const PATIENCE: Duration = Duration::from_secs(6 * 3600);
/// The DAM folder archives go into.
const DESTINATION: &str = "/Archive";

/// One generation's run at the floor.
pub struct FloorRun {
    pub api: &'static str,
    pub files: u64,
    pub wall_secs: f64,
    /// Per class: requests, and the class's floor in seconds (its busiest endpoint).
    pub classes: Vec<ClassFloor>,
    pub documents: usize,
    pub versions: usize,
    pub comments: u64,
    pub folders: usize,
    /// Assets the report left out, and how many of them were unfinished uploads
    /// the generator made.
    pub skipped: u64,
    pub expected_left_out: usize,
    /// Jobs by state at the end, and the failed ones' reasons.
    pub jobs: BTreeMap<String, u64>,
    pub failed_jobs: Vec<String>,
    /// Documents in the DAM twice (or the reason the copy could not be read).
    pub duplicates: Vec<String>,
    /// Documents differing from the project, missing or extra, and folders.
    pub differences: Vec<String>,
    pub host_peak_rss: u64,
}

/// One route class's share of the archive's requests.
pub struct ClassFloor {
    pub class: String,
    pub limit: u64,
    pub window_ms: u64,
    pub requests: u64,
    pub refused: u64,
    /// The busiest endpoint, and its requests.
    pub busiest: String,
    pub busiest_requests: u64,
    pub floor_secs: f64,
}

impl FloorRun {
    fn floor(&self) -> Option<&ClassFloor> {
        self.classes.iter().max_by(|a, b| a.floor_secs.total_cmp(&b.floor_secs))
    }
}

/// The big original's figures.
pub struct BigRun {
    pub size: u64,
    pub wall_secs: f64,
    /// When the host was killed, and the bytes written by then.
    pub killed_at_secs: f64,
    pub done_at_kill: u64,
    /// The checkpoint last seen before the kill, and where the restarted host
    /// resumed (from its log).
    pub checkpoint_at_kill: u64,
    pub resumed_from: Option<u64>,
    pub rss_before_kill: u64,
    pub rss_after_restart: u64,
    /// The simulator's media requests before the kill and after it.
    pub media_before: u64,
    pub media_after: u64,
    pub copied_size: Option<u64>,
}

/// Which runs to make.
pub struct ArchiveBench {
    pub files: u64,
    pub apis: Vec<Generation>,
    pub big_gib: Option<u64>,
}

/// Runs the archive at the floor on each generation asked for, then the big
/// original when asked for, and prints the figures as they come.
pub async fn run(component: &Path, work: &Path, bench: &ArchiveBench) -> anyhow::Result<()> {
    let binary = host_binary()?;
    let mut runs = Vec::new();
    for &api in bench.apis.iter().filter(|_| bench.files > 0) {
        let run = at_the_floor(component, work, &binary, Fixture::of(api), bench.files).await?;
        print_floor(&run);
        runs.push(run);
    }
    if runs.len() > 1 {
        println!("\n| API | files | wall | floor | binding class | wall / floor |");
        println!("|---|---|---|---|---|---|");
        for run in &runs {
            let floor = run.floor().map_or(0.0, |c| c.floor_secs);
            let binding = run.floor().map_or("-".to_string(), |c| c.class.clone());
            println!("| {} | {} | {:.0} s | {:.0} s | {binding} | {:.2} |", run.api, run.files, run.wall_secs, floor, run.wall_secs / floor);
        }
    }
    if let Some(gib) = bench.big_gib {
        let big = big_original(component, work, &binary, gib << 30).await?;
        print_big(&big);
    }
    Ok(())
}

/// The host-shim the children run: the release build when there is one (this very
/// binary, or a release build beside this debug one), else this debug build.
fn host_binary() -> anyhow::Result<PathBuf> {
    let current = std::env::current_exe()?;
    let release = current.parent().and_then(Path::parent).map(|target| target.join("release").join("host-shim"));
    let (binary, profile) = if !cfg!(debug_assertions) {
        (current, "release")
    } else if let Some(release) = release.filter(|p| p.exists()) {
        (release, "release")
    } else {
        (current, "debug")
    };
    eprintln!("archive bench: the host-shim children are a {profile} build ({})", binary.display());
    Ok(binary)
}

/// The generated project the floor is measured on.
fn project_spec(files: u64) -> GenerateSpec {
    GenerateSpec {
        files,
        folder_depth: 3,
        folders_per_folder: 4,
        stack_every: 10,
        versions_per_stack: 3,
        comment_every: 10,
        replies_per_comment: 1,
        incomplete_every: 100,
        file_size: 4096,
        size_spread: 0.5,
        seed: 1,
    }
}

async fn at_the_floor(component: &Path, work: &Path, binary: &Path, fx: &'static Fixture, files: u64) -> anyhow::Result<FloorRun> {
    let api = fx.api.name();
    let options = SimOptions { documented_rate_limits: true, url_expiry_secs: 24 * 3600, ..SimOptions::default() };
    let sim = Simulator::start(Seed::default_fixture(), options, ([127, 0, 0, 1], 0).into()).await?;
    let control = SimClient::new(sim.base_url())?;
    let summary = control.generate_project(fx.project, &project_spec(files)).await?;
    eprintln!(
        "archive {api}: {} files ({} stacks of {} versions, {} unfinished), {} folders, {} comments and {} replies, {} bytes",
        summary.files, summary.stacks, summary.versions, summary.incomplete, summary.folders, summary.comments, summary.replies, summary.bytes
    );
    let tree = control.project_tree(fx.project, false).await?;
    super::warm_compile_cache(&sim, component, work).await?;

    let dir = work.join(format!("archive-host-{api}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = child_options(&sim, component, work, &dir)?;
    options.binary = binary.to_path_buf();
    options.api = fx.api;
    let host = ChildHost::start(options).await?;
    host.admin.connect("dana").await?;
    let folder = host.admin.create_folder(DESTINATION, "Archive").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    eprintln!("archive {api}: host-shim child with admin API at {}", host.admin.admin_url);

    // Counted from here: connecting made calls of its own.
    let before = control.rate_limit_stats().await?;
    let started = Instant::now();
    let body = json!({ "user": "dana", "account_id": fx.account, "project_id": fx.project, "folder_id": folder_id });
    let answer = host.admin.admin(Method::POST, "/archives", Some(body)).await?;
    if answer.status != 202 {
        bail!("the archive was refused: {} {}", answer.status, answer.body);
    }
    let key = answer.body["key"].as_str().context("no archive key")?.to_string();
    let archive = follow(&host.admin, &key, &format!("archive {api}"), started).await?;
    let wall_secs = started.elapsed().as_secs_f64();
    let after = control.rate_limit_stats().await?;
    let host_peak_rss = host.peak_rss()?;

    let (jobs, failed_jobs) = job_states(&host.admin).await?;
    let (want, expected_left_out) = expected_copy(&tree);
    let mut duplicates = Vec::new();
    let mut differences = Vec::new();
    let (mut documents, mut versions, mut folders) = (0, 0, 0);
    match dam_copy(&host.admin, DESTINATION).await {
        Ok(copy) => {
            (documents, versions, folders) = (copy.documents.len(), copy.versions(), copy.folders.len());
            if copy.folders != want.folders {
                differences.push(format!("folders: {} in the DAM, {} in Frame.io", copy.folders.len(), want.folders.len()));
            }
            for (k, w) in &want.documents {
                if copy.documents.get(k) != Some(w) {
                    differences.push(format!("{k}: Frame.io {w:?}, DAM {:?}", copy.documents.get(k)));
                }
            }
            differences.extend(copy.documents.keys().filter(|k| !want.documents.contains_key(*k)).map(|k| format!("{k}: in the DAM only")));
        }
        Err(e) => duplicates.push(e.to_string()),
    }
    host.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let counts = &archive["counts"];
    Ok(FloorRun {
        api,
        files,
        wall_secs,
        classes: class_floors(&before, &after),
        documents,
        versions,
        comments: counts["comments"].as_u64().unwrap_or(0),
        folders,
        skipped: counts["skipped"].as_u64().unwrap_or(0),
        expected_left_out,
        jobs,
        failed_jobs,
        duplicates,
        differences,
        host_peak_rss,
    })
}

/// Waits for the archive `key` to end, printing its counts every [`PROGRESS_EVERY`];
/// answers the archive as listed at the end. Fails when it failed.
async fn follow(admin: &AdminClient, key: &str, label: &str, started: Instant) -> anyhow::Result<Value> {
    let mut next_line = started + PROGRESS_EVERY;
    loop {
        let archive = listed_archive(admin, key).await.unwrap_or(Value::Null);
        let state = archive["state"].as_str().unwrap_or_default().to_lowercase();
        match state.as_str() {
            "done" => return Ok(archive),
            "failed" => bail!("the archive failed: {}", archive["message"]),
            _ => {}
        }
        if Instant::now() >= next_line {
            let c = &archive["counts"];
            eprintln!(
                "  {label} {:6.0} s: {} documents, {} versions, {} comments of {} assets found, {} folders ({})",
                started.elapsed().as_secs_f64(),
                c["documents"],
                c["versions"],
                c["comments"],
                c["found"],
                c["folders"],
                archive["message"].as_str().unwrap_or_default(),
            );
            next_line += PROGRESS_EVERY;
        }
        if started.elapsed() > PATIENCE {
            bail!("the archive did not end within {PATIENCE:?}: {archive}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn listed_archive(admin: &AdminClient, key: &str) -> anyhow::Result<Value> {
    let mut listed = admin.admin_ok(Method::GET, "/archives", None).await?;
    let archives = listed["archives"].take();
    archives.as_array().into_iter().flatten().find(|a| a["key"] == key).cloned().context("the archive is not listed")
}

/// Every job's state, counted, and the failed ones as `kind key: reason`.
async fn job_states(admin: &AdminClient) -> anyhow::Result<(BTreeMap<String, u64>, Vec<String>)> {
    let mut states = BTreeMap::new();
    let mut failed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = after.as_ref().map_or("/jobs?limit=500".to_string(), |cursor| format!("/jobs?limit=500&after={cursor}"));
        let mut page = admin.admin_ok(Method::GET, &path, None).await?;
        for job in page["jobs"].take().as_array().into_iter().flatten() {
            let state = job["state"].as_str().unwrap_or("?").to_string();
            if state == "failed" {
                failed.push(format!("{} {}: {}", job["kind"], job["key"], job["result_text"]));
            }
            *states.entry(state).or_insert(0) += 1;
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok((states, failed)),
        }
    }
}

/// Each class's requests between two `rate_limits` readings, and its floor: its
/// busiest endpoint's `(requests - limit) / limit × window`, since a bucket starts
/// empty and lets its first `limit` requests through at once.
fn class_floors(before: &Value, after: &Value) -> Vec<ClassFloor> {
    let count = |v: &Value| v["requests"].as_u64().unwrap_or(0);
    let mut floors = Vec::new();
    for (class, now) in after["classes"].as_object().into_iter().flatten() {
        let then = &before["classes"][class];
        let requests = count(now).saturating_sub(count(then));
        if requests == 0 {
            continue;
        }
        let (limit, window_ms) = (now["limit"].as_u64().unwrap_or(1).max(1), now["window_ms"].as_u64().unwrap_or(0));
        let (mut busiest, mut busiest_requests) = (String::new(), 0);
        for (endpoint, e) in now["endpoints"].as_object().into_iter().flatten() {
            let n = count(e).saturating_sub(count(&then["endpoints"][endpoint]));
            if n > busiest_requests {
                (busiest, busiest_requests) = (endpoint.clone(), n);
            }
        }
        let refused = now["refused"].as_u64().unwrap_or(0).saturating_sub(then["refused"].as_u64().unwrap_or(0));
        let floor_secs = busiest_requests.saturating_sub(limit) as f64 / limit as f64 * window_ms as f64 / 1000.0;
        floors.push(ClassFloor { class: class.clone(), limit, window_ms, requests, refused, busiest, busiest_requests, floor_secs });
    }
    floors.sort_by(|a, b| b.floor_secs.total_cmp(&a.floor_secs));
    floors
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn print_floor(run: &FloorRun) {
    let api = run.api;
    println!("\n### Archive at the rate-limit floor: {api}, {} files\n", run.files);
    println!("| class | limit | requests | refused (429) | busiest endpoint | its requests | floor |");
    println!("|---|---|---|---|---|---|---|");
    for c in &run.classes {
        println!(
            "| {} | {} per {} s | {} | {} | `{}` | {} | {:.1} s |",
            c.class,
            c.limit,
            c.window_ms as f64 / 1000.0,
            c.requests,
            c.refused,
            c.busiest,
            c.busiest_requests,
            c.floor_secs
        );
    }
    let floor = run.floor();
    let floor_secs = floor.map_or(0.0, |c| c.floor_secs);
    println!();
    println!("wall time, start to done: {:.1} s", run.wall_secs);
    match floor {
        Some(c) => println!("floor: {floor_secs:.1} s, bound by {} (`{}`)", c.class, c.busiest),
        None => println!("floor: no request counted"),
    }
    println!("wall / floor: {:.2} (goal <= 1.1)", run.wall_secs / floor_secs);
    println!(
        "copied: {} folders, {} documents, {} versions, {} comments; left out {} ({} unfinished uploads generated, {} beyond them)",
        run.folders,
        run.documents,
        run.versions,
        run.comments,
        run.skipped,
        run.expected_left_out,
        run.skipped.saturating_sub(run.expected_left_out as u64)
    );
    let states: Vec<String> = run.jobs.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("jobs: {}; failed: {}", states.join(", "), run.failed_jobs.len());
    for failed in run.failed_jobs.iter().take(10) {
        println!("  failed {failed}");
    }
    println!("duplicates: {}; differences from the project: {}", run.duplicates.len(), run.differences.len());
    for line in run.duplicates.iter().chain(&run.differences).take(10) {
        println!("  {line}");
    }
    println!("host peak RSS: {:.1} MiB", mib(run.host_peak_rss));
}

/// Archives a project of one `size`-byte file, SIGKILLing the host once its
/// download is half way.
async fn big_original(component: &Path, work: &Path, binary: &Path, size: u64) -> anyhow::Result<BigRun> {
    let options = SimOptions { url_expiry_secs: 24 * 3600, ..SimOptions::default() };
    let sim = Simulator::start(Seed::default_fixture(), options, ([127, 0, 0, 1], 0).into()).await?;
    let control = SimClient::new(sim.base_url())?;
    let gib = size >> 30;
    let (project_id, root) = new_project(&sim, &format!("Big original {gib} GiB")).await?;
    add_file(&sim, &root, "camera-original.mov", size).await?;
    super::warm_compile_cache(&sim, component, work).await?;

    let dir = work.join("archive-host-big");
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = child_options(&sim, component, work, &dir)?;
    options.binary = binary.to_path_buf();
    // The resume is logged at info.
    options.rust_log = Some("info".into());
    let mut host = ChildHost::start(options).await?;
    host.admin.connect("dana").await?;
    let folder = host.admin.create_folder(DESTINATION, "Archive").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    eprintln!("big original: {gib} GiB, host-shim child with admin API at {}", host.admin.admin_url);

    let started = Instant::now();
    let body = json!({ "user": "dana", "account_id": fixture::REYES_STUDIO, "project_id": project_id, "folder_id": folder_id });
    let answer = host.admin.admin(Method::POST, "/archives", Some(body)).await?;
    if answer.status != 202 {
        bail!("the archive was refused: {} {}", answer.status, answer.body);
    }
    let key = answer.body["key"].as_str().context("no archive key")?.to_string();

    // Half way: the download's row says so.
    let (done_at_kill, checkpoint_at_kill) = loop {
        if started.elapsed() > PATIENCE {
            bail!("the download never passed half way");
        }
        let listed = host.admin.admin_ok(Method::GET, "/transfers", None).await?;
        let download = listed["transfers"].as_array().into_iter().flatten().find(|t| t["kind"] == "download").cloned();
        if let Some(t) = download {
            let (done, total) = (t["done"].as_u64().unwrap_or(0), t["total"].as_u64().unwrap_or(0));
            if t["state"] != "running" {
                bail!("the download ended before half way: {t}");
            }
            if total > 0 && done * 2 >= total {
                break (done, t["checkpoint"].as_u64().unwrap_or(0));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rss_before_kill = host.peak_rss()?;
    host.kill();
    let killed_at_secs = started.elapsed().as_secs_f64();
    let media_before = control.stats().await?["media_requests"].as_u64().unwrap_or(0);
    eprintln!("big original: killed at {killed_at_secs:.1} s with {done_at_kill} bytes written, checkpoint {checkpoint_at_kill}; restarting");
    host.restart().await?;
    follow(&host.admin, &key, "big original", started).await?;
    let wall_secs = started.elapsed().as_secs_f64();
    let rss_after_restart = host.peak_rss()?;
    let media_after = control.stats().await?["media_requests"].as_u64().unwrap_or(0) - media_before;
    let log = std::fs::read_to_string(host.log_path())?;
    let resumed_from = log
        .lines()
        .filter(|line| line.contains("resuming a transfer from its checkpoint"))
        .last()
        .and_then(|line| line.split("from=").nth(1)?.split_whitespace().next()?.parse().ok());
    let copy = dam_copy(&host.admin, DESTINATION).await?;
    let copied_size = copy.documents.values().next().and_then(|(_, sizes, _)| sizes.first().copied());
    host.stop();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(BigRun {
        size,
        wall_secs,
        killed_at_secs,
        done_at_kill,
        checkpoint_at_kill,
        resumed_from,
        rss_before_kill,
        rss_after_restart,
        media_before,
        media_after,
        copied_size,
    })
}

/// A new v2 project in the Editorial team, made as Dana through the API; answers
/// its id and root folder.
async fn new_project(sim: &Simulator, name: &str) -> anyhow::Result<(String, String)> {
    let token = SimClient::new(sim.base_url())?.token(fixture::DANA, Api::V2).await?.access_token;
    let project: Value = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("{}/v2/teams/{}/projects", sim.base_url(), fixture::EDITORIAL_TEAM))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = project["id"].as_str().context("no project id")?.to_string();
    let root = project["root_asset_id"].as_str().context("no root_asset_id")?.to_string();
    Ok((id, root))
}

async fn add_file(sim: &Simulator, folder: &str, name: &str, size: u64) -> anyhow::Result<()> {
    reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("{}/_sim/assets/{folder}/children", sim.base_url()))
        .json(&json!({ "name": name, "filetype": "video/quicktime", "filesize": size }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

fn print_big(big: &BigRun) {
    let secs_after = big.wall_secs - big.killed_at_secs;
    println!("\n### A big original: {} GiB, host SIGKILLed half way\n", big.size >> 30);
    println!(
        "archive, start to done: {:.1} s, {:.0} MB/s over the whole run (kill and restart included)",
        big.wall_secs,
        big.size as f64 / 1e6 / big.wall_secs
    );
    println!(
        "killed at {:.1} s with {} of {} bytes written ({:.0} MB/s until then); the restarted host finished in {:.1} s",
        big.killed_at_secs,
        big.done_at_kill,
        big.size,
        big.done_at_kill as f64 / 1e6 / big.killed_at_secs,
        secs_after
    );
    let resumed = big.resumed_from.map_or("no resume logged".to_string(), |from| format!("{from} ({:.1} % of the file)", from as f64 * 100.0 / big.size as f64));
    println!("checkpoint seen before the kill: {}; resumed from: {resumed}", big.checkpoint_at_kill);
    println!("media requests: {} before the kill, {} after the restart", big.media_before, big.media_after);
    println!("host peak RSS: {:.1} MiB before the kill, {:.1} MiB after the restart", mib(big.rss_before_kill), mib(big.rss_after_restart));
    match big.copied_size {
        Some(size) if size == big.size => println!("the DAM's document: one version of {size} bytes, the original's size"),
        other => println!("the DAM's document does NOT match: {other:?} bytes, expected {}", big.size),
    }
}
