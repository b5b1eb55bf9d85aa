//! The project archive flow: a whole Frame.io project copied into a DAM folder.
//!
//! - [`start`] checks a request and records the archive (or finds the open one);
//!   the host queues the [`ArchiveJob`] it returns.
//! - [`walk`]: the parent job waits for its turn on the user's connection, walks
//!   the project, mirrors folders and fans out one [`ArchiveAssetJob`] per file or
//!   version stack.
//! - [`asset`]: a child job copies one file or stack, with comments and status.
//! - [`report`]: counts, the folder's report and the email.
//! - [`record`]: what is kept in `storage` meanwhile.
//! - [`rule`]: the administrator's marker rule, from a `project.updated` webhook.

mod asset;
mod record;
mod report;
mod rule;
mod walk;
#[cfg(test)]
mod tests;

pub use asset::ArchiveAssetJob;
pub use record::{ArchiveRecord, ArchiveState, Totals};
pub use rule::RuleJob;
pub use walk::ArchiveJob;

use super::{Context, JobRequest};
use crate::error::{Error, Result};
use crate::frameio::is_frameio_id;
use crate::host::HostError;

/// What to archive, and where (WIT `archive-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveRequest {
    pub user: String,
    pub account_id: String,
    pub project_id: String,
    pub folder_id: String,
}

/// An archive and its progress (WIT `archive-progress`).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub record: ArchiveRecord,
    pub ahead: u32,
    pub totals: Totals,
}

/// Checks the request and records the archive, or finds the open archive of the
/// same project into the same folder; returns the job to queue.
pub fn start(ctx: &Context, request: &ArchiveRequest) -> Result<(JobRequest, Progress)> {
    for (what, id) in [("account", &request.account_id), ("project", &request.project_id)] {
        if !is_frameio_id(id) {
            return Err(Error::InvalidInput(format!("{id:?} is not a Frame.io {what} id")));
        }
    }
    match ctx.host.get_folder(&request.folder_id) {
        Ok(_) => {}
        Err(HostError::NotFound(_) | HostError::Refused(_)) => {
            return Err(Error::NotFound(format!("DAM folder {:?}", request.folder_id)));
        }
        Err(e) => return Err(e.into()),
    }
    let api = ctx.api(&request.user)?;
    let project = match api.project(&request.account_id, &request.project_id) {
        Err(Error::Frameio(e)) if e.status == 404 || e.status == 403 => {
            return Err(Error::NotFound(format!("Frame.io project {} ({})", request.project_id, e.message)));
        }
        other => other?,
    };
    let record = match record::open_for(ctx.host, &project.id, &request.folder_id)? {
        Some(open) => open,
        None => {
            let record = ArchiveRecord {
                key: record::next_key(ctx.host, &project.id, &request.folder_id)?,
                user: request.user.clone(),
                generation: ctx.settings.api,
                account_id: request.account_id.clone(),
                workspace_id: project.workspace_id.clone(),
                project_id: project.id.clone(),
                project_name: project.name.clone(),
                folder_id: request.folder_id.clone(),
                state: ArchiveState::Queued,
                queued_at_ms: now_ms(ctx),
                started_at: None,
                finished_at: None,
                message: "queued".into(),
                folders: 0,
                found: 0,
            };
            record::save(ctx.host, &record)?;
            record
        }
    };
    let job = ArchiveJob::request(&record.key);
    Ok((job, progress(ctx, record, None)?))
}

/// Every archive, newest first, at most `limit`.
pub fn list(ctx: &Context, limit: usize) -> Result<Vec<Progress>> {
    let all = record::all(ctx.host)?;
    all.iter().take(limit).map(|r| progress(ctx, r.clone(), Some(&all))).collect()
}

fn progress(ctx: &Context, record: ArchiveRecord, all: Option<&[ArchiveRecord]>) -> Result<Progress> {
    let ahead = match (record.state, all) {
        (ArchiveState::Queued, Some(all)) => record::ahead(all, &record),
        (ArchiveState::Queued, None) => record::ahead(&record::all(ctx.host)?, &record),
        _ => 0,
    };
    let totals = record::totals(ctx.host, &record.key)?;
    Ok(Progress { record, ahead, totals })
}

/// Milliseconds since the epoch, from the host's clock and a random tail that
/// keeps two starts within one second apart in a stable order.
fn now_ms(ctx: &Context) -> u64 {
    let random = ctx.host.random_bytes(2);
    ctx.host.now() * 1000 + u64::from(u16::from_le_bytes([random[0], random[1]]) % 1000)
}
