//! One module per WIT import interface, each with its own config, validation and tests.

pub mod http;
pub mod notifications;
pub mod repository;
pub mod storage;
pub mod transfer;
