//! ingestd against a hostile MQTT 5 broker, a tiny fake one in this test on a free loopback
//! port: it answers every CONNECT with a CONNACK, then sends one sound QoS 1 message and a
//! stream of ~1 MiB PUBLISH packets carrying topic aliases ingestd never announced (it announces
//! a Topic Alias Maximum of 0). rumqttc alone would remember every alias, each keeping its 1 MiB
//! frame; ingestd must instead refuse the first one as a protocol error, drop the connection
//! (and rumqttc's alias map with it), count it, reconnect with a growing backoff, take the sound
//! messages, and stay small and alive.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen::mqtt::varint;
use records::names::{counter, segment, session, stage};
use records::RawRecord;
use shm_ring::stats::StatsReader;
use shm_ring::{Consumer, SegmentName};
use test_brokers::{wait_for, Process, TempDir};

const LONG: Duration = Duration::from_secs(60);
/// Connections the fake broker serves before it stops sending.
const CONNECTIONS: usize = 6;
/// Aliased publishes offered per connection (each ~1 MiB): what rumqttc alone would keep.
const ALIASED_PER_CONNECTION: u16 = 200;
/// The payload of an aliased publish: the packet stays under ingestd's 1 MiB Maximum Packet Size.
const BIG: usize = (1 << 20) - 1024;
/// How much ingestd's peak RSS may grow while it is flooded.
const RSS_GROWTH_BOUND_KIB: u64 = 64 << 10;

fn read_varint(s: &mut impl Read) -> std::io::Result<usize> {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8];
        s.read_exact(&mut b)?;
        n |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 || shift > 21 {
            return Ok(n);
        }
        shift += 7;
    }
}

/// A QoS 1 PUBLISH with `topic`, `pkid`, an optional topic alias and `payload`.
fn publish(topic: &str, pkid: u16, alias: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&pkid.to_be_bytes());
    match alias {
        Some(a) => {
            body.push(3); // properties: Topic Alias (0x23), two bytes
            body.push(0x23);
            body.extend_from_slice(&a.to_be_bytes());
        }
        None => body.push(0),
    }
    body.extend_from_slice(payload);
    let mut packet = vec![0x32];
    varint(&mut packet, body.len());
    packet.extend_from_slice(&body);
    packet
}

/// Reads a CONNECT and returns the Topic Alias Maximum it announces, if any.
fn read_connect(s: &mut TcpStream) -> std::io::Result<Option<u16>> {
    let mut first = [0u8];
    s.read_exact(&mut first)?;
    assert_eq!(first[0], 0x10, "a CONNECT first");
    let len = read_varint(s)?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    // Protocol name (2 + 4), level, flags, keep-alive (2): then the properties.
    assert_eq!(&body[..7], b"\x00\x04MQTT\x05", "MQTT 5");
    let mut props = &body[10..];
    let props_len = read_varint(&mut props)?;
    let mut p = &props[..props_len];
    let mut alias_max = None;
    while !p.is_empty() {
        let id = p[0];
        p = &p[1..];
        let skip = match id {
            0x22 => {
                alias_max = Some(u16::from_be_bytes([p[0], p[1]]));
                2
            }
            0x11 | 0x27 => 4,
            0x21 => 2,
            0x17 | 0x19 => 1,
            0x15 | 0x16 => 2 + usize::from(u16::from_be_bytes([p[0], p[1]])),
            0x26 => {
                let k = 2 + usize::from(u16::from_be_bytes([p[0], p[1]]));
                k + 2 + usize::from(u16::from_be_bytes([p[k], p[k + 1]]))
            }
            other => panic!("unexpected CONNECT property {other:#x}"),
        };
        p = &p[skip..];
    }
    Ok(alias_max)
}

/// What the fake broker saw of one connection.
#[derive(Debug)]
struct Served {
    at: Instant,
    alias_max: Option<u16>,
    /// Aliased publishes written before ingestd closed the connection (socket buffers included).
    aliased_written: u16,
}

/// Serves `CONNECTIONS` connections: CONNACK, one sound message, then aliased publishes until
/// the client closes. Waits for `go` before flooding the first one.
fn fake_broker(listener: TcpListener, go: mpsc::Receiver<()>, seen: mpsc::Sender<Served>, stop: Arc<AtomicBool>) {
    let big = vec![b'x'; BIG];
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + LONG * 2;
    let mut n = 0;
    while n < CONNECTIONS && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut s = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let at = Instant::now();
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let Ok(alias_max) = read_connect(&mut s) else { continue };
        if s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).is_err() {
            continue;
        }
        // Drain what ingestd sends (SUBSCRIBE, acks) so that its writes never block.
        let mut drain = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(drain.read(&mut buf), Ok(k) if k > 0) {}
        });
        if n == 0 {
            let _ = go.recv_timeout(LONG);
        }
        let sound = publish("site/s1/sensor/temp", 1, None, format!("ok-{n}").as_bytes());
        let mut aliased_written = 0;
        if s.write_all(&sound).is_ok() {
            for a in 1..=ALIASED_PER_CONNECTION {
                let topic = format!("site/s1/sensor/t{a}");
                if s.write_all(&publish(&topic, 1 + a, Some(a), &big)).is_err() {
                    break;
                }
                aliased_written += 1;
            }
        }
        let _ = seen.send(Served {
            at,
            alias_max,
            aliased_written,
        });
        n += 1;
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn unannounced_topic_aliases_are_refused_counted_and_cost_no_memory() {
    let prefix = format!("test-ingestd-hostile-{}", std::process::id());
    let _guard = support::raw_segments(&prefix, 1024);
    let raw = SegmentName::new(&prefix, segment::RAW).unwrap();
    let stats = SegmentName::new(&prefix, segment::STATS).unwrap();
    let counter = |name: &str| {
        StatsReader::open(&stats)
            .unwrap()
            .snapshot()
            .stage(stage::INGESTD)
            .unwrap()
            .counter(name)
            .unwrap_or(0)
    };

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go_tx, go_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let broker = {
        let stop = stop.clone();
        std::thread::spawn(move || fake_broker(listener, go_rx, seen_tx, stop))
    };

    let dir = TempDir::new("ingestd-hostile");
    let config = dir.path().join("telemetry.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nprefix = \"{prefix}\"\n[ingestd]\nbroker = \"mqtt://127.0.0.1:{port}\"\n\
             topics = [\"site/+/sensor/+\"]\nclient_id = \"{prefix}\"\nreconnect_min_ms = 20\nreconnect_max_ms = 400\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("ingestd.log");
    let mut ingestd = Process::spawn(
        "ingestd",
        Command::new(env!("CARGO_BIN_EXE_ingestd"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );

    // ingestd is connected and waiting: its footprint before the flood.
    wait_for("ingestd to connect", LONG, || {
        (counter(session::CONNECTS) >= 1).then_some(())
    });
    let (before, _) = memory_kib(ingestd.pid());
    go_tx.send(()).unwrap();

    let mut served = Vec::new();
    while served.len() < CONNECTIONS {
        match seen_rx.recv_timeout(LONG) {
            Ok(s) => served.push(s),
            Err(e) => panic!(
                "the fake broker served {} of {CONNECTIONS} connections ({e}): ingestd did not \
                 drop the connection and reconnect: {served:?}",
                served.len()
            ),
        }
    }
    wait_for("every protocol error counted", LONG, || {
        (counter(session::PROTOCOL_ERRORS) >= CONNECTIONS as u64).then_some(())
    });
    let (after, peak) = memory_kib(ingestd.pid());
    stop.store(true, Ordering::Relaxed);
    broker.join().unwrap();

    eprintln!(
        "VmRSS before the flood {before} KiB, after {after} KiB, peak {peak} KiB; aliased publishes \
         written per connection (socket buffers included): {:?}; offered {ALIASED_PER_CONNECTION} each",
        served.iter().map(|s| s.aliased_written).collect::<Vec<_>>()
    );
    // The CONNECT announces a Topic Alias Maximum of 0, every time.
    assert!(served.iter().all(|s| s.alias_max == Some(0)), "{served:?}");
    // The connection is dropped long before the broker has sent its 200 aliased MiB.
    assert!(
        served.iter().all(|s| s.aliased_written < ALIASED_PER_CONNECTION),
        "{served:?}"
    );
    // No growth with the flood: rumqttc alone keeps every aliased frame (200 MiB per connection).
    assert!(
        peak.saturating_sub(before) < RSS_GROWTH_BOUND_KIB,
        "peak RSS grew by {} KiB (bound {RSS_GROWTH_BOUND_KIB})",
        peak - before
    );
    // Reconnects back off: the five waits between six connections double from 20 ms (each at
    // least half its step, 10+20+40+80+160 ms), where a reset at every CONNACK would wait 5 x 10.
    let span = served[CONNECTIONS - 1].at - served[0].at;
    assert!(span >= Duration::from_millis(300), "6 connections within {span:?}");
    // Counted: each refused connection is a protocol error and a connection error.
    assert!(counter(session::CONNECTION_ERRORS) >= counter(session::PROTOCOL_ERRORS));
    // The sound messages were taken; no aliased one was.
    let mut consumer = Consumer::<RawRecord>::attach(&raw).unwrap();
    let chunk = consumer.read_chunk(usize::MAX).unwrap();
    let payloads: Vec<String> = chunk
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload()).into_owned())
        .collect();
    chunk.commit_all();
    assert!(
        !payloads.is_empty() && payloads.iter().all(|p| p.starts_with("ok-")),
        "{payloads:?}"
    );
    assert_eq!(counter(counter::RECEIVED), payloads.len() as u64);

    assert!(ingestd.alive(), "ingestd survived the flood");
    ingestd.signal(15);
    assert_eq!(ingestd.wait_exit(LONG), Some(0));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("topic alias"), "the protocol error is logged: {log}");
}
