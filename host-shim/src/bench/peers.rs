//! The peers an import is compared with, fetching the same presigned URL to the
//! same disk: `curl -o`, and the official Python client's multi-part downloader
//! (frameioclient 1.1.0, installed unmodified into a virtualenv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

/// The OAuth app the simulator seeds, and a loopback redirect it accepts.
const CLIENT_ID: &str = "fio-sim-web";
const CLIENT_SECRET: &str = "fio-sim-web-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";

/// An access token from the simulator, by the authorization code grant.
pub async fn sim_token(sim_base: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;
    let authorize = reqwest::Url::parse_with_params(
        &format!("{sim_base}/oauth2/auth"),
        [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "offline asset.read"),
            ("state", "bench-state-0001"),
        ],
    )?;
    let consent = http.get(authorize).send().await?;
    let location = consent.headers().get("location").and_then(|l| l.to_str().ok()).context("no OAuth redirect")?;
    let code = reqwest::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the OAuth redirect")?;
    let form = [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI)];
    let tokens: Value = http
        .post(format!("{sim_base}/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tokens["access_token"].as_str().context("no access token")?.to_string())
}

/// A fresh presigned `original` URL for an asset.
pub async fn original_url(sim_base: &str, token: &str, asset_id: &str) -> anyhow::Result<String> {
    let asset: Value = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("{sim_base}/v2/assets/{asset_id}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(asset["original"].as_str().context("the asset has no original URL")?.to_string())
}

/// Seconds `curl -o` takes to fetch `url` into `dir`, and the seconds until the
/// file is also durable (`sync FILE`): curl leaves it in the page cache, while an
/// import must be on disk before a document may point at it.
pub fn curl(url: &str, dir: &Path, expected_size: u64) -> anyhow::Result<(f64, f64)> {
    let out = dir.join("curl.bin");
    let started = Instant::now();
    run(Command::new("curl").args(["-s", "-f", "-o"]).arg(&out).arg(url))?;
    let fetched = started.elapsed().as_secs_f64();
    run(Command::new("sync").arg(&out))?;
    let durable = started.elapsed().as_secs_f64();
    check_and_remove(&out, expected_size)?;
    Ok((fetched, durable))
}

/// The Python client's download script: the timing covers `download` only.
const FRAMEIOCLIENT_SCRIPT: &str = r#"
import sys, time
from frameioclient import FrameioClient
token, host, asset_id, dest = sys.argv[1:5]
client = FrameioClient(token, host=host)
asset = client.assets.get(asset_id)
started = time.time()
client.assets.download(asset, dest, multi_part=True)
print("SECONDS", time.time() - started)
"#;

/// A virtualenv with frameioclient 1.1.0, created once under `root`.
pub fn frameioclient_venv(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("venv-frameioclient-1.1.0");
    let python = venv.join("bin/python");
    if python.exists() {
        return Ok(python);
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    // frameioclient 1.1.0 passes `method_whitelist` to urllib3's Retry, which
    // urllib3 2 removed: pin the urllib3 it was written against.
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "frameioclient==1.1.0", "urllib3<2"]))?;
    Ok(python)
}

/// Seconds frameioclient's `FrameioDownloader(..., multi_part=True)` takes.
pub fn frameioclient(python: &Path, token: &str, sim_base: &str, asset_id: &str, name: &str, dir: &Path, size: u64) -> anyhow::Result<f64> {
    let out = Command::new(python)
        .args(["-c", FRAMEIOCLIENT_SCRIPT, token, sim_base, asset_id])
        .arg(dir)
        .output()
        .context("running frameioclient")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("frameioclient failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let secs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SECONDS "))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .context("frameioclient printed no timing")?;
    check_and_remove(&dir.join(name), size)?;
    Ok(secs)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// A peer's result must be the whole file; then it is removed to free the disk.
fn check_and_remove(path: &Path, expected: u64) -> anyhow::Result<()> {
    let size = std::fs::metadata(path).with_context(|| format!("{} was not written", path.display()))?.len();
    std::fs::remove_file(path)?;
    if size != expected {
        bail!("{} has {size} bytes, expected {expected}", path.display());
    }
    Ok(())
}
