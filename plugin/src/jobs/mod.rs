//! Running one step of a queued job (WIT `jobs`): the dispatch table from job kind
//! to flow, and the retry policy applied to every flow alike.

pub mod retry;

use crate::flows::archive::{ArchiveAssetJob, ArchiveJob, RuleJob};
use crate::flows::push::PushJob;
use crate::flows::push::awaiting::ResumeJob;
use crate::flows::review::ReviewJob;
use crate::flows::sync::{PostJob, ReconcileJob, SyncJob};
use crate::error::Error;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::host::Host;

/// A job as the host stores it (WIT `jobs.job`).
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub key: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub attempt: u32,
}

/// What happened in a step (WIT `jobs.outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished; a summary, and follow-up jobs to queue.
    Done { summary: String, enqueue: Vec<JobRequest> },
    /// Run another step with this payload after the delay, or as soon as the
    /// transfer `wake_on_transfer` ends; queue `enqueue` first.
    Next { delay_ms: u32, payload: Vec<u8>, status: String, wake_on_transfer: Option<String>, enqueue: Vec<JobRequest> },
    /// Run this step again after the delay; the reason.
    Retry(u32, String),
    /// Finished without success; the reason.
    Failed(String),
}

/// Runs one step of `job`.
pub fn run(ctx: &Context, job: &Job) -> Outcome {
    match job.kind.as_str() {
        PushJob::KIND => run_flow::<PushJob>(ctx, job),
        SyncJob::KIND => run_flow::<SyncJob>(ctx, job),
        PostJob::KIND => run_flow::<PostJob>(ctx, job),
        ReconcileJob::KIND => run_flow::<ReconcileJob>(ctx, job),
        ResumeJob::KIND => run_flow::<ResumeJob>(ctx, job),
        ReviewJob::KIND => run_flow::<ReviewJob>(ctx, job),
        ArchiveJob::KIND => run_flow::<ArchiveJob>(ctx, job),
        ArchiveAssetJob::KIND => run_flow::<ArchiveAssetJob>(ctx, job),
        RuleJob::KIND => run_flow::<RuleJob>(ctx, job),
        other => Outcome::Failed(format!("unknown job kind {other:?}")),
    }
}

/// Decodes the payload, runs the step, and applies the retry policy to what it
/// came to; a job that fails for good is told to the flow once.
fn run_flow<F: Flow>(ctx: &Context, job: &Job) -> Outcome {
    let flow: F = match serde_json::from_slice(&job.payload) {
        Ok(flow) => flow,
        Err(e) => return Outcome::Failed(format!("unreadable {} job payload: {e}", F::KIND)),
    };
    let why = match flow.step(ctx) {
        Ok(Step::Done { summary, enqueue }) => return Outcome::Done { summary, enqueue },
        Ok(Step::Next { delay_ms, payload, status, wake_on_transfer, enqueue }) => {
            return Outcome::Next { delay_ms, payload, status, wake_on_transfer, enqueue };
        }
        Ok(Step::Failed(why)) => why,
        // Waiting for a rate limit is no failure: the same step runs again after it.
        Err(e @ Error::Paced { .. }) => {
            let delay_ms = e.retry_after_ms().unwrap_or(0);
            return Outcome::Next { delay_ms, payload: job.payload.clone(), status: e.to_string(), wake_on_transfer: None, enqueue: Vec::new() };
        }
        Err(e) if e.is_transient() && !retry::exhausted(job.attempt) => {
            return Outcome::Retry(retry::delay_ms(ctx.host, job.attempt, e.retry_after_ms()), e.to_string());
        }
        Err(e) if e.is_transient() => format!("{e} (gave up after {} attempts)", retry::MAX_ATTEMPTS),
        Err(e) => e.to_string(),
    };
    flow.failed(ctx, &why);
    Outcome::Failed(why)
}

/// A job the connector wants queued on a schedule, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub job: JobRequest,
    pub every_secs: u32,
}

/// The jobs to queue on a schedule (WIT `jobs.schedule`). The host asks once, as it
/// starts, so the reconcile learns when that was.
pub fn schedule(host: &dyn Host) -> Vec<Scheduled> {
    vec![
        Scheduled { job: ReconcileJob::scheduled(host.now()), every_secs: ReconcileJob::EVERY_SECS },
        Scheduled { job: ResumeJob::request(), every_secs: ResumeJob::EVERY_SECS },
    ]
}
