//! Comments, review status and webhooks on Frame.io V4.
//!
//! V4 keeps a file's review status in its metadata: a select field named "Status",
//! whose options are shown as "In Progress", "Needs Review" and "Approved". It is
//! read from the file's metadata and written with the project's bulk metadata update.
//! The 4.0.0 API takes no replies when creating a comment: a reply is posted as a
//! comment of its own.

use serde_json::{Value, json};

use crate::error::{Error, FrameioError, Result};
use crate::frameio::model::{Comment, CreatedWebhook, NewComment, ReviewStatus};
use crate::frameio::transport::{decode, with_query};
use crate::frameio::{Reviews, Webhooks, collect_all, segment};
use crate::host::Method;

use super::V4;
use super::wire::{Data, WireComment, WireCreatedWebhook, WireFileProject, WireMetadata, WireMetadataField, WireWebhookState};

/// The events a connector's webhook follows on V4 that are about review status.
pub const STATUS_EVENTS: [&str; 1] = ["metadata.value.updated"];

/// Every event a connector's webhook follows on V4.
pub const EVENTS: [&str; 9] = [
    "comment.created",
    "comment.updated",
    "comment.deleted",
    "comment.completed",
    "comment.uncompleted",
    "metadata.value.updated",
    "file.ready",
    "file.upload.completed",
    "project.updated",
];

/// The metadata field that holds the review status.
const STATUS_FIELD: &str = "status";

fn display_name(status: ReviewStatus) -> Option<&'static str> {
    match status {
        ReviewStatus::None => None,
        ReviewStatus::InProgress => Some("In Progress"),
        ReviewStatus::NeedsReview => Some("Needs Review"),
        ReviewStatus::Approved => Some("Approved"),
    }
}

fn status_named(name: &str) -> ReviewStatus {
    [ReviewStatus::InProgress, ReviewStatus::NeedsReview, ReviewStatus::Approved]
        .into_iter()
        .find(|s| display_name(*s).is_some_and(|d| d.eq_ignore_ascii_case(name.trim())))
        .unwrap_or(ReviewStatus::None)
}

/// The request body of a comment: V4 counts frames from 1.
fn comment_body(comment: &NewComment) -> Value {
    let mut data = json!({ "text": comment.text });
    if let Some(frame) = comment.frame {
        data["timestamp"] = (frame + 1).into();
    }
    json!({ "data": data })
}

/// Comments with their replies flattened after them.
fn flatten(comments: Vec<WireComment>, file_id: &str, out: &mut Vec<Comment>) {
    for mut wire in comments {
        let replies = wire.replies.take().unwrap_or_default();
        let comment = wire.into_comment(file_id);
        let parent = comment.id.clone();
        out.push(comment);
        let mut nested = Vec::new();
        flatten(replies, file_id, &mut nested);
        out.extend(nested.into_iter().map(|r| Comment { parent_id: r.parent_id.or(Some(parent.clone())), ..r }));
    }
}

impl V4<'_> {
    /// The file's status field, with its options.
    fn status_field(&self, account_id: &str, file_id: &str) -> Result<Option<WireMetadataField>> {
        let path = Self::in_account(account_id, &format!("/files/{}/metadata", segment(file_id)?))?;
        let metadata: Data<WireMetadata> = self.transport.get(&with_query(&path, &[("show_null", "true")]))?;
        Ok(metadata.data.metadata.into_iter().find(|f| f.field_type == "select" && f.field_definition_name.eq_ignore_ascii_case(STATUS_FIELD)))
    }
}

impl Reviews for V4<'_> {
    fn comments(&self, account_id: &str, file_id: &str) -> Result<Vec<Comment>> {
        let path = Self::in_account(account_id, &format!("/files/{}/comments", segment(file_id)?))?;
        let listed = collect_all(|cursor| self.page(&path, &[("include", "owner,replies")], cursor, |c: WireComment| c))?;
        let mut comments = Vec::new();
        flatten(listed, file_id, &mut comments);
        Ok(comments)
    }

    fn comment(&self, account_id: &str, comment_id: &str) -> Result<Comment> {
        let path = Self::in_account(account_id, &format!("/comments/{}", segment(comment_id)?))?;
        Ok(self.transport.get::<Data<WireComment>>(&with_query(&path, &[("include", "owner")]))?.data.into_comment(""))
    }

    fn create_comment(&self, account_id: &str, file_id: &str, comment: &NewComment) -> Result<Comment> {
        let path = Self::in_account(account_id, &format!("/files/{}/comments", segment(file_id)?))?;
        let resp = self.transport.send(Method::Post, &path, Some(&comment_body(comment)))?;
        Ok(decode::<Data<WireComment>>(&resp)?.data.into_comment(file_id))
    }

    fn update_comment(&self, account_id: &str, comment_id: &str, comment: &NewComment) -> Result<Comment> {
        let path = Self::in_account(account_id, &format!("/comments/{}", segment(comment_id)?))?;
        let resp = self.transport.send(Method::Patch, &path, Some(&comment_body(comment)))?;
        Ok(decode::<Data<WireComment>>(&resp)?.data.into_comment(""))
    }

    fn delete_comment(&self, account_id: &str, comment_id: &str) -> Result<()> {
        let path = Self::in_account(account_id, &format!("/comments/{}", segment(comment_id)?))?;
        match self.transport.send(Method::Delete, &path, None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn review_status(&self, account_id: &str, file_id: &str) -> Result<ReviewStatus> {
        let chosen = self.status_field(account_id, file_id)?.and_then(|field| field.value);
        let name = chosen.as_ref().and_then(|v| v.as_array()?.first()?.get("display_name")?.as_str().map(str::to_string));
        Ok(name.as_deref().map_or(ReviewStatus::None, status_named))
    }

    fn set_review_status(&self, account_id: &str, file_id: &str, status: ReviewStatus) -> Result<()> {
        let field = self.status_field(account_id, file_id)?.ok_or_else(|| {
            Error::Frameio(FrameioError::new(404, "this account has no Status metadata field to set"))
        })?;
        let option_ids: Vec<String> = match display_name(status) {
            None => Vec::new(),
            Some(name) => {
                let option = field.field_options.iter().flatten().find(|o| o.display_name.eq_ignore_ascii_case(name));
                let id = option.and_then(|o| o.id.clone()).ok_or_else(|| {
                    Error::Frameio(FrameioError::new(404, format!("the Status field has no option \"{name}\"")))
                })?;
                vec![id]
            }
        };
        let file_path = Self::in_account(account_id, &format!("/files/{}", segment(file_id)?))?;
        let project = self.transport.get::<Data<WireFileProject>>(&file_path)?.data.project_id;
        let path = Self::in_account(account_id, &format!("/projects/{}/metadata/values", segment(&project)?))?;
        let body = json!({ "data": {
            "file_ids": [file_id],
            "values": [{ "field_definition_id": field.field_definition_id, "value": option_ids }],
        }});
        self.transport.send(Method::Patch, &path, Some(&body)).map(|_| ())
    }
}

impl Webhooks for V4<'_> {
    fn create_webhook(&self, account_id: &str, workspace_id: &str, name: &str, url: &str) -> Result<CreatedWebhook> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/webhooks", segment(workspace_id)?))?;
        let body = json!({ "data": { "name": name, "url": url, "events": EVENTS } });
        let resp = self.transport.send(Method::Post, &path, Some(&body))?;
        let created: Data<WireCreatedWebhook> = decode(&resp)?;
        let id = created.data.id;
        match created.data.secret.filter(|s| !s.is_empty()) {
            Some(secret) => Ok(CreatedWebhook { id, secret }),
            None => {
                // Without its secret the deliveries cannot be verified: remove it.
                let _ = self.delete_webhook(account_id, &id);
                Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io created the webhook without a signing secret")))
            }
        }
    }

    fn webhook_active(&self, account_id: &str, webhook_id: &str) -> Result<Option<bool>> {
        let path = Self::in_account(account_id, &format!("/webhooks/{}", segment(webhook_id)?))?;
        match self.transport.get::<Data<WireWebhookState>>(&path) {
            Ok(hook) => Ok(Some(hook.data.active.unwrap_or(true))),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn activate_webhook(&self, account_id: &str, webhook_id: &str) -> Result<()> {
        let path = Self::in_account(account_id, &format!("/webhooks/{}", segment(webhook_id)?))?;
        self.transport.send(Method::Patch, &path, Some(&json!({ "data": { "active": true } }))).map(|_| ())
    }

    /// Show, update and delete are scoped by account alone.
    fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> Result<()> {
        let path = Self::in_account(account_id, &format!("/webhooks/{}", segment(webhook_id)?))?;
        match self.transport.send(Method::Delete, &path, None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
