//! `host-shim bench`: import throughput through the whole flow, next to `curl -o`
//! and the official Python client, with the host's peak memory and the guest's
//! linear-memory high-water mark. Prints a table; asserts nothing.
//!
//! Every figure comes from one run against one simulator: the import is timed from
//! the custom-action click to the finished job (download, verification, document),
//! the peers fetch the same presigned URL to the same disk. Each size runs in a
//! fresh host-shim child process so its peak RSS belongs to that size alone.

mod archive;
mod flood;
mod inbound;
mod peers;
mod sync;
mod upload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_sim::{Seed, SimClient, SimOptions, Simulator};
use serde_json::{Value, json};

use crate::harness::fixture;
use crate::harness::child::{ChildHost, ChildOptions};

/// What to run.
pub struct BenchOptions {
    pub component: PathBuf,
    /// Scratch space for host data, peer downloads and the virtualenv.
    pub work_dir: PathBuf,
    /// Sizes to import, in MiB.
    pub sizes_mib: Vec<u64>,
    /// Also run curl and frameioclient.
    pub peers: bool,
    /// Measure only inbound handling: no simulator imports, no peers.
    pub only_inbound: bool,
    /// Measure only good clicks during a flood of bad signatures.
    pub only_flood: bool,
    /// Measure only comment sync latency, both ways.
    pub only_sync: bool,
    /// Comments timed each way by the sync latency benchmark.
    pub sync_comments: usize,
    /// Measure only send-for-review uploads (both generations), against `curl -T`
    /// and the SDKs' uploaders unless `peers` is off.
    pub only_upload: bool,
    /// Sizes to upload, in MiB.
    pub upload_sizes_mib: Vec<u64>,
    /// Measure only the project archive: at the rate-limit floor, and the big
    /// original when `archive_big_gib` is set.
    pub only_archive: bool,
    /// Files in the generated project archived at the floor.
    pub archive_files: u64,
    /// The generations archived at the floor.
    pub archive_apis: Vec<frameio_connector::frameio::model::Generation>,
    /// The big original's size in GiB; none skips it.
    pub archive_big_gib: Option<u64>,
}

/// One size's figures.
struct Row {
    size: u64,
    import_secs: f64,
    curl_secs: Option<f64>,
    curl_sync_secs: Option<f64>,
    frameioclient_secs: Option<f64>,
    host_peak_rss: u64,
    guest_memory_peak: u64,
}

/// Runs the benchmark and prints the table.
pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.work_dir)?;
    let work = std::fs::canonicalize(&options.work_dir)?;
    let component = std::fs::canonicalize(&options.component).context("the component (build it with `cargo xtask build`)")?;
    if options.only_sync {
        let figures = sync::measure(&component, &work, options.sync_comments).await?;
        sync::print(&figures);
        return Ok(());
    }
    if options.only_upload {
        let rows = upload::measure(&component, &work, &options.upload_sizes_mib, options.peers).await?;
        upload::print(&rows);
        return Ok(());
    }
    if options.only_archive {
        let bench = archive::ArchiveBench { files: options.archive_files, apis: options.archive_apis.clone(), big_gib: options.archive_big_gib };
        return archive::run(&component, &work, &bench).await;
    }
    if options.only_flood {
        let flood = flooded_clicks(&component, &work).await?;
        flood::print(&flood);
        return Ok(());
    }
    let rows = if options.only_inbound { Vec::new() } else { imports(&options, &component, &work).await? };
    eprintln!("inbound: instantiate + call, and signed requests through the component and natively");
    let inbound = inbound::measure(&component, &work).await?;
    let flood = if options.only_inbound { Vec::new() } else { flooded_clicks(&component, &work).await? };
    if !rows.is_empty() {
        print_table(&rows);
    }
    print_inbound(&inbound);
    if !flood.is_empty() {
        flood::print(&flood);
    }
    Ok(())
}

/// Good clicks during a bad-signature flood, on host-shim children.
async fn flooded_clicks(component: &Path, work: &Path) -> anyhow::Result<Vec<flood::FloodFigures>> {
    let sim = Simulator::start(Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    warm_compile_cache(&sim, component, work).await?;
    let figures = flood::measure(&sim, component, work).await;
    sim.shutdown().await;
    figures
}

/// Imports every size through the connector (and the peers, when asked).
async fn imports(options: &BenchOptions, component: &Path, work: &Path) -> anyhow::Result<Vec<Row>> {
    let sim_options = SimOptions { url_expiry_secs: 24 * 3600, ..SimOptions::default() };
    let sim = Simulator::start(Seed::default_fixture(), sim_options, ([127, 0, 0, 1], 0).into()).await?;
    let python = if options.peers { Some(peers::frameioclient_venv(work)?) } else { None };
    warm_compile_cache(&sim, component, work).await?;
    let mut rows = Vec::new();
    for &mib in &options.sizes_mib {
        let row = measure(&sim, component, work, mib << 20, python.as_deref()).await;
        rows.push(row?);
    }
    sim.shutdown().await;
    Ok(rows)
}

async fn measure(sim: &Simulator, component: &Path, work: &Path, size: u64, python: Option<&Path>) -> anyhow::Result<Row> {
    let name = format!("bench-{}MiB.mov", size >> 20);
    let asset_id = add_asset(&sim.base_url(), &name, size).await?;
    eprintln!("{name}: importing through the connector");
    let host_dir = work.join(format!("host-{}", size >> 20));
    let _ = std::fs::remove_dir_all(&host_dir);
    let host = ChildHost::start(child_options(sim, component, work, &host_dir)?).await?;
    eprintln!("{name}: host-shim child with admin API at {} (watch it: host-shim transfers --admin <url>)", host.admin.admin_url);
    let imported = import(&host, &sim.base_url(), &asset_id, &name).await;
    let host_peak_rss = host.peak_rss()?;
    let guest_memory_peak = host.admin.guest_memory_peak().await?;
    host.stop();
    std::fs::remove_dir_all(&host_dir)?;
    let import_secs = imported?;

    let (mut curl_secs, mut curl_sync_secs, mut frameioclient_secs) = (None, None, None);
    if let Some(python) = python {
        let token = peers::sim_token(&sim.base_url()).await?;
        eprintln!("{name}: curl -o");
        let url = peers::original_url(&sim.base_url(), &token, &asset_id).await?;
        let (fetched, durable) = peers::curl(&url, work, size)?;
        (curl_secs, curl_sync_secs) = (Some(fetched), Some(durable));
        eprintln!("{name}: frameioclient 1.1.0");
        frameioclient_secs = Some(peers::frameioclient(python, &token, &sim.base_url(), &asset_id, &name, work, size)?);
    }
    Ok(Row { size, import_secs, curl_secs, curl_sync_secs, frameioclient_secs, host_peak_rss, guest_memory_peak })
}

/// Starts and stops one child so the compiled component is cached: the children
/// measured after it load it instead of compiling it, and their peak RSS is the
/// import's, not a one-off compilation's.
async fn warm_compile_cache(sim: &Simulator, component: &Path, work: &Path) -> anyhow::Result<()> {
    let dir = work.join("host-warm-up");
    let _ = std::fs::remove_dir_all(&dir);
    ChildHost::start(child_options(sim, component, work, &dir)?).await?.stop();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A host-shim child (this very binary) in `dir`, with the bench's shared compile cache.
fn child_options(sim: &Simulator, component: &Path, work: &Path, dir: &Path) -> anyhow::Result<ChildOptions> {
    Ok(ChildOptions {
        binary: std::env::current_exe()?,
        data_dir: dir.to_path_buf(),
        component: component.to_path_buf(),
        cache_dir: work.join("component-cache"),
        sim_base: sim.base_url(),
        range_size: None,
        checkpoint_bytes: None,
        rust_log: None,
        server_settings: Vec::new(),
        api: frameio_connector::frameio::model::Generation::V2,
        open_files_limit: None,
    })
}

/// Adds a fully uploaded file of `size` bytes to the Spring Campaign root.
async fn add_asset(sim_base: &str, name: &str, size: u64) -> anyhow::Result<String> {
    let asset: Value = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("{sim_base}/_sim/assets/{}/children", fixture::SPRING_ROOT))
        .json(&json!({ "name": name, "filetype": "video/quicktime", "filesize": size }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(asset["id"].as_str().context("the simulator returned no asset id")?.to_string())
}

/// Binds a folder, pushes the asset, and times click-to-document.
async fn import(host: &ChildHost, sim_base: &str, asset_id: &str, name: &str) -> anyhow::Result<f64> {
    let admin = &host.admin;
    admin.connect("dana").await?;
    let folder = admin.create_folder("/Bench", "Bench").await?;
    let folder_id = folder["id"].as_str().context("folder id")?;
    // Custom action names are unique per team, and every size binds anew.
    let bound = admin.bind("dana", folder_id, fixture::REYES_STUDIO, fixture::SPRING_CAMPAIGN, &format!("Import {name}")).await?;
    let action_id = bound.body["action_id"].as_str().with_context(|| format!("bind failed: {}", bound.body))?;
    let control = SimClient::new(sim_base)?;
    let started = Instant::now();
    let form = control.click(action_id, asset_id, Some(fixture::SAM)).await?;
    control.submit(action_id, &form.interaction_id, asset_id, Some(fixture::SAM), json!({ "notify": "no" })).await?;
    let job = admin.wait_for_job(&format!("push:{}", form.interaction_id), Duration::from_secs(3600)).await?;
    let secs = started.elapsed().as_secs_f64();
    if job.state != "done" {
        bail!("the import failed: {}", job.result_text.unwrap_or_default());
    }
    Ok(secs)
}

fn mb_per_s(size: u64, secs: f64) -> f64 {
    size as f64 / 1e6 / secs
}

fn print_table(rows: &[Row]) {
    println!("\n| size | connector import | curl -o | curl -o + sync | frameioclient 1.1.0 | vs curl | vs curl + sync | vs frameioclient | host peak RSS | guest memory peak |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ours = mb_per_s(r.size, r.import_secs);
        let peer = |secs: Option<f64>| secs.map_or("-".to_string(), |s| format!("{:.0} MB/s", mb_per_s(r.size, s)));
        let ratio = |secs: Option<f64>| secs.map_or("-".to_string(), |s| format!("{:.2}x", ours / mb_per_s(r.size, s)));
        println!(
            "| {} MiB | {:.0} MB/s ({:.2} s) | {} | {} | {} | {} | {} | {} | {:.1} MiB | {:.2} MiB |",
            r.size >> 20,
            ours,
            r.import_secs,
            peer(r.curl_secs),
            peer(r.curl_sync_secs),
            peer(r.frameioclient_secs),
            ratio(r.curl_secs),
            ratio(r.curl_sync_secs),
            ratio(r.frameioclient_secs),
            r.host_peak_rss as f64 / 1048576.0,
            r.guest_memory_peak as f64 / 1048576.0,
        );
    }
}

fn print_inbound(f: &inbound::Figures) {
    println!("\n| inbound (signed custom-action submissions) | requests | per second | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (name, load) in [("through the component", &f.component), ("native handler (the limit)", &f.native)] {
        println!("| {name} | {} | {:.0} | {} us | {} us |", load.requests, load.per_second, load.p50_us, load.p99_us);
    }
    println!("\ncomponent / native: {:.2}x requests per second", f.component.per_second / f.native.per_second);
    println!(
        "fresh instance + one call: {:.1} us on demand, {:.1} us pooled",
        f.instantiate_on_demand_us, f.instantiate_pooled_us
    );
    println!(
        "one submission handled, no HTTP: {:.1} us through a fresh pooled instance, {:.1} us natively",
        f.handler_component_us, f.handler_native_us
    );
}
