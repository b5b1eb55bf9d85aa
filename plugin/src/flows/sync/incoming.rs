//! Frame.io to the DAM: converge, don't replay.
//!
//! A webhook delivery only names a resource. Whatever it says happened, the answer
//! is the same: a [`SyncJob`] that brings the linked document to the file's current
//! state in Frame.io (its comments, replies, annotations, completion and review
//! status). A duplicate, reordered or late delivery therefore changes nothing more,
//! and deliveries for one file while its sync is still queued are folded into it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::links::{self, Link};
use super::outgoing;
use crate::error::Result;
use crate::flows::{Context, Flow, JobRequest, Step};
use crate::frameio::model::{Change, ChangeKind, Comment};
use crate::host::{CommentBody, Host};

/// `sync-pending/<resource id>`: a sync for the resource is queued and has not
/// started; another delivery for it queues nothing.
const PENDING: &str = "sync-pending/";
/// How long a pending mark holds, should its job never start (a lost queue).
const PENDING_SECS: u64 = 600;
/// How long a sync waits for a DAM comment being posted to Frame.io, between looks.
const OUTBOUND_WAIT_MS: u32 = 1_000;

/// What a sync starts from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Target {
    /// A file.
    File(String),
    /// A comment (made, edited, completed): its file is looked up.
    Comment(String),
}

/// The job: bring one file's document to Frame.io's current state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncJob {
    pub target: Target,
    /// The account the resource is in (V4 needs it to read a comment).
    #[serde(default)]
    pub account_id: String,
}

impl SyncJob {
    /// The job that syncs `file_id`, queued once under `reason` (an interaction, a
    /// delivery, a reconcile run).
    pub fn request(file_id: &str, reason: &str) -> JobRequest {
        let job = SyncJob { target: Target::File(file_id.to_string()), account_id: String::new() };
        JobRequest { key: format!("sync:{file_id}:{reason}"), kind: Self::KIND.into(), payload: job.encode() }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sync jobs serialise to JSON")
    }
}

/// The jobs a verified delivery asks for. Deliveries about files the connector does
/// not follow ask for none, and so do deliveries for a resource whose sync is
/// already queued.
pub fn on_change(host: &dyn Host, change: &Change, received_at: u64) -> Result<Vec<JobRequest>> {
    let target = match &change.kind {
        ChangeKind::Comment => Target::Comment(change.resource_id.clone()),
        ChangeKind::CommentDeleted => match links::file_of_comment(host, &change.resource_id)? {
            Some(file_id) => Target::File(file_id),
            // A comment the sync never saw: nothing of it is in the DAM.
            None => return Ok(Vec::new()),
        },
        ChangeKind::Status | ChangeKind::FileReady => Target::File(change.resource_id.clone()),
        ChangeKind::ProjectUpdated | ChangeKind::Other(_) => return Ok(Vec::new()),
    };
    if let Target::File(file_id) = &target
        && links::of_file(host, file_id)?.is_none()
    {
        return Ok(Vec::new());
    }
    let resource = match &target {
        Target::File(id) | Target::Comment(id) => id.clone(),
    };
    let pending = format!("{PENDING}{resource}");
    if host.storage_get(&pending)?.is_some() {
        return Ok(Vec::new());
    }
    crate::store::save_expiring(host, &pending, &received_at, received_at + PENDING_SECS)?;
    let job = SyncJob { target, account_id: change.account_id.clone().unwrap_or_default() };
    let nonce = hex::encode(host.random_bytes(4));
    Ok(vec![JobRequest { key: format!("sync:{resource}:{received_at}:{nonce}"), kind: SyncJob::KIND.into(), payload: job.encode() }])
}

impl Flow for SyncJob {
    const KIND: &'static str = "sync";

    fn step(&self, ctx: &Context) -> Result<Step> {
        let file_id = match &self.target {
            Target::File(id) => id.clone(),
            Target::Comment(comment_id) => {
                ctx.host.storage_delete(&format!("{PENDING}{comment_id}"))?;
                match resolve_comment(ctx, comment_id, &self.account_id)? {
                    Some(file_id) => file_id,
                    None => return Ok(Step::done("the comment is not on a file the DAM follows")),
                }
            }
        };
        ctx.host.storage_delete(&format!("{PENDING}{file_id}"))?;
        let Some(link) = links::of_file(ctx.host, &file_id)? else {
            return Ok(Step::done("the file is not linked to a DAM document"));
        };
        if outgoing::posting(ctx.host, &link.document_id)? {
            return Ok(wait_for_posts(&link));
        }
        Ok(match converge(ctx, &link)? {
            Convergence::PostsUnderWay => wait_for_posts(&link),
            Convergence::Converged(c) => Step::done(format!(
                "{} comments in Frame.io: {} written, {} deleted; status {}",
                c.comments, c.written, c.deleted, c.status
            )),
        })
    }

    /// Nobody waits on a sync: the reconcile tries again later.
    fn failed(&self, _ctx: &Context, _why: &str) {}
}

/// The file a comment is on: remembered from an earlier sync, else read from Frame.io
/// with the connection of any linked file in the account.
fn resolve_comment(ctx: &Context, comment_id: &str, account_id: &str) -> Result<Option<String>> {
    if let Some(file_id) = links::file_of_comment(ctx.host, comment_id)? {
        return Ok(Some(file_id));
    }
    let Some(owner) = any_link_in(ctx.host, account_id)? else { return Ok(None) };
    let comment = match ctx.api(&owner.user)?.comment(&owner.account_id, comment_id) {
        Ok(comment) => comment,
        Err(crate::error::Error::Frameio(e)) if e.status == 404 || e.status == 403 => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(link) = links::of_file(ctx.host, &comment.file_id)? else { return Ok(None) };
    links::remember_comment(ctx.host, comment_id, &link.file_id)?;
    Ok(Some(link.file_id))
}

/// A link in `account_id` (any, when the event named no account), whose connection
/// can read the account's comments.
fn any_link_in(host: &dyn Host, account_id: &str) -> Result<Option<Link>> {
    for file_id in links::files(host)? {
        if let Some(link) = links::of_file(host, &file_id)?
            && (account_id.is_empty() || link.account_id == account_id)
        {
            return Ok(Some(link));
        }
    }
    Ok(None)
}

/// A DAM comment is on its way to Frame.io: syncing now could import it a second
/// time before its key is recorded. Look again shortly.
fn wait_for_posts(link: &Link) -> Step {
    Step::Next {
        delay_ms: OUTBOUND_WAIT_MS,
        payload: serde_json::to_vec(&SyncJob { target: Target::File(link.file_id.clone()), account_id: link.account_id.clone() })
            .expect("sync jobs serialise to JSON"),
        status: "waiting for a DAM comment on its way to Frame.io".into(),
        wake_on_transfer: None,
        enqueue: Vec::new(),
    }
}

/// Brings the document to the file's current state in Frame.io.
///
/// The DAM's comments are read before Frame.io's, and posts under way are looked
/// for again after both reads: a DAM comment that got its key after the first read
/// was in Frame.io before the second, so it is neither deleted nor imported again.
/// That look misses a post that ended before it: one that ended after the DAM was
/// read may have put its comment in Frame.io after Frame.io was read, and keyed its
/// DAM comment, so that the sync saw it on neither side. Deleting a parent gone from
/// Frame.io would take such a reply along unseen, and the next sync would bring it
/// back as Frame.io's. So [`outgoing::landed`], read before the DAM and again with
/// that look, sends the sync round again when a post ended in between.
pub(crate) fn converge(ctx: &Context, link: &Link) -> Result<Convergence> {
    let api = ctx.api(&link.user)?;
    let landed = outgoing::landed(ctx.host, &link.document_id)?;
    let existing: BTreeMap<String, crate::host::Comment> = ctx
        .host
        .list_comments(&link.document_id)?
        .into_iter()
        .filter_map(|c| c.external_key.clone().map(|key| (key, c)))
        .collect();
    let mut comments = api.comments(&link.account_id, &link.file_id)?;
    let status = api.review_status(&link.account_id, &link.file_id)?;
    if outgoing::posting(ctx.host, &link.document_id)? || outgoing::landed(ctx.host, &link.document_id)? != landed {
        return Ok(Convergence::PostsUnderWay);
    }
    order_parents_first(&mut comments);
    let key_of_id: BTreeMap<&str, &str> = existing.iter().map(|(key, c)| (c.id.as_str(), key.as_str())).collect();
    let mut written = 0;
    let mut seen = BTreeSet::new();
    for comment in &comments {
        let key = links::comment_key(&comment.id);
        // A DAM reply that went to an API without replies (V4) came back as a comment
        // of its own: it stays under its parent in the DAM.
        let kept_parent = || existing.get(&key)?.parent_id.as_deref().and_then(|id| key_of_id.get(id)).map(|k| k.to_string());
        let parent_key = comment.parent_id.as_deref().map(links::comment_key).or_else(kept_parent);
        let body = body_of(comment, link.fps);
        seen.insert(key.clone());
        links::remember_comment(ctx.host, &comment.id, &link.file_id)?;
        let unchanged = existing.get(&key).is_some_and(|c| c.body == body && c.parent_id.is_some() == parent_key.is_some());
        if unchanged {
            continue;
        }
        let stored = ctx.host.put_comment(&link.document_id, &key, parent_key.as_deref(), &body)?;
        links::pair_comment(ctx.host, &stored.id, &comment.id)?;
        written += 1;
    }
    let mut deleted = 0;
    // Comments on the document's other versions (a version stack's earlier files)
    // are theirs to keep: only this file's are missing when they are not listed.
    let gone_here = |key: &str| -> Result<bool> {
        let Some(comment_id) = links::comment_of_key(key) else { return Ok(false) };
        Ok(!seen.contains(key) && links::file_of_comment(ctx.host, comment_id)?.is_none_or(|file| file == link.file_id))
    };
    let mut missing = Vec::new();
    for (key, comment) in &existing {
        if gone_here(key)? {
            missing.push((key, comment));
        }
    }
    for (key, gone) in missing {
        // Deleting a comment deletes its replies; one still in Frame.io (a DAM reply
        // that went there as a comment of its own) stays, as a comment of its own.
        for (child_key, child) in existing.iter().filter(|(k, c)| c.parent_id.as_deref() == Some(gone.id.as_str()) && seen.contains(*k)) {
            ctx.host.put_comment(&link.document_id, child_key, None, &child.body)?;
        }
        if ctx.host.delete_comment(&link.document_id, key)? {
            deleted += 1;
        }
    }
    ctx.host.set_properties(&link.document_id, &[("frameio.status".into(), status.name().into())])?;
    Ok(Convergence::Converged(Converged { comments: comments.len(), written, deleted, status: status.name() }))
}

/// What bringing a document up to date came to.
pub(crate) enum Convergence {
    /// A DAM comment is on its way to Frame.io, or got there while Frame.io was
    /// read; nothing was done, look again shortly.
    PostsUnderWay,
    /// The document now holds the file's comments and status.
    Converged(Converged),
}

/// The counts of a convergence.
pub(crate) struct Converged {
    /// Comments and replies the file has in Frame.io.
    pub comments: usize,
    /// Written to the DAM (new or changed).
    pub written: usize,
    /// Deleted from the DAM (gone from Frame.io).
    pub deleted: usize,
    /// The review status's name.
    pub status: &'static str,
}

/// Parents before their replies, so that a reply's parent exists when it is written.
fn order_parents_first(comments: &mut [Comment]) {
    comments.sort_by_key(|c| (c.parent_id.is_some(), c.created_at));
}

/// A Frame.io comment as the DAM keeps it.
fn body_of(comment: &Comment, fps: Option<f64>) -> CommentBody {
    CommentBody {
        author: comment.author.display(),
        text: comment.text.clone(),
        created_at: comment.created_at,
        updated_at: comment.updated_at,
        frame: comment.frame,
        timecode: comment.frame.zip(fps).map(|(frame, fps)| timecode(frame, fps)),
        duration_frames: comment.duration_frames,
        page: comment.page,
        annotation: comment.annotation.clone(),
        completed: comment.completed,
    }
}

/// `frame` (from 0) as a non-drop SMPTE timecode `hh:mm:ss:ff` at `fps` (rounded to
/// whole frames per second: 23.976 counts as 24).
pub fn timecode(frame: u64, fps: f64) -> String {
    let rate = (fps.round() as u64).max(1);
    let (seconds, frames) = (frame / rate, frame % rate);
    format!("{:02}:{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60, frames)
}

#[cfg(test)]
mod tests {
    use super::timecode;

    #[test]
    fn timecodes_count_whole_frames_per_second() {
        assert_eq!(timecode(0, 24.0), "00:00:00:00");
        assert_eq!(timecode(25, 24.0), "00:00:01:01");
        assert_eq!(timecode(24 * 3661 + 5, 23.976), "01:01:01:05");
    }
}
