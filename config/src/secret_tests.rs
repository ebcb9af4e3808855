//! Tests of `secret`: which files pass as secrets, and that errors never show the secret.

use std::os::unix::fs::PermissionsExt;

use super::*;

/// A directory of its own holding `secret` with `text` and `mode`; removed on drop.
struct Secret {
    dir: std::path::PathBuf,
    path: String,
}

impl Secret {
    fn new(name: &str, text: &str, mode: u32) -> Secret {
        let dir = std::env::temp_dir().join(format!("secret-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let path = path.to_str().unwrap().to_owned();
        Secret { dir, path }
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn owner_only_or_group_readable_but_never_group_writable_or_open_to_others() {
    for (mode, ok, why) in [
        (0o600, true, ""),
        (0o400, true, ""),
        (0o640, true, ""),
        (0o440, true, ""),
        (0o660, false, "writable by its group"),
        (0o620, false, "writable by its group"),
        (0o604, false, "readable by others"),
        (0o602, false, "readable by others"),
        (0o601, false, "readable by others"),
        (0o666, false, "readable by others"),
    ] {
        let s = Secret::new(&format!("m{mode:o}"), "x\n", mode);
        let r = check_secret_file("k.password_file", &s.path);
        assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
        if let Err(e) = r {
            let e = e.to_string();
            assert!(e.starts_with(&format!("config: k.password_file = {:?}", s.path)), "{e}");
            assert!(e.contains(why), "mode {mode:o}: {e}");
        }
    }
}

#[test]
fn a_symbolic_link_is_refused_even_to_a_good_secret() {
    let s = Secret::new("link", "s3cret\n", 0o600);
    let link = s.dir.join("link");
    std::os::unix::fs::symlink(&s.path, &link).unwrap();
    let link = link.to_str().unwrap();
    let e = read_secret("k.token_file", link).unwrap_err().to_string();
    assert!(
        e.contains("k.token_file") && e.contains(link) && e.contains("symbolic link"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    assert_eq!(read_secret("k.token_file", &s.path).unwrap(), "s3cret");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED a_file_owned_by_another_user_is_refused: needs root to chown a file to nobody");
        return;
    }
    let s = Secret::new("owner", "s3cret\n", 0o600);
    // Root's own file passes; the same file owned by nobody (65534) does not.
    assert_eq!(read_secret("k.password_file", &s.path).unwrap(), "s3cret");
    std::os::unix::fs::chown(&s.path, Some(65534), Some(65534)).unwrap();
    let e = read_secret("k.password_file", &s.path).unwrap_err().to_string();
    assert!(
        e.contains("k.password_file") && e.contains(&s.path) && e.contains("owned by uid 65534"),
        "{e}"
    );
    // Owned by nobody but with root's group: still refused (the owner is what counts).
    std::os::unix::fs::chown(&s.path, Some(65534), Some(0)).unwrap();
    assert!(check_secret_file("k", &s.path).is_err());
}

#[test]
fn missing_empty_oversized_fifos_and_directories_are_refused() {
    let e = read_secret("k.token_file", "/nonexistent/token")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("k.token_file") && e.contains("/nonexistent/token") && e.contains("cannot read"),
        "{e}"
    );
    let s = Secret::new("empty", "\n", 0o600);
    assert!(read_secret("k", &s.path).unwrap_err().to_string().contains("empty"));
    let d = s.dir.to_str().unwrap();
    assert!(check_secret_file("k", d)
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));
    let big = Secret::new("big", &"x".repeat(MAX_SECRET_BYTES as usize + 1), 0o600);
    let e = read_secret_bytes("k.key_file", &big.path).unwrap_err().to_string();
    assert!(e.contains("k.key_file") && e.contains("bytes"), "{e}");
    assert!(!e.contains("xxxx"), "{e}");
    let fits = Secret::new("fits", &"x".repeat(MAX_SECRET_BYTES as usize), 0o600);
    assert_eq!(
        read_secret_bytes("k", &fits.path).unwrap().len(),
        MAX_SECRET_BYTES as usize
    );
    // A FIFO would block a plain open until a writer came: refused at once instead.
    let fifo = s.dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = check_secret_file("k", fifo.to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(check_secret_file("k", "").is_ok());
}

#[test]
fn the_secret_is_the_text_without_its_line_break_and_never_in_errors() {
    let s = Secret::new("crlf", "pa ss\r\n", 0o600);
    assert_eq!(read_secret("k", &s.path).unwrap(), "pa ss");
    assert_eq!(read_secret_bytes("k", &s.path).unwrap(), b"pa ss\r\n");
    std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!read_secret("k", &s.path).unwrap_err().to_string().contains("pa ss"));
}
