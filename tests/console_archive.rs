//! The console's project archive in a real browser (headless Chromium over
//! WebDriver), on both API generations: someone not connected to Frame.io is told to
//! connect first; a connected user picks a generated project on a folder's Frame.io
//! tab (the bind dialog's own account, workspace and project choices), a project the
//! connector cannot find is shown beside its field with nothing started, then the
//! real one starts; the Archives screen's bar moves without the page being reloaded
//! until it is full, and the row ends `done` with the archive's counts.
//!
//! `CONSOLE_SCREENSHOTS=<dir>` saves the Archives screen of the V4 run there
//! (`cargo xtask screenshots` does, into `docs/console/`).
//!
//! ```sh
//! cargo xtask build
//! cargo test -p connector-e2e --test console_archive
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use connector_e2e::browser::Browser;
use connector_e2e::world_on;
use frameio_sim::GenerateSpec;
use host_shim::console::users::{ConsoleConfig, Role};
use host_shim::harness::console_user;
use host_shim::harness::fixture::{self, Fixture};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("ada", "ada-console-password");
const USER: (&str, &str) = ("dana", "dana-console-password");
const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(30);

mod archive_from_the_console {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v2() {
        super::archive_from_the_console(&fixture::V2).await.unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v4() {
        super::archive_from_the_console(&fixture::V4).await.unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// Chooses `value` in a choice that describes the dialog again, and waits for it.
async fn choose_and_refresh(b: &Browser, field: &str, value: &str) -> anyhow::Result<()> {
    if b.property(&format!("#field-{field}"), "value").await? != json!(value) {
        b.mark().await?;
        b.choose(&format!("#field-{field}"), value).await?;
        b.new_page().await?;
    }
    Ok(())
}

async fn archive_from_the_console(fx: &'static Fixture) -> anyhow::Result<()> {
    let (w, _dir) = world_on(fx, |o| {
        let mut users = ConsoleConfig::default();
        users.users.insert(ADMIN.0.into(), console_user(Role::Administrator, ADMIN.1));
        users.users.insert(USER.0.into(), console_user(Role::User, USER.1));
        o.console = users;
    })
    .await;
    let shots = std::env::var_os("CONSOLE_SCREENSHOTS").filter(|_| fx.api.name() == "v4").map(PathBuf::from);
    w.configure_provider().await?;
    w.connect(USER.0).await?;
    w.control.generate_project(fx.project, &GenerateSpec { files: 12, ..Default::default() }).await?;
    let folder = w.create_folder("/Archive/Wrapped", "Wrapped").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let console = w.host.admin_url.clone();
    let b = Browser::start().await?;

    // Ada never connected Frame.io: the dialog says so instead of listing projects.
    b.sign_in(&console, ADMIN).await?;
    b.goto(&format!("{console}/folders/{folder_id}/archive")).await?;
    b.wait_for_text("Connect your Frame.io account first", Duration::from_secs(5)).await?;
    ensure!(b.all("#field-project").await?.is_empty(), "no project choice without a connection");
    b.click_through("form.signout button").await?;

    // Dana opens it from the folder's Frame.io tab; the Archives link is in the menu.
    b.sign_in(&console, USER).await?;
    ensure!(!b.all("header nav a[href=\"/archives\"]").await?.is_empty(), "Archives is in the navigation");
    b.goto(&format!("{console}/folders/{folder_id}?tab=frameio")).await?;
    b.click_through(&format!("a[href=\"/folders/{folder_id}/archive\"]")).await?;
    choose_and_refresh(&b, "account", fx.account).await?;
    choose_and_refresh(&b, "workspace", fx.workspace).await?;
    ensure!(b.all("#field-action-name").await?.is_empty(), "the picker keeps only the bind dialog's project fields");

    // A project the connector cannot find (gone since the list was drawn): shown
    // beside the project, nothing started.
    let gone = "0badc0de-0000-4000-8000-000000000000";
    b.run(
        "const s = document.querySelector('#field-project'); s.add(new Option('Gone', arguments[0])); s.value = arguments[0];",
        json!([gone]),
    )
    .await?;
    b.click_through("main form button.primary").await?;
    let beside = b.text_of(&b.find(".field[data-field=\"project\"] .problem").await?).await?;
    ensure!(beside.contains("was not found"), "the missing project is shown beside its field: {beside:?}");
    let none = w.admin_ok(Method::GET, "/archives", None).await?;
    ensure!(none["archives"].as_array().is_some_and(Vec::is_empty), "nothing started: {none}");

    // The real project: each asset download waits a little, so the archive lasts long
    // enough for its bar to be seen between empty and full.
    let slow: frameio_sim::Faults = serde_json::from_value(json!({ "media": { "latency": { "rate": 1.0, "delay_ms": 400 } } }))?;
    w.control.set_faults(&slow).await?;
    let started = Instant::now();
    b.choose("#field-project", fx.project).await?;
    b.click_through("main form button.primary").await?;
    ensure!(b.url().await?.ends_with("/archives"), "the Archives screen after starting, not {}", b.url().await?);
    b.wait_for_text("is under way", Duration::from_secs(2)).await?;
    b.mark().await?;
    let seen = watch_archive(&b).await?;
    eprintln!("the bar showed {seen:?} before it was full");
    ensure!(seen.len() >= 2, "the bar moved through at least two values short of the end: {seen:?}");
    let still = b.run("return window.__before === true;", json!([])).await?;
    ensure!(still == json!(true), "the bar moved in place: the page was never reloaded");
    w.control.set_faults(&frameio_sim::Faults::default()).await?;

    // The row's counts are the archive's own.
    let listed = w.admin_ok(Method::GET, "/archives", None).await?;
    let archive = &listed["archives"][0];
    ensure!(archive["state"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("done")), "the archive is done: {archive}");
    let counts = &archive["counts"];
    ensure!(counts["documents"].as_u64().is_some_and(|n| n > 0), "documents were made: {counts}");
    for role in ["folders", "documents", "versions", "comments", "skipped", "found"] {
        let shown = b.text_of(&b.find(&format!("tr[data-archive] [data-role=\"{role}\"]")).await?).await?;
        ensure!(shown.parse::<u64>().ok() == counts[role].as_u64(), "{role}: the row shows {shown}, the archive counts {}", counts[role]);
    }
    let state = b.text_of(&b.find("tr[data-archive] [data-role=\"state\"]").await?).await?;
    ensure!(state == "done", "the row's state: {state}");
    let project = b.text_of(&b.find("tr[data-archive] td").await?).await?;
    ensure!(project.contains(fx.project_name), "the row names the project: {project}");
    ensure!(b.text().await?.contains("/Archive/Wrapped"), "the row names the destination folder");
    eprintln!("archived {} assets from the console in {:?}", counts["found"], started.elapsed());
    b.screenshot(shots.as_deref(), "11-archives").await?;
    drop(b);
    w.stop().await;
    Ok(())
}

/// Samples the Archives screen's first bar until it is full and its state `done`;
/// the distinct values it showed on the way, as `value/max`.
async fn watch_archive(b: &Browser) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + ARCHIVE_TIMEOUT;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let row = b
            .run(
                "const r = document.querySelector('tr[data-archive]'); if (!r) return null; const p = r.querySelector('progress'); return [p.value, p.max, r.querySelector('[data-role=\"state\"]').getAttribute('data-state')];",
                json!([]),
            )
            .await;
        if let Ok(Value::Array(row)) = row {
            let (value, max) = (row[0].as_f64().unwrap_or(0.0) as u64, row[1].as_f64().unwrap_or(0.0) as u64);
            ensure!(row[2] != "failed", "the archive failed; the page says:\n{}", b.text().await?);
            if row[2] == "done" && value == max && max > 1 {
                return Ok(seen);
            }
            let at = format!("{value}/{max}");
            if value < max && !seen.contains(&at) {
                seen.push(at);
            }
        }
        ensure!(Instant::now() < deadline, "the archive did not finish on the page; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
