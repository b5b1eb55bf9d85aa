//! The periodic reconcile: a sync of every linked file, so that deliveries missed
//! while the host was down longer than Frame.io retries (about five minutes) are
//! caught up. The host queues it at start and then every [`ReconcileJob::EVERY_SECS`].

use serde::{Deserialize, Serialize};

use super::SyncJob;
use super::links;
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};

/// The job: fan out one sync per linked file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileJob {
    /// Set once the syncs are queued.
    #[serde(default)]
    pub queued: Option<usize>,
}

impl ReconcileJob {
    /// How often the host runs it: every 15 minutes.
    pub const EVERY_SECS: u32 = 900;

    /// The job as the host queues it (its key is the stem of each run's key).
    pub fn request() -> JobRequest {
        let payload = serde_json::to_vec(&ReconcileJob::default()).expect("reconcile jobs serialise to JSON");
        JobRequest { key: "reconcile".into(), kind: Self::KIND.into(), payload }
    }
}

impl Flow for ReconcileJob {
    const KIND: &'static str = "reconcile";

    fn step(&self, ctx: &Context) -> Result<Step> {
        if let Some(count) = self.queued {
            return Ok(Step::done(format!("queued the sync of {count} linked files")));
        }
        // A webhook Frame.io paused or lost is mended first, so that what follows
        // is delivered again.
        let mended = super::subscriptions::heal(ctx)?;
        let run = ctx.host.now();
        let enqueue: Vec<JobRequest> =
            links::files(ctx.host)?.iter().map(|file_id| SyncJob::request(file_id, &format!("reconcile-{run}"))).collect();
        let count = enqueue.len();
        let payload = serde_json::to_vec(&ReconcileJob { queued: Some(count) }).expect("reconcile jobs serialise to JSON");
        let status = format!("queueing {count} syncs; {mended} webhooks mended");
        Ok(Step::Next { delay_ms: 0, payload, status, wake_on_transfer: None, enqueue })
    }

    fn failed(&self, _ctx: &Context, _why: &str) {}
}
