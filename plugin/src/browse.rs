//! Browsing what a connected user can see, to choose what to bind.

use crate::error::Result;
use crate::frameio::model::{Entry, Project};
use crate::host::Host;
use crate::oauth::Session;

fn entries(projects: Vec<Project>) -> Vec<Entry> {
    projects.into_iter().map(Entry::from).collect()
}

/// The user's accounts.
pub fn accounts(host: &dyn Host, user: &str) -> Result<Vec<Entry>> {
    Session::open(host, user)?.with_api(|api| api.accounts())
}

/// The teams of an account.
pub fn teams(host: &dyn Host, user: &str, account_id: &str) -> Result<Vec<Entry>> {
    Session::open(host, user)?.with_api(|api| api.teams(account_id))
}

/// The projects of a team.
pub fn projects(host: &dyn Host, user: &str, team_id: &str) -> Result<Vec<Entry>> {
    Session::open(host, user)?.with_api(|api| api.projects(team_id).map(entries))
}

/// Projects shared with the user as a collaborator.
pub fn shared_projects(host: &dyn Host, user: &str) -> Result<Vec<Entry>> {
    Session::open(host, user)?.with_api(|api| api.shared_projects().map(entries))
}

/// The sub-folders of a folder.
pub fn folders(host: &dyn Host, user: &str, folder_id: &str) -> Result<Vec<Entry>> {
    Session::open(host, user)?.with_api(|api| api.folders(folder_id))
}
