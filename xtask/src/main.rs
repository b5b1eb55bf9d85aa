//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `build`: build the connector component (`wasm32-wasip2`, installing the
//!   target with rustup if it is missing) and report its size; also build the
//!   misbehaving test component the sandbox tests load (`tests/misbehaving`).
//! - `demo`: build, then run the whole flow against the simulator, printing each step.
//! - `test`: build, then run every test in the workspace.
//! - `bench`: build, then run `host-shim bench` in a release build (extra
//!   arguments are passed on, for example `--sizes 1024`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Where the component lands.
const COMPONENT: &str = "target/wasm32-wasip2/wasm/frameio_connector.wasm";
/// The size the component must stay under.
const MAX_COMPONENT_BYTES: u64 = 2 << 20;

fn main() -> anyhow::Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => build_component().map(|_| ()),
        Some("demo") => {
            let component = build_component()?;
            cargo(&["run", "--quiet", "-p", "host-shim", "--", "demo", "--component", &component.to_string_lossy()])
        }
        Some("test") => {
            build_component()?;
            let mut test_args = vec!["test", "--workspace"];
            test_args.extend(args[1..].iter().map(String::as_str));
            cargo(&test_args)
        }
        Some("bench") => {
            let component = build_component()?;
            let mut bench_args = vec!["run", "--quiet", "--release", "-p", "host-shim", "--", "bench", "--component"];
            let component = component.to_string_lossy().into_owned();
            bench_args.push(&component);
            bench_args.extend(args[1..].iter().map(String::as_str));
            cargo(&bench_args)
        }
        _ => bail!("usage: cargo xtask <build|demo|test|bench>"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO")).args(args).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Builds the component (and the sandbox tests' misbehaving one) and checks its size.
fn build_component() -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "frameio-connector",
        "-p",
        "misbehaving-component",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "wasm",
    ])?;
    let path = PathBuf::from(COMPONENT);
    let size = std::fs::metadata(&path).with_context(|| format!("{} was not built", path.display()))?.len();
    if size > MAX_COMPONENT_BYTES {
        bail!("the component is {size} bytes, over the {MAX_COMPONENT_BYTES}-byte budget");
    }
    eprintln!("component: {} ({} KiB)", path.display(), size / 1024);
    Ok(path)
}

/// Installs the `wasm32-wasip2` standard library when this toolchain lacks it.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let out = Command::new("rustc").args(["--print", "target-libdir", "--target", "wasm32-wasip2"]).output();
    let installed = out.ok().filter(|o| o.status.success()).is_some_and(|o| {
        let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
        Path::new(&dir).exists()
    });
    if installed {
        return Ok(());
    }
    eprintln!("installing the wasm32-wasip2 target with rustup");
    let status = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => bail!("the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed"),
    }
}
