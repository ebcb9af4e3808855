//! The stage: runs every configured source on a thread of its own, beats the heartbeat while all
//! of them are healthy, and on SIGTERM/SIGINT tells them to stop and waits for them. A source
//! that fails ends the stage (the supervisor restarts it).

use std::sync::mpsc;
use std::time::Duration;

use shm_ring::StageState;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::sources::liveness::Liveness;
use crate::sources::raw_ring::SharedRing;
use crate::sources::{stop_channel, Source, SourceError};

/// How often the heartbeat is beaten while every source is healthy.
const BEAT: Duration = Duration::from_millis(500);

/// Runs `sources` until SIGTERM/SIGINT (`Ok`) or until one of them fails (its error).
pub fn run(ring: SharedRing, sources: Vec<Box<dyn Source>>) -> Result<(), SourceError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (stop_tx, stop) = stop_channel();
    let (done_tx, done_rx) = mpsc::channel::<(&'static str, Result<(), SourceError>)>();
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut threads = Vec::new();
    let mut liveness = Vec::new();
    for source in sources {
        let name = source.name();
        let (ring, live, stop, done, wake) = (
            ring.clone(),
            Liveness::default(),
            stop.clone(),
            done_tx.clone(),
            wake_tx.clone(),
        );
        liveness.push(live.clone());
        let thread = std::thread::Builder::new()
            .name(format!("ingestd-{name}"))
            .spawn(move || {
                let result = source.run(ring, live, stop);
                let _ = done.send((name, result));
                let _ = wake.send(());
            })?;
        threads.push(thread);
    }
    drop(wake_tx);
    let heartbeat = ring.lock().stats.heartbeat_handle();
    let outcome: Result<(), SourceError> = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut interval = tokio::time::interval(BEAT);
        let mut last = vec![0; liveness.len()];
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
                _ = wake_rx.recv() => {
                    // A source ended before the stage was told to stop: that is its failure.
                    return Err(match done_rx.try_recv() {
                        Ok((name, Err(e))) => format!("{name} source failed: {e}").into(),
                        Ok((name, Ok(()))) => format!("{name} source ended by itself").into(),
                        Err(_) => "a source ended".into(),
                    });
                }
                _ = interval.tick() => {
                    let healthy = liveness.iter().zip(&mut last).all(|(l, last)| l.healthy(last));
                    if healthy {
                        heartbeat.beat();
                    }
                }
            }
        }
    });
    info!("stopping");
    ring.lock().stats.set_state(StageState::Stopping);
    stop_tx.stop();
    for thread in threads {
        let _ = thread.join();
    }
    let mut result = outcome;
    while let Ok((name, r)) = done_rx.try_recv() {
        if let Err(e) = r {
            error!(source = name, error = %e, "source failed");
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    info!("stopped");
    result
}
