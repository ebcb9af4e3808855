//! Secret files: passwords, tokens, keys and credentials are never written in the TOML or on
//! the command line; the TOML names a file that only the service can read, and the service
//! reads it at start.
//!
//! A secret file is opened once, without following a symbolic link (`O_NOFOLLOW`: a link
//! planted in the secrets directory is refused, not followed to whatever it points at), and
//! everything is checked on the opened descriptor, so the file read is the file checked:
//!
//! - a regular file (not a directory, FIFO or device; opened non-blocking so a FIFO cannot
//!   hang the open),
//! - owned by the user the process runs as, or by root,
//! - not writable by its group, and no access at all for others (mode & 0o027 = 0): 0600, 0400
//!   and 0640 pass; 0660, 0604 and 0644 do not,
//! - at most [`MAX_SECRET_BYTES`].
//!
//! Errors name the key and the file, never the contents.
//!
//! ```
//! use std::os::unix::fs::PermissionsExt;
//! let dir = std::env::temp_dir().join(format!("doc-secret-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let file = dir.join("password");
//! std::fs::write(&file, "s3cret\n").unwrap();
//! std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
//! let path = file.to_str().unwrap();
//! assert_eq!(telemetry_config::read_secret("ingestd.password_file", path).unwrap(), "s3cret");
//! std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
//! let err = telemetry_config::read_secret("ingestd.password_file", path).unwrap_err();
//! assert!(err.to_string().contains("readable by others"), "{err}");
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use nix::fcntl::OFlag;

use crate::error::ConfigError;

/// The largest secret file read, in bytes. A private key with its PEM armour is a few KiB, a
/// `.creds` file about one; anything larger is not a secret this pipeline uses.
pub const MAX_SECRET_BYTES: u64 = 64 << 10;

fn refused(key: &str, path: &str, problem: String) -> ConfigError {
    ConfigError {
        key: format!("{key} = {path:?}"),
        problem,
    }
}

/// Opens `path` without following a final symbolic link and checks the opened file: see the
/// module docs.
fn open_checked(key: &str, path: &str) -> Result<File, ConfigError> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                refused(
                    key,
                    path,
                    "the secret file is a symbolic link, which is not followed: name the file itself".into(),
                )
            } else {
                refused(key, path, format!("cannot read the secret file: {e}"))
            }
        })?;
    // fstat on the descriptor: the file checked is the file read below.
    let meta = file
        .metadata()
        .map_err(|e| refused(key, path, format!("cannot read the secret file: {e}")))?;
    if !meta.is_file() {
        return Err(refused(key, path, "is not a regular file".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(refused(
            key,
            path,
            format!(
                "the secret file is owned by uid {}, neither this process's user (uid {euid}) nor root: \
                 chown it to the service user",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(refused(
            key,
            path,
            format!(
                "the secret file is readable by others (mode {mode:o}); allow only its owner, \
                 for example chmod 0600"
            ),
        ));
    }
    if mode & 0o020 != 0 {
        return Err(refused(
            key,
            path,
            format!(
                "the secret file is writable by its group (mode {mode:o}), which could replace the secret; \
                 for example chmod 0600"
            ),
        ));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(refused(
            key,
            path,
            format!(
                "the secret file has {} bytes, more than the {MAX_SECRET_BYTES} a secret may have",
                meta.len()
            ),
        ));
    }
    Ok(file)
}

/// Checks that `path`, the value of `key`, is a secret file as the module docs describe. An
/// empty path (no secret configured) is fine.
pub fn check_secret_file(key: &str, path: &str) -> Result<(), ConfigError> {
    if path.is_empty() {
        return Ok(());
    }
    open_checked(key, path).map(drop)
}

/// The whole content of the secret file `path` (the value of `key`), read from the descriptor
/// that was checked, for secrets that are documents (PEM keys, `.creds` files). An empty file
/// is an error.
pub fn read_secret_bytes(key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    if path.is_empty() {
        return Err(refused(key, path, "no file named".into()));
    }
    let file = open_checked(key, path)?;
    let mut bytes = Vec::new();
    // Bounded again while reading: the file may have grown since the fstat.
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(key, path, format!("cannot read the secret file: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(refused(
            key,
            path,
            format!("the secret file has more than the {MAX_SECRET_BYTES} bytes a secret may have"),
        ));
    }
    if bytes.is_empty() {
        return Err(refused(key, path, "the secret file is empty".into()));
    }
    Ok(bytes)
}

/// The secret in `path` (the value of `key`), checked and read as [`read_secret_bytes`]: the
/// file's text without its trailing line break. An empty secret is an error.
pub fn read_secret(key: &str, path: &str) -> Result<String, ConfigError> {
    let bytes = read_secret_bytes(key, path)?;
    let text = String::from_utf8(bytes).map_err(|_| refused(key, path, "the secret file is not UTF-8 text".into()))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(refused(key, path, "the secret file is empty".into()));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
