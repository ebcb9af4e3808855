//! TLS for the pipeline's wires (MQTT in, NATS out, HTTP in): rustls client and server configs
//! built from the files the config names, with one crypto provider for the whole process, and in
//! words why a handshake failed.
//!
//! - Server certificates are always verified, names included. [`ClientFiles::server_name`]
//!   only changes *which* name is expected, for a broker reached by IP address whose
//!   certificate names a host.
//! - TLS 1.2 and 1.3 only (rustls has nothing older).
//! - The private key is a secret file, checked and read through one descriptor
//!   ([`telemetry_config::read_secret_bytes`]: no symbolic link, the service's own, no access
//!   for others).
//!
//! ```
//! let files = wire_tls::ClientFiles { key: "ingestd", ..Default::default() };
//! // No CA file: the system's roots. No client certificate.
//! let config = wire_tls::client_config(&files).unwrap();
//! assert!(!config.client_auth_cert_resolver.has_certs());
//! let missing = wire_tls::ClientFiles { key: "ingestd", ca_file: "/nonexistent/ca.pem", ..Default::default() };
//! let err = wire_tls::client_config(&missing).unwrap_err();
//! assert!(err.starts_with("ingestd.ca_file = \"/nonexistent/ca.pem\""), "{err}");
//! ```

#![deny(missing_docs)]

mod failure;
mod name;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use failure::{tls_failure, TlsFailure};

/// The files and names of one wire's TLS, as the config gives them (empty: not set).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientFiles<'a> {
    /// The config section, for errors (`ingestd`, `emitd`).
    pub key: &'a str,
    /// PEM CA certificates; empty for the system's roots.
    pub ca_file: &'a str,
    /// PEM client certificate chain (mutual TLS); needs `key_file`.
    pub cert_file: &'a str,
    /// PEM private key of the client certificate (PKCS#1, PKCS#8 or SEC1); a secret file.
    pub key_file: &'a str,
    /// The name the server's certificate must carry, instead of the host in the URL.
    pub server_name: &'a str,
}

/// Installs ring as the process's rustls crypto provider (once; later calls do nothing). With
/// two providers compiled in, rustls could not choose and a connect would panic.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn at(section: &str, key: &str, path: &str, problem: impl std::fmt::Display) -> String {
    format!("{section}.{key} = {path:?}: {problem}")
}

fn roots(files: &ClientFiles) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if files.ca_file.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(format!(
                "{}: no ca_file is set and the system has no CA certificates",
                files.key
            ));
        }
        return Ok(roots);
    }
    let pem = std::fs::read(files.ca_file).map_err(|e| at(files.key, "ca_file", files.ca_file, e))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| at(files.key, "ca_file", files.ca_file, e))?;
        roots
            .add(cert)
            .map_err(|e| at(files.key, "ca_file", files.ca_file, e))?;
    }
    if roots.is_empty() {
        return Err(at(files.key, "ca_file", files.ca_file, "holds no PEM certificate"));
    }
    Ok(roots)
}

fn client_identity(
    files: &ClientFiles,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    match (files.cert_file.is_empty(), files.key_file.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => return Err(format!("{}.cert_file is set: key_file must be set too", files.key)),
        (true, false) => return Err(format!("{}.key_file is set: cert_file must be set too", files.key)),
        (false, false) => {}
    }
    let pem = std::fs::read(files.cert_file).map_err(|e| at(files.key, "cert_file", files.cert_file, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(files.key, "cert_file", files.cert_file, e))?;
    if chain.is_empty() {
        return Err(at(files.key, "cert_file", files.cert_file, "holds no PEM certificate"));
    }
    let key_name = format!("{}.key_file", files.key);
    // Read through the checked descriptor (never re-opened by path), then parsed.
    let pem = telemetry_config::read_secret_bytes(&key_name, files.key_file).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        at(
            files.key,
            "key_file",
            files.key_file,
            format!("no PEM private key ({e})"),
        )
    })?;
    Ok(Some((chain, key)))
}

/// The rustls client config for a wire: its roots, the expected server name if overridden, and
/// its client certificate if any. Errors name the key and the file.
pub fn client_config(files: &ClientFiles) -> Result<Arc<ClientConfig>, String> {
    install_provider();
    let roots = roots(files)?;
    let identity = client_identity(files)?;
    let builder = if files.server_name.is_empty() {
        ClientConfig::builder().with_root_certificates(roots)
    } else {
        let expected = ServerName::try_from(files.server_name.to_owned())
            .map_err(|e| at(files.key, "tls_server_name", files.server_name, e))?;
        let verifier = name::ExpectName::new(roots, expected).map_err(|e| format!("{}: {e}", files.key))?;
        ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| at(files.key, "key_file", files.key_file, e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The rustls server config for a listener (`section` names it in errors, e.g.
/// `ingestd.http`): its certificate chain from `cert_file` and its key from `key_file`, a secret
/// file. No client certificates are asked for.
pub fn server_config(section: &str, cert_file: &str, key_file: &str) -> Result<Arc<ServerConfig>, String> {
    install_provider();
    let pem = std::fs::read(cert_file).map_err(|e| at(section, "cert_file", cert_file, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(section, "cert_file", cert_file, e))?;
    if chain.is_empty() {
        return Err(at(section, "cert_file", cert_file, "holds no PEM certificate"));
    }
    let pem =
        telemetry_config::read_secret_bytes(&format!("{section}.key_file"), key_file).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| at(section, "key_file", key_file, format!("no PEM private key ({e})")))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| at(section, "key_file", key_file, e))?;
    Ok(Arc::new(config))
}
