//! `host-shim transfers`: the host's transfers, downloads and uploads, as progress
//! bars, read from the admin API (`/admin/api/transfers`), redrawn until none is
//! running.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Width of a bar in characters.
const BAR: usize = 30;
/// How often the view is redrawn.
const REDRAW: Duration = Duration::from_millis(500);

/// A page of the admin API's transfer list.
#[derive(Deserialize)]
struct Listed {
    transfers: Vec<Transfer>,
}

/// One transfer as the admin API lists it.
#[derive(Deserialize)]
struct Transfer {
    key: String,
    /// `download` or `upload`; hosts from before uploads list no kind.
    #[serde(default = "download")]
    kind: String,
    state: String,
    done: u64,
    total: u64,
}

fn download() -> String {
    "download".into()
}

/// One line: direction, key, bar, bytes and state.
fn line(t: &Transfer) -> String {
    let fraction = if t.total == 0 { 1.0 } else { t.done as f64 / t.total as f64 };
    let filled = ((fraction * BAR as f64) as usize).min(BAR);
    let direction = if t.kind == "upload" { "up" } else { "down" };
    format!(
        "{direction:<4} {:<40} [{}{}] {:>6.1}% {:>9.1} / {:.1} MiB {}",
        t.key,
        "#".repeat(filled),
        ".".repeat(BAR - filled),
        fraction * 100.0,
        t.done as f64 / 1048576.0,
        t.total as f64 / 1048576.0,
        t.state
    )
}

/// Draws the transfers of the host at `admin_url` until none is running (or, with
/// `follow`, until interrupted).
/// `token` is the admin API's bearer token.
pub async fn watch(admin_url: &str, token: &str, follow: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("{}/admin/api/transfers", admin_url.trim_end_matches('/'));
    let mut drawn = 0;
    loop {
        let answer = client.get(&url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
        let transfers = answer.error_for_status()?.json::<Listed>().await?.transfers;
        let running: Vec<&Transfer> = transfers.iter().filter(|t| t.state == "running").collect();
        let shown: Vec<&Transfer> = if running.is_empty() { transfers.iter().take(5).collect() } else { running.clone() };
        let mut out = std::io::stdout().lock();
        // Move back over the previous frame so the bars update in place.
        if drawn > 0 {
            write!(out, "\x1b[{drawn}A")?;
        }
        for t in &shown {
            writeln!(out, "\x1b[2K{}", line(t))?;
        }
        out.flush()?;
        drawn = shown.len();
        if running.is_empty() && !follow {
            return Ok(());
        }
        tokio::time::sleep(REDRAW).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_fills_with_the_bytes_done() {
        let t = Transfer { key: "push:i#0".into(), kind: download(), state: "running".into(), done: 512 << 20, total: 1024 << 20 };
        let l = line(&t);
        assert!(l.contains(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))), "{l}");
        assert!(l.starts_with("down push:i#0"), "{l}");
        assert!(l.contains("50.0%") && l.contains("512.0 / 1024.0 MiB") && l.ends_with("running"), "{l}");
        let empty = Transfer { key: "k".into(), kind: "upload".into(), state: "complete".into(), done: 0, total: 0 };
        assert!(line(&empty).contains("100.0%") && line(&empty).starts_with("up   k"), "{}", line(&empty));
    }

    #[test]
    fn a_listing_without_kinds_is_of_downloads() {
        let listed: Listed = serde_json::from_str(
            r#"{"transfers": [{"key": "a", "state": "running", "done": 1, "total": 2},
                              {"key": "b", "kind": "upload", "state": "running", "done": 1, "total": 2}]}"#,
        )
        .unwrap();
        let kinds: Vec<&str> = listed.transfers.iter().map(|t| t.kind.as_str()).collect();
        assert_eq!(kinds, ["download", "upload"]);
    }
}
