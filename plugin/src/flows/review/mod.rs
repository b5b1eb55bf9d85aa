//! Send for review: a DAM document's version goes to Frame.io, into a bound project
//! or the automatic structure, and reviewers get a link.
//!
//! [`send`] checks a request and answers the job that does it; the job's steps are
//! in [`job`], the show/episode structure in [`structure`]. A send repeated with the
//! same request is the same job (its key is the request's digest), and a version
//! already uploaded to a place is never uploaded there again.

pub mod job;
pub mod structure;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use job::ReviewJob;

use super::bindings;
use super::{Context, Flow, JobRequest};
use crate::error::{Error, Result};
use crate::frameio::model::Generation;
use crate::host::RenditionKind;

/// Most reviewers on one send.
const MAX_REVIEWERS: usize = 50;
/// Longest note for the reviewers, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2000;

/// Where the upload goes (WIT `review.destination`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Destination {
    /// A binding's project, root folder.
    Binding(String),
    /// The show/episode structure, in the workspace of the named binding.
    Structure(String),
}

impl Destination {
    fn binding_id(&self) -> &str {
        match self {
            Destination::Binding(id) | Destination::Structure(id) => id,
        }
    }
}

/// What to send, and to whom (WIT `review.review-request`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReviewRequest {
    pub user: String,
    pub document_id: String,
    /// 0 for the newest.
    pub version: u32,
    pub destination: Destination,
    pub reviewers: Vec<String>,
    pub description: String,
    pub expires_at: Option<u64>,
    pub password: Option<String>,
    pub rendition: RenditionKind,
    pub allow_download: bool,
    pub watermark: bool,
}

/// What the configured API can honour (WIT `review.review-capabilities`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub password: bool,
    pub expiry: bool,
    pub invites: bool,
    pub watermark: bool,
    pub watermark_note: &'static str,
}

/// What the configured API can honour.
pub fn capabilities(generation: Generation) -> Capabilities {
    match generation {
        Generation::V2 => Capabilities {
            password: true,
            expiry: true,
            invites: false,
            watermark: false,
            watermark_note: "Review links follow the Frame.io account's own watermark settings; the Legacy API cannot change them per link.",
        },
        Generation::V4 => Capabilities {
            password: true,
            expiry: true,
            invites: true,
            watermark: true,
            watermark_note: "Frame.io watermarks what the reviewers see when asked.",
        },
    }
}

/// Why a request was refused: a value, named by its field of the send dialog
/// (`forms`), or anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `field` is one of `version`, `rendition`, `reviewers`, `description`,
    /// `expires-at`, `password` and `watermark`.
    Value { field: &'static str, why: String },
    Other(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Other(e)
    }
}

impl From<crate::host::HostError> for Refused {
    fn from(e: crate::host::HostError) -> Self {
        Refused::Other(e.into())
    }
}

/// Checks a request and returns the job that sends it. Nothing is created before
/// the job runs.
pub fn send(ctx: &Context, req: ReviewRequest) -> Result<JobRequest> {
    send_checked(ctx, req).map_err(|refused| match refused {
        Refused::Value { why, .. } => Error::InvalidInput(why),
        Refused::Other(e) => e,
    })
}

/// [`send`], telling which value was refused.
pub fn send_checked(ctx: &Context, req: ReviewRequest) -> std::result::Result<JobRequest, Refused> {
    let version = check(ctx, &req)?;
    let req = ReviewRequest { version, ..req };
    let job = ReviewJob::new(req);
    Ok(JobRequest { key: format!("review:{}", job.digest), kind: ReviewJob::KIND.into(), payload: job.encode() })
}

/// Refuses what cannot be sent, naming why; returns the version number resolved.
fn check(ctx: &Context, req: &ReviewRequest) -> std::result::Result<u32, Refused> {
    let invalid = |field: &'static str, why: String| Err(Refused::Value { field, why });
    let document = ctx.host.get_document(&req.document_id).map_err(|_| Error::NotFound(format!("document {}", req.document_id)))?;
    let version = if req.version == 0 { document.version_count } else { req.version };
    if version == 0 || version > document.version_count {
        return invalid("version", format!("document {} has no version {}", document.title, req.version));
    }
    let renditions = ctx.host.renditions(&req.document_id, version)?;
    if !renditions.iter().any(|r| r.kind == req.rendition) {
        return invalid("rendition", format!("version {version} of \"{}\" has no {} rendition", document.title, kind_name(req.rendition)));
    }
    match bindings::load(ctx.host, req.destination.binding_id())? {
        Some(binding) if binding.unbound_at.is_none() => {}
        _ => return Err(Error::NotFound(format!("binding {}", req.destination.binding_id())).into()),
    }
    if req.reviewers.len() > MAX_REVIEWERS {
        return invalid("reviewers", format!("at most {MAX_REVIEWERS} reviewers"));
    }
    if let Some(bad) = req.reviewers.iter().find(|e| !is_email(e)) {
        return invalid("reviewers", format!("{bad:?} is not an email address"));
    }
    if req.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return invalid("description", format!("the note is longer than {MAX_DESCRIPTION_CHARS} characters"));
    }
    if req.expires_at.is_some_and(|at| at <= ctx.host.now()) {
        return invalid("expires-at", "the expiry date is in the past".into());
    }
    if let Some(password) = &req.password
        && !(4..=128).contains(&password.chars().count())
    {
        return invalid("password", "a password is 4 to 128 characters".into());
    }
    if req.watermark && !capabilities(ctx.settings.api).watermark {
        return invalid("watermark", capabilities(ctx.settings.api).watermark_note.to_string());
    }
    Ok(version)
}

pub(crate) fn kind_name(kind: RenditionKind) -> &'static str {
    match kind {
        RenditionKind::Master => "master",
        RenditionKind::Proxy => "proxy",
    }
}

/// `name@host.domain`, printable, no spaces, at most 254 bytes.
pub(crate) fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.chars().all(|c| c.is_ascii_graphic() && c != '<' && c != '>')
        && !domain.contains('@')
}

/// A stable digest of a request: the same send twice is the same job.
fn digest(req: &ReviewRequest) -> String {
    let bytes = serde_json::to_vec(req).expect("review requests serialise to JSON");
    hex::encode(&Sha256::digest(&bytes)[..12])
}
