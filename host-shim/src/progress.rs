//! `host-shim transfers`: the host's transfers, downloads and uploads, and its
//! project archives, as progress bars, read from the admin API
//! (`/admin/api/transfers`, `/admin/api/archives`), redrawn until none is running.

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

/// The admin API's archive list.
#[derive(Deserialize)]
struct Archives {
    archives: Vec<Archive>,
}

/// One archive as the admin API lists it.
#[derive(Deserialize)]
struct Archive {
    project_name: String,
    /// `queued`, `running`, `done` or `failed`.
    state: String,
    ahead: u32,
    counts: ArchiveCounts,
}

/// What an archive has done so far.
#[derive(Deserialize)]
struct ArchiveCounts {
    folders: u32,
    documents: u32,
    versions: u32,
    comments: u32,
    bytes: u64,
    skipped: u32,
    found: u32,
}

impl Archive {
    fn is_open(&self) -> bool {
        self.state == "queued" || self.state == "running"
    }
}

/// A bar of `fraction`, [###...].
fn bar(fraction: f64) -> String {
    let filled = ((fraction * BAR as f64) as usize).min(BAR);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR - filled))
}

/// One line: direction, key, bar, bytes and state.
fn line(t: &Transfer) -> String {
    let fraction = if t.total == 0 { 1.0 } else { t.done as f64 / t.total as f64 };
    let direction = if t.kind == "upload" { "up" } else { "down" };
    format!(
        "{direction:<4} {:<40} {} {:>6.1}% {:>9.1} / {:.1} MiB {}",
        t.key,
        bar(fraction),
        fraction * 100.0,
        t.done as f64 / 1048576.0,
        t.total as f64 / 1048576.0,
        t.state
    )
}

/// One line for an archive: project, bar of assets finished (archived or left out)
/// of those found so far, the counts and the state.
fn archive_line(a: &Archive) -> String {
    let c = &a.counts;
    // A stack with a version left out counts a document and a skip: stop at full.
    let done = (c.documents + c.skipped).min(c.found);
    let fraction = if c.found == 0 { 0.0 } else { f64::from(done) / f64::from(c.found) };
    let state = match (a.state.as_str(), a.ahead) {
        ("queued", 0) => "queued, next".to_string(),
        ("queued", ahead) => format!("queued, {ahead} ahead"),
        (state, _) => state.to_string(),
    };
    format!(
        "arch {:<40} {} {done} of {} assets, {} folders, {} versions, {} comments, {:.1} MiB, {} left out; {state}",
        a.project_name,
        bar(fraction),
        c.found,
        c.folders,
        c.versions,
        c.comments,
        c.bytes as f64 / 1048576.0,
        c.skipped,
    )
}

/// Draws the transfers of the host at `admin_url` until none is running (or, with
/// `follow`, until interrupted).
/// `token` is the admin API's bearer token.
pub async fn watch(admin_url: &str, token: &str, follow: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let admin_url = admin_url.trim_end_matches('/');
    let mut drawn = 0;
    loop {
        let transfers = read::<Listed>(&client, &format!("{admin_url}/admin/api/transfers"), token).await?.transfers;
        let archives = read::<Archives>(&client, &format!("{admin_url}/admin/api/archives"), token).await?.archives;
        let running: Vec<&Transfer> = transfers.iter().filter(|t| t.state == "running").collect();
        let open: Vec<&Archive> = archives.iter().filter(|a| a.is_open()).collect();
        let idle = running.is_empty() && open.is_empty();
        let mut lines: Vec<String> = if idle {
            transfers.iter().take(5).map(line).chain(archives.iter().take(3).map(archive_line)).collect()
        } else {
            running.iter().map(|t| line(t)).chain(open.iter().map(|a| archive_line(a))).collect()
        };
        if lines.is_empty() {
            lines.push("no transfers and no archives".into());
        }
        let mut out = std::io::stdout().lock();
        // Move back over the previous frame so the bars update in place.
        if drawn > 0 {
            write!(out, "\x1b[{drawn}A")?;
        }
        for text in &lines {
            writeln!(out, "\x1b[2K{text}")?;
        }
        out.flush()?;
        drawn = lines.len();
        if idle && !follow {
            return Ok(());
        }
        tokio::time::sleep(REDRAW).await;
    }
}

/// One admin API listing, read as `T`.
async fn read<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<T> {
    let answer = client.get(url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
    answer.error_for_status()?.json::<T>().await.with_context(|| format!("reading GET {url}"))
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
    fn an_archive_line_counts_assets_finished_of_found() {
        let listed: Archives = serde_json::from_str(
            r#"{"archives": [{"key": "k", "user": "dana", "account_id": "a", "project_id": "p",
                "project_name": "Spring Campaign", "folder_id": "f", "state": "running", "ahead": 0,
                "counts": {"folders": 3, "documents": 9, "versions": 12, "comments": 40,
                           "bytes": 10485760, "skipped": 1, "found": 20},
                "queued_at": 1, "started_at": 2, "finished_at": null, "message": ""}]}"#,
        )
        .unwrap();
        let l = archive_line(&listed.archives[0]);
        assert!(l.starts_with("arch Spring Campaign"), "{l}");
        assert!(l.contains(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))), "{l}");
        assert!(l.contains("10 of 20 assets, 3 folders, 12 versions, 40 comments, 10.0 MiB, 1 left out; running"), "{l}");
        let queued = Archive { state: "queued".into(), ahead: 2, ..listed.archives.into_iter().next().unwrap() };
        assert!(archive_line(&queued).ends_with("queued, 2 ahead") && queued.is_open());
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
