//! Projects, folders, uploads, version stacks and review links on the Legacy API.

use serde::Deserialize;
use serde_json::json;

use crate::error::{Error, FrameioError, Result};
use crate::frameio::model::{Item, NewShare, NewUpload, Part, Project, Share, Upload};
use crate::frameio::time::rfc3339;
use crate::frameio::transport::decode;
use crate::frameio::{Publishing, segment};
use crate::host::Method;

use super::V2;
use super::wire::{WireChild, WireProject};

/// A file made for an upload: its part URLs.
#[derive(Deserialize)]
struct WireUploadAsset {
    id: String,
    #[serde(default)]
    upload_urls: Vec<String>,
}

/// A file read for its upload state.
#[derive(Deserialize)]
struct WireUploadState {
    upload_completed_at: Option<String>,
}

/// A review link: its id and the URL reviewers open.
#[derive(Deserialize)]
struct WireReviewLink {
    id: String,
    short_url: Option<String>,
}

/// The stack a version joined.
#[derive(Deserialize)]
struct WireStack {
    id: String,
}

/// How the Legacy API splits a file over its part URLs: `ceil(size / parts)` bytes
/// each, the last part running to the end.
fn split(size: u64, urls: Vec<String>) -> Result<Vec<Part>> {
    if urls.is_empty() {
        return Err(Error::Frameio(FrameioError::new(0, "Frame.io gave no upload URLs")));
    }
    let count = urls.len() as u64;
    let chunk = size.div_ceil(count).max(1);
    let mut left = size;
    let parts: Vec<Part> = urls
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            let part = if i as u64 + 1 == count { left } else { chunk.min(left) };
            left -= part;
            Part { url, size: part }
        })
        .collect();
    Ok(parts)
}

impl Publishing for V2<'_> {
    fn create_project(&self, _account_id: &str, workspace_id: &str, name: &str) -> Result<Project> {
        let resp = self.transport.send(Method::Post, &format!("/teams/{}/projects", segment(workspace_id)?), Some(&json!({ "name": name })))?;
        Ok(decode::<WireProject>(&resp)?.into())
    }

    fn create_folder(&self, _account_id: &str, parent_id: &str, name: &str) -> Result<Item> {
        let body = json!({ "type": "folder", "name": name });
        let resp = self.transport.send(Method::Post, &format!("/assets/{}/children", segment(parent_id)?), Some(&body))?;
        Ok(decode::<WireChild>(&resp)?.into())
    }

    fn create_upload(&self, _account_id: &str, folder_id: &str, upload: &NewUpload) -> Result<Upload> {
        let body = json!({ "type": "file", "name": upload.name, "filesize": upload.size, "filetype": upload.media_type });
        let resp = self.transport.send(Method::Post, &format!("/assets/{}/children", segment(folder_id)?), Some(&body))?;
        let created: WireUploadAsset = decode(&resp)?;
        Ok(Upload { parts: split(upload.size, created.upload_urls)?, file_id: created.id })
    }

    fn upload_complete(&self, _account_id: &str, file_id: &str) -> Result<bool> {
        let state: WireUploadState = self.transport.get(&format!("/assets/{}", segment(file_id)?))?;
        Ok(state.upload_completed_at.is_some())
    }

    /// `POST /assets/{earlier}/version` puts `newer` on `earlier`'s stack, making one
    /// when `earlier` is not in a stack yet.
    fn stack(&self, _account_id: &str, _folder_id: &str, earlier_id: &str, newer_id: &str) -> Result<String> {
        let body = json!({ "next_asset_id": segment(newer_id)? });
        let resp = self.transport.send(Method::Post, &format!("/assets/{}/version", segment(earlier_id)?), Some(&body))?;
        Ok(decode::<WireStack>(&resp)?.id)
    }

    /// A review link, then its assets. The Legacy API neither invites reviewers nor
    /// takes a watermark setting.
    fn create_share(&self, _account_id: &str, project_id: &str, share: &NewShare) -> Result<Share> {
        let mut body = json!({
            "name": share.name,
            "description": share.description,
            "allow_approvals": true,
            "enable_downloading": share.allow_download,
        });
        if let Some(expires_at) = share.expires_at {
            body["expires_at"] = rfc3339(expires_at).into();
        }
        if let Some(password) = &share.password {
            body["password"] = password.clone().into();
        }
        let resp = self.transport.send(Method::Post, &format!("/projects/{}/review_links", segment(project_id)?), Some(&body))?;
        let link: WireReviewLink = decode(&resp)?;
        let assets = json!({ "asset_ids": share.asset_ids });
        self.transport.send(Method::Post, &format!("/review_links/{}/assets", segment(&link.id)?), Some(&assets))?;
        let url = link.short_url.ok_or_else(|| Error::Frameio(FrameioError::new(resp.status, "the review link has no URL")))?;
        Ok(Share { id: link.id, url, invited: false })
    }

    fn delete_file(&self, _account_id: &str, file_id: &str) -> Result<()> {
        match self.transport.send(Method::Delete, &format!("/assets/{}", segment(file_id)?), None) {
            Ok(_) => Ok(()),
            Err(Error::Frameio(e)) if e.status == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn parts_are_equal_but_the_last_runs_to_the_end() {
        let sizes = |size, n: usize| split(size, vec![String::new(); n]).unwrap().into_iter().map(|p| p.size).collect::<Vec<_>>();
        assert_eq!(sizes(10, 3), [4, 4, 2]);
        assert_eq!(sizes(9, 3), [3, 3, 3]);
        assert_eq!(sizes(1, 1), [1]);
        assert_eq!(sizes(2, 3), [1, 1, 0]);
        assert!(split(5, Vec::new()).is_err());
    }
}
