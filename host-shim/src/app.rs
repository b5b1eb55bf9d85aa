//! Putting the host together: open the state, compile the component, start the
//! two listeners and the worker. The binary, the demo and the tests all start the
//! host through [`start`], so they run the same thing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::console::{self, ConsoleState};
use crate::console::switch::ProviderSwitch;
use crate::db::Database;
use crate::imports::http::{EgressPolicy, HttpClient};
use crate::imports::notifications::Notifier;
use crate::imports::repository::Repository;
use crate::imports::storage::KvStore;
use crate::imports::transfer::TransferEngine;
use crate::queue::JobQueue;
use crate::retention::Retention;
use crate::runtime::{Property, Runtime, Services};
use crate::sealing::{KEY_ENV, SealingKey};
use crate::secret_file;
use crate::server::admin_guard::AdminGuard;
use crate::server::body::BodyLimits;
use crate::server::connections::Timeouts;
use crate::server::listener::{self, ListenerLimits};
use crate::server::public::INBOUND_PREFIX;
use crate::server::throttle::FailureLimiter;
use crate::server::{self, AppState};
use crate::worker::Worker;

/// The blob store's folder under the data directory.
pub const BLOBS_DIR: &str = "blobs";
/// The environment variable that, when set, holds the admin API's token.
pub const ADMIN_TOKEN_ENV: &str = "FRAMEIO_DAM_ADMIN_TOKEN";
/// The shortest admin token accepted from the config or the environment.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;
/// Largest body the admin API reads.
const MAX_ADMIN_BODY_BYTES: usize = 1 << 20;

/// A running host.
pub struct RunningHost {
    /// Where Frame.io reaches the host (custom actions are under `<public_url>/frameio`).
    pub public_url: String,
    /// The admin API's base URL.
    pub admin_url: String,
    /// The admin API's bearer token.
    pub admin_token: String,
    /// The outbox folder of .eml files.
    pub outbox_dir: PathBuf,
    /// The job queue, for inspection.
    pub queue: JobQueue,
    /// The services behind the imports, for inspection.
    pub services: Arc<Services>,
    /// The component runtime, for measurements that call it directly.
    pub runtime: Arc<Runtime>,
    retention: Retention,
    tasks: Vec<JoinHandle<()>>,
    /// Held while the host runs, so no second host opens the same state.
    _data_dir_lock: std::fs::File,
}

impl RunningHost {
    /// Runs a retention sweep as of `now_secs` (Unix seconds), as the periodic one
    /// does; tests pass a time ahead of the clock to see what would go then.
    pub fn sweep(&self, now_secs: i64) -> rusqlite::Result<crate::retention::Swept> {
        self.retention.sweep(now_secs)
    }

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
    let admin_token = admin_token(&config, &data_dir)?;
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

    let queue = JobQueue::new(db.clone());
    let orphans = queue.requeue_orphans(crate::db::unix_millis())?;
    if orphans > 0 {
        tracing::warn!(jobs = orphans, "resuming jobs that were running when the host last stopped");
    }
    crate::dam_outbox::replay(&runtime, &queue, &db).await?;
    let wake = Arc::new(Notify::new());
    let server = &config.server;
    let state = AppState {
        runtime: runtime.clone(),
        queue: queue.clone(),
        wake: wake.clone(),
        public_url: public_url.clone(),
        inbound_slots: Arc::new(Semaphore::new(server.inbound_concurrency)),
        console_url: admin_url.clone(),
    };
    let scheduler = crate::schedule::spawn(runtime.clone(), queue.clone(), wake.clone());
    let worker = Worker::new(runtime.clone(), queue.clone(), wake, config.worker.clone());
    let retention = Retention { db: db.clone(), queue: queue.clone(), transfers, config: config.retention.clone() };
    let (public_limits, admin_limits) = listener_limits(server);
    let read_timeout = Duration::from_millis(server.body_read_timeout_ms);
    let public_router = server::public::router(
        state.clone(),
        BodyLimits { max_bytes: server.max_inbound_body_bytes, read_timeout },
        FailureLimiter::new(server.failed_verifications_burst, server.failed_verifications_per_minute),
    );
    // Frame.io can be switched off from the console; its requests are then refused.
    let switch = ProviderSwitch::open(&data_dir);
    let public_router = public_router.layer(axum::middleware::from_fn_with_state(switch.clone(), console::switch::refuse_when_disabled));
    let admin_guard = AdminGuard::new(admin_token.clone(), &server.admin_hosts);
    let admin_limits_body = BodyLimits { max_bytes: MAX_ADMIN_BODY_BYTES, read_timeout };
    // The console shares the admin listener, with its own sign-in instead of the token.
    let console = ConsoleState::new(state.clone(), config.console.clone(), admin_guard.clone(), switch);
    let admin_router =
        server::admin::router(state, admin_guard, admin_limits_body).merge(console::router(console, admin_limits_body));
    let tasks = vec![
        listener::serve("public", public, public_router, public_limits),
        listener::serve("admin", admin, admin_router, admin_limits),
        tokio::spawn(worker.run()),
        retention.clone().spawn(),
        scheduler,
    ];
    tracing::info!(%public_url, %admin_url, "host-shim is up");
    Ok(RunningHost {
        public_url,
        admin_url,
        admin_token,
        outbox_dir,
        queue,
        services,
        runtime,
        retention,
        tasks,
        _data_dir_lock: data_dir_lock,
    })
}

/// Each listener's cap and timeouts, the caps fitted to the open-file limit (raised
/// to its hard limit first).
fn listener_limits(server: &crate::config::ServerConfig) -> (ListenerLimits, ListenerLimits) {
    let open_files = listener::raise_open_files_limit();
    let (public, admin) = listener::fit_caps(server.public_max_connections, server.admin_max_connections, open_files);
    let timeouts = Timeouts {
        header: Duration::from_millis(server.header_read_timeout_ms),
        idle: Duration::from_millis(server.idle_timeout_ms),
    };
    (ListenerLimits { max_connections: public, timeouts }, ListenerLimits { max_connections: admin, timeouts })
}

/// The admin API's token: from the config, else `FRAMEIO_DAM_ADMIN_TOKEN`, else the
/// token file (created on first start, mode 0600). An admin API on an address other
/// than loopback needs a token chosen by the operator, not one left in a file.
fn admin_token(config: &Config, data_dir: &Path) -> anyhow::Result<String> {
    let chosen = Some(config.server.admin_token.clone())
        .filter(|t| !t.is_empty())
        .or_else(|| std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.is_empty()));
    if let Some(token) = chosen {
        anyhow::ensure!(
            token.trim().chars().count() >= MIN_ADMIN_TOKEN_CHARS,
            "the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters"
        );
        return Ok(token.trim().to_string());
    }
    anyhow::ensure!(
        config.server.admin_listen.ip().is_loopback(),
        "server.admin_listen is {}, which is not loopback: set server.admin_token or ${ADMIN_TOKEN_ENV} first",
        config.server.admin_listen
    );
    let path = under(data_dir, &config.server.admin_token_file);
    let (token, created) = secret_file::load_or_create(&path)?;
    if created {
        tracing::info!(path = %path.display(), "created the admin API's token");
    }
    Ok(hex::encode(token))
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
