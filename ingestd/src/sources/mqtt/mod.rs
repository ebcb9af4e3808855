//! The MQTT source. Its loop: take every message rumqttc can hand over without waiting, give them
//! to the raw ring as one chunk (or count them as dropped), publish the counters, ack them, and
//! pause a short latency budget so that the next read brings a batch rather than a few messages.
//!
//! Batching without cancelling anything: rumqttc's `EventLoop::poll()` is not safe to drop half-way
//! (it may be writing an ack or a ping), so a `poll()` future, once started, is always driven to
//! completion. The loop polls it once; if it is ready, that event joins the batch; if not, the
//! socket is drained for now, so the batch is handed over, the loop pauses (for how long:
//! [`pacing`]), and then awaits *the same* future. Acks queued by the hand-over are written by that
//! same future before the pause (rumqttc, as patched in `vendor/rumqttc`, writes every queued ack
//! with one flush), so the broker's in-flight window does not wait on the pause.
//!
//! The pause blocks the thread on purpose (`std::thread::sleep`, not a tokio timer): a tokio
//! sleep would still wake the thread for every TCP segment that arrives meanwhile, since the
//! socket stays registered with epoll. Nothing else on this thread minds a pause of a few
//! milliseconds: the source has its own thread (see [`crate::stage`]), and the order to stop is
//! seen after the pause.
//!
//! | file | what it is |
//! |---|---|
//! | this one | the loop |
//! | [`session`] | connection options (TLS, credentials) and subscription filters from the config |
//! | [`connect_failure`] | why a connection attempt failed (TLS, credentials, network) |
//! | [`topic_alias`] | the broker's topic aliases ingestd never announced, refused |
//! | [`message`] | one message to a raw record or a drop reason |
//! | [`batch`] | the batch on its way to the raw ring, held or dropped when the ring is full, and the acks of what is settled |
//! | [`redelivery`] | which of the broker's redeliveries ingestd already took |
//! | [`pacing`] | how long the loop pauses once its socket is drained |

pub mod batch;
pub mod connect_failure;
pub mod message;
pub mod pacing;
pub mod redelivery;
pub mod session;
pub mod topic_alias;

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use shm_ring::stats::StageState;
use stage_runtime::Backoff;
use telemetry_config::Config;
use tracing::{error, info, warn};

use self::batch::{Ingest, MAX_BATCH};
use self::connect_failure::Failure;
use self::pacing::Pacing;
use crate::sources::liveness::Liveness;
use crate::sources::raw_ring::SharedRing;
use crate::sources::{Source, SourceError, Stop};

/// How often messages held for a full ring are offered to it again while the socket is quiet.
const HOLD_RETRY: Duration = Duration::from_millis(2);

/// The MQTT 5 subscriber (`[ingestd] broker`).
pub struct MqttSource {
    config: Config,
}

impl MqttSource {
    /// The subscriber `config` describes.
    pub fn new(config: Config) -> MqttSource {
        MqttSource { config }
    }
}

impl Source for MqttSource {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn run(self: Box<Self>, ring: SharedRing, liveness: Liveness, stop: Stop) -> Result<(), SourceError> {
        let i = &self.config.ingestd;
        let ingest = Ingest::new(ring, i.max_payload, i.when_ring_full)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(run(&self.config, ingest, liveness, stop))
    }
}

/// Runs until `stop`. Errors are fatal problems with the ring; MQTT errors are retried.
async fn run(config: &Config, mut ingest: Ingest, liveness: Liveness, mut stop: Stop) -> Result<(), SourceError> {
    let opts = session::options(&config.ingestd, &config.pipeline.instance)?;
    let filters = session::filters(&config.ingestd);
    let (client, mut eventloop) = AsyncClient::new(opts, session::REQUEST_CAPACITY);
    let mut backoff = Backoff::new(
        Duration::from_millis(config.ingestd.reconnect_min_ms),
        Duration::from_millis(config.ingestd.reconnect_max_ms),
    );
    let budget = Duration::from_micros(config.ingestd.batch_budget_us);
    let mut pacing = Pacing::new(budget, config.ingestd.longest_pause(), Instant::now());
    // Whether the stage has reported ready: at its first subscription, resumed session, or
    // failed connection attempt.
    let mut reported_ready = false;
    // Whether the broker has been sound since the last protocol error (see `topic_alias`).
    let mut healthy = true;

    let mut received_ms = stage_runtime::unix_ms();
    'run: loop {
        let event = {
            // Not cancelled below except on shutdown (see `shutdown`); unconstrained so that
            // tokio's cooperative budget does not report a readable socket as pending.
            let mut poll = pin!(tokio::task::unconstrained(eventloop.poll()));
            let mut ready = poll_once(poll.as_mut()).await;
            if ready.is_pending() {
                // Drained for now: hand over this pass's batch. If that queued acks, the same
                // poll() writes them now (in one flush), before any pause.
                let acks = ingest.flush(&client)?;
                liveness.turned();
                if acks > 0 {
                    ready = poll_once(poll.as_mut()).await;
                }
            }
            match ready {
                Poll::Ready(event) => event,
                Poll::Pending => {
                    let pause = pacing.drained(Instant::now());
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                    liveness.waiting();
                    let event = loop {
                        tokio::select! {
                            event = &mut poll => break event,
                            _ = stop.wait() => break 'run,
                            // Held messages are offered to the ring again; acks this queues wake
                            // the pending poll(), which writes them.
                            _ = tokio::time::sleep(HOLD_RETRY), if ingest.holding() => {
                                ingest.flush(&client)?;
                                liveness.turned();
                            }
                        }
                    };
                    liveness.working();
                    received_ms = stage_runtime::unix_ms();
                    event
                }
            }
        };
        // A PUBLISH with a topic alias ingestd never announced is the broker's protocol error:
        // refused whole and the connection dropped (`topic_alias`).
        let event = match event {
            Ok(Event::Incoming(Packet::Publish(p))) if topic_alias::unannounced(&p).is_some() => {
                let alias = topic_alias::unannounced(&p).unwrap_or_default();
                drop(p);
                topic_alias::drop_connection(&mut eventloop);
                ingest.protocol_error();
                // The connection it ends did not prove the broker sound: keep backing off.
                healthy = false;
                Err(Failure {
                    code: records::names::gauge::failure::OTHER,
                    cause: format!(
                        "protocol error: the broker sent topic alias {alias}, but ingestd announced a Topic Alias \
                         Maximum of {}; disconnected",
                        topic_alias::TOPIC_ALIAS_MAX
                    ),
                })
            }
            Ok(event) => Ok(event),
            Err(e) => Err(connect_failure::classify(&e)),
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                healthy = true;
                pacing.took(p.qos != QoS::AtMostOnce);
                ingest.take(p, received_ms);
                if ingest.fresh() >= MAX_BATCH {
                    ingest.flush(&client)?;
                    liveness.turned();
                    received_ms = stage_runtime::unix_ms();
                }
                // A broker past our Receive Maximum while the ring is full: stop reading (the
                // socket's own backpressure) until the ring takes what is held.
                while ingest.over_hold_limit() {
                    tokio::select! {
                        _ = tokio::time::sleep(HOLD_RETRY) => {},
                        _ = stop.wait() => break 'run,
                    }
                    ingest.flush(&client)?;
                    liveness.turned();
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                info!(session_present = ack.session_present, "connected; subscribing");
                ingest.connected(ack.session_present);
                // After a protocol error, the next delay grows until the broker sends a sound
                // message: a broker that breaks every connection at once is not hammered.
                if healthy {
                    backoff.reset();
                }
                // A resumed session already has our subscriptions, and the broker sends what it
                // kept before it answers the SUBSCRIBE below (possibly many thousands of
                // messages): ready now. A new session is ready once subscribed.
                if ack.session_present && !reported_ready {
                    ingest.ring().stats.set_state(StageState::Running);
                    reported_ready = true;
                }
                // rumqttc never re-subscribes by itself, and a broker restart can lose even
                // a persistent session's shared subscriptions: subscribe on every ConnAck.
                client.try_subscribe_many(filters.clone())?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused: Vec<_> = ack
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)))
                    .collect();
                if refused.is_empty() {
                    healthy = true;
                    backoff.reset();
                    if !reported_ready {
                        ingest.ring().stats.set_state(StageState::Running);
                        reported_ready = true;
                    }
                    info!(filters = filters.len(), "subscribed");
                } else {
                    error!(?refused, "the broker refused subscriptions");
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                warn!(reason = ?d.reason_code, "broker disconnected us");
            }
            Ok(_) => {}
            Err(failure) => {
                let delay = backoff.next_delay();
                warn!(
                    cause = %failure.cause,
                    kind = records::names::gauge::failure::describe(failure.code),
                    retry_in_ms = delay.as_millis() as u64,
                    "MQTT connection failed"
                );
                ingest.connection_failed(failure.code);
                // Ready all the same: restarting ingestd would not make the broker accept it,
                // and `telemetryctl status` says it is running but not connected, and why.
                if !reported_ready {
                    ingest.ring().stats.set_state(StageState::Running);
                    reported_ready = true;
                }
                ingest.flush(&client)?;
                liveness.waiting();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = stop.wait() => break,
                }
            }
        }
    }
    shutdown(&client, &mut eventloop, &mut ingest).await?;
    Ok(())
}

/// Polls `future` once with the task's own waker: `Ready` with its output, or `Pending` (it will
/// wake the task when it can progress, and must be awaited later rather than dropped).
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Stops consuming first: unsubscribes nothing (the session may be persistent), hands what it
/// holds to the ring, lets rumqttc send the outstanding acks and a DISCONNECT, and returns.
/// A message the broker was sending at that moment is not acked, so the broker redelivers it to
/// the next session (persistent sessions) or it is lost with the clean session, as MQTT defines.
async fn shutdown(client: &AsyncClient, eventloop: &mut EventLoop, ingest: &mut Ingest) -> Result<(), shm_ring::Error> {
    ingest.ring().stats.set_state(StageState::Stopping);
    while let Some(event) = eventloop.state.events.pop_front() {
        if let Event::Incoming(Packet::Publish(p)) = event {
            // Unannounced aliases are refused here too (unacked: nothing is owed for them).
            if topic_alias::unannounced(&p).is_none() {
                ingest.take(p, stage_runtime::unix_ms());
            }
        }
    }
    ingest.flush(client)?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    info!("stopped");
    Ok(())
}
