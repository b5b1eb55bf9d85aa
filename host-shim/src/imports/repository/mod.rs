//! The `repository` import: the reference DAM's folders, documents, versions and
//! properties, in the host's SQLite database, with content in the blob store.
//!
//! Both calls that create are idempotent on the connector's keys (`external-key` per
//! folder, `version-key` per document), enforced by unique constraints, so a replayed
//! job step never makes a second document or version.

mod comments;
mod folders;
mod renditions;

pub use comments::{Comment, CommentBody};
pub use renditions::{Rendition, RenditionKind};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;

use crate::blobs::{BlobStore, is_blob_id};
use crate::db::{Database, new_id, unix_secs};

/// Longest title, folder path, external key or version key, in bytes.
const MAX_TEXT_BYTES: usize = 1024;
/// Longest property name, in bytes.
const MAX_PROPERTY_NAME_BYTES: usize = 128;
/// Largest property value, in bytes.
const MAX_PROPERTY_VALUE_BYTES: usize = 64 * 1024;
/// Most properties one `add_version` may set.
const MAX_PROPERTIES: usize = 256;

/// A folder that users can bind to Frame.io.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Folder {
    /// The repository's identifier (`fld-` and 12 hex digits).
    pub id: String,
    /// Human-readable path, for example `/Marketing/Spring`.
    pub path: String,
    /// The folder's title.
    pub title: String,
}

/// A document in a folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Document {
    /// The repository's identifier (`doc-` and 12 hex digits).
    pub id: String,
    /// The folder that holds it.
    pub folder_id: String,
    /// Its title.
    pub title: String,
    /// The connector's key for it, unique in its folder.
    pub external_key: String,
    /// Where a user sees it: `<document_url_base>/documents/<id>`.
    pub url: String,
    /// How many versions it has.
    pub version_count: u32,
}

/// One version of a document's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    /// The repository's identifier (`ver-` and 12 hex digits).
    pub id: String,
    /// The document it belongs to.
    pub document_id: String,
    /// 1 for the first version, then 2, 3, ...
    pub number: u32,
    /// The blob holding the content.
    pub blob_id: String,
    /// Content size in bytes.
    pub size: u64,
    /// The connector's key for this version, unique per document.
    pub version_key: String,
    /// When it was added (Unix seconds).
    pub created_at: i64,
}

/// Why a repository call failed; mirrors the WIT `repository-error`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepositoryError {
    /// The folder, document or blob does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An argument was refused.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed; safe to retry.
    #[error("repository unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for RepositoryError {
    fn from(e: rusqlite::Error) -> Self {
        RepositoryError::Unavailable(e.to_string())
    }
}

type Result<T> = std::result::Result<T, RepositoryError>;

/// Columns of a [`Document`], in the order [`Repository::document_from_row`] reads them.
const DOCUMENT_COLUMNS: &str =
    "d.id, d.folder_id, d.title, d.external_key, (SELECT COUNT(*) FROM versions v WHERE v.document_id = d.id)";
/// Columns of a [`Version`], in the order [`version_from_row`] reads them.
const VERSION_COLUMNS: &str = "id, document_id, number, blob_id, size, version_key, created_at";

/// The repository.
#[derive(Clone)]
pub struct Repository {
    db: Database,
    blobs: BlobStore,
    document_url_base: String,
}

impl Repository {
    /// A repository whose documents are shown at `<document_url_base>/documents/<id>`.
    pub fn new(db: Database, blobs: BlobStore, document_url_base: &str) -> Repository {
        Repository { db, blobs, document_url_base: document_url_base.trim_end_matches('/').to_string() }
    }

    /// Creates a folder (an administrator's action). Paths start with `/` and are unique.
    pub fn create_folder(&self, path: &str, title: &str) -> Result<Folder> {
        check_text("path", path)?;
        check_text("title", title)?;
        if !path.starts_with('/') {
            return Err(RepositoryError::Invalid(format!("folder path {path:?} must start with '/'")));
        }
        let folder = Folder { id: new_id("fld-"), path: path.to_string(), title: title.to_string() };
        let inserted = self.db.with(|c| {
            c.execute(
                "INSERT INTO folders (id, path, title, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (path) DO NOTHING",
                params![folder.id, folder.path, folder.title, unix_secs()],
            )
        })?;
        if inserted == 0 {
            return Err(RepositoryError::Invalid(format!("a folder with path {path:?} already exists")));
        }
        Ok(folder)
    }

    /// All folders, by path.
    pub fn list_folders(&self) -> Result<Vec<Folder>> {
        let folders = self.db.with(|c| {
            let mut stmt = c.prepare_cached("SELECT id, path, title FROM folders ORDER BY path")?;
            let rows = stmt.query_map([], folder_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(folders)
    }

    /// Reads a folder.
    pub fn get_folder(&self, id: &str) -> Result<Folder> {
        self.db.with(|c| get_folder(c, id))
    }

    /// The document with `external_key` in the folder, if any.
    pub fn find_document(&self, folder_id: &str, external_key: &str) -> Result<Option<Document>> {
        check_text("external key", external_key)?;
        self.db.with(|c| {
            get_folder(c, folder_id)?;
            Ok(self.find_in(c, folder_id, external_key)?)
        })
    }

    /// The document with `external_key` in the folder, created with `title` if there
    /// is none. A second call returns the same document (its title unchanged).
    pub fn ensure_document(&self, folder_id: &str, external_key: &str, title: &str) -> Result<Document> {
        check_text("external key", external_key)?;
        check_text("title", title)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            get_folder(&tx, folder_id)?;
            tx.execute(
                "INSERT INTO documents (id, folder_id, external_key, title, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (folder_id, external_key) DO NOTHING",
                params![new_id("doc-"), folder_id, external_key, title, unix_secs()],
            )?;
            let document = self.find_in(&tx, folder_id, external_key)?;
            tx.commit()?;
            document.ok_or_else(|| RepositoryError::Unavailable("the new document vanished".into()))
        })
    }

    /// Reads a document.
    pub fn get_document(&self, id: &str) -> Result<Document> {
        self.db.with(|c| self.get_document_in(c, id))
    }

    /// The documents of a folder, oldest first.
    pub fn list_documents(&self, folder_id: &str) -> Result<Vec<Document>> {
        self.db.with(|c| {
            get_folder(c, folder_id)?;
            let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.folder_id = ?1 ORDER BY d.created_at, d.id");
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([folder_id], |row| self.document_from_row(row))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// A document's properties, by name.
    pub fn document_properties(&self, document_id: &str) -> Result<Vec<(String, String)>> {
        self.db.with(|c| {
            self.get_document_in(c, document_id)?;
            let sql = "SELECT name, value FROM document_properties WHERE document_id = ?1 ORDER BY name";
            Ok(query_pairs(c, sql, document_id)?)
        })
    }

    /// The properties recorded with a version (those its `add_version` call set), by name.
    pub fn version_properties(&self, version_id: &str) -> Result<Vec<(String, String)>> {
        self.db.with(|c| {
            let exists: bool = c.query_row("SELECT EXISTS (SELECT 1 FROM versions WHERE id = ?1)", [version_id], |r| r.get(0))?;
            if !exists {
                return Err(RepositoryError::NotFound(format!("version {version_id}")));
            }
            let sql = "SELECT name, value FROM version_properties WHERE version_id = ?1 ORDER BY name";
            Ok(query_pairs(c, sql, version_id)?)
        })
    }

    /// Adds a version holding `blob_id` and sets `properties` on the document
    /// (replacing values of the same name) and on the version. Idempotent on
    /// `version_key`: a repeated call returns the version the first one made, unchanged.
    ///
    /// Everything happens in one immediate transaction, so concurrent calls get
    /// consecutive numbers and a failure leaves nothing half-written.
    pub fn add_version(
        &self,
        document_id: &str,
        version_key: &str,
        blob_id: &str,
        properties: &[(String, String)],
    ) -> Result<Version> {
        check_text("version key", version_key)?;
        if !is_blob_id(blob_id) {
            return Err(RepositoryError::Invalid(format!("{blob_id:?} is not a blob id")));
        }
        check_properties(properties)?;
        self.db.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.get_document_in(&tx, document_id)?;
            if let Some(existing) = find_version(&tx, document_id, version_key)? {
                return Ok(existing);
            }
            let size = self.complete_blob_size(&tx, blob_id)?;
            let version = insert_version(&tx, document_id, version_key, blob_id, size)?;
            set_properties(&tx, document_id, &version.id, properties)?;
            tx.commit()?;
            Ok(version)
        })
    }

    /// A document's versions, oldest first.
    pub fn list_versions(&self, document_id: &str) -> Result<Vec<Version>> {
        self.db.with(|c| {
            self.get_document_in(c, document_id)?;
            let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE document_id = ?1 ORDER BY number");
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([document_id], version_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The size of a blob that is recorded and whose file is in place.
    fn complete_blob_size(&self, c: &Connection, blob_id: &str) -> Result<u64> {
        let size: Option<u64> = c.query_row("SELECT size FROM blobs WHERE id = ?1", [blob_id], |r| r.get(0)).optional()?;
        match size {
            Some(size) if self.blobs.path(blob_id).is_some() => Ok(size),
            _ => Err(RepositoryError::Invalid(format!("blob {blob_id} is not complete"))),
        }
    }

    fn find_in(&self, c: &Connection, folder_id: &str, external_key: &str) -> rusqlite::Result<Option<Document>> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.folder_id = ?1 AND d.external_key = ?2");
        c.query_row(&sql, [folder_id, external_key], |row| self.document_from_row(row)).optional()
    }

    fn get_document_in(&self, c: &Connection, id: &str) -> Result<Document> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = ?1");
        c.query_row(&sql, [id], |row| self.document_from_row(row))
            .optional()?
            .ok_or_else(|| RepositoryError::NotFound(format!("document {id}")))
    }

    fn document_from_row(&self, row: &Row) -> rusqlite::Result<Document> {
        let id: String = row.get(0)?;
        Ok(Document {
            url: format!("{}/documents/{id}", self.document_url_base),
            id,
            folder_id: row.get(1)?,
            title: row.get(2)?,
            external_key: row.get(3)?,
            version_count: row.get(4)?,
        })
    }
}

fn get_folder(c: &Connection, id: &str) -> Result<Folder> {
    c.query_row("SELECT id, path, title FROM folders WHERE id = ?1", [id], folder_from_row)
        .optional()?
        .ok_or_else(|| RepositoryError::NotFound(format!("folder {id}")))
}

fn folder_from_row(row: &Row) -> rusqlite::Result<Folder> {
    Ok(Folder { id: row.get(0)?, path: row.get(1)?, title: row.get(2)? })
}

fn find_version(c: &Connection, document_id: &str, version_key: &str) -> rusqlite::Result<Option<Version>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE document_id = ?1 AND version_key = ?2");
    c.query_row(&sql, [document_id, version_key], version_from_row).optional()
}

fn version_from_row(row: &Row) -> rusqlite::Result<Version> {
    Ok(Version {
        id: row.get(0)?,
        document_id: row.get(1)?,
        number: row.get(2)?,
        blob_id: row.get(3)?,
        size: row.get(4)?,
        version_key: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// Inserts the document's next version. Runs inside the caller's transaction, which
/// makes `MAX(number) + 1` safe against concurrent callers.
fn insert_version(c: &Connection, document_id: &str, version_key: &str, blob_id: &str, size: u64) -> rusqlite::Result<Version> {
    let number: u32 =
        c.query_row("SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE document_id = ?1", [document_id], |r| r.get(0))?;
    let version = Version {
        id: new_id("ver-"),
        document_id: document_id.to_string(),
        number,
        blob_id: blob_id.to_string(),
        size,
        version_key: version_key.to_string(),
        created_at: unix_secs(),
    };
    c.execute(
        &format!("INSERT INTO versions ({VERSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            version.id,
            version.document_id,
            version.number,
            version.blob_id,
            version.size,
            version.version_key,
            version.created_at
        ],
    )?;
    Ok(version)
}

/// Upserts the properties on the document and records them on the version. When a
/// name repeats in `properties`, the last value wins, as it would in sequence.
fn set_properties(c: &Connection, document_id: &str, version_id: &str, properties: &[(String, String)]) -> rusqlite::Result<()> {
    let mut on_document = c.prepare_cached(
        "INSERT INTO document_properties (document_id, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (document_id, name) DO UPDATE SET value = excluded.value",
    )?;
    let mut on_version = c.prepare_cached(
        "INSERT INTO version_properties (version_id, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (version_id, name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in properties {
        on_document.execute(params![document_id, name, value])?;
        on_version.execute(params![version_id, name, value])?;
    }
    Ok(())
}

fn query_pairs(c: &Connection, sql: &str, id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Titles, paths and keys: non-blank, bounded, no control characters (they end up
/// in UIs, logs and file names).
fn check_text(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(RepositoryError::Invalid(format!("the {what} is empty")));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(RepositoryError::Invalid(format!("the {what} is longer than {MAX_TEXT_BYTES} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(RepositoryError::Invalid(format!("the {what} contains control characters")));
    }
    Ok(())
}

/// Property names follow the WIT: lowercase machine names with `-` or `.` separators.
fn check_properties(properties: &[(String, String)]) -> Result<()> {
    if properties.len() > MAX_PROPERTIES {
        return Err(RepositoryError::Invalid(format!("more than {MAX_PROPERTIES} properties")));
    }
    for (name, value) in properties {
        let well_formed = !name.is_empty()
            && name.len() <= MAX_PROPERTY_NAME_BYTES
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !well_formed {
            return Err(RepositoryError::Invalid(format!("{name:?} is not a property name (lowercase, digits, '-' and '.')")));
        }
        if value.len() > MAX_PROPERTY_VALUE_BYTES {
            return Err(RepositoryError::Invalid(format!("property {name} is longer than {MAX_PROPERTY_VALUE_BYTES} bytes")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::BlobInfo;

    pub(super) struct Fixture {
        _dir: tempfile::TempDir,
        blobs: BlobStore,
        pub(super) repo: Repository,
    }

    pub(super) fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_in_memory().unwrap();
        let blobs = BlobStore::open(dir.path(), db.clone()).unwrap();
        let repo = Repository::new(db, blobs.clone(), "http://dam.test/admin/api/");
        Fixture { _dir: dir, blobs, repo }
    }

    impl Fixture {
        pub(super) fn blob(&self, content: &[u8]) -> BlobInfo {
            let staged = self.blobs.staging_file(&format!("t-{}", hex::encode(content))).unwrap();
            std::fs::write(&staged, content).unwrap();
            self.blobs.commit(&staged).unwrap()
        }

        pub(super) fn document(&self) -> Document {
            let folder = self.repo.create_folder("/Marketing", "Marketing").unwrap();
            self.repo.ensure_document(&folder.id, "asset-1", "Spot.mov").unwrap()
        }
    }

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn folders_are_created_listed_and_read() {
        let f = fixture();
        let b = f.repo.create_folder("/b", "B").unwrap();
        let a = f.repo.create_folder("/a", "A").unwrap();
        assert!(a.id.starts_with("fld-") && a.id.len() == 16);
        assert_eq!(f.repo.list_folders().unwrap(), vec![a.clone(), b]);
        assert_eq!(f.repo.get_folder(&a.id).unwrap(), a);
        assert!(matches!(f.repo.get_folder("fld-nope"), Err(RepositoryError::NotFound(_))));
        assert!(matches!(f.repo.create_folder("/a", "Again"), Err(RepositoryError::Invalid(_))));
        assert!(matches!(f.repo.create_folder("relative", "R"), Err(RepositoryError::Invalid(_))));
        assert!(matches!(f.repo.create_folder("/c", " "), Err(RepositoryError::Invalid(_))));
    }

    #[test]
    fn ensure_document_is_idempotent() {
        let f = fixture();
        let folder = f.repo.create_folder("/f", "F").unwrap();
        assert_eq!(f.repo.find_document(&folder.id, "k").unwrap(), None);
        let first = f.repo.ensure_document(&folder.id, "k", "Title").unwrap();
        let second = f.repo.ensure_document(&folder.id, "k", "Other title").unwrap();
        assert_eq!(first, second);
        assert_eq!(first.title, "Title");
        assert_eq!(first.url, format!("http://dam.test/admin/api/documents/{}", first.id));
        assert_eq!(first.version_count, 0);
        assert_eq!(f.repo.find_document(&folder.id, "k").unwrap(), Some(first.clone()));
        assert_eq!(f.repo.list_documents(&folder.id).unwrap(), vec![first.clone()]);
        assert_eq!(f.repo.get_document(&first.id).unwrap(), first);
    }

    #[test]
    fn same_external_key_in_two_folders_is_two_documents() {
        let f = fixture();
        let a = f.repo.create_folder("/a", "A").unwrap();
        let b = f.repo.create_folder("/b", "B").unwrap();
        let in_a = f.repo.ensure_document(&a.id, "k", "T").unwrap();
        let in_b = f.repo.ensure_document(&b.id, "k", "T").unwrap();
        assert_ne!(in_a.id, in_b.id);
    }

    #[test]
    fn ensure_document_validates() {
        let f = fixture();
        let folder = f.repo.create_folder("/f", "F").unwrap();
        assert!(matches!(f.repo.ensure_document(&folder.id, "k", ""), Err(RepositoryError::Invalid(_))));
        assert!(matches!(f.repo.ensure_document(&folder.id, "", "T"), Err(RepositoryError::Invalid(_))));
        assert!(matches!(f.repo.ensure_document(&folder.id, "k", "a\nb"), Err(RepositoryError::Invalid(_))));
        assert!(matches!(f.repo.ensure_document("fld-unknown", "k", "T"), Err(RepositoryError::NotFound(_))));
        assert!(matches!(f.repo.find_document("fld-unknown", "k"), Err(RepositoryError::NotFound(_))));
        assert!(f.repo.list_documents(&folder.id).unwrap().is_empty());
    }

    #[test]
    fn add_version_numbers_and_is_idempotent_on_the_key() {
        let f = fixture();
        let doc = f.document();
        let one = f.blob(b"one");
        let two = f.blob(b"two!");
        let v1 = f.repo.add_version(&doc.id, "v-a", &one.id, &[]).unwrap();
        let again = f.repo.add_version(&doc.id, "v-a", &two.id, &props(&[("x", "y")])).unwrap();
        assert_eq!(v1, again, "a replay returns the first version unchanged");
        let v2 = f.repo.add_version(&doc.id, "v-b", &two.id, &[]).unwrap();
        assert_eq!((v1.number, v1.size, v1.blob_id.as_str()), (1, 3, one.id.as_str()));
        assert_eq!((v2.number, v2.size), (2, 4));
        assert_eq!(f.repo.list_versions(&doc.id).unwrap(), vec![v1, v2]);
        assert_eq!(f.repo.get_document(&doc.id).unwrap().version_count, 2);
        assert!(f.repo.document_properties(&doc.id).unwrap().is_empty(), "the replay set no properties");
    }

    #[test]
    fn properties_replace_by_name_and_are_kept_per_version() {
        let f = fixture();
        let doc = f.document();
        let blob = f.blob(b"content");
        let v1 = f.repo.add_version(&doc.id, "1", &blob.id, &props(&[("frameio.asset-id", "a1"), ("status", "draft")])).unwrap();
        let v2 = f.repo.add_version(&doc.id, "2", &blob.id, &props(&[("status", "final"), ("status", "approved")])).unwrap();
        assert_eq!(f.repo.document_properties(&doc.id).unwrap(), props(&[("frameio.asset-id", "a1"), ("status", "approved")]));
        assert_eq!(f.repo.version_properties(&v1.id).unwrap(), props(&[("frameio.asset-id", "a1"), ("status", "draft")]));
        assert_eq!(f.repo.version_properties(&v2.id).unwrap(), props(&[("status", "approved")]));
        assert!(matches!(f.repo.version_properties("ver-nope"), Err(RepositoryError::NotFound(_))));
    }

    #[test]
    fn add_version_refuses_unknown_blobs_and_bad_input_without_writing() {
        let f = fixture();
        let doc = f.document();
        let unknown = "ab".repeat(32);
        let err = f.repo.add_version(&doc.id, "v", &unknown, &[]).unwrap_err();
        assert_eq!(err, RepositoryError::Invalid(format!("blob {unknown} is not complete")));
        assert!(matches!(f.repo.add_version(&doc.id, "v", "../x", &[]), Err(RepositoryError::Invalid(_))));
        let blob = f.blob(b"b");
        for bad in ["", "Upper", "with space", "under_score"] {
            let result = f.repo.add_version(&doc.id, "v", &blob.id, &props(&[(bad, "v")]));
            assert!(matches!(result, Err(RepositoryError::Invalid(_))), "{bad:?}");
        }
        assert!(matches!(f.repo.add_version("doc-nope", "v", &blob.id, &[]), Err(RepositoryError::NotFound(_))));
        assert!(f.repo.list_versions(&doc.id).unwrap().is_empty());
        assert!(matches!(f.repo.list_versions("doc-nope"), Err(RepositoryError::NotFound(_))));
    }

    #[test]
    fn concurrent_add_version_gets_consecutive_numbers() {
        let f = fixture();
        let doc = f.document();
        let blob = f.blob(b"shared");
        let handles: Vec<_> = ["left", "right"]
            .into_iter()
            .map(|key| {
                let (repo, doc_id, blob_id) = (f.repo.clone(), doc.id.clone(), blob.id.clone());
                std::thread::spawn(move || repo.add_version(&doc_id, key, &blob_id, &[]).unwrap().number)
            })
            .collect();
        let mut numbers: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        numbers.sort();
        assert_eq!(numbers, vec![1, 2]);
    }
}
