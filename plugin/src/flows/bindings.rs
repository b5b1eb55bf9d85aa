//! Binding DAM folders to Frame.io projects through custom actions.
//!
//! A binding owns one custom action in the project's workspace (team, on v2). Its signing secret is
//! only ever returned when the action is created, so it is stored with the binding.
//! Unbinding deletes the action but keeps the record (marked unbound) so that a
//! late delivery can still be verified and answered "no longer bound".

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Context;
use super::sync::subscriptions;
use crate::error::{Error, Result};
use crate::frameio::model::{Generation, NewAction};
use crate::host::Host;
use crate::store;

/// Longest custom action name accepted.
const MAX_ACTION_NAME_CHARS: usize = 64;

/// What to bind (WIT `bindings.bind-request`).
#[derive(Clone, Debug)]
pub struct BindRequest {
    pub user: String,
    pub folder_id: String,
    /// The project's account; V4 needs it, v2 does not.
    pub account_id: String,
    pub project_id: String,
    pub action_name: String,
}

/// A stored binding.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    /// The API generation the action was made with; its deliveries are read so.
    /// Bindings made before V4 support have none: they are v2.
    #[serde(default)]
    pub generation: Generation,
    pub folder_id: String,
    pub folder_path: String,
    #[serde(default)]
    pub account_id: String,
    #[serde(alias = "team_id")]
    pub workspace_id: String,
    pub project_id: String,
    pub project_name: String,
    pub action_id: String,
    pub action_name: String,
    /// Secrets that sign this action's requests: more than one during a rotation.
    pub secrets: Vec<String>,
    pub user: String,
    pub created_at: u64,
    pub unbound_at: Option<u64>,
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .field("folder_id", &self.folder_id)
            .field("project_id", &self.project_id)
            .field("action_id", &self.action_id)
            .field("action_name", &self.action_name)
            .field("user", &self.user)
            .field("unbound_at", &self.unbound_at)
            .finish_non_exhaustive()
    }
}

fn binding_key(id: &str) -> String {
    format!("{}{id}", store::BINDING)
}

/// A binding id is ours: `b` and hex. Anything else is not a binding.
pub fn is_binding_id(id: &str) -> bool {
    id.len() == 25 && id.starts_with('b') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a binding, bound or not.
pub fn load(host: &dyn Host, id: &str) -> Result<Option<Binding>> {
    if !is_binding_id(id) {
        return Ok(None);
    }
    Ok(store::load(host, &binding_key(id))?.map(|s| s.value))
}

pub(crate) fn checked_action_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_ACTION_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "the custom action name must be 1 to {MAX_ACTION_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_string())
}

/// Binds a folder to a project by creating a named custom action in its workspace.
pub fn bind(ctx: &Context, req: &BindRequest) -> Result<Binding> {
    let action_name = checked_action_name(&req.action_name)?;
    if ctx.settings.api == Generation::V4 && req.account_id.is_empty() {
        return Err(Error::InvalidInput("account-id is required: Frame.io V4 finds a project within its account".into()));
    }
    let folder = ctx.host.get_folder(&req.folder_id).map_err(|_| Error::NotFound(format!("DAM folder {}", req.folder_id)))?;
    let api = ctx.api(&req.user)?;
    let project = api.project(&req.account_id, &req.project_id).map_err(|e| match e {
        Error::Frameio(f) if f.status == 404 || f.status == 403 => Error::NotFound(format!("Frame.io project {}", req.project_id)),
        other => other,
    })?;
    let account_id = if project.account_id.is_empty() { req.account_id.clone() } else { project.account_id.clone() };
    let existing = api.actions(&account_id, &project.workspace_id)?;
    if existing.iter().any(|a| a.name.trim().eq_ignore_ascii_case(&action_name)) {
        return Err(Error::Conflict(format!(
            "a custom action named \"{action_name}\" already exists in this Frame.io workspace; choose another name"
        )));
    }
    let id = format!("b{}", hex::encode(ctx.host.random_bytes(12)));
    let action = NewAction {
        name: action_name.clone(),
        description: format!("Push the asset into the DAM folder {}", folder.path),
        event: format!("dam.push.{id}"),
        url: format!("{}/actions/{id}", ctx.settings.public_url),
    };
    let created = api.create_action(&account_id, &project.workspace_id, &action)?;
    let binding = Binding {
        id,
        generation: ctx.settings.api,
        folder_id: folder.id,
        folder_path: folder.path,
        account_id,
        workspace_id: project.workspace_id,
        project_id: project.id,
        project_name: project.name,
        action_id: created.id.clone(),
        action_name,
        secrets: vec![created.secret.clone()],
        user: req.user.clone(),
        created_at: ctx.host.now(),
        unbound_at: None,
    };
    // The workspace's webhook brings comments and review status of what the binding
    // imports; without it the binding would be half made, so it is undone.
    let saved = subscriptions::ensure(ctx, api.as_ref(), &binding)
        .and_then(|_| store::save_if(ctx.host, &binding_key(&binding.id), None, &binding));
    if let Err(e) = saved {
        // Do not leave an action behind that nothing can verify.
        let _ = api.delete_action(&binding.account_id, &created.id);
        let _ = subscriptions::release(ctx, &binding);
        return Err(e);
    }
    Ok(binding)
}

/// Deletes the binding's custom action and marks it unbound. Imported documents stay.
/// When the binding's owner is no longer connected the action cannot be deleted; the
/// binding is unbound anyway and the action's clicks are answered "no longer bound".
pub fn unbind(ctx: &Context, id: &str) -> Result<()> {
    let key = binding_key(id);
    let stored = match is_binding_id(id) {
        true => store::load::<Binding>(ctx.host, &key)?,
        false => None,
    };
    let stored = stored.filter(|s| s.value.unbound_at.is_none()).ok_or_else(|| Error::NotFound(format!("binding {id}")))?;
    let binding = stored.value;
    let deleted = ctx.api(&binding.user).and_then(|api| api.delete_action(&binding.account_id, &binding.action_id));
    match deleted {
        Ok(()) => {}
        // The owner's connection is gone, so the action cannot be deleted for them.
        // Unbind all the same: the action's clicks are answered "no longer bound".
        Err(Error::NotConnected(_) | Error::ReconnectRequired(_)) => {}
        Err(e) => return Err(e),
    }
    subscriptions::release(ctx, &binding)?;
    let unbound = Binding { unbound_at: Some(ctx.host.now()), ..binding };
    store::save(ctx.host, &key, &unbound)?;
    Ok(())
}

/// All active bindings, oldest first.
pub fn list(host: &dyn Host) -> Result<Vec<Binding>> {
    let mut bindings = Vec::new();
    for key in host.storage_list(store::BINDING)? {
        if let Some(stored) = store::load::<Binding>(host, &key)?
            && stored.value.unbound_at.is_none() {
                bindings.push(stored.value);
            }
    }
    bindings.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(bindings)
}
