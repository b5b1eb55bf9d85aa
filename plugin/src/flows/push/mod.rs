//! The push flow: a Frame.io user runs the binding's custom action on a file (or a
//! version stack, meaning its head); the form's submission queues a [`PushJob`]
//! that imports the file into the bound folder.
//!
//! The job's steps, each idempotent so the host may replay any of them after a crash:
//! 1. `Start`: read the file, check it, and start a host-side download keyed by
//!    the job (starting an existing key returns that transfer, not a second one).
//! 2. `Downloading`: poll the transfer. An expired download URL (403) is replaced
//!    by re-reading the file, under a new transfer key; never retried as is.
//! 3. Finish: `ensure-document` keyed by the file's document key and `add-version`
//!    keyed by the interaction id, then tell the pusher.

pub mod awaiting;
pub mod conversation;
mod document;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use document::{Origin, document_key, properties};

use super::bindings::{self, Binding};
use super::sync::SyncJob;
use super::sync::links::{self, Link};
use super::{Context, Flow, Step, subject_title};
use crate::error::Result;
use crate::frameio::model::{File, ItemKind, Original};
use crate::host::{Blob, DownloadRequest, Message, Recipient, TransferError, TransferStatus};

/// The job kind.
pub const KIND: &str = "push";
/// How often a download may start over with a fresh URL before giving up. A URL
/// can expire mid-download now and then (a long transfer, storage hiccups); one that
/// keeps being refused after five fresh ones is refused for some other reason.
const MAX_URL_RENEWALS: u32 = 5;
/// First and longest interval between checks on a running download.
const FIRST_POLL_MS: u32 = 100;
const MAX_POLL_MS: u32 = 500;

/// 100 ms, 200 ms, 400 ms, then every 500 ms.
fn poll_delay(polls: u32) -> u32 {
    (FIRST_POLL_MS << polls.min(3)).min(MAX_POLL_MS)
}

/// The job's payload, carried between steps by the host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PushJob {
    pub binding_id: String,
    /// The file to import (a version stack's head, when the action ran on a stack).
    pub asset_id: String,
    pub interaction_id: String,
    pub frameio_user_id: String,
    /// The pusher's email, resolved when they clicked; empty when Frame.io did not
    /// tell it (the DAM user who bound the folder is told instead).
    #[serde(default)]
    pub pusher_email: String,
    pub title: String,
    /// The note from the form, kept as the version's comment.
    #[serde(default)]
    pub note: Option<String>,
    pub notify: bool,
    pub stage: Stage,
}

/// Where the job is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Stage {
    Start,
    Downloading(Download),
}

/// A download under way and what the document will carry once it completes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Download {
    /// Transfer key; changes with every new transfer (renewed URL, refetch).
    pub transfer_key: String,
    /// New transfers started after the first, for any reason.
    pub renewals: u32,
    /// Whether a damaged download was already fetched again once.
    #[serde(default)]
    pub refetched: bool,
    /// Polls of the current transfer so far (the poll interval grows with them).
    #[serde(default)]
    pub polls: u32,
    pub document_key: String,
    pub properties: Vec<(String, String)>,
}

impl PushJob {
    /// The idempotency key: one job per custom-action interaction.
    pub fn key(&self) -> String {
        format!("push:{}", self.interaction_id)
    }

    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("push jobs serialise to JSON")
    }

    fn transfer_key(&self, renewals: u32) -> String {
        format!("{}#{renewals}", self.key())
    }

    fn with_stage(&self, stage: Stage) -> PushJob {
        PushJob { stage, ..self.clone() }
    }
}

/// Why a file cannot be imported, in words for the user.
pub fn check_importable(file: &File) -> std::result::Result<(), String> {
    match &file.kind {
        ItemKind::File => {}
        ItemKind::Folder => return Err(format!("\"{}\" is a folder; push the files inside it.", file.name)),
        ItemKind::VersionStack => return Err(format!("\"{}\" is a version stack with no version to import.", file.name)),
        ItemKind::Other(kind) => return Err(format!("\"{}\" is a {kind}, which cannot be imported.", file.name)),
    }
    match &file.original {
        Original::Ready { .. } if file.size.is_some() => Ok(()),
        Original::Uploading => {
            Err(format!("\"{}\" is still uploading to Frame.io; push it again once the upload has finished.", file.name))
        }
        Original::Forbidden => Err(format!(
            "You may not download the original of \"{}\" in this Frame.io project; ask a project admin for download permission.",
            file.name
        )),
        _ => Err(format!("Frame.io does not offer the original of \"{}\" for download.", file.name)),
    }
}

impl Flow for PushJob {
    const KIND: &'static str = KIND;

    fn step(&self, ctx: &Context) -> Result<Step> {
        let Some(binding) = bindings::load(ctx.host, &self.binding_id)? else {
            return Ok(Step::Failed("the binding no longer exists".into()));
        };
        match self.stage.clone() {
            Stage::Start => start(ctx, &binding, self),
            Stage::Downloading(download) => poll(ctx, &binding, self, download),
        }
    }

    /// Tells the pusher. Failures are always reported, whatever the form said about
    /// emails: a silent failure looks like a lost asset.
    fn failed(&self, ctx: &Context, why: &str) {
        let Ok(Some(binding)) = bindings::load(ctx.host, &self.binding_id) else { return };
        let message = Message {
            to: recipient(&binding, self),
            subject: "Your Frame.io push could not be imported".into(),
            body: format!("The asset {} could not be imported into {}: {why}", self.asset_id, binding.folder_path),
            link: None,
        };
        // The failure is recorded on the job either way; a lost email must not hide it.
        let _ = ctx.host.notify(message);
    }
}

fn start(ctx: &Context, binding: &Binding, job: &PushJob) -> Result<Step> {
    if binding.unbound_at.is_some() {
        return Ok(Step::Failed("the folder was unbound before the import started".into()));
    }
    let api = ctx.api(&binding.user)?;
    let file = api.file(&binding.account_id, &job.asset_id)?;
    if file.kind == ItemKind::File && file.original == Original::Uploading {
        awaiting::park(ctx.host, job)?;
        return Ok(Step::done("waiting for Frame.io to have the whole file: it is imported when the upload completes"));
    }
    if let Err(why) = check_importable(&file) {
        return Ok(Step::Failed(why));
    }
    let mut properties = properties(&file, &Origin::of(binding), &job.frameio_user_id);
    if let Some(note) = &job.note {
        properties.push(("frameio.comment".into(), note.clone()));
    }
    let download = Download {
        transfer_key: job.transfer_key(0),
        renewals: 0,
        refetched: false,
        polls: 0,
        document_key: document_key(ctx, api.as_ref(), binding, &file)?,
        properties,
    };
    begin_download(ctx, binding, job, download, &file)
}

/// Starts (or finds) the transfer for `download` and acts on its status.
fn begin_download(ctx: &Context, binding: &Binding, job: &PushJob, download: Download, file: &File) -> Result<Step> {
    let Original::Ready { url } = &file.original else {
        return Ok(Step::Failed(check_importable(file).err().unwrap_or_default()));
    };
    let request = DownloadRequest {
        key: download.transfer_key.clone(),
        url: url.clone(),
        expected_size: file.size.unwrap_or(0),
        expected_xxhash64: file.xxhash64.clone(),
    };
    match ctx.host.start_download(request) {
        Ok(status) => on_status(ctx, binding, job, download, status),
        Err(e) => Ok(Step::Failed(e.to_string())),
    }
}

fn poll(ctx: &Context, binding: &Binding, job: &PushJob, download: Download) -> Result<Step> {
    match ctx.host.transfer_status(&download.transfer_key) {
        Ok(Some(status)) => on_status(ctx, binding, job, download, status),
        // The host lost the transfer (its store was reset): read the file and start over.
        Ok(None) => start(ctx, binding, job),
        Err(e) => Ok(Step::Failed(e.to_string())),
    }
}

fn on_status(ctx: &Context, binding: &Binding, job: &PushJob, download: Download, status: TransferStatus) -> Result<Step> {
    match status {
        // Each poll costs an instance and a couple of durable queue writes: poll
        // quickly at first, so short downloads finish promptly, then twice a second.
        TransferStatus::Running { done, total } => Ok(Step::Next {
            delay_ms: poll_delay(download.polls),
            status: format!("downloading: {done} of {total} bytes"),
            // A host that watches transfers runs the next poll as soon as this one ends.
            wake_on_transfer: Some(download.transfer_key.clone()),
            payload: job.with_stage(Stage::Downloading(Download { polls: download.polls + 1, ..download })).encode(),
            enqueue: Vec::new(),
        }),
        TransferStatus::Complete(blob) => finish(ctx, binding, job, &download, &blob),
        TransferStatus::Failed(TransferError::HttpStatus(403)) => renew_url(ctx, binding, job, download),
        TransferStatus::Failed(e @ (TransferError::ChecksumMismatch(_) | TransferError::SizeMismatch(_))) => {
            refetch_damaged(ctx, binding, job, download, &e)
        }
        TransferStatus::Failed(e) => Ok(Step::Failed(e.to_string())),
    }
}

/// Bytes that arrived damaged are fetched once more from scratch (a fresh URL, a
/// new transfer); a second failure is final.
fn refetch_damaged(ctx: &Context, binding: &Binding, job: &PushJob, download: Download, e: &TransferError) -> Result<Step> {
    if download.refetched {
        return Ok(Step::Failed(format!("{e}, twice")));
    }
    restart(ctx, binding, job, Download { refetched: true, ..download })
}

/// A 403 from storage means the presigned URL expired: get a fresh one.
fn renew_url(ctx: &Context, binding: &Binding, job: &PushJob, download: Download) -> Result<Step> {
    if download.renewals >= MAX_URL_RENEWALS {
        return Ok(Step::Failed("Frame.io storage kept refusing the download (HTTP 403)".into()));
    }
    restart(ctx, binding, job, download)
}

/// Reads the file again for a fresh URL and starts a new transfer under a new key.
fn restart(ctx: &Context, binding: &Binding, job: &PushJob, download: Download) -> Result<Step> {
    let file = ctx.api(&binding.user)?.file(&binding.account_id, &job.asset_id)?;
    let renewals = download.renewals + 1;
    let renewed = Download { transfer_key: job.transfer_key(renewals), renewals, polls: 0, ..download };
    begin_download(ctx, binding, job, renewed, &file)
}

fn finish(ctx: &Context, binding: &Binding, job: &PushJob, download: &Download, blob: &Blob) -> Result<Step> {
    let host = ctx.host;
    let document = host.ensure_document(&binding.folder_id, &download.document_key, &job.title)?;
    let version = host.add_version(&document.id, &job.interaction_id, &blob.id, &download.properties)?;
    // The file is now followed for comments and status; the sync brings the ones it
    // already has.
    let fps = download.properties.iter().find(|(name, _)| name == "frameio.fps").and_then(|(_, v)| v.parse().ok());
    links::record(host, &Link::new(&job.asset_id, &document.id, binding, fps))?;
    let mut summary = format!("imported as version {} of \"{}\" ({} bytes)", version.number, document.title, blob.size);
    if job.notify {
        let message = Message {
            to: recipient(binding, job),
            subject: format!("\"{}\" is ready in the DAM", subject_title(&document.title)),
            body: format!(
                "The Frame.io asset you pushed is now version {} of \"{}\" in {}.",
                version.number, document.title, binding.folder_path
            ),
            link: Some(document.url.clone()),
        };
        // The import succeeded; an email that cannot go out must not undo that.
        if let Err(e) = host.notify(message) {
            summary.push_str(&format!("; the email could not be sent: {e}"));
        }
    }
    Ok(Step::Done { summary, enqueue: vec![SyncJob::request(&job.asset_id, &job.interaction_id)] })
}

/// The pusher's email when Frame.io told it at the click, else the DAM user who
/// bound the folder.
fn recipient(binding: &Binding, job: &PushJob) -> Recipient {
    if job.pusher_email.is_empty() {
        Recipient::DamUser(binding.user.clone())
    } else {
        Recipient::Email(job.pusher_email.clone())
    }
}
