//! The metrics endpoint (`[supervisor] metrics_listen`) against hostile and sloppy clients: the
//! real `telemetry-supervisor` with its four stages between a real mosquitto and nats-server,
//! each test on its own prefix and a free loopback port (all removed on drop, also when a test
//! fails). Each test asserts the figure it bounds (docs/security.md, "Hostile clients: the
//! metrics endpoint"): the supervisor's memory under a flood, a readable 431 for an oversized
//! head, slow clients that neither block a scrape nor stay open past their timeout, a readable
//! 503 beyond the connection cap. Every loop is bounded in count and time.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pipeline_tests::{Pipeline, PATIENCE};
use test_brokers::{free_port, wait_for, Mosquitto, Nats, Process};

/// A running supervisor with its metrics endpoint. Fields drop in order: the supervisor (and
/// with it the stages) first, then the segments and files, then the brokers.
struct Endpoint {
    supervisor: Process,
    pipeline: Pipeline,
    port: u16,
    _nats: Nats,
    _mqtt: Mosquitto,
}

/// Starts a pipeline under the supervisor with the endpoint on a free port, `extra` being more
/// `[supervisor]` keys, and waits for every stage to run and for a first scrape.
fn start(test: &str, extra: &str) -> Endpoint {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let port = free_port();
    let pipeline = Pipeline::configure(
        test,
        &mqtt,
        &nats,
        &format!("[supervisor]\nmetrics_listen = \"127.0.0.1:{port}\"\n{extra}"),
    );
    let supervisor = pipeline.supervise(&[]);
    pipeline.wait_running();
    let e = Endpoint {
        supervisor,
        pipeline,
        port,
        _nats: nats,
        _mqtt: mqtt,
    };
    wait_for("a first scrape", PATIENCE, || scrape(e.port, PATIENCE));
    e
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint")
}

/// Sends `request` and returns all that comes back until the server closes (or `timeout`
/// between reads). What was read before a reset is kept: a lost answer is the failure looked for.
fn exchange(port: u16, request: &[u8], timeout: Duration) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A scrape as Prometheus makes it; the answer if it is a 200.
fn scrape(port: u16, timeout: Duration) -> Option<String> {
    let out = exchange(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n",
        timeout,
    );
    (out.starts_with("HTTP/1.1 200") && out.contains("telemetry_stage_received_total")).then_some(out)
}

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the supervisor runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Sends `total` bytes of a request line that never ends, over as many connections as the server
/// makes it take (each is closed after its 431), at most 4096 of them, for at most two minutes.
/// Returns the bytes the kernel took and the connections used.
fn flood(port: u16, total: usize) -> (usize, usize) {
    let chunk = vec![b'A'; 64 * 1024];
    let (mut sent, mut connections) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent < total && connections < 4096 && Instant::now() < deadline {
        let mut s = connect(port);
        connections += 1;
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /");
        while sent < total {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    }
    (sent, connections)
}

#[test]
fn a_flood_without_a_newline_costs_the_supervisor_no_memory() {
    let e = start("metrics-flood", "");
    let pid = e.supervisor.pid();
    let stages = e.pipeline.wait_running();
    let (rss, hwm) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    let (sent, connections) = flood(e.port, 64 << 20);
    assert!(
        sent >= 64 << 20,
        "the flood stopped at {sent} bytes over {connections} connections"
    );
    let (rss_after, hwm_after) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    eprintln!(
        "flood of {sent} bytes over {connections} connections: VmRSS {rss} -> {rss_after} KiB, VmHWM {hwm} -> {hwm_after} KiB"
    );
    // The old reader grew by the flood's size (3 MB -> 65 MB for 64 MiB).
    assert!(rss_after < rss + 8 * 1024, "VmRSS grew from {rss} to {rss_after} KiB");
    assert!(hwm_after < hwm + 8 * 1024, "VmHWM grew from {hwm} to {hwm_after} KiB");
    assert!(scrape(e.port, PATIENCE).is_some(), "a normal scrape after the flood");
    assert_eq!(
        e.pipeline.wait_running(),
        stages,
        "the supervisor and its stages live on, unrestarted"
    );
}

#[test]
fn an_oversized_head_gets_a_readable_431() {
    let e = start("metrics-head", "");
    let big = "a".repeat(16 * 1024);
    let answer = exchange(
        e.port,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        PATIENCE,
    );
    assert!(answer.starts_with("HTTP/1.1 431 "), "a 16 KiB header line: {answer:?}");
    let answer = exchange(
        e.port,
        format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        PATIENCE,
    );
    assert!(answer.starts_with("HTTP/1.1 431 "), "a 16 KiB request line: {answer:?}");
    // Within the bound, a head of 6 KiB is served as any other.
    let headers: String = (0..60)
        .map(|i| format!("X-Pad-{i:02}: {}\r\n", "p".repeat(90)))
        .collect();
    let answer = exchange(
        e.port,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
        PATIENCE,
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "a 6 KiB head: {answer:?}");
    // The routes keep their answers.
    assert!(exchange(e.port, b"GET /other HTTP/1.0\r\n\r\n", PATIENCE).starts_with("HTTP/1.0 404 "));
    let answer = exchange(e.port, b"GET / HTTP/1.0\r\n\r\n", PATIENCE);
    assert!(
        answer.starts_with("HTTP/1.0 200 ") && answer.contains("content-type: text/plain; version=0.0.4"),
        "{answer}"
    );
    assert!(scrape(e.port, PATIENCE).is_some());
}

/// Sends a request head one byte every 250 ms; returns how long after connecting the server
/// closed the connection, and what it answered (at most two minutes).
fn trickle(port: u16) -> (Duration, String) {
    let mut s = connect(port);
    let opened = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'z'));
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    for byte in head {
        if opened.elapsed() > PATIENCE || s.write_all(&[*byte]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    (opened.elapsed(), String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn slow_clients_do_not_block_a_scrape_and_are_closed_at_their_timeout() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(8);
    let e = start("metrics-slow", "metrics_header_timeout_ms = 8000\n");
    let mut silent = connect(e.port);
    let silent_opened = Instant::now();
    let port = e.port;
    let trickler = std::thread::spawn(move || trickle(port));
    std::thread::sleep(Duration::from_millis(500));

    // The old responder served one client at a time: this scrape waited for both slow clients.
    let asked = Instant::now();
    let answer = scrape(e.port, PATIENCE);
    let took = asked.elapsed();
    assert!(answer.is_some(), "a scrape beside two slow clients");
    assert!(
        took < HEADER_TIMEOUT / 2,
        "a scrape beside two slow clients took {took:?} (their timeout: {HEADER_TIMEOUT:?})"
    );

    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 64];
    let read = silent.read(&mut buf);
    let silent_closed = silent_opened.elapsed();
    assert!(
        matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "the silent client is closed, not answered: {read:?}"
    );
    let (trickle_closed, trickle_answer) = trickler.join().unwrap();
    eprintln!("scrape {took:?}; silent client closed after {silent_closed:?}, trickler after {trickle_closed:?}");
    for (who, closed) in [("silent", silent_closed), ("trickling", trickle_closed)] {
        assert!(
            closed >= HEADER_TIMEOUT && closed < HEADER_TIMEOUT + Duration::from_secs(30),
            "the {who} client was closed after {closed:?} (header timeout {HEADER_TIMEOUT:?})"
        );
    }
    assert_eq!(trickle_answer, "", "the trickler's head never completed");
    assert!(scrape(e.port, PATIENCE).is_some());
}

/// Whether the server sent anything on `s` yet (a holder that was refused got a 503).
fn answered(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let got = s
        .peek(&mut [0u8; 1])
        .map_or_else(|e| e.kind() != ErrorKind::WouldBlock, |_| true);
    s.set_nonblocking(false).unwrap();
    got
}

#[test]
fn connections_beyond_the_cap_get_a_readable_503() {
    let e = start(
        "metrics-cap",
        "metrics_max_connections = 4\nmetrics_header_timeout_ms = 30000\n",
    );
    // Four clients that connect and say nothing hold every slot. The slot of the last scrape is
    // freed a moment after its client saw the answer: if a holder came sooner, it was refused
    // itself and a probe finds a slot; then the holders leave and come again (at most 10 times).
    let mut answers = Vec::new();
    for attempt in 1..=10 {
        std::thread::sleep(Duration::from_millis(100));
        let holders: Vec<TcpStream> = (0..4).map(|_| connect(e.port)).collect();
        answers = (0..3)
            .map(|_| exchange(e.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", PATIENCE))
            .collect();
        let refused = |a: &String| a.starts_with("HTTP/1.1 503 ") && a.contains("Retry-After: 1\r\n");
        if answers.iter().all(refused) && !holders.iter().any(answered) {
            eprintln!("refused beyond the cap at attempt {attempt}");
            break;
        }
        assert!(attempt < 10, "beyond the cap: {answers:?}");
    }
    assert!(
        answers[0].ends_with("too many metrics connections at once; try again\n"),
        "{answers:?}"
    );
    // Once the holders leave, their slots are free long before their 30 s header timeout.
    let left = Instant::now();
    wait_for("a scrape after the holders left", Duration::from_secs(15), || {
        scrape(e.port, PATIENCE)
    });
    eprintln!("served again {:?} after the holders left", left.elapsed());
}
