//! The core NATS sink (`sinks = ["nats"]`, `jetstream = false`): at-most-once.
//!
//! A record is delivered as soon as the client has queued its message. While NATS is away,
//! messages queue in the client (`publisher::Nats::backlog`) and are written after the
//! reconnect; once `[emitd] max_backlog` are queued, each further aggregate is dropped and
//! counted as `dropped.nats_backlog_full` (tail drop: the queued ones are older and go first), so
//! the ring keeps draining. While the client is connected but its queue is full, the server is
//! merely slower than the ring: the sink is not ready, and the ring absorbs the difference.

use std::time::Duration;

use records::Aggregate;
use tracing::warn;

use crate::message::MessageBuilder;
use crate::publisher::Nats;
use crate::sink::{Offered, Settled, Sink, SinkFuture, SinkStatus};
use crate::Error;

/// How soon a sink waiting for room in a connected client looks again.
const FULL_POLL: Duration = Duration::from_millis(1);

/// Core NATS.
pub struct NatsCore {
    nats: Nats,
    builder: MessageBuilder,
    max_backlog: u64,
    /// Whether the current outage's drops were logged already.
    dropping: bool,
}

impl NatsCore {
    /// A sink publishing through `nats` the messages of `builder`, holding at most `max_backlog`
    /// while NATS is away.
    pub fn new(nats: Nats, builder: MessageBuilder, max_backlog: u64) -> NatsCore {
        NatsCore {
            nats,
            builder,
            max_backlog,
            dropping: false,
        }
    }

    async fn offer_one(&mut self, agg: &Aggregate) -> Result<Offered, Error> {
        if self.nats.backlog() < self.max_backlog {
            let msg = self
                .builder
                .build(agg)
                .map_err(|_| Error::Internal("an aggregate with an empty id was offered"))?;
            self.nats
                .publish(msg)
                .await
                .map_err(|e| Error::Nats(format!("publish: {e}")))?;
            if self.dropping && self.nats.connected() {
                self.dropping = false;
            }
            return Ok(Offered::Now(Settled::Delivered));
        }
        if self.nats.connected() {
            return Ok(Offered::Busy);
        }
        if !self.dropping {
            self.dropping = true;
            warn!(
                max_backlog = self.max_backlog,
                "NATS is away and the backlog is full: dropping new aggregates ({})",
                records::names::drop_reason::NATS_BACKLOG_FULL
            );
        }
        Ok(Offered::Now(Settled::Dropped))
    }
}

impl Sink for NatsCore {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn ready(&self) -> bool {
        self.nats.backlog() < self.max_backlog || !self.nats.connected()
    }

    fn offer<'a>(&'a mut self, _pos: u64, agg: &'a Aggregate) -> SinkFuture<'a, Result<Offered, Error>> {
        Box::pin(self.offer_one(agg))
    }

    fn poll<'a>(&'a mut self, _settled: &'a mut Vec<(u64, Settled)>) -> SinkFuture<'a, Result<(), Error>> {
        // Nothing is ever held: every offer settles at once.
        Box::pin(async { Ok(()) })
    }

    fn wait(&mut self) -> SinkFuture<'_, ()> {
        let full = self.nats.connected() && self.nats.backlog() >= self.max_backlog;
        Box::pin(async move {
            if full {
                tokio::time::sleep(FULL_POLL).await;
            } else {
                std::future::pending::<()>().await;
            }
        })
    }

    fn status(&self) -> SinkStatus {
        SinkStatus {
            connected: self.nats.connected(),
            backlog: self.nats.backlog(),
            failure: self.nats.last_failure(),
        }
    }

    fn events(&self, out: &mut Vec<(&'static str, u64)>) {
        self.nats.event_totals(out);
        out.push(("nats.errors", 0));
    }

    fn flush(&mut self, timeout: Duration) -> SinkFuture<'_, bool> {
        Box::pin(self.nats.flush(timeout))
    }
}
