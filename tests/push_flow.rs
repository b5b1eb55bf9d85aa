//! The push flow end to end: the real component in the real host-shim against the
//! Frame.io simulator, over loopback HTTP. Tests that involve Frame.io's API run
//! on both generations (`<test>::v2` and `<test>::v4`).

use std::time::Duration;

use connector_e2e::{bound_world, bound_world_on, on_both_apis, world_on, world_with};
use frameio_sim::Content;
use host_shim::harness::fixture::{self, Fixture};
use host_shim::harness::World;
use reqwest::Method;
use serde_json::{Value, json};

const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Pushes `asset` as the fixture's pusher and waits for the import to finish; returns the job.
async fn push_and_wait(world: &World, action_id: &str, asset: &str, data: Value) -> host_shim::queue::JobRow {
    let (form, message) = world.push(action_id, asset, world.fixture.pusher, data).await.unwrap();
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(message.status, 200, "{}", message.body);
    assert_eq!(message.body["title"], "Asset pushed to the DAM", "{}", message.body);
    world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap()
}

fn blob_bytes(world: &World, blob_id: &str) -> Vec<u8> {
    let path = world.host.services.blobs.path(blob_id).expect("the blob exists");
    std::fs::read(path).unwrap()
}

fn expected_bytes(asset_id: &str, size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; size as usize];
    Content::new(asset_id, size).fill(0, &mut bytes);
    bytes
}

#[tokio::test]
async fn the_provider_descriptor_is_prefilled_and_bad_settings_are_refused() {
    let (world, _dir) = world_with(|_| {}).await;
    let descriptor = world.admin(Method::GET, "/provider", None).await.unwrap().body;
    assert_eq!(descriptor["service_name"], "frameio");
    let default_of = |name: &str| {
        descriptor["settings"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()["default_value"].clone()
    };
    assert_eq!(default_of("authorization-url"), "https://applications.frame.io/oauth2/auth");
    assert_eq!(default_of("token-url"), "https://applications.frame.io/oauth2/token");
    assert!(default_of("scopes").as_str().unwrap().contains("offline"));

    let bad = json!({ "settings": { "client-id": "x", "client-secret": "y", "public-url": "https://dam.example/f", "token-url": "not a url" } });
    let answer = world.admin(Method::PUT, "/provider", Some(bad)).await.unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"].as_str().unwrap().contains("token-url"), "{}", answer.body);
    // Nothing was stored: the provider is still unconfigured.
    let connect = world.admin(Method::POST, "/users/dana/connect", None).await.unwrap();
    assert_eq!(connect.status, 409, "{}", connect.body);
    assert!(connect.body["error"].as_str().unwrap().contains("not configured"));
    world.stop().await;
}

#[tokio::test]
async fn connecting_checks_the_state_and_stores_tokens() {
    let (world, _dir) = world_with(|_| {}).await;
    world.configure_provider().await.unwrap();
    let page = world.connect("dana").await.unwrap();
    assert!(page.contains("Dana"), "{page}");
    let status = world.admin(Method::GET, "/users/dana/connection", None).await.unwrap().body;
    assert!(status["frameio_user"].as_str().unwrap().contains("dana@"), "{status}");

    // A forged or replayed state is refused, and nothing changes.
    let forged = format!("{}/oauth/callback?code=abc&state=forged", world.host.public_url);
    let page = reqwest::get(&forged).await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("unknown, expired or already used"));
    world.stop().await;
}

#[tokio::test]
async fn browsing_pages_by_cursor_through_accounts_workspaces_projects_and_children() {
    // Two entries a page: Editorial's three projects and the Spring root's children
    // only come back whole if every cursor is followed.
    let (world, _dir) = world_with(|o| o.sim.max_page_size = 2).await;
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    let names = |entries: &[serde_json::Value]| entries.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (accounts, _) = world.browse_all("/users/dana/accounts").await.unwrap();
    assert!(accounts.iter().all(|a| a["kind"] == "account"), "{accounts:?}");
    let account = fixture::REYES_STUDIO;
    let (workspaces, _) = world.browse_all(&format!("/users/dana/accounts/{account}/workspaces")).await.unwrap();
    assert!(names(&workspaces).contains(&"Editorial".to_string()), "{workspaces:?}");
    let path = format!("/users/dana/accounts/{account}/workspaces/{}/projects", fixture::EDITORIAL_TEAM);
    let (projects, pages) = world.browse_all(&path).await.unwrap();
    assert_eq!(names(&projects), ["Spring Campaign", "Documentary", "Archive 2023"]);
    assert_eq!(pages, 2, "three projects, two a page");
    assert_eq!(projects[0]["root_folder_id"], fixture::SPRING_ROOT);
    let (shared, _) = world.browse_all("/users/dana/shared-projects").await.unwrap();
    assert_eq!(names(&shared), ["Client Review"]);
    let root = format!("/users/dana/accounts/{account}/folders/{}/children", fixture::SPRING_ROOT);
    let (folders, _) = world.browse_all(&format!("{root}?kinds=folders")).await.unwrap();
    assert_eq!(names(&folders), ["Footage"]);
    let (all, _) = world.browse_all(&root).await.unwrap();
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"file") && kinds.contains(&"version-stack") && kinds.contains(&"folder"), "{all:?}");
    let bad = world.admin(Method::GET, &format!("{root}?cursor=not-a-page"), None).await.unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    world.stop().await;
}

async fn a_push_lands_as_a_document_with_frameio_metadata_and_an_email(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let (form, _) = world.push(&bound.action_id, fx.video, fx.pusher, json!({"title": "", "note": "Graded\nfor review", "notify": "yes"})).await.unwrap();
    assert_eq!(form.body["fields"][0]["value"], fx.video_name, "the form offers the asset's name");
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done", "{job:?}");
    let status = job.status_text.clone().unwrap_or_default();
    assert!(status.starts_with("done: ") && !status.contains("downloading"), "the status says how it ended: {status}");

    let docs = world.documents(&bound.folder_id).await.unwrap();
    assert_eq!(docs.len(), 1);
    let doc = world.document(docs[0]["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(doc["document"]["title"], fx.video_name);
    let props = &doc["properties"];
    assert_eq!(props["frameio.asset-id"], fx.video);
    assert_eq!(props["frameio.api"], fx.api.name());
    assert_eq!(props["frameio.project"], fx.project_name);
    assert_eq!(props["frameio.project-id"], fx.project);
    assert_eq!(props["frameio.team-id"], fx.workspace);
    assert_eq!(props["frameio.filetype"], fx.video_type);
    assert_eq!(props["frameio.filesize"], fx.video_size.to_string());
    assert_eq!(props["frameio.comment"], "Graded\nfor review", "the form's note");
    assert!(props["frameio.link"].as_str().is_some_and(|l| l.starts_with("http") && l.contains(fx.video)), "{props}");
    if fx.api.name() == "v2" {
        // The Legacy API tells more of a file than V4's file record does.
        for name in ["frameio.uploader", "frameio.fps", "frameio.duration", "frameio.frames", "frameio.label", "frameio.checksum"] {
            assert!(props[name].as_str().is_some_and(|v| !v.is_empty()), "{name} missing: {props}");
        }
    }
    let versions = doc["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let bytes = blob_bytes(&world, versions[0]["blob_id"].as_str().unwrap());
    assert!(bytes == expected_bytes(fx.video, fx.video_size), "the imported bytes are the original's");

    let emails = world.emails().unwrap();
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].to.contains(fx.pusher_email), "{:?}", emails[0]);
    assert!(emails[0].subject.contains(fx.video_name));
    assert!(emails[0].body.contains(&format!("/documents/{}", doc["document"]["id"].as_str().unwrap())));
    world.stop().await;
}

async fn pushing_again_or_a_newer_stack_version_adds_versions_never_documents(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    for _ in 0..2 {
        let job = push_and_wait(&world, &bound.action_id, fx.video, json!({"notify": "no"})).await;
        assert_eq!(job.state, "done", "{job:?}");
    }
    // The first version, then the stack itself: the stack stands for its head.
    for asset in [fx.stack_v1, fx.stack] {
        let job = push_and_wait(&world, &bound.action_id, asset, json!({"notify": "no"})).await;
        assert_eq!(job.state, "done", "{job:?}");
    }
    let docs = world.documents(&bound.folder_id).await.unwrap();
    assert_eq!(docs.len(), 2, "{docs:?}");
    for doc in &docs {
        let full = world.document(doc["id"].as_str().unwrap()).await.unwrap();
        let numbers: Vec<u64> = full["versions"].as_array().unwrap().iter().map(|v| v["number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, [1, 2], "{full}");
    }
    let trailer = docs.iter().find(|d| d["title"] == fx.stack_v1_name).expect("the stack's document keeps its first title");
    let full = world.document(trailer["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(full["properties"]["frameio.asset-id"], fx.stack_v2, "the newest version's metadata wins");
    let v2 = &full["versions"][1];
    assert!(blob_bytes(&world, v2["blob_id"].as_str().unwrap()) == expected_bytes(fx.stack_v2, fx.stack_v2_size));
    assert!(world.emails().unwrap().is_empty(), "nobody asked for email");
    world.stop().await;
}

async fn a_repeated_submission_imports_once(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let form = world.control.click(&bound.action_id, fx.video, Some(fx.pusher)).await.unwrap();
    for _ in 0..3 {
        let reply = world
            .control
            .submit(&bound.action_id, &form.interaction_id, fx.video, Some(fx.pusher), json!({"notify": "no"}))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done");
    assert_eq!(connector_e2e::jobs_of_kind(&world, "push").len(), 1, "one job however often Frame.io delivers");
    let docs = world.documents(&bound.folder_id).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["version_count"], 1);
    world.stop().await;
}

async fn folders_and_other_projects_files_are_answered_with_a_message(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let cases = [(fx.folder, "folder"), (fx.elsewhere, "another project")];
    for (asset, words) in cases {
        let reply = world.control.click(&bound.action_id, asset, Some(fx.pusher)).await.unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body["description"].as_str().unwrap().contains(words), "{}", reply.body);
        assert!(reply.body.get("fields").is_none(), "no form: {}", reply.body);
    }
    assert!(connector_e2e::jobs_of_kind(&world, "push").is_empty());
    world.stop().await;
}

async fn a_clashing_action_name_is_refused_and_creates_nothing(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let other = world.create_folder("/Marketing/Other", "Other").await.unwrap();
    let answer = world.bind("dana", other["id"].as_str().unwrap(), fx.account, fx.project, "publish to DAM").await.unwrap();
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(answer.body["error"].as_str().unwrap().contains("already exists"));
    let bindings = world.admin(Method::GET, "/bindings", None).await.unwrap().body;
    assert_eq!(bindings.as_array().unwrap().len(), 1);
    assert_eq!(bindings[0]["id"], bound.binding_id.as_str());
    world.stop().await;
}

async fn unbinding_deletes_the_action_and_keeps_the_documents(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    push_and_wait(&world, &bound.action_id, fx.video, json!({"notify": "no"})).await;
    let answer = world.admin(Method::DELETE, &format!("/bindings/{}", bound.binding_id), None).await.unwrap();
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(world.admin(Method::GET, "/bindings", None).await.unwrap().body.as_array().unwrap().is_empty());
    // Frame.io no longer offers the action.
    assert!(world.control.click(&bound.action_id, fx.video, Some(fx.pusher)).await.is_err());
    // A delivery already under way when it was deleted is answered, and imports nothing.
    let late = world.control.late_click(&bound.action_id, fx.video, Some(fx.pusher)).await.unwrap();
    assert_eq!(late.status, 200);
    assert_eq!(late.body["title"], "This folder is no longer bound");
    assert_eq!(world.documents(&bound.folder_id).await.unwrap().len(), 1, "imported documents stay");
    assert_eq!(connector_e2e::jobs_of_kind(&world, "push").len(), 1);
    world.stop().await;
}

async fn an_expired_access_token_is_refreshed_before_use(fx: &Fixture) {
    let (world, _dir) = world_on(fx, |o| o.sim.access_token_ttl_secs = 1).await;
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    // Let the access token really expire before it is needed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = world.control.stats().await.unwrap()["refresh_requests"].as_u64().unwrap();
    let accounts = world.admin(Method::GET, "/users/dana/accounts", None).await.unwrap();
    assert_eq!(accounts.status, 200, "{}", accounts.body);
    let after = world.control.stats().await.unwrap()["refresh_requests"].as_u64().unwrap();
    assert_eq!(after, before + 1, "one refresh before the call");
    world.stop().await;
}

async fn concurrent_calls_with_an_expiring_token_share_one_refresh(fx: &Fixture) {
    // Tokens live 64 s and the connector refreshes a minute before expiry: after 4 s
    // the token needs a refresh, and the new one stays fresh for a few seconds.
    let (world, _dir) = world_on(fx, |o| o.sim.access_token_ttl_secs = 64).await;
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let before = world.control.stats().await.unwrap()["refresh_requests"].as_u64().unwrap();
    let calls = (0..8).map(|_| world.admin(Method::GET, "/users/dana/accounts", None));
    for answer in futures_util::future::join_all(calls).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let after = world.control.stats().await.unwrap()["refresh_requests"].as_u64().unwrap();
    assert_eq!(after, before + 1, "exactly one refresh reached Frame.io");
    world.stop().await;
}

#[tokio::test]
async fn the_provider_can_come_from_the_host_config_file() {
    let (world, _dir) = world_with(|o| o.provider_in_config = true).await;
    // No admin call: the [provider] settings were applied at startup.
    let page = world.connect("dana").await.unwrap();
    assert!(page.contains("Connected to Frame.io"), "{page}");
    world.stop().await;
}

#[tokio::test]
async fn a_pkce_app_connects_with_a_verifier_and_no_secret() {
    let (world, _dir) = world_with(|_| {}).await;
    let base = world.sim.base_url();
    let settings = json!({ "settings": {
        "client-id": "fio-sim-pkce", "use-pkce": "true",
        "authorization-url": format!("{base}/oauth2/auth"), "token-url": format!("{base}/oauth2/token"),
        "api-url": world.sim.api_url(), "web-url": base, "public-url": format!("{}/frameio", world.host.public_url),
    }});
    assert_eq!(world.admin(Method::PUT, "/provider", Some(settings)).await.unwrap().status, 204);
    let auth = world.admin(Method::POST, "/users/dana/connect", None).await.unwrap().body;
    let url = auth["url"].as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256") && url.contains("code_challenge="), "{url}");
    // The simulator refuses the code unless the verifier matches the challenge.
    let page = world.connect("dana").await.unwrap();
    assert!(page.contains("Connected to Frame.io"), "{page}");
    world.stop().await;
}

async fn a_failed_import_tells_the_pusher_why_and_makes_no_document(fx: &Fixture) {
    // Every download URL the simulator hands out has already expired: the job renews
    // it by re-reading the asset a few times, then gives up.
    let (world, _dir) = world_on(fx, |o| o.sim.url_expiry_secs = 0).await;
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    let folder = world.create_folder("/Marketing/Spring", "Spring").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap();
    let bound = world.bind("dana", folder_id, fx.account, fx.project, "Publish to DAM").await.unwrap().body;
    let action_id = bound["action_id"].as_str().unwrap();
    let job = push_and_wait(&world, action_id, fx.video, json!({"notify": "no"})).await;
    assert_eq!(job.state, "failed", "{job:?}");
    assert!(job.result_text.as_deref().unwrap_or("").contains("403"), "{job:?}");
    assert!(world.documents(folder_id).await.unwrap().is_empty(), "a partial file never becomes a document");
    let emails = world.emails().unwrap();
    assert_eq!(emails.len(), 1, "failures are reported even without asking for email");
    assert!(emails[0].to.contains(fx.pusher_email), "{:?}", emails[0]);
    assert!(emails[0].subject.contains("could not be imported"));
    assert!(emails[0].body.contains("403"), "{}", emails[0].body);
    world.stop().await;
}

#[tokio::test]
async fn no_secret_is_written_in_clear_text_under_the_data_dir() {
    let (world, dir, bound) = bound_world().await;
    let job = push_and_wait(&world, &bound.action_id, fixture::INTERVIEW_MP4, json!({"notify": "yes"})).await;
    assert_eq!(job.state, "done", "{job:?}");

    // The storage opens its sealed values, so the test can learn what to look for.
    let connection = world.host.services.storage.get("connection/dana").unwrap().expect("Dana's connection is stored");
    let connection: Value = serde_json::from_slice(&connection.value).unwrap();
    let access_token = connection["access_token"].as_str().expect("an access token is stored").to_string();
    let signing_secret = connector_e2e::binding_secret(&world, &bound.binding_id);
    let mut secrets = vec![fixture::CLIENT_SECRET.to_string(), signing_secret, access_token];
    secrets.extend(connection["refresh_token"].as_str().map(String::from));
    // The connector's records name these fields in JSON: seen in a file, they are clear text.
    secrets.extend(["access_token", "refresh_token"].map(String::from));

    let files: Vec<(String, Vec<u8>)> =
        files_under(dir.path()).into_iter().map(|f| (f.display().to_string(), std::fs::read(&f).unwrap())).collect();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for (name, bytes) in &files {
        for secret in &secrets {
            assert!(!contains(bytes, secret.as_bytes()), "{name} holds a secret in clear text");
        }
    }
    assert!(names.iter().any(|n| n.ends_with("host.sqlite3")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".eml")), "the outbox is scanned too: {names:?}");
    // Storage keys are kept in clear: finding one proves the scan reads the database.
    let binding_key = format!("binding/{}", bound.binding_id);
    let seen = files.iter().any(|(_, bytes)| contains(bytes, binding_key.as_bytes()));
    assert!(seen, "no file holds {binding_key}: {names:?}");
    world.stop().await;
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test]
async fn a_full_instance_pool_makes_calls_wait_instead_of_failing() {
    // One pool slot and sixteen browse calls at once, each holding its instance
    // while the component calls Frame.io: without back-pressure all but one
    // instantiation would fail with the pool exhausted.
    let (world, _dir) = world_with(|o| o.pooling_instances = 1).await;
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    let calls = (0..16).map(|_| world.admin(Method::GET, "/users/dana/shared-projects", None));
    for answer in futures_util::future::join_all(calls).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["entries"][0]["name"], "Client Review");
    }
    world.stop().await;
}

#[tokio::test]
async fn clicks_and_sign_ins_leave_no_storage_rows_once_they_expire() {
    let (world, _dir, bound) = bound_world().await;
    let storage = &world.host.services.storage;
    // Rate-limit buckets (`pace/<user>/<route>`) are kept on purpose, one per route
    // a connection has called: they are not per click.
    let lasting = || storage.list_keys("").unwrap().into_iter().filter(|k| !k.starts_with("pace/")).count();
    let baseline = lasting();
    for _ in 0..30 {
        let form = world.control.click(&bound.action_id, fixture::INTERVIEW_MP4, Some(fixture::SAM)).await.unwrap();
        assert_eq!(form.status, 200, "{}", form.body);
    }
    world.admin_ok(Method::POST, "/users/sam/connect", None).await.unwrap();
    assert_eq!(storage.list_keys("interaction/").unwrap().len(), 30);
    assert_eq!(storage.list_keys("oauth-state/").unwrap().len(), 1);

    // Nothing has expired yet: the sweep keeps them (it takes only tombstones, such
    // as Dana's completed sign-in).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    world.host.sweep(now).unwrap();
    assert_eq!(storage.list_keys("interaction/").unwrap().len(), 30);
    assert_eq!(storage.list_keys("oauth-state/").unwrap().len(), 1);
    // An hour and a second later, a click's record and the pending sign-in are gone.
    let swept = world.host.sweep(now + 3601).unwrap();
    assert_eq!(swept.storage_rows, 31, "{swept:?}");
    assert!(storage.list_keys("interaction/").unwrap().is_empty());
    assert!(storage.list_keys("oauth-state/").unwrap().is_empty());
    assert_eq!(lasting(), baseline, "settings, connection and binding stay");
    let form = world.control.click(&bound.action_id, fixture::INTERVIEW_MP4, Some(fixture::SAM)).await.unwrap();
    assert_eq!(form.status, 200, "the connector works on after the sweep: {}", form.body);
    world.stop().await;
}

on_both_apis!(
    a_push_lands_as_a_document_with_frameio_metadata_and_an_email,
    pushing_again_or_a_newer_stack_version_adds_versions_never_documents,
    a_repeated_submission_imports_once,
    folders_and_other_projects_files_are_answered_with_a_message,
    a_clashing_action_name_is_refused_and_creates_nothing,
    unbinding_deletes_the_action_and_keeps_the_documents,
    an_expired_access_token_is_refreshed_before_use,
    concurrent_calls_with_an_expiring_token_share_one_refresh,
    a_failed_import_tells_the_pusher_why_and_makes_no_document,
);
