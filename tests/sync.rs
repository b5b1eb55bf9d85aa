//! Comment and review-status sync end to end, on both API generations: a reviewer
//! acting in the simulator's web app, signed webhook deliveries to the real host,
//! the component converging the DAM document, and DAM comments and status changes
//! reaching Frame.io without echoes.

use std::time::{Duration, Instant};

use connector_e2e::{Bound, bound_world_on, on_both_apis};
use frameio_sim::{Api, sign};
use host_shim::harness::World;
use host_shim::harness::fixture::Fixture;
use reqwest::Method;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(30);
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Pushes the fixture's video and returns its document's id, once imported.
async fn pushed_document(world: &World, bound: &Bound, fx: &Fixture) -> String {
    let (form, _) = world.push(&bound.action_id, fx.video, fx.pusher, json!({"notify": "no"})).await.unwrap();
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done", "{job:?}");
    world.documents(&bound.folder_id).await.unwrap()[0]["id"].as_str().unwrap().to_string()
}

/// The document's comment thread, as the admin API shows it.
async fn thread(world: &World, document_id: &str) -> Vec<Value> {
    let listed = world.admin_ok(Method::GET, &format!("/documents/{document_id}/comments"), None).await.unwrap();
    listed["comments"].as_array().cloned().unwrap_or_default()
}

/// Waits until `check` holds for the document's thread; returns it.
async fn until_thread(world: &World, document_id: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let comments = thread(world, document_id).await;
        if check(&comments) {
            return comments;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {comments:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The comments Frame.io has on a file, read through its API as the consenting user.
async fn frameio_comments(world: &World, fx: &Fixture, file_id: &str) -> Vec<Value> {
    let api = if fx.api.name() == "v2" { Api::V2 } else { Api::V4 };
    let token = world.control.token(fx.consenting_user, api).await.unwrap().access_token;
    let base = world.sim.base_url();
    let url = match api {
        Api::V2 => format!("{base}/v2/assets/{file_id}/comments"),
        Api::V4 => format!("{base}/v4/accounts/{}/files/{file_id}/comments", fx.account),
    };
    let body: Value = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    let list = if body.is_array() { body } else { body["data"].clone() };
    list.as_array().cloned().unwrap_or_default()
}

async fn a_reviewers_comment_reply_and_approval_arrive_in_the_dam(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx).await;
    let annotation = r##"[{"tool":"arrow","points":[[0.25,0.5],[0.75,0.5]],"color":"#ff0000"}]"##;
    // Frame 48: v2 counts from 0, V4 from 1.
    let timestamp = if fx.api.name() == "v2" { 48 } else { 49 };
    let made = world.control.comment(fx.pusher, fx.video, json!({"text": "Lift the shadows here", "timestamp": timestamp, "annotation": annotation})).await.unwrap();
    let comment_id = made["id"].as_str().or_else(|| made["data"]["id"].as_str()).unwrap().to_string();
    let comments = until_thread(&world, &document, "the reviewer's comment", |c| c.len() == 1).await;
    assert_eq!(comments[0]["text"], "Lift the shadows here");
    assert_eq!(comments[0]["frame"], 48, "frames count from 0 in the DAM on both generations");
    assert_eq!(comments[0]["annotation"], annotation, "the drawing, exactly");
    assert_eq!(comments[0]["external_key"], format!("frameio:{comment_id}"));
    if fx.api.name() == "v2" {
        assert_eq!(comments[0]["timecode"], "00:00:02:00", "48 frames at 24 fps");
    }

    world.control.comment(fx.consenting_user, fx.video, json!({"text": "Agreed", "parent_id": comment_id})).await.unwrap();
    let comments = until_thread(&world, &document, "the reply", |c| c.first().is_some_and(|c| c["replies"].as_array().is_some_and(|r| r.len() == 1))).await;
    assert_eq!(comments[0]["replies"][0]["text"], "Agreed");

    world.control.review(fx.video, fx.consenting_user, "approved").await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let doc = world.document(&document).await.unwrap();
        if doc["status"] == "approved" {
            break;
        }
        assert!(Instant::now() < deadline, "the approval did not arrive: {doc}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    world.control.delete_comment(&comment_id).await.unwrap();
    until_thread(&world, &document, "the delete", |c| c.is_empty()).await;
    world.stop().await;
}

async fn a_dam_comment_reaches_frameio_once_and_never_echoes(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx).await;
    let body = json!({"user": "dana", "text": "Approved for the web cut", "frame": 12});
    let added = world.admin(Method::POST, &format!("/documents/{document}/comments"), Some(body)).await.unwrap();
    assert_eq!(added.status, 201, "{}", added.body);
    // Frame.io gets it; its webhook for our own comment comes back and is recognised.
    let deadline = Instant::now() + PATIENCE;
    let posted = loop {
        let comments = frameio_comments(&world, fx, fx.video).await;
        if let Some(found) = comments.into_iter().find(|c| c["text"] == "Approved for the web cut") {
            break found;
        }
        assert!(Instant::now() < deadline, "the comment never reached Frame.io");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected_timestamp = if fx.api.name() == "v2" { 12 } else { 13 };
    assert_eq!(posted["timestamp"], expected_timestamp);
    let keyed = until_thread(&world, &document, "the comment's key", |c| c.len() == 1 && c[0]["external_key"].is_string()).await;
    assert_eq!(keyed[0]["id"], added.body["id"], "the DAM comment itself took the key");
    // Let the echo and a reconcile pass, then check nothing was doubled anywhere.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(thread(&world, &document).await.len(), 1, "no echo in the DAM");
    let in_frameio: Vec<Value> = frameio_comments(&world, fx, fx.video).await.into_iter().filter(|c| c["text"] == "Approved for the web cut").collect();
    assert_eq!(in_frameio.len(), 1, "posted once");

    // A reply stays under its parent in the DAM, also on V4, whose API takes no
    // replies (it reaches Frame.io as a comment of its own there).
    let reply = json!({"user": "dana", "text": "And the titles", "parent_id": added.body["id"]});
    assert_eq!(world.admin(Method::POST, &format!("/documents/{document}/comments"), Some(reply)).await.unwrap().status, 201);
    until_thread(&world, &document, "the reply's key", |c| c[0]["replies"].as_array().is_some_and(|r| r.len() == 1 && r[0]["external_key"].is_string())).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let comments = thread(&world, &document).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0]["replies"][0]["text"], "And the titles");

    let status = world.admin(Method::PUT, &format!("/documents/{document}/status"), Some(json!({"user": "dana", "status": "needs-review"}))).await.unwrap();
    assert_eq!(status.status, 200, "{}", status.body);
    let bad = world.admin(Method::PUT, &format!("/documents/{document}/status"), Some(json!({"user": "dana", "status": "rejected"}))).await.unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    world.stop().await;
}

async fn forged_and_unknown_webhook_deliveries_change_nothing(fx: &Fixture) {
    let (world, _dir, _bound) = bound_world_on(fx).await;
    let subscriptions = world.host.services.storage.list_keys("subscription/").unwrap();
    let subscription = subscriptions[0].trim_start_matches("subscription/").to_string();
    let record: Value = serde_json::from_slice(&world.host.services.storage.get(&subscriptions[0]).unwrap().unwrap().value).unwrap();
    let secret = record["secrets"][0].as_str().unwrap().to_string();
    let event = if fx.api.name() == "v2" {
        json!({"type": "asset.label.updated", "resource": {"type": "asset", "id": fx.video}, "team": {"id": fx.workspace}, "user": {"id": fx.pusher}})
    } else {
        json!({"type": "file.ready", "resource": {"type": "file", "id": fx.video}, "account": {"id": fx.account}, "workspace": {"id": fx.workspace}, "user": {"id": fx.pusher}})
    };
    let body = event.to_string().into_bytes();
    let url = |id: &str| format!("{}/frameio/webhooks/{id}", world.host.public_url);
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let post = |target: String, ts: u64, secret: String, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let signature = sign(&secret, ts as i64, &body);
            let resp = client
                .post(target)
                .header("x-frameio-request-timestamp", ts.to_string())
                .header("x-frameio-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(post(url(&subscription), now, "forged".into(), body.clone()).await, 401, "forged");
    assert_eq!(post(url(&subscription), now - 301, secret.clone(), body.clone()).await, 401, "stale");
    assert_eq!(post(url("s000000000000000000000000"), now, secret.clone(), body.clone()).await, 404, "unknown subscription");
    let before = world.host.queue.list(&host_shim::db::Page::first(500)).unwrap().0.len();
    // Valid, but about a file nothing in the DAM is linked to: answered and ignored.
    assert_eq!(post(url(&subscription), now, secret.clone(), body.clone()).await, 200, "unlinked file");
    assert_eq!(world.host.queue.list(&host_shim::db::Page::first(500)).unwrap().0.len(), before, "nothing queued");
    world.stop().await;
}

async fn a_push_brings_existing_comments_and_an_unfinished_upload_imports_when_it_completes(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    world.control.comment(fx.consenting_user, fx.video, json!({"text": "Made before the push"})).await.unwrap();
    let document = pushed_document(&world, &bound, fx).await;
    let comments = until_thread(&world, &document, "the comment the file already had", |c| c.len() == 1).await;
    assert_eq!(comments[0]["text"], "Made before the push");

    let (form, message) = world.push(&bound.action_id, fx.unfinished, fx.pusher, json!({"notify": "no"})).await.unwrap();
    assert!(form.body["description"].as_str().unwrap().contains("imported when the upload completes"), "{}", form.body);
    assert_eq!(message.body["title"], "Asset pushed to the DAM");
    let parked = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    assert!(parked.result_text.unwrap_or_default().contains("waiting for Frame.io"));
    assert_eq!(world.documents(&bound.folder_id).await.unwrap().len(), 1, "nothing imported yet");
    world.control.complete_upload(fx.unfinished).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while world.documents(&bound.folder_id).await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the completed upload was not imported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.stop().await;
}

on_both_apis!(
    a_push_brings_existing_comments_and_an_unfinished_upload_imports_when_it_completes,
    a_reviewers_comment_reply_and_approval_arrive_in_the_dam,
    a_dam_comment_reaches_frameio_once_and_never_echoes,
    forged_and_unknown_webhook_deliveries_change_nothing,
);
