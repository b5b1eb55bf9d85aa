//! Project archive end to end, on both API generations: a generated project (nested
//! folders, files, version stacks, comments with replies, unfinished uploads)
//! archived into a DAM folder through the admin API while Frame.io's API and
//! storage fail now and then, and the DAM's copy compared with what the simulator
//! holds: every folder, document, version, byte and comment, nothing twice, and
//! every asset left out reported with its reason.

use std::time::Duration;

use connector_e2e::{bound_world_on, connected_world_on, on_both_apis};
use host_shim::harness::provider_settings;
use frameio_sim::{Faults, GenerateSpec, MediaFaults, RouteClass, RouteFaults};
use host_shim::harness::World;
use host_shim::harness::archive::{dam_copy, expected_copy};
use host_shim::harness::fixture::Fixture;
use reqwest::Method;
use serde_json::{Value, json};

const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(240);

fn spec() -> GenerateSpec {
    GenerateSpec {
        files: 60,
        folder_depth: 2,
        folders_per_folder: 3,
        stack_every: 8,
        versions_per_stack: 3,
        comment_every: 6,
        replies_per_comment: 1,
        incomplete_every: 25,
        file_size: 48 * 1024,
        size_spread: 0.5,
        seed: 7,
    }
}

/// API calls fail now and then (rate limits, 5xx) and storage too (5xx, expired
/// links): each must be retried or renewed, never lost or repeated.
fn faults() -> Faults {
    let flaky = RouteFaults { rate_limited: 0.03, server_error: 0.03, ..RouteFaults::default() };
    let classes = [RouteClass::AssetRead, RouteClass::AssetChildren, RouteClass::Read, RouteClass::V4Read, RouteClass::FolderChildren, RouteClass::FileRead];
    Faults {
        seed: 11,
        api: classes.into_iter().map(|c| (c, flaky.clone())).collect(),
        media: MediaFaults { server_error: 0.05, expired: 0.05, ..MediaFaults::default() },
        ..Faults::default()
    }
}

async fn start(world: &World, fx: &Fixture, folder_id: &str) -> Value {
    let body = json!({ "user": "dana", "account_id": fx.account, "project_id": fx.project, "folder_id": folder_id });
    let answer = world.admin(Method::POST, "/archives", Some(body)).await.unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    answer.body
}

async fn a_project_is_archived_whole_through_faults_and_nothing_twice(fx: &Fixture) {
    let (world, _dir) = connected_world_on(fx).await;
    world.control.generate_project(fx.project, &spec()).await.unwrap();
    let tree = world.control.project_tree(fx.project, false).await.unwrap();
    let folder = world.create_folder("/Archive", "Archive").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_string();
    world.control.set_faults(&faults()).await.unwrap();

    let first = start(&world, fx, &folder_id).await;
    let again = start(&world, fx, &folder_id).await;
    assert_eq!(first["key"], again["key"], "a second start joins the open archive");
    let key = first["key"].as_str().unwrap();
    let job = world.wait_for_job(key, ARCHIVE_TIMEOUT).await.unwrap();
    assert_eq!(job.state, "done", "{job:?}");
    world.control.set_faults(&Faults::default()).await.unwrap();

    let (want, left_out) = expected_copy(&tree);
    let copy = dam_copy(&world, "/Archive").await.unwrap();
    assert_eq!(copy.folders, want.folders);
    assert_eq!(copy.documents.len(), want.documents.len());
    for (key, want) in &want.documents {
        assert_eq!(copy.documents.get(key), Some(want), "document {key}");
    }

    let report = world.admin_ok(Method::GET, &format!("/folders/{folder_id}/properties"), None).await.unwrap();
    let property = |name: &str| report["properties"][name].as_str().unwrap_or_default().to_string();
    assert_eq!(property("frameio.project-id"), fx.project);
    assert_eq!(property("frameio.archive.documents"), want.documents.len().to_string());
    assert_eq!(property("frameio.archive.versions"), want.versions().to_string());
    assert_eq!(property("frameio.archive.bytes"), want.bytes().to_string());
    assert_eq!(property("frameio.archive.skipped"), left_out.to_string());
    assert_eq!(property("frameio.archive.skipped-assets").lines().count(), left_out);

    let listed = world.admin_ok(Method::GET, "/archives", None).await.unwrap();
    assert_eq!(listed["archives"][0]["key"], key);
    let emails = world.emails().unwrap();
    assert!(emails.iter().any(|e| e.subject.contains("is archived")), "{emails:?}");
}

async fn bad_archive_requests_are_refused_with_the_reason(fx: &Fixture) {
    let (world, _dir) = connected_world_on(fx).await;
    let folder = world.create_folder("/Archive", "Archive").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap();
    let cases = [
        (json!({ "user": "dana", "account_id": fx.account, "project_id": fx.project, "folder_id": "fld-nope" }), 404),
        (json!({ "user": "dana", "account_id": fx.account, "project_id": "../etc", "folder_id": folder_id }), 400),
        (json!({ "user": "nobody", "account_id": fx.account, "project_id": fx.project, "folder_id": folder_id }), 409),
    ];
    for (body, status) in cases {
        let answer = world.admin(Method::POST, "/archives", Some(body.clone())).await.unwrap();
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
    }
    let listed = world.admin_ok(Method::GET, "/archives", None).await.unwrap();
    assert_eq!(listed["archives"].as_array().map(Vec::len), Some(0));
}

/// The administrator's marker rule: renaming the project to carry the marker in
/// Frame.io archives it into the archive folder, once, through the webhook of the
/// workspace the bound folder follows.
async fn a_project_renamed_with_the_marker_is_archived_once(fx: &Fixture) {
    let (world, _dir, _bound) = bound_world_on(fx).await;
    let folder = world.create_folder("/Archive", "Archive").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let mut settings = provider_settings(&world.sim.base_url(), fx.api);
    settings.insert("public-url".into(), format!("{}/frameio", world.host.public_url));
    settings.insert("archive-marker".into(), "[archive]".into());
    settings.insert("archive-folder".into(), folder_id.clone());
    world.admin_ok(Method::PUT, "/provider", Some(json!({ "settings": settings }))).await.unwrap();

    world.control.rename_project(fx.project, &format!("{} [archive]", fx.project_name), None).await.unwrap();
    let deadline = std::time::Instant::now() + ARCHIVE_TIMEOUT;
    let archive = loop {
        let listed = world.admin_ok(Method::GET, "/archives", None).await.unwrap();
        if let Some(done) = listed["archives"].as_array().and_then(|a| a.iter().find(|a| a["state"] == "done" || a["state"] == "Done")) {
            break done.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no archive finished: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(archive["project_id"], fx.project);
    assert_eq!(archive["folder_id"], folder_id);
    assert!(archive["counts"]["documents"].as_u64().unwrap() > 0, "{archive}");

    // Renamed again, still with the marker: nothing more is archived.
    world.control.rename_project(fx.project, &format!("{} [archive] final", fx.project_name), None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed = world.admin_ok(Method::GET, "/archives", None).await.unwrap();
    assert_eq!(listed["archives"].as_array().map(Vec::len), Some(1), "{listed}");
}

on_both_apis!(
    a_project_is_archived_whole_through_faults_and_nothing_twice,
    bad_archive_requests_are_refused_with_the_reason,
    a_project_renamed_with_the_marker_is_archived_once
);
