//! The Legacy API's JSON, shaped like the official `frameioclient` models. Every
//! field the connector does not strictly need is optional, so a response that
//! omits one still decodes.

use serde::Deserialize;

use crate::frameio::model::{Account, Action, Comment, File, Item, ItemKind, Original, Project, User, Workspace};
use crate::frameio::time::unix_seconds;

#[derive(Deserialize)]
pub(super) struct WireUser {
    pub(super) id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl From<WireUser> for User {
    fn from(u: WireUser) -> User {
        User { id: u.id, name: u.name.unwrap_or_default(), email: u.email.unwrap_or_default() }
    }
}

#[derive(Deserialize)]
struct WireOwner {
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireAccount {
    id: String,
    display_name: Option<String>,
    owner: Option<WireOwner>,
}

impl From<WireAccount> for Account {
    /// The name to show follows Frame.io's guide: display name, else the owner's
    /// name, else the owner's email.
    fn from(a: WireAccount) -> Account {
        let owner = a.owner.unwrap_or(WireOwner { name: None, email: None });
        let name = a
            .display_name
            .filter(|n| !n.is_empty())
            .or(owner.name.map(|n| format!("{n}'s Account")))
            .or(owner.email.map(|e| format!("{e}'s Account")))
            .unwrap_or_else(|| a.id.clone());
        Account { id: a.id, name }
    }
}

#[derive(Deserialize)]
pub(super) struct WireTeam {
    id: String,
    name: String,
    account_id: Option<String>,
}

impl From<WireTeam> for Workspace {
    fn from(t: WireTeam) -> Workspace {
        Workspace { id: t.id, name: t.name, account_id: t.account_id.unwrap_or_default() }
    }
}

#[derive(Deserialize)]
struct WireTeamRef {
    account_id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireProject {
    id: String,
    name: String,
    team_id: String,
    root_asset_id: String,
    team: Option<WireTeamRef>,
}

impl From<WireProject> for Project {
    fn from(p: WireProject) -> Project {
        Project {
            id: p.id,
            name: p.name,
            account_id: p.team.and_then(|t| t.account_id).unwrap_or_default(),
            workspace_id: p.team_id,
            root_folder_id: p.root_asset_id,
        }
    }
}

/// An entry of a children listing, or any asset read only for its kind.
#[derive(Deserialize)]
pub(super) struct WireChild {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) parent_id: Option<String>,
}

impl From<WireChild> for Item {
    fn from(c: WireChild) -> Item {
        Item { kind: ItemKind::from_wire(&c.kind), id: c.id, name: c.name, parent_id: c.parent_id.unwrap_or_default() }
    }
}

#[derive(Deserialize)]
struct WireChecksums {
    xx_hash: Option<String>,
}

#[derive(Deserialize)]
struct WireProjectRef {
    name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireAsset {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    pub(super) parent_id: Option<String>,
    project_id: Option<String>,
    team_id: Option<String>,
    account_id: Option<String>,
    filesize: Option<u64>,
    filetype: Option<String>,
    original: Option<String>,
    checksums: Option<WireChecksums>,
    upload_completed_at: Option<String>,
    fps: Option<f64>,
    duration: Option<f64>,
    frames: Option<u64>,
    label: Option<String>,
    creator: Option<WireUser>,
    project: Option<WireProjectRef>,
}

impl WireAsset {
    /// The neutral file; `web_url` builds the link to Frame.io's player.
    pub(super) fn into_file(self, web_url: &str) -> File {
        let original = match (self.upload_completed_at.is_some(), self.original) {
            (false, _) => Original::Uploading,
            (true, Some(url)) => Original::Ready { url },
            (true, None) => Original::Unavailable,
        };
        File {
            kind: ItemKind::from_wire(&self.kind),
            original,
            xxhash64: self.checksums.and_then(|c| c.xx_hash).map(|h| h.to_ascii_lowercase()),
            project_name: self.project.and_then(|p| p.name).unwrap_or_default(),
            uploader: self.creator.map(User::from),
            view_url: Some(format!("{web_url}/player/{}", self.id)),
            id: self.id,
            name: self.name,
            account_id: self.account_id.unwrap_or_default(),
            parent_id: self.parent_id,
            version_stack_id: None,
            project_id: self.project_id.unwrap_or_default(),
            workspace_id: self.team_id.unwrap_or_default(),
            size: self.filesize,
            media_type: self.filetype,
            fps: self.fps,
            duration: self.duration,
            frames: self.frames,
            status: self.label,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireAction {
    id: String,
    name: String,
}

impl From<WireAction> for Action {
    fn from(a: WireAction) -> Action {
        Action { id: a.id, name: a.name }
    }
}

/// The create response nests the signing secret in `webhook` (the v2 `Action`
/// schema has no top-level secret); a top-level `secret` is accepted too.
#[derive(Deserialize)]
pub(super) struct WireCreatedAction {
    pub(super) id: String,
    secret: Option<String>,
    webhook: Option<WireActionWebhook>,
}

impl WireCreatedAction {
    pub(super) fn secret(self) -> Option<String> {
        self.webhook.and_then(|w| w.secret).or(self.secret).filter(|s| !s.is_empty())
    }
}

#[derive(Deserialize)]
struct WireActionWebhook {
    secret: Option<String>,
}

/// A team membership, with the member embedded.
#[derive(Deserialize)]
pub(super) struct WireMember {
    user_id: Option<String>,
    user: Option<WireUser>,
}

impl WireMember {
    /// The member as a user, under the membership's user id when the embedded user lacks one.
    pub(super) fn into_user(self) -> Option<User> {
        let mut user = User::from(self.user?);
        if user.id.is_empty() {
            user.id = self.user_id.unwrap_or_default();
        }
        Some(user)
    }
}

/// A comment, with its replies nested when the listing includes them.
#[derive(Deserialize)]
pub(super) struct WireComment {
    id: String,
    asset_id: Option<String>,
    parent_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    /// Frames from 0.
    timestamp: Option<f64>,
    duration: Option<f64>,
    page: Option<u32>,
    annotation: Option<String>,
    owner: Option<WireUser>,
    completed: Option<bool>,
    completed_at: Option<String>,
    inserted_at: Option<String>,
    updated_at: Option<String>,
    #[serde(default)]
    pub(super) replies: Vec<WireComment>,
}

impl WireComment {
    /// The neutral comment, on `file_id` when the answer does not say.
    pub(super) fn into_comment(self, file_id: &str) -> Comment {
        let created_at = self.inserted_at.as_deref().and_then(unix_seconds).unwrap_or(0);
        Comment {
            file_id: self.asset_id.unwrap_or_else(|| file_id.to_string()),
            parent_id: self.parent_id,
            text: self.text.unwrap_or_default(),
            author: self.owner.map(User::from).unwrap_or_default(),
            created_at,
            updated_at: self.updated_at.as_deref().and_then(unix_seconds).unwrap_or(created_at),
            frame: self.timestamp.filter(|t| *t >= 0.0).map(|t| t.round() as u64),
            duration_frames: self.duration.filter(|d| *d > 0.0).map(|d| d.round() as u64),
            page: self.page,
            annotation: self.annotation.filter(|a| !a.is_empty()),
            completed: self.completed.unwrap_or(false) || self.completed_at.is_some(),
            id: self.id,
        }
    }
}

/// A webhook as created: the secret is only in this answer.
#[derive(Deserialize)]
pub(super) struct WireCreatedHook {
    pub(super) id: String,
    pub(super) secret: Option<String>,
}

/// An asset read for its label only.
#[derive(Deserialize)]
pub(super) struct WireLabel {
    pub(super) label: Option<String>,
}

/// A webhook read for its state.
#[derive(Deserialize)]
pub(super) struct WireHookState {
    pub(super) active: Option<bool>,
    pub(super) deleted_at: Option<String>,
}
