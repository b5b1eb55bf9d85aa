//! Egress control end to end: an asset whose `original` points somewhere the host
//! must never fetch from (its own admin API, the cloud metadata address) fails its
//! import with the reason, reaches nothing, and makes no document. On both API
//! generations (`<test>::v2`, `<test>::v4`).

use std::time::Duration;

use connector_e2e::{on_both_apis, world_on};
use host_shim::harness::World;
use host_shim::harness::fixture::Fixture;
use serde_json::{Value, json};

const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds a folder and adds a file to the fixture's project whose original is at `url`;
/// pushes it and returns the finished job and the folder.
async fn push_file_stored_at(world: &World, url: &str) -> (host_shim::queue::JobRow, String) {
    world.configure_provider().await.unwrap();
    world.connect("dana").await.unwrap();
    let folder = world.create_folder("/Marketing/Spring", "Spring").await.unwrap();
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let fx = world.fixture;
    let bound = world.bind("dana", &folder_id, fx.account, fx.project, "Publish to DAM").await.unwrap().body;
    let action_id = bound["action_id"].as_str().unwrap();
    let new_file = json!({ "name": "exfil.mov", "filetype": "video/quicktime", "filesize": 1024, "original_url": url });
    let created: Value = reqwest::Client::new()
        .post(format!("{}/_sim/assets/{}/children", world.sim.base_url(), fx.root))
        .json(&new_file)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asset_id = created["id"].as_str().unwrap();
    assert_eq!(created["original"], url);
    let (form, message) = world.push(action_id, asset_id, fx.pusher, json!({"notify": "no"})).await.unwrap();
    assert_eq!(message.body["title"], "Asset pushed to the DAM", "{}", message.body);
    let job = world.wait_for_job(&format!("push:{}", form.interaction_id), JOB_TIMEOUT).await.unwrap();
    (job, folder_id)
}

async fn transfer_bytes_done(world: &World) -> u64 {
    let transfers = world.admin_ok(reqwest::Method::GET, "/transfers", None).await.unwrap();
    transfers["transfers"].as_array().into_iter().flatten().map(|t| t["done"].as_u64().unwrap_or(0)).sum()
}

async fn an_original_pointing_at_the_hosts_own_admin_port_is_refused(fx: &Fixture) {
    // The simulator is allowed by its port only, although it shares the address.
    let (world, _dir) = world_on(fx, |_| {}).await;
    let url = format!("{}/admin/api/stats", world.host.admin_url);
    let (job, folder_id) = push_file_stored_at(&world, &url).await;
    assert_eq!(job.state, "failed", "{job:?}");
    let reason = job.result_text.clone().unwrap_or_default();
    assert!(reason.contains("not on the allowlist"), "{reason}");
    assert!(!reason.contains("guest_memory_peak_bytes"), "nothing was read from the admin API: {reason}");
    assert_eq!(transfer_bytes_done(&world).await, 0);
    assert!(world.documents(&folder_id).await.unwrap().is_empty());
    world.stop().await;
}

async fn an_original_at_the_cloud_metadata_address_is_refused_even_when_its_host_is_allowed(fx: &Fixture) {
    // Listing the address as a media host does not make a link-local address
    // reachable: only `allow_private_networks` could, and it names loopback alone.
    let (world, _dir) = world_on(fx, |o| o.extra_media_hosts = vec!["169.254.169.254".into()]).await;
    let (job, folder_id) = push_file_stored_at(&world, "http://169.254.169.254/latest/meta-data/iam/security-credentials/").await;
    assert_eq!(job.state, "failed", "{job:?}");
    let reason = job.result_text.clone().unwrap_or_default();
    assert!(reason.contains("169.254.169.254 is not a public address"), "{reason}");
    assert_eq!(transfer_bytes_done(&world).await, 0);
    assert!(world.documents(&folder_id).await.unwrap().is_empty());
    world.stop().await;
}

on_both_apis!(
    an_original_pointing_at_the_hosts_own_admin_port_is_refused,
    an_original_at_the_cloud_metadata_address_is_refused_even_when_its_host_is_allowed,
);
