//! Settings for listeners that demand TLS or credentials, to pass to
//! [`crate::Mosquitto::start_with`].

use std::path::Path;
use std::process::Command;

use crate::find_program;
use crate::pki::{CertFiles, Pki};

/// A TLS listener that presents `server` and, when `require_certificate`, admits only clients
/// with a certificate signed by the PKI's CA.
pub fn mosquitto_tls(pki: &Pki, server: &CertFiles, require_certificate: bool) -> String {
    format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\nallow_anonymous true\n",
        pki.ca.display(),
        server.cert.display(),
        server.key.display(),
    )
}

/// A plain listener that admits only `user` with `password`, written to a mosquitto password
/// file in `dir` (hashed by `mosquitto_passwd`).
pub fn mosquitto_password(dir: &Path, user: &str, password: &str) -> String {
    let file = dir.join("mosquitto.passwd");
    let _ = std::fs::remove_file(&file);
    std::fs::write(&file, "").expect("create password file");
    let status = Command::new(find_program("mosquitto_passwd"))
        .arg("-b")
        .arg(&file)
        .args([user, password])
        .status()
        .expect("mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed: {status}");
    format!("allow_anonymous false\npassword_file {}\n", file.display())
}

/// A nats-server `tls` block presenting `server`; with `verify`, only clients with a certificate
/// signed by the PKI's CA are admitted.
pub fn nats_tls(pki: &Pki, server: &CertFiles, verify: bool) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify}\n}}\n",
        server.cert.display(),
        server.key.display(),
        pki.ca.display(),
    )
}
