//! The host-shim's configuration file (TOML). Every field has a default; the
//! README lists them. Paths are relative to the directory the host runs in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::console::users::ConsoleConfig;
use crate::imports::http::HttpConfig;
use crate::imports::notifications::NotificationsConfig;
use crate::imports::transfer::TransferConfig;
use crate::retention::RetentionConfig;

/// The whole configuration. Its `Debug` output leaves out the provider settings'
/// values, which include the OAuth client secret.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database, the blob store, the outbox and the compiled
    /// component cache live.
    pub data_dir: PathBuf,
    /// The connector component (`.wasm`).
    pub component: PathBuf,
    /// The tenant whose state the connector's `storage` sees.
    pub tenant: String,
    /// The key that seals every value of the connector's `storage` in the database
    /// (relative: under `data_dir`). Created with mode 0600 on first start; a file
    /// group or others can read is refused. The environment variable
    /// `FRAMEIO_DAM_KEY` (64 hex digits) overrides it. Without the key, the stored
    /// settings, connections and bindings cannot be read: back it up apart from the
    /// database.
    pub key_file: PathBuf,
    /// Provider settings applied at startup through `provider.configure`, as if an
    /// administrator had saved them (names from the provider descriptor, for example
    /// `client-id`, `api-url`, `token-url`). `public-url` defaults to the host's
    /// public URL. Empty: keep what the admin API stored.
    pub provider: BTreeMap<String, String>,
    pub server: ServerConfig,
    pub runtime: RuntimeConfig,
    pub worker: WorkerConfig,
    pub http: HttpConfig,
    pub transfer: TransferConfig,
    pub notifications: NotificationsConfig,
    pub retention: RetentionConfig,
    /// The console's users (`[console.users.<name>]`); its `Debug` leaves out hashes.
    pub console: ConsoleConfig,
}

/// The two listeners: public (Frame.io reaches it) and admin (loopback by default),
/// and what protects them. `Debug` leaves out the admin token.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for Frame.io's requests and the OAuth redirect.
    pub public_listen: SocketAddr,
    /// The URL at which Frame.io reaches `public_listen` (behind a proxy, the proxy's URL).
    /// Empty: `http://<public_listen>`.
    pub public_url: String,
    /// Address of the admin JSON API. A non-loopback address is refused unless
    /// `admin_token` (or its environment variable) is set.
    pub admin_listen: SocketAddr,
    /// Largest inbound body accepted before the component sees it.
    pub max_inbound_body_bytes: usize,
    /// The admin API's bearer token. Empty: `FRAMEIO_DAM_ADMIN_TOKEN`, else the
    /// token file (created on first start).
    pub admin_token: String,
    /// Where the generated admin token is kept (relative: under `data_dir`), mode 0600.
    pub admin_token_file: PathBuf,
    /// Host names (without port) the admin API answers to; a request whose `Host`
    /// or `Origin` names another is refused, which defeats DNS rebinding.
    pub admin_hosts: Vec<String>,
    /// Connections each listener holds open at most. At the cap, a new connection
    /// closes the one that has waited longest without a request being worked on;
    /// lowered at start to fit the process's open-file limit.
    pub public_max_connections: usize,
    pub admin_max_connections: usize,
    /// A request's header must arrive within this from its first byte.
    pub header_read_timeout_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// A request's whole body must arrive within this; a slower one gets 408.
    pub body_read_timeout_ms: u64,
    /// Failed signature checks a source address may make in a burst, and how many
    /// more it earns per minute; past them it is answered 429 with `Retry-After`
    /// before its body is read. 0 per minute turns the limit off.
    pub failed_verifications_burst: u32,
    pub failed_verifications_per_minute: u32,
    /// Inbound requests handled by the component at once; the rest wait, so a flood
    /// of inbound requests cannot take every instance slot from job steps.
    pub inbound_concurrency: usize,
}


/// Limits on every call into the component.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Wall-clock deadline of one call, enforced with epoch interruption.
    pub call_timeout_ms: u64,
    /// Largest linear memory a call may grow to.
    pub max_memory_bytes: usize,
    /// Where the compiled component is cached (relative: under `data_dir`).
    pub cache_dir: PathBuf,
    /// Instance slots the pooling allocator keeps mapped (calls beyond them wait for
    /// a free slot); 0 allocates per call instead. Pooling makes a fresh instance
    /// plus a call 1.4 to 2 times faster (`host-shim bench`, release build).
    pub pooling_instances: u32,
}

/// The job worker.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs run at the same time.
    pub concurrency: usize,
    /// Tries of a step that traps or times out before the job fails.
    pub max_step_failures: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("var"),
            component: PathBuf::from("target/wasm32-wasip2/wasm/frameio_connector.wasm"),
            tenant: "default".into(),
            key_file: PathBuf::from("host.key"),
            provider: BTreeMap::new(),
            server: ServerConfig::default(),
            runtime: RuntimeConfig::default(),
            worker: WorkerConfig::default(),
            http: HttpConfig::default(),
            transfer: TransferConfig::default(),
            notifications: NotificationsConfig::default(),
            retention: RetentionConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be left out of this list unnoticed.
        let Config {
            data_dir,
            component,
            tenant,
            key_file,
            provider,
            server,
            runtime,
            worker,
            http,
            transfer,
            notifications,
            retention,
            console,
        } = self;
        // The host cannot tell which settings are secret, so it shows only their names.
        let provider: BTreeMap<&str, &str> = provider.keys().map(|name| (name.as_str(), "<redacted>")).collect();
        f.debug_struct("Config")
            .field("data_dir", data_dir)
            .field("component", component)
            .field("tenant", tenant)
            .field("key_file", key_file)
            .field("provider", &provider)
            .field("server", server)
            .field("runtime", runtime)
            .field("worker", worker)
            .field("http", http)
            .field("transfer", transfer)
            .field("notifications", notifications)
            .field("retention", retention)
            .field("console", console)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_listen: ([127, 0, 0, 1], 8080).into(),
            public_url: String::new(),
            admin_listen: ([127, 0, 0, 1], 8081).into(),
            max_inbound_body_bytes: 256 * 1024,
            admin_token: String::new(),
            admin_token_file: PathBuf::from("admin.token"),
            admin_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            public_max_connections: 1024,
            admin_max_connections: 64,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            body_read_timeout_ms: 10_000,
            failed_verifications_burst: 20,
            failed_verifications_per_minute: 60,
            inbound_concurrency: 16,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ServerConfig {
            public_listen,
            public_url,
            admin_listen,
            max_inbound_body_bytes,
            admin_token,
            admin_token_file,
            admin_hosts,
            public_max_connections,
            admin_max_connections,
            header_read_timeout_ms,
            idle_timeout_ms,
            body_read_timeout_ms,
            failed_verifications_burst,
            failed_verifications_per_minute,
            inbound_concurrency,
        } = self;
        f.debug_struct("ServerConfig")
            .field("public_listen", public_listen)
            .field("public_url", public_url)
            .field("admin_listen", admin_listen)
            .field("max_inbound_body_bytes", max_inbound_body_bytes)
            .field("admin_token", &if admin_token.is_empty() { "" } else { "<redacted>" })
            .field("admin_token_file", admin_token_file)
            .field("admin_hosts", admin_hosts)
            .field("public_max_connections", public_max_connections)
            .field("admin_max_connections", admin_max_connections)
            .field("header_read_timeout_ms", header_read_timeout_ms)
            .field("idle_timeout_ms", idle_timeout_ms)
            .field("body_read_timeout_ms", body_read_timeout_ms)
            .field("failed_verifications_burst", failed_verifications_burst)
            .field("failed_verifications_per_minute", failed_verifications_per_minute)
            .field("inbound_concurrency", inbound_concurrency)
            .finish()
    }
}


impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { call_timeout_ms: 30_000, max_memory_bytes: 64 << 20, cache_dir: PathBuf::from("cache"), pooling_instances: 32 }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { concurrency: 4, max_step_failures: 5 }
    }
}

impl Config {
    /// Reads a config file; fields left out keep their defaults.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that cannot work, with the reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.tenant.is_empty(), "tenant may not be empty");
        anyhow::ensure!(self.runtime.call_timeout_ms >= 100, "runtime.call_timeout_ms must be at least 100");
        anyhow::ensure!(self.runtime.max_memory_bytes >= 1 << 20, "runtime.max_memory_bytes must be at least 1 MiB");
        anyhow::ensure!(self.worker.concurrency >= 1, "worker.concurrency must be at least 1");
        anyhow::ensure!(self.server.max_inbound_body_bytes >= 1024, "server.max_inbound_body_bytes must be at least 1024");
        let server = &self.server;
        for (name, ms) in [
            ("header_read_timeout_ms", server.header_read_timeout_ms),
            ("idle_timeout_ms", server.idle_timeout_ms),
            ("body_read_timeout_ms", server.body_read_timeout_ms),
        ] {
            anyhow::ensure!(ms >= 100, "server.{name} must be at least 100");
        }
        anyhow::ensure!(server.public_max_connections >= 8, "server.public_max_connections must be at least 8");
        anyhow::ensure!(server.admin_max_connections >= 4, "server.admin_max_connections must be at least 4");
        anyhow::ensure!(server.inbound_concurrency >= 1, "server.inbound_concurrency must be at least 1");
        anyhow::ensure!(!server.admin_hosts.is_empty(), "server.admin_hosts may not be empty");
        anyhow::ensure!(self.retention.finished_days >= 1, "retention.finished_days must be at least 1");
        anyhow::ensure!(self.retention.sweep_interval_secs >= 1, "retention.sweep_interval_secs must be at least 1");
        self.console.validate()?;
        Ok(())
    }

    /// The public base URL, derived from the listen address when not set.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_defaults_to_host_key_and_can_be_set() {
        assert_eq!(Config::default().key_file, Path::new("host.key"));
        let config: Config = toml::from_str(r#"key_file = "secrets/host.key""#).unwrap();
        assert_eq!(config.key_file, Path::new("secrets/host.key"));
    }

    #[test]
    fn debug_output_names_provider_settings_without_their_values() {
        let mut config = Config::default();
        config.provider.insert("client-secret".into(), "fio-sim-web-secret".into());
        let debug = format!("{config:?}");
        assert!(debug.contains("client-secret"), "{debug}");
        assert!(!debug.contains("fio-sim-web-secret"), "{debug}");
    }
}
