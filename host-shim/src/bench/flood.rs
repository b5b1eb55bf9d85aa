//! Good clicks during a flood of bad signatures: the latency a real Frame.io user
//! sees while another address posts 256 KiB bodies signed with the wrong secret as
//! fast as it can. Run twice, on host-shim child processes: with the limit on failed
//! verifications per source turned off, and with the default limit.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use frameio_sim::{SimClient, Simulator};

use super::child_options;
use crate::harness::child::ChildHost;
use crate::harness::fixture;

/// Good clicks timed in each phase.
const CLICKS: usize = 200;
/// Connections the flood keeps busy at once.
const FLOOD_LANES: usize = 4;
/// The flood's body: the public listener's default cap.
const FLOOD_BODY_BYTES: usize = 256 * 1024;
/// The flood's own loopback address, apart from the simulator's.
const FLOOD_SOURCE: [u8; 4] = [127, 0, 0, 2];

/// One configuration's figures.
pub struct FloodFigures {
    pub name: &'static str,
    pub quiet: Latency,
    pub flooded: Latency,
    /// Flood requests per second, and how many were answered 429.
    pub flood_per_second: f64,
    pub flood_refused: u64,
    pub flood_requests: u64,
}

/// Good-click latency, in milliseconds.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Measures both configurations.
pub async fn measure(sim: &Simulator, component: &Path, work: &Path) -> anyhow::Result<Vec<FloodFigures>> {
    let mut figures = Vec::new();
    for (name, limit) in [("limit off", "failed_verifications_per_minute = 0"), ("limit on (defaults)", "")] {
        let dir = work.join("host-flood");
        let _ = std::fs::remove_dir_all(&dir);
        let mut options = child_options(sim, component, work, &dir)?;
        options.server_settings = vec![limit.to_string()];
        let host = ChildHost::start(options).await?;
        let measured = measure_one(name, &host, &sim.base_url()).await;
        host.stop();
        std::fs::remove_dir_all(&dir)?;
        figures.push(measured?);
    }
    Ok(figures)
}

async fn measure_one(name: &'static str, host: &ChildHost, sim_base: &str) -> anyhow::Result<FloodFigures> {
    let admin = &host.admin;
    admin.connect("dana").await?;
    let folder = admin.create_folder("/Flood", "Flood").await?;
    // Action names are unique per team, and both configurations bind in the same one.
    let folder_id = folder["id"].as_str().context("folder id")?;
    let bound = admin.bind("dana", folder_id, fixture::REYES_STUDIO, fixture::SPRING_CAMPAIGN, &format!("Flood, {name}")).await?;
    let action_id = bound.body["action_id"].as_str().with_context(|| format!("bind failed: {}", bound.body))?.to_string();
    let binding = bound.body["id"].as_str().context("binding id")?;
    let control = SimClient::new(sim_base)?;

    eprintln!("flood, {name}: {CLICKS} good clicks without a flood");
    let quiet = clicks(&control, &action_id).await?;
    eprintln!("flood, {name}: {CLICKS} good clicks during a flood of bad signatures");
    let target = format!("{}/frameio/actions/{binding}", admin.public_url);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let lanes: Vec<_> = (0..FLOOD_LANES)
        .map(|_| tokio::spawn(flood(target.clone(), stop.clone(), sent.clone(), refused.clone())))
        .collect();
    // Let the flood reach its pace before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = clicks(&control, &action_id).await;
    stop.store(true, Ordering::Relaxed);
    for lane in lanes {
        lane.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let flood_requests = sent.load(Ordering::Relaxed);
    Ok(FloodFigures {
        name,
        quiet,
        flooded: flooded?,
        flood_per_second: flood_requests as f64 / elapsed,
        flood_refused: refused.load(Ordering::Relaxed),
        flood_requests,
    })
}

/// Times `CLICKS` signed clicks, one after another, through the simulator.
async fn clicks(control: &SimClient, action_id: &str) -> anyhow::Result<Latency> {
    let mut times = Vec::with_capacity(CLICKS);
    for _ in 0..CLICKS {
        let started = Instant::now();
        let form = control.click(action_id, fixture::INTERVIEW_MP4, Some(fixture::SAM)).await?;
        anyhow::ensure!(form.status == 200, "a good click was answered {}: {}", form.status, form.body);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Latency { p50_ms: at(0.50), p99_ms: at(0.99) })
}

/// Posts bad signatures from [`FLOOD_SOURCE`] until told to stop.
async fn flood(url: String, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>, refused: Arc<AtomicU64>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().local_address(Some(FLOOD_SOURCE.into())).build()?;
    let body = bytes::Bytes::from(vec![b'x'; FLOOD_BODY_BYTES]);
    while !stop.load(Ordering::Relaxed) {
        let now = crate::server::unix_now();
        let answer = client
            .post(&url)
            .header("x-frameio-request-timestamp", now.to_string())
            .header("x-frameio-signature", format!("v0={}", "0".repeat(64)))
            .body(body.clone())
            .send()
            .await;
        sent.fetch_add(1, Ordering::Relaxed);
        if answer.is_ok_and(|a| a.status() == reqwest::StatusCode::TOO_MANY_REQUESTS) {
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Prints the figures as a table.
pub fn print(figures: &[FloodFigures]) {
    println!("\n| good signed clicks | p50 quiet | p99 quiet | p50 flooded | p99 flooded | flood req/s | flood answered 429 |");
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} | {} of {} |",
            f.name, f.quiet.p50_ms, f.quiet.p99_ms, f.flooded.p50_ms, f.flooded.p99_ms, f.flood_per_second, f.flood_refused, f.flood_requests
        );
    }
}
