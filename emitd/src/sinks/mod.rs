//! The sinks, one file each, and [`start`], which builds those `[emitd] sinks` names. Adding a
//! sink is adding a file that implements [`crate::sink::Sink`] and one arm here.
//!
//! | sink | file | delivery |
//! |---|---|---|
//! | `nats`, `jetstream = false` | [`nats_core`] | at-most-once; queued in the client counts as delivered |
//! | `nats`, `jetstream = true` | [`jetstream`] | exactly once in the stream (acks, `Nats-Msg-Id`) |
//! | `kafka` (feature `kafka`) | `kafka` | at-least-once; copies carry the same `dedup_id` header |

pub mod jetstream;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod kafka_record;
pub mod nats_core;

use telemetry_config::Config;

use crate::message::MessageBuilder;
use crate::publisher::Nats;
use crate::sink::Sink;
use crate::Error;

/// Most records the stage offers a sink in one go; the client's queue has room for it on top of
/// the backlog.
pub const BATCH: usize = 512;

/// Starts the sinks of `config` (connecting in the background: none waits for its server), for
/// a ring of `capacity` records.
pub async fn start(config: &Config, capacity: usize) -> Result<Vec<Box<dyn Sink>>, Error> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for name in &config.emitd.sinks {
        sinks.push(match name.as_str() {
            "nats" => start_nats(config, capacity).await?,
            "kafka" => start_kafka(config)?,
            other => return Err(Error::Config(format!("emitd.sinks: unknown sink {other:?}"))),
        });
    }
    Ok(sinks)
}

async fn start_nats(config: &Config, capacity: usize) -> Result<Box<dyn Sink>, Error> {
    let e = &config.emitd;
    let name = format!("emitd-{}", config.pipeline.instance);
    let builder = MessageBuilder::new(config);
    if e.jetstream {
        let window = e.max_backlog.min(capacity).max(1);
        // Room for the acks of one window still awaited after a disconnect besides a window of
        // new ones, so that publishing never waits for an ack permit.
        let nats = Nats::connect(e, &name, window + BATCH + 64, 2 * window + 64)
            .await
            .map_err(Error::Nats)?;
        tracing::info!(nats = %telemetry_config::redact_url(&e.nats), subject_prefix = %e.subject_prefix, stream = nats.stream(), window, "NATS JetStream sink started");
        Ok(Box::new(jetstream::JetStream::new(nats, builder, window)))
    } else {
        let nats = Nats::connect(e, &name, e.max_backlog + BATCH + 64, 64)
            .await
            .map_err(Error::Nats)?;
        tracing::info!(nats = %telemetry_config::redact_url(&e.nats), subject_prefix = %e.subject_prefix, max_backlog = e.max_backlog, "NATS core sink started");
        Ok(Box::new(nats_core::NatsCore::new(nats, builder, e.max_backlog as u64)))
    }
}

#[cfg(feature = "kafka")]
fn start_kafka(config: &Config) -> Result<Box<dyn Sink>, Error> {
    Ok(Box::new(kafka::Kafka::start(config)?))
}

#[cfg(not(feature = "kafka"))]
fn start_kafka(_config: &Config) -> Result<Box<dyn Sink>, Error> {
    Err(Error::Config(
        "emitd.sinks: \"kafka\" needs an emitd built with the cargo feature `kafka` (the release build has it)".into(),
    ))
}
