//! Frame.io V4's custom-action delivery:
//! `{"account_id", "action_id", "interaction_id", "workspace": {"id"}, "project": {"id"},
//! "resource": {"id", "type": "file" | "folder" | "version_stack"}, "user": {"id"},
//! "type", "data"?}`.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::frameio::event::{IdRef, WireResource, checked_id, checked_ref, decode, form};
use crate::frameio::model::{ActionEvent, Change, ChangeKind, Generation, ItemKind, Resource};

#[derive(Deserialize)]
struct WireEvent {
    account_id: Option<String>,
    action_id: String,
    interaction_id: String,
    workspace: Option<IdRef>,
    project: Option<IdRef>,
    resource: Option<WireResource>,
    user: Option<IdRef>,
    data: Option<Map<String, Value>>,
}

/// Decodes a V4 delivery; the error is the 400 reason.
pub fn parse_action(body: &[u8]) -> Result<ActionEvent, String> {
    let (wire, object): (WireEvent, Map<String, Value>) = decode(body)?;
    let (Some(account_id), Some(workspace)) = (wire.account_id, wire.workspace) else {
        let legacy = object.contains_key("team");
        return Err(if legacy {
            "this is a Legacy API (v2) event, but the binding speaks Frame.io V4".into()
        } else {
            "a Frame.io V4 event names its account_id and workspace".into()
        });
    };
    let resource = match wire.resource {
        None => None,
        Some(r) => Some(Resource { id: checked_id("resource.id", r.id)?, kind: Some(ItemKind::from_wire(&r.kind)) }),
    };
    Ok(ActionEvent {
        generation: Generation::V4,
        account_id: Some(checked_id("account_id", account_id)?),
        action_id: checked_id("action_id", wire.action_id)?,
        interaction_id: checked_id("interaction_id", wire.interaction_id)?,
        workspace_id: Some(checked_id("workspace.id", workspace.id)?),
        project_id: checked_ref("project.id", wire.project)?,
        resource,
        user_id: checked_ref("user.id", wire.user)?,
        form: form(wire.data)?,
    })
}

/// A V4 webhook delivery: `{"type", "resource": {"type", "id"}, "account": {"id"},
/// "workspace": {"id"}, "project": {"id"}, "user": {"id"}}`.
#[derive(Deserialize)]
struct WireChange {
    #[serde(rename = "type")]
    event: String,
    resource: WireResource,
    account: Option<IdRef>,
    workspace: Option<IdRef>,
    user: Option<IdRef>,
}

/// Decodes a V4 webhook delivery; the error is the 400 reason.
pub fn parse_change(body: &[u8]) -> Result<Change, String> {
    let (wire, object): (WireChange, Map<String, Value>) = decode(body)?;
    let (Some(account), Some(workspace)) = (wire.account, wire.workspace) else {
        return Err(if object.contains_key("team") {
            "this is a Legacy API (v2) event, but the subscription speaks Frame.io V4".into()
        } else {
            "a Frame.io V4 event names its account and workspace".into()
        });
    };
    let kind = match wire.event.as_str() {
        "comment.created" | "comment.updated" | "comment.completed" | "comment.uncompleted" => ChangeKind::Comment,
        "comment.deleted" => ChangeKind::CommentDeleted,
        event if super::reviews::STATUS_EVENTS.contains(&event) => ChangeKind::Status,
        "file.ready" | "file.upload.completed" => ChangeKind::FileReady,
        "project.updated" => ChangeKind::ProjectUpdated,
        other => ChangeKind::Other(other.to_string()),
    };
    Ok(Change {
        kind,
        resource_id: checked_id("resource.id", wire.resource.id)?,
        account_id: Some(checked_id("account.id", account.id)?),
        workspace_id: Some(checked_id("workspace.id", workspace.id)?),
        user_id: checked_ref("user.id", wire.user)?,
    })
}
