//! Why an MQTT connection attempt failed, by the causes an operator acts on differently: TLS
//! (certificates, names), credentials, or the network. Each is counted and logged in one line
//! that names the cause, and the last one is kept in the stats page (`gauge.failure.mqtt`) for
//! `telemetryctl status`.

use records::names::gauge::failure;
use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::mqttbytes::Error as MqttError;
use rumqttc::v5::{ConnectionError, StateError};

/// One failed attempt: its [`failure`] code and what to tell the operator.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// A `records::names::gauge::failure` code.
    pub code: u64,
    /// The cause in words.
    pub cause: String,
}

/// Classifies a connection error.
pub fn classify(e: &ConnectionError) -> Failure {
    // A broker's TLS alert after the handshake (our client certificate refused) arrives on the
    // first read, as a deserialization error that does not chain its I/O cause: look inside.
    let inner: Option<&(dyn std::error::Error + 'static)> = match e {
        ConnectionError::MqttState(StateError::Deserialization(MqttError::Io(io))) => Some(io),
        _ => None,
    };
    if let Some(tls) = inner
        .and_then(wire_tls::tls_failure)
        .or_else(|| wire_tls::tls_failure(e))
    {
        return Failure {
            code: failure::TLS,
            cause: tls.to_string(),
        };
    }
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let auth = matches!(
                code,
                ConnectReturnCode::BadUserNamePassword
                    | ConnectReturnCode::NotAuthorized
                    | ConnectReturnCode::BadAuthenticationMethod
                    | ConnectReturnCode::Banned
            );
            Failure {
                code: if auth { failure::AUTH } else { failure::OTHER },
                cause: if auth {
                    format!("the broker refused our credentials ({code:?}): check username and password_file")
                } else {
                    format!("the broker refused the connection ({code:?})")
                },
            }
        }
        ConnectionError::Io(_) | ConnectionError::Timeout(_) | ConnectionError::MqttState(StateError::Io(_)) => {
            Failure {
                code: failure::NETWORK,
                cause: e.to_string(),
            }
        }
        other => Failure {
            code: failure::OTHER,
            cause: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes() {
        let refused = classify(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword,
        ));
        assert_eq!(refused.code, failure::AUTH);
        assert!(refused.cause.contains("password_file"), "{}", refused.cause);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&ConnectionError::Io(io)).code, failure::NETWORK);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let e = classify(&ConnectionError::Io(tls));
        assert_eq!(e.code, failure::TLS);
        assert!(e.cause.contains("trusted CA"), "{}", e.cause);
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        let e = classify(&ConnectionError::MqttState(StateError::Deserialization(MqttError::Io(
            alert,
        ))));
        assert_eq!(e.code, failure::TLS);
        assert!(
            e.cause.contains("unknown CA") && e.cause.contains("cert_file"),
            "{}",
            e.cause
        );
        let other = classify(&ConnectionError::ConnectionRefused(ConnectReturnCode::ServerBusy));
        assert_eq!(other.code, failure::OTHER);
    }
}
