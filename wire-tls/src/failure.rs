//! Why a TLS connection failed, in the words an operator needs, found in whatever error chain a
//! client library returns (rustls' error is usually wrapped in an `io::Error`, itself inside
//! the library's own error).

use std::fmt;

use rustls::{AlertDescription, CertificateError};

/// A TLS failure, by cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate is not signed by a CA we trust (`ca_file`).
    UnknownIssuer,
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server's certificate does not name the host (or `tls_server_name`).
    WrongName,
    /// The server refused us with a TLS alert, typically our client certificate (missing,
    /// unknown CA, expired): the alert's name.
    Refused(String),
    /// Any other TLS error, as rustls words it.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UnknownIssuer => write!(f, "the server's certificate is not signed by a trusted CA (ca_file)"),
            TlsFailure::Expired => write!(f, "the server's certificate has expired"),
            TlsFailure::NotYetValid => write!(f, "the server's certificate is not valid yet"),
            TlsFailure::WrongName => {
                write!(
                    f,
                    "the server's certificate does not name the host (or tls_server_name)"
                )
            }
            TlsFailure::Refused(alert) => write!(
                f,
                "the server refused the TLS connection ({alert}): check the client certificate (cert_file, key_file)"
            ),
            TlsFailure::Other(e) => write!(f, "TLS: {e}"),
        }
    }
}

fn classify(e: &rustls::Error) -> TlsFailure {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => TlsFailure::NotYetValid,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WrongName
            }
            other => TlsFailure::Other(format!("invalid server certificate: {other:?}")),
        },
        rustls::Error::AlertReceived(a) => TlsFailure::Refused(alert_name(*a)),
        other => TlsFailure::Other(other.to_string()),
    }
}

fn alert_name(a: AlertDescription) -> String {
    match a {
        AlertDescription::CertificateRequired => "certificate required".into(),
        AlertDescription::UnknownCA => "unknown CA".into(),
        AlertDescription::BadCertificate => "bad certificate".into(),
        AlertDescription::CertificateExpired => "certificate expired".into(),
        AlertDescription::HandshakeFailure => "handshake failure".into(),
        other => format!("{other:?}"),
    }
}

/// The TLS failure somewhere in `err`'s chain (through `source()` and inside `io::Error`s), if
/// it is one.
///
/// ```
/// use wire_tls::{tls_failure, TlsFailure};
/// let rustls_error = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
/// let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
/// assert_eq!(tls_failure(&wrapped), Some(TlsFailure::Expired));
/// assert_eq!(tls_failure(&std::io::Error::other("reset")), None);
/// ```
pub fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next = Some(err);
    let mut depth = 0;
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(classify(r));
        }
        // io::Error::source() skips the error it wraps: look inside it explicitly.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(found) = tls_failure(inner) {
                return Some(found);
            }
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        next = e.source();
    }
    None
}
