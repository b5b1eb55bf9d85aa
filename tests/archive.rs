//! Project archive end to end, on both API generations: a generated project (nested
//! folders, files, version stacks, comments with replies, unfinished uploads)
//! archived into a DAM folder through the admin API while Frame.io's API and
//! storage fail now and then, and the DAM's copy compared with what the simulator
//! holds: every folder, document, version, byte and comment, nothing twice, and
//! every asset left out reported with its reason.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use connector_e2e::{connected_world_on, on_both_apis};
use frameio_sim::{Faults, GenerateSpec, MediaFaults, ProjectTree, RouteClass, RouteFaults};
use host_shim::harness::World;
use host_shim::harness::fixture::Fixture;
use reqwest::Method;
use serde_json::{Value, json};

const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(240);

fn spec() -> GenerateSpec {
    GenerateSpec {
        files: 120,
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

/// The DAM's copy: folder paths below `root`, and every document by its key with
/// its folder's path, version sizes in order and comment count.
async fn dam_copy(world: &World, root: &str) -> (Vec<String>, BTreeMap<String, (String, Vec<u64>, usize)>) {
    let folders = world.admin_ok(Method::GET, "/folders", None).await.unwrap();
    let folders: Vec<(String, String)> = folders["folders"]
        .as_array()
        .or(folders.as_array())
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_string(), f["path"].as_str().unwrap().to_string()))
        .filter(|(_, path)| path == root || path.starts_with(&format!("{root}/")))
        .collect();
    let below = |path: &str| path.strip_prefix(root).unwrap_or(path).to_string();
    let mut paths: Vec<String> = folders.iter().map(|(_, p)| below(p)).filter(|p| !p.is_empty()).collect();
    paths.sort();
    let mut documents = BTreeMap::new();
    for (id, path) in &folders {
        for doc in world.documents(id).await.unwrap() {
            let full = world.document(doc["id"].as_str().unwrap()).await.unwrap();
            let sizes = full["versions"].as_array().unwrap().iter().map(|v| v["size"].as_u64().unwrap()).collect();
            let comments = count_comments(&full["comments"]);
            let key = doc["external_key"].as_str().unwrap().to_string();
            let previous = documents.insert(key.clone(), (below(path), sizes, comments));
            assert!(previous.is_none(), "document {key} twice");
        }
    }
    (paths, documents)
}

fn count_comments(thread: &Value) -> usize {
    thread.as_array().map_or(0, |all| all.iter().map(|c| 1 + count_comments(&c["replies"])).sum())
}

/// What the DAM must hold, from the simulator's own view of the project.
fn expected(tree: &ProjectTree) -> (Vec<String>, BTreeMap<String, (String, Vec<u64>, usize)>, usize) {
    let mut folders: Vec<String> = tree.folders.iter().map(|f| f.path.clone()).collect();
    folders.sort();
    let folder_of = |path: &str| path.rsplit_once('/').map(|(dir, _)| dir.to_string()).unwrap_or_default();
    let mut documents = BTreeMap::new();
    let mut left_out = 0;
    let by_id: HashMap<&str, _> = tree.files.iter().map(|f| (f.id.as_str(), f)).collect();
    for file in tree.files.iter().filter(|f| f.stack_id.is_none()) {
        if !file.uploaded {
            left_out += 1;
            continue;
        }
        documents.insert(format!("frameio:{}", file.id), (folder_of(&file.path), vec![file.size], file.comments + file.replies));
    }
    for stack in &tree.stacks {
        let versions: Vec<_> = stack.file_ids.iter().map(|id| by_id[id.as_str()]).collect();
        left_out += versions.iter().filter(|v| !v.uploaded).count();
        let kept: Vec<_> = versions.iter().filter(|v| v.uploaded).collect();
        if kept.is_empty() {
            continue;
        }
        let comments = kept.iter().map(|v| v.comments + v.replies).sum();
        documents.insert(format!("frameio:{}", stack.id), (folder_of(&stack.path), kept.iter().map(|v| v.size).collect(), comments));
    }
    (folders, documents, left_out)
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

    let (want_folders, want_documents, left_out) = expected(&tree);
    let (folders, documents) = dam_copy(&world, "/Archive").await;
    assert_eq!(folders, want_folders);
    assert_eq!(documents.len(), want_documents.len());
    for (key, want) in &want_documents {
        assert_eq!(documents.get(key), Some(want), "document {key}");
    }

    let report = world.admin_ok(Method::GET, &format!("/folders/{folder_id}/properties"), None).await.unwrap();
    let property = |name: &str| report["properties"][name].as_str().unwrap_or_default().to_string();
    assert_eq!(property("frameio.project-id"), fx.project);
    assert_eq!(property("frameio.archive.documents"), want_documents.len().to_string());
    let versions: usize = want_documents.values().map(|(_, sizes, _)| sizes.len()).sum();
    assert_eq!(property("frameio.archive.versions"), versions.to_string());
    let bytes: u64 = want_documents.values().flat_map(|(_, sizes, _)| sizes).sum();
    assert_eq!(property("frameio.archive.bytes"), bytes.to_string());
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

on_both_apis!(a_project_is_archived_whole_through_faults_and_nothing_twice, bad_archive_requests_are_refused_with_the_reason);
