//! The automatic project structure (preroll's): one Frame.io project per show, one
//! folder per episode inside it, read from the document's folder path.
//!
//! A show's project is found by the id recorded when it was made, then by name, and
//! made only when neither finds it; the record is claimed with a compare-and-swap
//! first, so two sends for a new show at once make one project (the one that loses
//! waits for the winner's id).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flows::Context;
use crate::frameio::model::ItemKind;
use crate::frameio::{FrameioApi, collect_all};
use crate::store;

/// `review-project/<workspace id>/<show>`: the project made (or found) for a show.
const PROJECT: &str = "review-project/";
/// `review-folder/<project id>/<episode>`: the folder made (or found) for an episode.
const FOLDER: &str = "review-folder/";
/// How long a claim holds while its maker works.
const CLAIM_SECS: u64 = 60;

/// The show and episode a folder path names under `pattern`, if it matches.
pub fn show_and_episode(pattern: &str, folder_path: &str) -> Option<(String, String)> {
    let path: Vec<&str> = folder_path.trim_end_matches('/').split('/').skip(1).collect();
    let pattern: Vec<&str> = pattern.trim_end_matches('/').split('/').skip(1).collect();
    if path.len() < pattern.len() {
        return None;
    }
    let (mut show, mut episode) = (None, None);
    for (want, got) in pattern.iter().zip(&path) {
        match *want {
            "{show}" => show = Some(got.to_string()),
            "{episode}" => episode = Some(got.to_string()),
            literal if literal == *got => {}
            _ => return None,
        }
    }
    show.zip(episode).filter(|(s, e)| !s.trim().is_empty() && !e.trim().is_empty())
}

/// A claimed name: made (with its id) or being made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
enum Claim {
    Making,
    Made(String),
}

/// The project of `show` in the workspace: recorded, found by name, or made.
pub fn project(ctx: &Context, api: &dyn FrameioApi, account_id: &str, workspace_id: &str, show: &str) -> Result<(String, String)> {
    let key = format!("{PROJECT}{workspace_id}/{}", hex::encode(show));
    let id = claimed(ctx, &key, || {
        let projects = collect_all(|cursor| api.projects(account_id, workspace_id, cursor))?;
        match projects.into_iter().find(|p| p.name == show) {
            Some(found) => Ok(found.id),
            None => Ok(api.create_project(account_id, workspace_id, show)?.id),
        }
    })?;
    let project = api.project(account_id, &id)?;
    Ok((project.id, project.root_folder_id))
}

/// The folder of `episode` in the project's root: recorded, found by name, or made.
pub fn folder(ctx: &Context, api: &dyn FrameioApi, account_id: &str, project_id: &str, root_id: &str, episode: &str) -> Result<String> {
    let key = format!("{FOLDER}{project_id}/{}", hex::encode(episode));
    claimed(ctx, &key, || {
        let children = collect_all(|cursor| api.children(account_id, root_id, &[ItemKind::Folder], cursor))?;
        match children.into_iter().find(|f| f.name == episode) {
            Some(found) => Ok(found.id),
            None => Ok(api.create_folder(account_id, root_id, episode)?.id),
        }
    })
}

/// The id recorded under `key`, or the one `find_or_make` gives after this call
/// claimed the key. A claim another call holds is a passing error: the job tries
/// again once that call has recorded its id. A claim whose maker died runs out.
fn claimed(ctx: &Context, key: &str, find_or_make: impl FnOnce() -> Result<String>) -> Result<String> {
    match store::load::<Claim>(ctx.host, key)? {
        Some(stored) => match stored.value {
            Claim::Made(id) => Ok(id),
            Claim::Making => Err(Error::Host("another send is making this project or folder; trying again shortly".into())),
        },
        None => {
            let making = serde_json::to_vec(&Claim::Making).expect("claims serialise to JSON");
            if ctx.host.storage_cas(key, None, &making).is_err() {
                return Err(Error::Host("another send is making this project or folder; trying again shortly".into()));
            }
            // The claim expires, so a send that died while making cannot block others.
            ctx.host.storage_set_expiring(key, &making, ctx.host.now() + CLAIM_SECS)?;
            match find_or_make() {
                Ok(id) => {
                    store::save(ctx.host, key, &Claim::Made(id.clone()))?;
                    Ok(id)
                }
                Err(e) => {
                    let _ = ctx.host.storage_delete(key);
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::show_and_episode;

    #[test]
    fn a_folder_path_names_its_show_and_episode() {
        let pair = |s: &str, e: &str| Some((s.to_string(), e.to_string()));
        assert_eq!(show_and_episode("/{show}/{episode}", "/Harbor/Ep01"), pair("Harbor", "Ep01"));
        assert_eq!(show_and_episode("/{show}/{episode}", "/Harbor/Ep01/Cuts"), pair("Harbor", "Ep01"), "deeper folders belong to the episode");
        assert_eq!(show_and_episode("/Shows/{show}/{episode}", "/Shows/Harbor/Ep02"), pair("Harbor", "Ep02"));
        assert_eq!(show_and_episode("/Shows/{show}/{episode}", "/Marketing/Harbor/Ep02"), None);
        assert_eq!(show_and_episode("/{show}/{episode}", "/Harbor"), None);
    }
}
