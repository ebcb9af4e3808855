//! ingestd's HTTP door against hostile and sloppy clients (issue 20), each test holding one
//! bound of docs/security.md, "Hostile clients: the HTTP door", and asserting its figure:
//! 1,100 idle sockets never keep a POST out (nor MQTT); slow headers, a trickling body, an idle
//! keep-alive connection and a silent TLS client are each closed by their own timeout; refusals
//! sent before the body is read (413, 401, 415) are read by a client that writes its whole body
//! first (no `Expect: 100-continue`); a head over 16 KiB reads 431; at the cap with every
//! connection inside a request a newcomer reads 503; a cap that does not fit the open-file
//! limit stops ingestd at start.
//!
//! Raw TCP clients on loopback, bounded loops; timeouts are configured small (1 to 3 s) and
//! every figure is asserted with slack far from the failure mode (which is "never").

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use records::names::{counter, http, session};
use support::{drain, openssl_cert, Ingestd, LONG, TOKEN};
use test_brokers::{wait_for, Mosquitto, TempDir};

/// Slack on every "closed within" figure: a busy 2-core CI box, a debug build.
const SLACK: Duration = Duration::from_secs(3);
/// One reading, as JSON.
const READING: &str = r#"{"d":"dev-1","s":"temp","v":21.5}"#;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Whether `got` holds a whole answer: its head, and as much body as its Content-Length says.
fn whole(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if head.starts_with("HTTP/1.1 100 ") {
        return true;
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

/// Reads one answer (or up to the close), within `within`.
fn read_answer(s: &mut TcpStream, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !whole(&got) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// How long until ingestd closes `s` (EOF or reset), waiting at most `within`; what it sent
/// meanwhile is read and dropped. `None`: still open.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Writes `request` as a client on a real network does: in pieces, with the server's answer
/// possibly arriving (and its close, if it does not linger) while the body is still on its way.
/// Reads nothing before the whole request is written (no `Expect: 100-continue`).
fn send_whole(s: &mut TcpStream, request: &[u8]) -> std::io::Result<()> {
    for piece in request.chunks(16 << 10) {
        s.write_all(piece)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn post_head(content_type: &str, length: usize, extra: &str) -> String {
    format!(
        "POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

/// A JSON array of readings at least `bytes` long.
fn big_json(bytes: usize) -> Vec<u8> {
    let mut body = b"[".to_vec();
    while body.len() < bytes {
        body.extend_from_slice(READING.as_bytes());
        body.push(b',');
    }
    body.extend_from_slice(READING.as_bytes());
    body.push(b']');
    body
}

/// Raises this process's soft open-file limit to the hard one; false (after one loud line) if
/// even that is below `needed`.
fn raise_open_files(needed: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < needed {
        eprintln!(
            "SKIPPED: the hard open-file limit {hard} is below the {needed} this test needs (raise it: ulimit -Hn)"
        );
        return false;
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    true
}

#[test]
fn idle_sockets_never_keep_a_post_out_nor_stop_mqtt() {
    const IDLE: usize = 1_100;
    if !raise_open_files(IDLE as u64 + 200) {
        return;
    }
    let mqtt = Mosquitto::start();
    // Long head and idle timeouts: here the cap's eviction, not a timeout, makes the room.
    let d = Ingestd::prepare(
        "idle",
        4096,
        &format!("broker = \"{}\"\ntopics = [\"site/+/sensor/+\"]\nqos = 1\n", mqtt.url()),
        "header_timeout_s = 120\nidle_timeout_s = 120\n",
    )
    .run();
    wait_for("ingestd's MQTT session", LONG, || {
        (d.counter(session::CONNECTS) >= 1).then_some(())
    });
    let mut idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(d.port)).collect();
    let over = (IDLE - 1024) as u64;
    wait_for("ingestd to take every idle socket", LONG, || {
        (d.counter(http::CONNECTIONS_EVICTED) == over).then_some(())
    });

    let start = Instant::now();
    let mut s = connect(d.port);
    s.write_all(format!("{}{READING}", post_head("application/json", READING.len(), "")).as_bytes())
        .unwrap();
    let answer = read_answer(&mut s, LONG);
    let took = start.elapsed();
    eprintln!("POST after {IDLE} idle sockets answered in {took:?}");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(took < Duration::from_secs(1), "answered in {took:?}, not within 1 s");
    assert_eq!(d.counter(http::CONNECTIONS_EVICTED), over + 1);

    // The quietest sockets made the room: the oldest is closed, the newest still open.
    assert!(
        closed_within(&mut idle[0], SLACK).is_some(),
        "the oldest idle socket is closed"
    );
    assert_eq!(closed_within(&mut idle[IDLE - 1], Duration::from_millis(300)), None);

    let lines: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"d":"mqtt-{i}","s":"temp","v":{i}}}"#))
        .collect();
    mqtt.publish_lines("site/a/sensor/b", &lines, 1);
    wait_for("the MQTT readings in the raw ring", LONG, || {
        (d.counter(counter::RECEIVED) == 21).then_some(())
    });
    assert_eq!(drain(&mut d.consumer()).len(), 21, "1 over HTTP, 20 over MQTT");
}

#[test]
fn slow_headers_are_closed_by_the_header_timeout() {
    let d = Ingestd::prepare("slowhead", 64, "broker = \"\"\n", "header_timeout_s = 2\n").run();
    let start = Instant::now();
    let mut s = connect(d.port);
    s.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    s.write_all(b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let mut sent = 0;
    let mut buf = [0u8; 256];
    let closed = loop {
        // One byte every 250 ms, at most 60 (15 s).
        assert!(sent < 60, "still open after {:?}", start.elapsed());
        if s.write_all(b"a").is_err() {
            break start.elapsed();
        }
        sent += 1;
        match s.read(&mut buf) {
            Ok(0) => break start.elapsed(),
            Ok(n) => panic!("an answer to half a head: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if would_block(&e) => {}
            Err(_) => break start.elapsed(),
        }
    };
    eprintln!("slow head closed after {closed:?} ({sent} bytes trickled)");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed before the header timeout: {closed:?}"
    );
    assert!(closed <= Duration::from_secs(2) + SLACK, "{closed:?}");
    assert!(sent >= 5, "each byte does not restart the timeout ({sent} bytes)");
    assert_eq!(d.counter(http::CONNECTIONS_TIMED_OUT), 1);
    assert_eq!(d.counter(http::REQUESTS), 0, "half a head is no request");
}

#[test]
fn a_head_over_16_kib_reads_431() {
    let d = Ingestd::prepare("bighead", 64, "broker = \"\"\n", "").run();
    let mut s = connect(d.port);
    let filler = "a".repeat(1000);
    let mut head = String::from("POST /v1/readings HTTP/1.1\r\nHost: x\r\n");
    for i in 0..20 {
        head.push_str(&format!("X-Filler-{i}: {filler}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let answer = read_answer(&mut s, LONG);
    assert!(answer.starts_with("HTTP/1.1 431 "), "a 20 KB head: {answer:?}");
}

#[test]
fn a_trickling_chunked_body_is_answered_408_by_the_body_timeout() {
    let d = Ingestd::prepare(
        "trickle",
        64,
        "broker = \"\"\n",
        "body_timeout_s = 2\nlinger_timeout_s = 2\n",
    )
    .run();
    let mut s = connect(d.port);
    s.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    s.write_all(
        b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = None;
    let mut half_closed = false;
    let mut reset = None;
    // A one-byte chunk every 250 ms, at most 60 (15 s), until ingestd resets the connection.
    for _ in 0..60 {
        if s.write_all(b"1\r\n \r\n").is_err() {
            reset = Some(start.elapsed());
            break;
        }
        match s.read(&mut buf) {
            // ingestd's FIN after its answer: it still reads (a lingering close).
            Ok(0) => {
                half_closed = true;
                std::thread::sleep(Duration::from_millis(250));
            }
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if answered.is_none() && whole(&got) {
                    answered = Some(start.elapsed());
                }
            }
            Err(e) if would_block(&e) => {}
            Err(_) => {
                reset = Some(start.elapsed());
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&got).into_owned();
    let answered = answered.unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let reset = reset.expect("the lingering close ends");
    eprintln!("trickling body: 408 after {answered:?}, then read and dropped until {reset:?}");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert!(half_closed, "the answer is followed by ingestd's FIN");
    assert!(answered >= Duration::from_millis(1500), "{answered:?}");
    assert!(answered <= Duration::from_secs(2) + SLACK, "{answered:?}");
    // The client kept sending: the lingering close ends at linger_timeout_s.
    let lingered = reset - answered;
    assert!(lingered >= Duration::from_millis(1500), "{lingered:?}");
    assert!(lingered <= Duration::from_secs(2) + SLACK, "{lingered:?}");
    assert_eq!(d.counter(http::BODY_TIMEOUT), 1);
    assert_eq!(d.counter(http::REQUESTS), 1);
    assert_eq!(d.counter(counter::RECEIVED), 0);
}

#[test]
fn an_oversized_body_sent_without_expect_reads_413() {
    let d = Ingestd::prepare("oversized", 64, "broker = \"\"\n", "max_body_bytes = 1048576\n").run();
    let body = big_json(1_600_000);
    for i in 0..8 {
        let mut s = connect(d.port);
        // Half declare the length (refused from the head), half are chunked (refused at 1 MiB).
        let request = if i % 2 == 0 {
            [post_head("application/json", body.len(), "").as_bytes(), &body].concat()
        } else {
            let head = "POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            [
                head.as_bytes(),
                format!("{:x}\r\n", body.len()).as_bytes(),
                &body,
                b"\r\n0\r\n\r\n",
            ]
            .concat()
        };
        send_whole(&mut s, &request).unwrap_or_else(|e| panic!("try {i}: writing the whole request: {e}"));
        let answer = read_answer(&mut s, LONG);
        assert!(answer.starts_with("HTTP/1.1 413 "), "try {i}: {answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "try {i}: {answer}"
        );
    }
    assert_eq!(d.counter(http::TOO_LARGE), 8);
    assert_eq!(d.counter(http::REQUESTS), 8);
    assert_eq!(d.counter(counter::RECEIVED), 0);
}

#[test]
fn refusals_before_the_body_401_and_415_are_read_and_bearer_is_case_insensitive() {
    let d = Ingestd::prepare(
        "refusals",
        64,
        "broker = \"\"\n",
        "token_file = \"{token_file}\"\nallow_plaintext_credentials = true\n",
    )
    .run();
    let body = big_json(600_000);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    for (i, (content_type, extra, status)) in [
        ("application/json", "", "401"),
        ("application/json", "Authorization: Bearer s3cret-tokeN\r\n", "401"),
        ("text/plain", auth.as_str(), "415"),
    ]
    .iter()
    .cycle()
    .take(9)
    .enumerate()
    {
        let mut s = connect(d.port);
        send_whole(
            &mut s,
            &[post_head(content_type, body.len(), extra).as_bytes(), &body].concat(),
        )
        .unwrap_or_else(|e| panic!("try {i}: writing the whole request: {e}"));
        let answer = read_answer(&mut s, LONG);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "try {i}: {answer:?}"
        );
    }
    assert_eq!(d.counter(http::UNAUTHORIZED), 6);
    assert_eq!(d.counter(http::UNSUPPORTED_TYPE), 3);

    let mut s = connect(d.port);
    let head = post_head(
        "application/json",
        READING.len(),
        &format!("authorization: bEaReR {TOKEN}\r\n"),
    );
    s.write_all(format!("{head}{READING}").as_bytes()).unwrap();
    let answer = read_answer(&mut s, LONG);
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "the scheme is case-insensitive: {answer}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // A header timeout shorter than the idle one: an idle connection is held to the latter.
    let d = Ingestd::prepare(
        "idletimeout",
        64,
        "broker = \"\"\n",
        "header_timeout_s = 1\nidle_timeout_s = 3\n",
    )
    .run();
    let mut s = connect(d.port);
    let request = format!("{}{READING}", post_head("application/json", READING.len(), ""));
    s.write_all(request.as_bytes()).unwrap();
    assert!(read_answer(&mut s, LONG).starts_with("HTTP/1.1 200 "));
    std::thread::sleep(Duration::from_millis(2000));
    s.write_all(request.as_bytes()).unwrap();
    let answer = read_answer(&mut s, LONG);
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "still open after 2 s idle: {answer:?}"
    );
    let closed = closed_within(&mut s, Duration::from_secs(3) + SLACK).expect("closed");
    eprintln!("idle keep-alive connection closed after {closed:?}");
    assert!(closed >= Duration::from_millis(2500), "{closed:?}");
    assert_eq!(d.counter(http::ACCEPTED), 2);
    assert_eq!(
        d.counter(http::CONNECTIONS_TIMED_OUT),
        0,
        "idle is not a timed-out head"
    );
}

#[test]
fn a_silent_tls_client_is_closed_after_the_handshake_timeout() {
    let dir = TempDir::new("ingestd-hostile-tls");
    let (cert, key) = openssl_cert(dir.path());
    let d = Ingestd::prepare(
        "tlsidle",
        64,
        "broker = \"\"\n",
        &format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\ntls_handshake_timeout_s = 2\nheader_timeout_s = 60\n",
            cert.display(),
            key.display()
        ),
    )
    .run();
    let mut s = connect(d.port);
    let closed = closed_within(&mut s, Duration::from_secs(2) + SLACK).expect("closed");
    eprintln!("silent TLS client closed after {closed:?}");
    assert!(closed >= Duration::from_millis(1500), "{closed:?}");
    assert_eq!(d.counter(http::CONNECTIONS_TIMED_OUT), 1);
}

#[test]
fn at_the_cap_with_every_connection_inside_a_request_a_newcomer_reads_503() {
    let d = Ingestd::prepare("cap", 64, "broker = \"\"\n", "max_connections = 2\n").run();
    let mut busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(d.port);
            s.write_all(post_head("application/json", READING.len(), "Expect: 100-continue\r\n").as_bytes())
                .unwrap();
            // 100 Continue: the handler is reading the body.
            let answer = read_answer(&mut s, LONG);
            assert!(answer.starts_with("HTTP/1.1 100 "), "{answer:?}");
            s
        })
        .collect();
    let mut newcomer = connect(d.port);
    let answer = read_answer(&mut newcomer, LONG).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503 "), "{answer:?}");
    assert!(
        answer.contains("retry-after: 1") && answer.contains("connection: close"),
        "{answer}"
    );
    assert_eq!(d.counter(http::CONNECTIONS_REFUSED), 1);
    assert_eq!(
        d.counter(http::CONNECTIONS_EVICTED),
        0,
        "nobody inside a request is evicted"
    );
    for s in &mut busy {
        s.write_all(READING.as_bytes()).unwrap();
        let answer = read_answer(s, LONG);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    }
}

/// A child killed and reaped when dropped (also when the test fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ingestd under `bash -c 'ulimit <limit>; exec ingestd'`.
fn ingestd_under_ulimit(d: &Ingestd, ulimit: &str) -> Child {
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" --config \"$1\"",))
        .arg(env!("CARGO_BIN_EXE_ingestd"))
        .arg(d.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Child(child)
}

#[test]
fn a_cap_that_does_not_fit_the_open_file_limit_stops_ingestd_at_start() {
    let d = Ingestd::prepare("nofile", 64, "broker = \"\"\n", "max_connections = 1024\n");
    let mut child = ingestd_under_ulimit(&d, "-n 600");
    let status = wait_for("ingestd to stop", LONG, || child.0.try_wait().unwrap());
    let mut output = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut output).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut output).unwrap();
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("ingestd.http.max_connections = 1024") && output.contains("LimitNOFILE"),
        "{output}"
    );

    // A soft limit too low under a high enough hard one is raised.
    if !raise_open_files(600) {
        return;
    }
    let d = Ingestd::prepare("nofile-raise", 64, "broker = \"\"\n", "max_connections = 300\n");
    let child = ingestd_under_ulimit(&d, "-Sn 400");
    wait_for("ingestd to run with its soft limit raised", LONG, || {
        d.running().then_some(())
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
    drop(child);
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft raised to hard: {line}");
    assert_ne!(numbers[0], "400", "{line}");
}
