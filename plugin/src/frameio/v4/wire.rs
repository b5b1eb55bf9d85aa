//! Frame.io V4's JSON, shaped like the official `frameio` 4.0.0 SDK models. Bodies
//! are wrapped in `{"data": ...}`; lists add `{"links": {"next"}}`.

use serde::Deserialize;

use crate::frameio::model::{Account, Action, Comment, File, Item, ItemKind, Original, Project, User, Workspace};
use crate::frameio::time::unix_seconds;

/// `{"data": T}`.
#[derive(Deserialize)]
pub(super) struct Data<T> {
    pub(super) data: T,
}

/// `{"data": [T], "links": {"next": "<path>?after=<cursor>"}}`.
#[derive(Deserialize)]
pub(super) struct List<T> {
    pub(super) data: Vec<T>,
    #[serde(default)]
    pub(super) links: Option<Links>,
}

#[derive(Deserialize)]
pub(super) struct Links {
    pub(super) next: Option<String>,
}

/// The `Profile` of `GET /v4/me`.
#[derive(Deserialize)]
pub(super) struct WireProfile {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl From<WireProfile> for User {
    fn from(p: WireProfile) -> User {
        User { id: p.id, name: p.name.unwrap_or_default(), email: p.email.unwrap_or_default() }
    }
}

/// A workspace member and their role (`WorkspaceUserRole`).
#[derive(Deserialize)]
pub(super) struct WireUserRole {
    user: WireUser,
}

impl From<WireUserRole> for User {
    fn from(m: WireUserRole) -> User {
        m.user.into()
    }
}

#[derive(Deserialize)]
pub(super) struct WireAccount {
    id: String,
    display_name: Option<String>,
}

impl From<WireAccount> for Account {
    fn from(a: WireAccount) -> Account {
        let name = a.display_name.filter(|n| !n.is_empty()).unwrap_or_else(|| a.id.clone());
        Account { id: a.id, name }
    }
}

#[derive(Deserialize)]
pub(super) struct WireWorkspace {
    id: String,
    name: String,
    account_id: String,
}

impl From<WireWorkspace> for Workspace {
    fn from(w: WireWorkspace) -> Workspace {
        Workspace { id: w.id, name: w.name, account_id: w.account_id }
    }
}

#[derive(Deserialize)]
pub(super) struct WireProject {
    id: String,
    name: String,
    root_folder_id: String,
    workspace_id: String,
}

impl WireProject {
    /// The neutral project; V4's project carries no account id, the path had it.
    pub(super) fn into_project(self, account_id: &str) -> Project {
        Project {
            id: self.id,
            name: self.name,
            account_id: account_id.to_string(),
            workspace_id: self.workspace_id,
            root_folder_id: self.root_folder_id,
        }
    }
}

/// A file, folder or version stack in a listing (`AssetWithIncludes`).
#[derive(Deserialize)]
pub(super) struct WireAsset {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    parent_id: Option<String>,
}

impl From<WireAsset> for Item {
    fn from(a: WireAsset) -> Item {
        Item { kind: ItemKind::from_wire(&a.kind), id: a.id, name: a.name, parent_id: a.parent_id.unwrap_or_default() }
    }
}

#[derive(Deserialize)]
struct WireMediaLinks {
    original: Option<WireMediaLink>,
}

#[derive(Deserialize)]
struct WireMediaLink {
    download_url: Option<String>,
}

/// V4's `User`: the id is null for people invited who have no Frame.io account yet.
#[derive(Deserialize)]
struct WireUser {
    id: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

impl From<WireUser> for User {
    fn from(u: WireUser) -> User {
        User { id: u.id.unwrap_or_default(), name: u.name.unwrap_or_default(), email: u.email.unwrap_or_default() }
    }
}

/// `FileWithIncludes`.
#[derive(Deserialize)]
pub(super) struct WireFile {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    pub(super) parent_id: Option<String>,
    project_id: String,
    file_size: Option<u64>,
    media_type: Option<String>,
    /// `created` until the bytes are uploaded, then `uploaded`, then `transcoded`.
    status: Option<String>,
    view_url: Option<String>,
    media_links: Option<WireMediaLinks>,
    creator: Option<WireUser>,
}

impl WireFile {
    /// The neutral file. `download_allowed` is false when Frame.io refused the
    /// media links to this user.
    pub(super) fn into_file(self, account_id: &str, download_allowed: bool) -> File {
        let uploaded = matches!(self.status.as_deref(), Some("uploaded" | "transcoded"));
        let url = self.media_links.and_then(|l| l.original).and_then(|o| o.download_url);
        let original = match (uploaded, download_allowed, url) {
            (false, _, _) => Original::Uploading,
            (true, false, _) => Original::Forbidden,
            (true, true, Some(url)) => Original::Ready { url },
            (true, true, None) => Original::Unavailable,
        };
        let uploader = self.creator.map(User::from);
        File {
            kind: ItemKind::from_wire(&self.kind),
            original,
            uploader,
            id: self.id,
            name: self.name,
            account_id: account_id.to_string(),
            parent_id: self.parent_id,
            project_id: self.project_id,
            size: self.file_size,
            media_type: self.media_type,
            view_url: self.view_url,
            ..File::default()
        }
    }
}

/// `VersionStackWithIncludes`: the head version is embedded.
#[derive(Deserialize)]
pub(super) struct WireVersionStack {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) project_id: String,
    pub(super) head_version: Option<WireAsset>,
}

impl WireVersionStack {
    pub(super) fn head_id(&self) -> Option<&str> {
        self.head_version.as_ref().map(|h| h.id.as_str())
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

/// `ActionCreateResponseData`: the action and, only here, its secret.
#[derive(Deserialize)]
pub(super) struct WireCreatedAction {
    pub(super) id: String,
    pub(super) secret: Option<String>,
}

/// `CommentWithIncludes`, replies nested with `include=replies`. V4 counts frames from
/// 1, and its `timestamp` may also be a timecode string (not used by the connector).
#[derive(Deserialize)]
pub(super) struct WireComment {
    id: String,
    file_id: Option<String>,
    parent_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    timestamp: Option<serde_json::Value>,
    duration: Option<u64>,
    page: Option<u32>,
    annotation: Option<String>,
    owner: Option<WireUser>,
    completed_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    #[serde(default)]
    pub(super) replies: Option<Vec<WireComment>>,
}

impl WireComment {
    /// The neutral comment, frames from 0, on `file_id` when the answer does not say.
    pub(super) fn into_comment(self, file_id: &str) -> Comment {
        let created_at = self.created_at.as_deref().and_then(unix_seconds).unwrap_or(0);
        let frame = self.timestamp.as_ref().and_then(serde_json::Value::as_u64).filter(|f| *f >= 1).map(|f| f - 1);
        Comment {
            file_id: self.file_id.unwrap_or_else(|| file_id.to_string()),
            parent_id: self.parent_id,
            text: self.text.unwrap_or_default(),
            author: self.owner.map(User::from).unwrap_or_default(),
            created_at,
            updated_at: self.updated_at.as_deref().and_then(unix_seconds).unwrap_or(created_at),
            frame,
            duration_frames: self.duration.filter(|d| *d > 0),
            page: self.page,
            annotation: self.annotation.filter(|a| !a.is_empty()),
            completed: self.completed_at.is_some(),
            id: self.id,
        }
    }
}

/// `WebhookCreateResponseData`: the webhook and, only here, its secret.
#[derive(Deserialize)]
pub(super) struct WireCreatedWebhook {
    pub(super) id: String,
    pub(super) secret: Option<String>,
}

/// `MetadataWithDefinition`: a file's metadata fields.
#[derive(Deserialize)]
pub(super) struct WireMetadata {
    #[serde(default)]
    pub(super) metadata: Vec<WireMetadataField>,
}

/// One field of a file's metadata; only select fields matter here.
#[derive(Deserialize)]
pub(super) struct WireMetadataField {
    pub(super) field_definition_id: String,
    pub(super) field_definition_name: String,
    pub(super) field_type: String,
    #[serde(default)]
    pub(super) field_options: Option<Vec<WireSelectOption>>,
    #[serde(default)]
    pub(super) value: Option<serde_json::Value>,
}

/// A select field's option.
#[derive(Deserialize)]
pub(super) struct WireSelectOption {
    pub(super) id: Option<String>,
    pub(super) display_name: String,
}

/// A file read for its project only.
#[derive(Deserialize)]
pub(super) struct WireFileProject {
    pub(super) project_id: String,
}

/// A webhook read for its state (`Webhook.active`).
#[derive(Deserialize)]
pub(super) struct WireWebhookState {
    pub(super) active: Option<bool>,
}
