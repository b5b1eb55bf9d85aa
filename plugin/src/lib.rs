//! The Frame.io connector for DAM systems.
//!
//! Pure logic, written against the [`host::Host`] trait: it builds and is tested
//! natively, and `guest` adapts it to the WIT world `connector` when built for
//! `wasm32-wasip2`. All I/O goes through the host's imports.
//!
//! Layers, each using only those listed after it:
//! - `guest`: the WIT glue;
//! - [`forms`]: the dialogs a DAM shows (settings, bind, send for review);
//! - [`inbound`]: everything Frame.io sends, verified and routed;
//! - [`jobs`]: the dispatch table and the one retry policy;
//! - [`flows`]: bindings, browsing, the push flow, each written once for both API
//!   generations;
//! - [`auth`]: sign-in (Frame.io OAuth for v2, Adobe IMS for V4) and the token lease;
//! - [`frameio`]: the generation-neutral model and traits, with `v2` and `v4` beside them;
//! - [`settings`], [`store`], [`signature`], [`strict_json`], [`error`], [`host`].

pub mod auth;
pub mod error;
pub mod flows;
pub mod forms;
pub mod frameio;
pub mod host;
pub mod inbound;
pub mod jobs;
pub mod settings;
pub mod signature;
pub mod store;
pub mod strict_json;

#[cfg(target_arch = "wasm32")]
mod guest;

#[cfg(any(test, feature = "fake-host"))]
pub mod fake_host;
