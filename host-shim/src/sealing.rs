//! Sealing values at rest: XChaCha20-Poly1305 with a key kept outside the database.
//!
//! A sealed value is `version (1 byte) || nonce (24 bytes) || ciphertext || tag (16 bytes)`.
//! The nonce is random: XChaCha's 192-bit nonces make collisions negligible however
//! many values one key seals, so no counter has to survive restarts. The caller's
//! associated data (for the storage, the tenant and key) is authenticated with the
//! version byte, so a value opens only where it was sealed.
//!
//! The key is 32 random bytes written as 64 hex digits, either in a key file (created
//! on first start, mode 0600) or in the `FRAMEIO_DAM_KEY` environment variable.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret_file::{self, SECRET_LEN as KEY_LEN};

/// The environment variable that, when set, holds the key (64 hex digits) and
/// overrides the key file.
pub const KEY_ENV: &str = "FRAMEIO_DAM_KEY";

/// The format of sealed values this host writes; the only one it reads.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Why a sealed value could not be opened. Deliberately vague: the caller learns that
/// the value is unusable, never anything about the key or the plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Too short to hold a version byte, a nonce and a tag.
    #[error("the sealed value is truncated")]
    Truncated,
    /// Written in a format this host does not know.
    #[error("the sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// Tampered with, sealed under another key, or moved from where it was sealed.
    #[error("the sealed value failed authentication")]
    Authentication,
}

/// The key that seals stored values. It has no `Clone` (share it in an `Arc`) and its
/// `Debug` output never shows the key.
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    fn from_bytes(key: [u8; KEY_LEN]) -> SealingKey {
        SealingKey { cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    /// A fresh random key, for tests.
    #[cfg(test)]
    pub(crate) fn generate() -> SealingKey {
        SealingKey::from_bytes(rand::random())
    }

    /// Parses 64 hex digits. Errors never repeat the text, which may be most of a key.
    #[cfg(test)]
    fn from_hex(text: &str) -> anyhow::Result<SealingKey> {
        secret_file::parse_hex(text).map(SealingKey::from_bytes)
    }

    /// The key in the environment variable `var`, or `None` when it is not set.
    /// A variable that is set but empty or malformed is an error, not a fallback to
    /// the key file: values sealed under one key would not open under the other.
    pub fn from_env(var: &str) -> Option<anyhow::Result<SealingKey>> {
        secret_file::from_env(var).map(|key| key.map(SealingKey::from_bytes))
    }

    /// Reads the key file at `path`, or creates it with a new random key (mode 0600)
    /// when there is none. Refuses a file that group or others may access, and one
    /// that does not hold exactly 64 hex digits.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SealingKey> {
        let (key, created) = secret_file::load_or_create(path)?;
        if created {
            tracing::info!(path = %path.display(), "created a new sealing key; back it up: stored state cannot be read without it");
        }
        Ok(SealingKey::from_bytes(key))
    }

    /// Encrypts `plaintext`, bound to `aad`, under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload { msg: plaintext, aad: &versioned(aad) };
        // XChaCha20-Poly1305 refuses only messages over 256 GiB, which no caller has
        // in memory (the storage caps values at 1 MiB).
        let body = self.cipher.encrypt(&XNonce::from(nonce), payload).expect("a message under 256 GiB always seals");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + body.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        sealed
    }

    /// Decrypts a value sealed by [`SealingKey::seal`] with the same key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion(version));
        }
        let (nonce, body) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SealError::Truncated)?;
        let payload = Payload { msg: body, aad: &versioned(aad) };
        // A body shorter than the tag fails here too: the AEAD checks its length.
        self.cipher.decrypt(&XNonce::from(*nonce), payload).map_err(|_| SealError::Authentication)
    }
}

/// The associated data actually authenticated: the format version, then the caller's.
/// Binding the version keeps a later format from being read as this one.
fn versioned(aad: &[u8]) -> Vec<u8> {
    [&[VERSION], aad].concat()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn write_key_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join("host.key");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let key = SealingKey::generate();
        let sealed = key.seal(b"aad", b"the plaintext");
        assert_eq!(sealed.len(), 1 + NONCE_LEN + b"the plaintext".len() + 16);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(key.open(b"aad", &sealed).unwrap(), b"the plaintext");
        assert_ne!(key.seal(b"aad", b"the plaintext"), sealed, "the same plaintext seals differently");
        assert_eq!(key.open(b"", &key.seal(b"", b"")).unwrap(), b"");
    }

    #[test]
    fn any_changed_byte_or_truncation_fails() {
        let key = SealingKey::generate();
        let sealed = key.seal(b"aad", b"secret");
        for at in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[at] ^= 0x01;
            assert_eq!(key.open(b"aad", &tampered), Err(SealError::Authentication), "byte {at}");
        }
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert_eq!(key.open(b"aad", &other_version), Err(SealError::UnknownVersion(2)));
        assert_eq!(key.open(b"aad", &sealed[..sealed.len() - 1]), Err(SealError::Authentication));
        assert_eq!(key.open(b"aad", &sealed[..1 + NONCE_LEN + 15]), Err(SealError::Authentication));
        assert_eq!(key.open(b"aad", &sealed[..NONCE_LEN]), Err(SealError::Truncated));
        assert_eq!(key.open(b"aad", b""), Err(SealError::Truncated));
    }

    #[test]
    fn wrong_aad_or_wrong_key_fails() {
        let key = SealingKey::generate();
        let sealed = key.seal(b"tenant-a/key-1", b"secret");
        assert_eq!(key.open(b"tenant-a/key-2", &sealed), Err(SealError::Authentication));
        assert_eq!(key.open(b"", &sealed), Err(SealError::Authentication));
        assert_eq!(SealingKey::generate().open(b"tenant-a/key-1", &sealed), Err(SealError::Authentication));
    }

    #[test]
    fn debug_output_is_redacted() {
        assert_eq!(format!("{:?}", SealingKey::from_hex(HEX_KEY).unwrap()), "SealingKey(<redacted>)");
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        let created = SealingKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim_end().len(), 64, "64 hex digits");
        assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["host.key"], "no temporary file is left behind");

        let loaded = SealingKey::load_or_create(&path).unwrap();
        assert_eq!(loaded.open(b"a", &created.seal(b"a", b"v")).unwrap(), b"v", "the same key comes back");
    }

    #[test]
    fn a_key_file_is_read_as_hex_like_the_environment_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key_file(dir.path(), &format!("{HEX_KEY}\n"), 0o600);
        let from_file = SealingKey::load_or_create(&path).unwrap();
        let from_text = SealingKey::from_hex(HEX_KEY).unwrap();
        assert_eq!(from_text.open(b"", &from_file.seal(b"", b"v")).unwrap(), b"v");
    }

    #[test]
    fn refuses_a_key_file_that_group_or_others_can_access() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let path = write_key_file(dir.path(), HEX_KEY, mode);
            let err = SealingKey::load_or_create(&path).expect_err("a shared key file must be refused");
            assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        }
    }

    #[test]
    fn refuses_a_key_of_the_wrong_length_or_not_hex_without_repeating_it() {
        let dir = tempfile::tempdir().unwrap();
        for text in [&HEX_KEY[..62], &format!("{HEX_KEY}00"), "", &format!("{}zz", &HEX_KEY[..62])] {
            let path = write_key_file(dir.path(), text, 0o600);
            let err = format!("{:#}", SealingKey::load_or_create(&path).expect_err("a malformed key must be refused"));
            assert!(err.contains("host.key"), "{err}");
            assert!(text.is_empty() || !err.contains(&text[..16]), "the key's digits must not be echoed: {err}");
        }
    }

    #[test]
    fn an_unset_environment_variable_means_no_key() {
        assert!(SealingKey::from_env("FRAMEIO_DAM_KEY_SURELY_UNSET_IN_TESTS").is_none());
    }
}
