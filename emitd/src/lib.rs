//! `emitd`: the pipeline's last stage. It takes [`records::Aggregate`]s from the aggregates ring
//! (written by aggd) and hands each to its sinks (`[emitd] sinks`): NATS on
//! `<subject_prefix>.<device>.<sensor>` (core or JetStream), and Kafka (feature `kafka`).
//!
//! | module | concept |
//! |---|---|
//! | [`subject`] | subjects; device and sensor ids escaped so that none changes routing |
//! | [`payload`] | the JSON (or CBOR) body of a message |
//! | [`msg_id`] | the JetStream `Nats-Msg-Id` that deduplicates a re-publish |
//! | [`message`] | an aggregate as a message, built in a shared per-batch buffer |
//! | [`publisher`] | the NATS client: reconnects, core backlog, JetStream acks and stream |
//! | [`sink`] | the interface of a sink: offer, settle, backlog and counters |
//! | [`sinks`] | the sinks, one file each: core NATS, JetStream, Kafka |
//! | [`stage`] | the loop: read, offer to every sink, release once all settled, count |
//! | [`ring_wait`] | waiting on the ring without blocking the async runtime |
//! | [`stats`] | the counters in the stats page and what they conserve |
//!
//! # Guarantees
//!
//! - **Routing**: an aggregate lands on exactly `<prefix>.<escaped device>.<escaped sensor>`;
//!   no id can add a token or a wildcard ([`subject`]).
//! - **Core NATS** (`jetstream = false`, the default): at-most-once. An aggregate is released
//!   from the ring once the client has queued it. While NATS is away up to `max_backlog`
//!   aggregates wait in the client and the rest are dropped and counted
//!   (`dropped.nats_backlog_full`); messages in the client's write buffer when a connection
//!   breaks, or queued when emitd is killed, are lost without a count.
//! - **JetStream** (`jetstream = true`): at-least-once into the stream, and no duplicate stored
//!   within the stream's duplicate window. An aggregate is released only once its ack arrived;
//!   an emitd killed at any point publishes the unreleased ones again with the same
//!   `Nats-Msg-Id` ([`msg_id`]), which the server deduplicates.
//! - **Kafka** (`sinks` has `kafka`): at-least-once into the topic. An aggregate is released
//!   only once the broker acknowledged it (idempotent producer, `acks=all`); an emitd killed at
//!   any point sends the unreleased ones again, carrying the same `dedup_id` header, so a
//!   consumer can drop the copies ([`sinks::kafka_record`]).
//! - **Several sinks**: each has its own bounded backlog and cursor; a record is released once
//!   every sink delivered it or counted its drop. An absent sink drops once its backlog is full
//!   and never blocks another; a slow one is waited for, the others running ahead of it by up to
//!   the ring's capacity.
//! - **Counting**: `received = forwarded + dropped.*` in every stats snapshot ([`stats`]).
//! - **Shutdown**: SIGTERM drains the ring, flushes the client and exits 0 ([`stage`]).

#![deny(missing_docs)]

mod error;
pub mod message;
pub mod msg_id;
pub mod nats_auth;
pub mod payload;
pub mod publisher;
pub mod ring_wait;
pub mod sink;
pub mod sinks;
pub mod stage;
pub mod stats;
pub mod subject;
pub mod tls_probe;

pub use error::Error;
pub use stage::Stage;
