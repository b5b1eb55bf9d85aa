//! An in-memory Frame.io behind the capability traits, for the flow tests: the flows
//! are tested once, with no generation's JSON in sight.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::Context;
use crate::error::{Error, FrameioError, Result};
use crate::host::Host;
use crate::frameio::model::*;
use crate::frameio::{Actions, Directory, FrameioApi, Media, People, Publishing, Reviews, Webhooks};
use crate::settings::{self, Settings};

/// What the fake Frame.io holds, shared between the test and every client.
#[derive(Default)]
pub struct World {
    pub projects: Vec<Project>,
    pub files: BTreeMap<String, File>,
    pub stacks: BTreeMap<String, VersionStack>,
    pub members: Vec<User>,
    /// Actions by workspace; their secrets.
    pub actions: Vec<(String, Action, String)>,
    /// DAM users with a connection.
    pub connected: Vec<String>,
    /// When set, every call fails with it.
    pub outage: Option<FrameioError>,
    /// Every call made, as `"name arg"`.
    pub calls: Vec<String>,
    pub comments: Vec<Comment>,
    /// Review status by file.
    pub statuses: BTreeMap<String, ReviewStatus>,
    /// Webhooks by id: workspace and URL.
    pub webhooks: BTreeMap<String, (String, String)>,
    /// Webhooks Frame.io paused.
    pub paused: Vec<String>,
    /// Files made for uploads: whether Frame.io has them whole yet.
    pub uploads: BTreeMap<String, bool>,
    /// Version stacks made by `stack`: their versions, oldest first.
    pub stacked: BTreeMap<String, Vec<String>>,
    /// Review links and shares made.
    pub shares: Vec<NewShare>,
    /// Folders made, with their parents.
    pub folders: Vec<Item>,
    /// Runs once, right after the next listing of comments is read: what a call
    /// racing that listing does before its reader goes on.
    pub after_listing_comments: Option<Box<dyn FnOnce()>>,
}

/// A client of the shared world.
#[derive(Clone)]
pub struct FakeFrameio(pub Rc<RefCell<World>>);

impl FakeFrameio {
    fn call(&self, what: String) -> Result<()> {
        let mut world = self.0.borrow_mut();
        world.calls.push(what);
        match &world.outage {
            Some(e) => Err(Error::Frameio(e.clone())),
            None => Ok(()),
        }
    }

    fn not_found(what: &str) -> Error {
        Error::Frameio(FrameioError::new(404, format!("{what} not found")))
    }
}

fn whole<T>(items: Vec<T>) -> Page<T> {
    Page { items, next: None }
}

impl People for FakeFrameio {
    fn me(&self) -> Result<User> {
        self.call("me".into())?;
        Ok(User { id: "u1".into(), name: "Ada".into(), email: "ada@example.com".into() })
    }

    fn member(&self, _account_id: &str, workspace_id: &str, user_id: &str) -> Result<Option<User>> {
        self.call(format!("member {workspace_id} {user_id}"))?;
        Ok(self.0.borrow().members.iter().find(|u| u.id == user_id).cloned())
    }
}

impl Directory for FakeFrameio {
    fn accounts(&self, _cursor: Option<&str>) -> Result<Page<Account>> {
        self.call("accounts".into())?;
        Ok(whole(vec![Account { id: "acc1".into(), name: "Studio".into() }]))
    }

    fn workspaces(&self, account_id: &str, _cursor: Option<&str>) -> Result<Page<Workspace>> {
        self.call(format!("workspaces {account_id}"))?;
        Ok(whole(vec![Workspace { id: "t1".into(), name: "Editorial".into(), account_id: account_id.into() }]))
    }

    fn projects(&self, _account_id: &str, workspace_id: &str, _cursor: Option<&str>) -> Result<Page<Project>> {
        self.call(format!("projects {workspace_id}"))?;
        Ok(whole(self.0.borrow().projects.iter().filter(|p| p.workspace_id == workspace_id).cloned().collect()))
    }

    fn shared_projects(&self, _cursor: Option<&str>) -> Result<Page<Project>> {
        self.call("shared_projects".into())?;
        Ok(whole(Vec::new()))
    }

    fn project(&self, _account_id: &str, project_id: &str) -> Result<Project> {
        self.call(format!("project {project_id}"))?;
        self.0.borrow().projects.iter().find(|p| p.id == project_id).cloned().ok_or_else(|| Self::not_found(project_id))
    }

    fn children(&self, _account_id: &str, folder_id: &str, kinds: &[ItemKind], _cursor: Option<&str>) -> Result<Page<Item>> {
        self.call(format!("children {folder_id}"))?;
        let world = self.0.borrow();
        let items = world
            .files
            .values()
            .filter(|f| f.parent_id.as_deref() == Some(folder_id) && (kinds.is_empty() || kinds.contains(&f.kind)))
            .map(|f| Item { id: f.id.clone(), name: f.name.clone(), kind: f.kind.clone(), parent_id: folder_id.into() })
            .collect();
        Ok(whole(items))
    }

    fn contents(&self, _account_id: &str, parent_id: &str, _kind: &ItemKind, _cursor: Option<&str>) -> Result<Page<File>> {
        self.call(format!("contents {parent_id}"))?;
        let world = self.0.borrow();
        let mut files: Vec<File> = world.files.values().filter(|f| f.parent_id.as_deref() == Some(parent_id)).cloned().collect();
        // A stack lists its versions newest first, as Frame.io does.
        let order = world.stacks.get(parent_id).map(|s| s.version_ids.clone()).unwrap_or_default();
        files.sort_by_key(|f| (order.iter().position(|id| *id == f.id), f.id.clone()));
        Ok(whole(files))
    }
}

impl Media for FakeFrameio {
    fn file(&self, _account_id: &str, file_id: &str) -> Result<File> {
        self.call(format!("file {file_id}"))?;
        self.0.borrow().files.get(file_id).cloned().ok_or_else(|| Self::not_found(file_id))
    }

    fn version_stack(&self, _account_id: &str, stack_id: &str) -> Result<VersionStack> {
        self.call(format!("version_stack {stack_id}"))?;
        self.0.borrow().stacks.get(stack_id).cloned().ok_or_else(|| Self::not_found(stack_id))
    }
}

impl Actions for FakeFrameio {
    fn actions(&self, _account_id: &str, workspace_id: &str) -> Result<Vec<Action>> {
        self.call(format!("actions {workspace_id}"))?;
        Ok(self.0.borrow().actions.iter().filter(|(w, _, _)| w == workspace_id).map(|(_, a, _)| a.clone()).collect())
    }

    fn create_action(&self, _account_id: &str, workspace_id: &str, action: &NewAction) -> Result<CreatedAction> {
        self.call(format!("create_action {workspace_id} {}", action.url))?;
        let mut world = self.0.borrow_mut();
        let created_before = world.calls.iter().filter(|c| c.starts_with("create_action")).count();
        let id = format!("act{created_before}");
        world.actions.push((workspace_id.into(), Action { id: id.clone(), name: action.name.clone() }, "whsec".into()));
        Ok(CreatedAction { id, secret: "whsec".into() })
    }

    fn delete_action(&self, _account_id: &str, action_id: &str) -> Result<()> {
        self.call(format!("delete_action {action_id}"))?;
        self.0.borrow_mut().actions.retain(|(_, a, _)| a.id != action_id);
        Ok(())
    }
}

impl Reviews for FakeFrameio {
    fn comments(&self, _account_id: &str, file_id: &str) -> Result<Vec<Comment>> {
        self.call(format!("comments {file_id}"))?;
        let listed = self.0.borrow().comments.iter().filter(|c| c.file_id == file_id).cloned().collect();
        let racing = self.0.borrow_mut().after_listing_comments.take();
        if let Some(racing) = racing {
            racing();
        }
        Ok(listed)
    }

    fn comment(&self, _account_id: &str, comment_id: &str) -> Result<Comment> {
        self.call(format!("comment {comment_id}"))?;
        self.0.borrow().comments.iter().find(|c| c.id == comment_id).cloned().ok_or_else(|| Self::not_found(comment_id))
    }

    fn create_comment(&self, _account_id: &str, file_id: &str, comment: &NewComment) -> Result<Comment> {
        self.call(format!("create_comment {file_id}"))?;
        let mut world = self.0.borrow_mut();
        let created = Comment {
            id: format!("fc{}", world.comments.len() + 1),
            file_id: file_id.into(),
            parent_id: comment.parent_id.clone(),
            text: comment.text.clone(),
            author: User { id: "u1".into(), name: "Ada".into(), email: "ada@example.com".into() },
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            frame: comment.frame,
            ..Comment::default()
        };
        world.comments.push(created.clone());
        Ok(created)
    }

    fn update_comment(&self, _account_id: &str, comment_id: &str, comment: &NewComment) -> Result<Comment> {
        self.call(format!("update_comment {comment_id}"))?;
        let mut world = self.0.borrow_mut();
        let found = world.comments.iter_mut().find(|c| c.id == comment_id).ok_or_else(|| Self::not_found(comment_id))?;
        found.text = comment.text.clone();
        found.frame = comment.frame;
        found.updated_at += 1;
        Ok(found.clone())
    }

    fn delete_comment(&self, _account_id: &str, comment_id: &str) -> Result<()> {
        self.call(format!("delete_comment {comment_id}"))?;
        self.0.borrow_mut().comments.retain(|c| c.id != comment_id && c.parent_id.as_deref() != Some(comment_id));
        Ok(())
    }

    fn review_status(&self, _account_id: &str, file_id: &str) -> Result<ReviewStatus> {
        self.call(format!("review_status {file_id}"))?;
        Ok(self.0.borrow().statuses.get(file_id).copied().unwrap_or_default())
    }

    fn set_review_status(&self, _account_id: &str, file_id: &str, status: ReviewStatus) -> Result<()> {
        self.call(format!("set_review_status {file_id} {}", status.name()))?;
        self.0.borrow_mut().statuses.insert(file_id.into(), status);
        Ok(())
    }
}

impl Webhooks for FakeFrameio {
    fn create_webhook(&self, _account_id: &str, workspace_id: &str, _name: &str, url: &str) -> Result<CreatedWebhook> {
        self.call(format!("create_webhook {workspace_id}"))?;
        let mut world = self.0.borrow_mut();
        let id = format!("wh{}", world.webhooks.len() + 1);
        world.webhooks.insert(id.clone(), (workspace_id.into(), url.into()));
        Ok(CreatedWebhook { id, secret: "hooksec".into() })
    }

    fn delete_webhook(&self, _account_id: &str, webhook_id: &str) -> Result<()> {
        self.call(format!("delete_webhook {webhook_id}"))?;
        self.0.borrow_mut().webhooks.remove(webhook_id);
        Ok(())
    }

    fn webhook_active(&self, _account_id: &str, webhook_id: &str) -> Result<Option<bool>> {
        self.call(format!("webhook_active {webhook_id}"))?;
        let world = self.0.borrow();
        Ok(world.webhooks.contains_key(webhook_id).then(|| !world.paused.iter().any(|p| p == webhook_id)))
    }

    fn activate_webhook(&self, _account_id: &str, webhook_id: &str) -> Result<()> {
        self.call(format!("activate_webhook {webhook_id}"))?;
        self.0.borrow_mut().paused.retain(|p| p != webhook_id);
        Ok(())
    }
}

impl Publishing for FakeFrameio {
    fn create_project(&self, account_id: &str, workspace_id: &str, name: &str) -> Result<Project> {
        self.call(format!("create_project {name}"))?;
        let mut world = self.0.borrow_mut();
        let n = world.projects.len() + 1;
        let project = Project { id: format!("p-{n}"), name: name.into(), account_id: account_id.into(), workspace_id: workspace_id.into(), root_folder_id: format!("root-{n}") };
        world.projects.push(project.clone());
        Ok(project)
    }

    fn create_folder(&self, _account_id: &str, parent_id: &str, name: &str) -> Result<Item> {
        self.call(format!("create_folder {parent_id} {name}"))?;
        let mut world = self.0.borrow_mut();
        let folder = Item { id: format!("fold-{}", world.folders.len() + 1), name: name.into(), kind: ItemKind::Folder, parent_id: parent_id.into() };
        world.folders.push(folder.clone());
        let as_file = File { kind: ItemKind::Folder, original: Original::Unavailable, size: None, name: name.into(), ..file(&folder.id, parent_id) };
        world.files.insert(folder.id.clone(), as_file);
        Ok(folder)
    }

    fn create_upload(&self, _account_id: &str, folder_id: &str, upload: &NewUpload) -> Result<Upload> {
        self.call(format!("create_upload {folder_id} {}", upload.name))?;
        let mut world = self.0.borrow_mut();
        let made = world.calls.iter().filter(|c| c.starts_with("create_upload")).count();
        let id = format!("up-{made}");
        world.uploads.insert(id.clone(), false);
        let half = upload.size / 2;
        let parts = vec![Part { url: format!("https://s3.example/{id}/1"), size: half }, Part { url: format!("https://s3.example/{id}/2"), size: upload.size - half }];
        Ok(Upload { file_id: id, parts })
    }

    fn upload_complete(&self, _account_id: &str, file_id: &str) -> Result<bool> {
        self.call(format!("upload_complete {file_id}"))?;
        Ok(self.0.borrow().uploads.get(file_id).copied().unwrap_or(false))
    }

    fn stack(&self, _account_id: &str, _folder_id: &str, earlier_id: &str, newer_id: &str) -> Result<String> {
        self.call(format!("stack {earlier_id} {newer_id}"))?;
        let mut world = self.0.borrow_mut();
        let existing = world.stacked.iter().find(|(_, v)| v.iter().any(|f| f == earlier_id)).map(|(k, _)| k.clone());
        let id = existing.unwrap_or_else(|| format!("stack-{}", world.stacked.len() + 1));
        let versions = world.stacked.entry(id.clone()).or_default();
        if versions.is_empty() {
            versions.push(earlier_id.into());
        }
        versions.push(newer_id.into());
        Ok(id)
    }

    fn create_share(&self, _account_id: &str, project_id: &str, share: &NewShare) -> Result<Share> {
        self.call(format!("create_share {project_id}"))?;
        let mut world = self.0.borrow_mut();
        world.shares.push(share.clone());
        let n = world.shares.len();
        Ok(Share { id: format!("share-{n}"), url: format!("https://f.io/r{n}"), invited: !share.reviewers.is_empty() })
    }

    fn delete_file(&self, _account_id: &str, file_id: &str) -> Result<()> {
        self.call(format!("delete_file {file_id}"))?;
        self.0.borrow_mut().uploads.remove(file_id);
        Ok(())
    }
}

/// A file of project `p1` with everything an import needs.
pub fn file(id: &str, parent: &str) -> File {
    File {
        id: id.into(),
        name: format!("{id}.mov"),
        kind: ItemKind::File,
        account_id: "acc1".into(),
        parent_id: Some(parent.into()),
        version_stack_id: None,
        project_id: "p1".into(),
        project_name: "Spring".into(),
        workspace_id: "t1".into(),
        size: Some(10),
        media_type: Some("video/quicktime".into()),
        original: Original::Ready { url: format!("https://s3.example/{id}") },
        xxhash64: Some("00112233445566aa".into()),
        view_url: Some(format!("https://app.frame.io/player/{id}")),
        fps: Some(24.0),
        duration: Some(2.5),
        frames: Some(60),
        status: Some("approved".into()),
        uploader: Some(User { id: "u9".into(), name: "Uma".into(), email: "uma@example.com".into() }),
    }
}

/// A world with project `p1` (root `root`) in workspace `t1`, an action "Send to
/// Archive" already there, member `u7` (Pat), and files `a1` (ready), `up` (still
/// uploading), `fold` (a folder), `v1` and `v2` in stack `vs` (head `v2`), and
/// `other` of another project. DAM user alice is connected.
pub fn world() -> Rc<RefCell<World>> {
    let mut world = World {
        projects: vec![Project {
            id: "p1".into(),
            name: "Spring".into(),
            account_id: "acc1".into(),
            workspace_id: "t1".into(),
            root_folder_id: "root".into(),
        }],
        members: vec![User { id: "u7".into(), name: "Pat".into(), email: "pat@example.com".into() }],
        actions: vec![("t1".into(), Action { id: "x1".into(), name: "Send to Archive".into() }, "other".into())],
        connected: vec!["alice".into()],
        ..World::default()
    };
    let uploading = File { original: Original::Uploading, ..file("up", "root") };
    let folder = File { kind: ItemKind::Folder, original: Original::Unavailable, size: None, ..file("fold", "root") };
    let other = File { project_id: "p9".into(), ..file("other", "elsewhere") };
    let stacked = |id: &str| File { version_stack_id: Some("vs".into()), ..file(id, "vs") };
    let stack = File { kind: ItemKind::VersionStack, original: Original::Unavailable, size: None, name: "clip".into(), ..file("vs", "root") };
    for f in [file("a1", "root"), uploading, folder, other, stacked("v1"), stacked("v2"), stack] {
        world.files.insert(f.id.clone(), f);
    }
    world.stacks.insert(
        "vs".into(),
        VersionStack { id: "vs".into(), name: "clip".into(), project_id: "p1".into(), head_file_id: "v2".into(), version_ids: vec!["v2".into(), "v1".into()] },
    );
    Rc::new(RefCell::new(world))
}

/// Provider settings of `generation` for the tests.
pub fn settings_for(generation: Generation) -> Settings {
    let form = [("api", generation.name()), ("client-id", "cid"), ("client-secret", "csecret"), ("public-url", "https://dam.example.com/frameio")];
    let form: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    settings::parse(&form).expect("test settings are valid")
}

/// A context on `host` whose Frame.io is `world`; only connected users reach it.
pub fn context<'h>(host: &'h dyn Host, world: &Rc<RefCell<World>>, generation: Generation) -> Context<'h> {
    let world = world.clone();
    Context::with_connect(
        host,
        settings_for(generation),
        Box::new(move |_, user| {
            if !world.borrow().connected.iter().any(|u| u == user) {
                return Err(Error::NotConnected(user.to_string()));
            }
            Ok(Box::new(FakeFrameio(world.clone())) as Box<dyn FrameioApi>)
        }),
    )
}
