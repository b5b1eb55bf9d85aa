//! Frame.io, behind one interface that each API generation implements.
//!
//! The flows talk to [`FrameioApi`] and the plain model in [`model`]; `v2` speaks the
//! Legacy API. A V4 client implements the same trait with its own wire format.

pub mod model;
pub mod v2;

use crate::error::Result;
use model::{Action, Asset, CreatedAction, Entry, NewAction, Project, User};

/// Most entries any list follows pagination to, so that a huge account cannot make
/// one call run for ever.
pub const MAX_LIST_ENTRIES: usize = 5000;

/// Whether `id` is shaped like a Frame.io identifier: UUIDs, and V4's `adobe:`-prefixed
/// ids. Ids come from users and Frame.io and end up in URL paths and storage keys,
/// so anything else (separators, `.` and `..`, overlong values) is refused.
pub fn is_frameio_id(id: &str) -> bool {
    let charset = id.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    !id.is_empty() && id.len() <= 128 && charset && id != "." && id != ".."
}

/// What the connector asks of Frame.io, on behalf of one connected user.
pub trait FrameioApi {
    /// The connected user.
    fn me(&self) -> Result<User>;
    /// The user's accounts.
    fn accounts(&self) -> Result<Vec<Entry>>;
    /// The teams of an account visible to the user.
    fn teams(&self, account_id: &str) -> Result<Vec<Entry>>;
    /// The projects of a team.
    fn projects(&self, team_id: &str) -> Result<Vec<Project>>;
    /// Projects shared with the user as a collaborator.
    fn shared_projects(&self) -> Result<Vec<Project>>;
    /// One project.
    fn project(&self, project_id: &str) -> Result<Project>;
    /// The sub-folders of a folder.
    fn folders(&self, folder_id: &str) -> Result<Vec<Entry>>;
    /// One asset, with a fresh download URL.
    fn asset(&self, asset_id: &str) -> Result<Asset>;
    /// The custom actions of a team.
    fn team_actions(&self, team_id: &str) -> Result<Vec<Action>>;
    /// Creates a custom action; its signing secret is only returned here.
    fn create_action(&self, team_id: &str, action: &NewAction) -> Result<CreatedAction>;
    /// Deletes a custom action. Deleting one that is already gone succeeds.
    fn delete_action(&self, action_id: &str) -> Result<()>;
    /// A member of a team, by user id, if the team lists them.
    fn team_member(&self, team_id: &str, user_id: &str) -> Result<Option<User>>;
}

#[cfg(test)]
mod tests {
    use super::is_frameio_id;

    #[test]
    fn ids_are_uuids_or_adobe_ids_and_nothing_that_could_reshape_a_path() {
        for ok in ["a0000000-0000-4000-8000-000000000002", "adobe:urn-aaid-sc-1", "b1f2"] {
            assert!(is_frameio_id(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a?b", "a%2Fb", "é", long.as_str()] {
            assert!(!is_frameio_id(bad), "{bad:?}");
        }
    }
}
