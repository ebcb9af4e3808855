//! The HTTP source (`[ingestd.http]`): a listener on its own thread and runtime, HTTP/1.1 with
//! keep-alive (hyper 1, docs/decisions.md D15), optionally over TLS (rustls with the ring
//! provider, as MQTT). Each connection is a task (`connection`), bounded in time in every
//! phase and in number (`slots`: at `max_connections`, a new client takes the place of the
//! quietest connection without a request, or is answered 503); each request is answered by
//! [`request`], whose readings go to the raw ring through [`commit`].
//!
//! Stopping: new requests are answered 503 (`http.rejected.stopping`), no new connection is
//! accepted, and the source waits (up to [`DRAIN`]) for the requests already handed over to be
//! committed and answered. A client whose request got no answer may retry it: its readings may
//! then be in the ring twice (at-least-once, as for MQTT QoS 1).
//!
//! | file | what it is |
//! |---|---|
//! | this one | the listener (accept, the connection cap, shutdown) |
//! | [`slots`] | the connection cap, which connection makes room for a new client, and the open-file limit the cap must fit in |
//! | [`connection`] | one connection's life (TLS handshake, hyper, its time bounds) |
//! | [`phase`] | a connection's phase, shared by its socket, requests and task, and the socket wrapper that closes lingering after a refusal |
//! | [`request`] | one request to an answer: token, content type, size, status |
//! | [`auth`] | the bearer token, compared in constant time |
//! | [`framing`] | splitting a body into one payload per reading, without decoding them (one file per format) |
//! | [`commit`] | the requests' batches on their way to the raw ring, many per commit |

pub mod auth;
pub mod commit;
pub mod connection;
pub mod framing;
pub mod phase;
pub mod request;
pub mod slots;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use records::names::http;
use shm_ring::stats::StageState;
use telemetry_config::Ingestd;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use self::auth::BearerToken;
use self::commit::{Committer, HttpCounters};
use self::connection::{Door, Limits};
use self::request::Handler;
use self::slots::Admission;
use crate::sources::liveness::Liveness;
use crate::sources::raw_ring::SharedRing;
use crate::sources::{Source, SourceError, Stop};

/// Longest wait, when stopping, for requests already taken to be answered.
pub const DRAIN: Duration = Duration::from_secs(2);
/// How often the source reports itself alive (see [`Liveness`]).
const TURN: Duration = Duration::from_millis(100);
/// Newcomers being answered 503 at once at the cap; past this they are closed unanswered.
const REFUSING_AT_ONCE: usize = 64;

/// The HTTP listener.
pub struct HttpSource {
    config: Ingestd,
}

impl HttpSource {
    /// The listener `config.http` describes (with `config.max_payload`).
    pub fn new(config: Ingestd) -> HttpSource {
        HttpSource { config }
    }
}

impl Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run(self: Box<Self>, ring: SharedRing, liveness: Liveness, stop: Stop) -> Result<(), SourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(serve(self.config, ring, liveness, stop))
    }
}

/// Reads the bearer token from its secret file. Surrounding white space (a trailing newline)
/// is not part of it.
fn read_token(file: &str) -> Result<Option<BearerToken>, SourceError> {
    if file.is_empty() {
        return Ok(None);
    }
    let text = telemetry_config::read_secret("ingestd.http.token_file", file).map_err(|e| e.to_string())?;
    Ok(Some(BearerToken::new(&text)?))
}

/// The TLS acceptor for `cert_file` and `key_file`, if set.
fn tls_acceptor(cert_file: &str, key_file: &str) -> Result<Option<TlsAcceptor>, SourceError> {
    if cert_file.is_empty() {
        return Ok(None);
    }
    let config = wire_tls::server_config("ingestd.http", cert_file, key_file)?;
    Ok(Some(TlsAcceptor::from(config)))
}

/// Why the committer task ended while the source runs (it only ends on a ring error).
fn committer_failed(ended: Result<Result<(), shm_ring::Error>, tokio::task::JoinError>) -> SourceError {
    match ended {
        Ok(Err(e)) => format!("writing the raw ring: {e}").into(),
        Ok(Ok(())) => "the HTTP committer ended".into(),
        Err(e) => format!("the HTTP committer failed: {e}").into(),
    }
}

async fn serve(config: Ingestd, ring: SharedRing, liveness: Liveness, mut stop: Stop) -> Result<(), SourceError> {
    let http = &config.http;
    let open_files = slots::fit_open_file_limit(http.max_connections)?;
    let tls = tls_acceptor(&http.cert_file, &http.key_file)?;
    let listener = TcpListener::bind(&http.listen)
        .await
        .map_err(|e| format!("ingestd.http.listen {:?}: {e}", http.listen))?;
    let counters = HttpCounters::register(&ring)?;
    let (committer, mut committer_task) = Committer::start(ring.clone(), counters);
    let limits = Limits::of(http);
    let handler = Arc::new(Handler {
        token: read_token(&http.token_file)?,
        max_body_bytes: http.max_body_bytes,
        max_payload: config.max_payload,
        body_timeout: limits.body,
        ring: ring.clone(),
        counters,
        committer,
        stop: stop.clone(),
        in_flight: AtomicUsize::new(0),
    });
    let door = Arc::new(Door::new(handler.clone(), tls, limits, http.max_connections));
    let turns = tokio::spawn(async move {
        let mut interval = tokio::time::interval(TURN);
        loop {
            interval.tick().await;
            liveness.turned();
        }
    });
    info!(
        listen = %listener.local_addr()?,
        tls = door.tls.is_some(),
        token = handler.token.is_some(),
        max_connections = http.max_connections,
        open_files,
        "HTTP listening"
    );
    ring.lock().stats.set_state(StageState::Running);
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait() => break,
            ended = &mut committer_task => return Err(committer_failed(ended)),
        };
        match door.slots.admit() {
            Admission::Admitted { conn, evicted } => {
                if evicted {
                    counters.count_connection(&ring, http::CONNECTIONS_EVICTED);
                }
                tokio::spawn(connection::serve(door.clone(), stream, peer, conn));
            }
            Admission::Full => {
                counters.count_connection(&ring, http::CONNECTIONS_REFUSED);
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        connection::refuse(stream).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let deadline = Instant::now() + DRAIN;
    while handler.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    turns.abort();
    info!("HTTP stopped");
    Ok(())
}
