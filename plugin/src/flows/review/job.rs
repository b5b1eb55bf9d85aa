//! The send-for-review job. Steps, each idempotent:
//! 1. `Start`: the rendition, the destination folder (made when needed), then the
//!    Frame.io file for the upload (recorded before the bytes move, so a replay
//!    never makes a second one) and a host-side upload to its part URLs.
//! 2. `Uploading`: poll the upload.
//! 3. `Confirming`: wait until Frame.io has the whole file; stack it on the
//!    document's earlier upload to the same place; link it for the review sync.
//! 4. `Sharing`: the review link (a share, on V4), made once per request; the
//!    reviewers are told, once each.

use serde::{Deserialize, Serialize};

use super::{Destination, ReviewRequest, digest, structure};
use crate::error::{Error, Result};
use crate::flows::bindings::{self, Binding};
use crate::flows::sync::links::{self, Link};
use crate::flows::{Context, Flow, Step, subject_title};
use crate::frameio::FrameioApi;
use crate::frameio::model::{NewShare, NewUpload, Share};
use crate::host::{Message, Recipient, Rendition, TransferError, TransferStatus, UploadPart, UploadRequest};
use crate::store;

/// `review-upload/<document>/<version>/<rendition>/<folder>`: the file a version was
/// uploaded as, to a place.
const UPLOAD: &str = "review-upload/";
/// `review-latest/<document>/<folder>`: the newest file of a document in a place.
const LATEST: &str = "review-latest/";
/// `review-share/<request digest>`: the link a request made.
const SHARE: &str = "review-share/";
/// `review-told/<request digest>/<email>`: a reviewer told of the link.
const TOLD: &str = "review-told/";
/// Checks of Frame.io's upload state before giving up (twice a second: a minute).
const MAX_CHECKS: u32 = 120;
/// Poll intervals of a running upload.
const POLL_MS: u32 = 250;
/// Fresh uploads after part URLs expired, before the send fails.
const MAX_RENEWALS: u32 = 5;

/// Where the file goes and what it is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub account_id: String,
    pub workspace_id: String,
    pub project_id: String,
    pub folder_id: String,
    pub file_id: String,
    /// The document's earlier upload to the same folder, stacked under this one.
    pub earlier_file_id: Option<String>,
}

/// Where the job is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Stage {
    Start,
    Uploading { target: Target, transfer_key: String, polls: u32 },
    Confirming { target: Target, checks: u32 },
    Sharing { target: Target, asset_id: String },
}

/// The job's payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReviewJob {
    pub request: ReviewRequest,
    /// The request's digest: the job's key and its records' names.
    pub digest: String,
    pub stage: Stage,
    /// Uploads abandoned because their part URLs expired.
    #[serde(default)]
    pub renewals: u32,
}

/// What a recorded upload says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Uploaded {
    file_id: String,
    earlier_file_id: Option<String>,
}

impl ReviewJob {
    /// The job for a checked request.
    pub fn new(request: ReviewRequest) -> ReviewJob {
        ReviewJob { digest: digest(&request), request, stage: Stage::Start, renewals: 0 }
    }

    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("review jobs serialise to JSON")
    }

    fn at(&self, stage: Stage, delay_ms: u32, status: String) -> Step {
        let next = ReviewJob { stage, ..self.clone() };
        Step::Next { delay_ms, payload: next.encode(), status, wake_on_transfer: None, enqueue: Vec::new() }
    }

    fn binding(&self, ctx: &Context) -> Result<Binding> {
        let id = match &self.request.destination {
            Destination::Binding(id) | Destination::Structure(id) => id,
        };
        bindings::load(ctx.host, id)?.ok_or_else(|| Error::NotFound(format!("binding {id}")))
    }

    /// Runs `call` as the sender, or as the binding's owner when the sender has no
    /// connection.
    fn as_sender<T>(&self, ctx: &Context, binding: &Binding, call: impl Fn(&dyn FrameioApi) -> Result<T>) -> Result<T> {
        ctx.as_user_or(&self.request.user, &binding.user, call)
    }
}

impl Flow for ReviewJob {
    const KIND: &'static str = "review";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let binding = self.binding(ctx)?;
        match self.stage.clone() {
            Stage::Start => self.start(ctx, &binding),
            Stage::Uploading { target, transfer_key, polls } => self.poll(ctx, target, transfer_key, polls),
            Stage::Confirming { target, checks } => self.confirm(ctx, &binding, target, checks),
            Stage::Sharing { target, asset_id } => self.share(ctx, &binding, &target, &asset_id),
        }
    }

    /// Tells the sender: a send that silently fails looks like one that worked.
    fn failed(&self, ctx: &Context, why: &str) {
        let _ = ctx.host.notify(Message {
            to: Recipient::DamUser(self.request.user.clone()),
            subject: "Your send to Frame.io for review failed".into(),
            body: format!("Document {} could not be sent to Frame.io for review: {why}", self.request.document_id),
            link: None,
        });
    }
}

impl ReviewJob {
    fn rendition(&self, ctx: &Context) -> Result<Rendition> {
        let renditions = ctx.host.renditions(&self.request.document_id, self.request.version)?;
        renditions
            .into_iter()
            .find(|r| r.kind == self.request.rendition)
            .ok_or_else(|| Error::InvalidInput("the rendition asked for is gone".into()))
    }

    /// The project and folder the file goes in.
    fn place(&self, ctx: &Context, api: &dyn FrameioApi, binding: &Binding) -> Result<(String, String)> {
        match &self.request.destination {
            Destination::Binding(_) => {
                let project = api.project(&binding.account_id, &binding.project_id)?;
                Ok((project.id, project.root_folder_id))
            }
            Destination::Structure(_) => {
                let document = ctx.host.get_document(&self.request.document_id)?;
                let folder = ctx.host.get_folder(&document.folder_id)?;
                let (show, episode) = structure::show_and_episode(&ctx.settings.structure, &folder.path).ok_or_else(|| {
                    Error::InvalidInput(format!("the folder {} does not fit the review structure {}", folder.path, ctx.settings.structure))
                })?;
                let (project_id, root_id) = structure::project(ctx, api, &binding.account_id, &binding.workspace_id, &show)?;
                let folder_id = structure::folder(ctx, api, &binding.account_id, &project_id, &root_id, &episode)?;
                Ok((project_id, folder_id))
            }
        }
    }

    fn start(&self, ctx: &Context, binding: &Binding) -> Result<Step> {
        let rendition = self.rendition(ctx)?;
        let (project_id, folder_id) = self.as_sender(ctx, binding, |api| self.place(ctx, api, binding))?;
        let doc = &self.request.document_id;
        let upload_key = format!("{UPLOAD}{doc}/{}/{}/{folder_id}", self.request.version, super::kind_name(self.request.rendition));
        let latest_key = format!("{LATEST}{doc}/{folder_id}");
        let target = |uploaded: &Uploaded| Target {
            account_id: binding.account_id.clone(),
            workspace_id: binding.workspace_id.clone(),
            project_id: project_id.clone(),
            folder_id: folder_id.clone(),
            file_id: uploaded.file_id.clone(),
            earlier_file_id: uploaded.earlier_file_id.clone(),
        };
        if let Some(done) = store::load::<Uploaded>(ctx.host, &upload_key)? {
            // This version is in Frame.io there already (or on its way): no second file.
            return Ok(self.at(Stage::Confirming { target: target(&done.value), checks: 0 }, 0, "already uploaded".into()));
        }
        let earlier_file_id = store::load::<String>(ctx.host, &latest_key)?.map(|s| s.value);
        let new = NewUpload { name: rendition.file_name.clone(), size: rendition.size, media_type: rendition.media_type.clone() };
        let upload = self.as_sender(ctx, binding, |api| api.create_upload(&binding.account_id, &folder_id, &new))?;
        let uploaded = Uploaded { file_id: upload.file_id.clone(), earlier_file_id };
        store::save(ctx.host, &upload_key, &uploaded)?;
        let transfer_key = format!("review:{}#{}", self.digest, upload.file_id);
        let media_type = if rendition.media_type.is_empty() { "application/octet-stream".to_string() } else { rendition.media_type.clone() };
        let request = UploadRequest {
            key: transfer_key.clone(),
            blob_id: rendition.blob_id,
            parts: upload.parts.into_iter().map(|p| UploadPart { url: p.url, size: p.size }).collect(),
            headers: vec![("content-type".into(), media_type), ("x-amz-acl".into(), "private".into())],
        };
        ctx.host.start_upload(request).map_err(|e| Error::Host(e.to_string()))?;
        Ok(self.at(Stage::Uploading { target: target(&uploaded), transfer_key, polls: 0 }, POLL_MS, "uploading".into()))
    }

    /// Part URLs expire, and neither API hands out new ones for a file: the file is
    /// given up (deleted) and the upload starts over with a new one.
    fn renew(&self, ctx: &Context, target: &Target) -> Result<Step> {
        if self.renewals >= MAX_RENEWALS {
            return Ok(Step::Failed("Frame.io storage kept refusing the upload (HTTP 403)".into()));
        }
        let binding = self.binding(ctx)?;
        self.as_sender(ctx, &binding, |api| api.delete_file(&target.account_id, &target.file_id))?;
        let doc = &self.request.document_id;
        let upload_key = format!("{UPLOAD}{doc}/{}/{}/{}", self.request.version, super::kind_name(self.request.rendition), target.folder_id);
        ctx.host.storage_delete(&upload_key)?;
        let again = ReviewJob { renewals: self.renewals + 1, ..self.clone() };
        Ok(again.at(Stage::Start, 0, "part URLs expired; uploading again with fresh ones".into()))
    }

    fn poll(&self, ctx: &Context, target: Target, transfer_key: String, polls: u32) -> Result<Step> {
        match ctx.host.transfer_status(&transfer_key).map_err(|e| Error::Host(e.to_string()))? {
            Some(TransferStatus::Running { done, total }) => {
                let status = format!("uploading: {done} of {total} bytes");
                let mut step = self.at(Stage::Uploading { target, transfer_key: transfer_key.clone(), polls: polls + 1 }, POLL_MS, status);
                if let Step::Next { wake_on_transfer, .. } = &mut step {
                    *wake_on_transfer = Some(transfer_key);
                }
                Ok(step)
            }
            Some(TransferStatus::Complete(_)) => Ok(self.at(Stage::Confirming { target, checks: 0 }, 0, "uploaded; confirming".into())),
            Some(TransferStatus::Failed(TransferError::HttpStatus(403))) => self.renew(ctx, &target),
            Some(TransferStatus::Failed(e)) => Ok(Step::Failed(format!("the upload to Frame.io failed: {e}"))),
            None => Ok(Step::Failed("the host lost the upload".into())),
        }
    }

    fn confirm(&self, ctx: &Context, binding: &Binding, target: Target, checks: u32) -> Result<Step> {
        let complete = self.as_sender(ctx, binding, |api| api.upload_complete(&target.account_id, &target.file_id))?;
        if !complete {
            if checks >= MAX_CHECKS {
                return Ok(Step::Failed("Frame.io never reported the upload complete".into()));
            }
            return Ok(self.at(Stage::Confirming { target, checks: checks + 1 }, 500, "waiting for Frame.io to confirm the upload".into()));
        }
        let asset_id = match &target.earlier_file_id {
            Some(earlier) if earlier != &target.file_id => {
                self.as_sender(ctx, binding, |api| api.stack(&target.account_id, &target.folder_id, earlier, &target.file_id))?
            }
            _ => target.file_id.clone(),
        };
        let doc = &self.request.document_id;
        store::save(ctx.host, &format!("{LATEST}{doc}/{}", target.folder_id), &target.file_id)?;
        // The review's comments and status come back to the document.
        let link = Link {
            file_id: target.file_id.clone(),
            document_id: doc.clone(),
            generation: binding.generation,
            account_id: target.account_id.clone(),
            workspace_id: target.workspace_id.clone(),
            project_id: target.project_id.clone(),
            binding_id: binding.id.clone(),
            user: binding.user.clone(),
            fps: None,
        };
        links::record(ctx.host, &link)?;
        Ok(self.at(Stage::Sharing { target, asset_id }, 0, "making the review link".into()))
    }

    fn share(&self, ctx: &Context, binding: &Binding, target: &Target, asset_id: &str) -> Result<Step> {
        let share_key = format!("{SHARE}{}", self.digest);
        let share = match store::load::<StoredShare>(ctx.host, &share_key)? {
            Some(stored) => stored.value.into(),
            None => {
                let document = ctx.host.get_document(&self.request.document_id)?;
                let new = NewShare {
                    name: format!("Review: {}", document.title),
                    description: self.request.description.clone(),
                    asset_ids: vec![asset_id.to_string()],
                    expires_at: self.request.expires_at,
                    password: self.request.password.clone(),
                    allow_download: self.request.allow_download,
                    watermark: self.request.watermark,
                    reviewers: self.request.reviewers.clone(),
                };
                let share = self.as_sender(ctx, binding, |api| api.create_share(&target.account_id, &target.project_id, &new))?;
                store::save(ctx.host, &share_key, &StoredShare::from(&share))?;
                share
            }
        };
        self.tell_reviewers(ctx, &share)?;
        let properties = [
            ("frameio.review-link", share.url.clone()),
            ("frameio.review-share-id", share.id.clone()),
            ("frameio.review-file-id", target.file_id.clone()),
            ("frameio.review-asset-id", asset_id.to_string()),
        ];
        let properties: Vec<(String, String)> = properties.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        ctx.host.set_properties(&self.request.document_id, &properties)?;
        let reviewers = self.request.reviewers.len();
        Ok(Step::done(format!("sent for review: {} ({reviewers} {})", share.url, if reviewers == 1 { "reviewer" } else { "reviewers" })))
    }

    /// Emails each reviewer the link, once each however often the step runs.
    fn tell_reviewers(&self, ctx: &Context, share: &Share) -> Result<()> {
        let document = ctx.host.get_document(&self.request.document_id)?;
        for reviewer in &self.request.reviewers {
            let told = format!("{TOLD}{}/{reviewer}", self.digest);
            if store::load::<u64>(ctx.host, &told)?.is_some() {
                continue;
            }
            let mut body = format!("You are asked to review \"{}\" in Frame.io: {}", document.title, share.url);
            if !self.request.description.is_empty() {
                body.push_str(&format!("\n\n{}", self.request.description));
            }
            if share.invited {
                body.push_str("\n\nFrame.io has also sent you an invitation.");
            }
            ctx.host.notify(Message {
                to: Recipient::Email(reviewer.clone()),
                subject: format!("Please review \"{}\"", subject_title(&document.title)),
                body,
                link: Some(share.url.clone()),
            })?;
            store::save(ctx.host, &told, &ctx.host.now())?;
        }
        Ok(())
    }
}

/// A share as recorded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct StoredShare {
    id: String,
    url: String,
    invited: bool,
}

impl From<&Share> for StoredShare {
    fn from(s: &Share) -> StoredShare {
        StoredShare { id: s.id.clone(), url: s.url.clone(), invited: s.invited }
    }
}

impl From<StoredShare> for Share {
    fn from(s: StoredShare) -> Share {
        Share { id: s.id, url: s.url, invited: s.invited }
    }
}
