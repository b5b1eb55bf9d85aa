//! What the transfer tests share: a blob store and database in a temporary
//! directory, an engine over them allowed to reach loopback, and deterministic
//! content.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use xxhash_rust::xxh64::xxh64;

use super::{MIN_RANGE_SIZE, TransferConfig, TransferEngine, TransferStatus};
use crate::blobs::{BlobInfo, BlobStore};
use crate::db::Database;
use crate::imports::http::EgressPolicy;

/// The range size of the tests: the smallest allowed, so a few hundred KiB make
/// several ranges.
pub(super) const RANGE: u64 = MIN_RANGE_SIZE;

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) tmp: PathBuf,
    pub(super) blobs: BlobStore,
    pub(super) db: Database,
    pub(super) engine: TransferEngine,
}

/// Deterministic, non-repeating content of `len` bytes.
pub(super) fn content(len: usize) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub(super) fn fixture_with(config: TransferConfig, egress: EgressPolicy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let blobs = BlobStore::open(dir.path(), db.clone()).unwrap();
    let engine = TransferEngine::new(db.clone(), blobs.clone(), egress, config).unwrap();
    Fixture { tmp: dir.path().join("tmp"), _dir: dir, blobs, db, engine }
}

pub(super) fn loopback() -> EgressPolicy {
    EgressPolicy::new(&["127.0.0.1".into()], &["127.0.0.0/8".into()]).unwrap()
}

pub(super) fn fixture() -> Fixture {
    let config = TransferConfig { range_size: RANGE, concurrency: 4, max_range_retries: 2, ..TransferConfig::default() };
    fixture_with(config, loopback())
}

impl Fixture {
    /// Polls until the transfer leaves `Running`.
    pub(super) async fn outcome(&self, key: &str) -> TransferStatus {
        for _ in 0..500 {
            match self.engine.status(key).unwrap() {
                Some(TransferStatus::Running { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
                Some(done) => return done,
                None => panic!("transfer {key} does not exist"),
            }
        }
        panic!("transfer {key} did not finish");
    }

    pub(super) fn staging_files(&self) -> usize {
        std::fs::read_dir(&self.tmp).unwrap().count()
    }

    /// The blob is `body`: its id is the BLAKE3 hash and its checksum the xxHash64 of
    /// exactly these bytes, and its file holds them.
    pub(super) fn assert_blob_is(&self, blob: &BlobInfo, body: &[u8]) {
        assert_eq!(blob.id, blake3::hash(body).to_hex().as_str());
        assert_eq!(blob.xxhash64, format!("{:016x}", xxh64(body, 0)));
        assert_eq!(blob.size, body.len() as u64);
        assert!(std::fs::read(self.blobs.path(&blob.id).unwrap()).unwrap() == body, "the blob's bytes differ");
    }
}
