//! Which DAM document a pushed file lands in, and the Frame.io metadata it carries.

use super::super::Context;
use super::super::bindings::Binding;
use crate::error::Result;
use crate::frameio::FrameioApi;
use crate::frameio::model::{File, Generation};

/// The external key of the document a file's import adds a version to.
///
/// A file in a version stack belongs to the stack's document, so every version of a
/// clip lands in one document. A file pushed before it was stacked made a document
/// under its own key: when one of the stack's versions already has such a document
/// in the folder, the stack keeps using it rather than starting a second one.
pub fn document_key(ctx: &Context, api: &dyn FrameioApi, binding: &Binding, file: &File) -> Result<String> {
    let Some(stack_id) = &file.version_stack_id else {
        return Ok(key_of(&file.id));
    };
    let stack = api.version_stack(&binding.account_id, stack_id)?;
    for version in &stack.version_ids {
        let earlier = key_of(version);
        if ctx.host.find_document(&binding.folder_id, &earlier)?.is_some() {
            return Ok(earlier);
        }
    }
    Ok(key_of(stack_id))
}

fn key_of(id: &str) -> String {
    format!("frameio:{id}")
}

/// The project a file came from, for the metadata Frame.io's answer leaves out.
pub struct Origin<'a> {
    pub generation: Generation,
    pub account_id: &'a str,
    pub workspace_id: &'a str,
    pub project_id: &'a str,
    pub project_name: &'a str,
}

impl<'a> Origin<'a> {
    /// The binding's project.
    pub fn of(binding: &'a Binding) -> Origin<'a> {
        Origin {
            generation: binding.generation,
            account_id: &binding.account_id,
            workspace_id: &binding.workspace_id,
            project_id: &binding.project_id,
            project_name: &binding.project_name,
        }
    }
}

/// The Frame.io metadata a document carries: the same names on both generations.
/// `brought_by` is who pushed the file (or archived it).
pub fn properties(file: &File, origin: &Origin, brought_by: &str) -> Vec<(String, String)> {
    let or_origin = |value: &str, fallback: &str| if value.is_empty() { fallback.to_string() } else { value.to_string() };
    let mut props = vec![
        ("frameio.asset-id", file.id.clone()),
        ("frameio.name", file.name.clone()),
        ("frameio.api", origin.generation.name().to_string()),
        ("frameio.project-id", or_origin(&file.project_id, origin.project_id)),
        ("frameio.project", or_origin(&file.project_name, origin.project_name)),
        ("frameio.team-id", or_origin(&file.workspace_id, origin.workspace_id)),
        ("frameio.pushed-by", brought_by.to_string()),
    ];
    let optional = [
        ("frameio.account-id", Some(origin.account_id.to_string()).filter(|a| !a.is_empty())),
        ("frameio.link", file.view_url.clone()),
        ("frameio.uploader", file.uploader.as_ref().map(|u| u.display()).filter(|d| !d.is_empty())),
        ("frameio.filetype", file.media_type.clone()),
        ("frameio.filesize", file.size.map(|v| v.to_string())),
        ("frameio.fps", file.fps.map(|v| v.to_string())),
        ("frameio.duration", file.duration.map(|v| v.to_string())),
        ("frameio.frames", file.frames.map(|v| v.to_string())),
        ("frameio.label", file.status.clone()),
        ("frameio.checksum", file.xxhash64.as_ref().map(|h| format!("xxh64:{h}"))),
        ("frameio.version-stack-id", file.version_stack_id.clone()),
    ];
    props.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
