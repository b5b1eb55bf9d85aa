//! Frame.io objects as the flows see them, the same on every API generation.
//!
//! Names follow V4: a *workspace* is what the Legacy API calls a team, a *file* is
//! a v2 asset of type `file`. Every object is addressed by its account and its id,
//! because V4 scopes every path by account (v2 ignores the account).

use serde::{Deserialize, Serialize};

/// Which Frame.io API a provider, a connection and a binding speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    /// The Legacy API (`/v2`), with Frame.io's own OAuth server.
    #[default]
    V2,
    /// Frame.io V4 (`/v4`), with Adobe IMS sign-in.
    V4,
}

impl Generation {
    /// `v2` or `v4`, as the settings form and messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            Generation::V2 => "v2",
            Generation::V4 => "v4",
        }
    }
}

/// A Frame.io user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
}

impl User {
    /// "Name <email>", or whichever of the two is known.
    pub fn display(&self) -> String {
        match (self.name.is_empty(), self.email.is_empty()) {
            (false, false) => format!("{} <{}>", self.name, self.email),
            (false, true) => self.name.clone(),
            _ => self.email.clone(),
        }
    }
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
}

/// A workspace (a team, in the Legacy API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub account_id: String,
}

/// A project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub workspace_id: String,
    pub root_folder_id: String,
}

/// What kind of thing sits in a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    #[default]
    File,
    Folder,
    VersionStack,
    /// A kind this connector does not handle (bundles, future kinds).
    Other(String),
}

impl ItemKind {
    /// The kind from the wire name both generations use.
    pub fn from_wire(kind: &str) -> ItemKind {
        match kind {
            "file" => ItemKind::File,
            "folder" => ItemKind::Folder,
            "version_stack" => ItemKind::VersionStack,
            other => ItemKind::Other(other.to_string()),
        }
    }

    /// The wire name both generations use.
    pub fn wire_name(&self) -> &str {
        match self {
            ItemKind::File => "file",
            ItemKind::Folder => "folder",
            ItemKind::VersionStack => "version_stack",
            ItemKind::Other(name) => name,
        }
    }
}

/// One child of a folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub kind: ItemKind,
    pub parent_id: String,
}

/// One page of a list, and where the next one starts. The cursor is opaque: a page
/// number on v2, V4's `after` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Whether the original of a file can be downloaded, and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Original {
    /// A download URL (presigned; it expires).
    Ready { url: String },
    /// Still uploading to Frame.io.
    #[default]
    Uploading,
    /// The connection's user may not download originals in this project.
    Forbidden,
    /// Frame.io offers no original (a folder, a watermarked asset).
    Unavailable,
}

/// A file, with what an import needs and the metadata it carries into the DAM.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub id: String,
    pub name: String,
    pub kind: ItemKind,
    pub account_id: String,
    pub parent_id: Option<String>,
    /// Set when the file is a version in a version stack.
    pub version_stack_id: Option<String>,
    pub project_id: String,
    pub project_name: String,
    pub workspace_id: String,
    pub size: Option<u64>,
    pub media_type: Option<String>,
    pub original: Original,
    /// xxHash64 of the original, 16 lowercase hex digits, when Frame.io tells it.
    pub xxhash64: Option<String>,
    /// Where a person sees the file in Frame.io's web app.
    pub view_url: Option<String>,
    pub fps: Option<f64>,
    pub duration: Option<f64>,
    pub frames: Option<u64>,
    /// Review status (v2's label).
    pub status: Option<String>,
    pub uploader: Option<User>,
}

/// A version stack: its versions, newest first, and the head (the current version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionStack {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub head_file_id: String,
    pub version_ids: Vec<String>,
}

/// A custom action as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub id: String,
    pub name: String,
}

/// A custom action to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAction {
    pub name: String,
    pub description: String,
    pub event: String,
    pub url: String,
}

/// A newly created custom action and its signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedAction {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for CreatedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedAction").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// What a custom action was run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: String,
    /// `None` when the event does not say (the Legacy API calls everything an asset).
    pub kind: Option<ItemKind>,
}

/// A value a form field sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormValue {
    Text(String),
    Bool(bool),
}

/// A custom-action delivery, verified and decoded: a click, or with `form` its
/// form's submission. Generation-specific fields are `None` where a generation does
/// not send them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionEvent {
    pub generation: Generation,
    pub action_id: String,
    pub interaction_id: String,
    /// The account (V4 only).
    pub account_id: Option<String>,
    /// The workspace (V4) or team (v2).
    pub workspace_id: Option<String>,
    pub project_id: Option<String>,
    pub resource: Option<Resource>,
    /// The Frame.io user who ran the action.
    pub user_id: Option<String>,
    /// The submitted form, field name to value; `None` for a click.
    pub form: Option<std::collections::BTreeMap<String, FormValue>>,
}

/// A comment on a file, or a reply to one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub file_id: String,
    /// The comment it replies to.
    pub parent_id: Option<String>,
    pub text: String,
    pub author: User,
    /// Unix seconds.
    pub created_at: u64,
    pub updated_at: u64,
    /// The frame it is anchored to, counted from 0 on both generations (V4 counts
    /// from 1 on the wire).
    pub frame: Option<u64>,
    pub duration_frames: Option<u64>,
    pub page: Option<u32>,
    /// Frame.io's annotation JSON, as it came.
    pub annotation: Option<String>,
    pub completed: bool,
}

/// A comment to post, or the new text of one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewComment {
    pub text: String,
    /// Counted from 0.
    pub frame: Option<u64>,
    /// Reply to this comment (where the API allows replies).
    pub parent_id: Option<String>,
}

/// A file's review status: v2's label, V4's status field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReviewStatus {
    #[default]
    None,
    InProgress,
    NeedsReview,
    Approved,
}

impl ReviewStatus {
    /// The DAM's spelling (`frameio.status`, `dam-events.status-change`).
    pub fn name(self) -> &'static str {
        match self {
            ReviewStatus::None => "none",
            ReviewStatus::InProgress => "in-progress",
            ReviewStatus::NeedsReview => "needs-review",
            ReviewStatus::Approved => "approved",
        }
    }

    /// From the DAM's spelling.
    pub fn from_name(name: &str) -> Option<ReviewStatus> {
        [ReviewStatus::None, ReviewStatus::InProgress, ReviewStatus::NeedsReview, ReviewStatus::Approved]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A webhook subscription just made, with its signing secret (only returned here).
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedWebhook {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// What a webhook delivery says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A comment was made, edited, completed or reopened.
    Comment,
    /// A comment was deleted (it can no longer be read).
    CommentDeleted,
    /// A file's review status changed.
    Status,
    /// A file's upload finished.
    FileReady,
    /// A project was changed (renamed, for one); the resource is the project.
    ProjectUpdated,
    /// An event the connector does not follow.
    Other(String),
}

/// A webhook delivery, verified and decoded: ids only, as Frame.io sends them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// The comment or file the event is about.
    pub resource_id: String,
    pub account_id: Option<String>,
    pub workspace_id: Option<String>,
    pub user_id: Option<String>,
}

/// A file to create for an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUpload {
    pub name: String,
    pub size: u64,
    pub media_type: String,
}

/// One presigned part URL and how many bytes go to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    pub url: String,
    pub size: u64,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("size", &self.size).finish_non_exhaustive()
    }
}

/// A file made for an upload, and where its bytes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub file_id: String,
    pub parts: Vec<Part>,
}

/// A review link (v2) or share (V4) to make.
#[derive(Clone, PartialEq, Eq)]
pub struct NewShare {
    pub name: String,
    pub description: String,
    pub asset_ids: Vec<String>,
    pub expires_at: Option<u64>,
    pub password: Option<String>,
    pub allow_download: bool,
    pub watermark: bool,
    /// Reviewers' emails, for APIs that invite them.
    pub reviewers: Vec<String>,
}

impl std::fmt::Debug for NewShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewShare").field("name", &self.name).field("asset_ids", &self.asset_ids).finish_non_exhaustive()
    }
}

/// A review link or share made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub url: String,
    /// Whether Frame.io invited the reviewers itself.
    pub invited: bool,
}
