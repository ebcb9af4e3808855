//! One HTTP connection's life, from accept to close, bounded in time in every phase
//! (`phase` has the table): the TLS handshake within `tls_handshake_timeout_s`, each head
//! within `header_timeout_s`, an idle keep-alive connection closed after `idle_timeout_s`, a
//! lingering close after `linger_timeout_s`, and an eviction (`slots`) obeyed at once. The
//! body's own bound (`body_timeout_s`) is the handler's (`request`), which answers 408.
//!
//! The timer is one sleep per connection, re-armed only when it fires: it sleeps until the
//! current phase's deadline, or at most the shortest of the bounds, so that a phase that began
//! meanwhile (a head after an idle spell, a lingering close after a refusal) is held to its own
//! deadline exactly. Nothing of this runs per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use records::names::http;
use stage_runtime::linger::Linger;
use telemetry_config::Http;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::phase::{Conn, ConnIo, Phase};
use super::request::Handler;
use super::slots::Slots;

/// Largest request head (request line and headers); hyper answers 431 beyond.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// TCP keepalive: probes after the first one, and how many unanswered ones close the socket.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;
/// A newcomer refused at the cap: how long its 503 waits to be read, and how much of its
/// request is read and dropped meanwhile (so that the answer is not lost to a reset).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSAL_LINGER_BYTES: usize = 64 << 10;
/// The answer to a newcomer when every open connection is inside a request.
const FULL_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 46\r\n\r\n{\"error\":\"too many connections; retry later\"}\n";

/// The time bounds of `[ingestd.http]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `header_timeout_s`.
    pub header: Duration,
    /// `body_timeout_s`.
    pub body: Duration,
    /// `idle_timeout_s`.
    pub idle: Duration,
    /// `tls_handshake_timeout_s`.
    pub tls_handshake: Duration,
    /// `tcp_keepalive_s`.
    pub tcp_keepalive: Duration,
    /// `linger_timeout_s`.
    pub linger: Duration,
    /// `linger_max_bytes`.
    pub linger_max_bytes: usize,
}

impl Limits {
    /// The bounds `http` sets.
    pub fn of(http: &Http) -> Limits {
        let s = Duration::from_secs;
        Limits {
            header: s(http.header_timeout_s),
            body: s(http.body_timeout_s),
            idle: s(http.idle_timeout_s),
            tls_handshake: s(http.tls_handshake_timeout_s),
            tcp_keepalive: s(http.tcp_keepalive_s),
            linger: s(http.linger_timeout_s),
            linger_max_bytes: http.linger_max_bytes,
        }
    }

    /// When the phase that began at `since` runs out (`None`: inside the handler, which bounds
    /// itself).
    fn deadline(&self, phase: Phase, since: Instant) -> Option<Instant> {
        match phase {
            Phase::Fresh | Phase::Head => Some(since + self.header),
            Phase::Idle => Some(since + self.idle),
            Phase::Handler => None,
            Phase::Closing => Some(since + self.linger),
        }
    }

    /// When to look at the connection again: at the current phase's deadline, and no later
    /// than the shortest bound from now. A phase that begins meanwhile (a head after an idle
    /// spell, a lingering close after a refusal) begins after this check, so its own deadline is
    /// at or after the next one, which then re-arms to it exactly.
    fn next_check(&self, phase: Phase, since: Instant, now: Instant) -> Instant {
        let soon = now + self.header.min(self.idle).min(self.linger);
        self.deadline(phase, since).map_or(soon, |d| d.min(soon))
    }
}

/// What every connection of the door shares.
pub struct Door {
    /// Answers requests.
    pub handler: Arc<Handler>,
    /// TLS, when `cert_file` is set.
    pub tls: Option<TlsAcceptor>,
    /// The time bounds.
    pub limits: Limits,
    /// The open connections.
    pub slots: Slots,
    /// hyper's HTTP/1.1 settings.
    pub builder: http1::Builder,
}

impl Door {
    /// The door; `handler`, `tls` and `limits` as configured, `max_connections` open at most.
    pub fn new(handler: Arc<Handler>, tls: Option<TlsAcceptor>, limits: Limits, max_connections: usize) -> Door {
        let mut builder = http1::Builder::new();
        // hyper's own header timeout also runs between keep-alive requests; the connection's
        // task bounds heads and idle time apart (see the module comment), so it stays off.
        builder.max_header_size(MAX_HEAD_BYTES).header_read_timeout(None);
        Door {
            handler,
            tls,
            limits,
            slots: Slots::new(max_connections),
            builder,
        }
    }

    fn count(&self, name: &str) {
        self.handler.counters.count_connection(&self.handler.ring, name);
    }
}

/// Gives the slot back when the connection's task ends, however it ends.
struct Slot<'a> {
    door: &'a Door,
    conn: &'a Conn,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.door.slots.release(self.conn);
    }
}

/// Serves the connection `stream` from `peer`, admitted as `conn`, until it closes.
pub async fn serve(door: Arc<Door>, stream: TcpStream, peer: SocketAddr, conn: Arc<Conn>) {
    let _slot = Slot {
        door: &door,
        conn: &conn,
    };
    let limits = door.limits;
    set_socket_options(&stream, &limits);
    let io = ConnIo::new(stream, conn.clone(), limits.linger_max_bytes);
    match &door.tls {
        None => run(&door, &conn, TokioIo::new(io), peer).await,
        Some(tls) => {
            // Pinned here, so that the socket it holds closes only once this returns (after the
            // count).
            let handshake = tokio::time::timeout(limits.tls_handshake, tls.accept(io));
            tokio::pin!(handshake);
            let stream = tokio::select! {
                shaken = &mut handshake => match shaken {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(%peer, timeout_s = limits.tls_handshake.as_secs(), "TLS handshake timed out");
                        door.count(http::CONNECTIONS_TIMED_OUT);
                        return;
                    }
                },
                () = conn.evicted() => return,
            };
            // The first head's time counts from the end of the handshake.
            conn.enter(Phase::Fresh);
            run(&door, &conn, TokioIo::new(stream), peer).await
        }
    }
}

/// hyper on `io` until the connection ends, closes on its timeouts, or is evicted.
async fn run<I>(door: &Door, conn: &Arc<Conn>, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let (handler, conn) = (door.handler.clone(), conn.clone());
        service_fn(move |request| handler.clone().handle(conn.clone(), request))
    };
    let served = door.builder.serve_connection(io, service);
    tokio::pin!(served);
    let limits = &door.limits;
    let (phase, since) = conn.phase();
    let check = tokio::time::sleep_until(limits.next_check(phase, since, Instant::now()));
    tokio::pin!(check);
    // Told hyper to close once the current exchange is written (idle or inside a request).
    let mut closing = false;
    loop {
        tokio::select! {
            ended = served.as_mut() => {
                if let Err(e) = ended {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = conn.evicted(), if !closing => match conn.phase().0 {
                // hyper closes an idle connection at once, after flushing what it wrote, and
                // a busy one after its answer.
                Phase::Idle | Phase::Handler => {
                    served.as_mut().graceful_shutdown();
                    closing = true;
                }
                Phase::Fresh | Phase::Head | Phase::Closing => return,
            },
            () = &mut check => {
                let now = Instant::now();
                let (phase, since) = conn.phase();
                if limits.deadline(phase, since).is_some_and(|d| d <= now) {
                    match phase {
                        Phase::Idle if !closing => {
                            served.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        Phase::Fresh | Phase::Head => {
                            debug!(%peer, timeout_s = limits.header.as_secs(), "request head timed out");
                            door.count(http::CONNECTIONS_TIMED_OUT);
                            return;
                        }
                        _ => return,
                    }
                }
                check.as_mut().reset(limits.next_check(phase, since, now));
            }
        }
    }
}

fn set_socket_options(stream: &TcpStream, limits: &Limits) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(limits.tcp_keepalive)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "setting TCP keepalive");
    }
}

/// Answers a newcomer 503 (every open connection is inside a request) and closes, reading and
/// dropping its request meanwhile, all within [`REFUSAL_LINGER`].
pub async fn refuse(stream: TcpStream) {
    let linger = Linger {
        time: REFUSAL_LINGER,
        bytes: REFUSAL_LINGER_BYTES,
    };
    stage_runtime::linger::answer_and_close(stream, FULL_ANSWER, linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(FULL_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    }

    #[test]
    fn connections_are_looked_at_no_later_than_the_shortest_bound() {
        let l = Limits::of(&Http {
            linger_timeout_s: 2,
            ..Http::default()
        });
        let t = Instant::now();
        let period = Duration::from_secs(2);
        assert_eq!(
            l.next_check(Phase::Fresh, t, t),
            t + period,
            "a refusal may linger meanwhile"
        );
        assert_eq!(l.next_check(Phase::Head, t, t + l.header - period / 2), t + l.header);
        assert_eq!(
            l.next_check(Phase::Idle, t, t),
            t + period,
            "a head may begin meanwhile"
        );
        assert_eq!(l.next_check(Phase::Idle, t, t + l.idle - period / 2), t + l.idle);
        assert_eq!(l.next_check(Phase::Handler, t, t + l.idle), t + l.idle + period);
        assert_eq!(l.deadline(Phase::Handler, t), None);
        assert_eq!(l.deadline(Phase::Closing, t), Some(t + l.linger));
    }
}
