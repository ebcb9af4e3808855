//! `ingestd`: subscribes to MQTT and/or listens for HTTP, and fills the raw ring; run in the
//! frame every stage shares (`stage_runtime`: configuration, logging, signals, drain and exit
//! codes). Its work is `ingestd::stage::Stage`.

fn main() -> std::process::ExitCode {
    stage_runtime::run::<ingestd::stage::Stage>(records::names::stage::INGESTD)
}
