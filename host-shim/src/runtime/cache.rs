//! Compiling the component once: the compiled artifact is cached on disk, keyed by
//! the component's bytes and the engine's compatibility hash, so a restart loads it
//! in well under a millisecond instead of compiling for seconds.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Loads `wasm` for `engine`, from the cache in `cache_dir` when it holds it.
pub fn load_component(engine: &Engine, wasm: &Path, cache_dir: &Path) -> anyhow::Result<Component> {
    let bytes = std::fs::read(wasm).with_context(|| {
        format!("reading the connector component {} (build it with `cargo xtask build`)", wasm.display())
    })?;
    let cached = cache_path(engine, &bytes, cache_dir);
    if cached.exists() {
        // SAFETY: the file is our own `Component::serialize` output for an engine
        // with this compatibility hash (it is part of the file name), written
        // atomically below; nothing else writes into the cache directory.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let component = Component::from_binary(engine, &bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the connector component")?;
    store_in_cache(&component, &cached)?;
    Ok(component)
}

fn cache_path(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> PathBuf {
    let mut engine_hash = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let digest = Sha256::digest(wasm);
    cache_dir.join(format!("{}-{:016x}.cwasm", hex::encode(&digest[..16]), engine_hash.finish()))
}

fn store_in_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // A unique temporary name: several hosts (parallel tests) may compile at once.
    let tmp = path.with_extension(format!("{:016x}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, component.serialize()?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
