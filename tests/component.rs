//! The shipped component itself: its size, and that it asks the host only for our
//! WIT interfaces and the WASI basics a `wasm32-wasip2` std build always imports.

use connector_e2e::component;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// WASI interfaces Rust's standard library imports on `wasm32-wasip2`.
const WASI_BASICS: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

#[test]
fn the_component_is_small() {
    let size = std::fs::metadata(component()).unwrap().len();
    assert!(size < 2 << 20, "{size} bytes");
}

#[test]
fn the_component_imports_only_our_interfaces_and_wasi_basics() {
    let engine = Engine::new(&Config::new()).unwrap();
    let component = Component::from_file(&engine, component()).unwrap();
    let mut ours = Vec::new();
    for (name, _) in component.component_type().imports(&engine) {
        let unversioned = name.split('@').next().unwrap();
        if unversioned.starts_with("frameio-dam:connector/") {
            ours.push(unversioned.to_string());
        } else {
            assert!(WASI_BASICS.contains(&unversioned), "unexpected import {name}");
        }
    }
    ours.sort();
    let expected = ["http", "notifications", "repository", "storage", "transfer", "types"]
        .map(|i| format!("frameio-dam:connector/{i}"));
    assert_eq!(ours, expected);
}
