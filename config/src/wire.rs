//! Credentials and the wires they cross: a password, token, NKey, `.creds` file or SASL secret is
//! sent only over an encrypted wire unless the section says `allow_plaintext_credentials = true`;
//! and URLs are shown (in errors and logs) without the credentials they may carry.
//!
//! ```
//! use telemetry_config::redact_url;
//! assert_eq!(redact_url("nats://user:pass@127.0.0.1:4222"), "nats://[redacted]@127.0.0.1:4222");
//! assert_eq!(redact_url("tls://t0ken@h:4222/"), "tls://[redacted]@h:4222/");
//! assert_eq!(redact_url("mqtt://127.0.0.1:1883"), "mqtt://127.0.0.1:1883");
//! ```

use crate::error::ConfigError;

/// `url` with any `userinfo@` (a user and password, or a token) replaced by `[redacted]@`, for
/// logs and error messages. A value that is not a URL is returned as it is unless it holds an
/// `@`, which is then redacted too (it may be a mistyped URL with credentials).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // The authority ends at the first '/', '?' or '#'; only an '@' inside it is userinfo.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("[redacted]@{host}"),
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Whether `url` carries credentials (`scheme://user:pass@host:port`, `scheme://token@host`).
pub fn url_has_credentials(url: &str) -> bool {
    redact_url(url) != url
}

/// The error for a secret that would cross a plaintext wire: names `key` (the secret's key,
/// with its value shown as `value`), the wire, and the two ways out.
pub(crate) fn plaintext_credentials(key: &str, value: &str, wire: &str, section: &str, encrypt: &str) -> ConfigError {
    ConfigError {
        key: format!("{key} = {value:?}"),
        problem: format!(
            "this secret would be sent in clear over {wire}: {encrypt}, or set \
             allow_plaintext_credentials = true in [{section}] to accept that"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::Config;

    /// A private secret file, removed on drop.
    struct Secret(std::path::PathBuf);
    impl Secret {
        fn new(name: &str) -> Secret {
            let p = std::env::temp_dir().join(format!("wire-test-{name}-{}", std::process::id()));
            std::fs::write(&p, "s3cret\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            Secret(p)
        }
        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for Secret {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn an_mqtt_password_needs_mqtts_or_an_explicit_yes() {
        let pw = Secret::new("mqtt");
        let plain = format!("[ingestd]\nusername = \"u\"\npassword_file = \"{}\"\n", pw.path());
        let e = err(&plain);
        assert!(
            e.starts_with(&format!("config: ingestd.password_file = {:?}: ", pw.path()))
                && e.contains("in clear")
                && e.contains("allow_plaintext_credentials = true in [ingestd]"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        Config::from_toml(&format!("{plain}allow_plaintext_credentials = true\n")).unwrap();
        Config::from_toml(&format!("{plain}broker = \"mqtts://127.0.0.1:8883\"\n")).unwrap();
        // A user name alone is no secret.
        Config::from_toml("[ingestd]\nusername = \"u\"\n").unwrap();
    }

    #[test]
    fn nats_credentials_need_tls_or_an_explicit_yes() {
        let s = Secret::new("nats");
        for key in ["token_file", "nkey_seed_file", "credentials_file"] {
            let plain = format!("[emitd]\n{key} = \"{}\"\n", s.path());
            let e = err(&plain);
            assert!(
                e.starts_with(&format!("config: emitd.{key} = ")) && e.contains("[emitd]"),
                "{key}: {e}"
            );
            Config::from_toml(&format!("{plain}allow_plaintext_credentials = true\n")).unwrap();
            Config::from_toml(&format!("{plain}nats = \"tls://127.0.0.1:4222\"\n")).unwrap();
            // nats:// with a CA file: emitd requires TLS of the server, so this is encrypted.
            Config::from_toml(&format!("{plain}ca_file = \"/etc/ssl/ca.pem\"\n")).unwrap();
        }
        let userpass = format!("[emitd]\nuser = \"u\"\npassword_file = \"{}\"\n", s.path());
        assert!(err(&userpass).starts_with("config: emitd.password_file"));
        // Credentials in the URL: refused too, and the error does not repeat them.
        let e = err("[emitd]\nnats = \"nats://u:hunter2@127.0.0.1:4222\"\n");
        assert!(
            e.starts_with("config: emitd.nats = \"nats://[redacted]@127.0.0.1:4222\""),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = err("[emitd]\nnats = \"nats://u:hunter2@127.0.0.1\"\nallow_plaintext_credentials = true\n");
        assert!(e.contains("port") && !e.contains("hunter2"), "{e}");
        Config::from_toml("[emitd]\nnats = \"nats://127.0.0.1:4222\"\n").unwrap();
    }

    #[test]
    fn kafka_sasl_needs_tls_or_an_explicit_yes() {
        let s = Secret::new("kafka");
        let plain = format!(
            "[emitd]\nsinks = [\"kafka\"]\n[emitd.kafka]\nbrokers = [\"127.0.0.1:9092\"]\n\
             sasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password_file = \"{}\"\n",
            s.path()
        );
        let e = err(&plain);
        assert!(
            e.starts_with("config: emitd.kafka.sasl_password_file") && e.contains("[emitd.kafka]"),
            "{e}"
        );
        Config::from_toml(&format!("{plain}allow_plaintext_credentials = true\n")).unwrap();
        Config::from_toml(&format!("{plain}tls = true\n")).unwrap();
        // [emitd]'s permission does not reach Kafka's section.
        let other = plain.replace(
            "sinks = [\"kafka\"]\n",
            "sinks = [\"kafka\"]\nallow_plaintext_credentials = true\n",
        );
        assert!(err(&other).starts_with("config: emitd.kafka.sasl_password_file"));
    }

    #[test]
    fn credentials_are_cut_from_urls_and_nothing_else_is() {
        for (url, shown) in [
            ("nats://u:p@127.0.0.1:4222", "nats://[redacted]@127.0.0.1:4222"),
            ("nats://u:p@w@h:1", "nats://[redacted]@h:1"),
            ("mqtts://user@[::1]:8883/path@x", "mqtts://[redacted]@[::1]:8883/path@x"),
            ("tls://h:4222", "tls://h:4222"),
            ("h:9092", "h:9092"),
            ("secret@h:9092", "[redacted]@h:9092"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            assert_eq!(url_has_credentials(url), url != shown, "{url}");
        }
    }
}
