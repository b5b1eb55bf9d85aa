//! Send for review end to end, on both API generations: a DAM document's version
//! uploaded by the host to the simulator's presigned part URLs, a review link (a
//! share, on V4) for the reviewers, a repeated send making nothing twice, a newer
//! version stacked on the earlier upload, and the automatic show/episode structure.

use std::time::Duration;

use connector_e2e::{Bound, bound_world_on, on_both_apis};
use host_shim::harness::World;
use host_shim::harness::fixture::Fixture;
use reqwest::Method;
use serde_json::{Value, json};

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// Pushes the fixture's video into the bound folder; the document's id.
async fn pushed_document(world: &World, bound: &Bound, fx: &Fixture, asset: &str) -> String {
    let (form, _) = world.push(&bound.action_id, asset, fx.pusher, json!({"notify": "no"})).await.unwrap();
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done", "{job:?}");
    let docs = world.documents(&bound.folder_id).await.unwrap();
    docs.iter().find(|d| d["external_key"] == format!("frameio:{asset}") || docs.len() == 1).unwrap()["id"].as_str().unwrap().to_string()
}

/// Sends a document for review through the admin API and waits for the job.
async fn send(world: &World, document: &str, body: Value) -> host_shim::queue::JobRow {
    let answer = world.admin(Method::POST, &format!("/documents/{document}/review"), Some(body)).await.unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let key = answer.body["job_key"].as_str().unwrap().to_string();
    world.wait_for_job(&key, JOB_TIMEOUT).await.unwrap()
}

fn request(bound: &Bound, fx: &Fixture, expires_at: u64) -> Value {
    json!({
        "user": "dana",
        "binding_id": bound.binding_id,
        "reviewers": ["rita@client.example", "sam@client.example"],
        "description": "Cut 3, for sign-off",
        "expires_at": expires_at,
        "password": "s3cret-link",
        "allow_download": false,
        "watermark": fx.api.name() == "v4",
    })
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn a_version_is_uploaded_shared_with_its_reviewers_and_made_once(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx, fx.video).await;
    let body = request(&bound, fx, now() + 86_400);
    let job = send(&world, &document, body.clone()).await;
    assert_eq!(job.state, "done", "{job:?}");
    let doc = world.document(&document).await.unwrap();
    let link = doc["properties"]["frameio.review-link"].as_str().unwrap().to_string();
    assert!(job.result_text.unwrap_or_default().contains(&link));
    let file_id = doc["properties"]["frameio.review-file-id"].as_str().unwrap().to_string();

    // Frame.io holds exactly the DAM's bytes.
    let stored = world.control.content_hash(&file_id).await.unwrap();
    let blob_id = doc["versions"][0]["blob_id"].as_str().unwrap();
    let blob = world.host.services.blobs.info(blob_id).unwrap().unwrap();
    assert_eq!(stored["size"], blob.size);
    assert_eq!(stored["xx_hash"], blob.xxhash64, "uploaded byte for byte");

    let shares = world.control.shares().await.unwrap();
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert_eq!(shares[0]["password_protected"], true);
    assert_eq!(shares[0]["downloading_enabled"], false);
    assert!(shares[0]["expires_at"].is_string(), "the expiry reached Frame.io: {}", shares[0]);
    assert_eq!(shares[0]["short_url"], link.as_str());
    let invited: Vec<&str> = shares[0]["reviewers"].as_array().unwrap().iter().filter_map(|r| r["email"].as_str()).collect();
    if fx.api.name() == "v4" {
        assert_eq!(invited, ["rita@client.example", "sam@client.example"], "V4 invites through Frame.io too");
    } else {
        assert!(invited.is_empty(), "the Legacy API invites no one: {invited:?}");
    }
    let emails = world.emails().unwrap();
    let told: Vec<&str> = emails.iter().filter(|e| e.body.contains(&link)).map(|e| e.to.as_str()).collect();
    assert_eq!(told.len(), 2, "each reviewer once: {told:?}");

    // The same send five times more is the same job: no second upload, link or email.
    for _ in 0..5 {
        let again = world.admin(Method::POST, &format!("/documents/{document}/review"), Some(body.clone())).await.unwrap();
        assert_eq!(again.status, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.control.shares().await.unwrap().len(), 1);
    assert_eq!(world.emails().unwrap().iter().filter(|e| e.body.contains(&link)).count(), 2);
    world.stop().await;
}

async fn a_newer_version_is_stacked_on_the_earlier_upload(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx, fx.video).await;
    send(&world, &document, request(&bound, fx, now() + 86_400)).await;
    let first = world.document(&document).await.unwrap()["properties"]["frameio.review-file-id"].as_str().unwrap().to_string();
    // The same file pushed again: version 2 of the document.
    pushed_document(&world, &bound, fx, fx.video).await;
    let job = send(&world, &document, request(&bound, fx, now() + 86_400)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let props = world.document(&document).await.unwrap()["properties"].clone();
    assert_ne!(props["frameio.review-file-id"], first.as_str(), "a second upload for the new version");
    assert_ne!(props["frameio.review-asset-id"], props["frameio.review-file-id"], "the link follows the stack: {props}");
    let shares = world.control.shares().await.unwrap();
    assert_eq!(shares.len(), 2);
    world.stop().await;
}

async fn bad_sends_are_refused_with_the_reason(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx, fx.video).await;
    let base = request(&bound, fx, now() + 86_400);
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let cases = [
        (with("expires_at", json!(1)), "in the past"),
        (with("reviewers", json!(["rita at client"])), "not an email"),
        (with("rendition", json!("proxy")), "no proxy rendition"),
        (with("password", json!("abc")), "4 to 128"),
        (with("binding_id", json!("b000000000000000000000000")), "binding"),
    ];
    for (body, words) in cases {
        let answer = world.admin(Method::POST, &format!("/documents/{document}/review"), Some(body)).await.unwrap();
        assert!(answer.status == 400 || answer.status == 404, "{words}: {} {}", answer.status, answer.body);
        assert!(answer.body["error"].as_str().unwrap().contains(words), "{words}: {}", answer.body);
    }
    if fx.api.name() == "v2" {
        let answer = world.admin(Method::POST, &format!("/documents/{document}/review"), Some(with("watermark", json!(true)))).await.unwrap();
        assert_eq!(answer.status, 400, "v2 links cannot ask for a watermark: {}", answer.body);
    }
    assert!(world.control.shares().await.unwrap().is_empty(), "nothing was made");
    let capabilities = world.admin_ok(Method::GET, "/review/capabilities", None).await.unwrap();
    assert_eq!(capabilities["watermark"], fx.api.name() == "v4");
    world.stop().await;
}

async fn expired_part_urls_are_replaced_and_the_file_arrives_whole(fx: &Fixture) {
    let (world, _dir, bound) = bound_world_on(fx).await;
    let document = pushed_document(&world, &bound, fx, fx.video).await;
    // Every part URL is refused as expired until the connector has started over.
    let expired: frameio_sim::Faults = serde_json::from_value(json!({ "upload": { "expired": 1.0 } })).unwrap();
    world.control.set_faults(&expired).await.unwrap();
    let answer = world.admin(Method::POST, &format!("/documents/{document}/review"), Some(request(&bound, fx, now() + 86_400))).await.unwrap();
    let key = answer.body["job_key"].as_str().unwrap().to_string();
    // Once a part URL was refused, the faults stop: the file must then arrive whole
    // through a fresh upload. Watched at the simulator, which sees the refusal at
    // once, rather than through the job's status, which a fast worker moves past.
    let deadline = std::time::Instant::now() + JOB_TIMEOUT;
    while world.control.fault_counts().await.unwrap().upload.expired == 0 {
        assert!(std::time::Instant::now() < deadline, "no part URL was refused");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    world.control.set_faults(&frameio_sim::Faults::default()).await.unwrap();
    let job = world.wait_for_job(&key, JOB_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done", "{job:?}");
    let doc = world.document(&document).await.unwrap();
    let file_id = doc["properties"]["frameio.review-file-id"].as_str().unwrap();
    let blob = world.host.services.blobs.info(doc["versions"][0]["blob_id"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(world.control.content_hash(file_id).await.unwrap()["xx_hash"], blob.xxhash64, "whole, byte for byte");
    world.stop().await;
}

async fn the_automatic_structure_makes_one_project_per_show_and_a_folder_per_episode(fx: &Fixture) {
    let (world, _dir, _bound) = bound_world_on(fx).await;
    // Two episodes of a new show, bound and pushed, then sent at the same time.
    let mut documents = Vec::new();
    let mut binding = String::new();
    for (n, episode) in ["Ep01", "Ep02"].iter().enumerate() {
        let folder = world.create_folder(&format!("/Harbor Lights/{episode}"), episode).await.unwrap();
        let folder_id = folder["id"].as_str().unwrap().to_string();
        let bound = world.bind("dana", &folder_id, fx.account, fx.project, &format!("Push {episode}")).await.unwrap();
        assert_eq!(bound.status, 201, "{}", bound.body);
        let action = bound.body["action_id"].as_str().unwrap().to_string();
        binding = bound.body["id"].as_str().unwrap().to_string();
        let asset = if n == 0 { fx.video } else { fx.stack_v1 };
        let (form, _) = world.push(&action, asset, fx.pusher, json!({"notify": "no"})).await.unwrap();
        world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
        documents.push(world.documents(&folder_id).await.unwrap()[0]["id"].as_str().unwrap().to_string());
    }
    let paths: Vec<String> = documents.iter().map(|doc| format!("/documents/{doc}/review")).collect();
    let sends = paths.iter().map(|path| {
        let body = json!({"user": "dana", "binding_id": binding, "structure": true, "reviewers": ["rita@client.example"]});
        world.admin(Method::POST, path, Some(body))
    });
    let keys: Vec<String> = futures_util::future::join_all(sends).await.into_iter().map(|a| a.unwrap().body["job_key"].as_str().unwrap().to_string()).collect();
    for key in keys {
        let job = world.wait_for_job(&key, JOB_TIMEOUT).await.unwrap();
        assert_eq!(job.state, "done", "{job:?}");
    }
    let (projects, _) = world.browse_all(&format!("/users/dana/accounts/{}/workspaces/{}/projects", fx.account, fx.workspace)).await.unwrap();
    let shows: Vec<&Value> = projects.iter().filter(|p| p["name"] == "Harbor Lights").collect();
    assert_eq!(shows.len(), 1, "one project for the show: {projects:?}");
    let root = shows[0]["root_folder_id"].as_str().unwrap();
    let (episodes, _) = world.browse_all(&format!("/users/dana/accounts/{}/folders/{root}/children?kinds=folders", fx.account)).await.unwrap();
    let mut names: Vec<&str> = episodes.iter().filter_map(|e| e["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["Ep01", "Ep02"]);
    world.stop().await;
}

on_both_apis!(
    the_automatic_structure_makes_one_project_per_show_and_a_folder_per_episode,
    expired_part_urls_are_replaced_and_the_file_arrives_whole,
    a_version_is_uploaded_shared_with_its_reviewers_and_made_once,
    a_newer_version_is_stacked_on_the_earlier_upload,
    bad_sends_are_refused_with_the_reason,
);
