//! Projects, folders, local uploads, version stacks and shares on Frame.io V4.

use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, FrameioError, Result};
use crate::frameio::model::{Item, NewShare, NewUpload, Part, Project, Share, Upload};
use crate::frameio::time::rfc3339;
use crate::frameio::transport::decode;
use crate::frameio::{Publishing, segment};
use crate::host::Method;

use super::V4;
use super::wire::{Data, WireAsset, WireProject};

/// `FileWithUploadUrls`: each part names its own size.
#[derive(Deserialize)]
struct WireLocalUpload {
    id: String,
    #[serde(default)]
    upload_urls: Vec<WirePart>,
}

#[derive(Deserialize)]
struct WirePart {
    url: String,
    size: u64,
}

/// `FileUploadStatus`.
#[derive(Deserialize)]
struct WireUploadStatus {
    #[serde(default)]
    upload_complete: bool,
}

/// A file read for its parent only.
#[derive(Deserialize)]
struct WireParent {
    parent_id: Option<String>,
}

/// A share: its id and the URL reviewers open.
#[derive(Deserialize)]
struct WireShare {
    id: String,
    short_url: Option<String>,
}

/// An object read for its id only.
#[derive(Deserialize)]
struct WireId {
    id: String,
}

impl Publishing for V4<'_> {
    fn create_project(&self, account_id: &str, workspace_id: &str, name: &str) -> Result<Project> {
        let path = Self::in_account(account_id, &format!("/workspaces/{}/projects", segment(workspace_id)?))?;
        let resp = self.transport.send(Method::Post, &path, Some(&json!({ "data": { "name": name } })))?;
        Ok(decode::<Data<WireProject>>(&resp)?.data.into_project(account_id))
    }

    fn create_folder(&self, account_id: &str, parent_id: &str, name: &str) -> Result<Item> {
        let path = Self::in_account(account_id, &format!("/folders/{}/folders", segment(parent_id)?))?;
        let resp = self.transport.send(Method::Post, &path, Some(&json!({ "data": { "name": name } })))?;
        Ok(decode::<Data<WireAsset>>(&resp)?.data.into())
    }

    fn create_upload(&self, account_id: &str, folder_id: &str, upload: &NewUpload) -> Result<Upload> {
        let path = Self::in_account(account_id, &format!("/folders/{}/files/local_upload", segment(folder_id)?))?;
        let body = json!({ "data": { "name": upload.name, "file_size": upload.size } });
        let resp = self.transport.send(Method::Post, &path, Some(&body))?;
        let created = decode::<Data<WireLocalUpload>>(&resp)?.data;
        if created.upload_urls.is_empty() {
            return Err(Error::Frameio(FrameioError::new(resp.status, "Frame.io gave no upload URLs")));
        }
        let parts = created.upload_urls.into_iter().map(|p| Part { url: p.url, size: p.size }).collect();
        Ok(Upload { file_id: created.id, parts })
    }

    fn upload_complete(&self, account_id: &str, file_id: &str) -> Result<bool> {
        let path = Self::in_account(account_id, &format!("/files/{}/status", segment(file_id)?))?;
        Ok(self.transport.get::<Data<WireUploadStatus>>(&path)?.data.upload_complete)
    }

    /// Into `earlier`'s stack when it is in one (moving a file into a stack makes it
    /// the head), else a new stack of the two in the folder.
    fn stack(&self, account_id: &str, folder_id: &str, earlier_id: &str, newer_id: &str) -> Result<String> {
        let earlier = self.transport.get::<Data<WireParent>>(&Self::in_account(account_id, &format!("/files/{}", segment(earlier_id)?))?)?;
        if let Some(parent) = earlier.data.parent_id {
            let stack_path = Self::in_account(account_id, &format!("/version_stacks/{}", segment(&parent)?))?;
            match self.transport.get::<Data<WireId>>(&stack_path) {
                Ok(stack) => {
                    let move_path = Self::in_account(account_id, &format!("/files/{}/move", segment(newer_id)?))?;
                    self.transport.send(Method::Patch, &move_path, Some(&json!({ "data": { "parent_id": stack.data.id } })))?;
                    return Ok(stack.data.id);
                }
                Err(Error::Frameio(e)) if e.status == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let path = Self::in_account(account_id, &format!("/folders/{}/version_stacks", segment(folder_id)?))?;
        let resp = self.transport.send(Method::Post, &path, Some(&json!({ "data": { "file_ids": [earlier_id, newer_id] } })))?;
        Ok(decode::<Data<WireId>>(&resp)?.data.id)
    }

    /// A share of the assets, then the reviewers, whom Frame.io invites by email.
    fn create_share(&self, account_id: &str, project_id: &str, share: &NewShare) -> Result<Share> {
        let mut data = json!({
            "type": "asset",
            "name": share.name,
            "description": share.description,
            "access": if share.password.is_some() { "secure" } else { "public" },
            "asset_ids": share.asset_ids,
            "downloading_enabled": share.allow_download,
            "watermark_enabled": share.watermark,
        });
        if let Some(expires_at) = share.expires_at {
            data["expiration"] = rfc3339(expires_at).into();
        }
        if let Some(password) = &share.password {
            data["passphrase"] = password.clone().into();
        }
        let path = Self::in_account(account_id, &format!("/projects/{}/shares", segment(project_id)?))?;
        let resp = self.transport.send(Method::Post, &path, Some(&json!({ "data": data })))?;
        let made = decode::<Data<WireShare>>(&resp)?.data;
        let url = made.short_url.ok_or_else(|| Error::Frameio(FrameioError::new(resp.status, "the share has no URL")))?;
        let invited = !share.reviewers.is_empty();
        if invited {
            let reviewers_path = Self::in_account(account_id, &format!("/shares/{}/reviewers", segment(&made.id)?))?;
            let body = json!({ "data": {
                "message": share.description,
                "notify_by_email": true,
                "reviewers": { "emails": share.reviewers },
            }});
            self.transport.send(Method::Post, &reviewers_path, Some(&body))?;
        }
        Ok(Share { id: made.id, url, invited })
    }

    fn delete_file(&self, account_id: &str, file_id: &str) -> Result<()> {
        let path = Self::in_account(account_id, &format!("/files/{}", segment(file_id)?))?;
        match self.transport.send(Method::Delete, &path, None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
