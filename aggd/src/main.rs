//! `aggd`: the window aggregator stage, run in the frame every stage shares (`stage_runtime`:
//! configuration, logging, signals, readiness, drain and exit codes). Its work is
//! `aggd::Stage`.

fn main() -> std::process::ExitCode {
    stage_runtime::run::<aggd::Stage>(records::names::stage::AGGD)
}
