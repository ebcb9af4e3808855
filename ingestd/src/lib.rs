//! ingestd: the pipeline's front door. Its sources (MQTT 5, HTTP) turn every reading into a
//! `RawRecord` in the one raw ring, or count it as dropped with a reason (MQTT) or refuse the
//! request whole (HTTP). At QoS 1 a full ring holds acks (by default), so the broker keeps what
//! the ring cannot take yet; over HTTP it answers 503.
//!
//! - `ring`: the raw ring and the counters, shared by the sources;
//! - `source`: what a source is, and the order to stop;
//! - `stage`: runs the configured sources, beats the heartbeat, stops on a signal;
//! - `mqtt_source`: the MQTT loop;
//! - `mqtt`: connection options (TLS, credentials) and subscription filters from the config;
//! - `failure`: why a connection attempt failed (TLS, credentials, network);
//! - `topic_alias`: the broker's topic aliases ingestd never announced, refused;
//! - `intake`: one message to a raw record or a drop reason;
//! - `ingest`: the MQTT batch on its way to the raw ring, held or dropped when the ring is full,
//!   and the acks of what is settled;
//! - `redelivery`: which of the broker's redeliveries ingestd already took;
//! - `liveness`: whether a source's loop is healthy, for the heartbeat;
//! - `pacing`: how long the MQTT loop pauses once its socket is drained;
//! - `http_source`: the HTTP listener (accept, the connection cap, shutdown);
//! - `http_slots`: the connection cap, which connection makes room for a new client, and the
//!   open-file limit the cap must fit in;
//! - `http_connection`: one connection's life (TLS handshake, hyper, its time bounds);
//! - `http_phase`: a connection's phase, shared by its socket, requests and task, and the socket
//!   wrapper that closes lingering after a refusal;
//! - `http_request`: one request to an answer: token, content type, size, status;
//! - `http_auth`: the bearer token, compared in constant time;
//! - `framing`: splitting a body into one payload per reading, without decoding them (one file
//!   per format: `cbor`, `json`, `protobuf`);
//! - `http_commit`: the HTTP requests' batches on their way to the raw ring, many per commit.

#![deny(missing_docs)]

pub mod failure;
pub mod framing;
pub mod http_auth;
pub mod http_commit;
pub mod http_connection;
pub mod http_phase;
pub mod http_request;
pub mod http_slots;
pub mod http_source;
pub mod ingest;
pub mod intake;
pub mod liveness;
pub mod mqtt;
pub mod mqtt_source;
pub mod pacing;
pub mod redelivery;
pub mod ring;
pub mod source;
pub mod stage;
pub mod topic_alias;
