//! Which DAM document a pushed file lands in, and the Frame.io metadata it carries.

use super::super::Context;
use super::super::bindings::Binding;
use crate::error::Result;
use crate::frameio::FrameioApi;
use crate::frameio::model::File;

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

/// The Frame.io metadata a document carries: the same names on both generations.
pub fn properties(file: &File, binding: &Binding, pushed_by: &str) -> Vec<(String, String)> {
    let or_binding = |value: &str, fallback: &str| if value.is_empty() { fallback.to_string() } else { value.to_string() };
    let mut props = vec![
        ("frameio.asset-id", file.id.clone()),
        ("frameio.name", file.name.clone()),
        ("frameio.api", binding.generation.name().to_string()),
        ("frameio.project-id", or_binding(&file.project_id, &binding.project_id)),
        ("frameio.project", or_binding(&file.project_name, &binding.project_name)),
        ("frameio.team-id", or_binding(&file.workspace_id, &binding.workspace_id)),
        ("frameio.pushed-by", pushed_by.to_string()),
    ];
    let optional = [
        ("frameio.account-id", Some(binding.account_id.clone()).filter(|a| !a.is_empty())),
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
