//! Running one step of a queued job (WIT `jobs`).

use crate::host::Host;
use crate::push::{self, PushJob};

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
    /// Finished; a summary.
    Done(String),
    /// Run another step with this payload after the delay, or as soon as the
    /// transfer `wake_on_transfer` ends.
    Next { delay_ms: u32, payload: Vec<u8>, status: String, wake_on_transfer: Option<String> },
    /// Run this step again after the delay; the reason.
    Retry(u32, String),
    /// Finished without success; the reason.
    Failed(String),
}

/// Runs one step of `job`.
pub fn run(host: &dyn Host, job: &Job) -> Outcome {
    match job.kind.as_str() {
        push::KIND => match serde_json::from_slice::<PushJob>(&job.payload) {
            Ok(push_job) => push::run(host, push_job, job.attempt),
            Err(e) => Outcome::Failed(format!("unreadable push job payload: {e}")),
        },
        other => Outcome::Failed(format!("unknown job kind {other:?}")),
    }
}
