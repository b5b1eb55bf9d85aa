//! A DAM change the host stored but had not yet told the connector of when it was
//! killed (`dam-events.notify` not called, or its jobs not queued) is told when the
//! host starts again: a comment made in the DAM still reaches Frame.io, and a comment
//! deleted in the DAM still leaves Frame.io (else the next sync would bring it back).
//! The test leaves a stopped host's database as such a kill does, on both generations.
//!
//! ```sh
//! cargo xtask build
//! cargo test -p host-shim --test dam_events_replay
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use frameio_connector::frameio::model::Generation;
use frameio_sim::{Api, SimClient, SimOptions, Simulator};
use host_shim::blobs::BlobStore;
use host_shim::dam_outbox::{self, Change, Said};
use host_shim::db::Database;
use host_shim::harness::AdminClient;
use host_shim::harness::child::{ChildHost, ChildOptions};
use host_shim::harness::fixture::Fixture;
use host_shim::imports::repository::Repository;
use reqwest::Method;
use serde_json::{Value, json};

const DAM_USER: &str = "dana";
const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dam_changes_stored_before_a_kill_reach_frameio_when_the_host_starts_again() {
    for api in [Generation::V2, Generation::V4] {
        replayed_on(Fixture::of(api)).await.unwrap_or_else(|e| panic!("{}: {e:#}", api.name()));
    }
}

async fn replayed_on(fx: &'static Fixture) -> anyhow::Result<()> {
    let sim = Simulator::start(frameio_sim::Seed::default_fixture(), SimOptions::default(), ([127, 0, 0, 1], 0).into()).await?;
    let control = SimClient::new(sim.base_url())?;
    let scratch = tempfile::tempdir()?;
    let data_dir = scratch.path().join("data");
    let mut host = start_host(&data_dir, &sim, fx.api).await?;
    let admin = host.admin.clone();

    admin.connect(DAM_USER).await?;
    let folder_id = admin.create_folder("/Replay", "Replay").await?["id"].as_str().context("folder id")?.to_string();
    let bound = admin.bind(DAM_USER, &folder_id, fx.account, fx.project, "Replay import").await?;
    anyhow::ensure!(bound.status == 201, "bind: {}", bound.body);
    let action_id = bound.body["action_id"].as_str().context("action id")?.to_string();
    let form = control.click(&action_id, fx.video, None).await?;
    control.submit(&action_id, &form.interaction_id, fx.video, None, json!({ "title": "", "notify": "no" })).await?;
    let pushed = admin.wait_for_job(&format!("push:{}", form.interaction_id), TIMEOUT).await?;
    anyhow::ensure!(pushed.state == "done", "push: {pushed:?}");
    let document = admin.documents(&folder_id).await?.first().and_then(|d| d["id"].as_str().map(str::to_string)).context("the document")?;

    // A comment made while all is well reaches Frame.io.
    let made = admin.admin_ok(Method::POST, &format!("/documents/{document}/comments"), Some(json!({ "user": DAM_USER, "text": "Told at once" }))).await?;
    let told = made["id"].as_str().context("comment id")?.to_string();
    let told_key = wait_for_key(&admin, &document, &told).await?;

    // Killed right after storing two changes, before telling the connector: a new
    // comment, and the delete of the first. The database holds each with its event.
    host.kill();
    let untold = {
        let db = Database::open(&data_dir.join("host.sqlite3"))?;
        let repo = Repository::new(db.clone(), BlobStore::open(&data_dir.join(host_shim::app::BLOBS_DIR), db)?, "http://dam.invalid/admin/api");
        let added = |c: &_, comment: &_| dam_outbox::record(c, vec![Change::Added(Said::of(comment, DAM_USER))]);
        let (comment, _) = repo.add_user_comment(&document, None, DAM_USER, "Stored, then the host died", Some(12), added)?;
        let deleted = |c: &_, thread: &[_]| dam_outbox::record(c, thread.iter().map(|t| Change::Deleted(Said::of(t, DAM_USER))).collect());
        repo.remove_user_comment(&told, deleted)?;
        comment.id
    };
    host.restart().await?;

    let key = wait_for_key(&admin, &document, &untold).await?;
    let token = control.token(fx.consenting_user, if fx.api == Generation::V4 { Api::V4 } else { Api::V2 }).await?.access_token;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let texts = frameio_texts(&sim, fx, &token).await?;
        let ids: Vec<&str> = texts.iter().map(|(id, _)| id.as_str()).collect();
        if ids.contains(&key.as_str()) && !ids.contains(&told_key.as_str()) {
            anyhow::ensure!(texts.iter().any(|(_, text)| text == "Stored, then the host died"), "{texts:?}");
            break;
        }
        if Instant::now() > deadline {
            bail!("Frame.io has {texts:?}: expected {key} and not {told_key}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And nothing comes back into the DAM once the reconcile has synced the file
    // again (queued as the scheduler would, into the stopped host's queue).
    settle(&admin).await?;
    host.kill();
    let queue = host_shim::queue::JobQueue::new(Database::open(&data_dir.join("host.sqlite3"))?);
    let reconcile = frameio_connector::flows::sync::ReconcileJob::request();
    let reconcile_key = format!("{}@replay", reconcile.key);
    queue.enqueue(&reconcile_key, &reconcile.kind, &reconcile.payload)?.context("a reconcile already queued")?;
    host.restart().await?;
    let run = admin.wait_for_job(&reconcile_key, TIMEOUT).await?;
    anyhow::ensure!(run.state == "done", "the reconcile: {run:?}");
    settle(&admin).await?;
    let dam: Vec<String> = comments(&admin, &document).await?.into_iter().filter_map(|c| c["text"].as_str().map(str::to_string)).collect();
    anyhow::ensure!(dam == ["Stored, then the host died"], "the DAM holds {dam:?}");
    host.kill();
    sim.shutdown().await;
    Ok(())
}

/// Waits until the DAM comment `id` has a Frame.io key; the Frame.io comment id.
async fn wait_for_key(admin: &AdminClient, document: &str, id: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found = comments(admin, document).await?.into_iter().find(|c| c["id"] == id);
        if let Some(key) = found.as_ref().and_then(|c| c["external_key"].as_str()).and_then(|k| k.strip_prefix("frameio:")) {
            return Ok(key.to_string());
        }
        if Instant::now() > deadline {
            bail!("DAM comment {id} got no Frame.io key: {found:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A document's comments, replies included, flattened.
async fn comments(admin: &AdminClient, document: &str) -> anyhow::Result<Vec<Value>> {
    fn walk(list: &Value, flat: &mut Vec<Value>) {
        for c in list.as_array().into_iter().flatten() {
            flat.push(c.clone());
            walk(&c["replies"], flat);
        }
    }
    let thread = admin.admin_ok(Method::GET, &format!("/documents/{document}/comments"), None).await?;
    let mut flat = Vec::new();
    walk(&thread["comments"], &mut flat);
    Ok(flat)
}

/// The video's comments in Frame.io (first page is all there is): ids and texts.
async fn frameio_texts(sim: &Simulator, fx: &Fixture, token: &str) -> anyhow::Result<Vec<(String, String)>> {
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let list: Vec<Value> = if fx.api == Generation::V2 {
        http.get(format!("{base}/v2/assets/{}/comments?page_size=100", fx.video)).bearer_auth(token).send().await?.error_for_status()?.json().await?
    } else {
        let url = format!("{base}/v4/accounts/{}/files/{}/comments?page_size=100", fx.account, fx.video);
        let body: Value = http.get(url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        body["data"].as_array().cloned().unwrap_or_default()
    };
    Ok(list.iter().map(|c| (c["id"].as_str().unwrap_or_default().to_string(), c["text"].as_str().unwrap_or_default().to_string())).collect())
}

/// Waits until no job is queued or running.
async fn settle(admin: &AdminClient) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let jobs = admin.admin_ok(Method::GET, "/stats", None).await?["jobs"].clone();
        if jobs["queued"].as_u64().unwrap_or(0) + jobs["running"].as_u64().unwrap_or(0) == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("jobs unfinished after {TIMEOUT:?}: {jobs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host as a child process, so that it can be SIGKILLed.
async fn start_host(data_dir: &Path, sim: &Simulator, api: Generation) -> anyhow::Result<ChildHost> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("target/wasm32-wasip2/wasm/frameio_connector.wasm");
    anyhow::ensure!(component.exists(), "{} is missing: run `cargo xtask build` first", component.display());
    ChildHost::start(ChildOptions {
        binary: env!("CARGO_BIN_EXE_host-shim").into(),
        data_dir: data_dir.to_path_buf(),
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
