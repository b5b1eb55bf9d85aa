//! Send-for-review upload throughput through the whole flow, on both API
//! generations, next to `curl -T` and the official Python SDKs' uploaders sending
//! the same bytes to the same simulator's presigned part URLs.
//!
//! For each size and generation a fresh host-shim child gets a DAM document whose
//! version is `size` bytes of generated content, written into its blob store before
//! it starts (`harness::seed_document`). The send is timed from the admin API's
//! `POST /documents/{id}/review` to the job's `done` (file creation, the host's
//! multipart upload, Frame.io's confirmation, the review link); the upload transfer
//! alone is timed by watching `/admin/api/transfers`. The simulator keeps only the
//! digests of what it receives (`upload_hash_only`), and every result, the peers'
//! too, is checked against the source's size and xxHash64 there.
//!
//! The peers read the very blob file the host read, which the seeding just wrote,
//! so all of them read from the page cache, as the host does.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{Api, Seed, SimClient, SimOptions, Simulator};
use serde_json::{Value, json};

use super::child_options;
use crate::harness::child::ChildHost;
use crate::harness::fixture::Fixture;
use crate::harness::{AdminClient, SeededDocument, seed_document};

/// Threads the SDK uploaders run with (both default to 5).
const SDK_THREADS: usize = 5;
/// Parts curl sends at once with `--parallel`, as many as the SDKs' threads.
const CURL_PARALLEL: usize = 5;
/// How often the host's transfer list is read to time the upload itself.
const TRANSFER_POLL: Duration = Duration::from_millis(20);
/// How long one send may take.
const PATIENCE: Duration = Duration::from_secs(3600);
/// The media type the v2 files are created with (the seeded titles end in `.mov`,
/// which the host's renditions and V4 map to the same).
const MEDIA_TYPE: &str = "video/quicktime";

/// One size on one generation.
pub struct UploadRow {
    pub api: &'static str,
    pub size: u64,
    /// Admin API send to the job's `done`.
    pub send_secs: f64,
    /// The upload transfer, from its row first seen running to seen complete.
    pub transfer_secs: Option<f64>,
    /// `curl -T` of every part, one after another, on one connection.
    pub curl_sequential_secs: Option<f64>,
    /// `curl -T` of every part, `--parallel --parallel-max 5`.
    pub curl_parallel_secs: Option<f64>,
    /// frameioclient 1.1.0 (v2) or frameio 4.0.0 (V4) `FrameioUploader`.
    pub sdk_secs: Option<f64>,
    pub parts: usize,
    pub host_peak_rss: u64,
    pub guest_memory_peak: u64,
}

/// Measures every size on both generations, each on a fresh host-shim child.
pub async fn measure(component: &Path, work: &Path, sizes_mib: &[u64], peers: bool) -> anyhow::Result<Vec<UploadRow>> {
    let options = SimOptions { upload_hash_only: true, url_expiry_secs: 24 * 3600, ..SimOptions::default() };
    let sim = Simulator::start(Seed::default_fixture(), options, ([127, 0, 0, 1], 0).into()).await?;
    let pythons = if peers { Some((super::peers::frameioclient_venv(work)?, frameio_venv(work)?)) } else { None };
    super::warm_compile_cache(&sim, component, work).await?;
    let mut rows = Vec::new();
    for &mib in sizes_mib {
        for api in [Generation::V2, Generation::V4] {
            let python = pythons.as_ref().map(|(v2, v4)| if api == Generation::V2 { v2.as_path() } else { v4.as_path() });
            let row = measure_one(&sim, component, work, Fixture::of(api), mib << 20, python).await;
            rows.push(row?);
        }
    }
    sim.shutdown().await;
    Ok(rows)
}

async fn measure_one(
    sim: &Simulator,
    component: &Path,
    work: &Path,
    fx: &'static Fixture,
    size: u64,
    python: Option<&Path>,
) -> anyhow::Result<UploadRow> {
    let api = fx.api.name();
    let name = format!("upload-bench-{api}-{}MiB.mov", size >> 20);
    let dir = work.join(format!("upload-host-{api}-{}", size >> 20));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{name}: writing the DAM version into a fresh host's blob store");
    let seeded = {
        let (dir, name) = (dir.clone(), name.clone());
        let key = format!("upload-bench-{}", size >> 20);
        tokio::task::spawn_blocking(move || seed_document(&dir, "/UploadBench", &name, &key, size)).await??
    };
    let mut options = child_options(sim, component, work, &dir)?;
    options.api = fx.api;
    let host = ChildHost::start(options).await?;
    eprintln!("{name}: sending for review (watch it: host-shim transfers --admin {})", host.admin.admin_url);
    let sent = send(sim, &host.admin, fx, &seeded).await;
    let host_peak_rss = host.peak_rss()?;
    let guest_memory_peak = host.admin.guest_memory_peak().await?;
    host.stop();
    let (send_secs, transfer_secs, parts) = sent?;

    let mut row = UploadRow {
        api,
        size,
        send_secs,
        transfer_secs,
        curl_sequential_secs: None,
        curl_parallel_secs: None,
        sdk_secs: None,
        parts,
        host_peak_rss,
        guest_memory_peak,
    };
    if let Some(python) = python {
        let peers = Peers { sim, fx, seeded: &seeded, work, name: &name };
        let token = SimClient::new(sim.base_url())?.token(fx.consenting_user, api_of(fx.api)).await?.access_token;
        eprintln!("{name}: curl -T, one part after another");
        row.curl_sequential_secs = Some(peers.curl(&token, false).await?);
        eprintln!("{name}: curl -T --parallel --parallel-max {CURL_PARALLEL}");
        row.curl_parallel_secs = Some(peers.curl(&token, true).await?);
        eprintln!("{name}: {}", sdk_name(fx.api));
        row.sdk_secs = Some(peers.sdk(python, &token).await?);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(row)
}

/// Connects, binds the seeded folder and sends the document for review; returns the
/// seconds from the send to the job's `done`, the upload transfer's own seconds as
/// seen on the transfer list, and the number of parts. Checks that Frame.io got
/// exactly the blob's bytes.
async fn send(sim: &Simulator, admin: &AdminClient, fx: &Fixture, seeded: &SeededDocument) -> anyhow::Result<(f64, Option<f64>, usize)> {
    admin.connect("dana").await?;
    // Custom action names are unique per team, and every size binds anew.
    let action = format!("Upload bench {}", seeded.document_id);
    let bound = admin.bind("dana", &seeded.folder_id, fx.account, fx.project, &action).await?;
    let binding_id = bound.body["id"].as_str().with_context(|| format!("bind failed: {}", bound.body))?.to_string();
    let body = json!({ "user": "dana", "binding_id": binding_id, "reviewers": [], "description": "upload bench" });
    let started = Instant::now();
    let answer = admin.admin(reqwest::Method::POST, &format!("/documents/{}/review", seeded.document_id), Some(body)).await?;
    if answer.status != 202 {
        bail!("the send was refused: {} {}", answer.status, answer.body);
    }
    let key = answer.body["job_key"].as_str().context("no job_key")?.to_string();
    let watch = TransferWatch::start(admin.clone(), key.clone());
    let job = admin.wait_for_job(&key, PATIENCE).await?;
    let send_secs = started.elapsed().as_secs_f64();
    let transfer_secs = watch.stop(started).await;
    if job.state != "done" {
        bail!("the send failed: {}", job.result_text.unwrap_or_default());
    }
    let document = admin.document(&seeded.document_id).await?;
    let file_id = document["properties"]["frameio.review-file-id"].as_str().context("no review file on the document")?;
    check_received(sim, file_id, seeded).await?;
    let parts = seeded.blob.size.div_ceil(SimOptions::default().upload_part_size).max(1) as usize;
    Ok((send_secs, transfer_secs, parts))
}

/// Times the host's upload transfer by reading its row every [`TRANSFER_POLL`]:
/// from the first read that shows it to the first that shows it complete, each
/// up to one poll late. Also notes when the job's status text changes, to show
/// where the rest of the send's time goes.
struct TransferWatch {
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    complete: Option<Instant>,
    /// The job's status texts, each with when it was first read.
    statuses: Vec<(Instant, String)>,
}

impl TransferWatch {
    fn start(admin: AdminClient, job_key: String) -> TransferWatch {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                loop {
                    let job = admin.job_by_key(&job_key).await.ok().flatten();
                    let listed = admin.admin_ok(reqwest::Method::GET, "/transfers", None).await;
                    {
                        let now = Instant::now();
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(job) = job {
                            let text = format!("{}: {}", job.state, job.status_text.unwrap_or_default());
                            if seen.statuses.last().is_none_or(|(_, last)| *last != text) {
                                seen.statuses.push((now, text));
                            }
                        }
                        if let Ok(mut listed) = listed {
                            let transfers = listed["transfers"].take();
                            if let Some(upload) = transfers.as_array().into_iter().flatten().find(|t| t["kind"] == "upload") {
                                seen.first.get_or_insert(now);
                                if upload["state"] == "complete" {
                                    seen.complete.get_or_insert(now);
                                }
                            }
                        }
                    }
                    tokio::time::sleep(TRANSFER_POLL).await;
                }
            }
        });
        TransferWatch { task, seen }
    }

    /// The transfer's seconds, if both ends were seen; prints the job's status
    /// texts, in seconds since `started`.
    async fn stop(self, started: Instant) -> Option<f64> {
        self.task.abort();
        let _ = self.task.await;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (at, text) in &seen.statuses {
            eprintln!("  {:7.3} s  job {text}", (*at - started).as_secs_f64());
        }
        if let Some(first) = seen.first {
            eprintln!("  {:7.3} s  upload transfer first seen", (first - started).as_secs_f64());
        }
        if let Some(complete) = seen.complete {
            eprintln!("  {:7.3} s  upload transfer seen complete", (complete - started).as_secs_f64());
        }
        Some((seen.complete? - seen.first?).as_secs_f64())
    }
}

/// Fails unless the simulator's file holds exactly the blob's bytes (size and
/// xxHash64 of what it received).
async fn check_received(sim: &Simulator, file_id: &str, seeded: &SeededDocument) -> anyhow::Result<()> {
    let stored = SimClient::new(sim.base_url())?.content_hash(file_id).await?;
    if stored["uploaded"] != true || stored["size"] != seeded.blob.size || stored["xx_hash"] != seeded.blob.xxhash64.as_str() {
        bail!("Frame.io's file {file_id} is not the source: {stored}, expected {} bytes, xxHash64 {}", seeded.blob.size, seeded.blob.xxhash64);
    }
    Ok(())
}

/// What the peers share: the simulator, the seeded blob, scratch space.
struct Peers<'a> {
    sim: &'a Simulator,
    fx: &'static Fixture,
    seeded: &'a SeededDocument,
    work: &'a Path,
    name: &'a str,
}

/// A file created through the API, with its part URLs and sizes.
struct NewFile {
    id: String,
    parts: Vec<(String, u64)>,
    media_type: String,
}

impl Peers<'_> {
    /// Creates a file of the blob's size in the project's root through the
    /// generation's API, as an SDK does before uploading.
    async fn create_file(&self, token: &str, name: &str) -> anyhow::Result<NewFile> {
        let (base, fx, size) = (self.sim.base_url(), self.fx, self.seeded.blob.size);
        let http = reqwest::Client::builder().no_proxy().build()?;
        match fx.api {
            Generation::V2 => {
                let body = json!({ "type": "file", "name": name, "filetype": MEDIA_TYPE, "filesize": size });
                let url = format!("{base}/v2/assets/{}/children", fx.root);
                let asset: Value = http.post(url).bearer_auth(token).json(&body).send().await?.error_for_status()?.json().await?;
                let urls: Vec<String> = serde_json::from_value(asset["upload_urls"].clone()).context("v2 upload_urls")?;
                // The split both SDKs compute from the size and the number of URLs.
                let chunk = size.div_ceil(urls.len() as u64);
                let count = urls.len() as u64;
                let parts = urls.into_iter().enumerate().map(|(i, u)| (u, if i as u64 + 1 == count { size - chunk * (count - 1) } else { chunk }));
                Ok(NewFile { id: asset["id"].as_str().context("v2 asset id")?.to_string(), parts: parts.collect(), media_type: MEDIA_TYPE.into() })
            }
            Generation::V4 => {
                let body = json!({ "data": { "name": name, "file_size": size } });
                let url = format!("{base}/v4/accounts/{}/folders/{}/files/local_upload", fx.account, fx.root);
                let made: Value = http.post(url).bearer_auth(token).json(&body).send().await?.error_for_status()?.json().await?;
                let file = &made["data"];
                let parts = file["upload_urls"].as_array().context("V4 upload_urls")?.iter();
                let parts = parts.map(|p| Some((p["url"].as_str()?.to_string(), p["size"].as_u64()?))).collect::<Option<Vec<_>>>();
                Ok(NewFile {
                    id: file["id"].as_str().context("V4 file id")?.to_string(),
                    parts: parts.context("V4 upload_urls without url or size")?,
                    media_type: file["media_type"].as_str().unwrap_or("application/octet-stream").to_string(),
                })
            }
        }
    }

    /// Seconds `curl -T` takes to send the blob to a new file's part URLs: one part
    /// after another on one connection, or `--parallel` up to [`CURL_PARALLEL`] at a
    /// time. curl cannot send a byte range of a file, so each part is first copied
    /// (untimed) to a file of its own, read back from the page cache.
    async fn curl(&self, token: &str, parallel: bool) -> anyhow::Result<f64> {
        let mode = if parallel { "parallel" } else { "sequential" };
        let file = self.create_file(token, &format!("curl-{mode}-{}", self.name)).await?;
        let parts_dir = self.work.join("upload-curl-parts");
        let _ = std::fs::remove_dir_all(&parts_dir);
        std::fs::create_dir_all(&parts_dir)?;
        let sizes: Vec<u64> = file.parts.iter().map(|(_, size)| *size).collect();
        let paths = split_into_parts(&self.seeded.blob_path, &parts_dir, &sizes)?;
        let mut command = Command::new("curl");
        command.args(["-s", "-S", "-f", "--no-progress-meter", "-o", "/dev/null"]);
        if parallel {
            command.args(["--parallel", "--parallel-max", &CURL_PARALLEL.to_string()]);
        }
        // What the part URLs require, and no `Expect: 100-continue` round trip (the
        // host does not wait for one either).
        command.args(["-H", &format!("Content-Type: {}", file.media_type), "-H", "x-amz-acl: private", "-H", "Expect:"]);
        for (path, (url, _)) in paths.iter().zip(&file.parts) {
            command.arg("-T").arg(path).arg(url);
        }
        command.stdout(Stdio::null());
        let started = Instant::now();
        let status = command.status().context("running curl")?;
        let secs = started.elapsed().as_secs_f64();
        std::fs::remove_dir_all(&parts_dir)?;
        if !status.success() {
            bail!("curl -T ({mode}) failed: {status}");
        }
        check_received(self.sim, &file.id, self.seeded).await?;
        Ok(secs)
    }

    /// Seconds the generation's SDK uploader takes (its `upload()` call alone).
    async fn sdk(&self, python: &Path, token: &str) -> anyhow::Result<f64> {
        let (fx, path, size) = (self.fx, &self.seeded.blob_path, self.seeded.blob.size.to_string());
        let name = format!("sdk-{}", self.name);
        let mut command = Command::new(python);
        match fx.api {
            Generation::V2 => command.args(["-c", FRAMEIOCLIENT_UPLOAD, token, &self.sim.base_url(), fx.root]),
            Generation::V4 => command.args(["-c", FRAMEIO_UPLOAD, token, &self.sim.base_url(), fx.account, fx.root]),
        };
        command.arg(path).args([name.as_str(), size.as_str(), MEDIA_TYPE]);
        let out = command.output().with_context(|| format!("running {}", sdk_name(fx.api)))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("{} failed: {}{}", sdk_name(fx.api), stdout, String::from_utf8_lossy(&out.stderr));
        }
        let field = |prefix: &str| stdout.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_string());
        let file_id = field("FILE ").context("the SDK script printed no file id")?;
        let secs = field("SECONDS ").and_then(|s| s.parse::<f64>().ok()).context("the SDK script printed no timing")?;
        // frameioclient's uploader drops part failures on the floor: only the far
        // end can say whether the upload worked.
        check_received(self.sim, &file_id, self.seeded).await?;
        Ok(secs)
    }
}

/// Copies `source` into one file per part (sizes in order), under `dir`.
fn split_into_parts(source: &Path, dir: &Path, sizes: &[u64]) -> anyhow::Result<Vec<PathBuf>> {
    let mut input = std::fs::File::open(source)?;
    input.seek(SeekFrom::Start(0))?;
    let mut paths = Vec::with_capacity(sizes.len());
    for (i, &size) in sizes.iter().enumerate() {
        let path = dir.join(format!("part-{i:05}"));
        let mut out = std::fs::File::create(&path)?;
        let copied = std::io::copy(&mut (&mut input).take(size), &mut out)?;
        out.flush()?;
        anyhow::ensure!(copied == size, "part {i}: copied {copied} of {size} bytes");
        paths.push(path);
    }
    Ok(paths)
}

/// frameioclient 1.1.0: `assets.create`, then `FrameioUploader(asset, file).upload()`
/// (its 5 threads are fixed), timed alone.
const FRAMEIOCLIENT_UPLOAD: &str = r#"
import sys, time
from frameioclient import FrameioClient
from frameioclient.lib import FrameioUploader
token, host, folder, path, name, size, filetype = sys.argv[1:8]
client = FrameioClient(token, host=host)
asset = client.assets.create(folder, type="file", name=name, filetype=filetype, filesize=int(size))
print("FILE", asset["id"], flush=True)
with open(path, "rb") as handle:
    started = time.time()
    FrameioUploader(asset, handle).upload()
    print("SECONDS", time.time() - started)
"#;

/// frameio 4.0.0: `files.create_local_upload`, then
/// `FrameioUploader(file, handle, max_workers=5).upload()`, timed alone.
const FRAMEIO_UPLOAD: &str = r#"
import sys, time
import httpx
from frameio import Frameio
from frameio.files import FileCreateLocalUploadParamsData
from frameio.upload import FrameioUploader
token, base, account, folder, path, name, size, _filetype = sys.argv[1:9]
fio = Frameio(base_url=base, token=token, httpx_client=httpx.Client(timeout=60, trust_env=False))
data = FileCreateLocalUploadParamsData(name=name, file_size=int(size))
created = fio.files.create_local_upload(account, folder, data=data).data
print("FILE", created.id, flush=True)
with open(path, "rb") as handle:
    started = time.time()
    FrameioUploader(created, handle, max_workers=5).upload()
    print("SECONDS", time.time() - started)
"#;

/// A virtualenv with frameio 4.0.0, created once under `root`.
fn frameio_venv(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("venv-frameio-4.0.0");
    let python = venv.join("bin/python");
    if venv.join(".complete").exists() {
        return Ok(python);
    }
    let run = |command: &mut Command| -> anyhow::Result<()> {
        let status = command.status().with_context(|| format!("running {command:?}"))?;
        anyhow::ensure!(status.success(), "{command:?} failed: {status}");
        Ok(())
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "frameio==4.0.0"]))?;
    std::fs::write(venv.join(".complete"), "frameio==4.0.0\n")?;
    Ok(python)
}

fn api_of(generation: Generation) -> Api {
    match generation {
        Generation::V2 => Api::V2,
        Generation::V4 => Api::V4,
    }
}

fn sdk_name(generation: Generation) -> &'static str {
    match generation {
        Generation::V2 => "frameioclient 1.1.0 FrameioUploader",
        Generation::V4 => "frameio 4.0.0 FrameioUploader",
    }
}

fn mb_per_s(size: u64, secs: f64) -> f64 {
    size as f64 / 1e6 / secs
}

/// Prints the figures as a table, with what they were measured on.
pub fn print(rows: &[UploadRow]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    println!(
        "\nsend for review, {cores} cores, host-shim {build}; parts of {} MiB; SDK uploaders with {SDK_THREADS} threads; \
         curl {}",
        SimOptions::default().upload_part_size >> 20,
        curl_version()
    );
    println!(
        "\n| API | size | parts | send to done | upload transfer | curl -T sequential | curl -T parallel ({CURL_PARALLEL}) | SDK uploader | \
         vs curl seq | vs curl par | vs SDK | host peak RSS | guest memory peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ours = mb_per_s(r.size, r.send_secs);
        let peer = |secs: Option<f64>| secs.map_or("-".to_string(), |s| format!("{:.0} MB/s ({s:.2} s)", mb_per_s(r.size, s)));
        let ratio = |secs: Option<f64>| secs.map_or("-".to_string(), |s| format!("{:.2}x", ours / mb_per_s(r.size, s)));
        println!(
            "| {} | {} MiB | {} | {:.0} MB/s ({:.2} s) | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {:.2} MiB |",
            r.api,
            r.size >> 20,
            r.parts,
            ours,
            r.send_secs,
            peer(r.transfer_secs),
            peer(r.curl_sequential_secs),
            peer(r.curl_parallel_secs),
            peer(r.sdk_secs),
            ratio(r.curl_sequential_secs),
            ratio(r.curl_parallel_secs),
            ratio(r.sdk_secs),
            r.host_peak_rss as f64 / 1048576.0,
            r.guest_memory_peak as f64 / 1048576.0,
        );
    }
}

fn curl_version() -> String {
    let out = Command::new("curl").arg("--version").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
