//! Frame.io objects as the connector uses them, independent of API generation.

/// A Frame.io user.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A named object in a browse listing (WIT `browse.entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub parent_id: String,
    pub root_folder_id: String,
}

/// A project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub team_id: String,
    pub root_folder_id: String,
}

impl From<Project> for Entry {
    fn from(p: Project) -> Entry {
        Entry { id: p.id, name: p.name, parent_id: p.team_id, root_folder_id: p.root_folder_id }
    }
}

/// What kind of asset something is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AssetKind {
    #[default]
    File,
    Folder,
    VersionStack,
    /// A kind this connector does not handle (bundles, future kinds).
    Other(String),
}

/// An asset, with what the import needs and the metadata it carries into the DAM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Asset {
    pub id: String,
    pub name: String,
    pub kind: AssetKind,
    pub parent_id: Option<String>,
    /// Set when the asset's parent is a version stack.
    pub version_stack_id: Option<String>,
    pub project_id: String,
    pub project_name: String,
    pub team_id: String,
    pub filesize: Option<u64>,
    pub filetype: Option<String>,
    /// Download URL of the original; absent for folders, incomplete uploads and
    /// watermarked assets.
    pub original_url: Option<String>,
    /// xxHash64 of the original, 16 lowercase hex digits, once Frame.io computed it.
    pub xxhash64: Option<String>,
    pub upload_complete: bool,
    pub fps: Option<f64>,
    pub duration: Option<f64>,
    pub frames: Option<u64>,
    pub label: Option<String>,
    pub uploader: Option<User>,
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
