//! Which Frame.io files are linked to which DAM documents, and which comments are
//! whose: the records the sync keeps so that it can follow files, recognise its own
//! comments, and find a deleted comment's file.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::flows::bindings::Binding;
use crate::frameio::model::Generation;
use crate::host::Host;
use crate::store;

/// `link/<file id>`: a Frame.io file followed for a DAM document.
const LINK: &str = "link/";
/// `document-link/<document id>`: the newest file linked to a document.
const DOCUMENT_LINK: &str = "document-link/";
/// `comment-file/<comment id>`: the file a Frame.io comment is on.
const COMMENT_FILE: &str = "comment-file/";
/// `dam-comment/<DAM comment id>`: the Frame.io comment a DAM comment is synced with.
const DAM_COMMENT: &str = "dam-comment/";

/// A Frame.io file linked to a DAM document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Link {
    pub file_id: String,
    pub document_id: String,
    pub generation: Generation,
    pub account_id: String,
    pub workspace_id: String,
    pub project_id: String,
    /// The binding that linked it; its owner's connection reads and writes Frame.io
    /// when no other user's can.
    pub binding_id: String,
    pub user: String,
    /// Frames per second, for timecodes, when known.
    pub fps: Option<f64>,
}

impl Link {
    /// The link a push through `binding` makes.
    pub fn new(file_id: &str, document_id: &str, binding: &Binding, fps: Option<f64>) -> Link {
        Link {
            file_id: file_id.to_string(),
            document_id: document_id.to_string(),
            generation: binding.generation,
            account_id: binding.account_id.clone(),
            workspace_id: binding.workspace_id.clone(),
            project_id: binding.project_id.clone(),
            binding_id: binding.id.clone(),
            user: binding.user.clone(),
            fps,
        }
    }
}

/// Records a link, and makes its file the one the document's DAM comments go to.
pub fn record(host: &dyn Host, link: &Link) -> Result<()> {
    store::save(host, &format!("{LINK}{}", link.file_id), link)?;
    store::save(host, &format!("{DOCUMENT_LINK}{}", link.document_id), &link.file_id)?;
    Ok(())
}

/// The link of a file, if it is followed.
pub fn of_file(host: &dyn Host, file_id: &str) -> Result<Option<Link>> {
    Ok(store::load(host, &format!("{LINK}{file_id}"))?.map(|s| s.value))
}

/// The link of the newest file of a document, if it has one.
pub fn of_document(host: &dyn Host, document_id: &str) -> Result<Option<Link>> {
    let Some(file_id) = store::load::<String>(host, &format!("{DOCUMENT_LINK}{document_id}"))? else {
        return Ok(None);
    };
    of_file(host, &file_id.value)
}

/// Every linked file's id, in byte order.
pub fn files(host: &dyn Host) -> Result<Vec<String>> {
    Ok(store::list_all(host, LINK)?.into_iter().filter_map(|key| key.strip_prefix(LINK).map(str::to_string)).collect())
}

/// Remembers the file a Frame.io comment is on, for when it is deleted.
pub fn remember_comment(host: &dyn Host, comment_id: &str, file_id: &str) -> Result<()> {
    let key = format!("{COMMENT_FILE}{comment_id}");
    if store::load::<String>(host, &key)?.is_none_or(|s| s.value != file_id) {
        store::save(host, &key, &file_id)?;
    }
    Ok(())
}

/// The file a Frame.io comment was on, if the sync has seen it.
pub fn file_of_comment(host: &dyn Host, comment_id: &str) -> Result<Option<String>> {
    Ok(store::load(host, &format!("{COMMENT_FILE}{comment_id}"))?.map(|s| s.value))
}

/// Remembers which Frame.io comment a DAM comment is synced with.
pub fn pair_comment(host: &dyn Host, dam_comment_id: &str, frameio_comment_id: &str) -> Result<()> {
    let key = format!("{DAM_COMMENT}{dam_comment_id}");
    if store::load::<String>(host, &key)?.is_none_or(|s| s.value != frameio_comment_id) {
        store::save(host, &key, &frameio_comment_id)?;
    }
    Ok(())
}

/// The Frame.io comment a DAM comment is synced with, if any.
pub fn paired_comment(host: &dyn Host, dam_comment_id: &str) -> Result<Option<String>> {
    Ok(store::load(host, &format!("{DAM_COMMENT}{dam_comment_id}"))?.map(|s| s.value))
}

/// The DAM's external key for a Frame.io comment.
pub fn comment_key(frameio_comment_id: &str) -> String {
    format!("frameio:{frameio_comment_id}")
}

/// The Frame.io comment id in a DAM external key, if it is one of ours.
pub fn comment_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("frameio:")
}
