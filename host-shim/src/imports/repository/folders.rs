//! Folders the connector makes inside other folders (an archived project's tree), and
//! properties on folders.
//!
//! A made folder is found again by its parent and the connector's key, so a replayed
//! step never makes a second one. Its path is the parent's path and its title; Frame.io
//! lets two sibling folders share a name, the repository does not let two folders
//! share a path, so a later sibling of the same name gets ` (2)`, ` (3)`, ...

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Folder, Repository, RepositoryError, Result, check_properties, check_text, folder_from_row, get_folder};
use crate::db::{new_id, unix_secs};

/// How many same-named siblings get a numbered path before the call is refused.
const MAX_NAMESAKES: u32 = 1000;

impl Repository {
    /// The folder with `external_key` inside `parent_id`, created with `title` if there
    /// is none. A second call returns the same folder (its title unchanged).
    pub fn ensure_folder(&self, parent_id: &str, external_key: &str, title: &str) -> Result<Folder> {
        check_text("external key", external_key)?;
        check_text("title", title)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let parent = get_folder(&tx, parent_id)?;
            if let Some(existing) = find_child(&tx, parent_id, external_key)? {
                return Ok(existing);
            }
            let path = free_path(&tx, &parent.path, title)?;
            let folder = Folder { id: new_id("fld-"), path, title: title.to_string() };
            tx.execute(
                "INSERT INTO folders (id, path, title, created_at, parent_id, external_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![folder.id, folder.path, folder.title, unix_secs(), parent_id, external_key],
            )?;
            tx.commit()?;
            Ok(folder)
        })
    }

    /// Sets `properties` on a folder, replacing those of the same name.
    pub fn set_folder_properties(&self, folder_id: &str, properties: &[(String, String)]) -> Result<()> {
        check_properties(properties)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            get_folder(&tx, folder_id)?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO folder_properties (folder_id, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (folder_id, name) DO UPDATE SET value = excluded.value",
            )?;
            for (name, value) in properties {
                upsert.execute(params![folder_id, name, value])?;
            }
            drop(upsert);
            tx.commit()?;
            Ok(())
        })
    }

    /// A folder's properties, by name.
    pub fn folder_properties(&self, folder_id: &str) -> Result<Vec<(String, String)>> {
        self.db.with(|c| {
            get_folder(c, folder_id)?;
            let mut stmt = c.prepare_cached("SELECT name, value FROM folder_properties WHERE folder_id = ?1 ORDER BY name")?;
            let rows = stmt.query_map([folder_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

fn find_child(c: &Connection, parent_id: &str, external_key: &str) -> rusqlite::Result<Option<Folder>> {
    c.query_row(
        "SELECT id, path, title FROM folders WHERE parent_id = ?1 AND external_key = ?2",
        [parent_id, external_key],
        folder_from_row,
    )
    .optional()
}

/// The first path under `parent_path` for `title` that no folder has yet. A `/` in a
/// title would read as a level of its own, so it becomes `-`.
fn free_path(c: &Connection, parent_path: &str, title: &str) -> Result<String> {
    let base = format!("{}/{}", parent_path.trim_end_matches('/'), title.replace('/', "-"));
    let mut taken = c.prepare_cached("SELECT 1 FROM folders WHERE path = ?1")?;
    for n in 1..=MAX_NAMESAKES {
        let candidate = if n == 1 { base.clone() } else { format!("{base} ({n})") };
        if !taken.exists([&candidate])? {
            return Ok(candidate);
        }
    }
    Err(RepositoryError::Invalid(format!("more than {MAX_NAMESAKES} folders are named {base:?}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;

    #[test]
    fn ensure_folder_is_idempotent_on_its_key_and_nests_paths() {
        let f = fixture();
        let root = f.repo.create_folder("/Archive", "Archive").unwrap();
        let first = f.repo.ensure_folder(&root.id, "frameio:a", "Dailies").unwrap();
        assert_eq!(first.path, "/Archive/Dailies");
        assert_eq!(f.repo.ensure_folder(&root.id, "frameio:a", "Renamed").unwrap(), first);
        let inner = f.repo.ensure_folder(&first.id, "frameio:b", "Day 1/2").unwrap();
        assert_eq!(inner.path, "/Archive/Dailies/Day 1-2");
    }

    #[test]
    fn same_named_siblings_get_numbered_paths() {
        let f = fixture();
        let root = f.repo.create_folder("/A", "A").unwrap();
        f.repo.create_folder("/A/Shots", "Shots").unwrap();
        let second = f.repo.ensure_folder(&root.id, "frameio:x", "Shots").unwrap();
        let third = f.repo.ensure_folder(&root.id, "frameio:y", "Shots").unwrap();
        assert_eq!((second.path.as_str(), third.path.as_str()), ("/A/Shots (2)", "/A/Shots (3)"));
    }

    #[test]
    fn bad_folder_calls_are_refused_and_change_nothing() {
        let f = fixture();
        let root = f.repo.create_folder("/A", "A").unwrap();
        assert!(f.repo.ensure_folder("fld-missing", "k", "T").is_err());
        assert!(f.repo.ensure_folder(&root.id, "", "T").is_err());
        assert!(f.repo.ensure_folder(&root.id, "k", "bad\ntitle").is_err());
        assert!(f.repo.set_folder_properties(&root.id, &[("Bad Name".into(), "v".into())]).is_err());
        assert_eq!(f.repo.list_folders().unwrap().len(), 1);
        assert!(f.repo.folder_properties(&root.id).unwrap().is_empty());
    }

    #[test]
    fn folder_properties_replace_by_name() {
        let f = fixture();
        let root = f.repo.create_folder("/A", "A").unwrap();
        f.repo.set_folder_properties(&root.id, &[("frameio.project".into(), "One".into())]).unwrap();
        f.repo.set_folder_properties(&root.id, &[("frameio.project".into(), "Two".into())]).unwrap();
        assert_eq!(f.repo.folder_properties(&root.id).unwrap(), vec![("frameio.project".to_string(), "Two".to_string())]);
    }
}
