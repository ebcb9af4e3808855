//! `emitd`: publishes the pipeline's aggregates to its sinks (NATS, Kafka). Wiring only; see the library docs
//! (`cargo doc -p emitd`) for what it does and guarantees.
//!
//! Exit codes: 0 after a shutdown request was handled, 1 on a fatal error (the supervisor
//! restarts it; nothing queued in the ring is lost), 2 on a bad configuration (nothing touched).

use std::process::ExitCode;
use std::time::Duration;

use records::names::{segment, stage};
use records::Aggregate;
use stage_runtime::{attach_consumer, init_logging, Shutdown, StageCounters};
use tracing::error;

/// How long to wait for a predecessor's roles to be released by the kernel.
const ATTACH_PATIENCE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let config = match telemetry_config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("emitd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(stage::EMITD);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ emitd::Error::Config(_)) => {
            error!(error = %e, "emitd cannot run with this configuration");
            ExitCode::from(2)
        }
        Err(e) => {
            error!(error = %e, "emitd failed");
            ExitCode::from(1)
        }
    }
}

fn run(config: telemetry_config::Config) -> Result<(), emitd::Error> {
    let shutdown = Shutdown::install().map_err(|e| emitd::Error::Setup(format!("signal handlers: {e}")))?;
    let counters = StageCounters::attach_patiently(
        &stage_runtime::segment(&config, segment::STATS)?,
        stage::EMITD,
        ATTACH_PATIENCE,
    )?;
    let consumer =
        attach_consumer::<Aggregate>(&stage_runtime::segment(&config, segment::AGGREGATES)?, ATTACH_PATIENCE)?;
    // One thread runs the NATS client and the loop (librdkafka has its own threads); ring waits go to the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| emitd::Error::Setup(format!("tokio runtime: {e}")))?;
    let result = runtime.block_on(async {
        let stage = emitd::Stage::start(&config, consumer, counters, shutdown).await?;
        stage.run().await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
