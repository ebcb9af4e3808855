//! `telemetryctl`: reads the stats page. Not built yet; see the issue "Supervisor, telemetryctl and deploy/".

fn main() {
    eprintln!("telemetryctl: not built yet");
    std::process::exit(2);
}
