//! The content-addressed blob directory.
//!
//! Layout under the root:
//! - `tmp/`: staging files that writers (the transfer engine) fill in place;
//! - `sha256/ab/<sha256 hex>`: complete blobs, named by the SHA-256 of their bytes
//!   and sharded by its first two digits.
//!
//! A blob appears under `sha256/` only by an atomic rename after its bytes are fsynced,
//! and is recorded in the `blobs` table only after that, so a row in `blobs` always
//! means a complete file. Identical content is stored once.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use xxhash_rust::xxh64::Xxh64;

use crate::db::{Database, unix_secs};


/// Size of the buffer used while hashing a staged file.
const HASH_BUFFER: usize = 1 << 20;

/// SHA-256, xxHash64 and size of a file, in one streaming pass.
fn hash_file(mut file: File) -> io::Result<(Sha256, Xxh64, u64)> {
    let mut sha = Sha256::new();
    let mut xxh = Xxh64::new(0);
    let mut size = 0u64;
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok((sha, xxh, size)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha.update(&buf[..n]);
        xxh.update(&buf[..n]);
        size += n as u64;
    }
}

/// A complete blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlobInfo {
    /// The SHA-256 of the content, 64 lowercase hex digits.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// xxHash64 (seed 0) of the content, 16 lowercase hex digits (Frame.io's checksum).
    pub xxhash64: String,
}

/// A staged file that has been hashed and fsynced but not yet installed: the caller
/// can check [`SealedBlob::info`] before deciding to [`BlobStore::install`] it or
/// [`SealedBlob::discard`] it.
#[derive(Debug)]
#[must_use = "a sealed blob must be installed or discarded"]
pub struct SealedBlob {
    staged: PathBuf,
    info: BlobInfo,
}

impl SealedBlob {
    /// What the blob would be once installed.
    pub fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// Deletes the staged file without installing it.
    pub fn discard(self) -> io::Result<()> {
        std::fs::remove_file(&self.staged)
    }
}

/// The blob directory and its index in the database.
#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    db: Database,
}

impl BlobStore {
    /// Opens the blob directory at `root`, creating `tmp/` and `sha256/` as needed.
    pub fn open(root: &Path, db: Database) -> io::Result<BlobStore> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(BlobStore { root: root.to_path_buf(), db })
    }

    /// Where a writer stages the file `name` (letters, digits, `.`, `_`, `-`; not
    /// starting with `.`). Staging files share the blob store's file system, so that
    /// committing them is a rename.
    pub fn staging_file(&self, name: &str) -> io::Result<PathBuf> {
        let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if name.is_empty() || name.len() > 128 || name.starts_with('.') || !plain {
            return Err(invalid_input(format!("{name:?} is not a valid staging file name")));
        }
        Ok(self.root.join("tmp").join(name))
    }

    /// Hashes and installs a staged file in one go; see [`BlobStore::seal`] and
    /// [`BlobStore::install`]. The transfer engine verifies between the two; tests
    /// that only need a blob use this.
    #[cfg(test)]
    pub fn commit(&self, staged: &Path) -> io::Result<BlobInfo> {
        self.install(self.seal(staged)?)
    }

    /// Reads a staged file once, computing its SHA-256 (the blob's id), xxHash64 and
    /// size, and fsyncs it so that the rename in `install` publishes durable bytes.
    /// The file is complete when this is called, so the fsync runs on its own thread
    /// from the start: the disk writes back while the hash pass reads the page cache.
    pub fn seal(&self, staged: &Path) -> io::Result<SealedBlob> {
        let file = File::open(staged)?;
        let syncing = file.try_clone()?;
        let (hashed, synced) = std::thread::scope(|scope| {
            let syncer = scope.spawn(move || syncing.sync_all());
            let hashed = hash_file(file);
            (hashed, syncer.join())
        });
        synced.map_err(|_| io::Error::other("the fsync thread panicked"))??;
        let (sha, xxh, size) = hashed?;
        let info = BlobInfo { id: hex::encode(sha.finalize()), size, xxhash64: format!("{:016x}", xxh.digest()) };
        Ok(SealedBlob { staged: staged.to_path_buf(), info })
    }

    /// Moves a sealed file into place and records it. If the same content is already
    /// stored, the staged file is dropped instead (deduplication).
    pub fn install(&self, sealed: SealedBlob) -> io::Result<BlobInfo> {
        let SealedBlob { staged, info } = sealed;
        let target = self.blob_path(&info.id);
        let shard = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
        std::fs::create_dir_all(shard)?;
        if target.exists() {
            std::fs::remove_file(&staged)?;
        } else {
            std::fs::rename(&staged, &target)?;
            // The rename is durable only once the directory entry is.
            File::open(shard)?.sync_all()?;
        }
        self.record(&info).map_err(io::Error::other)?;
        Ok(info)
    }

    /// Indexes a blob whose file is in place. Idempotent, so a crash between the
    /// rename and this insert heals the next time the same content is committed.
    fn record(&self, info: &BlobInfo) -> rusqlite::Result<()> {
        self.db.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO blobs (id, size, xxhash64, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![info.id, info.size, info.xxhash64, unix_secs()],
            )
            .map(drop)
        })
    }

    /// The recorded blob `id`, if it is complete. A malformed id is simply not found.
    pub fn info(&self, id: &str) -> rusqlite::Result<Option<BlobInfo>> {
        if !is_blob_id(id) {
            return Ok(None);
        }
        self.db.with(|c| {
            c.query_row("SELECT id, size, xxhash64 FROM blobs WHERE id = ?1", [id], |row| {
                Ok(BlobInfo { id: row.get(0)?, size: row.get(1)?, xxhash64: row.get(2)? })
            })
            .optional()
        })
    }

    /// The file of blob `id`, if `id` is well-formed and the file exists.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        if !is_blob_id(id) {
            return None;
        }
        let path = self.blob_path(id);
        path.is_file().then_some(path)
    }

    /// Only ever called with a validated id.
    fn blob_path(&self, id: &str) -> PathBuf {
        self.root.join("sha256").join(&id[..2]).join(id)
    }
}

/// Whether `id` has the form of a blob id: 64 lowercase hex digits.
pub fn is_blob_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path(), Database::open_in_memory().unwrap()).unwrap();
        (dir, blobs)
    }

    fn stage(blobs: &BlobStore, name: &str, content: &[u8]) -> PathBuf {
        let path = blobs.staging_file(name).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn commit_addresses_by_sha256_and_reports_xxhash64() {
        let (_dir, blobs) = store();
        let staged = stage(&blobs, "a.part", b"hello");
        let info = blobs.commit(&staged).unwrap();
        assert_eq!(info.id, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        // xxh64("hello", seed 0), a published test vector.
        assert_eq!(info.xxhash64, "26c7827d889f6da3");
        assert_eq!(info.size, 5);
        assert!(!staged.exists(), "the staged file is moved into place");
        let path = blobs.path(&info.id).unwrap();
        assert!(path.ends_with(format!("sha256/2c/{}", info.id)));
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        assert_eq!(blobs.info(&info.id).unwrap(), Some(info));
    }

    #[test]
    fn identical_content_is_stored_once() {
        let (dir, blobs) = store();
        let first = blobs.commit(&stage(&blobs, "one", b"same")).unwrap();
        let second_staged = stage(&blobs, "two", b"same");
        let second = blobs.commit(&second_staged).unwrap();
        assert_eq!(first, second);
        assert!(!second_staged.exists(), "the duplicate staged file is dropped");
        let shard = dir.path().join("sha256").join(&first.id[..2]);
        assert_eq!(std::fs::read_dir(shard).unwrap().count(), 1);
    }

    #[test]
    fn empty_file_is_a_valid_blob() {
        let (_dir, blobs) = store();
        let info = blobs.commit(&stage(&blobs, "empty", b"")).unwrap();
        assert_eq!(info.size, 0);
        assert_eq!(info.id, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(info.xxhash64, "ef46db3751d8e999");
    }

    #[test]
    fn sealed_blob_can_be_discarded_without_a_trace() {
        let (_dir, blobs) = store();
        let staged = stage(&blobs, "x", b"unwanted");
        let sealed = blobs.seal(&staged).unwrap();
        let id = sealed.info().id.clone();
        sealed.discard().unwrap();
        assert!(!staged.exists());
        assert_eq!(blobs.path(&id), None);
        assert_eq!(blobs.info(&id).unwrap(), None);
    }

    #[test]
    fn malformed_or_unknown_ids_never_reach_the_file_system() {
        let (_dir, blobs) = store();
        for bad in ["", "../../etc/passwd", &"A".repeat(64), &"0".repeat(63), &format!("{}/", "0".repeat(63))] {
            assert_eq!(blobs.path(bad), None, "{bad:?}");
            assert_eq!(blobs.info(bad).unwrap(), None, "{bad:?}");
        }
        let unknown = "0".repeat(64);
        assert_eq!(blobs.path(&unknown), None);
    }

    #[test]
    fn staging_names_are_plain_file_names() {
        let (dir, blobs) = store();
        assert_eq!(blobs.staging_file("dl-01.part").unwrap(), dir.path().join("tmp/dl-01.part"));
        for bad in ["", "..", ".hidden", "a/b", "../x", "a b", &"x".repeat(129)] {
            assert!(blobs.staging_file(bad).is_err(), "{bad:?}");
        }
    }
}
