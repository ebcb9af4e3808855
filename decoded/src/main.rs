//! `decoded`: the pipeline's decoder stage, run in the frame every stage shares
//! (`stage_runtime`: configuration, logging, signals, readiness, drain and exit codes). Its work
//! is `decoded::stage::Stage`.

fn main() -> std::process::ExitCode {
    stage_runtime::run::<decoded::stage::Stage>(records::names::stage::DECODED)
}
