//! One HTTP request to its answer: route, token, content type, size, framing, then the commit.
//!
//! | answer | when | counted as |
//! |---|---|---|
//! | 200 `{"accepted":N}` | every reading of the request is in the raw ring | `http.accepted` |
//! | 400 | the body's framing cannot be split | `http.rejected.bad_framing` |
//! | 401 | a token is configured and the request's is missing or wrong | `http.rejected.unauthorized` |
//! | 404, 405 | another path, or another method | `http.rejected.not_found`, `.bad_method` |
//! | 408 | the body did not arrive whole within `body_timeout_s` of the head | `http.rejected.body_timeout` |
//! | 413 | body over `max_body_bytes`, a reading over `max_payload`, or more than 1024 readings | `http.rejected.too_large` |
//! | 415 | a `Content-Type` ingestd does not split | `http.rejected.unsupported_type` |
//! | 503 + `Retry-After` | the raw ring has no room for the whole request, or the stage is stopping | `http.rejected.ring_full`, `.stopping` |
//!
//! `GET /healthz` answers 200 while the stage runs (503 once it stops) and is not counted.
//!
//! A refusal that leaves the body unread (all but 400 and 503, when the request has a body)
//! carries `Connection: close` and asks for a lingering close (`phase::ConnIo`): the rest
//! of the body is read and dropped, within `linger_max_bytes` and `linger_timeout_s`, so that a
//! client that writes its whole body before reading (no `Expect: 100-continue`) reads the
//! refusal instead of a connection reset.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use records::names::http;

use super::auth::BearerToken;
use super::commit::{Committer, HttpCounters, Outcome};
use super::framing::{self, Framing};
use super::phase::{Conn, Phase};
use crate::sources::raw_ring::{SharedRing, MAX_BATCH};
use crate::sources::Stop;

/// The path readings are posted to.
pub const READINGS_PATH: &str = "/v1/readings";
/// The health check's path.
pub const HEALTH_PATH: &str = "/healthz";
/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_S: &str = "1";

/// What every request needs; shared by all connections.
pub struct Handler {
    /// The bearer token, when one is configured.
    pub token: Option<BearerToken>,
    /// `[ingestd.http] max_body_bytes`.
    pub max_body_bytes: usize,
    /// `[ingestd] max_payload`: the largest reading.
    pub max_payload: usize,
    /// `[ingestd.http] body_timeout_s`: from the head to the body's end.
    pub body_timeout: Duration,
    /// The raw ring (for counting refusals).
    pub ring: SharedRing,
    /// The HTTP counters.
    pub counters: HttpCounters,
    /// The committer.
    pub committer: Committer,
    /// The stage's order to stop.
    pub stop: Stop,
    /// Requests being handled now (shutdown waits for them).
    pub in_flight: AtomicUsize,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// A refusal: status, its counter (empty when the committer counted it), message, and whether
/// it leaves the body unread (then the connection closes, lingering).
struct Refusal(StatusCode, &'static str, String, bool);

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: String) -> Refusal {
        Refusal(status, reason, message, false)
    }

    /// The body is (partly) unread.
    fn unread(mut self) -> Refusal {
        self.3 = true;
        self
    }
}

impl Handler {
    /// Answers `request`, which arrived on `conn`. Never fails: every problem is an HTTP status.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<Conn>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        conn.enter(Phase::Handler);
        let response = self.answer(&conn, request).await;
        conn.enter(Phase::Idle);
        Ok(response)
    }

    async fn answer(&self, conn: &Conn, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() == HEALTH_PATH && request.method() == Method::GET {
            return if self.stop.stopping() {
                respond(StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into(), TEXT)
            } else {
                respond(StatusCode::OK, "ok\n".into(), TEXT)
            };
        }
        let in_flight = InFlight::new(self);
        let answer = self.readings(request, &in_flight.settled).await;
        in_flight.settled.store(true, Ordering::Release);
        drop(in_flight);
        match answer {
            Ok(n) => respond(StatusCode::OK, format!("{{\"accepted\":{n}}}\n"), JSON),
            Err(Refusal(status, reason, message, unread)) => {
                if !reason.is_empty() {
                    self.counters.count_rejection(&self.ring, reason);
                }
                let mut response = respond(status, format!("{{\"error\":{message:?}}}\n"), JSON);
                let headers = response.headers_mut();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
                }
                if status == StatusCode::UNAUTHORIZED {
                    headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                if unread {
                    headers.insert(CONNECTION, HeaderValue::from_static("close"));
                    conn.linger();
                }
                response
            }
        }
    }

    /// `POST /v1/readings`: how many readings were committed, or why none was. (A committed
    /// request counts itself, with its commit.)
    async fn readings(&self, request: Request<Incoming>, handed: &AtomicBool) -> Result<usize, Refusal> {
        let (head, body) = request.into_parts();
        let framing = match self.check_head(&head) {
            Ok(framing) => framing,
            Err(refusal) if body.is_end_stream() => return Err(refusal),
            Err(refusal) => return Err(refusal.unread()),
        };
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                http::TOO_LARGE,
                format!("body over {} bytes", self.max_body_bytes),
            )
        };
        let declared = head
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(too_large().unread());
        }
        let read = tokio::time::timeout(self.body_timeout, Limited::new(body, self.max_body_bytes).collect());
        let body = match read.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large().unread()),
            Ok(Err(e)) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    http::ABORTED,
                    format!("reading the body: {e}"),
                ))
            }
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    http::BODY_TIMEOUT,
                    format!("the body did not arrive within {} s", self.body_timeout.as_secs()),
                )
                .unread())
            }
        };
        let received_ms = stage_runtime::unix_ms();
        let mut items = Vec::new();
        framing::split(framing, &body, &mut items)
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, http::BAD_FRAMING, e.to_string()))?;
        if items.len() > MAX_BATCH {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                http::TOO_LARGE,
                format!("{} readings: at most {MAX_BATCH} per request", items.len()),
            ));
        }
        let max_payload = self.max_payload.min(records::RAW_PAYLOAD_MAX);
        if let Some(i) = items.iter().position(|r| r.len() > max_payload) {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                http::TOO_LARGE,
                format!("reading {i} is {} bytes: at most {max_payload}", items[i].len()),
            ));
        }
        match self
            .committer
            .commit(body, items, framing.content_type(), received_ms, handed)
            .await
        {
            Outcome::Committed(n) => Ok(n),
            Outcome::RingFull => Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                // Counted by the committer, with its commit.
                "",
                "the pipeline is full; retry later".into(),
            )),
            Outcome::Stopping => Err(stopping()),
        }
    }

    /// The checks a request's head decides (before its body is read): route, method, token,
    /// stopping, content type.
    fn check_head(&self, head: &hyper::http::request::Parts) -> Result<Framing, Refusal> {
        if head.uri.path() != READINGS_PATH {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                http::NOT_FOUND,
                format!("POST readings to {READINGS_PATH}"),
            ));
        }
        if head.method != Method::POST {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                http::BAD_METHOD,
                "use POST".into(),
            ));
        }
        if let Some(token) = &self.token {
            let given = head.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
            if !given.is_some_and(|g| token.admits(g)) {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    http::UNAUTHORIZED,
                    "bad or missing bearer token".into(),
                ));
            }
        }
        if self.stop.stopping() {
            return Err(stopping());
        }
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match Framing::of(content_type) {
            Some(Ok(f)) => Ok(f),
            Some(Err(problem)) => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                http::UNSUPPORTED_TYPE,
                problem,
            )),
            None => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                http::UNSUPPORTED_TYPE,
                format!("Content-Type {content_type:?}: must be application/cbor, application/json, application/x-ndjson or application/x-protobuf"),
            )),
        }
    }
}

/// A request being handled, counted in [`Handler::in_flight`] while it lives. One dropped before
/// it was answered or handed to the committer (hyper drops it when its client goes away) is
/// counted as `http.rejected.aborted`, so that every request ends at one counter.
struct InFlight<'a> {
    handler: &'a Handler,
    /// Answered, or handed to the committer (which counts it).
    settled: AtomicBool,
}

impl<'a> InFlight<'a> {
    fn new(handler: &'a Handler) -> Self {
        handler.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            handler,
            settled: AtomicBool::new(false),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.settled.load(Ordering::Acquire) {
            self.handler.counters.count_rejection(&self.handler.ring, http::ABORTED);
        }
        self.handler.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn stopping() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        http::STOPPING,
        "ingestd is stopping; retry later".into(),
    )
}

fn respond(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
