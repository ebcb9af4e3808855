//! The Prometheus endpoint: `GET /metrics` on `supervisor.metrics_listen` (loopback by
//! convention; off when empty) serves the stats page's counters in the text exposition format.
//! A small blocking HTTP responder on its own thread: it reads the page read-only, so it cannot
//! disturb the pipeline, and it answers only the one path.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use records::names::segment;
use shm_ring::{RingObserver, SegmentName, StatsReader};
use telemetry_config::Config;

use crate::ctl::prometheus::render_prometheus;

/// Binds the listener (an error if the address is taken) and serves from a background thread.
pub fn serve(config: &Config) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.supervisor.metrics_listen)?;
    let config = config.clone();
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &config);
        }
    })?;
    Ok(())
}

/// The exposition text for the pipeline now.
pub fn render(config: &Config) -> Result<String, shm_ring::Error> {
    let prefix = &config.pipeline.prefix;
    let snapshot = StatsReader::open(&SegmentName::new(prefix, segment::STATS)?)?.snapshot();
    let mut rings = Vec::new();
    for (name, _) in crate::segments::rings(config) {
        if let Ok(o) = RingObserver::attach(&SegmentName::new(prefix, name)?) {
            rings.push((name.to_owned(), o.depth().unwrap_or(0), o.capacity()));
        }
    }
    Ok(render_prometheus(&snapshot, &rings))
}

fn answer(stream: TcpStream, config: &Config) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers; the request has no body we care about.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if !request.starts_with("GET ") || (path != "/metrics" && path != "/") {
        ("404 Not Found", "only GET /metrics is served\n".to_owned())
    } else {
        match render(config) {
            Ok(text) => ("200 OK", text),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        }
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
