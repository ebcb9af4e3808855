//! The stage: runs every configured source on a thread of its own, beats the heartbeat while all
//! of them are healthy, and on SIGTERM/SIGINT tells them to stop and waits for them. A source
//! that fails ends the stage (the supervisor restarts it). [`Stage`] is ingestd's part of the
//! frame every stage runs in (`stage_runtime::Stage`); `main.rs` only names it.
//!
//! ingestd is the one stage that announces its own readiness ([`Ready::Announced`]): a source
//! reports the stage `Running` once it takes input (subscribed, or listening), not when the
//! threads are started.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use records::names::segment;
use records::RawRecord;
use shm_ring::stats::{Heartbeat, StageState};
use stage_runtime::{Context, Error, Ready};
use tokio::net::unix::pipe;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Interval;
use tracing::{error, info};

use crate::sources::liveness::Liveness;
use crate::sources::raw_ring::SharedRing;
use crate::sources::{stop_channel, SourceError, StopSender};

/// How often the heartbeat is beaten while every source is healthy.
const BEAT: Duration = Duration::from_millis(500);

/// What a source's thread says when it ends: the source's name and how it ended.
type Ended = (&'static str, Result<(), SourceError>);

/// The running stage: the sources' threads, and what the main thread watches them with.
pub struct Stage {
    runtime: Runtime,
    ring: SharedRing,
    stop: StopSender,
    threads: Vec<JoinHandle<()>>,
    /// How each source ended, sent by its thread as it ends.
    ended: mpsc::Receiver<Ended>,
    /// Woken (or closed) when a source's thread ends.
    wake: UnboundedReceiver<()>,
    liveness: Vec<Liveness>,
    /// Each source's progress at the last beat.
    last: Vec<u64>,
    heartbeat: Heartbeat,
    interval: Interval,
    /// Readable once a shutdown is requested (`stage_runtime::Shutdown::wake_pipe`).
    shutdown: pipe::Receiver,
}

impl stage_runtime::Stage for Stage {
    const READY: Ready = Ready::Announced;

    /// Attaches to the raw ring and the stats page and starts the configured sources.
    fn start(ctx: &mut Context) -> Result<Stage, Error> {
        let producer = ctx.producer::<RawRecord>(segment::RAW)?;
        let ring = SharedRing::new(producer, ctx.counters()?)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // Registered with the runtime's reactor and timer: made inside it.
        let (interval, shutdown) = {
            let _inside = runtime.enter();
            (
                tokio::time::interval(BEAT),
                pipe::Receiver::from_owned_fd(ctx.shutdown().wake_pipe()?)?,
            )
        };
        let heartbeat = ring.lock().stats.heartbeat_handle();
        let (stop, stop_rx) = stop_channel();
        let (ended_tx, ended) = mpsc::channel::<Ended>();
        let (wake_tx, wake) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut threads = Vec::new();
        let mut liveness = Vec::new();
        for source in crate::sources::configured(ctx.config()) {
            let name = source.name();
            let (ring, live, stop, ended, wake) = (
                ring.clone(),
                Liveness::default(),
                stop_rx.clone(),
                ended_tx.clone(),
                wake_tx.clone(),
            );
            liveness.push(live.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ingestd-{name}"))
                .spawn(move || {
                    let result = source.run(ring, live, stop);
                    let _ = ended.send((name, result));
                    let _ = wake.send(());
                })?;
            threads.push(thread);
        }
        Ok(Stage {
            runtime,
            ring,
            stop,
            threads,
            ended,
            wake,
            last: vec![0; liveness.len()],
            liveness,
            heartbeat,
            interval,
            shutdown,
        })
    }

    /// Waits for the next beat (beating if every source is healthy), a shutdown request, or a
    /// source that ended: that is its failure, and stops the others.
    fn step(&mut self) -> Result<(), Error> {
        let Stage {
            runtime,
            wake,
            interval,
            liveness,
            last,
            heartbeat,
            shutdown,
            ..
        } = self;
        let failed = runtime.block_on(async {
            tokio::select! {
                // The frame sees the request as this step returns.
                readable = shutdown.readable() => readable.map(|_| false),
                _ = wake.recv() => Ok(true),
                _ = interval.tick() => {
                    if liveness.iter().zip(last.iter_mut()).all(|(l, last)| l.healthy(last)) {
                        heartbeat.beat();
                    }
                    Ok(false)
                }
            }
        })?;
        if !failed {
            return Ok(());
        }
        // A source ended before the stage was told to stop: that is its failure.
        let failure: SourceError = match self.ended.try_recv() {
            Ok((name, Err(e))) => format!("{name} source failed: {e}").into(),
            Ok((name, Ok(()))) => format!("{name} source ended by itself").into(),
            Err(_) => "a source ended".into(),
        };
        // The frame reports `Stopping` only before a drain; the other sources stop here too.
        self.ring.lock().stats.set_state(StageState::Stopping);
        let _ = self.stop_sources();
        Err(Error::failed(failure))
    }

    /// Tells every source to stop, and waits for them to hand on what they hold.
    fn drain(mut self) -> Result<(), Error> {
        match self.stop_sources() {
            None => Ok(()),
            Some(e) => Err(Error::failed(e)),
        }
    }
}

impl Stage {
    /// Stops the sources and joins their threads. Logs each error a source ended with, and
    /// returns the first.
    fn stop_sources(&mut self) -> Option<SourceError> {
        info!("stopping");
        self.stop.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let mut first = None;
        while let Ok((name, r)) = self.ended.try_recv() {
            if let Err(e) = r {
                error!(source = name, error = %e, "source failed");
                first.get_or_insert(e);
            }
        }
        first
    }
}
