//! Who may sign in to the console, from the host's config (`[console.users.<name>]`),
//! and their passwords, kept as PBKDF2-HMAC-SHA256 hashes so that the config file
//! holds nothing a reader could sign in with.
//!
//! A console user's name is also their DAM user id: the Frame.io connection they make
//! and the bindings and sends they start are theirs.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Iterations for new hashes (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const ITERATIONS: u32 = 600_000;
/// Fewest iterations a configured hash may use.
const MIN_ITERATIONS: u32 = 10_000;

/// What a user may do.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything a user may, and the cloud-service settings.
    Administrator,
    /// Connect to Frame.io, bind folders, send documents, watch jobs.
    User,
}

/// One console user.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    pub role: Role,
    /// `pbkdf2-sha256$<iterations>$<salt, hex>$<hash, hex>`, as
    /// `host-shim console-user` prints it.
    pub password_hash: String,
}

impl fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleUser").field("role", &self.role).field("password_hash", &"<redacted>").finish()
    }
}

/// The `[console]` section of the host's config.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Users by name; none turns the console's sign-in away for everyone.
    pub users: BTreeMap<String, ConsoleUser>,
    /// How long a sign-in lasts without use.
    pub session_idle_minutes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { users: BTreeMap::new(), session_idle_minutes: 8 * 60 }
    }
}

impl ConsoleConfig {
    /// Refuses names that cannot be DAM user ids and hashes that cannot be checked.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, user) in &self.users {
            let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
            anyhow::ensure!(ok, "console user {name:?}: names are 1 to 64 letters, digits, '.', '_', '-' or '@'");
            PasswordHash::parse(&user.password_hash).map_err(|why| anyhow::anyhow!("console user {name}: password_hash {why}"))?;
        }
        anyhow::ensure!(self.session_idle_minutes >= 1, "console.session_idle_minutes must be at least 1");
        Ok(())
    }

    /// The user's role when `password` is theirs. Every attempt costs one hash, known
    /// user or not, so timing does not tell which names exist.
    pub fn sign_in(&self, name: &str, password: &str) -> Option<Role> {
        let user = self.users.get(name);
        let hash = user.and_then(|u| PasswordHash::parse(&u.password_hash).ok());
        let matches = match &hash {
            Some(hash) => hash.matches(password),
            None => {
                let _ = PasswordHash::new_with(password, &[0; 16], ITERATIONS);
                false
            }
        };
        if matches { user.map(|u| u.role) } else { None }
    }
}

/// A parsed password hash.
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

impl PasswordHash {
    /// Hashes `password` with a fresh salt.
    pub fn new(password: &str) -> PasswordHash {
        PasswordHash::new_with(password, &rand::random::<[u8; 16]>(), ITERATIONS)
    }

    /// Hashes `password` with a fresh salt and `iterations` (at least 10 000): for
    /// throwaway accounts, such as the demo's, whose sign-in should be quick.
    pub fn with_iterations(password: &str, iterations: u32) -> PasswordHash {
        PasswordHash::new_with(password, &rand::random::<[u8; 16]>(), iterations.max(MIN_ITERATIONS))
    }

    fn new_with(password: &str, salt: &[u8], iterations: u32) -> PasswordHash {
        PasswordHash { iterations, salt: salt.to_vec(), hash: pbkdf2_sha256(password.as_bytes(), salt, iterations) }
    }

    /// Reads `pbkdf2-sha256$<iterations>$<salt>$<hash>`.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let parts: Vec<&str> = text.split('$').collect();
        let [scheme, iterations, salt, hash] = parts.as_slice() else {
            return Err("is not pbkdf2-sha256$<iterations>$<salt>$<hash>".into());
        };
        if *scheme != "pbkdf2-sha256" {
            return Err(format!("uses {scheme:?}; only pbkdf2-sha256 is known"));
        }
        let iterations: u32 = iterations.parse().map_err(|_| "has no iteration count".to_string())?;
        if iterations < MIN_ITERATIONS {
            return Err(format!("uses {iterations} iterations, fewer than {MIN_ITERATIONS}"));
        }
        let salt = hex::decode(salt).map_err(|_| "has a salt that is not hex".to_string())?;
        let hash: [u8; 32] = hex::decode(hash).ok().and_then(|h| h.try_into().ok()).ok_or("has a hash that is not 64 hex digits")?;
        Ok(PasswordHash { iterations, salt, hash })
    }

    /// Whether `password` hashes to this, compared in constant time.
    pub fn matches(&self, password: &str) -> bool {
        let candidate = pbkdf2_sha256(password.as_bytes(), &self.salt, self.iterations);
        candidate.iter().zip(self.hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pbkdf2-sha256${}${}${}", self.iterations, hex::encode(&self.salt), hex::encode(self.hash))
    }
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256, one block: 32 bytes of output.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let prf = Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut first = prf.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = first.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut next = prf.clone();
        next.update(&u);
        u = next.finalize().into_bytes().into();
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // RFC 7914 section 11, the PBKDF2-HMAC-SHA256 vector with one iteration, and
        // the widely published c = 4096 vector for "password"/"salt".
        let one = pbkdf2_sha256(b"passwd", b"salt", 1);
        assert_eq!(hex::encode(&one[..16]), "55ac046e56e3089fec1691c22544b605");
        let many = pbkdf2_sha256(b"password", b"salt", 4096);
        assert_eq!(hex::encode(many), "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
    }

    #[test]
    fn a_hash_round_trips_and_checks_only_its_password() {
        let hash = PasswordHash::new_with("correct horse", b"0123456789abcdef", MIN_ITERATIONS);
        let parsed = PasswordHash::parse(&hash.to_string()).unwrap();
        assert!(parsed.matches("correct horse"));
        assert!(!parsed.matches("correct horse "));
        for bad in ["plain", "bcrypt$1$00$00", "pbkdf2-sha256$10$zz$00", "pbkdf2-sha256$1$00$00"] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sign_in_gives_the_role_for_the_right_password_only() {
        let hash = PasswordHash::new_with("pw-ada", b"salt-salt-salt-1", MIN_ITERATIONS).to_string();
        let mut config = ConsoleConfig::default();
        config.users.insert("ada".into(), ConsoleUser { role: Role::Administrator, password_hash: hash });
        config.validate().unwrap();
        assert_eq!(config.sign_in("ada", "pw-ada"), Some(Role::Administrator));
        assert_eq!(config.sign_in("ada", "pw-dana"), None);
        assert_eq!(config.sign_in("nobody", "pw-ada"), None);
        config.users.insert("bad name".into(), config.users["ada"].clone());
        assert!(config.validate().is_err());
    }
}
