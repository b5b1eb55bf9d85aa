//! A host-shim in a child process, so its memory can be measured on its own
//! (the simulator and the bench driver live in the parent).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::harness::AdminClient;

/// A running child host.
pub struct ChildHost {
    process: Child,
    pub admin: AdminClient,
}

/// A free loopback port (bound and released; the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ChildHost {
    /// Starts `host-shim serve` with a config for the simulator at `sim_base`.
    pub async fn start(data_dir: &Path, component: &Path, cache_dir: &Path, sim_base: &str) -> anyhow::Result<ChildHost> {
        std::fs::create_dir_all(data_dir)?;
        let (public, admin) = (free_port()?, free_port()?);
        let config = format!(
            r#"data_dir = {data_dir:?}
component = {component:?}

[provider]
client-id = "fio-sim-web"
client-secret = "fio-sim-web-secret"
authorization-url = "{sim_base}/oauth2/auth"
token-url = "{sim_base}/oauth2/token"
api-url = "{sim_base}/v2"
web-url = "{sim_base}"

[server]
public_listen = "127.0.0.1:{public}"
admin_listen = "127.0.0.1:{admin}"

[runtime]
cache_dir = {cache_dir:?}

[http]
allow_hosts = ["127.0.0.1"]
allow_private_networks = ["127.0.0.0/8"]

[transfer]
allow_hosts = ["127.0.0.1"]
"#
        );
        let config_path = data_dir.join("host.toml");
        std::fs::write(&config_path, config)?;
        let process = Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the host-shim child")?;
        let admin = AdminClient::new(&format!("http://127.0.0.1:{admin}"), &format!("http://127.0.0.1:{public}"))?;
        let child = ChildHost { process, admin };
        child.wait_until_up().await?;
        Ok(child)
    }

    async fn wait_until_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if self.admin.admin(reqwest::Method::GET, "/bindings", None).await.is_ok_and(|a| a.status.is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the host-shim child did not come up within 120 s")
    }

    /// The child's peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }

    /// Stops the child.
    pub fn stop(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

