//! A child job of an archive: one file, or one version stack, copied into one DAM
//! document, with every version's media, metadata, comments and status.
//!
//! A stack's versions are copied one after the other, oldest first, so that the
//! document's version numbers follow the stack's order. Each version is a host
//! download keyed by the archive and the file, then `add-version` keyed by the file,
//! then the sync's own convergence of its comments and status: every step is found,
//! not repeated, when the host replays it.

use serde::{Deserialize, Serialize};

use super::record::{self, ArchiveRecord, Tally};
use crate::error::Result;
use crate::flows::push::{Origin, check_importable, properties};
use crate::flows::sync::incoming::{Convergence, converge};
use crate::flows::sync::links::{self, Link};
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::frameio::collect_all;
use crate::frameio::model::{File, ItemKind, Original};
use crate::host::{DownloadRequest, TransferError, TransferStatus};

/// Fresh starts (a new URL, a new transfer) one version may make before it is left out.
const MAX_URL_RENEWALS: u32 = 5;
/// Longest wait between looks at a running download (a host that watches
/// transfers wakes the job sooner).
const POLL_MS: u32 = 1_000;
/// How long to wait for a DAM comment on its way to Frame.io before converging.
const POSTS_WAIT_MS: u32 = 1_000;

/// The job's payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchiveAssetJob {
    /// The archive's key.
    pub archive: String,
    /// The file or version stack, as the walk listed it.
    pub asset: File,
    /// The DAM folder its document goes in.
    pub folder_id: String,
    /// The files to copy, oldest first: the asset itself, or the stack's versions
    /// once listed.
    pub versions: Option<Vec<File>>,
    /// The version being copied.
    pub index: usize,
    /// Its download, once started.
    pub download: Option<Download>,
    /// What the versions copied so far came to.
    pub tally: Tally,
}

/// A version's download under way.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Download {
    pub transfer_key: String,
    pub renewals: u32,
}

impl ArchiveAssetJob {
    /// The child job for `asset`, found by the walk in the DAM folder `folder_id`.
    pub fn request(archive: &str, asset: File, folder_id: &str) -> JobRequest {
        let key = format!("{archive}/{}", asset.id);
        let job =
            ArchiveAssetJob { archive: archive.to_string(), asset, folder_id: folder_id.to_string(), versions: None, index: 0, download: None, tally: Tally::default() };
        JobRequest { key, kind: Self::KIND.into(), payload: job.encode() }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("archive asset jobs serialise to JSON")
    }

    /// The same job further on, run again at once (or after `delay_ms`).
    fn then(self, delay_ms: u32, status: String, wake_on_transfer: Option<String>) -> Step {
        Step::Next { delay_ms, payload: self.encode(), status, wake_on_transfer, enqueue: Vec::new() }
    }

    /// The next version, with nothing started.
    fn advance(self) -> ArchiveAssetJob {
        ArchiveAssetJob { index: self.index + 1, download: None, ..self }
    }

    fn document_key(&self) -> String {
        format!("frameio:{}", self.asset.id)
    }
}

impl Flow for ArchiveAssetJob {
    const KIND: &'static str = "archive-asset";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let Some(archive) = record::load(ctx.host, &self.archive)? else {
            return Ok(Step::Failed(format!("archive {} is not recorded", self.archive)));
        };
        let Some(versions) = &self.versions else {
            let versions = list_versions(ctx, &archive, &self.asset)?;
            return Ok(ArchiveAssetJob { versions: Some(versions), ..self.clone() }.then(0, "listing versions".into(), None));
        };
        let Some(version) = versions.get(self.index) else {
            record::record_item(ctx.host, &self.archive, &self.asset.id, &self.tally)?;
            return Ok(Step::done(summary(&self.asset, &self.tally)));
        };
        let status = match &self.download {
            None => return start(ctx, self.clone(), version.clone(), 0),
            Some(download) => ctx.host.transfer_status(&download.transfer_key),
        };
        match status {
            Ok(Some(status)) => on_status(ctx, &archive, self.clone(), version.clone(), status),
            // The host lost the transfer: start it again.
            Ok(None) => start(ctx, self.clone(), version.clone(), self.download.as_ref().map_or(0, |d| d.renewals + 1)),
            Err(e) => Ok(skip(self.clone(), version, &e.to_string())),
        }
    }

    /// The asset is left out, with the reason, and the archive goes on.
    fn failed(&self, ctx: &Context, why: &str) {
        let mut tally = self.tally.clone();
        tally.skipped.push(format!("{}: {why}", self.asset.name));
        // Should this fail too, the archive waits for the item and the job list
        // shows why.
        let _ = record::record_item(ctx.host, &self.archive, &self.asset.id, &tally);
    }
}

/// The files a file or stack copies, oldest first.
fn list_versions(ctx: &Context, archive: &ArchiveRecord, asset: &File) -> Result<Vec<File>> {
    if asset.kind != ItemKind::VersionStack {
        return Ok(vec![asset.clone()]);
    }
    let api = ctx.api(&archive.user)?;
    let mut versions = collect_all(|cursor| api.contents(&archive.account_id, &asset.id, &ItemKind::VersionStack, cursor))?;
    versions.retain(|v| v.kind == ItemKind::File);
    versions.reverse();
    Ok(versions)
}

/// Starts the version's download (the `renewals`th fresh start of it).
fn start(ctx: &Context, job: ArchiveAssetJob, version: File, renewals: u32) -> Result<Step> {
    if let Err(why) = check_importable(&version) {
        return Ok(skip(job, &version, &why));
    }
    let Original::Ready { url } = &version.original else { return Ok(skip(job, &version, "Frame.io offers no original")) };
    let download = Download { transfer_key: format!("{}#{renewals}", transfer_stem(&job, &version)), renewals };
    let request = DownloadRequest {
        key: download.transfer_key.clone(),
        url: url.clone(),
        expected_size: version.size.unwrap_or(0),
        expected_xxhash64: version.xxhash64.clone(),
    };
    match ctx.host.start_download(request) {
        Ok(_) => {
            let key = download.transfer_key.clone();
            Ok(ArchiveAssetJob { download: Some(download), ..job }.then(POLL_MS, format!("downloading {}", version.name), Some(key)))
        }
        Err(e) => Ok(skip(job, &version, &e.to_string())),
    }
}

fn transfer_stem(job: &ArchiveAssetJob, version: &File) -> String {
    format!("{}/{}", job.archive, version.id)
}

fn on_status(ctx: &Context, archive: &ArchiveRecord, job: ArchiveAssetJob, version: File, status: TransferStatus) -> Result<Step> {
    let renewals = job.download.as_ref().map_or(0, |d| d.renewals);
    match status {
        TransferStatus::Running { done, total } => {
            let key = job.download.as_ref().map(|d| d.transfer_key.clone());
            Ok(job.then(POLL_MS, format!("downloading {}: {done} of {total} bytes", version.name), key))
        }
        TransferStatus::Complete(blob) => {
            let document = ctx.host.ensure_document(&job.folder_id, &job.document_key(), &job.asset.name)?;
            let origin = Origin {
                generation: archive.generation,
                account_id: &archive.account_id,
                workspace_id: &archive.workspace_id,
                project_id: &archive.project_id,
                project_name: &archive.project_name,
            };
            let props = properties(&version, &origin, &archive.user);
            ctx.host.add_version(&document.id, &format!("frameio:{}", version.id), &blob.id, &props)?;
            let link = Link {
                file_id: version.id.clone(),
                document_id: document.id.clone(),
                generation: archive.generation,
                account_id: archive.account_id.clone(),
                workspace_id: archive.workspace_id.clone(),
                project_id: archive.project_id.clone(),
                binding_id: String::new(),
                user: archive.user.clone(),
                fps: version.fps,
            };
            links::record(ctx.host, &link)?;
            let converged = match converge(ctx, &link)? {
                Convergence::PostsUnderWay => return Ok(job.then(POSTS_WAIT_MS, "waiting for a DAM comment on its way to Frame.io".into(), None)),
                Convergence::Converged(c) => c,
            };
            let mut tally = job.tally.clone();
            tally.documents = 1;
            tally.versions += 1;
            tally.bytes += blob.size;
            tally.comments += converged.comments as u32;
            Ok(ArchiveAssetJob { tally, ..job }.advance().then(0, format!("copied {}", version.name), None))
        }
        // An expired link, storage that kept failing, or bytes that arrived damaged:
        // read the file again for a fresh link and fetch it anew.
        TransferStatus::Failed(e) if worth_a_fresh_start(&e) && renewals < MAX_URL_RENEWALS => {
            let fresh = ctx.api(&archive.user)?.file(&archive.account_id, &version.id)?;
            start(ctx, job, fresh, renewals + 1)
        }
        TransferStatus::Failed(e) => Ok(skip(job, &version, &e.to_string())),
    }
}

/// Whether a failed download may succeed from a fresh link: not when the host
/// refused the URL or the request itself.
fn worth_a_fresh_start(e: &TransferError) -> bool {
    match e {
        TransferError::HttpStatus(status) => *status == 403 || *status == 408 || *status == 429 || *status >= 500,
        TransferError::Io(_) | TransferError::ChecksumMismatch(_) | TransferError::SizeMismatch(_) => true,
        TransferError::Denied(_) | TransferError::InvalidRequest(_) => false,
    }
}

/// Leaves one version out, with the reason, and goes on with the next.
fn skip(job: ArchiveAssetJob, version: &File, why: &str) -> Step {
    let mut tally = job.tally.clone();
    tally.skipped.push(format!("{}: {why}", version.name));
    ArchiveAssetJob { tally, ..job }.advance().then(0, format!("left out {}", version.name), None)
}

fn summary(asset: &File, tally: &Tally) -> String {
    let mut text = format!("\"{}\": {} versions, {} comments, {} bytes", asset.name, tally.versions, tally.comments, tally.bytes);
    if !tally.skipped.is_empty() {
        text.push_str(&format!("; left out: {}", tally.skipped.join("; ")));
    }
    text
}
