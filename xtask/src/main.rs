//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `build`: build the connector component (`wasm32-wasip2`, installing the
//!   target with rustup if it is missing) and report its size; also build the
//!   misbehaving test component the sandbox tests load (`tests/misbehaving`).
//! - `demo`: build, then run the whole flow against the simulator, printing each step.
//! - `test`: build, then run every test in the workspace (installing Debian's
//!   Chromium and ChromeDriver first when missing, for the console's browser tests).
//! - `screenshots`: run the console's browser tests on Frame.io V4, saving a picture
//!   of each screen into `docs/console/` (the README shows them).
//! - `bench`: build, then run `host-shim bench` in a release build (extra
//!   arguments are passed on, for example `--sizes 1024`, or `--only-archive
//!   --archive-files 2000` for the project archive at the rate-limit floor).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Where the component lands.
const COMPONENT: &str = "target/wasm32-wasip2/wasm/frameio_connector.wasm";
/// The size the component must stay under.
const MAX_COMPONENT_BYTES: u64 = 2 << 20;
/// Where `cargo xtask screenshots` puts the console's pictures.
const SCREENSHOTS: &str = "docs/console";
/// The browser and its WebDriver, from Debian's `chromium` and `chromium-driver`.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

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
            ensure_browser()?;
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
        Some("screenshots") => {
            build_component()?;
            ensure_browser()?;
            let dir = root.join(SCREENSHOTS);
            // Each browser suite pictures its own screens.
            for (suite, test) in [("console", "whole_flow::v4"), ("console_archive", "archive_from_the_console::v4")] {
                let status = Command::new(env!("CARGO"))
                    .args(["test", "-p", "connector-e2e", "--test", suite, "--", "--exact", test])
                    .env("CONSOLE_SCREENSHOTS", &dir)
                    .status()
                    .context("running cargo")?;
                if !status.success() {
                    bail!("the console's browser test {suite} failed; the screenshots in {} may be incomplete", dir.display());
                }
            }
            eprintln!("screenshots: {}", dir.display());
            Ok(())
        }
        _ => bail!("usage: cargo xtask <build|demo|test|screenshots|bench>"),
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

/// Installs Debian's Chromium and ChromeDriver for the console's browser tests when
/// they are missing (and `CHROME`/`CHROMEDRIVER` name no others). Never a browser
/// download of its own: the distribution's packages, with apt-get.
fn ensure_browser() -> anyhow::Result<()> {
    let named = |env: &str, default: &str| std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if named("CHROME", CHROMIUM).exists() && named("CHROMEDRIVER", CHROMEDRIVER).exists() {
        return Ok(());
    }
    eprintln!("installing chromium and chromium-driver with apt-get, for the console's browser tests");
    // As root (CI, containers) apt-get runs as is; otherwise through sudo.
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            command.arg("apt-get");
        }
        let status = command.args(args).env("DEBIAN_FRONTEND", "noninteractive").status().context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed: install the chromium and chromium-driver packages by hand", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "chromium", "chromium-driver"])
}
