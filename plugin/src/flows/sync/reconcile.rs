//! The periodic reconcile. Every [`ReconcileJob::EVERY_SECS`] it mends the webhooks
//! (one Frame.io call per followed workspace). A sweep, a sync of every linked
//! file, costs each file a listing of its comments and a read of its status, so it
//! is queued only when deliveries may have been missed: on the first run after the
//! host started (it may have been down longer than Frame.io retries, about five
//! minutes), when a webhook had to be mended, and every [`SWEEP_EVERY_SECS`] for
//! what Frame.io never announces (v2 fires no event for a label set through its
//! API). Sweeping every run would, with thousands of linked files, spend Frame.io's
//! rate limits on answers that change nothing, and slow every other flow of the
//! same users.

use serde::{Deserialize, Serialize};

use super::SyncJob;
use super::links;
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::store;

/// The last sweep: `CaughtUp`.
const CAUGHT_UP: &str = "sync-caught-up";
/// The longest time between two sweeps while the host runs.
pub const SWEEP_EVERY_SECS: u64 = 6 * 3600;
/// The most jobs one step may queue (the `next-step` contract's cap).
const ENQUEUE_AT_MOST: usize = 1000;

/// The job: mend the webhooks, and when deliveries may have been missed, fan out
/// one sync per linked file, a thousand a step.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileJob {
    /// When the host that queues this run asked for its schedule, that is when it
    /// started. A reconcile queued without it (by hand, or by a test) syncs
    /// every linked file.
    #[serde(default)]
    pub host_started: Option<u64>,
    /// The fan-out under way: when it began (part of each sync's key) and the
    /// last file queued.
    #[serde(default)]
    pub fanning: Option<FanOut>,
    /// Set once the syncs are queued.
    #[serde(default)]
    pub queued: Option<usize>,
}

/// The last sweep: the host start it caught up, and when it was queued.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CaughtUp {
    host_started: u64,
    at: u64,
}

/// How far a fan-out has come.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FanOut {
    pub run: u64,
    pub after: Option<String>,
    pub queued: usize,
}

impl ReconcileJob {
    /// How often the host runs it: every 15 minutes.
    pub const EVERY_SECS: u32 = 900;

    /// The job as a host started at `host_started` queues it (its key is the stem of
    /// each run's key).
    pub fn scheduled(host_started: u64) -> JobRequest {
        ReconcileJob { host_started: Some(host_started), ..ReconcileJob::default() }.request_of()
    }

    /// A reconcile that syncs every linked file, whatever came before.
    pub fn request() -> JobRequest {
        ReconcileJob::default().request_of()
    }

    fn request_of(&self) -> JobRequest {
        JobRequest { key: "reconcile".into(), kind: Self::KIND.into(), payload: self.encode() }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("reconcile jobs serialise to JSON")
    }

    /// Mends the webhooks, and starts the fan-out when deliveries may have been missed.
    fn begin(&self, ctx: &Context) -> Result<Step> {
        // A webhook Frame.io paused or lost is mended first, so that what follows
        // is delivered again.
        let mended = super::subscriptions::heal(ctx)?;
        let now = ctx.host.now();
        let last = store::load::<CaughtUp>(ctx.host, CAUGHT_UP)?.map(|s| s.value);
        let recent = last.is_some_and(|last| Some(last.host_started) == self.host_started && now < last.at + SWEEP_EVERY_SECS);
        if recent && mended == 0 {
            return Ok(Step::done("webhooks checked; no delivery missed since the last sweep".to_string()));
        }
        let fanning = FanOut { run: now, after: None, queued: 0 };
        let next = ReconcileJob { fanning: Some(fanning), ..self.clone() };
        Ok(Step::Next { delay_ms: 0, payload: next.encode(), status: format!("{mended} webhooks mended; queueing syncs"), wake_on_transfer: None, enqueue: Vec::new() })
    }

    /// Queues the next thousand syncs after `fan.after`.
    fn fan_out(&self, ctx: &Context, fan: &FanOut) -> Result<Step> {
        let files = links::files(ctx.host)?;
        let rest: Vec<&String> = files.iter().filter(|id| fan.after.as_ref().is_none_or(|after| *id > after)).take(ENQUEUE_AT_MOST).collect();
        let enqueue: Vec<JobRequest> = rest.iter().map(|file_id| SyncJob::request(file_id, &format!("reconcile-{}", fan.run))).collect();
        let queued = fan.queued + enqueue.len();
        let next = if rest.len() < ENQUEUE_AT_MOST {
            if let Some(host_started) = self.host_started {
                store::save(ctx.host, CAUGHT_UP, &CaughtUp { host_started, at: fan.run })?;
            }
            ReconcileJob { fanning: None, queued: Some(queued), ..self.clone() }
        } else {
            let after = rest.last().map(|id| id.to_string());
            ReconcileJob { fanning: Some(FanOut { after, queued, ..fan.clone() }), ..self.clone() }
        };
        Ok(Step::Next { delay_ms: 0, payload: next.encode(), status: format!("queued the sync of {queued} linked files"), wake_on_transfer: None, enqueue })
    }
}

impl Flow for ReconcileJob {
    const KIND: &'static str = "reconcile";

    fn step(&self, ctx: &Context) -> Result<Step> {
        match (&self.queued, &self.fanning) {
            (Some(count), _) => Ok(Step::done(format!("queued the sync of {count} linked files"))),
            (None, Some(fan)) => self.fan_out(ctx, fan),
            (None, None) => self.begin(ctx),
        }
    }

    fn failed(&self, _ctx: &Context, _why: &str) {}
}
