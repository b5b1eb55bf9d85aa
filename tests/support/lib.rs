//! Shared set-up for the end-to-end suites: a world (simulator + host-shim running
//! the real component) in a scratch directory, bound and ready to push.

pub mod browser;

use std::path::PathBuf;

use host_shim::harness::fixture::{self, Fixture};
use host_shim::harness::{World, WorldOptions};
use serde_json::Value;
use tempfile::TempDir;

/// The built component. `cargo xtask test` builds it first.
pub fn component() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/wasm32-wasip2/wasm/frameio_connector.wasm");
    assert!(path.exists(), "{} is missing: run the tests with `cargo xtask test`", path.display());
    path
}

/// The deliberately misbehaving test component (`tests/misbehaving`), for the
/// sandbox suite. `cargo xtask test` builds it first.
pub fn misbehaving_component() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/wasm32-wasip2/wasm/misbehaving_component.wasm");
    assert!(path.exists(), "{} is missing: run the tests with `cargo xtask test`", path.display());
    path
}

/// One compile cache for every test, so the component is compiled once.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/component-cache")
}

/// A world in a fresh directory (kept alive by the returned `TempDir`), on the
/// Legacy API unless `adjust` says otherwise.
pub async fn world_with(adjust: impl FnOnce(&mut WorldOptions)) -> (World, TempDir) {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut options = WorldOptions::new(&component(), dir.path());
    options.cache_dir = Some(cache_dir());
    adjust(&mut options);
    (World::start(options).await.expect("the world starts"), dir)
}

/// A world on `fx`'s API generation, adjusted further by `adjust`.
pub async fn world_on(fx: &Fixture, adjust: impl FnOnce(&mut WorldOptions)) -> (World, TempDir) {
    world_with(|o| {
        o.api = fx.api;
        adjust(o)
    })
    .await
}

/// A configured world on `fx`'s API generation where Dana is connected.
pub async fn connected_world_on(fx: &Fixture) -> (World, TempDir) {
    let (world, dir) = world_on(fx, |_| {}).await;
    world.configure_provider().await.expect("configure");
    world.connect("dana").await.expect("connect");
    (world, dir)
}

/// A configured Legacy API world where Dana is connected.
pub async fn connected_world() -> (World, TempDir) {
    connected_world_on(&fixture::V2).await
}

/// Runs an async test function that takes a [`Fixture`] once per API generation,
/// as `<name>::v2` and `<name>::v4`.
#[macro_export]
macro_rules! on_both_apis {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn v2() {
                    super::$test(&host_shim::harness::fixture::V2).await
                }

                #[tokio::test]
                async fn v4() {
                    super::$test(&host_shim::harness::fixture::V4).await
                }
            }
        )*
    };
}

/// A folder bound to the fixture's project.
pub struct Bound {
    pub folder_id: String,
    pub binding_id: String,
    pub action_id: String,
}

/// A connected Legacy API world with `/Marketing/Spring` bound to Spring Campaign.
pub async fn bound_world() -> (World, TempDir, Bound) {
    bound_world_on(&fixture::V2).await
}

/// A connected world on `fx`'s API generation with `/Marketing/Spring` bound to its project.
pub async fn bound_world_on(fx: &Fixture) -> (World, TempDir, Bound) {
    let (world, dir) = connected_world_on(fx).await;
    let folder = world.create_folder("/Marketing/Spring", "Spring").await.expect("folder");
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let answer = world.bind("dana", &folder_id, fx.account, fx.project, "Publish to DAM").await.unwrap();
    assert_eq!(answer.status, 201, "{}", answer.body);
    let bound = Bound {
        folder_id,
        binding_id: answer.body["id"].as_str().unwrap().to_string(),
        action_id: answer.body["action_id"].as_str().unwrap().to_string(),
    };
    (world, dir, bound)
}

/// The signing secret of a binding, read from the host's storage as only a test may.
pub fn binding_secret(world: &World, binding_id: &str) -> String {
    let entry = world.host.services.storage.get(&format!("binding/{binding_id}")).unwrap().expect("binding stored");
    let record: Value = serde_json::from_slice(&entry.value).unwrap();
    record["secrets"][0].as_str().unwrap().to_string()
}

/// The jobs of `kind` the host has queued (pushes, say: the host also queues the
/// connector's reconcile and the syncs that follow a push).
pub fn jobs_of_kind(world: &World, kind: &str) -> Vec<host_shim::queue::JobRow> {
    let (jobs, _) = world.host.queue.list(&host_shim::db::Page::first(500)).expect("the job list");
    jobs.into_iter().filter(|j| j.kind == kind).collect()
}
