//! The Legacy API's custom-action delivery:
//! `{"action_id", "interaction_id", "resource": {"id", "type": "asset"}, "team": {"id"},
//! "project": {"id"}, "user": {"id"}, "type", "data"?}`.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::frameio::event::{IdRef, WireResource, checked_id, checked_ref, decode, form};
use crate::frameio::model::{ActionEvent, Change, ChangeKind, Generation, ItemKind, Resource};

#[derive(Deserialize)]
struct WireEvent {
    action_id: String,
    interaction_id: String,
    resource: Option<WireResource>,
    team: Option<IdRef>,
    project: Option<IdRef>,
    user: Option<IdRef>,
    data: Option<Map<String, Value>>,
}

/// Decodes a v2 delivery; the error is the 400 reason.
pub fn parse_action(body: &[u8]) -> Result<ActionEvent, String> {
    let (wire, object): (WireEvent, _) = decode(body)?;
    if object.contains_key("account_id") || object.contains_key("workspace") {
        return Err("this is a Frame.io V4 event, but the binding speaks the Legacy API (v2)".into());
    }
    let resource = match wire.resource {
        None => None,
        Some(r) => {
            // v2 calls files, folders and stacks alike "asset": the kind is read later.
            let kind = (r.kind != "asset").then(|| ItemKind::from_wire(&r.kind));
            Some(Resource { id: checked_id("resource.id", r.id)?, kind })
        }
    };
    Ok(ActionEvent {
        generation: Generation::V2,
        action_id: checked_id("action_id", wire.action_id)?,
        interaction_id: checked_id("interaction_id", wire.interaction_id)?,
        account_id: None,
        workspace_id: checked_ref("team.id", wire.team)?,
        project_id: checked_ref("project.id", wire.project)?,
        resource,
        user_id: checked_ref("user.id", wire.user)?,
        form: form(wire.data)?,
    })
}

/// A Legacy API webhook delivery: `{"type", "resource": {"type", "id"}, "team": {"id"},
/// "project": {"id"}, "user": {"id"}}`.
#[derive(Deserialize)]
struct WireChange {
    #[serde(rename = "type")]
    event: String,
    resource: WireResource,
    team: Option<IdRef>,
    user: Option<IdRef>,
}

/// Decodes a v2 webhook delivery; the error is the 400 reason.
pub fn parse_change(body: &[u8]) -> Result<Change, String> {
    let (wire, object): (WireChange, Map<String, Value>) = decode(body)?;
    if object.contains_key("account") || object.contains_key("workspace") {
        return Err("this is a Frame.io V4 event, but the subscription speaks the Legacy API (v2)".into());
    }
    let kind = match wire.event.as_str() {
        "comment.created" | "comment.updated" | "comment.completed" | "comment.uncompleted" => ChangeKind::Comment,
        "comment.deleted" => ChangeKind::CommentDeleted,
        "asset.label.updated" => ChangeKind::Status,
        "asset.ready" => ChangeKind::FileReady,
        "project.updated" => ChangeKind::ProjectUpdated,
        other => ChangeKind::Other(other.to_string()),
    };
    Ok(Change {
        kind,
        resource_id: checked_id("resource.id", wire.resource.id)?,
        account_id: None,
        workspace_id: checked_ref("team.id", wire.team)?,
        user_id: checked_ref("user.id", wire.user)?,
    })
}
