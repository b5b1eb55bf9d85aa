//! Pushes of files still uploading to Frame.io: accepted, parked, and imported once
//! Frame.io has the whole file. The upload-completion webhook (`asset.ready` on v2,
//! `file.ready` and `file.upload.completed` on V4) resumes them at once; a periodic
//! check resumes any whose completion was never delivered.

use serde::{Deserialize, Serialize};

use super::{PushJob, Stage};
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::host::Host;
use crate::store;

/// `awaiting-upload/<file id>/<interaction id>`: a parked push.
const AWAITING: &str = "awaiting-upload/";
/// How long a push waits for its upload before it is dropped (a week).
const MAX_WAIT_SECS: u64 = 7 * 86_400;

fn key(file_id: &str, interaction_id: &str) -> String {
    format!("{AWAITING}{file_id}/{interaction_id}")
}

/// Parks a push until its file's upload completes.
pub fn park(host: &dyn Host, job: &PushJob) -> Result<()> {
    let parked = PushJob { stage: Stage::Start, ..job.clone() };
    store::save_expiring(host, &key(&job.asset_id, &job.interaction_id), &parked, host.now() + MAX_WAIT_SECS)?;
    Ok(())
}

/// The pushes parked under `prefix`, as jobs to queue under `reason`, unparked.
fn resume(host: &dyn Host, prefix: &str, reason: &str) -> Result<Vec<JobRequest>> {
    let mut jobs = Vec::new();
    for parked_key in host.storage_list(prefix)? {
        let Some(parked) = store::load::<PushJob>(host, &parked_key)? else { continue };
        let job = parked.value;
        jobs.push(JobRequest { key: format!("{}:{reason}", job.key()), kind: PushJob::KIND.into(), payload: job.encode() });
        host.storage_delete(&parked_key)?;
    }
    Ok(jobs)
}

/// The pushes waiting for `file_id`, resumed because its upload completed.
pub fn resume_for_file(host: &dyn Host, file_id: &str, received_at: u64) -> Result<Vec<JobRequest>> {
    resume(host, &format!("{AWAITING}{file_id}/"), &format!("ready-{received_at}"))
}

/// The periodic check: every parked push is tried again; one whose file is still
/// uploading parks itself again.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResumeJob {}

impl ResumeJob {
    /// How often the host runs it: every 15 minutes.
    pub const EVERY_SECS: u32 = 900;

    /// The job as the host queues it.
    pub fn request() -> JobRequest {
        JobRequest { key: "resume-uploads".into(), kind: Self::KIND.into(), payload: b"{}".to_vec() }
    }
}

impl Flow for ResumeJob {
    const KIND: &'static str = "resume-uploads";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let enqueue = resume(ctx.host, AWAITING, &format!("check-{}", ctx.host.now()))?;
        Ok(Step::Done { summary: format!("{} pushes waiting for their upload tried again", enqueue.len()), enqueue })
    }

    fn failed(&self, _ctx: &Context, _why: &str) {}
}
