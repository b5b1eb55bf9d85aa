//! A host-shim in a child process, pointed at a simulator: for measurements that
//! must see the host's memory on its own (the bench) and for tests that kill it
//! (the chaos test). It keeps its configuration and ports across restarts, as a
//! real host does, because Frame.io keeps calling the same custom-action URL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use frameio_connector::frameio::model::Generation;

use super::{AdminClient, provider_settings};

/// How long a child may take to come up (the first start compiles the component).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How to run the child.
pub struct ChildOptions {
    /// The `host-shim` binary.
    pub binary: PathBuf,
    /// The host's data directory; its config file and log go there too.
    pub data_dir: PathBuf,
    pub component: PathBuf,
    /// The compiled-component cache, shared between children to compile once.
    pub cache_dir: PathBuf,
    /// The simulator's base URL (`http://127.0.0.1:<port>`).
    pub sim_base: String,
    /// `[transfer] range_size`, when not the default.
    pub range_size: Option<u64>,
    /// `[transfer] checkpoint_bytes`, when not the default.
    pub checkpoint_bytes: Option<u64>,
    /// `RUST_LOG` for the child; its log (standard error) goes to `host-shim.log`.
    pub rust_log: Option<String>,
    /// More `[server]` settings, as TOML lines (`idle_timeout_ms = 500`).
    pub server_settings: Vec<String>,
    /// The child's open-file limit (soft and hard), when not inherited.
    pub open_files_limit: Option<u64>,
    /// The Frame.io API generation the provider is configured for.
    pub api: Generation,
}

/// A child host, running or killed.
pub struct ChildHost {
    options: ChildOptions,
    config_path: PathBuf,
    process: Option<Child>,
    pub admin: AdminClient,
}

/// A free loopback port (bound and released; the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ChildHost {
    /// Writes the child's config (provider, listeners and egress for the simulator)
    /// and starts it.
    pub async fn start(options: ChildOptions) -> anyhow::Result<ChildHost> {
        std::fs::create_dir_all(&options.data_dir)?;
        let (public, admin) = (free_port()?, free_port()?);
        let config_path = options.data_dir.join("host.toml");
        let token = hex::encode(rand::random::<[u8; 32]>());
        std::fs::write(&config_path, config_toml(&options, public, admin, &token))?;
        let admin = AdminClient::new(&format!("http://127.0.0.1:{admin}"), &format!("http://127.0.0.1:{public}"), &token)?;
        let mut child = ChildHost { options, config_path, process: None, admin };
        child.restart().await?;
        Ok(child)
    }

    /// Starts the process (again, after [`ChildHost::kill`]) and waits until its
    /// admin API answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let mut command = Command::new(&self.options.binary);
        command.args(["serve", "--config"]).arg(&self.config_path).stdout(Stdio::null()).stderr(log);
        if let Some(filter) = &self.options.rust_log {
            command.env("RUST_LOG", filter);
        }
        if let Some(limit) = self.options.open_files_limit {
            limit_open_files(&mut command, limit);
        }
        self.process = Some(command.spawn().context("starting the host-shim child")?);
        self.wait_until_up().await
    }

    async fn wait_until_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.admin.admin(reqwest::Method::GET, "/stats", None).await.is_ok_and(|a| a.status.is_success()) {
                return Ok(());
            }
            if let Some(status) = self.process.as_mut().and_then(|p| p.try_wait().ok().flatten()) {
                bail!("the host-shim child exited with {status}; see {}", self.log_path().display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the host-shim child did not come up within {START_TIMEOUT:?}; see {}", self.log_path().display())
    }

    /// The child's log (its standard error), across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.options.data_dir.join("host-shim.log")
    }

    /// The child's peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let pid = self.process.as_ref().context("the child is not running")?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }

    /// SIGKILL: no destructor runs, nothing is flushed, as when a machine dies.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Stops the child.
    pub fn stop(mut self) {
        self.kill();
    }
}

impl Drop for ChildHost {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the child start with at most `limit` open files, hard limit included, so
/// that it cannot raise it.
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
}

/// The child's config: the simulator's OAuth app and endpoints, loopback listeners,
/// and egress to the simulator's port alone.
fn config_toml(options: &ChildOptions, public: u16, admin: u16, admin_token: &str) -> String {
    let sim_base = &options.sim_base;
    let sim_authority = sim_base.trim_start_matches("http://");
    let range_size = options.range_size.map(|bytes| format!("range_size = {bytes}\n")).unwrap_or_default();
    let checkpoint_bytes = options.checkpoint_bytes.map(|bytes| format!("checkpoint_bytes = {bytes}\n")).unwrap_or_default();
    format!(
        r#"data_dir = {data_dir:?}
component = {component:?}

[provider]
{provider}

[server]
public_listen = "127.0.0.1:{public}"
admin_listen = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
{server_settings}

[runtime]
cache_dir = {cache_dir:?}

[http]
allow_hosts = ["{sim_authority}"]
allow_private_networks = ["127.0.0.0/8"]

[transfer]
allow_hosts = ["{sim_authority}"]
{range_size}{checkpoint_bytes}"#,
        data_dir = options.data_dir,
        component = options.component,
        cache_dir = options.cache_dir,
        provider = provider_toml(sim_base, options.api),
        server_settings = options.server_settings.join("\n"),
    )
}

/// The `[provider]` lines for the simulator at `sim_base`.
fn provider_toml(sim_base: &str, api: Generation) -> String {
    let lines: Vec<String> = provider_settings(sim_base, api).iter().map(|(name, value)| format!("{name} = {value:?}")).collect();
    lines.join("\n")
}

/// The file of blob `blob_id` (a valid blob id) under a child's data directory,
/// for tests that check the bytes on disk.
pub fn blob_path(data_dir: &Path, blob_id: &str) -> PathBuf {
    crate::blobs::blob_file(&data_dir.join(crate::app::BLOBS_DIR), blob_id)
}
