//! The push job: import a Frame.io asset into its bound folder.
//!
//! Steps, each idempotent so the host may replay any of them after a crash:
//! 1. `Start`: read the asset, check it, and start a host-side download keyed by
//!    the job (starting an existing key returns that transfer, not a second one).
//! 2. `Downloading`: poll the transfer. An expired download URL (403) is replaced
//!    by re-reading the asset, under a new transfer key; never retried as is.
//! 3. Finish: `ensure-document` keyed by the asset (or its version stack) and
//!    `add-version` keyed by the interaction id, then tell the pusher.
//!
//! A document is keyed by the version stack when the asset has one, so pushing a
//! newer version of a clip adds a version to the same document.

use serde::{Deserialize, Serialize};

use crate::bindings::{self, Binding};
use crate::error::{Error, Result};
use crate::frameio::model::{Asset, AssetKind};
use crate::host::{Blob, DownloadRequest, Host, Message, Recipient, TransferError, TransferStatus};
use crate::jobs::Outcome;
use crate::oauth::Session;

/// The job kind.
pub const KIND: &str = "push";
/// Attempts of one step before a passing failure counts as final.
const MAX_ATTEMPTS: u32 = 6;
/// Shortest wait before a retry.
const MIN_RETRY_MS: u32 = 100;
/// Longest wait before a retry, even when Frame.io asks for more: its rate-limit
/// windows are a minute at most.
const MAX_RETRY_MS: u32 = 120_000;
/// The most one step can spend waiting between its attempts: a failing step gives
/// up within this (plus its attempts' own run time, each bounded by the host's
/// call deadline).
pub const RETRY_BUDGET_MS: u32 = (MAX_ATTEMPTS - 1) * MAX_RETRY_MS;
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
    pub asset_id: String,
    pub interaction_id: String,
    pub frameio_user_id: String,
    pub title: String,
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
    /// A new job for a submitted push.
    pub fn new(binding: &Binding, asset_id: &str, interaction_id: &str, frameio_user_id: &str, title: String, notify: bool) -> Self {
        PushJob {
            binding_id: binding.id.clone(),
            asset_id: asset_id.to_string(),
            interaction_id: interaction_id.to_string(),
            frameio_user_id: frameio_user_id.to_string(),
            title,
            notify,
            stage: Stage::Start,
        }
    }

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
}

/// The DAM document key for an asset: its version stack's, or its own.
pub fn document_key(asset: &Asset) -> String {
    format!("frameio:{}", asset.version_stack_id.as_deref().unwrap_or(&asset.id))
}

/// Why an asset cannot be imported, in words for the user.
pub fn check_importable(asset: &Asset) -> std::result::Result<(), String> {
    match &asset.kind {
        AssetKind::File => {}
        AssetKind::Folder => return Err(format!("\"{}\" is a folder; push the files inside it.", asset.name)),
        AssetKind::VersionStack => return Err(format!("\"{}\" is a version stack; push one of its versions.", asset.name)),
        AssetKind::Other(kind) => return Err(format!("\"{}\" is a {kind}, which cannot be imported.", asset.name)),
    }
    if !asset.upload_complete {
        return Err(format!("\"{}\" is still uploading to Frame.io; push it again once the upload has finished.", asset.name));
    }
    if asset.original_url.is_none() || asset.filesize.is_none() {
        return Err(format!("Frame.io does not offer the original of \"{}\" for download.", asset.name));
    }
    Ok(())
}

/// The Frame.io metadata a document carries.
pub fn properties(asset: &Asset, binding: &Binding, web_url: &str, pushed_by: &str) -> Vec<(String, String)> {
    let mut props = vec![
        ("frameio.asset-id", asset.id.clone()),
        ("frameio.name", asset.name.clone()),
        ("frameio.project-id", asset.project_id.clone()),
        ("frameio.project", if asset.project_name.is_empty() { binding.project_name.clone() } else { asset.project_name.clone() }),
        ("frameio.team-id", if asset.team_id.is_empty() { binding.team_id.clone() } else { asset.team_id.clone() }),
        ("frameio.link", format!("{web_url}/player/{}", asset.id)),
        ("frameio.pushed-by", pushed_by.to_string()),
    ];
    let optional = [
        ("frameio.uploader", asset.uploader.as_ref().map(|u| u.display())),
        ("frameio.filetype", asset.filetype.clone()),
        ("frameio.filesize", asset.filesize.map(|v| v.to_string())),
        ("frameio.fps", asset.fps.map(|v| v.to_string())),
        ("frameio.duration", asset.duration.map(|v| v.to_string())),
        ("frameio.frames", asset.frames.map(|v| v.to_string())),
        ("frameio.label", asset.label.clone()),
        ("frameio.checksum", asset.xxhash64.as_ref().map(|h| format!("xxh64:{h}"))),
        ("frameio.version-stack-id", asset.version_stack_id.clone()),
    ];
    props.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Runs one step.
pub fn run(host: &dyn Host, job: PushJob, attempt: u32) -> Outcome {
    let binding = match bindings::load(host, &job.binding_id) {
        Ok(Some(b)) => b,
        Ok(None) => return Outcome::Failed("the binding no longer exists".into()),
        Err(e) => return passing(host, None, &job, attempt, e),
    };
    let result = match job.stage.clone() {
        Stage::Start => start(host, &binding, &job),
        Stage::Downloading(download) => poll(host, &binding, &job, download),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) if e.is_transient() => passing(host, Some(&binding), &job, attempt, e),
        Err(e) => fail(host, Some(&binding), &job, &e.to_string()),
    }
}

/// A passing failure: retry with backoff, and give up after `MAX_ATTEMPTS`.
fn passing(host: &dyn Host, binding: Option<&Binding>, job: &PushJob, attempt: u32, e: Error) -> Outcome {
    if attempt + 1 >= MAX_ATTEMPTS {
        return fail(host, binding, job, &format!("{e} (gave up after {MAX_ATTEMPTS} attempts)"));
    }
    Outcome::Retry(retry_delay(host, attempt, e.retry_after_ms()), e.to_string())
}

/// Frame.io's own hint when it gave one (at most [`MAX_RETRY_MS`]); else capped
/// exponential backoff with full jitter (1 s, 2 s, 4 s, ... up to 60 s, each drawn
/// at random below its cap), so that jobs failing together do not retry together.
pub(crate) fn retry_delay(host: &dyn Host, attempt: u32, hint_ms: Option<u32>) -> u32 {
    if let Some(hint) = hint_ms {
        return hint.clamp(MIN_RETRY_MS, MAX_RETRY_MS);
    }
    let cap = (1000u32 << attempt.min(6)).min(60_000);
    let random = host.random_bytes(4);
    let draw = u32::from_le_bytes([random[0], random[1], random[2], random[3]]);
    MIN_RETRY_MS + draw % cap
}

fn start(host: &dyn Host, binding: &Binding, job: &PushJob) -> Result<Outcome> {
    if binding.unbound_at.is_some() {
        return Ok(fail(host, Some(binding), job, "the folder was unbound before the import started"));
    }
    let session = Session::open(host, &binding.user)?;
    let asset = session.with_api(|api| api.asset(&job.asset_id))?;
    if let Err(why) = check_importable(&asset) {
        return Ok(fail(host, Some(binding), job, &why));
    }
    let download = Download {
        transfer_key: job.transfer_key(0),
        renewals: 0,
        refetched: false,
        polls: 0,
        document_key: document_key(&asset),
        properties: properties(&asset, binding, &session.settings().web_url, &job.frameio_user_id),
    };
    begin_download(host, binding, job, download, &asset)
}

/// Starts (or finds) the transfer for `download` and acts on its status.
fn begin_download(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download, asset: &Asset) -> Result<Outcome> {
    let request = DownloadRequest {
        key: download.transfer_key.clone(),
        url: asset.original_url.clone().unwrap_or_default(),
        expected_size: asset.filesize.unwrap_or(0),
        expected_xxhash64: asset.xxhash64.clone(),
    };
    match host.start_download(request) {
        Ok(status) => on_status(host, binding, job, download, status),
        Err(e) => Ok(fail(host, Some(binding), job, &e.to_string())),
    }
}

fn poll(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download) -> Result<Outcome> {
    match host.transfer_status(&download.transfer_key) {
        Ok(Some(status)) => on_status(host, binding, job, download, status),
        // The host lost the transfer (its store was reset): read the asset and start over.
        Ok(None) => start(host, binding, job),
        Err(e) => Ok(fail(host, Some(binding), job, &e.to_string())),
    }
}

fn on_status(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download, status: TransferStatus) -> Result<Outcome> {
    match status {
        // Each poll costs an instance and a couple of durable queue writes: poll
        // quickly at first, so short downloads finish promptly, then twice a second.
        TransferStatus::Running { done, total } => Ok(Outcome::Next {
            delay_ms: poll_delay(download.polls),
            status: format!("downloading: {done} of {total} bytes"),
            // A host that watches transfers runs the next poll as soon as this one ends.
            wake_on_transfer: Some(download.transfer_key.clone()),
            payload: PushJob { stage: Stage::Downloading(Download { polls: download.polls + 1, ..download }), ..job.clone() }.encode(),
        }),
        TransferStatus::Complete(blob) => finish(host, binding, job, &download, &blob),
        TransferStatus::Failed(TransferError::HttpStatus(403)) => renew_url(host, binding, job, download),
        TransferStatus::Failed(e @ (TransferError::ChecksumMismatch(_) | TransferError::SizeMismatch(_))) => {
            refetch_damaged(host, binding, job, download, &e)
        }
        TransferStatus::Failed(e) => Ok(fail(host, Some(binding), job, &e.to_string())),
    }
}

/// Bytes that arrived damaged are fetched once more from scratch (a fresh URL, a
/// new transfer); a second failure is final.
fn refetch_damaged(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download, e: &TransferError) -> Result<Outcome> {
    if download.refetched {
        return Ok(fail(host, Some(binding), job, &format!("{e}, twice")));
    }
    restart(host, binding, job, Download { refetched: true, ..download })
}

/// A 403 from storage means the presigned URL expired: get a fresh one.
fn renew_url(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download) -> Result<Outcome> {
    if download.renewals >= MAX_URL_RENEWALS {
        return Ok(fail(host, Some(binding), job, "Frame.io storage kept refusing the download (HTTP 403)"));
    }
    restart(host, binding, job, download)
}

/// Reads the asset again for a fresh URL and starts a new transfer under a new key.
fn restart(host: &dyn Host, binding: &Binding, job: &PushJob, download: Download) -> Result<Outcome> {
    let asset = Session::open(host, &binding.user)?.with_api(|api| api.asset(&job.asset_id))?;
    let renewals = download.renewals + 1;
    let renewed = Download { transfer_key: job.transfer_key(renewals), renewals, polls: 0, ..download };
    begin_download(host, binding, job, renewed, &asset)
}

fn finish(host: &dyn Host, binding: &Binding, job: &PushJob, download: &Download, blob: &Blob) -> Result<Outcome> {
    let document = host.ensure_document(&binding.folder_id, &download.document_key, &job.title)?;
    let version = host.add_version(&document.id, &job.interaction_id, &blob.id, &download.properties)?;
    let mut summary = format!("imported as version {} of \"{}\" ({} bytes)", version.number, document.title, blob.size);
    if job.notify {
        let message = Message {
            to: recipient(host, binding, job),
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
    Ok(Outcome::Done(summary))
}

/// A title short enough for a subject line (hosts refuse subjects over 200 characters).
fn subject_title(title: &str) -> String {
    const MAX: usize = 150;
    if title.chars().count() <= MAX { title.to_string() } else { format!("{}…", title.chars().take(MAX).collect::<String>()) }
}

/// Ends the job and tells the pusher why. Failures are always reported, whatever
/// the form said about emails: a silent failure looks like a lost asset.
fn fail(host: &dyn Host, binding: Option<&Binding>, job: &PushJob, why: &str) -> Outcome {
    if let Some(binding) = binding {
        let message = Message {
            to: recipient(host, binding, job),
            subject: "Your Frame.io push could not be imported".into(),
            body: format!("The asset {} could not be imported into {}: {why}", job.asset_id, binding.folder_path),
            link: None,
        };
        // The failure is recorded on the job either way; a lost email must not hide it.
        let _ = host.notify(message);
    }
    Outcome::Failed(why.to_string())
}

/// The pusher's email when Frame.io tells it, else the DAM user who bound the folder.
fn recipient(host: &dyn Host, binding: &Binding, job: &PushJob) -> Recipient {
    let pusher = Session::open(host, &binding.user)
        .and_then(|s| s.with_api(|api| api.team_member(&binding.team_id, &job.frameio_user_id)))
        .ok()
        .flatten();
    match pusher {
        Some(user) if !user.email.is_empty() => Recipient::Email(user.email),
        _ => Recipient::DamUser(binding.user.clone()),
    }
}
