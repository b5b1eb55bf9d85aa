//! Browsing what a connected user can see, a page at a time, to choose what to
//! bind or where to send.

use super::Context;
use crate::error::{Error, Result};
use crate::frameio::model::{Account, Item, ItemKind, Page, Project, Workspace};

/// The user's accounts.
pub fn accounts(ctx: &Context, user: &str, cursor: Option<&str>) -> Result<Page<Account>> {
    ctx.api(user)?.accounts(cursor)
}

/// The workspaces (teams, on v2) of an account.
pub fn workspaces(ctx: &Context, user: &str, account_id: &str, cursor: Option<&str>) -> Result<Page<Workspace>> {
    ctx.api(user)?.workspaces(account_id, cursor)
}

/// The projects of a workspace.
pub fn projects(ctx: &Context, user: &str, account_id: &str, workspace_id: &str, cursor: Option<&str>) -> Result<Page<Project>> {
    ctx.api(user)?.projects(account_id, workspace_id, cursor)
}

/// Projects shared with the user outside their workspaces (always empty on V4).
pub fn shared_projects(ctx: &Context, user: &str, cursor: Option<&str>) -> Result<Page<Project>> {
    ctx.api(user)?.shared_projects(cursor)
}

/// The children of a folder, of the given kinds (all when empty). Only folders,
/// files and version stacks may be asked for.
pub fn children(ctx: &Context, user: &str, account_id: &str, folder_id: &str, kinds: &[ItemKind], cursor: Option<&str>) -> Result<Page<Item>> {
    if let Some(other) = kinds.iter().find(|k| matches!(k, ItemKind::Other(_))) {
        return Err(Error::InvalidInput(format!("cannot list children of kind {:?}", other.wire_name())));
    }
    ctx.api(user)?.children(account_id, folder_id, kinds, cursor)
}
