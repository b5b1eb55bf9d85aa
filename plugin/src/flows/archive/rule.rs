//! The marker rule: when the administrator has set an archive marker, a project
//! whose name gains it (a `project.updated` webhook) is archived into the archive
//! folder, with the connection of the user whose webhook told of the change.

use serde::{Deserialize, Serialize};

use super::{ArchiveRequest, record, start};
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::host::Host;
use crate::settings;

/// The job that reads the project's name and, if the rule applies, queues its archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleJob {
    pub user: String,
    pub account_id: String,
    pub project_id: String,
}

impl RuleJob {
    /// The job for a `project.updated` delivery, when a marker is set; none otherwise.
    pub fn request_if_enabled(host: &dyn Host, user: &str, account_id: &str, project_id: &str, received_at: u64) -> Result<Option<JobRequest>> {
        let enabled = settings::load(host).map(|s| !s.archive_marker.is_empty()).unwrap_or(false);
        if !enabled {
            return Ok(None);
        }
        let job = RuleJob { user: user.to_string(), account_id: account_id.to_string(), project_id: project_id.to_string() };
        let payload = serde_json::to_vec(&job).expect("rule jobs serialise to JSON");
        Ok(Some(JobRequest { key: format!("archive-rule:{project_id}:{received_at}"), kind: Self::KIND.into(), payload }))
    }
}

impl Flow for RuleJob {
    const KIND: &'static str = "archive-rule";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let marker = &ctx.settings.archive_marker;
        if marker.is_empty() {
            return Ok(Step::done("no archive marker is set"));
        }
        // The marker stays in the name after the archive: later changes to an
        // archived project start nothing more.
        if record::ever_started(ctx.host, &self.project_id, &ctx.settings.archive_folder)? {
            return Ok(Step::done("the project was archived into the archive folder already"));
        }
        let project = ctx.api(&self.user)?.project(&self.account_id, &self.project_id)?;
        if !project.name.contains(marker.as_str()) {
            return Ok(Step::done(format!("\"{}\" does not carry the marker {marker}", project.name)));
        }
        let request = ArchiveRequest {
            user: self.user.clone(),
            account_id: self.account_id.clone(),
            project_id: self.project_id.clone(),
            folder_id: ctx.settings.archive_folder.clone(),
        };
        let (job, _) = start(ctx, &request)?;
        Ok(Step::Done { summary: format!("\"{}\" carries the marker {marker}: archiving it", project.name), enqueue: vec![job] })
    }

    /// Nobody waits on the rule; the job list shows why it did not apply.
    fn failed(&self, _ctx: &Context, _why: &str) {}
}
