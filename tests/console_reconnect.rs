//! Reconnecting from the console in a real browser (headless Chromium over
//! WebDriver), on both API generations: a user connects through Frame.io's sign-in
//! (Adobe IMS on V4) and the bind dialog lists her accounts; then Frame.io takes the
//! grant back (the simulator revokes every token of hers), so the connector's next
//! call is refused and its refresh answered `invalid_grant`. The bind dialog says
//! Frame.io no longer accepts her sign-in, she is emailed once, and the Connect
//! screen says the connection must be made again and offers Reconnect; she clicks it,
//! signs in again, is connected, and browsing Frame.io works again. A second
//! revocation is found by "Check connection" on the Connect screen, and after another
//! reconnect she binds the folder to a project (a custom action made in Frame.io).
//!
//! ```sh
//! cargo xtask build
//! cargo test -p connector-e2e --test console_reconnect
//! ```

use std::time::Duration;

use anyhow::{Context, ensure};
use connector_e2e::browser::Browser;
use connector_e2e::world_on;
use host_shim::console::users::{ConsoleConfig, Role};
use host_shim::harness::console_user;
use host_shim::harness::fixture::{self, Fixture};
use host_shim::harness::World;
use reqwest::Method;
use serde_json::json;

const USER: (&str, &str) = ("dana", "dana-console-password");
/// The subject of the connector's email to a user whose grant Frame.io refused.
const RECONNECT_SUBJECT: &str = "Reconnect your Frame.io account";

mod reconnect_after_a_revoked_grant {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v2() {
        super::reconnect_after_a_revoked_grant(&fixture::V2).await.unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v4() {
        super::reconnect_after_a_revoked_grant(&fixture::V4).await.unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// Clicks the Connect screen's button `css` (Connect or Reconnect): through Frame.io's
/// sign-in (or Adobe IMS) to the host's redirect page, and back to the Connect screen,
/// which must then show the connection and no problem.
async fn sign_in_at_frameio(b: &Browser, css: &str) -> anyhow::Result<String> {
    b.click_through(css).await?;
    b.wait_for_text("Connected to Frame.io", Duration::from_secs(10)).await?;
    b.click_through("a[href$=\"/connect\"]").await?;
    b.wait_for_text("Connected as", Duration::from_secs(2)).await?;
    ensure!(b.all("main .problem").await?.is_empty(), "no problem shown once connected: {}", b.text().await?);
    b.text_of(&b.find("[data-fact=\"frameio-user\"]").await?).await
}

/// The Reconnect button of the Connect screen, if it shows one.
async fn reconnect_button(b: &Browser) -> anyhow::Result<Option<String>> {
    let found = b
        .run(
            "const b = [...document.querySelectorAll('main form[action=\"/connect\"] button')].find(b => b.textContent.trim() === 'Reconnect'); return b ? b.className : null;",
            json!([]),
        )
        .await?;
    Ok(found.as_str().map(String::from))
}

/// Opens the folder's bind dialog from its Frame.io tab.
async fn open_bind_dialog(b: &Browser, console: &str, folder_id: &str) -> anyhow::Result<()> {
    b.goto(&format!("{console}/folders/{folder_id}?tab=frameio")).await?;
    b.click_through("a[href$=\"/bind\"]").await
}

/// The choices of a dialog's field, by value.
async fn choices(b: &Browser, field: &str) -> anyhow::Result<Vec<String>> {
    let values = b.run("return [...document.querySelectorAll(arguments[0])].map(o => o.value);", json!([format!("#field-{field} option")])).await?;
    Ok(values.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect())
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

/// How many refreshes the simulator's token endpoints have answered.
async fn refreshes(w: &World) -> anyhow::Result<u64> {
    w.control.stats().await?["refresh_requests"].as_u64().context("refresh_requests in /_sim/stats")
}

fn reconnect_emails(w: &World) -> anyhow::Result<usize> {
    Ok(w.emails()?.iter().filter(|e| e.subject == RECONNECT_SUBJECT && e.to.contains("dana@dam.example")).count())
}

async fn reconnect_after_a_revoked_grant(fx: &'static Fixture) -> anyhow::Result<()> {
    let (w, _dir) = world_on(fx, |o| {
        let mut users = ConsoleConfig::default();
        users.users.insert(USER.0.into(), console_user(Role::User, USER.1));
        o.console = users;
    })
    .await;
    w.configure_provider().await?;
    let folder = w.create_folder("/Marketing/Spring", "Spring").await?;
    let folder_id = folder["id"].as_str().context("folder id")?.to_string();
    let console = w.host.admin_url.clone();
    let b = Browser::start().await?;

    // Dana connects through Frame.io's sign-in; the bind dialog lists her accounts.
    b.sign_in(&console, USER).await?;
    b.goto(&format!("{console}/connect")).await?;
    let first = sign_in_at_frameio(&b, "main form button.primary").await?;
    ensure!(!first.is_empty(), "the Connect screen names the Frame.io user");
    open_bind_dialog(&b, &console, &folder_id).await?;
    ensure!(choices(&b, "account").await?.iter().any(|a| a == fx.account), "the dialog lists her account");

    // Frame.io takes the grant back: every token of hers is revoked, so the access
    // token the connector holds (not expired by its clock) is refused, and so is the
    // refresh token it then tries.
    let revoked = w.control.revoke_tokens(fx.consenting_user).await?;
    ensure!(revoked.access_tokens >= 1 && revoked.refresh_tokens == 1, "her tokens were revoked: {revoked:?}");
    let before = refreshes(&w).await?;
    ensure!(reconnect_emails(&w)? == 0, "no reconnect email yet");

    // The next thing that needs Frame.io: the bind dialog says her sign-in is no
    // longer accepted, instead of listing anything.
    open_bind_dialog(&b, &console, &folder_id).await?;
    b.wait_for_text("Frame.io no longer accepts your sign-in", Duration::from_secs(10)).await?;
    ensure!(b.text().await?.contains("invalid_grant"), "the reason is Frame.io's: {}", b.text().await?);
    ensure!(b.all("#field-account").await?.is_empty(), "no account choice without a working connection");
    ensure!(refreshes(&w).await? == before + 1, "one refresh was tried, and refused");
    ensure!(reconnect_emails(&w)? == 1, "she is emailed once: {:?}", w.emails()?.iter().map(|e| &e.subject).collect::<Vec<_>>());

    // The Connect screen says the connection must be made again, and offers Reconnect
    // (not a connection that still looks fine).
    b.goto(&format!("{console}/connect")).await?;
    b.wait_for_text("must be made again", Duration::from_secs(5)).await?;
    let page = b.text().await?;
    ensure!(page.contains("invalid_grant"), "the screen says why: {page}");
    ensure!(!page.contains("Connected as"), "a refused connection is not shown as connected: {page}");
    ensure!(b.all("form[action=\"/connect/check\"]").await?.is_empty(), "nothing left to check: {page}");
    let button = reconnect_button(&b).await?.context("a Reconnect button")?;
    ensure!(button.contains("primary"), "Reconnect is the screen's main action: class {button:?}");
    // Looking again asks Frame.io nothing and emails nobody again.
    open_bind_dialog(&b, &console, &folder_id).await?;
    b.wait_for_text("Frame.io no longer accepts your sign-in", Duration::from_secs(5)).await?;
    ensure!(refreshes(&w).await? == before + 1 && reconnect_emails(&w)? == 1, "a refused connection is not refreshed again");

    // She reconnects: through the sign-in again, and back, connected.
    b.goto(&format!("{console}/connect")).await?;
    let again = sign_in_at_frameio(&b, "main form[action=\"/connect\"] button.primary").await?;
    ensure!(again == first, "connected again as the same Frame.io user: {again} vs {first}");
    ensure!(b.all("form[action=\"/connect/check\"]").await?.len() == 1, "Check connection is back");

    // Frame.io works again: the bind dialog browses her accounts, workspaces and projects.
    open_bind_dialog(&b, &console, &folder_id).await?;
    choose_and_refresh(&b, "account", fx.account).await?;
    choose_and_refresh(&b, "workspace", fx.workspace).await?;
    ensure!(choices(&b, "project").await?.iter().any(|p| p == fx.project), "the dialog lists the project after reconnecting");

    // A second revocation, found this time by "Check connection" on the Connect
    // screen, which shows the connection as it was until Frame.io is asked.
    w.control.revoke_tokens(fx.consenting_user).await?;
    b.goto(&format!("{console}/connect")).await?;
    b.wait_for_text("Connected as", Duration::from_secs(2)).await?;
    b.click_through("form[action=\"/connect/check\"] button").await?;
    b.wait_for_text("Frame.io refused to renew your sign-in", Duration::from_secs(10)).await?;
    b.wait_for_text("must be made again", Duration::from_secs(1)).await?;
    ensure!(!b.text().await?.contains("Connected as"), "refused, the connection is not shown as connected");
    ensure!(reconnect_button(&b).await?.is_some(), "Reconnect is offered after the check");
    ensure!(reconnect_emails(&w)? == 2, "one email per refused grant");
    sign_in_at_frameio(&b, "main form[action=\"/connect\"] button.primary").await?;

    // And a Frame.io action works: she binds the folder, which makes a custom action.
    open_bind_dialog(&b, &console, &folder_id).await?;
    choose_and_refresh(&b, "account", fx.account).await?;
    choose_and_refresh(&b, "workspace", fx.workspace).await?;
    b.choose("#field-project", fx.project).await?;
    b.fill("#field-action-name", "Publish to DAM").await?;
    b.click_through("main form button.primary").await?;
    b.wait_for_text("is bound to", Duration::from_secs(10)).await?;
    let project = b.text_of(&b.find("[data-fact=\"project\"]").await?).await?;
    ensure!(project == fx.project_name, "the Frame.io tab names the project: {project}");
    let bindings = w.admin_ok(Method::GET, "/bindings", None).await?;
    ensure!(bindings.as_array().map(Vec::len) == Some(1), "one binding: {bindings}");
    let actions = w.control.stats().await?["actions"].clone();
    let action_id = bindings[0]["action_id"].as_str().context("action id")?;
    ensure!(
        actions.as_array().into_iter().flatten().any(|a| a["id"] == action_id && a["deleted"] == false),
        "the custom action is live in Frame.io: {actions}"
    );
    drop(b);
    w.stop().await;
    Ok(())
}
