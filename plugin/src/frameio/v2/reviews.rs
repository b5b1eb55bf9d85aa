//! Comments, labels and webhooks on the Legacy API.

use crate::error::{Error, FrameioError, Result};
use crate::frameio::model::{Comment, CreatedWebhook, NewComment, ReviewStatus};
use crate::frameio::transport::decode;
use crate::frameio::{Reviews, Webhooks, segment};
use crate::host::Method;

use super::V2;
use super::wire::{WireComment, WireCreatedHook, WireHookState, WireLabel};

/// The events a connector's webhook follows on the Legacy API.
pub const EVENTS: [&str; 8] = [
    "comment.created",
    "comment.updated",
    "comment.deleted",
    "comment.completed",
    "comment.uncompleted",
    "asset.label.updated",
    "asset.ready",
    "project.updated",
];

fn label_of(status: ReviewStatus) -> &'static str {
    match status {
        ReviewStatus::None => "none",
        ReviewStatus::InProgress => "in_progress",
        ReviewStatus::NeedsReview => "needs_review",
        ReviewStatus::Approved => "approved",
    }
}

fn status_of(label: &str) -> ReviewStatus {
    match label {
        "in_progress" => ReviewStatus::InProgress,
        "needs_review" => ReviewStatus::NeedsReview,
        "approved" => ReviewStatus::Approved,
        _ => ReviewStatus::None,
    }
}

/// The request body of a comment: v2 counts frames from 0, as the model does.
fn comment_body(comment: &NewComment) -> serde_json::Value {
    let mut body = serde_json::json!({ "text": comment.text });
    if let Some(frame) = comment.frame {
        body["timestamp"] = frame.into();
    }
    body
}

/// A listing's comments with their replies flattened after them.
fn flatten(comments: Vec<WireComment>, file_id: &str, out: &mut Vec<Comment>) {
    for mut wire in comments {
        let replies = std::mem::take(&mut wire.replies);
        let comment = wire.into_comment(file_id);
        let parent = comment.id.clone();
        out.push(comment);
        let mut nested = Vec::new();
        flatten(replies, file_id, &mut nested);
        out.extend(nested.into_iter().map(|r| Comment { parent_id: r.parent_id.or(Some(parent.clone())), ..r }));
    }
}

impl Reviews for V2<'_> {
    fn comments(&self, _account_id: &str, file_id: &str) -> Result<Vec<Comment>> {
        let path = format!("/assets/{}/comments", segment(file_id)?);
        let listed: Vec<WireComment> = crate::frameio::collect_all(|cursor| self.page::<WireComment, WireComment>(&path, &[("include", "replies")], cursor))?;
        let mut comments = Vec::new();
        flatten(listed, file_id, &mut comments);
        Ok(comments)
    }

    fn comment(&self, _account_id: &str, comment_id: &str) -> Result<Comment> {
        let wire: WireComment = self.transport.get(&format!("/comments/{}", segment(comment_id)?))?;
        Ok(wire.into_comment(""))
    }

    fn create_comment(&self, _account_id: &str, file_id: &str, comment: &NewComment) -> Result<Comment> {
        let path = match &comment.parent_id {
            Some(parent) => format!("/comments/{}/replies", segment(parent)?),
            None => format!("/assets/{}/comments", segment(file_id)?),
        };
        let resp = self.transport.send(Method::Post, &path, Some(&comment_body(comment)))?;
        let created: WireComment = decode(&resp)?;
        Ok(created.into_comment(file_id))
    }

    /// `frameioclient` updates with a POST to the comment.
    fn update_comment(&self, _account_id: &str, comment_id: &str, comment: &NewComment) -> Result<Comment> {
        let resp = self.transport.send(Method::Post, &format!("/comments/{}", segment(comment_id)?), Some(&comment_body(comment)))?;
        let updated: WireComment = decode(&resp)?;
        Ok(updated.into_comment(""))
    }

    fn delete_comment(&self, _account_id: &str, comment_id: &str) -> Result<()> {
        match self.transport.send(Method::Delete, &format!("/comments/{}", segment(comment_id)?), None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn review_status(&self, _account_id: &str, file_id: &str) -> Result<ReviewStatus> {
        let asset: WireLabel = self.transport.get(&format!("/assets/{}", segment(file_id)?))?;
        Ok(asset.label.as_deref().map_or(ReviewStatus::None, status_of))
    }

    fn set_review_status(&self, _account_id: &str, file_id: &str, status: ReviewStatus) -> Result<()> {
        let body = serde_json::json!({ "label": label_of(status) });
        self.transport.send(Method::Put, &format!("/assets/{}", segment(file_id)?), Some(&body)).map(|_| ())
    }
}

impl Webhooks for V2<'_> {
    fn create_webhook(&self, account_id: &str, workspace_id: &str, name: &str, url: &str) -> Result<CreatedWebhook> {
        let body = serde_json::json!({ "name": name, "url": url, "events": EVENTS });
        let resp = self.transport.send(Method::Post, &format!("/teams/{}/hooks", segment(workspace_id)?), Some(&body))?;
        let created: WireCreatedHook = decode(&resp)?;
        match created.secret.filter(|s| !s.is_empty()) {
            Some(secret) => Ok(CreatedWebhook { id: created.id, secret }),
            None => {
                // Without its secret the deliveries cannot be verified: remove it.
                let _ = self.delete_webhook(account_id, &created.id);
                Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io created the webhook without a signing secret")))
            }
        }
    }

    fn delete_webhook(&self, _account_id: &str, webhook_id: &str) -> Result<()> {
        match self.transport.send(Method::Delete, &format!("/hooks/{}", segment(webhook_id)?), None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn webhook_active(&self, _account_id: &str, webhook_id: &str) -> Result<Option<bool>> {
        match self.transport.get::<WireHookState>(&format!("/hooks/{}", segment(webhook_id)?)) {
            Ok(hook) => Ok(Some(hook.active.unwrap_or(true) && hook.deleted_at.is_none())),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn activate_webhook(&self, _account_id: &str, webhook_id: &str) -> Result<()> {
        let body = serde_json::json!({ "active": true });
        self.transport.send(Method::Put, &format!("/hooks/{}", segment(webhook_id)?), Some(&body)).map(|_| ())
    }
}
