//! Why a TLS connection to NATS failed. async-nats reports a failed attempt only by category,
//! and a server that refuses our client certificate (TLS 1.3 sends that alert after the
//! handshake) shows up as a plain I/O error. So when an attempt fails on a TLS wire, emitd
//! repeats the first steps itself, with the same rustls config: read the server's `INFO`, do the
//! TLS handshake, read once more; and names what failed.
//!
//! The server it asks may be the problem, or not the server we think: the `INFO` line is read
//! with a bound on its size ([`MAX_INFO`]) and on its time ([`STEP`]), so that a peer sending an
//! endless line costs 64 KiB and a few seconds, not emitd's memory.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wire_tls::{tls_failure, TlsFailure};

/// How long each step of the probe may take.
pub const STEP: Duration = Duration::from_secs(3);

/// The longest `INFO` line read, in bytes. nats-server's is a few hundred bytes, a few KiB with
/// a cluster's `connect_urls`.
pub const MAX_INFO: usize = 64 << 10;

/// Why the server's first line was not an `INFO`.
#[derive(Debug, PartialEq, Eq)]
pub enum InfoError {
    /// No full line within [`MAX_INFO`] bytes.
    TooLong,
    /// No full line within [`STEP`].
    TimedOut,
    /// The connection closed or failed first.
    Closed,
    /// A line, but not `INFO ...`.
    NotInfo,
}

/// Reads the server's first line, which must be `INFO {...}`, within [`MAX_INFO`] bytes and
/// [`STEP`].
pub async fn read_info<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, InfoError> {
    let mut line = Vec::new();
    let mut bounded = reader.take(MAX_INFO as u64);
    match tokio::time::timeout(STEP, bounded.read_until(b'\n', &mut line)).await {
        Err(_) => return Err(InfoError::TimedOut),
        Ok(Err(_)) => return Err(InfoError::Closed),
        Ok(Ok(_)) => {}
    }
    if !line.ends_with(b"\n") {
        return Err(if line.len() >= MAX_INFO {
            InfoError::TooLong
        } else {
            InfoError::Closed
        });
    }
    if !line.starts_with(b"INFO") {
        return Err(InfoError::NotInfo);
    }
    Ok(line)
}

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
    if let Err(e) = read_info(&mut plain).await {
        tracing::debug!(?e, "TLS probe: no INFO line from the server");
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A server on a free loopback port that writes `first`, then (if `endless`) 'x' forever,
    /// until the client goes away.
    async fn server(first: &'static [u8], endless: bool) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            if s.write_all(first).await.is_err() {
                return;
            }
            let chunk = [b'x'; 4096];
            // Bounded: 64 MiB at most, far beyond MAX_INFO; a client that stopped reading
            // makes the write fail or block (the test's runtime then ends the task).
            for _ in 0..(16 << 10) {
                if !endless || s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = s.shutdown().await;
        });
        TcpStream::connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn an_endless_info_line_is_refused_at_the_bound() {
        let started = Instant::now();
        let mut reader = BufReader::new(server(b"INFO {\"server_id\":\"", true).await);
        assert_eq!(read_info(&mut reader).await, Err(InfoError::TooLong));
        // Answered at the bound, long before the 64 MiB the server would send.
        assert!(started.elapsed() < STEP, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_cut_or_foreign_first_line_is_refused_and_a_good_info_is_read() {
        let mut silent = BufReader::new(server(b"INF", false).await);
        // The server closed after three bytes: no line.
        assert_eq!(read_info(&mut silent).await, Err(InfoError::Closed));
        let mut good = BufReader::new(server(b"INFO {}\r\n", false).await);
        assert_eq!(read_info(&mut good).await.unwrap(), b"INFO {}\r\n");
        let mut other = BufReader::new(server(b"-ERR 'x'\r\n", false).await);
        assert_eq!(read_info(&mut other).await, Err(InfoError::NotInfo));
    }

    #[tokio::test]
    async fn a_server_that_never_ends_its_line_is_timed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"INFO {").await.unwrap();
            // Holds the connection open, silent, past the step.
            tokio::time::sleep(STEP * 3).await;
            drop(s);
        });
        let started = Instant::now();
        let mut reader = BufReader::new(TcpStream::connect(addr).await.unwrap());
        assert_eq!(read_info(&mut reader).await, Err(InfoError::TimedOut));
        assert!(
            started.elapsed() >= STEP && started.elapsed() < STEP * 3,
            "{:?}",
            started.elapsed()
        );
        held.abort();
    }
}
