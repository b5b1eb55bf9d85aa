//! The Frame.io V4 client.
//!
//! Every path is scoped by account. Lists page with `page_size` and an opaque
//! `after` cursor, which the answer's `links.next` carries; the cursor handed to
//! callers is that `after` value.

mod event;
mod publishing;
mod reviews;
mod wire;
#[cfg(test)]
mod tests;

pub use event::{parse_action, parse_change};

use serde::de::DeserializeOwned;

use crate::error::{Error, FrameioError, Result};
use crate::host::Method;

use super::model::{Account, Action, CreatedAction, File, Item, ItemKind, NewAction, Page, Project, User, VersionStack, Workspace};
use super::transport::{Transport, decode, with_query};
use super::{Actions, Directory, Media, People, collect_all, segment};
use wire::{Data, List, WireAccount, WireAction, WireAsset, WireCreatedAction, WireFile, WireProfile, WireProject, WireUserRole, WireVersionStack, WireWorkspace};

/// Entries asked for per page: 100 is taken by every V4 list.
const PAGE_SIZE: &str = "100";
/// Entries asked for per page of a folder's or stack's children: asset lists take
/// up to 500, and an archive's walk is paced by how many listings it needs.
const ASSET_PAGE_SIZE: &str = "500";
/// Longest cursor passed on; Frame.io's are far shorter.
const MAX_CURSOR_BYTES: usize = 1024;

/// A V4 client acting for one user.
pub struct V4<'h> {
    pub(super) transport: Transport<'h>,
}

impl<'h> V4<'h> {
    /// A client on `transport`.
    pub fn new(transport: Transport<'h>) -> Self {
        V4 { transport }
    }

    /// One page of `path`, each entry converted by `convert`.
    pub(super) fn page<W: DeserializeOwned, T>(&self, path: &str, extra: &[(&str, &str)], cursor: Option<&str>, convert: impl Fn(W) -> T) -> Result<Page<T>> {
        self.page_of(PAGE_SIZE, path, extra, cursor, convert)
    }

    /// One page of `size` entries of `path`.
    fn page_of<W: DeserializeOwned, T>(&self, size: &str, path: &str, extra: &[(&str, &str)], cursor: Option<&str>, convert: impl Fn(W) -> T) -> Result<Page<T>> {
        let mut query = extra.to_vec();
        query.push(("page_size", size));
        if let Some(after) = cursor {
            if after.is_empty() || after.len() > MAX_CURSOR_BYTES {
                return Err(Error::InvalidInput("malformed page cursor".into()));
            }
            query.push(("after", after));
        }
        let list: List<W> = self.transport.get(&with_query(path, &query))?;
        let next = list.links.and_then(|l| l.next).and_then(|link| after_of(&link));
        Ok(Page { items: list.data.into_iter().map(convert).collect(), next })
    }

    pub(super) fn in_account(account_id: &str, rest: &str) -> Result<String> {
        Ok(format!("/accounts/{}{rest}", segment(account_id)?))
    }
}

/// The `after` cursor in a `links.next` path, if it has one.
fn after_of(link: &str) -> Option<String> {
    let query = link.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "after").map(|(_, v)| v.into_owned()).filter(|v| !v.is_empty())
}

impl People for V4<'_> {
    fn me(&self) -> Result<User> {
        Ok(self.transport.get::<Data<WireProfile>>("/me")?.data.into())
    }

    fn member(&self, account_id: &str, workspace_id: &str, user_id: &str) -> Result<Option<User>> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/users", segment(workspace_id)?))?;
        let members = collect_all(|cursor| self.page(&path, &[], cursor, User::from as fn(WireUserRole) -> User))?;
        Ok(members.into_iter().find(|u| u.id == user_id))
    }
}

impl Directory for V4<'_> {
    fn accounts(&self, cursor: Option<&str>) -> Result<Page<Account>> {
        self.page("/accounts", &[], cursor, Account::from as fn(WireAccount) -> Account)
    }

    fn workspaces(&self, account_id: &str, cursor: Option<&str>) -> Result<Page<Workspace>> {
        self.page(&Self::in_account(account_id, "/workspaces")?, &[], cursor, Workspace::from as fn(WireWorkspace) -> Workspace)
    }

    fn projects(&self, account_id: &str, workspace_id: &str, cursor: Option<&str>) -> Result<Page<Project>> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/projects", segment(workspace_id)?))?;
        self.page(&path, &[], cursor, |p: WireProject| p.into_project(account_id))
    }

    /// V4 lists shared projects in their workspaces.
    fn shared_projects(&self, _cursor: Option<&str>) -> Result<Page<Project>> {
        Ok(Page { items: Vec::new(), next: None })
    }

    fn project(&self, account_id: &str, project_id: &str) -> Result<Project> {
        let path = Self::in_account(account_id, &format!("/projects/{}", segment(project_id)?))?;
        Ok(self.transport.get::<Data<WireProject>>(&path)?.data.into_project(account_id))
    }

    fn children(&self, account_id: &str, folder_id: &str, kinds: &[ItemKind], cursor: Option<&str>) -> Result<Page<Item>> {
        let path = Self::in_account(account_id, &format!("/folders/{}/children", segment(folder_id)?))?;
        let types: Vec<&str> = kinds.iter().map(ItemKind::wire_name).collect();
        let types = types.join(",");
        let filter: Vec<(&str, &str)> = if kinds.is_empty() { Vec::new() } else { vec![("type", types.as_str())] };
        let mut page = self.page_of(ASSET_PAGE_SIZE, &path, &filter, cursor, Item::from as fn(WireAsset) -> Item)?;
        page.items.retain(|item| kinds.is_empty() || kinds.contains(&item.kind));
        Ok(page)
    }

    /// Asks for the originals' links with the listing; a user who may not download
    /// is refused them (403), and gets the listing without them.
    fn contents(&self, account_id: &str, parent_id: &str, parent_kind: &ItemKind, cursor: Option<&str>) -> Result<Page<File>> {
        let container = if *parent_kind == ItemKind::VersionStack { "version_stacks" } else { "folders" };
        let path = Self::in_account(account_id, &format!("/{container}/{}/children", segment(parent_id)?))?;
        let with_links = [("include", "media_links.original")];
        let (page, allowed) = match self.page_of::<WireFile, WireFile>(ASSET_PAGE_SIZE, &path, &with_links, cursor, |f| f) {
            Ok(page) => (page, true),
            Err(Error::Frameio(e)) if e.status == 403 => (self.page_of(ASSET_PAGE_SIZE, &path, &[], cursor, |f: WireFile| f)?, false),
            Err(e) => return Err(e),
        };
        let stack_id = (*parent_kind == ItemKind::VersionStack).then(|| parent_id.to_string());
        let files = page.items.into_iter().map(|wire| File { version_stack_id: stack_id.clone(), ..wire.into_file(account_id, allowed) });
        Ok(Page { items: files.collect(), next: page.next })
    }
}

impl Media for V4<'_> {
    /// Reads the file with its original's download link. Frame.io refuses that link
    /// (403) to users who may not download: the file is then read without it, so the
    /// caller can say so rather than report the file unreadable.
    fn file(&self, account_id: &str, file_id: &str) -> Result<File> {
        let path = Self::in_account(account_id, &format!("/files/{}", segment(file_id)?))?;
        let (wire, download_allowed) = match self.transport.get::<Data<WireFile>>(&with_query(&path, &[("include", "media_links.original")])) {
            Ok(found) => (found.data, true),
            Err(Error::Frameio(e)) if e.status == 403 => (self.transport.get::<Data<WireFile>>(&path)?.data, false),
            Err(e) => return Err(e),
        };
        let parent_id = wire.parent_id.clone();
        let mut file = wire.into_file(account_id, download_allowed);
        if let Some(parent) = parent_id {
            // A file's parent is a folder or a version stack; only a stack answers here.
            let stack_path = Self::in_account(account_id, &format!("/version_stacks/{}", segment(&parent)?))?;
            match self.transport.get::<Data<WireVersionStack>>(&stack_path) {
                Ok(stack) => file.version_stack_id = Some(stack.data.id),
                Err(Error::Frameio(e)) if e.status == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(file)
    }

    fn version_stack(&self, account_id: &str, stack_id: &str) -> Result<VersionStack> {
        let path = Self::in_account(account_id, &format!("/version_stacks/{}", segment(stack_id)?))?;
        let stack = self.transport.get::<Data<WireVersionStack>>(&path)?.data;
        let children = format!("{path}/children");
        let versions: Vec<Item> = collect_all(|cursor| self.page(&children, &[], cursor, Item::from as fn(WireAsset) -> Item))?;
        let head = stack.head_id().map(str::to_string);
        let mut version_ids: Vec<String> = versions.into_iter().filter(|v| v.kind == ItemKind::File).map(|v| v.id).collect();
        // Newest first, as on v2: the head leads.
        if let Some(head) = &head {
            version_ids.retain(|id| id != head);
            version_ids.insert(0, head.clone());
        }
        let head_file_id = head.ok_or_else(|| Error::NotFound(format!("a version in stack {stack_id}")))?;
        Ok(VersionStack { id: stack.id, name: stack.name, project_id: stack.project_id, head_file_id, version_ids })
    }
}

impl Actions for V4<'_> {
    fn actions(&self, account_id: &str, workspace_id: &str) -> Result<Vec<Action>> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/actions", segment(workspace_id)?))?;
        collect_all(|cursor| self.page(&path, &[], cursor, Action::from as fn(WireAction) -> Action))
    }

    fn create_action(&self, account_id: &str, workspace_id: &str, action: &NewAction) -> Result<CreatedAction> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/actions", segment(workspace_id)?))?;
        let body = serde_json::json!({ "data": {
            "name": action.name,
            "description": action.description,
            "event": action.event,
            "url": action.url,
        }});
        let resp = self.transport.send(Method::Post, &path, Some(&body))?;
        let created: Data<WireCreatedAction> = decode(&resp)?;
        let id = created.data.id;
        match created.data.secret.filter(|s| !s.is_empty()) {
            Some(secret) => Ok(CreatedAction { id, secret }),
            None => {
                // Without its secret the action's requests cannot be verified: remove it.
                let _ = self.delete_action(account_id, &id);
                Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io created the custom action without a signing secret")))
            }
        }
    }

    fn delete_action(&self, account_id: &str, action_id: &str) -> Result<()> {
        let path = Self::in_account(account_id, &format!("/actions/{}", segment(action_id)?))?;
        match self.transport.send(Method::Delete, &path, None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
