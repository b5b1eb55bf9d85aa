//! The Frame.io Legacy API (v2) client.
//!
//! Wire structs mirror the v2 JSON (the shapes of the official `frameioclient`
//! models); every field the connector does not strictly need is optional, so a
//! response that omits one still decodes. Lists follow `page`/`total-pages`.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::model::{Action, Asset, AssetKind, CreatedAction, Entry, NewAction, Project, User};
use super::{FrameioApi, MAX_LIST_ENTRIES, is_frameio_id};
use crate::error::{Error, FrameioError, Result};
use crate::host::{Host, HostError, HttpRequest, HttpResponse, Method};

/// Entries asked for per page; the v2 API accepts up to 100.
const PAGE_SIZE: usize = 100;
/// Deadline for one API call. A step makes a few calls, and all of them must fit in
/// the host's per-call deadline (30 s in the reference host); a slower answer is a
/// timeout, which a job retries, rather than a trap.
const TIMEOUT_MS: u32 = 5_000;

/// A v2 client acting for one user.
pub struct V2<'h> {
    host: &'h dyn Host,
    api_url: String,
    token: String,
}

impl<'h> V2<'h> {
    /// A client for `api_url` (for example `https://api.frame.io/v2`) with a bearer token.
    pub fn new(host: &'h dyn Host, api_url: &str, token: &str) -> Self {
        V2 { host, api_url: api_url.trim_end_matches('/').to_string(), token: token.to_string() }
    }

    fn call(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<HttpResponse> {
        let mut headers = vec![
            ("authorization".to_string(), format!("Bearer {}", self.token)),
            ("accept".to_string(), "application/json".to_string()),
        ];
        if body.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        let req = HttpRequest {
            method,
            url: format!("{}{}", self.api_url, path),
            headers,
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            timeout_ms: TIMEOUT_MS,
        };
        let resp = self.host.http_send(req).map_err(unreachable_error)?;
        if resp.status >= 400 {
            return Err(Error::Frameio(error_from(&resp)));
        }
        Ok(resp)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        decode(&self.call(Method::Get, path, None)?)
    }

    /// Follows `page` until `total-pages` (or a short page) says there is no more.
    fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1.. {
            let resp = self.call(Method::Get, &format!("{path}{sep}page={page}&page_size={PAGE_SIZE}"), None)?;
            let batch: Vec<T> = decode(&resp)?;
            let short = batch.len() < PAGE_SIZE;
            // An empty page ends the list whatever `total-pages` claims.
            let empty = batch.is_empty();
            items.extend(batch);
            let total_pages = resp.header("total-pages").and_then(|v| v.trim().parse::<usize>().ok());
            let last = match total_pages {
                Some(total) => page >= total,
                None => short,
            };
            if last || empty || items.len() >= MAX_LIST_ENTRIES {
                break;
            }
        }
        items.truncate(MAX_LIST_ENTRIES);
        Ok(items)
    }
}

/// A transport failure: no answer from Frame.io at all.
fn unreachable_error(e: HostError) -> Error {
    match e {
        HostError::Refused(why) => Error::Host(format!("the host refused to reach Frame.io: {why}")),
        other => Error::Frameio(FrameioError::new(0, other.to_string())),
    }
}

fn decode<T: DeserializeOwned>(resp: &HttpResponse) -> Result<T> {
    serde_json::from_slice(&resp.body).map_err(|e| {
        Error::Frameio(FrameioError::new(resp.status, format!("unexpected response from Frame.io: {e}")))
    })
}

/// Frame.io's documented error body: `{"code", "message", "errors": [{"detail", ...}]}`.
#[derive(Deserialize)]
struct WireError {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<WireErrorDetail>,
}

#[derive(Deserialize)]
struct WireErrorDetail {
    detail: Option<String>,
}

fn error_from(resp: &HttpResponse) -> FrameioError {
    let parsed: Option<WireError> = serde_json::from_slice(&resp.body).ok();
    let detail = parsed.as_ref().and_then(|e| e.errors.iter().find_map(|d| d.detail.clone()));
    let message = parsed
        .and_then(|e| e.message)
        .map(|m| match &detail {
            Some(d) if d != &m => format!("{m}: {d}"),
            _ => m,
        })
        .unwrap_or_else(|| format!("HTTP {}", resp.status));
    FrameioError { status: resp.status, message, retry_after_ms: retry_hint(resp) }
}

/// How long Frame.io asks us to wait: `Retry-After` in seconds when present, else,
/// for a 429 with no requests left, the rate-limit window (`x-ratelimit-window`, ms).
/// Whoever retries bounds it (see `push::retry_delay`).
fn retry_hint(resp: &HttpResponse) -> Option<u32> {
    let number = |name| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let hint_ms = match number("retry-after") {
        Some(secs) => secs.saturating_mul(1000),
        None if resp.status == 429 && number("x-ratelimit-remaining") == Some(0) => number("x-ratelimit-window")?,
        None => return None,
    };
    Some(u32::try_from(hint_ms).unwrap_or(u32::MAX))
}

#[derive(Deserialize)]
struct WireUser {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl From<WireUser> for User {
    fn from(u: WireUser) -> User {
        User { id: u.id, name: u.name.unwrap_or_default(), email: u.email.unwrap_or_default() }
    }
}

#[derive(Deserialize)]
struct WireOwner {
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct WireAccount {
    id: String,
    display_name: Option<String>,
    owner: Option<WireOwner>,
}

impl From<WireAccount> for Entry {
    /// The name to show follows Frame.io's guide: display name, else the owner's
    /// name, else the owner's email.
    fn from(a: WireAccount) -> Entry {
        let owner = a.owner.unwrap_or(WireOwner { name: None, email: None });
        let name = a
            .display_name
            .filter(|n| !n.is_empty())
            .or(owner.name.map(|n| format!("{n}'s Account")))
            .or(owner.email.map(|e| format!("{e}'s Account")))
            .unwrap_or_else(|| a.id.clone());
        Entry { id: a.id, name, parent_id: String::new(), root_folder_id: String::new() }
    }
}

#[derive(Deserialize)]
struct WireTeam {
    id: String,
    name: String,
    account_id: Option<String>,
}

impl From<WireTeam> for Entry {
    fn from(t: WireTeam) -> Entry {
        Entry { id: t.id, name: t.name, parent_id: t.account_id.unwrap_or_default(), root_folder_id: String::new() }
    }
}

#[derive(Deserialize)]
struct WireProject {
    id: String,
    name: String,
    team_id: String,
    root_asset_id: String,
}

impl From<WireProject> for Project {
    fn from(p: WireProject) -> Project {
        Project { id: p.id, name: p.name, team_id: p.team_id, root_folder_id: p.root_asset_id }
    }
}

#[derive(Deserialize)]
struct WireChild {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    parent_id: Option<String>,
}

#[derive(Deserialize)]
struct WireChecksums {
    xx_hash: Option<String>,
}

#[derive(Deserialize)]
struct WireProjectRef {
    name: Option<String>,
}

#[derive(Deserialize)]
struct WireAsset {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    parent_id: Option<String>,
    project_id: Option<String>,
    team_id: Option<String>,
    filesize: Option<u64>,
    filetype: Option<String>,
    original: Option<String>,
    checksums: Option<WireChecksums>,
    upload_completed_at: Option<String>,
    fps: Option<f64>,
    duration: Option<f64>,
    frames: Option<u64>,
    label: Option<String>,
    creator: Option<WireUser>,
    project: Option<WireProjectRef>,
}

fn asset_kind(kind: &str) -> AssetKind {
    match kind {
        "file" => AssetKind::File,
        "folder" => AssetKind::Folder,
        "version_stack" => AssetKind::VersionStack,
        other => AssetKind::Other(other.to_string()),
    }
}

impl From<WireAsset> for Asset {
    fn from(a: WireAsset) -> Asset {
        Asset {
            kind: asset_kind(&a.kind),
            upload_complete: a.upload_completed_at.is_some(),
            xxhash64: a.checksums.and_then(|c| c.xx_hash).map(|h| h.to_ascii_lowercase()),
            project_name: a.project.and_then(|p| p.name).unwrap_or_default(),
            uploader: a.creator.map(User::from),
            id: a.id,
            name: a.name,
            parent_id: a.parent_id,
            version_stack_id: None,
            project_id: a.project_id.unwrap_or_default(),
            team_id: a.team_id.unwrap_or_default(),
            filesize: a.filesize,
            filetype: a.filetype,
            original_url: a.original,
            fps: a.fps,
            duration: a.duration,
            frames: a.frames,
            label: a.label,
        }
    }
}

#[derive(Deserialize)]
struct WireAction {
    id: String,
    name: String,
}

/// The create response nests the signing secret in `webhook` (the v2 `Action`
/// schema has no top-level secret); a top-level `secret` is accepted too.
#[derive(Deserialize)]
struct WireCreatedAction {
    id: String,
    secret: Option<String>,
    webhook: Option<WireActionWebhook>,
}

#[derive(Deserialize)]
struct WireActionWebhook {
    secret: Option<String>,
}

#[derive(Deserialize)]
struct WireMember {
    user_id: Option<String>,
    user: Option<WireUser>,
}

/// Path segments come from users and Frame.io: refuse anything that could
/// change the path rather than encode it.
fn seg(id: &str) -> Result<&str> {
    if is_frameio_id(id) { Ok(id) } else { Err(Error::InvalidInput(format!("malformed Frame.io id {id:?}"))) }
}

impl FrameioApi for V2<'_> {
    fn me(&self) -> Result<User> {
        Ok(self.get::<WireUser>("/me")?.into())
    }

    fn accounts(&self) -> Result<Vec<Entry>> {
        Ok(self.get_all::<WireAccount>("/accounts")?.into_iter().map(Entry::from).collect())
    }

    fn teams(&self, account_id: &str) -> Result<Vec<Entry>> {
        let path = format!("/accounts/{}/teams", seg(account_id)?);
        Ok(self.get_all::<WireTeam>(&path)?.into_iter().map(Entry::from).collect())
    }

    fn projects(&self, team_id: &str) -> Result<Vec<Project>> {
        let path = format!("/teams/{}/projects", seg(team_id)?);
        Ok(self.get_all::<WireProject>(&path)?.into_iter().map(Project::from).collect())
    }

    fn shared_projects(&self) -> Result<Vec<Project>> {
        Ok(self.get_all::<WireProject>("/projects/shared")?.into_iter().map(Project::from).collect())
    }

    fn project(&self, project_id: &str) -> Result<Project> {
        Ok(self.get::<WireProject>(&format!("/projects/{}", seg(project_id)?))?.into())
    }

    /// Children listing has no documented type filter, so folders are picked here.
    fn folders(&self, folder_id: &str) -> Result<Vec<Entry>> {
        let children: Vec<WireChild> = self.get_all(&format!("/assets/{}/children", seg(folder_id)?))?;
        Ok(children
            .into_iter()
            .filter(|c| c.kind == "folder")
            .map(|c| Entry { id: c.id, name: c.name, parent_id: c.parent_id.unwrap_or_default(), root_folder_id: String::new() })
            .collect())
    }

    /// Reads the asset and, for one inside a version stack, notes the stack.
    fn asset(&self, asset_id: &str) -> Result<Asset> {
        let mut asset: Asset = self.get::<WireAsset>(&format!("/assets/{}", seg(asset_id)?))?.into();
        if let Some(parent) = asset.parent_id.as_deref() {
            let parent: WireChild = self.get(&format!("/assets/{}", seg(parent)?))?;
            if parent.kind == "version_stack" {
                asset.version_stack_id = Some(parent.id);
            }
        }
        Ok(asset)
    }

    fn team_actions(&self, team_id: &str) -> Result<Vec<Action>> {
        let actions: Vec<WireAction> = self.get_all(&format!("/teams/{}/actions", seg(team_id)?))?;
        Ok(actions.into_iter().map(|a| Action { id: a.id, name: a.name }).collect())
    }

    fn create_action(&self, team_id: &str, action: &NewAction) -> Result<CreatedAction> {
        let body = serde_json::json!({
            "name": action.name,
            "description": action.description,
            "event": action.event,
            "url": action.url,
            "allow_collaborators": true,
        });
        let resp = self.call(Method::Post, &format!("/teams/{}/actions", seg(team_id)?), Some(&body))?;
        let created: WireCreatedAction = decode(&resp)?;
        let secret = created.webhook.and_then(|w| w.secret).or(created.secret).filter(|s| !s.is_empty());
        match secret {
            Some(secret) => Ok(CreatedAction { id: created.id, secret }),
            None => {
                // Without its secret the action's requests cannot be verified: remove it.
                let _ = self.delete_action(&created.id);
                Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io created the custom action without a signing secret")))
            }
        }
    }

    fn delete_action(&self, action_id: &str) -> Result<()> {
        match self.call(Method::Delete, &format!("/actions/{}", seg(action_id)?), None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn team_member(&self, team_id: &str, user_id: &str) -> Result<Option<User>> {
        let members: Vec<WireMember> = self.get_all(&format!("/teams/{}/members", seg(team_id)?))?;
        Ok(members
            .into_iter()
            .filter_map(|m| m.user.map(|u| (m.user_id, u)))
            .find(|(member_id, u)| u.id == user_id || member_id.as_deref() == Some(user_id))
            .map(|(_, u)| u.into()))
    }
}
