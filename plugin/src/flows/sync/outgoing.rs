//! The DAM to Frame.io: comments made, edited or deleted on a linked document, and
//! review status changes, posted as the DAM user (or, when they have no connection,
//! as whoever linked the document).
//!
//! No echo: a posted comment's Frame.io id becomes its DAM comment's key before the
//! job ends, and while a post is on its way the file's syncs wait, so the comment
//! Frame.io reports back updates the DAM comment instead of adding a second one. A
//! retried post first looks for the comment an interrupted try may have made. A
//! post that ends while a sync reads both sides is noticed too (see [`landed`]).

use serde::{Deserialize, Serialize};

use super::links::{self, Link};
use crate::error::{Error, Result};
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::frameio::FrameioApi;
use crate::frameio::model::{NewComment, ReviewStatus};
use crate::host::Host;
use crate::store;

/// `outbound/<document id>/<DAM comment id>`: a DAM comment on its way to Frame.io.
const OUTBOUND: &str = "outbound/";
/// How long an outbound mark holds, should its job never finish.
const OUTBOUND_SECS: u64 = 300;
/// `landed/<document id>`: rewritten each time a post of one of the document's DAM
/// comments ends, so that its revision changes.
const LANDED: &str = "landed/";
/// `posting/<DAM comment id>`: when a post of the comment was first tried.
const POSTING: &str = "posting/";
/// Longest comment text accepted, in bytes.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A comment as the DAM reports it (WIT `dam-events.dam-comment`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DamComment {
    pub document_id: String,
    pub comment_id: String,
    pub parent_id: Option<String>,
    pub user: String,
    pub text: String,
    pub frame: Option<u64>,
}

/// Something that happened in the DAM (WIT `dam-events.event`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum DamEvent {
    CommentAdded(DamComment),
    CommentEdited(DamComment),
    CommentDeleted(DamComment),
    StatusChanged { document_id: String, user: String, status: String },
}

impl DamEvent {
    fn document_id(&self) -> &str {
        match self {
            DamEvent::CommentAdded(c) | DamEvent::CommentEdited(c) | DamEvent::CommentDeleted(c) => &c.document_id,
            DamEvent::StatusChanged { document_id, .. } => document_id,
        }
    }
}

/// The job: post one DAM event to Frame.io.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PostJob {
    pub event: DamEvent,
}

/// Checks an event and returns the jobs that post it; none for a document that is
/// not linked to Frame.io.
pub fn notify(host: &dyn Host, event: DamEvent) -> Result<Vec<JobRequest>> {
    check(&event)?;
    if links::of_document(host, event.document_id())?.is_none() {
        return Ok(Vec::new());
    }
    let now = host.now();
    let (key, what) = match &event {
        DamEvent::CommentAdded(c) | DamEvent::CommentEdited(c) | DamEvent::CommentDeleted(c) => {
            let mark = format!("{OUTBOUND}{}/{}", c.document_id, c.comment_id);
            store::save_expiring(host, &mark, &now, now + OUTBOUND_SECS)?;
            (c.comment_id.clone(), kind_name(&event))
        }
        DamEvent::StatusChanged { document_id, .. } => (document_id.clone(), kind_name(&event)),
    };
    let nonce = hex::encode(host.random_bytes(4));
    let payload = serde_json::to_vec(&PostJob { event }).expect("post jobs serialise to JSON");
    Ok(vec![JobRequest { key: format!("post:{what}:{key}:{now}:{nonce}"), kind: PostJob::KIND.into(), payload }])
}

fn kind_name(event: &DamEvent) -> &'static str {
    match event {
        DamEvent::CommentAdded(_) => "comment-added",
        DamEvent::CommentEdited(_) => "comment-edited",
        DamEvent::CommentDeleted(_) => "comment-deleted",
        DamEvent::StatusChanged { .. } => "status-changed",
    }
}

fn check(event: &DamEvent) -> Result<()> {
    let invalid = |why: &str| Err(Error::InvalidInput(why.to_string()));
    match event {
        DamEvent::CommentAdded(c) | DamEvent::CommentEdited(c) => {
            if c.text.trim().is_empty() || c.text.len() > MAX_TEXT_BYTES {
                return invalid("a comment's text is 1 byte to 64 KiB");
            }
        }
        DamEvent::CommentDeleted(_) => {}
        DamEvent::StatusChanged { status, .. } => {
            if ReviewStatus::from_name(status).is_none() {
                return invalid("the status is approved, needs-review, in-progress or none");
            }
        }
    }
    Ok(())
}

/// Whether a DAM comment of the document is on its way to Frame.io.
pub fn posting(host: &dyn Host, document_id: &str) -> Result<bool> {
    Ok(!host.storage_list(&format!("{OUTBOUND}{document_id}/"))?.is_empty())
}

/// Where the document's posts stand: a value that changes whenever a post of one of
/// its DAM comments ends. A post that was not yet [`posting`] when a sync first
/// looked and is no longer when it looks again has ended in between; comparing this
/// from before the sync's reads with after them tells it so.
pub fn landed(host: &dyn Host, document_id: &str) -> Result<Option<u64>> {
    Ok(host.storage_get(&format!("{LANDED}{document_id}"))?.map(|entry| entry.revision))
}

impl Flow for PostJob {
    const KIND: &'static str = "post";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let Some(link) = links::of_document(ctx.host, self.event.document_id())? else {
            return Ok(Step::done("the document is no longer linked to Frame.io"));
        };
        let summary = match &self.event {
            DamEvent::CommentAdded(c) => as_poster(ctx, &c.user, &link, |api| add(ctx, api, &link, c))?,
            DamEvent::CommentEdited(c) => as_poster(ctx, &c.user, &link, |api| edit(ctx, api, &link, c))?,
            DamEvent::CommentDeleted(c) => as_poster(ctx, &c.user, &link, |api| delete(ctx, api, &link, c))?,
            DamEvent::StatusChanged { user, status, .. } => {
                let status = ReviewStatus::from_name(status).unwrap_or_default();
                as_poster(ctx, user, &link, |api| api.set_review_status(&link.account_id, &link.file_id, status))?;
                format!("status {} set in Frame.io", status.name())
            }
        };
        self.clear_mark(ctx.host)?;
        Ok(Step::done(summary))
    }

    fn failed(&self, ctx: &Context, _why: &str) {
        // Whatever happened, the file's syncs must not wait for this post any longer.
        let _ = self.mark_landed(ctx.host);
        let _ = self.unmark(ctx.host);
    }
}

impl PostJob {
    /// The post has ended: says so in [`landed`] first, then lets the file's syncs
    /// go on. In that order, a sync that finds the mark gone also finds `landed`
    /// changed if the post ended while it read.
    fn clear_mark(&self, host: &dyn Host) -> Result<()> {
        self.mark_landed(host)?;
        self.unmark(host)
    }

    fn mark_landed(&self, host: &dyn Host) -> Result<()> {
        if let DamEvent::CommentAdded(c) | DamEvent::CommentEdited(c) | DamEvent::CommentDeleted(c) = &self.event {
            store::save(host, &format!("{LANDED}{}", c.document_id), &host.now())?;
        }
        Ok(())
    }

    fn unmark(&self, host: &dyn Host) -> Result<()> {
        if let DamEvent::CommentAdded(c) | DamEvent::CommentEdited(c) | DamEvent::CommentDeleted(c) = &self.event {
            host.storage_delete(&format!("{OUTBOUND}{}/{}", c.document_id, c.comment_id))?;
        }
        Ok(())
    }
}

/// Runs `post` as the DAM user when they are connected, else as the link's owner.
fn as_poster<T>(ctx: &Context, user: &str, link: &Link, post: impl Fn(&dyn FrameioApi) -> Result<T>) -> Result<T> {
    ctx.as_user_or(user, &link.user, post)
}

/// The Frame.io comment a DAM comment is paired with.
fn frameio_id(host: &dyn Host, dam_comment_id: &str) -> Result<Option<String>> {
    links::paired_comment(host, dam_comment_id)
}

fn add(ctx: &Context, api: &dyn FrameioApi, link: &Link, c: &DamComment) -> Result<String> {
    if let Some(posted) = frameio_id(ctx.host, &c.comment_id)? {
        return Ok(format!("already posted as {posted}"));
    }
    if !in_dam(ctx.host, c)? {
        withdraw_unrecorded(ctx, api, link, c)?;
        return Ok("deleted in the DAM before it was posted".into());
    }
    let parent_id = match &c.parent_id {
        Some(parent) => frameio_id(ctx.host, parent)?,
        None => None,
    };
    let new = NewComment { text: c.text.clone(), frame: c.frame, parent_id };
    let started_key = format!("{POSTING}{}", c.comment_id);
    let now = ctx.host.now();
    let created = match store::load::<u64>(ctx.host, &started_key)? {
        // An earlier try may have posted it before it could record so.
        Some(started) => match adopt(ctx.host, api, link, &new, started.value)? {
            Some(found) => found,
            None => api.create_comment(&link.account_id, &link.file_id, &new)?,
        },
        None => {
            store::save_expiring(ctx.host, &started_key, &now, now + 86_400)?;
            api.create_comment(&link.account_id, &link.file_id, &new)?
        }
    };
    match ctx.host.set_comment_key(&c.comment_id, &links::comment_key(&created.id)) {
        Ok(()) => {}
        // Deleted in the DAM while it was being posted: take it back out of Frame.io,
        // or the next sync would bring it back.
        Err(crate::host::HostError::NotFound(_)) => {
            api.delete_comment(&link.account_id, &created.id)?;
            ctx.host.storage_delete(&started_key)?;
            return Ok("deleted in the DAM while it was posted; taken back out of Frame.io".into());
        }
        Err(e) => return Err(e.into()),
    }
    links::pair_comment(ctx.host, &c.comment_id, &created.id)?;
    links::remember_comment(ctx.host, &created.id, &link.file_id)?;
    ctx.host.storage_delete(&started_key)?;
    Ok(format!("posted as Frame.io comment {}", created.id))
}

/// A post of `c` that was interrupted after Frame.io took the comment and before
/// it was recorded left a comment nobody pairs: once `c` is deleted in the DAM, that
/// one goes too, or a sync would bring it back. Whether there was one.
fn withdraw_unrecorded(ctx: &Context, api: &dyn FrameioApi, link: &Link, c: &DamComment) -> Result<bool> {
    let started_key = format!("{POSTING}{}", c.comment_id);
    let Some(started) = store::load::<u64>(ctx.host, &started_key)? else { return Ok(false) };
    let new = NewComment { text: c.text.clone(), frame: c.frame, parent_id: None };
    let found = adopt(ctx.host, api, link, &new, started.value)?;
    if let Some(found) = &found {
        api.delete_comment(&link.account_id, &found.id)?;
    }
    ctx.host.storage_delete(&started_key)?;
    Ok(found.is_some())
}

/// Whether the DAM still has the comment.
fn in_dam(host: &dyn Host, c: &DamComment) -> Result<bool> {
    Ok(host.list_comments(&c.document_id)?.iter().any(|stored| stored.id == c.comment_id))
}

/// A comment on the file with the same text and frame, made since `started` (less a
/// minute of clock skew), that no DAM comment is paired with yet.
fn adopt(host: &dyn Host, api: &dyn FrameioApi, link: &Link, new: &NewComment, started: u64) -> Result<Option<crate::frameio::model::Comment>> {
    let paired: Vec<String> = host.list_comments(&link.document_id)?.into_iter().filter_map(|c| c.external_key).collect();
    let found = api.comments(&link.account_id, &link.file_id)?.into_iter().find(|c| {
        c.text == new.text && c.frame == new.frame && c.created_at + 60 >= started && !paired.contains(&links::comment_key(&c.id))
    });
    Ok(found)
}

fn edit(ctx: &Context, api: &dyn FrameioApi, link: &Link, c: &DamComment) -> Result<String> {
    let Some(id) = frameio_id(ctx.host, &c.comment_id)? else {
        // Its post has not landed yet: try again after it.
        return Err(Error::Host("the comment is not in Frame.io yet".into()));
    };
    let new = NewComment { text: c.text.clone(), frame: c.frame, parent_id: None };
    api.update_comment(&link.account_id, &id, &new)?;
    Ok(format!("Frame.io comment {id} edited"))
}

fn delete(ctx: &Context, api: &dyn FrameioApi, link: &Link, c: &DamComment) -> Result<String> {
    let Some(id) = frameio_id(ctx.host, &c.comment_id)? else {
        if withdraw_unrecorded(ctx, api, link, c)? {
            return Ok("taken out of Frame.io, where an interrupted post had put it".into());
        }
        return Ok("the comment never reached Frame.io".into());
    };
    api.delete_comment(&link.account_id, &id)?;
    Ok(format!("Frame.io comment {id} deleted"))
}
