//! Secrets the host keeps in files of their own: 32 random bytes written as 64 hex
//! digits, created on first start with mode 0600, refused when group or others may
//! read them. The storage's sealing key and the admin API's token are both kept so.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, anyhow};

/// Length of a secret in bytes.
pub const SECRET_LEN: usize = 32;
/// A secret file holds 64 hex digits and a newline; read no more than this of it.
const MAX_FILE_BYTES: u64 = 256;

/// Parses 64 hex digits. Errors never repeat the text, which may be most of a secret.
pub fn parse_hex(text: &str) -> anyhow::Result<[u8; SECRET_LEN]> {
    anyhow::ensure!(
        text.len() == 2 * SECRET_LEN,
        "a secret is {SECRET_LEN} bytes written as {} hex digits, not {} characters",
        2 * SECRET_LEN,
        text.len()
    );
    let mut secret = [0u8; SECRET_LEN];
    hex::decode_to_slice(text, &mut secret).map_err(|_| anyhow!("a secret is written with hex digits only"))?;
    Ok(secret)
}

/// The secret in the environment variable `var`, or `None` when it is not set. A
/// variable that is set but empty or malformed is an error, not a fallback to the
/// file: the two would disagree.
pub fn from_env(var: &str) -> Option<anyhow::Result<[u8; SECRET_LEN]>> {
    let value = std::env::var_os(var)?;
    let secret = value.to_str().ok_or_else(|| anyhow!("not UTF-8")).and_then(|text| parse_hex(text.trim()));
    Some(secret.with_context(|| format!("reading ${var}")))
}

/// Reads the secret file at `path`, or creates it with a new random secret when
/// there is none. Returns the secret and whether it was created just now.
pub fn load_or_create(path: &Path) -> anyhow::Result<([u8; SECRET_LEN], bool)> {
    match File::open(path) {
        Ok(file) => Ok((read(file, path)?, false)),
        Err(e) if e.kind() == ErrorKind::NotFound => create(path),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

fn read(file: File, path: &Path) -> anyhow::Result<[u8; SECRET_LEN]> {
    let context = || format!("the secret file {}", path.display());
    // Checked on the open file, so the file judged is the file read.
    let mode = file.metadata().with_context(context)?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!("{} may be read by group or others (mode {:o}): run `chmod 600` on it", context(), mode & 0o777);
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text).with_context(context)?;
    parse_hex(text.trim()).with_context(context)
}

/// Writes a new secret to a private temporary file, then links it into place. The
/// link fails if the file appeared meanwhile (another host starting on the same
/// directory), so a secret file is never overwritten and never seen half written.
fn create(path: &Path) -> anyhow::Result<([u8; SECRET_LEN], bool)> {
    let secret: [u8; SECRET_LEN] = rand::random();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| anyhow!("the secret file {} has no file name", path.display()))?;
    let temp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), hex::encode(rand::random::<[u8; 6]>())));
    write_private(&temp, &secret).with_context(|| format!("writing {}", temp.display()))?;
    let linked = std::fs::hard_link(&temp, path);
    // The temporary name is only a staging step; a leftover one holds no secret in use.
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            // Make the new directory entry durable before the secret is used.
            File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
            Ok((secret, true))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => load_or_create(path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn write_private(path: &Path, secret: &[u8; SECRET_LEN]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
    file.sync_all()
}
