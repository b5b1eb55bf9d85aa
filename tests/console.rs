//! The console in a real browser (headless Chromium over WebDriver), through the
//! whole product against the simulator, on both API generations: an administrator
//! registers Frame.io (an invalid setting is shown beside its field, "Test
//! connection" asks the simulator, disabling Frame.io refuses its requests), a user
//! who is not an administrator cannot reach cloud services, connects with OAuth and
//! comes back, binds a folder (a clashing action name is shown and nothing made), a
//! push arrives and its download's progress bar moves, a failed job is retried, the
//! document shows with its Frame.io tab and a reviewer's timecoded comment, it is
//! sent for review, and the folder is unbound. Then forged requests: a cross-site
//! POST from another site's page, and POSTs without the session's CSRF token or from
//! another origin, all refused with nothing changed.
//!
//! `CONSOLE_SCREENSHOTS=<dir>` saves a picture of each screen of the V4 run there
//! (`cargo xtask screenshots` does, into `docs/console/`).
//!
//! ```sh
//! cargo xtask build
//! cargo test -p connector-e2e --test console
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use connector_e2e::browser::Browser;
use connector_e2e::world_on;
use host_shim::console::users::{ConsoleConfig, Role};
use host_shim::harness::fixture::{self, Fixture};
use host_shim::harness::{World, console_user, provider_settings};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("ada", "ada-console-password");
const USER: (&str, &str) = ("dana", "dana-console-password");
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn users() -> ConsoleConfig {
    let mut config = ConsoleConfig::default();
    config.users.insert(ADMIN.0.into(), console_user(Role::Administrator, ADMIN.1));
    config.users.insert(USER.0.into(), console_user(Role::User, USER.1));
    config
}

/// Where the screens of this run are saved, if anywhere.
fn screenshots(fx: &Fixture) -> Option<PathBuf> {
    let dir = std::env::var_os("CONSOLE_SCREENSHOTS")?;
    is_v4(fx).then(|| PathBuf::from(dir))
}

fn is_v4(fx: &Fixture) -> bool {
    fx.api.name() == "v4"
}

/// A world whose console has an administrator and a user, and whose downloads go in
/// 256 KiB ranges, one at a time, so that a download lasts a few of the host's
/// one-second progress reports and its bar has steps to show.
async fn console_world(fx: &Fixture) -> (World, tempfile::TempDir) {
    world_on(fx, |o| {
        o.console = users();
        o.transfer_ranges = Some((256 << 10, 1));
    })
    .await
}

mod whole_flow {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v2() {
        super::whole_flow(&fixture::V2).await.unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v4() {
        super::whole_flow(&fixture::V4).await.unwrap_or_else(|e| panic!("{e:#}"));
    }
}

async fn sign_out(b: &Browser) -> anyhow::Result<()> {
    b.click_through("form.signout button").await
}

/// The text beside field `name` of the dialog shown.
async fn problem_of(b: &Browser, name: &str) -> anyhow::Result<String> {
    let problem = b.find(&format!(".field[data-field=\"{name}\"] .problem")).await?;
    b.text_of(&problem).await
}

async fn whole_flow(fx: &'static Fixture) -> anyhow::Result<()> {
    let (w, _dir) = console_world(fx).await;
    let shots = screenshots(fx);
    let shots = shots.as_deref();
    let console = w.host.admin_url.clone();
    let b = Browser::start().await?;

    // An administrator registers Frame.io in Cloud services.
    b.goto(&format!("{console}/cloud")).await?;
    ensure!(b.url().await?.contains("/signin?next=%2Fcloud"), "signed out, the console asks to sign in first");
    b.screenshot(shots, "01-sign-in").await?;
    b.fill("#name", ADMIN.0).await?;
    b.fill("#password", ADMIN.1).await?;
    b.click_through("button.primary").await?;
    ensure!(b.url().await?.ends_with("/cloud"), "back where the administrator was going");
    if is_v4(fx) {
        // Picking V4 fills in Adobe IMS's endpoints: the connector describes the form again.
        b.mark().await?;
        b.choose("#field-api", "v4").await?;
        b.new_page().await?;
        let token_url = b.property("#field-token-url", "value").await?;
        ensure!(token_url == json!("https://ims-na1.adobelogin.com/ims/token/v3"), "V4's token URL prefilled, not {token_url}");
    }
    let mut settings = provider_settings(&w.sim.base_url(), fx.api);
    settings.insert("public-url".into(), format!("{}/frameio", w.host.public_url));
    let secret = settings.remove("client-secret").context("a secret")?;
    for (name, value) in settings.iter().filter(|(n, _)| n.as_str() != "api") {
        b.fill(&format!("#field-{name}"), value).await?;
    }
    b.fill("#field-client-secret", &secret).await?;
    b.fill("#field-api-url", "api.frame.io without a scheme").await?;
    b.click_through("button.primary").await?;
    let beside = problem_of(&b, "api-url").await?;
    ensure!(beside.contains("API URL is not a valid URL"), "the bad URL is shown beside its field: {beside:?}");
    ensure!(b.property("#field-api-url", "value").await? == json!("api.frame.io without a scheme"), "what was typed stays");
    ensure!(b.property("#field-client-secret", "value").await? == json!(""), "a typed secret is not put back into the page");
    b.run("document.querySelector('.field.invalid').scrollIntoView({ block: 'center' });", json!([])).await?;
    b.screenshot(shots, "02-cloud-services-invalid-setting").await?;
    b.fill("#field-api-url", &settings["api-url"]).await?;
    b.fill("#field-client-secret", &secret).await?;
    b.click_through("button[value=\"test\"]").await?;
    b.wait_for_text("Connection works", Duration::from_secs(5)).await?;
    ensure!(w.admin(reqwest::Method::GET, "/review/capabilities", None).await?.status == 409, "testing stored nothing");
    b.fill("#field-client-secret", &secret).await?;
    b.click_through("button.primary").await?;
    b.wait_for_text("Saved: Frame.io is set up", Duration::from_secs(5)).await?;
    b.wait_for_text("A value is set.", Duration::from_secs(1)).await?;
    let html = b.run("return document.documentElement.outerHTML;", json!([])).await?;
    ensure!(!html.as_str().unwrap_or_default().contains(&secret), "the client secret is never rendered back");
    b.screenshot(shots, "03-cloud-services").await?;
    // Disabled, Frame.io's requests are refused before the connector sees them.
    b.click_through("form[action=\"/cloud/switch\"] button").await?;
    b.wait_for_text("Frame.io is disabled in this DAM", Duration::from_secs(2)).await?;
    let refused = reqwest::Client::new().post(format!("{}/frameio/actions/b0", w.host.public_url)).body("{}").send().await?;
    ensure!(refused.status() == 503, "a disabled Frame.io's requests are refused: {}", refused.status());
    b.click_through("form[action=\"/cloud/switch\"] button").await?;
    b.wait_for_text("Frame.io is enabled", Duration::from_secs(2)).await?;
    sign_out(&b).await?;

    // A user who is not an administrator cannot reach cloud services.
    b.sign_in(&console, USER).await?;
    ensure!(b.all("a[href=\"/cloud\"]").await?.is_empty(), "no Cloud services link for a user");
    b.goto(&format!("{console}/cloud")).await?;
    b.wait_for_text("Cloud services are for administrators", Duration::from_secs(2)).await?;
    ensure!(b.all("#field-client-id").await?.is_empty(), "no settings form for a user");

    // She connects her Frame.io account: to Frame.io's sign-in and back.
    b.goto(&format!("{console}/connect")).await?;
    b.click_through("main form button.primary").await?;
    b.wait_for_text("Connected to Frame.io", Duration::from_secs(10)).await?;
    b.click_through("a[href$=\"/connect\"]").await?;
    b.wait_for_text("Connected as", Duration::from_secs(2)).await?;
    b.screenshot(shots, "04-connect").await?;

    // She makes two folders and binds one; the same action name for the other clashes.
    for (path, title) in [("/Marketing/Spring", "Spring"), ("/Marketing/Summer", "Summer")] {
        b.goto(&format!("{console}/folders")).await?;
        b.fill("#path", path).await?;
        b.fill("#title", title).await?;
        b.click_through("main form button.primary").await?;
    }
    let folders = w.admin_ok(reqwest::Method::GET, "/folders", None).await?;
    let folder_id = |path: &str| folders.as_array().into_iter().flatten().find(|f| f["path"] == path).and_then(|f| f["id"].as_str()).map(String::from);
    let spring = folder_id("/Marketing/Spring").context("Spring was made")?;
    let summer = folder_id("/Marketing/Summer").context("Summer was made")?;
    bind(&b, &console, &spring, fx.account, fx.workspace, fx.project, "Publish to DAM", shots).await?;
    b.wait_for_text("is bound to", Duration::from_secs(5)).await?;
    let project = b.text_of(&b.find("[data-fact=\"project\"]").await?).await?;
    ensure!(project == fx.project_name, "the Frame.io tab names the project: {project}");
    b.screenshot(shots, "06-folder-frameio-tab").await?;
    bind(&b, &console, &summer, fx.account, fx.workspace, fx.project, "publish to dam", None).await?;
    let clash = problem_of(&b, "action-name").await?;
    ensure!(clash.contains("already exists"), "the clash is shown beside the name: {clash:?}");
    let bindings = w.admin_ok(reqwest::Method::GET, "/bindings", None).await?;
    ensure!(bindings.as_array().map(Vec::len) == Some(1), "the clash made nothing: {bindings}");
    b.goto(&format!("{console}/folders")).await?;
    b.screenshot(shots, "05-folders").await?;

    // A Frame.io user pushes a video into the folder; its download's bar moves.
    let action_id = bindings[0]["action_id"].as_str().context("action id")?.to_string();
    let slow: frameio_sim::Faults = serde_json::from_value(json!({ "media": { "latency": { "rate": 1.0, "delay_ms": 350 } } }))?;
    w.control.set_faults(&slow).await?;
    b.goto(&format!("{console}/jobs")).await?;
    let (form, _) = w.push(&action_id, fx.video, fx.pusher, json!({ "note": "Selects for the spring cut", "notify": "no" })).await?;
    let seen = watch_progress(&b, fx.video_size, shots).await?;
    ensure!(seen.len() >= 2, "the progress bar moved through at least two values short of the end: {seen:?}");
    w.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await?;
    w.control.set_faults(&frameio_sim::Faults::default()).await?;

    // The periodic reconcile queued at start failed, as Frame.io was not set up then;
    // retried from the page, it runs again and ends well.
    b.goto(&format!("{console}/jobs")).await?;
    let failed = b.run(
        "const row = [...document.querySelectorAll('tr[data-job]')].find(r => r.textContent.includes('reconcile@') && r.querySelector('form')); return row ? row.getAttribute('data-job') : null;",
        json!([]),
    );
    let failed = failed.await?.as_str().context("a failed reconcile job with a Retry button")?.to_string();
    b.click_through(&format!("form[action=\"/jobs/{failed}/retry\"] button")).await?;
    b.wait_for_text("runs again from the step that failed", Duration::from_secs(2)).await?;
    let deadline = Instant::now() + JOB_TIMEOUT;
    while w.admin_ok(reqwest::Method::GET, &format!("/jobs/{failed}"), None).await?["state"] != "done" {
        ensure!(Instant::now() < deadline, "the retried job never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same file pushed again from the simulator's own page (as in the demo): a
    // second version of the same document.
    b.goto(&format!("{}/_sim/ui", w.sim.base_url())).await?;
    b.click_through(&format!("button[data-file=\"{}\"]", fx.video)).await?;
    b.wait_for_text("Asset pushed", Duration::from_secs(10)).await?;

    // The document is in the folder, with its Frame.io tab and a reviewer's comment.
    let deadline = Instant::now() + JOB_TIMEOUT;
    while w.documents(&spring).await?.first().and_then(|d| d["version_count"].as_u64()) != Some(2) {
        ensure!(Instant::now() < deadline, "the second push never became version 2");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let doc_id = w.documents(&spring).await?.first().and_then(|d| d["id"].as_str()).map(String::from).context("a document")?;
    let note = json!({ "text": "Warm up the skin tones here", "timestamp": if is_v4(fx) { 49 } else { 48 } });
    w.control.comment(fx.consenting_user, fx.video, note).await?;
    b.goto(&format!("{console}/folders/{spring}")).await?;
    b.wait_for_text(fx.video_name, Duration::from_secs(2)).await?;
    b.click_through(&format!("a[href=\"/documents/{doc_id}\"]")).await?;
    let deadline = Instant::now() + JOB_TIMEOUT;
    while !b.text().await?.contains("Warm up the skin tones here") {
        ensure!(Instant::now() < deadline, "the reviewer's comment never showed");
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.goto(&format!("{console}/documents/{doc_id}")).await?;
    }
    let name = b.text_of(&b.find("dd[data-property=\"name\"]").await?).await?;
    ensure!(name == fx.video_name, "the Frame.io metadata: name {name}");
    ensure!(b.text().await?.contains("00:00:02:00") || is_v4(fx), "v2 comments carry a timecode");
    ensure!(!b.all("a[target=\"_blank\"]").await?.is_empty(), "a link back to Frame.io");
    b.screenshot(shots, "08-document-frameio-tab").await?;

    // She sends it for review; the upload shows under Jobs and transfers.
    b.click_through("a[href$=\"/review\"]").await?;
    b.fill("#field-reviewers", "rita@client.example").await?;
    b.fill("#field-description", "Spring cut for sign-off").await?;
    b.screenshot(shots, "09-send-for-review").await?;
    b.click_through("main form button.primary").await?;
    b.wait_for_text("Sending", Duration::from_secs(5)).await?;
    b.wait_for_text("Upload to Frame.io", Duration::from_secs(10)).await?;
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let jobs = w.admin_ok(reqwest::Method::GET, "/jobs", None).await?;
        let review = jobs["jobs"].as_array().into_iter().flatten().find(|j| j["kind"] == "review").cloned().unwrap_or(Value::Null);
        if review["state"] == "done" {
            break;
        }
        ensure!(review["state"] != "failed" && Instant::now() < deadline, "the review job: {review}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // She unbinds the folder: the action is gone, the document stays.
    b.goto(&format!("{console}/folders/{spring}?tab=frameio")).await?;
    b.click_through("button.danger").await?;
    b.wait_for_text("Unbound", Duration::from_secs(5)).await?;
    b.wait_for_text("not bound to Frame.io", Duration::from_secs(1)).await?;
    let left = w.admin_ok(reqwest::Method::GET, "/bindings", None).await?;
    ensure!(left.as_array().is_some_and(Vec::is_empty), "unbound: {left}");
    ensure!(w.documents(&spring).await?.len() == 1, "the document stays");
    drop(b);
    w.stop().await;
    Ok(())
}

/// Opens a folder's bind dialog and fills it in, choosing each level as a person
/// would (each choice describes the dialog again), then submits it.
#[allow(clippy::too_many_arguments)]
async fn bind(
    b: &Browser,
    console: &str,
    folder: &str,
    account: &str,
    workspace: &str,
    project: &str,
    action_name: &str,
    shots: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    b.goto(&format!("{console}/folders/{folder}?tab=frameio")).await?;
    b.click_through("a[href$=\"/bind\"]").await?;
    for (field, value) in [("account", account), ("workspace", workspace)] {
        let selected = b.property(&format!("#field-{field}"), "value").await?;
        if selected != json!(value) {
            b.mark().await?;
            b.choose(&format!("#field-{field}"), value).await?;
            b.new_page().await?;
        }
    }
    b.choose("#field-project", project).await?;
    b.fill("#field-action-name", action_name).await?;
    b.screenshot(shots, "07-bind-dialog").await?;
    b.click_through("main form button.primary").await
}

/// Samples the page's first transfer bar until its transfer completes; the values it
/// showed between empty and full.
async fn watch_progress(b: &Browser, size: u64, shots: Option<&std::path::Path>) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let mut seen: Vec<u64> = Vec::new();
    let mut shot = false;
    loop {
        let bar = b.run("const p = document.querySelector('tr[data-transfer] progress'); return p ? [p.value, p.max] : null;", json!([])).await;
        if let Ok(Value::Array(pair)) = bar {
            let (value, max) = (pair[0].as_f64().unwrap_or(0.0) as u64, pair[1].as_f64().unwrap_or(0.0) as u64);
            if max == size && value >= size {
                return Ok(seen);
            }
            if value > 0 && value < size && !seen.contains(&value) {
                seen.push(value);
                if !shot && value >= size / 4 {
                    b.screenshot(shots, "10-jobs-and-transfers").await?;
                    shot = true;
                }
            }
        }
        ensure!(Instant::now() < deadline, "the download did not finish on the page; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forged requests change nothing: a page of another site that posts to the console
/// in the browser of a signed-in user, and POSTs that carry the session but not its
/// CSRF token, or come from another origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_cross_site_posts_are_refused() {
    forged(&fixture::V2).await.unwrap_or_else(|e| panic!("{e:#}"));
}

async fn forged(fx: &'static Fixture) -> anyhow::Result<()> {
    let (w, _dir) = console_world(fx).await;
    w.configure_provider().await?;
    w.connect(USER.0).await?;
    let folder = w.create_folder("/Marketing/Spring", "Spring").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let bound = w.bind(USER.0, &folder_id, fx.account, fx.project, "Publish to DAM").await?;
    let binding_id = bound.body["id"].as_str().context("binding id")?.to_string();
    let console = w.host.admin_url.clone();
    let unbind = format!("{console}/folders/{folder_id}/unbind");

    // In the browser: Dana is signed in, and visits another site whose page posts the
    // unbind form to the console on load.
    let b = Browser::start().await?;
    b.sign_in(&console, USER).await?;
    let attacker = serve_once_forever(&format!(
        "<!doctype html><title>Win a prize</title><form id=f method=post action=\"{unbind}\"><input name=binding value=\"{binding_id}\"></form><script>document.getElementById('f').submit()</script>"
    ))
    .await?;
    b.goto(&attacker.replace("127.0.0.1", "localhost")).await?;
    b.wait_for_text("Refused", Duration::from_secs(10)).await?;
    ensure!(b.text().await?.contains("another site") || b.text().await?.contains("not signed in"), "{}", b.text().await?);
    let still = w.admin_ok(reqwest::Method::GET, "/bindings", None).await?;
    ensure!(still.as_array().map(Vec::len) == Some(1), "the forged POST unbound nothing: {still}");

    // Over HTTP: the session's cookie without its CSRF token, or from another origin.
    let cookie = b.run("return document.cookie;", json!([])).await?;
    ensure!(cookie == json!(""), "the session cookie is HttpOnly: scripts cannot read it");
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;
    let signed_in = http
        .post(format!("{console}/signin"))
        .form(&[("name", USER.0), ("password", USER.1), ("next", "/folders")])
        .send()
        .await?;
    let set_cookie = signed_in.headers().get("set-cookie").and_then(|v| v.to_str().ok()).context("a session cookie")?.to_string();
    ensure!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let session = set_cookie.split(';').next().context("cookie")?.to_string();
    let page = http.get(format!("{console}/folders/{folder_id}?tab=frameio")).header("cookie", &session).send().await?.text().await?;
    let csrf = page.split("name=\"_csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).context("a CSRF token in the page")?;
    let post = |origin: Option<&str>, token: &str| {
        let mut req = http.post(&unbind).header("cookie", &session).form(&[("binding", binding_id.as_str()), ("_csrf", token)]);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    ensure!(post(None, "").await?.status() == 403, "no CSRF token");
    ensure!(post(None, "0123").await?.status() == 403, "a wrong CSRF token");
    ensure!(post(Some("http://evil.example"), csrf).await?.status() == 403, "another origin");
    let still = w.admin_ok(reqwest::Method::GET, "/bindings", None).await?;
    ensure!(still.as_array().map(Vec::len) == Some(1), "nothing unbound: {still}");
    // The same request with the token, from the console's own origin, works.
    let own = post(Some(&console), csrf).await?;
    ensure!(own.status() == 303, "the real form works: {}", own.status());
    let after = w.admin_ok(reqwest::Method::GET, "/bindings", None).await?;
    ensure!(after.as_array().is_some_and(Vec::is_empty), "unbound by the real form: {after}");
    drop(b);
    w.stop().await;
    Ok(())
}

/// Serves `html` to every request on a loopback port, for as long as the test runs;
/// its URL.
async fn serve_once_forever(html: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}", html.len());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    Ok(url)
}
