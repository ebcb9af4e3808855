//! Why a TLS connection to NATS failed. async-nats reports a failed attempt only by category,
//! and a server that refuses our client certificate (TLS 1.3 sends that alert after the
//! handshake) shows up as a plain I/O error. So when an attempt fails on a TLS wire, emitd
//! repeats the first steps itself, with the same rustls config: read the server's `INFO`, do the
//! TLS handshake, read once more; and names what failed.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wire_tls::{tls_failure, TlsFailure};

/// How long each step of the probe may take.
const STEP: Duration = Duration::from_secs(3);

/// The TLS failure a connection to `url` (`tls://host:port` or `nats://host:port`) meets with
/// `config`, or `None` if TLS works (the problem is elsewhere) or the server cannot be reached.
pub async fn probe(url: &str, config: Arc<rustls::ClientConfig>) -> Option<TlsFailure> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h).trim_end_matches('/');
    let (host, _) = hostport.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']).to_owned();
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(hostport))
        .await
        .ok()?
        .ok()?;
    // The server speaks first, in plain text: INFO {...}\r\n. Then the client starts TLS.
    let mut plain = BufReader::new(tcp);
    let mut info = String::new();
    tokio::time::timeout(STEP, plain.read_line(&mut info))
        .await
        .ok()?
        .ok()?;
    if !info.starts_with("INFO") {
        return None;
    }
    let name = ServerName::try_from(host).ok()?;
    let handshake = TlsConnector::from(config).connect(name, plain.into_inner());
    let mut tls = match tokio::time::timeout(STEP, handshake).await.ok()? {
        Ok(stream) => stream,
        Err(e) => return tls_failure(&e),
    };
    // A refused client certificate arrives as an alert on the first read.
    let mut buf = [0u8; 512];
    match tokio::time::timeout(STEP, tls.read(&mut buf)).await {
        Ok(Err(e)) => tls_failure(&e),
        _ => None,
    }
}
