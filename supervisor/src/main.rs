//! `telemetry-supervisor`: creates the rings and the stats page, and supervises the four stages.
//! Not built yet; see the issue "Supervisor, telemetryctl and deploy/".

fn main() {
    eprintln!("telemetry-supervisor: not built yet");
    std::process::exit(2);
}
