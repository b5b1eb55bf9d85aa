//! Project archive through faults and kills, on each API generation: a generated
//! project of a few hundred assets is archived while Frame.io's API answers 429s and
//! 5xx, its storage 5xx, cut bodies and expired links, and the `host-shim` process is
//! SIGKILLed and restarted at random moments. At the end the DAM's tree equals the
//! project's (folders, documents, versions in order, bytes, comments), nothing is
//! there twice, and the report counts it all.
//!
//! `ARCHIVE_CHAOS_FILES` (default 100), `ARCHIVE_CHAOS_KILLS` (default 3),
//! `ARCHIVE_CHAOS_SEED` and `ARCHIVE_CHAOS_API` (`v2` or `v4`) size and pin a run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use frameio_connector::frameio::model::Generation;
use frameio_sim::{Cut, Faults, GenerateSpec, MediaFaults, RouteClass, RouteFaults, SimClient, SimOptions, Simulator};
use host_shim::harness::AdminClient;
use host_shim::harness::archive::{dam_copy, expected_copy};
use host_shim::harness::child::{ChildHost, ChildOptions};
use host_shim::harness::fixture::Fixture;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

/// How long the archive may take once the last kill is over.
const FINISH_TIMEOUT: Duration = Duration::from_secs(240);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_killed_again_and_again_ends_equal_to_the_project() {
    let apis = match std::env::var("ARCHIVE_CHAOS_API").as_deref() {
        Ok("v2") => vec![Generation::V2],
        Ok("v4") => vec![Generation::V4],
        _ => vec![Generation::V2, Generation::V4],
    };
    for api in apis {
        chaos_on(Fixture::of(api)).await;
    }
}

async fn chaos_on(fx: &'static Fixture) {
    let files = env_or("ARCHIVE_CHAOS_FILES", 100);
    let kills = env_or("ARCHIVE_CHAOS_KILLS", 3);
    let seed = env_or("ARCHIVE_CHAOS_SEED", rand::random::<u32>().into());
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into()).await.unwrap();
    let control = SimClient::new(sim.base_url()).unwrap();
    let spec = GenerateSpec {
        files,
        folder_depth: 3,
        folders_per_folder: 3,
        stack_every: 7,
        versions_per_stack: 3,
        comment_every: 5,
        replies_per_comment: 1,
        incomplete_every: 40,
        file_size: 160 * 1024,
        size_spread: 0.6,
        seed,
    };
    control.generate_project(fx.project, &spec).await.unwrap();
    let tree = control.project_tree(fx.project, false).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut host = start_host(scratch.path(), &sim, fx.api).await.unwrap();
    host.admin.connect("dana").await.unwrap();
    let folder = host.admin.create_folder("/Archive", "Archive").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_string();
    control.set_faults(&faults(seed)).await.unwrap();

    let body = json!({ "user": "dana", "account_id": fx.account, "project_id": fx.project, "folder_id": folder_id });
    let answer = host.admin.admin_ok(Method::POST, "/archives", Some(body)).await.unwrap();
    let key = answer["key"].as_str().unwrap().to_string();
    let mut killed = 0;
    while killed < kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1_500))).await;
        if archive_state(&host.admin, &key).await == "done" {
            break;
        }
        host.kill();
        killed += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        host.restart().await.expect("the host comes back after a kill");
    }
    let deadline = Instant::now() + FINISH_TIMEOUT;
    while archive_state(&host.admin, &key).await != "done" {
        assert!(Instant::now() < deadline, "the archive did not finish: {:?}", archives(&host.admin).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let injected = control.fault_counts().await.unwrap();
    control.set_faults(&Faults::default()).await.unwrap();

    let (want, left_out) = expected_copy(&tree);
    let copy = dam_copy(&host.admin, "/Archive").await.unwrap();
    let differing: Vec<String> = want
        .documents
        .iter()
        .filter(|(k, want)| copy.documents.get(*k) != Some(want))
        .map(|(k, want)| format!("{k}: Frame.io {want:?}, DAM {:?}", copy.documents.get(k)))
        .collect();
    let report = host.admin.admin_ok(Method::GET, &format!("/folders/{folder_id}/properties"), None).await.unwrap();
    let property = |name: &str| report["properties"][name].as_str().unwrap_or_default().to_string();
    println!(
        "archive chaos ({}): seed {seed}, {} folders, {} documents, {} versions, {} bytes, {left_out} left out; kills {killed}; \
         faults injected {injected:?}; differing documents {}, in {:.1} s",
        fx.api.name(),
        copy.folders.len(),
        copy.documents.len(),
        copy.versions(),
        copy.bytes(),
        differing.len(),
        started.elapsed().as_secs_f64(),
    );
    println!("left out, as the report says:\n{}", property("frameio.archive.skipped-assets"));
    assert!(killed > 0, "the host was killed at least once");
    assert_eq!(copy.folders, want.folders);
    assert!(differing.is_empty(), "documents differing from Frame.io: {differing:?}");
    assert_eq!(copy.documents.len(), want.documents.len(), "no extra document");
    assert_eq!(property("frameio.archive.documents"), want.documents.len().to_string());
    assert_eq!(property("frameio.archive.versions"), want.versions().to_string());
    assert_eq!(property("frameio.archive.skipped"), left_out.to_string());
    host.kill();
}

async fn archives(admin: &AdminClient) -> Value {
    admin.admin_ok(Method::GET, "/archives", None).await.unwrap_or_default()
}

/// The archive's state; empty while the host cannot answer.
async fn archive_state(admin: &AdminClient, key: &str) -> String {
    let listed = archives(admin).await;
    let found = listed["archives"].as_array().into_iter().flatten().find(|a| a["key"] == key);
    found.and_then(|a| a["state"].as_str()).unwrap_or_default().to_lowercase()
}

/// Passing faults on every read the archive makes, and on its downloads.
fn faults(seed: u64) -> Faults {
    let flaky = RouteFaults { rate_limited: 0.02, server_error: 0.03, ..RouteFaults::default() };
    let classes = [RouteClass::AssetRead, RouteClass::AssetChildren, RouteClass::Read, RouteClass::V4Read, RouteClass::FolderChildren, RouteClass::FileRead];
    Faults {
        seed,
        api: classes.into_iter().map(|c| (c, flaky.clone())).collect(),
        // Expired links are drawn per request here, where real ones expire with time:
        // a file fetched anew with a fresh link starts from its first byte, so the
        // rate stays low enough for the seed's 24 MiB file to get through.
        media: MediaFaults { server_error: 0.04, expired: 0.01, cut: Cut { rate: 0.04, after_bytes: 32 << 10 }, ..MediaFaults::default() },
        ..Faults::default()
    }
}

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
        range_size: Some(1 << 20),
        checkpoint_bytes: Some(1 << 20),
        rust_log: Some("info".into()),
        server_settings: Vec::new(),
        open_files_limit: None,
        api,
    })
    .await
}
