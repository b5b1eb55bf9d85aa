//! Putting the host together: open the state, compile the component, start the
//! two listeners and the worker. The binary, the demo and the tests all start the
//! host through [`start`], so they run the same thing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db::Database;
use crate::imports::http::{EgressPolicy, HttpClient};
use crate::imports::notifications::Notifier;
use crate::imports::repository::Repository;
use crate::imports::storage::KvStore;
use crate::imports::transfer::TransferEngine;
use crate::queue::JobQueue;
use crate::runtime::{Property, Runtime, Services};
use crate::sealing::{KEY_ENV, SealingKey};
use crate::server::public::INBOUND_PREFIX;
use crate::server::{self, AppState};
use crate::worker::Worker;

/// The blob store's folder under the data directory.
pub const BLOBS_DIR: &str = "blobs";

/// A running host.
pub struct RunningHost {
    /// Where Frame.io reaches the host (custom actions are under `<public_url>/frameio`).
    pub public_url: String,
    /// The admin API's base URL.
    pub admin_url: String,
    /// The outbox folder of .eml files.
    pub outbox_dir: PathBuf,
    /// The job queue, for inspection.
    pub queue: JobQueue,
    /// The services behind the imports, for inspection.
    pub services: Arc<Services>,
    /// The component runtime, for measurements that call it directly.
    pub runtime: Arc<Runtime>,
    tasks: Vec<JoinHandle<()>>,
    /// Held while the host runs, so no second host opens the same state.
    _data_dir_lock: std::fs::File,
}

impl RunningHost {
    /// Stops the listeners and the worker, and releases the data directory. Job steps
    /// and transfers already under way are not awaited: they finish, or are dropped
    /// with the runtime. A process that starts another host on the same directory
    /// right after this (tests do not) could see such a job as orphaned and run its
    /// step a second time, which steps tolerate (they are idempotent).
    pub fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A path from the config: relative ones are under the data directory.
fn under(data_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { data_dir.join(path) }
}

/// Starts the host described by `config`.
pub async fn start(config: Config) -> anyhow::Result<RunningHost> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir_lock = lock_data_dir(&data_dir)?;
    let public = TcpListener::bind(config.server.public_listen).await.context("binding the public listener")?;
    let admin = TcpListener::bind(config.server.admin_listen).await.context("binding the admin listener")?;
    let public_url = config.public_url(public.local_addr()?);
    let admin_url = format!("http://{}", admin.local_addr()?);

    let sealing = Arc::new(sealing_key(&config, &data_dir)?);
    let db = Database::open(&data_dir.join("host.sqlite3"))?;
    let blobs = BlobStore::open(&data_dir.join(BLOBS_DIR), db.clone())?;
    let mut notifications = config.notifications.clone();
    notifications.outbox_dir = under(&data_dir, &notifications.outbox_dir);
    let outbox_dir = notifications.outbox_dir.clone();
    let media_egress = EgressPolicy::new(&config.transfer.allow_hosts, &config.http.allow_private_networks)?;
    let transfers = TransferEngine::new(db.clone(), blobs.clone(), media_egress, config.transfer.clone())?;
    let services = Services {
        storage: KvStore::new(db.clone(), &config.tenant, sealing),
        repository: Repository::new(db.clone(), blobs.clone(), &format!("{admin_url}/admin/api")),
        blobs,
        notifier: Notifier::new(notifications)?,
        http: HttpClient::new(config.http.clone())?,
        transfers: transfers.clone(),
    };
    let services = Arc::new(services);
    let runtime = Arc::new(Runtime::new(&config, services.clone())?);
    configure_provider(&runtime, &config, &public_url).await?;
    transfers.resume_unfinished().await;

    let queue = JobQueue::new(db);
    let orphans = queue.requeue_orphans(crate::db::unix_millis())?;
    if orphans > 0 {
        tracing::warn!(jobs = orphans, "resuming jobs that were running when the host last stopped");
    }
    let wake = Arc::new(Notify::new());
    let state = AppState {
        runtime: runtime.clone(),
        queue: queue.clone(),
        wake: wake.clone(),
        public_url: public_url.clone(),
        max_inbound_body_bytes: config.server.max_inbound_body_bytes,
    };
    let worker = Worker::new(runtime.clone(), queue.clone(), wake, config.worker.clone());
    let tasks = vec![
        serve(public, server::public::router(state.clone())),
        serve(admin, server::admin::router(state)),
        tokio::spawn(worker.run()),
    ];
    tracing::info!(%public_url, %admin_url, "host-shim is up");
    Ok(RunningHost { public_url, admin_url, outbox_dir, queue, services, runtime, tasks, _data_dir_lock: data_dir_lock })
}

/// Takes the data directory's lock file. The operating system drops the lock when
/// the process dies, however it dies, so a host restarted after a crash gets it back,
/// and knows that jobs left running belong to no one.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("host.lock");
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!("another host-shim is running on {}; stop it first", data_dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// The key sealing the connector's storage: from `FRAMEIO_DAM_KEY` when it is set
/// (for deployments that keep secrets out of the file system), else the key file.
fn sealing_key(config: &Config, data_dir: &Path) -> anyhow::Result<SealingKey> {
    match SealingKey::from_env(KEY_ENV) {
        Some(key) => key,
        None => SealingKey::load_or_create(&under(data_dir, &config.key_file)),
    }
}

/// Applies the config's `[provider]` settings, refusing to start when they are invalid.
async fn configure_provider(runtime: &Runtime, config: &Config, public_url: &str) -> anyhow::Result<()> {
    if config.provider.is_empty() {
        return Ok(());
    }
    let mut settings = config.provider.clone();
    settings.entry("public-url".into()).or_insert_with(|| format!("{public_url}{INBOUND_PREFIX}"));
    let settings = settings.into_iter().map(|(name, value)| Property { name, value }).collect();
    match runtime.configure(settings).await? {
        Ok(()) => Ok(()),
        Err(e) => anyhow::bail!("the [provider] settings were refused: {}", server::error_status(&e).1),
    }
}

fn serve(listener: TcpListener, router: axum::Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(?addr, error = %e, "listener stopped");
        }
    })
}
