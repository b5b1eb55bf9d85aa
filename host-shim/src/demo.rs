//! `host-shim demo`: the whole push flow on one machine, narrated step by step, on
//! the Legacy API (v2) and then on Frame.io V4 (or on one of them with `--api`).
//!
//! An administrator registers the provider, Dana connects and binds a DAM folder
//! to a Frame.io project, a Frame.io user pushes assets with the custom action,
//! they arrive as documents and versions with an email, and the folder is unbound.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use frameio_connector::frameio::model::Generation;

use crate::harness::{World, WorldOptions};

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn detail(text: impl std::fmt::Display) {
    println!("    {text}");
}

/// Runs the demo on each of `apis` with the component at `component`, keeping each
/// run's state in its own folder of `data_dir`.
pub async fn run(component: &Path, data_dir: &Path, apis: &[Generation]) -> anyhow::Result<()> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    for api in apis {
        println!("\n=== The push flow on Frame.io {} ===", api_title(*api));
        let dir = data_dir.join(api.name());
        let world = World::start(WorldOptions { api: *api, ..WorldOptions::new(component, &dir) }).await?;
        let outcome = narrate(&world, &dir).await;
        world.stop().await;
        outcome.with_context(|| format!("the demo on {}", api_title(*api)))?;
    }
    Ok(())
}

fn api_title(api: Generation) -> &'static str {
    match api {
        Generation::V2 => "Legacy API (v2), signed in with Frame.io OAuth",
        Generation::V4 => "V4, signed in with Adobe IMS",
    }
}

async fn narrate(w: &World, data_dir: &Path) -> anyhow::Result<()> {
    let fx = w.fixture;
    println!("Frame.io simulator: {}", w.sim.base_url());
    println!(
        "host-shim: public {}, admin {} (its bearer token is in {})",
        w.host.public_url,
        w.host.admin_url,
        data_dir.join("admin.token").display()
    );

    step(1, "An administrator registers Frame.io as a cloud-service provider");
    let descriptor = w.admin(reqwest::Method::GET, "/provider", None).await?.body;
    detail(format!("service {}: {}", descriptor["service_name"], descriptor["description"]));
    w.configure_provider().await?;
    detail("client id and secret saved; endpoints point at the simulator");

    step(2, "Dana connects her Frame.io account (authorization code grant with state and PKCE on V4)");
    let page = w.connect("dana").await?;
    detail(text_of(&page));

    step(3, "Dana browses Frame.io to pick a project");
    let (accounts, _) = w.browse_all("/users/dana/accounts").await?;
    let account = accounts.first().and_then(|a| a["id"].as_str()).context("no account")?.to_string();
    detail(format!("accounts: {}", names(&accounts)));
    let (workspaces, _) = w.browse_all(&format!("/users/dana/accounts/{account}/workspaces")).await?;
    detail(format!("workspaces: {}", names(&workspaces)));
    let (projects, _) = w.browse_all(&format!("/users/dana/accounts/{}/workspaces/{}/projects", fx.account, fx.workspace)).await?;
    detail(format!("projects: {}", names(&projects)));
    let (shared, _) = w.browse_all("/users/dana/shared-projects").await?;
    detail(format!("shared with Dana: {}", if shared.is_empty() { "none (V4 lists them in their workspaces)".into() } else { names(&shared) }));
    let root = format!("/users/dana/accounts/{}/folders/{}/children", fx.account, fx.root);
    let (children, _) = w.browse_all(&root).await?;
    let listed: Vec<String> = children.iter().map(|c| format!("{} ({})", c["name"].as_str().unwrap_or(""), c["kind"].as_str().unwrap_or(""))).collect();
    detail(format!("in {}: {}", fx.project_name, listed.join(", ")));

    step(4, &format!("Dana binds the DAM folder /Marketing/Spring to {}", fx.project_name));
    let folder = w.create_folder("/Marketing/Spring", "Spring").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let bound = w.bind("dana", &folder_id, fx.account, fx.project, "Publish to DAM").await?;
    if !bound.status.is_success() {
        bail!("bind failed: {}", bound.body);
    }
    let action_id = bound.body["action_id"].as_str().context("action id")?.to_string();
    detail(format!("binding {} created custom action \"Publish to DAM\" ({action_id})", bound.body["id"].as_str().unwrap_or("")));
    let clash = w.bind("dana", &folder_id, fx.account, fx.project, "publish to dam").await?;
    detail(format!("binding again with the same name is refused: {} {}", clash.status, clash.body["error"]));

    step(5, "A Frame.io user pushes a video with the custom action");
    let clicked = Instant::now();
    let form = w.control.click(&action_id, fx.video, Some(fx.pusher)).await?;
    let click_ms = clicked.elapsed().as_millis();
    detail(format!("the click is answered in {click_ms} ms with a form: {} ({})", form.body["title"], form.body["description"]));
    let submitted = Instant::now();
    let data = json!({ "title": "", "note": "First cut, for the archive", "notify": "yes" });
    let message = w.control.submit(&action_id, &form.interaction_id, fx.video, Some(fx.pusher), data).await?;
    let submit_ms = submitted.elapsed().as_millis();
    detail(format!("the submission is answered in {submit_ms} ms: {}: {}", message.body["title"], message.body["description"]));
    let job = w.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await?;
    detail(format!("import job {}: {}", job.state, job.result_text.clone().unwrap_or_default()));

    step(6, "The document is in the bound folder, with its Frame.io metadata");
    let doc_id = only_document(w, &folder_id).await?;
    show_document(w, &doc_id, true).await?;

    step(7, "The pusher gets an email");
    for email in w.emails()? {
        detail(format!("To: {} | Subject: {} | {}", email.to, email.subject, email.path.display()));
    }

    step(8, "The same video is pushed again: a second version of the same document");
    let (form, _) = w.push(&action_id, fx.video, fx.pusher, json!({ "notify": "no" })).await?;
    detail(format!("the form now says: {}", form.body["description"]));
    w.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await?;
    show_document(w, &doc_id, false).await?;

    step(9, "Version 1 of a stack is pushed, then the stack itself (its head, version 2): one document, two versions");
    for asset in [fx.stack_v1, fx.stack] {
        let (form, _) = w.push(&action_id, asset, fx.pusher, json!({ "notify": "no" })).await?;
        let job = w.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await?;
        detail(format!("{}: {}", job.state, job.result_text.unwrap_or_default()));
    }

    step(10, "A file of another project is refused with a message");
    let refused = w.control.click(&action_id, fx.elsewhere, Some(fx.pusher)).await?;
    detail(format!("{}: {}", refused.body["title"], refused.body["description"]));

    review(w, &doc_id).await?;

    step(13, "A file still uploading is accepted, and imported when Frame.io has the whole file");
    let (form, _) = w.push(&action_id, fx.unfinished, fx.pusher, json!({ "notify": "no" })).await?;
    detail(format!("the form says: {}", form.body["description"]));
    let parked = w.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await?;
    detail(format!("the push job: {}", parked.result_text.unwrap_or_default()));
    w.control.complete_upload(fx.unfinished).await?;
    let before = w.documents(&folder_id).await?.len();
    wait_until("the completed upload's import", || async { Ok(w.documents(&folder_id).await?.len() > before) }).await?;
    detail("the upload completed in Frame.io; its webhook resumed the push, and the file is a document now");

    send_for_review(w, &doc_id, bound.body["id"].as_str().context("binding id")?).await?;
    archive(w).await?;

    step(17, "Dana unbinds the folder: the custom action is deleted, documents stay");
    let binding_id = bound.body["id"].as_str().context("binding id")?;
    w.admin(reqwest::Method::DELETE, &format!("/bindings/{binding_id}"), None).await?;
    if w.control.click(&action_id, fx.video, Some(fx.pusher)).await.is_err() {
        detail("Frame.io no longer offers the action");
    }
    let late = w.control.late_click(&action_id, fx.video, Some(fx.pusher)).await?;
    detail(format!("a delivery already under way is answered: {}: {}", late.body["title"], late.body["description"]));

    step(18, "The bound folder at the end");
    for doc in w.documents(&folder_id).await? {
        let id = doc["id"].as_str().unwrap_or_default().to_string();
        show_document(w, &id, false).await?;
    }
    println!("\nDemo complete.");
    Ok(())
}

/// A reviewer's timecoded, annotated comment and approval arrive in the DAM; a DAM
/// user's reply reaches Frame.io, once.
async fn review(w: &World, doc_id: &str) -> anyhow::Result<()> {
    let fx = w.fixture;
    step(11, "A reviewer comments on the video in Frame.io at 00:00:02:00, with a drawing, and approves it");
    let frame_on_wire = if fx.api == Generation::V2 { 48 } else { 49 };
    let annotation = r##"[{"tool":"arrow","points":[[0.2,0.4],[0.6,0.4]],"color":"#e02020"}]"##;
    let note = json!({ "text": "Warm up the skin tones here", "timestamp": frame_on_wire, "annotation": annotation });
    w.control.comment(fx.consenting_user, fx.video, note).await?;
    w.control.review(fx.video, fx.consenting_user, "approved").await?;
    let started = Instant::now();
    wait_until("the reviewer's comment and approval", || async {
        let doc = w.document(doc_id).await?;
        Ok(doc["status"] == "approved" && doc["comments"].as_array().is_some_and(|c| !c.is_empty()))
    })
    .await?;
    detail(format!("signed webhooks delivered, the document converged in {} ms:", started.elapsed().as_millis()));
    show_comments(w, doc_id).await?;

    step(12, "Dana replies in the DAM; the reply reaches Frame.io, and its echo changes nothing");
    let comments = w.document(doc_id).await?["comments"].clone();
    let parent = comments[0]["id"].as_str().context("comment id")?.to_string();
    let reply = json!({ "user": "dana", "text": "Graded, new version tomorrow", "parent_id": parent });
    w.admin(reqwest::Method::POST, &format!("/documents/{doc_id}/comments"), Some(reply)).await?;
    wait_until("the reply's round trip", || async {
        let doc = w.document(doc_id).await?;
        Ok(doc["comments"][0]["replies"].as_array().is_some_and(|r| r.first().is_some_and(|c| c["external_key"].is_string())))
    })
    .await?;
    let listed = w.document(doc_id).await?["comments"].clone();
    let count = |c: &serde_json::Value| 1 + c["replies"].as_array().map_or(0, |r| r.len());
    let total: usize = listed.as_array().into_iter().flatten().map(count).sum();
    detail(format!("posted to Frame.io as {}; the DAM holds {total} comments, no echo", listed[0]["replies"][0]["external_key"]));
    Ok(())
}

async fn show_comments(w: &World, doc_id: &str) -> anyhow::Result<()> {
    let doc = w.document(doc_id).await?;
    for c in doc["comments"].as_array().into_iter().flatten() {
        detail(format!(
            "  comment by {} at {} (frame {}): \"{}\"{}",
            c["author"].as_str().unwrap_or(""),
            c["timecode"].as_str().unwrap_or("-"),
            c["frame"],
            c["text"].as_str().unwrap_or(""),
            if c["annotation"].is_string() { ", with its drawing" } else { "" }
        ));
    }
    detail(format!("  review status: {}", doc["status"].as_str().unwrap_or("none")));
    Ok(())
}

/// Dana sends the document to Frame.io for review, then sends its newer version.
async fn send_for_review(w: &World, doc_id: &str, binding_id: &str) -> anyhow::Result<()> {
    step(14, "Dana sends the document to Frame.io for review: the host uploads it, a link goes to the reviewers");
    let capabilities = w.admin_ok(reqwest::Method::GET, "/review/capabilities", None).await?;
    detail(format!("on this API: {}", capabilities["watermark_note"].as_str().unwrap_or("")));
    let expires_at = crate::server::unix_now() + 7 * 86_400;
    let request = json!({
        "user": "dana", "binding_id": binding_id, "reviewers": ["rita@client.example"],
        "description": "Cut 2 for sign-off", "expires_at": expires_at, "password": "spring-cut-2",
        "watermark": w.fixture.api == Generation::V4,
    });
    let started = Instant::now();
    let key = w.admin_ok(reqwest::Method::POST, &format!("/documents/{doc_id}/review"), Some(request.clone())).await?["job_key"]
        .as_str()
        .context("job key")?
        .to_string();
    let job = w.wait_for_job(&key, JOB_TIMEOUT).await?;
    detail(format!("{} in {} ms: {}", job.state, started.elapsed().as_millis(), job.result_text.unwrap_or_default()));
    let doc = w.document(doc_id).await?;
    let file_id = doc["properties"]["frameio.review-file-id"].as_str().unwrap_or("").to_string();
    let stored = w.control.content_hash(&file_id).await?;
    detail(format!("Frame.io holds {} bytes, xxHash64 {} (the DAM's version, byte for byte)", stored["size"], stored["xx_hash"]));
    for email in w.emails()?.iter().filter(|e| e.to.contains("rita@")) {
        detail(format!("To: {} | Subject: {}", email.to, email.subject));
    }
    step(15, "The same send again changes nothing; a reviewer's comment on the review file comes back to the document");
    w.admin_ok(reqwest::Method::POST, &format!("/documents/{doc_id}/review"), Some(request)).await?;
    w.control.comment(w.fixture.consenting_user, &file_id, json!({ "text": "Approved for broadcast" })).await?;
    wait_until("the review comment", || async {
        let doc = w.document(doc_id).await?;
        Ok(doc["comments"].as_array().is_some_and(|c| c.iter().any(|c| c["text"] == "Approved for broadcast")))
    })
    .await?;
    detail(format!("one link, {} shares in Frame.io; the comment is on the document", w.control.shares().await?.len()));
    Ok(())
}

/// The project, grown by a generated tree of folders, stacks and comments, is
/// archived into a DAM folder of its own: the walk, the copies and the report.
async fn archive(w: &World) -> anyhow::Result<()> {
    let fx = w.fixture;
    step(16, &format!("Dana archives {} into /Archive: its folders, files, version stacks and comments", fx.project_name));
    let spec = frameio_sim::GenerateSpec { files: 24, folder_depth: 2, folders_per_folder: 2, stack_every: 6, comment_every: 4, incomplete_every: 20, seed: 3, ..Default::default() };
    let made = w.control.generate_project(fx.project, &spec).await?;
    detail(format!("Frame.io's project now holds {} more folders, {} files ({} in {} stacks), {} comments", made.folders, made.files, made.versions, made.stacks, made.comments));
    let folder = w.create_folder("/Archive", "Archive").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let request = json!({ "user": "dana", "account_id": fx.account, "project_id": fx.project, "folder_id": folder_id });
    let started = Instant::now();
    let answer = w.admin_ok(reqwest::Method::POST, "/archives", Some(request)).await?;
    let key = answer["key"].as_str().context("archive key")?.to_string();
    let job = w.wait_for_job(&key, JOB_TIMEOUT).await?;
    detail(format!("{} in {} ms: {}", job.state, started.elapsed().as_millis(), job.result_text.unwrap_or_default()));
    let report = w.admin_ok(reqwest::Method::GET, &format!("/folders/{folder_id}/properties"), None).await?;
    for line in report["properties"]["frameio.archive.skipped-assets"].as_str().unwrap_or("").lines() {
        detail(format!("left out, as the report says: {line}"));
    }
    let folders = w.admin_ok(reqwest::Method::GET, "/folders", None).await?;
    let made: Vec<&str> = folders.as_array().into_iter().flatten().filter_map(|f| f["path"].as_str()).filter(|p| p.starts_with("/Archive/")).collect();
    detail(format!("{} folders under /Archive, for example {}", made.len(), made.first().unwrap_or(&"-")));
    if let Some(email) = w.emails()?.iter().find(|e| e.subject.contains("is archived")) {
        detail(format!("To: {} | Subject: {}", email.to, email.subject));
    }
    Ok(())
}

/// Polls `check` until it holds, at most [`JOB_TIMEOUT`].
async fn wait_until<F, Fut>(what: &str, check: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + JOB_TIMEOUT;
    while !check().await? {
        if Instant::now() > deadline {
            bail!("{what} did not happen within {JOB_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn only_document(w: &World, folder_id: &str) -> anyhow::Result<String> {
    let docs = w.documents(folder_id).await?;
    let [doc] = docs.as_slice() else { bail!("expected one document in the folder, found {}", docs.len()) };
    Ok(doc["id"].as_str().unwrap_or_default().to_string())
}

async fn show_document(w: &World, id: &str, with_properties: bool) -> anyhow::Result<()> {
    let doc = w.document(id).await?;
    detail(format!("document \"{}\" ({})", doc["document"]["title"].as_str().unwrap_or(""), doc["document"]["id"].as_str().unwrap_or("")));
    for v in doc["versions"].as_array().into_iter().flatten() {
        detail(format!("  version {}: {} bytes, blob {}", v["number"], v["size"], short(v["blob_id"].as_str().unwrap_or(""))));
    }
    if let Some(props) = doc["properties"].as_object().filter(|_| with_properties) {
        for (name, value) in props {
            detail(format!("  {name} = {}", value.as_str().unwrap_or("")));
        }
    }
    Ok(())
}

fn names(list: &[Value]) -> String {
    let names: Vec<&str> = list.iter().filter_map(|e| e["name"].as_str()).collect();
    names.join(", ")
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The text of a tiny HTML page.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
