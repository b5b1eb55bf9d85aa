//! The Frame.io connector for DAM systems.
//!
//! Pure logic, written against the [`host::Host`] trait: it builds and is tested
//! natively, and `wasm` adapts it to the WIT world `connector` when built for
//! `wasm32-wasip2`. All I/O goes through the host's imports.

pub mod bindings;
pub mod browse;
pub mod custom_action;
pub mod error;
pub mod frameio;
pub mod host;
pub mod inbound;
pub mod jobs;
pub mod oauth;
pub mod push;
pub mod settings;
pub mod signature;
pub mod store;
pub mod strict_json;

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(any(test, feature = "fake-host"))]
pub mod fake_host;
#[cfg(test)]
mod flow_tests;
