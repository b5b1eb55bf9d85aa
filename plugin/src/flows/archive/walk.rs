//! The archive's parent job: wait for its turn, walk the project folder by folder,
//! mirror each folder, queue a child job per file or version stack, wait for them
//! all, then report.
//!
//! The walk's position (the folders still to list, each with its page cursor) and
//! its counts travel in the payload, which the host stores with each step's child
//! jobs in one go: a step replayed after a crash lists the same page again, and
//! its folders and jobs, keyed by Frame.io ids, are found rather than made twice.

use serde::{Deserialize, Serialize};

use super::asset::ArchiveAssetJob;
use super::record::{self, ArchiveRecord, ArchiveState, Tally};
use super::report;
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::frameio::model::ItemKind;

/// How long a queued archive waits between looks at the queue.
const QUEUE_POLL_MS: u32 = 2_000;
/// How long the walk waits between counts of finished assets.
const DRAIN_POLL_MS: u32 = 1_000;

/// The parent job of one archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchiveJob {
    pub key: String,
    pub stage: Stage,
}

/// Where the parent job is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Stage {
    /// Behind other archives of the same connection.
    Waiting,
    /// Listing folders; the last of `frontier` is listed next.
    Walking { frontier: Vec<Pending>, folders: u32, found: u32 },
    /// Every folder listed; waiting for the child jobs.
    Draining { folders: u32, found: u32 },
}

/// A Frame.io folder still to list, and the DAM folder that mirrors it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    pub frameio_id: String,
    pub dam_folder_id: String,
    pub cursor: Option<String>,
}

impl ArchiveJob {
    /// The job that runs the archive `key` (queued under that key, once).
    pub fn request(key: &str) -> JobRequest {
        let job = ArchiveJob { key: key.to_string(), stage: Stage::Waiting };
        JobRequest { key: key.to_string(), kind: Self::KIND.into(), payload: job.encode() }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("archive jobs serialise to JSON")
    }

    fn next(&self, stage: Stage, delay_ms: u32, status: String, enqueue: Vec<JobRequest>) -> Step {
        let payload = ArchiveJob { key: self.key.clone(), stage }.encode();
        Step::Next { delay_ms, payload, status, wake_on_transfer: None, enqueue }
    }
}

impl Flow for ArchiveJob {
    const KIND: &'static str = "archive";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let Some(record) = record::load(ctx.host, &self.key)? else {
            return Ok(Step::Failed(format!("archive {} is not recorded", self.key)));
        };
        match &self.stage {
            Stage::Waiting => wait_turn(ctx, self, record),
            Stage::Walking { frontier, folders, found } => walk(ctx, self, record, frontier.clone(), *folders, *found),
            Stage::Draining { folders, found } => drain(ctx, self, record, *folders, *found),
        }
    }

    /// The user hears of it, and the archive leaves the queue for the next one.
    fn failed(&self, ctx: &Context, why: &str) {
        if let Ok(Some(record)) = record::load(ctx.host, &self.key) {
            report::failed(ctx, record, why);
        }
    }
}

fn wait_turn(ctx: &Context, job: &ArchiveJob, mut record: ArchiveRecord) -> Result<Step> {
    let ahead = record::ahead(&record::all(ctx.host)?, &record);
    if ahead > 0 {
        let message = format!("queued behind {ahead} other archive{}", if ahead == 1 { "" } else { "s" });
        if record.message != message {
            record.message = message.clone();
            record::save(ctx.host, &record)?;
        }
        return Ok(job.next(Stage::Waiting, QUEUE_POLL_MS, message, Vec::new()));
    }
    let api = ctx.api(&record.user)?;
    let project = api.project(&record.account_id, &record.project_id)?;
    ctx.host.set_folder_properties(&record.folder_id, &project_properties(&record, &project.name))?;
    record.state = ArchiveState::Running;
    record.project_name = project.name;
    record.started_at = Some(ctx.host.now());
    record.message = "walking the project".into();
    record::save(ctx.host, &record)?;
    let root = Pending { frameio_id: project.root_folder_id, dam_folder_id: record.folder_id.clone(), cursor: None };
    Ok(job.next(Stage::Walking { frontier: vec![root], folders: 0, found: 0 }, 0, record.message, Vec::new()))
}

/// The project's own metadata, on the destination folder.
fn project_properties(record: &ArchiveRecord, name: &str) -> Vec<(String, String)> {
    vec![
        ("frameio.api".into(), record.generation.name().into()),
        ("frameio.account-id".into(), record.account_id.clone()),
        ("frameio.team-id".into(), record.workspace_id.clone()),
        ("frameio.project-id".into(), record.project_id.clone()),
        ("frameio.project".into(), name.into()),
    ]
}

/// Lists one page of the folder on top of the frontier: its folders are mirrored
/// and pushed onto the frontier, its files and stacks get a child job each.
fn walk(ctx: &Context, job: &ArchiveJob, mut record: ArchiveRecord, mut frontier: Vec<Pending>, mut folders: u32, mut found: u32) -> Result<Step> {
    let Some(top) = frontier.last_mut() else {
        return Ok(job.next(Stage::Draining { folders, found }, 0, "waiting for the assets".into(), Vec::new()));
    };
    let api = ctx.api(&record.user)?;
    let page = api.contents(&record.account_id, &top.frameio_id, &ItemKind::Folder, top.cursor.as_deref())?;
    let parent = top.dam_folder_id.clone();
    top.cursor = page.next.clone();
    if page.next.is_none() {
        frontier.pop();
    }
    let mut enqueue = Vec::new();
    for entry in page.items {
        match &entry.kind {
            ItemKind::Folder => {
                let folder = ctx.host.ensure_folder(&parent, &format!("frameio:{}", entry.id), &entry.name)?;
                frontier.push(Pending { frameio_id: entry.id, dam_folder_id: folder.id, cursor: None });
                folders += 1;
            }
            ItemKind::File | ItemKind::VersionStack => {
                enqueue.push(ArchiveAssetJob::request(&job.key, entry, &parent));
                found += 1;
            }
            ItemKind::Other(kind) => {
                let skipped = Tally { skipped: vec![format!("{}: a {kind}, which has no media to archive", entry.name)], ..Tally::default() };
                record::record_item(ctx.host, &job.key, &entry.id, &skipped)?;
                found += 1;
            }
        }
    }
    record.folders = folders;
    record.found = found;
    record.message = format!("walking the project: {folders} folders, {found} assets found");
    record::save(ctx.host, &record)?;
    let stage = if frontier.is_empty() { Stage::Draining { folders, found } } else { Stage::Walking { frontier, folders, found } };
    Ok(job.next(stage, 0, record.message, enqueue))
}

/// Waits until every asset found has its item record, then reports.
fn drain(ctx: &Context, job: &ArchiveJob, mut record: ArchiveRecord, folders: u32, found: u32) -> Result<Step> {
    let finished = record::items_recorded(ctx.host, &job.key)?;
    if finished < found {
        let message = format!("copying: {finished} of {found} assets done");
        if record.message != message {
            record.message = message.clone();
            record::save(ctx.host, &record)?;
        }
        return Ok(job.next(Stage::Draining { folders, found }, DRAIN_POLL_MS, message, Vec::new()));
    }
    record.folders = folders;
    record.found = found;
    report::finished(ctx, record)
}
