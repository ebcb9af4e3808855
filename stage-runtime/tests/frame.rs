//! The frame's order of events, seen from the stats page: what is reported when, what ends a
//! stage with which exit code, and that a configuration error touches nothing. One test: the
//! shutdown flag is the process's, and once requested it stays so.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{create_stats_page, StageState, StatsReader};
use shm_ring::SegmentName;
use stage_runtime::{run_with, Context, Error, Ready, Shutdown, Stage, StageCounters};
use telemetry_config::Config;

/// A stage's state as the supervisor would read it now.
fn state_of(page: &SegmentName, stage: &str) -> Option<StageState> {
    StatsReader::open(page).unwrap().snapshot().stage(stage).unwrap().state
}

/// Announces its own readiness, and fails at its first step.
struct Quiet {
    page: SegmentName,
    _counters: StageCounters,
}

static QUIET_DRAINED: AtomicBool = AtomicBool::new(false);

impl Stage for Quiet {
    const READY: Ready = Ready::Announced;

    fn start(ctx: &mut Context) -> Result<Self, Error> {
        let counters = ctx.counters()?;
        assert!(
            ctx.counters().is_err(),
            "a slot has one writer: the second take is refused"
        );
        Ok(Quiet {
            page: ctx.segment("stats")?,
            _counters: counters,
        })
    }

    fn step(&mut self) -> Result<(), Error> {
        assert_ne!(
            state_of(&self.page, "quiet"),
            Some(StageState::Running),
            "not the frame's to say"
        );
        Err(Error::failed("the broker went away"))
    }

    fn drain(self) -> Result<(), Error> {
        QUIET_DRAINED.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Refuses its configuration.
struct Picky;

impl Stage for Picky {
    fn start(_: &mut Context) -> Result<Self, Error> {
        Err(Error::config("config: picky.colour = \"mauve\": must be red or blue"))
    }

    fn step(&mut self) -> Result<(), Error> {
        unreachable!("never started")
    }

    fn drain(self) -> Result<(), Error> {
        unreachable!("never started")
    }
}

/// Never takes its counters; asks for shutdown at its second step.
struct Ticker {
    page: SegmentName,
    shutdown: Shutdown,
    steps: u32,
}

static TICKER_DRAINED: AtomicBool = AtomicBool::new(false);

impl Stage for Ticker {
    fn start(ctx: &mut Context) -> Result<Self, Error> {
        Ok(Ticker {
            page: ctx.segment("stats")?,
            shutdown: ctx.shutdown(),
            steps: 0,
        })
    }

    fn step(&mut self) -> Result<(), Error> {
        assert_eq!(
            state_of(&self.page, "ticker"),
            Some(StageState::Running),
            "ready once started"
        );
        self.steps += 1;
        if self.steps == 2 {
            self.shutdown.request();
        }
        Ok(())
    }

    fn drain(self) -> Result<(), Error> {
        assert_eq!(self.steps, 2, "no step after the request");
        assert_eq!(state_of(&self.page, "ticker"), Some(StageState::Stopping));
        TICKER_DRAINED.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn the_frame_reports_ready_steps_until_shutdown_drains_and_classifies_errors() {
    let prefix = format!("test-frame-{}", std::process::id());
    let _guard = PrefixGuard::new(&prefix);
    let page = SegmentName::new(&prefix, "stats").unwrap();
    create_stats_page(&page, &["quiet", "picky", "ticker"], &[]).unwrap();
    let config = Config::from_toml(&format!("[pipeline]\nprefix = \"{prefix}\"\n")).unwrap();
    let shutdown = Shutdown::install().unwrap();
    let pid = |stage: &str| StatsReader::open(&page).unwrap().snapshot().stage(stage).unwrap().pid;

    let quiet = run_with::<Quiet>("quiet", config.clone(), shutdown).unwrap_err();
    assert!(matches!(quiet, Error::Failed(_)), "{quiet:?}");
    assert_eq!(quiet.exit_code(), ExitCode::from(1));
    assert!(
        !QUIET_DRAINED.load(Ordering::SeqCst),
        "an error ends the stage undrained"
    );

    let picky = run_with::<Picky>("picky", config.clone(), shutdown).unwrap_err();
    assert_eq!(picky.exit_code(), ExitCode::from(2));
    assert!(picky.to_string().contains("picky.colour"), "{picky}");
    assert_eq!(pid("picky"), 0, "a configuration error attaches nothing");

    assert!(!shutdown.requested());
    run_with::<Ticker>("ticker", config, shutdown).unwrap();
    assert!(TICKER_DRAINED.load(Ordering::SeqCst));
    assert_ne!(pid("ticker"), 0, "the frame attached the counters the stage never took");
}
