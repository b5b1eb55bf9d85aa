//! Inbound handling: signed custom-action requests per second and their latency
//! through the component, next to the very same handler (the connector's
//! `inbound::handle`) compiled natively and served by the same process over the
//! same storage: the limit the sandbox is measured against. Also the cost of a
//! fresh instance plus one call, with the pooling allocator off and on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use frameio_connector::host::{self as guest, Host, HostError, HostResult};
use serde_json::{Value, json};

use crate::harness::{World, WorldOptions, fixture};
use crate::runtime::Services;

/// Requests in flight at once during a load run.
const CONCURRENCY: usize = 16;
/// How long each load run lasts.
const LOAD_DURATION: Duration = Duration::from_secs(5);
/// Instantiate-and-call iterations per allocator.
const INSTANTIATIONS: u32 = 2000;
/// Instance slots when pooling.
const POOL_SIZE: u32 = 64;

/// One load run.
pub struct Load {
    pub requests: usize,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Everything this module measures.
pub struct Figures {
    pub component: Load,
    pub native: Load,
    pub instantiate_on_demand_us: f64,
    pub instantiate_pooled_us: f64,
    /// One request handled with no HTTP around it, one after another: through a
    /// fresh pooled instance, and natively.
    pub handler_component_us: f64,
    pub handler_native_us: f64,
}

/// Runs both allocators, and the load runs with the pooled one.
pub async fn measure(component: &std::path::Path, work: &std::path::Path) -> anyhow::Result<Figures> {
    let on_demand = instantiate_micros(component, work, 0).await?;
    let dir = work.join("inbound-pooled");
    let world = start_world(component, work, &dir, POOL_SIZE).await?;
    let pooled = mean_call_micros(&world).await?;
    let (binding_id, secret) = bind(&world).await?;
    let body = expired_submission(&world, &binding_id).await?;
    let (handler_component_us, handler_native_us) = handler_micros(&world, &binding_id, &body, &secret).await?;
    let component_url = format!("{}/frameio/actions/{binding_id}", world.host.public_url);
    let component_load = load(&component_url, &body, &secret).await?;
    let native_url = serve_native(world.host.services.clone()).await?;
    let native_load = load(&format!("{native_url}/actions/{binding_id}"), &body, &secret).await?;
    world.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        component: component_load,
        native: native_load,
        instantiate_on_demand_us: on_demand,
        instantiate_pooled_us: pooled,
        handler_component_us,
        handler_native_us,
    })
}

async fn start_world(component: &std::path::Path, work: &std::path::Path, dir: &std::path::Path, pool: u32) -> anyhow::Result<World> {
    let _ = std::fs::remove_dir_all(dir);
    let mut options = WorldOptions::new(component, dir);
    options.cache_dir = Some(work.join("component-cache"));
    options.pooling_instances = pool;
    World::start(options).await
}

async fn instantiate_micros(component: &std::path::Path, work: &std::path::Path, pool: u32) -> anyhow::Result<f64> {
    let dir = work.join(format!("inbound-pool-{pool}"));
    let world = start_world(component, work, &dir, pool).await?;
    let micros = mean_call_micros(&world).await;
    world.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    micros
}

/// Mean time of a fresh Store, an instance from the `InstancePre`, and one export
/// call (`provider.describe`, which makes no host call).
async fn mean_call_micros(world: &World) -> anyhow::Result<f64> {
    for _ in 0..100 {
        world.host.runtime.describe().await?;
    }
    let started = Instant::now();
    for _ in 0..INSTANTIATIONS {
        world.host.runtime.describe().await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(INSTANTIATIONS))
}

/// Mean time of one signed submission handled with no HTTP around it, through the
/// component and natively: the cost of the sandbox itself.
async fn handler_micros(world: &World, binding_id: &str, body: &[u8], secret: &str) -> anyhow::Result<(f64, f64)> {
    let ts = crate::server::unix_now();
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-frameio-request-timestamp".to_string(), ts.to_string()),
        ("x-frameio-signature".to_string(), frameio_sim::sign(secret, ts as i64, body)),
    ];
    let path = format!("/actions/{binding_id}");
    let request = crate::runtime::inbound::Request {
        method: "POST".into(),
        path: path.clone(),
        query: String::new(),
        headers: headers.clone(),
        body: body.to_vec(),
        received_at: ts,
    };
    let native_request = frameio_connector::inbound::Request { method: "POST".into(), path, query: String::new(), headers, body: body.to_vec(), received_at: ts };
    let native = NativeHost(world.host.services.clone());
    let mut component = 0.0;
    let mut natively = 0.0;
    // Interleaved rounds, so a change in the machine's load touches both alike.
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..INSTANTIATIONS / 5 {
            let reply = world.host.runtime.handle_inbound(&request).await?;
            anyhow::ensure!(reply.status == 200, "the component answered {}", reply.status);
        }
        component += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..INSTANTIATIONS / 5 {
            let reply = frameio_connector::inbound::handle(&native, &native_request);
            anyhow::ensure!(reply.status == 200, "the native handler answered {}", reply.status);
        }
        natively += started.elapsed().as_secs_f64();
    }
    let per_call = |secs: f64| secs * 1e6 / f64::from(INSTANTIATIONS);
    Ok((per_call(component), per_call(natively)))
}

/// A bound folder, and its signing secret (read back as only a test or bench may).
async fn bind(world: &World) -> anyhow::Result<(String, String)> {
    world.configure_provider().await?;
    world.connect("dana").await?;
    let folder = world.create_folder("/Bench", "Bench").await?;
    let folder_id = folder["id"].as_str().context("folder id")?;
    let bound = world.bind("dana", folder_id, fixture::REYES_STUDIO, fixture::SPRING_CAMPAIGN, "Bench inbound").await?;
    let binding_id = bound.body["id"].as_str().with_context(|| format!("bind failed: {}", bound.body))?.to_string();
    let entry = world.host.services.storage.get(&format!("binding/{binding_id}"))?.context("binding not stored")?;
    let record: Value = serde_json::from_slice(&entry.value)?;
    let secret = record["secrets"][0].as_str().context("no secret")?.to_string();
    Ok((binding_id, secret))
}

/// A form submission for an interaction the connector never saw: verified, looked
/// up, and answered with a message, with no call out of the host.
async fn expired_submission(world: &World, binding_id: &str) -> anyhow::Result<Vec<u8>> {
    let bindings = world.admin(reqwest::Method::GET, "/bindings", None).await?.body;
    let action_id = bindings
        .as_array()
        .and_then(|list| list.iter().find(|b| b["id"] == binding_id))
        .and_then(|b| b["action_id"].as_str())
        .context("the binding's action")?;
    let body = json!({ "action_id": action_id, "interaction_id": "bench-unknown", "data": { "title": "x" } });
    Ok(body.to_string().into_bytes())
}

/// Sends signed requests from `CONCURRENCY` tasks for `LOAD_DURATION`.
async fn load(url: &str, body: &[u8], secret: &str) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(CONCURRENCY).build()?;
    let deadline = Instant::now() + LOAD_DURATION;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, body, secret) = (client.clone(), url.to_string(), body.to_vec(), secret.to_string());
        tasks.push(tokio::spawn(async move { send_until(&client, &url, &body, &secret, deadline).await }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    Ok(Load { requests: latencies.len(), per_second: latencies.len() as f64 / elapsed, p50_us: at(0.5), p99_us: at(0.99) })
}

async fn send_until(client: &reqwest::Client, url: &str, body: &[u8], secret: &str, deadline: Instant) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let ts = crate::server::unix_now() as i64;
        let sent = Instant::now();
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-frameio-request-timestamp", ts.to_string())
            .header("x-frameio-signature", frameio_sim::sign(secret, ts, body))
            .body(body.to_vec())
            .send()
            .await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        latencies.push(sent.elapsed().as_micros() as u64);
        if !status.is_success() {
            bail!("{url} answered {status}");
        }
    }
    Ok(latencies)
}

/// Serves the connector's inbound handler compiled natively, on its own port.
async fn serve_native(services: Arc<Services>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().route("/actions/{id}", post(native_action)).with_state(services);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

async fn native_action(State(services): State<Arc<Services>>, UrlPath(id): UrlPath<String>, headers: HeaderMap, body: axum::body::Bytes) -> axum::response::Response {
    let req = frameio_connector::inbound::Request {
        method: "POST".into(),
        path: format!("/actions/{id}"),
        query: String::new(),
        headers: headers.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
        body: body.to_vec(),
        received_at: crate::server::unix_now(),
    };
    let reply = frameio_connector::inbound::handle(&NativeHost(services), &req);
    let status = axum::http::StatusCode::from_u16(reply.status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], reply.body).into_response()
}

/// The connector's host interface over the host's services, natively. The inbound
/// path only reads storage; the calls it never makes are refused.
struct NativeHost(Arc<Services>);

fn unavailable(e: crate::imports::storage::StorageError) -> HostError {
    HostError::Unavailable(e.to_string())
}

fn not_on_inbound_path() -> HostError {
    HostError::Refused("the native bench handler serves the inbound path only".into())
}

impl Host for NativeHost {
    fn http_send(&self, _req: guest::HttpRequest) -> HostResult<guest::HttpResponse> {
        Err(not_on_inbound_path())
    }

    fn storage_get(&self, key: &str) -> HostResult<Option<guest::Entry>> {
        let entry = self.0.storage.get(key).map_err(unavailable)?;
        Ok(entry.map(|e| guest::Entry { value: e.value, revision: e.revision }))
    }

    fn storage_set(&self, key: &str, value: &[u8]) -> HostResult<u64> {
        self.0.storage.set(key, value).map_err(unavailable)
    }

    fn storage_set_expiring(&self, key: &str, value: &[u8], expires_at: u64) -> HostResult<u64> {
        self.0.storage.set_expiring(key, value, expires_at).map_err(unavailable)
    }

    fn storage_cas(&self, key: &str, expected: Option<u64>, value: &[u8]) -> HostResult<u64> {
        self.0.storage.compare_and_swap(key, expected, value).map_err(unavailable)
    }

    fn storage_delete(&self, key: &str) -> HostResult<bool> {
        self.0.storage.delete(key).map_err(unavailable)
    }

    fn storage_list(&self, prefix: &str) -> HostResult<Vec<String>> {
        self.0.storage.list_keys(prefix).map_err(unavailable)
    }

    fn get_folder(&self, _id: &str) -> HostResult<guest::Folder> {
        Err(not_on_inbound_path())
    }

    fn ensure_folder(&self, _parent_id: &str, _key: &str, _title: &str) -> HostResult<guest::Folder> {
        Err(not_on_inbound_path())
    }

    fn set_folder_properties(&self, _folder_id: &str, _props: &[(String, String)]) -> HostResult<()> {
        Err(not_on_inbound_path())
    }

    fn find_document(&self, _folder_id: &str, _key: &str) -> HostResult<Option<guest::Document>> {
        Err(not_on_inbound_path())
    }

    fn ensure_document(&self, _folder_id: &str, _key: &str, _title: &str) -> HostResult<guest::Document> {
        Err(not_on_inbound_path())
    }

    fn add_version(&self, _doc: &str, _key: &str, _blob: &str, _props: &[(String, String)]) -> HostResult<guest::Version> {
        Err(not_on_inbound_path())
    }

    fn get_document(&self, _id: &str) -> HostResult<guest::Document> {
        Err(not_on_inbound_path())
    }

    fn renditions(&self, _doc: &str, _number: u32) -> HostResult<Vec<guest::Rendition>> {
        Err(not_on_inbound_path())
    }

    fn set_properties(&self, _doc: &str, _props: &[(String, String)]) -> HostResult<()> {
        Err(not_on_inbound_path())
    }

    fn put_comment(&self, _doc: &str, _key: &str, _parent: Option<&str>, _body: &guest::CommentBody) -> HostResult<guest::Comment> {
        Err(not_on_inbound_path())
    }

    fn set_comment_key(&self, _comment: &str, _key: &str) -> HostResult<()> {
        Err(not_on_inbound_path())
    }

    fn delete_comment(&self, _doc: &str, _key: &str) -> HostResult<bool> {
        Err(not_on_inbound_path())
    }

    fn list_comments(&self, _doc: &str) -> HostResult<Vec<guest::Comment>> {
        Err(not_on_inbound_path())
    }

    fn notify(&self, _message: guest::Message) -> HostResult<()> {
        Err(not_on_inbound_path())
    }

    fn start_download(&self, _req: guest::DownloadRequest) -> Result<guest::TransferStatus, guest::TransferError> {
        Err(guest::TransferError::InvalidRequest("the native bench handler serves the inbound path only".into()))
    }

    fn start_upload(&self, _req: guest::UploadRequest) -> Result<guest::TransferStatus, guest::TransferError> {
        Err(guest::TransferError::InvalidRequest("the native bench handler serves the inbound path only".into()))
    }

    fn transfer_status(&self, _key: &str) -> Result<Option<guest::TransferStatus>, guest::TransferError> {
        Err(guest::TransferError::InvalidRequest("the native bench handler serves the inbound path only".into()))
    }

    fn now(&self) -> u64 {
        crate::server::unix_now()
    }

    fn random_bytes(&self, n: usize) -> Vec<u8> {
        (0..n).map(|_| rand::random::<u8>()).collect()
    }

    fn sleep_ms(&self, ms: u32) {
        // The inbound path never waits; a blocking sleep is what the guest would do.
        std::thread::sleep(std::time::Duration::from_millis(ms.into()));
    }
}
