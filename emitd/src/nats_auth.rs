//! How emitd proves itself to NATS and checks the server: TLS (CA, client certificate, expected
//! name, through `wire_tls`) and one of token, user + password, NKey or a `.creds` file, each
//! read from a secret file. Also why a connection attempt failed, in the categories an
//! operator acts on.

use std::sync::Arc;

use async_nats::{ClientError, ConnectOptions, Event, ServerError};
use records::names::gauge::failure;
use telemetry_config::{read_secret, Emitd};

fn secret(key: &str, path: &str) -> Result<String, String> {
    read_secret(key, path).map_err(|e| e.to_string())
}

/// Whether the URL carries credentials (`nats://user:pass@host:port`, `nats://token@host:port`).
pub fn url_has_credentials(url: &str) -> bool {
    telemetry_config::url_has_credentials(url)
}

/// The rustls config of the NATS wire, when it uses TLS (a `tls://` URL, or any TLS key set:
/// [`Emitd::nats_tls`]).
pub fn tls_config(config: &Emitd) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if !config.nats_tls() {
        return Ok(None);
    }
    let files = wire_tls::ClientFiles {
        key: "emitd",
        ca_file: &config.ca_file,
        cert_file: &config.cert_file,
        key_file: &config.key_file,
        server_name: &config.tls_server_name,
    };
    wire_tls::client_config(&files).map(Some)
}

/// Adds the config's TLS (`tls`, from [`tls_config`]) and credentials to `options`. With TLS,
/// TLS is required whatever the URL's scheme: a server that does not offer it is refused before
/// any credential is sent (async-nats would otherwise follow the server's INFO and speak in
/// clear). Errors name the key and the file.
pub async fn secure(
    mut options: ConnectOptions,
    config: &Emitd,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<ConnectOptions, String> {
    if let Some(tls) = tls {
        options = options.tls_client_config((**tls).clone()).require_tls(true);
    }
    if !config.token_file.is_empty() {
        options = options.token(secret("emitd.token_file", &config.token_file)?);
    }
    if !config.user.is_empty() {
        let password = secret("emitd.password_file", &config.password_file)?;
        options = options.user_and_password(config.user.clone(), password);
    }
    if !config.nkey_seed_file.is_empty() {
        options = options.nkey(secret("emitd.nkey_seed_file", &config.nkey_seed_file)?);
    }
    if !config.credentials_file.is_empty() {
        // Read from the checked descriptor, not re-opened by path (async-nats' credentials_file).
        let creds = telemetry_config::read_secret_bytes("emitd.credentials_file", &config.credentials_file)
            .map_err(|e| e.to_string())?;
        let creds = String::from_utf8(creds)
            .map_err(|_| format!("emitd.credentials_file = {:?}: not UTF-8 text", config.credentials_file))?;
        options = options
            .credentials(&creds)
            .map_err(|e| format!("emitd.credentials_file = {:?}: {e}", config.credentials_file))?;
    }
    Ok(options)
}

/// The [`failure`] code of an async-nats event that reports a failed connection attempt, if it
/// is one. async-nats reports only the category (its `ConnectErrorKind`), not the detail.
pub fn failure_of(event: &Event) -> Option<u64> {
    match event {
        Event::ServerError(ServerError::AuthorizationViolation) => Some(failure::AUTH),
        Event::ClientError(ClientError::Other(kind)) => Some(match kind.as_str() {
            "TLS error" => failure::TLS,
            "authorization violation" | "failed signing nonce" => failure::AUTH,
            "IO error" | "timed out" | "DNS error" => failure::NETWORK,
            _ => failure::OTHER,
        }),
        _ => None,
    }
}

/// What to tell the operator about a failure code.
pub fn advice(code: u64) -> &'static str {
    match code {
        failure::TLS => "TLS failed: check ca_file, cert_file, key_file and tls_server_name against the server",
        failure::AUTH => "the server refused our credentials: check token_file, user/password_file, nkey_seed_file or credentials_file",
        failure::NETWORK => "the server cannot be reached",
        _ => "the connection attempt failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_noticed() {
        assert!(url_has_credentials("nats://u:p@127.0.0.1:4222"));
        assert!(url_has_credentials("tls://token@h:4222"));
        assert!(!url_has_credentials("nats://127.0.0.1:4222"));
        assert!(
            !url_has_credentials("nats://127.0.0.1:4222/x@y"),
            "an @ after the host is no credential"
        );
    }

    #[test]
    fn connection_failures_by_category() {
        let other = |s: &str| Event::ClientError(ClientError::Other(s.into()));
        assert_eq!(failure_of(&other("TLS error")), Some(failure::TLS));
        assert_eq!(failure_of(&other("authorization violation")), Some(failure::AUTH));
        assert_eq!(
            failure_of(&Event::ServerError(ServerError::AuthorizationViolation)),
            Some(failure::AUTH)
        );
        assert_eq!(failure_of(&other("IO error")), Some(failure::NETWORK));
        assert_eq!(failure_of(&Event::Connected), None);
    }
}
