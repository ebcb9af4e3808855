//! `emitd`: publishes the pipeline's aggregates to its sinks (NATS, Kafka), run in the frame
//! every stage shares (`stage_runtime`: configuration, logging, signals, readiness, drain and
//! exit codes). Its work is `emitd::Stage`; see the library docs (`cargo doc -p emitd`) for what
//! it does and guarantees.

fn main() -> std::process::ExitCode {
    stage_runtime::run::<emitd::Stage>(records::names::stage::EMITD)
}
