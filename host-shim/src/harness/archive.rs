//! What an archive's tests compare: the DAM's copy of a project, read through the
//! admin API, and what it must be, from the simulator's own view of the project.

use std::collections::{BTreeMap, HashMap};

use frameio_sim::ProjectTree;
use reqwest::Method;
use serde_json::Value;

use super::AdminClient;

/// A document as an archive leaves it: its folder's path below the archive's
/// folder, its versions' sizes in order, and how many comments it holds.
pub type CopiedDocument = (String, Vec<u64>, usize);

/// A project's copy: folder paths below the archive's folder, and documents by key.
#[derive(Debug, PartialEq, Eq)]
pub struct ProjectCopy {
    pub folders: Vec<String>,
    pub documents: BTreeMap<String, CopiedDocument>,
}

impl ProjectCopy {
    /// Versions in all.
    pub fn versions(&self) -> usize {
        self.documents.values().map(|(_, sizes, _)| sizes.len()).sum()
    }

    /// Bytes in all.
    pub fn bytes(&self) -> u64 {
        self.documents.values().flat_map(|(_, sizes, _)| sizes).sum()
    }
}

/// The DAM's copy below the folder at `root`. Fails on a document seen twice.
pub async fn dam_copy(admin: &AdminClient, root: &str) -> anyhow::Result<ProjectCopy> {
    let listed = admin.admin_ok(Method::GET, "/folders", None).await?;
    let below = |path: &str| path.strip_prefix(root).unwrap_or(path).to_string();
    let folders: Vec<(String, String)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["id"].as_str()?.to_string(), f["path"].as_str()?.to_string())))
        .filter(|(_, path)| path == root || path.starts_with(&format!("{root}/")))
        .collect();
    let mut paths: Vec<String> = folders.iter().map(|(_, p)| below(p)).filter(|p| !p.is_empty()).collect();
    paths.sort();
    let mut documents = BTreeMap::new();
    for (id, path) in &folders {
        for doc in admin.documents(id).await? {
            let full = admin.document(doc["id"].as_str().unwrap_or_default()).await?;
            let sizes = full["versions"].as_array().into_iter().flatten().filter_map(|v| v["size"].as_u64()).collect();
            let key = doc["external_key"].as_str().unwrap_or_default().to_string();
            let previous = documents.insert(key.clone(), (below(path), sizes, count_comments(&full["comments"])));
            anyhow::ensure!(previous.is_none(), "document {key} is in the DAM twice");
        }
    }
    Ok(ProjectCopy { folders: paths, documents })
}

fn count_comments(thread: &Value) -> usize {
    thread.as_array().map_or(0, |all| all.iter().map(|c| 1 + count_comments(&c["replies"])).sum())
}

/// What a whole archive of `tree` holds, and how many files it must leave out
/// (unfinished uploads).
pub fn expected_copy(tree: &ProjectTree) -> (ProjectCopy, usize) {
    let mut folders: Vec<String> = tree.folders.iter().map(|f| f.path.clone()).collect();
    folders.sort();
    let folder_of = |path: &str| path.rsplit_once('/').map(|(dir, _)| dir.to_string()).unwrap_or_default();
    let mut documents = BTreeMap::new();
    let mut left_out = 0;
    let by_id: HashMap<&str, _> = tree.files.iter().map(|f| (f.id.as_str(), f)).collect();
    for file in tree.files.iter().filter(|f| f.stack_id.is_none()) {
        if !file.uploaded {
            left_out += 1;
            continue;
        }
        documents.insert(format!("frameio:{}", file.id), (folder_of(&file.path), vec![file.size], file.comments + file.replies));
    }
    for stack in &tree.stacks {
        let versions: Vec<_> = stack.file_ids.iter().filter_map(|id| by_id.get(id.as_str())).collect();
        left_out += versions.iter().filter(|v| !v.uploaded).count();
        let kept: Vec<_> = versions.iter().filter(|v| v.uploaded).collect();
        if kept.is_empty() {
            continue;
        }
        let comments = kept.iter().map(|v| v.comments + v.replies).sum();
        documents.insert(format!("frameio:{}", stack.id), (folder_of(&stack.path), kept.iter().map(|v| v.size).collect(), comments));
    }
    (ProjectCopy { folders, documents }, left_out)
}
