//! Keeping the database bounded: a sweep at start and then periodically deletes the
//! connector's expired storage keys and deleted keys' tombstones, and the jobs and
//! transfers that ended longer ago than the retention period.
//!
//! A pruned job's key could in principle be queued again; it never is, because the
//! request that would queue it (a Frame.io delivery) is refused once its signed
//! timestamp is more than 300 s old, long before any retention period ends.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::db::{Database, unix_secs};
use crate::imports::storage;
use crate::imports::transfer::TransferEngine;
use crate::queue::JobQueue;

/// How long finished work is kept (`[retention]` in the host's config).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Finished (done or failed) jobs and transfers older than this are deleted.
    pub finished_days: u32,
    /// How often the sweep runs (it also runs at start). Expired storage keys and
    /// deleted keys' tombstones go at every sweep.
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { finished_days: 30, sweep_interval_secs: 3600 }
    }
}

/// What one sweep deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub storage_rows: usize,
    pub jobs: usize,
    pub transfers: usize,
}

/// What the sweep works on.
#[derive(Clone)]
pub struct Retention {
    pub db: Database,
    pub queue: JobQueue,
    pub transfers: TransferEngine,
    pub config: RetentionConfig,
}

impl Retention {
    /// One sweep as of `now_secs`.
    pub fn sweep(&self, now_secs: i64) -> rusqlite::Result<Swept> {
        let kept_secs = i64::from(self.config.finished_days) * 86_400;
        Ok(Swept {
            storage_rows: storage::purge(&self.db, now_secs)?,
            jobs: self.queue.prune_finished((now_secs - kept_secs).saturating_mul(1000))?,
            transfers: self.transfers.prune_finished(now_secs - kept_secs)?,
        })
    }

    /// Sweeps now and then every `sweep_interval_secs`, until aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(self.config.sweep_interval_secs));
            loop {
                every.tick().await;
                match self.sweep(unix_secs()) {
                    Ok(swept) if swept != Swept::default() => tracing::info!(?swept, "retention sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "the retention sweep failed; it runs again at the next interval"),
                }
            }
        })
    }
}
