//! Frame.io, behind capability traits that each API generation implements.
//!
//! The flows see only [`model`] and the traits below. [`v2`] speaks the Legacy API
//! and [`v4`] speaks Frame.io V4; each owns its wire types, its paths and its
//! custom-action payloads. [`transport`] is what they share: bearer calls over the
//! host's `http` import, one refresh on a refused token, and error decoding.

mod event;
pub mod model;
mod pacing;
pub mod time;
pub mod transport;
pub mod v2;
pub mod v4;

use crate::error::{Error, Result};
use crate::host::Host;
use model::{
    Account, Action, Comment, CreatedAction, CreatedWebhook, File, Generation, Item, ItemKind, NewAction, NewComment, NewShare,
    NewUpload, Page, Project, ReviewStatus, Share, Upload, User, VersionStack, Workspace,
};
use transport::{TokenSource, Transport};

/// Most entries a list that the connector reads whole (custom actions, versions)
/// follows pagination to, so that a huge account cannot make one call run for ever.
pub const MAX_LIST_ENTRIES: usize = 5000;

/// Whether `id` is shaped like a Frame.io identifier: UUIDs, and V4's `adobe:`-prefixed
/// ids. Ids come from users and Frame.io and end up in URL paths and storage keys,
/// so anything else (separators, `.` and `..`, overlong values) is refused.
pub fn is_frameio_id(id: &str) -> bool {
    let charset = id.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    !id.is_empty() && id.len() <= 128 && charset && id != "." && id != ".."
}

/// `id` as a URL path segment, or `InvalidInput` when it is not a Frame.io id.
pub(crate) fn segment(id: &str) -> Result<&str> {
    if is_frameio_id(id) { Ok(id) } else { Err(Error::InvalidInput(format!("malformed Frame.io id {id:?}"))) }
}

/// Who is signed in.
pub trait People {
    /// The connected user.
    fn me(&self) -> Result<User>;
    /// A member of a workspace, by user id, if the workspace lists them.
    fn member(&self, account_id: &str, workspace_id: &str, user_id: &str) -> Result<Option<User>>;
}

/// Where things are: accounts, workspaces, projects and folders, a page at a time.
/// `cursor` is `None` for the first page, then the `next` of the page before.
pub trait Directory {
    /// The user's accounts.
    fn accounts(&self, cursor: Option<&str>) -> Result<Page<Account>>;
    /// The workspaces of an account that the user can see.
    fn workspaces(&self, account_id: &str, cursor: Option<&str>) -> Result<Page<Workspace>>;
    /// The projects of a workspace that the user can see.
    fn projects(&self, account_id: &str, workspace_id: &str, cursor: Option<&str>) -> Result<Page<Project>>;
    /// Projects shared with the user outside their own workspaces (Legacy API only;
    /// V4 lists such projects in their workspaces, so it answers an empty page).
    fn shared_projects(&self, cursor: Option<&str>) -> Result<Page<Project>>;
    /// One project.
    fn project(&self, account_id: &str, project_id: &str) -> Result<Project>;
    /// The children of a folder of the given kinds (every kind when `kinds` is empty).
    fn children(&self, account_id: &str, folder_id: &str, kinds: &[ItemKind], cursor: Option<&str>) -> Result<Page<Item>>;
    /// One page of what a folder or a version stack (`parent_kind`) holds, each
    /// entry read whole: a file with its original's download link, size and
    /// checksum as `Media::file` gives them (so a walk needs no read per file). A
    /// stack lists its versions newest first; its files carry the stack's id.
    fn contents(&self, account_id: &str, parent_id: &str, parent_kind: &ItemKind, cursor: Option<&str>) -> Result<Page<File>>;
}

/// Files and version stacks.
pub trait Media {
    /// One file, with a fresh download URL for its original when the user may have one.
    fn file(&self, account_id: &str, file_id: &str) -> Result<File>;
    /// One version stack and its versions.
    fn version_stack(&self, account_id: &str, stack_id: &str) -> Result<VersionStack>;
}

/// Custom actions, which live in a workspace.
pub trait Actions {
    /// The workspace's custom actions.
    fn actions(&self, account_id: &str, workspace_id: &str) -> Result<Vec<Action>>;
    /// Creates a custom action; its signing secret is only returned here.
    fn create_action(&self, account_id: &str, workspace_id: &str, action: &NewAction) -> Result<CreatedAction>;
    /// Deletes a custom action. Deleting one that is already gone succeeds.
    fn delete_action(&self, account_id: &str, action_id: &str) -> Result<()>;
}

/// Review: comments and a file's review status.
pub trait Reviews {
    /// Every comment on a file, replies included, oldest first.
    fn comments(&self, account_id: &str, file_id: &str) -> Result<Vec<Comment>>;
    /// One comment.
    fn comment(&self, account_id: &str, comment_id: &str) -> Result<Comment>;
    /// Posts a comment (or a reply, where the API takes replies).
    fn create_comment(&self, account_id: &str, file_id: &str, comment: &NewComment) -> Result<Comment>;
    /// Changes a comment's text and frame.
    fn update_comment(&self, account_id: &str, comment_id: &str, comment: &NewComment) -> Result<Comment>;
    /// Deletes a comment. Deleting one that is already gone succeeds.
    fn delete_comment(&self, account_id: &str, comment_id: &str) -> Result<()>;
    /// A file's review status.
    fn review_status(&self, account_id: &str, file_id: &str) -> Result<ReviewStatus>;
    /// Sets a file's review status.
    fn set_review_status(&self, account_id: &str, file_id: &str, status: ReviewStatus) -> Result<()>;
}

/// Webhook subscriptions, which live in a workspace.
pub trait Webhooks {
    /// Subscribes `url` to the events the connector follows (comments, review
    /// status, upload completion) in a workspace; the secret is only returned here.
    fn create_webhook(&self, account_id: &str, workspace_id: &str, name: &str, url: &str) -> Result<CreatedWebhook>;
    /// Deletes a subscription. Deleting one that is already gone succeeds.
    fn delete_webhook(&self, account_id: &str, webhook_id: &str) -> Result<()>;
    /// Whether a subscription is active; `None` when it is gone.
    fn webhook_active(&self, account_id: &str, webhook_id: &str) -> Result<Option<bool>>;
    /// Turns a paused subscription back on.
    fn activate_webhook(&self, account_id: &str, webhook_id: &str) -> Result<()>;
}

/// What sending a file for review takes: projects and folders to put it in, an
/// upload, a version stack for a re-send, and a review link (a share, on V4).
pub trait Publishing {
    /// Creates a project in a workspace.
    fn create_project(&self, account_id: &str, workspace_id: &str, name: &str) -> Result<Project>;
    /// Creates a folder in a folder.
    fn create_folder(&self, account_id: &str, parent_id: &str, name: &str) -> Result<Item>;
    /// Creates a file whose bytes are then PUT to the answer's part URLs.
    fn create_upload(&self, account_id: &str, folder_id: &str, upload: &NewUpload) -> Result<Upload>;
    /// Whether Frame.io has all of a file's bytes.
    fn upload_complete(&self, account_id: &str, file_id: &str) -> Result<bool>;
    /// Puts `newer` on `earlier`'s version stack (making one if needed), as its head;
    /// returns the stack's id.
    fn stack(&self, account_id: &str, folder_id: &str, earlier_id: &str, newer_id: &str) -> Result<String>;
    /// Makes a review link or share of assets in a project.
    fn create_share(&self, account_id: &str, project_id: &str, share: &NewShare) -> Result<Share>;
    /// Deletes a file (an upload abandoned for fresh part URLs). Deleting one that
    /// is already gone succeeds.
    fn delete_file(&self, account_id: &str, file_id: &str) -> Result<()>;
}

/// Everything the flows ask of Frame.io, on behalf of one connected user.
pub trait FrameioApi: People + Directory + Media + Actions + Reviews + Webhooks + Publishing {}

impl<T: People + Directory + Media + Actions + Reviews + Webhooks + Publishing> FrameioApi for T {}

/// A client of `generation` at `api_url`, calling with the tokens `tokens` gives;
/// `web_url` is Frame.io's web app, for links where the API gives none. With
/// `paced_as`, calls keep under the rate limits of that user's connection.
pub fn client<'h>(
    generation: Generation,
    host: &'h dyn Host,
    api_url: &str,
    web_url: &str,
    tokens: Box<dyn TokenSource + 'h>,
    paced_as: Option<&str>,
) -> Box<dyn FrameioApi + 'h> {
    let transport = Transport::new(host, api_url, tokens);
    let transport = match paced_as {
        Some(user) => transport.paced(user),
        None => transport,
    };
    match generation {
        Generation::V2 => Box::new(v2::V2::new(transport, web_url)),
        Generation::V4 => Box::new(v4::V4::new(transport)),
    }
}

/// Follows `list` from the first page until there is no next one, up to
/// [`MAX_LIST_ENTRIES`].
pub fn collect_all<T>(list: impl Fn(Option<&str>) -> Result<Page<T>>) -> Result<Vec<T>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = list(cursor.as_deref())?;
        let empty = page.items.is_empty();
        items.extend(page.items);
        // An empty page ends the list whatever its cursor claims, so a server that
        // keeps handing out cursors cannot keep us here.
        match page.next {
            Some(next) if !empty && items.len() < MAX_LIST_ENTRIES => cursor = Some(next),
            _ => break,
        }
    }
    items.truncate(MAX_LIST_ENTRIES);
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn collecting_stops_at_the_end_at_an_empty_page_and_at_the_cap() {
        let pages = |n: usize| {
            move |cursor: Option<&str>| {
                let at: usize = cursor.map_or(0, |c| c.parse().unwrap());
                let next = (at + 1 < n).then(|| (at + 1).to_string());
                Ok(Page { items: vec![at; 1000], next })
            }
        };
        assert_eq!(collect_all(pages(3)).unwrap().len(), 3000);
        assert_eq!(collect_all(pages(100)).unwrap().len(), MAX_LIST_ENTRIES);
        let endless_empty = |_: Option<&str>| Ok(Page::<u8> { items: vec![], next: Some("again".into()) });
        assert!(collect_all(endless_empty).unwrap().is_empty());
    }
}
