//! Secret files: passwords, tokens, keys and credentials are never written in the TOML or on
//! the command line; the TOML names a file that only the service can read, and the service
//! reads it at start.
//!
//! A secret file must exist, be a regular file, and give others no access at all (mode & 0o007
//! = 0). It may be group-readable, so that `/etc/telemetry/secrets/` can be 0750
//! root:telemetry with files 0640 root:telemetry. Errors name the key and the file, never
//! the contents.
//!
//! ```
//! use std::os::unix::fs::PermissionsExt;
//! let dir = std::env::temp_dir().join(format!("doc-secret-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let file = dir.join("password");
//! std::fs::write(&file, "s3cret\n").unwrap();
//! std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
//! let path = file.to_str().unwrap();
//! assert_eq!(telemetry_config::read_secret("ingestd.password_file", path).unwrap(), "s3cret");
//! std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
//! let err = telemetry_config::read_secret("ingestd.password_file", path).unwrap_err();
//! assert!(err.to_string().contains("readable by others"), "{err}");
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::os::unix::fs::PermissionsExt;

use crate::error::ConfigError;

fn refused(key: &str, path: &str, problem: String) -> ConfigError {
    ConfigError {
        key: format!("{key} = {path:?}"),
        problem,
    }
}

/// Checks that `path`, the value of `key`, is a secret file only its owner and group can read.
/// An empty path (no secret configured) is fine.
pub fn check_secret_file(key: &str, path: &str) -> Result<(), ConfigError> {
    if path.is_empty() {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(|e| refused(key, path, format!("cannot read the secret file: {e}")))?;
    if !meta.is_file() {
        return Err(refused(key, path, "is not a regular file".into()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(refused(
            key,
            path,
            format!(
                "the secret file is readable by others (mode {:o}); allow only its owner and group, \
                 for example chmod 0640",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

/// Reads the secret in `path` (the value of `key`) after [`check_secret_file`]: the file's text
/// without its trailing line break. An empty file is an error.
pub fn read_secret(key: &str, path: &str) -> Result<String, ConfigError> {
    if path.is_empty() {
        return Err(refused(key, path, "no file named".into()));
    }
    check_secret_file(key, path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| refused(key, path, format!("cannot read the secret file: {e}")))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(refused(key, path, "the secret file is empty".into()));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str, mode: u32) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("secret-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let s = path.to_str().unwrap().to_owned();
        (dir, s)
    }

    #[test]
    fn owner_and_group_only() {
        for (mode, ok) in [
            (0o600, true),
            (0o640, true),
            (0o400, true),
            (0o604, false),
            (0o602, false),
            (0o601, false),
            (0o666, false),
        ] {
            let (dir, path) = file(&format!("m{mode:o}"), "x\n", mode);
            let r = check_secret_file("k.password_file", &path);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(e.starts_with(&format!("config: k.password_file = {path:?}")), "{e}");
            }
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn missing_empty_and_directories_are_refused() {
        let e = read_secret("k.token_file", "/nonexistent/token")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("k.token_file") && e.contains("/nonexistent/token") && e.contains("cannot read"),
            "{e}"
        );
        let (dir, path) = file("empty", "\n", 0o600);
        assert!(read_secret("k", &path).unwrap_err().to_string().contains("empty"));
        let d = dir.to_str().unwrap();
        assert!(check_secret_file("k", d)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        std::fs::remove_dir_all(dir).unwrap();
        assert!(check_secret_file("k", "").is_ok());
    }

    #[test]
    fn the_secret_is_the_text_without_its_line_break_and_never_in_errors() {
        let (dir, path) = file("crlf", "pa ss\r\n", 0o600);
        assert_eq!(read_secret("k", &path).unwrap(), "pa ss");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!read_secret("k", &path).unwrap_err().to_string().contains("pa ss"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
