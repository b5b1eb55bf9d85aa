//! The host-shim's configuration file (TOML). Every field has a default; the
//! README lists them. Paths are relative to the directory the host runs in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::imports::http::HttpConfig;
use crate::imports::notifications::NotificationsConfig;
use crate::imports::transfer::TransferConfig;

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
}

/// The two listeners: public (Frame.io reaches it) and admin (loopback only).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for Frame.io's requests and the OAuth redirect.
    pub public_listen: SocketAddr,
    /// The URL at which Frame.io reaches `public_listen` (behind a proxy, the proxy's URL).
    /// Empty: `http://<public_listen>`.
    pub public_url: String,
    /// Address of the admin JSON API. Keep it on loopback: it is not authenticated.
    pub admin_listen: SocketAddr,
    /// Largest inbound body accepted before the component sees it.
    pub max_inbound_body_bytes: usize,
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
        }
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
