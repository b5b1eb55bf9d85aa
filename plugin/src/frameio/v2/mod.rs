//! The Frame.io Legacy API (v2) client.
//!
//! Lists page with `page` and `page_size` and say where they end with the
//! `total-pages` header; the cursor handed to callers is the next page number.

mod event;
mod publishing;
mod reviews;
mod wire;
#[cfg(test)]
mod tests;

pub use event::{parse_action, parse_change};

use crate::error::{Error, FrameioError, Result};
use crate::host::Method;

use super::model::{Account, Action, CreatedAction, File, Item, ItemKind, NewAction, Page, Project, User, VersionStack, Workspace};
use super::transport::{Transport, decode, with_query};
use super::{Actions, Directory, Media, People, collect_all, segment};
use wire::{WireAccount, WireAction, WireAsset, WireChild, WireCreatedAction, WireMember, WireProject, WireTeam, WireUser};

/// Entries asked for per page; the v2 API accepts up to 100.
const PAGE_SIZE: usize = 100;
/// Highest page number a cursor may name: far past [`super::MAX_LIST_ENTRIES`].
const MAX_PAGE: u32 = 10_000;

/// A v2 client acting for one user.
pub struct V2<'h> {
    pub(super) transport: Transport<'h>,
    web_url: String,
}

impl<'h> V2<'h> {
    /// A client on `transport`; `web_url` is Frame.io's web app, for links.
    pub fn new(transport: Transport<'h>, web_url: &str) -> Self {
        V2 { transport, web_url: web_url.trim_end_matches('/').to_string() }
    }

    /// One page of `path`. The cursor is a page number from an earlier page.
    pub(super) fn page<W: serde::de::DeserializeOwned, T: From<W>>(&self, path: &str, extra: &[(&str, &str)], cursor: Option<&str>) -> Result<Page<T>> {
        let page = match cursor {
            None => 1,
            Some(c) => c
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=MAX_PAGE).contains(p))
                .ok_or_else(|| Error::InvalidInput(format!("malformed page cursor {c:?}")))?,
        };
        let (page_text, size_text) = (page.to_string(), PAGE_SIZE.to_string());
        let mut query = extra.to_vec();
        query.extend([("page", page_text.as_str()), ("page_size", size_text.as_str())]);
        let resp = self.transport.send(Method::Get, &with_query(path, &query), None)?;
        let batch: Vec<W> = decode(&resp)?;
        let total_pages = resp.header("total-pages").and_then(|v| v.trim().parse::<u32>().ok());
        let more = match total_pages {
            Some(total) => page < total,
            None => batch.len() >= PAGE_SIZE,
        };
        let next = (more && !batch.is_empty() && page < MAX_PAGE).then(|| (page + 1).to_string());
        Ok(Page { items: batch.into_iter().map(T::from).collect(), next })
    }

    fn asset(&self, asset_id: &str) -> Result<WireAsset> {
        self.transport.get(&format!("/assets/{}", segment(asset_id)?))
    }
}

impl People for V2<'_> {
    fn me(&self) -> Result<User> {
        Ok(self.transport.get::<WireUser>("/me")?.into())
    }

    fn member(&self, _account_id: &str, workspace_id: &str, user_id: &str) -> Result<Option<User>> {
        let path = format!("/teams/{}/members", segment(workspace_id)?);
        let members: Vec<WireMember> = collect_all(|cursor| self.page::<WireMember, WireMember>(&path, &[], cursor))?;
        Ok(members.into_iter().filter_map(WireMember::into_user).find(|u| u.id == user_id))
    }
}

impl Directory for V2<'_> {
    fn accounts(&self, cursor: Option<&str>) -> Result<Page<Account>> {
        self.page::<WireAccount, _>("/accounts", &[], cursor)
    }

    fn workspaces(&self, account_id: &str, cursor: Option<&str>) -> Result<Page<Workspace>> {
        self.page::<WireTeam, _>(&format!("/accounts/{}/teams", segment(account_id)?), &[], cursor)
    }

    /// v2 finds a team by its id alone; the account is not needed.
    fn projects(&self, _account_id: &str, workspace_id: &str, cursor: Option<&str>) -> Result<Page<Project>> {
        self.page::<WireProject, _>(&format!("/teams/{}/projects", segment(workspace_id)?), &[], cursor)
    }

    fn shared_projects(&self, cursor: Option<&str>) -> Result<Page<Project>> {
        self.page::<WireProject, _>("/projects/shared", &[], cursor)
    }

    fn project(&self, _account_id: &str, project_id: &str) -> Result<Project> {
        Ok(self.transport.get::<WireProject>(&format!("/projects/{}", segment(project_id)?))?.into())
    }

    /// The listing filters by one `type`; for several kinds it lists every child,
    /// and either way the kinds are checked here too.
    fn children(&self, _account_id: &str, folder_id: &str, kinds: &[ItemKind], cursor: Option<&str>) -> Result<Page<Item>> {
        let filter: Vec<(&str, &str)> = match kinds {
            [one] => vec![("type", one.wire_name())],
            _ => Vec::new(),
        };
        let mut page = self.page::<WireChild, Item>(&format!("/assets/{}/children", segment(folder_id)?), &filter, cursor)?;
        page.items.retain(|item| kinds.is_empty() || kinds.contains(&item.kind));
        Ok(page)
    }

    /// v2 lists folders and stacks alike, and each child comes whole.
    fn contents(&self, _account_id: &str, parent_id: &str, parent_kind: &ItemKind, cursor: Option<&str>) -> Result<Page<File>> {
        let path = format!("/assets/{}/children", segment(parent_id)?);
        let page = self.page::<WireAsset, WireAsset>(&path, &[], cursor)?;
        let stack_id = (*parent_kind == ItemKind::VersionStack).then(|| parent_id.to_string());
        let files = page.items.into_iter().map(|asset| File { version_stack_id: stack_id.clone(), ..asset.into_file(&self.web_url) });
        Ok(Page { items: files.collect(), next: page.next })
    }
}

impl Media for V2<'_> {
    /// Reads the asset and, for one inside a version stack, notes the stack.
    fn file(&self, _account_id: &str, file_id: &str) -> Result<File> {
        let asset = self.asset(file_id)?;
        let parent_id = asset.parent_id.clone();
        let mut file = asset.into_file(&self.web_url);
        if let Some(parent) = parent_id {
            let parent: WireChild = self.transport.get(&format!("/assets/{}", segment(&parent)?))?;
            if parent.kind == "version_stack" {
                file.version_stack_id = Some(parent.id);
            }
        }
        Ok(file)
    }

    /// The stack's children are its versions, newest (the head) first.
    fn version_stack(&self, _account_id: &str, stack_id: &str) -> Result<VersionStack> {
        let stack = self.asset(stack_id)?.into_file(&self.web_url);
        if stack.kind != ItemKind::VersionStack {
            return Err(Error::NotFound(format!("version stack {stack_id}")));
        }
        let path = format!("/assets/{}/children", segment(stack_id)?);
        let versions: Vec<Item> = collect_all(|cursor| self.page::<WireChild, Item>(&path, &[], cursor))?;
        let version_ids: Vec<String> = versions.into_iter().filter(|v| v.kind == ItemKind::File).map(|v| v.id).collect();
        let head_file_id = version_ids.first().cloned().ok_or_else(|| Error::NotFound(format!("a version in stack {stack_id}")))?;
        Ok(VersionStack { id: stack.id, name: stack.name, project_id: stack.project_id, head_file_id, version_ids })
    }
}

impl Actions for V2<'_> {
    fn actions(&self, _account_id: &str, workspace_id: &str) -> Result<Vec<Action>> {
        let path = format!("/teams/{}/actions", segment(workspace_id)?);
        collect_all(|cursor| self.page::<WireAction, Action>(&path, &[], cursor))
    }

    fn create_action(&self, account_id: &str, workspace_id: &str, action: &NewAction) -> Result<CreatedAction> {
        let body = serde_json::json!({
            "name": action.name,
            "description": action.description,
            "event": action.event,
            "url": action.url,
            "allow_collaborators": true,
        });
        let resp = self.transport.send(Method::Post, &format!("/teams/{}/actions", segment(workspace_id)?), Some(&body))?;
        let created: WireCreatedAction = decode(&resp)?;
        let id = created.id.clone();
        match created.secret() {
            Some(secret) => Ok(CreatedAction { id, secret }),
            None => {
                // Without its secret the action's requests cannot be verified: remove it.
                let _ = self.delete_action(account_id, &id);
                Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io created the custom action without a signing secret")))
            }
        }
    }

    fn delete_action(&self, _account_id: &str, action_id: &str) -> Result<()> {
        match self.transport.send(Method::Delete, &format!("/actions/{}", segment(action_id)?), None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
