//! The reference DAM host for the Frame.io connector component.
//!
//! It embeds the component in wasmtime and gives it real parts: SQLite for state and
//! for the repository, a content-addressed blob directory, an .eml outbox (or SMTP),
//! an allowlisted HTTP client and a parallel transfer engine. DAM developers embed
//! this crate in their tests (see [`harness`]); the `host-shim` binary runs it.

pub mod app;
pub mod bench;
pub mod blobs;
pub mod config;
pub mod console;
pub mod dam_outbox;
pub mod db;
pub mod demo;
pub mod harness;
pub mod imports;
pub mod progress;
pub mod queue;
pub mod retention;
pub mod schedule;
pub mod runtime;
pub mod sealing;
pub mod secret_file;
pub mod server;
pub mod worker;
