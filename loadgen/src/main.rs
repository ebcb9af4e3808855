//! `loadgen`: publishes deterministic readings to an MQTT broker.
//!
//! ```text
//! loadgen --broker mqtt://127.0.0.1:1883 [--devices 1000] [--sensors 10] [--count N | --rate R --duration-s T]
//!         [--rate R] [--qos 0|1] [--conns 4] [--bad 0.0] [--json | --proto [--no-content-type]]
//!         [--amp 0.5] [--expect FILE]
//! ```
//!
//! Payloads are CBOR by default (no MQTT content type), JSON with `--json` (content type
//! `application/json`), or protobuf `telemetry.v1.Reading` with `--proto` (content type
//! `application/x-protobuf`, or none with `--no-content-type`, for decoded's `proto_topics`).
//!
//! Key k = d·S + s is always sent on connection k % conns, with sequence numbers 0, 1, 2, …, so
//! the order per key is kept. `--expect FILE` writes, per key, the count, sum, min and max of the
//! well-formed readings sent, one JSON object per line, for a checker. The last line on stdout is
//! `loadgen sent=… bad=… qos=… conns=… elapsed_s=… rate=… unacked=…`.

use std::io::Write;
use std::time::{Duration, Instant};

use loadgen::mqtt::Publisher;
use loadgen::{cbor, proto, readings};

struct Args {
    host: String,
    port: u16,
    devices: u32,
    sensors: u32,
    count: u64,
    rate: f64,
    qos: u8,
    conns: u32,
    bad: f64,
    json: bool,
    proto: bool,
    no_content_type: bool,
    amp: f64,
    expect: Option<String>,
    client: String,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 1883,
        devices: 1000,
        sensors: 10,
        count: 0,
        rate: 0.0,
        qos: 0,
        conns: 4,
        bad: 0.0,
        json: false,
        proto: false,
        no_content_type: false,
        amp: 0.5,
        expect: None,
        client: format!("loadgen-{}", std::process::id()),
    };
    let mut duration = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if let Some(switch) = match flag.as_str() {
            "--json" => Some(&mut a.json),
            "--proto" => Some(&mut a.proto),
            "--no-content-type" => Some(&mut a.no_content_type),
            _ => None,
        } {
            *switch = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--broker" => {
                let rest = value
                    .strip_prefix("mqtt://")
                    .ok_or("--broker must be mqtt://host:port")?;
                let (h, p) = rest.rsplit_once(':').ok_or("--broker needs a port")?;
                a.host = h.to_owned();
                a.port = p.parse().map_err(|_| "--broker has a bad port")?;
            }
            "--devices" => a.devices = num(&value)? as u32,
            "--sensors" => a.sensors = num(&value)? as u32,
            "--count" => a.count = num(&value)? as u64,
            "--rate" => a.rate = num(&value)?,
            "--duration-s" => duration = Some(num(&value)?),
            "--qos" => a.qos = num(&value)? as u8,
            "--conns" => a.conns = num(&value)? as u32,
            "--bad" => a.bad = num(&value)?,
            "--amp" => a.amp = num(&value)?,
            "--expect" => a.expect = Some(value),
            "--client" => a.client = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if let Some(d) = duration {
        if a.rate <= 0.0 {
            return Err("--duration-s needs --rate".into());
        }
        a.count = (a.rate * d) as u64;
    }
    if a.json && a.proto {
        return Err("--json and --proto are exclusive".into());
    }
    if a.no_content_type && !a.proto {
        return Err("--no-content-type goes with --proto".into());
    }
    if a.count == 0 || a.devices == 0 || a.sensors == 0 || a.conns == 0 || a.qos > 1 {
        return Err("need --count (or --rate and --duration-s) > 0, devices, sensors, conns ≥ 1 and qos 0 or 1".into());
    }
    Ok(a)
}

/// Per-key expectation: count, sum, min, max of the well-formed readings.
#[derive(Clone, Copy)]
struct Expect {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

struct ConnResult {
    sent: u64,
    bad: u64,
    unacked: u64,
    expect: Vec<(u32, Expect)>,
}

fn run_conn(a: &Args, conn: u32, start: Instant) -> std::io::Result<ConnResult> {
    let keys_total = u64::from(a.devices) * u64::from(a.sensors);
    let keys: Vec<u32> = (0..keys_total as u32).filter(|k| k % a.conns == conn).collect();
    // Key k gets count / K messages, plus one for the first count % K keys.
    let per_key = |k: u32| a.count / keys_total + u64::from(u64::from(k) < a.count % keys_total);
    let mine: u64 = keys.iter().map(|&k| per_key(k)).sum();
    let rate = a.rate / f64::from(a.conns);
    let mut publisher = Publisher::connect(&a.host, a.port, &format!("{}-{conn}", a.client), a.qos)?;
    let mut payload = Vec::with_capacity(128);
    let mut expect: Vec<Expect> = vec![
        Expect {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY
        };
        keys.len()
    ];
    let topics: Vec<String> = keys
        .iter()
        .map(|&k| readings::topic(k / a.sensors, k % a.sensors))
        .collect();
    let ids: Vec<(String, String)> = keys
        .iter()
        .map(|&k| (readings::device_id(k / a.sensors), readings::sensor_id(k % a.sensors)))
        .collect();
    let content_type = if a.json {
        Some("application/json")
    } else if a.proto && !a.no_content_type {
        Some("application/x-protobuf")
    } else {
        None
    };
    // One protobuf message per key; only its value and sequence number change.
    let mut messages: Vec<proto::Reading> = if a.proto {
        ids.iter()
            .zip(&keys)
            .map(|((d, s), &k)| proto::Reading {
                device: d.clone(),
                sensor: s.clone(),
                unit: readings::UNITS[(k % a.sensors % 5) as usize].into(),
                ..proto::Reading::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    let (mut sent, mut bad) = (0u64, 0u64);
    let mut round = 0u64;
    while sent < mine {
        for (i, &k) in keys.iter().enumerate() {
            if round >= per_key(k) {
                continue;
            }
            let (d, s) = (k / a.sensors, k % a.sensors);
            if readings::is_bad(round * keys_total + u64::from(k), a.bad) {
                if a.proto {
                    proto::encode_bad(&mut payload, round);
                } else {
                    cbor::encode_bad(&mut payload, round);
                }
                bad += 1;
            } else {
                let v = readings::value(d, s, round, a.amp);
                let unit = readings::UNITS[(s % 5) as usize];
                if a.proto {
                    let m = &mut messages[i];
                    (m.value, m.seq) = (v, round);
                    m.encode_into(&mut payload);
                } else if a.json {
                    cbor::encode_json(&mut payload, &ids[i].0, &ids[i].1, v, unit, round);
                } else {
                    cbor::encode(&mut payload, &ids[i].0, &ids[i].1, v, unit, round);
                }
                let e = &mut expect[i];
                e.count += 1;
                e.sum += v;
                e.min = e.min.min(v);
                e.max = e.max.max(v);
            }
            publisher.publish(&topics[i], &payload, content_type)?;
            sent += 1;
            if rate > 0.0 && sent % 32 == 0 {
                let due = start + Duration::from_secs_f64(sent as f64 / rate);
                let now = Instant::now();
                if due > now {
                    publisher.flush()?;
                    std::thread::sleep(due - now);
                }
            }
        }
        round += 1;
    }
    let unacked = publisher.finish(Duration::from_secs(60))?;
    Ok(ConnResult {
        sent,
        bad,
        unacked,
        expect: keys.into_iter().zip(expect).collect(),
    })
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let results: Vec<std::io::Result<ConnResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.conns)
            .map(|c| {
                scope.spawn({
                    let a = &a;
                    move || run_conn(a, c, start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("connection thread panicked"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (mut sent, mut bad, mut unacked, mut errors) = (0u64, 0u64, 0u64, 0);
    let mut expect = Vec::new();
    for r in results {
        match r {
            Ok(r) => {
                sent += r.sent;
                bad += r.bad;
                unacked += r.unacked;
                expect.extend(r.expect);
            }
            Err(e) => {
                eprintln!("loadgen: connection failed: {e}");
                errors += 1;
            }
        }
    }
    if let Some(path) = &a.expect {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create --expect file"));
        expect.sort_by_key(|(k, _)| *k);
        for (k, e) in expect {
            if e.count == 0 {
                continue;
            }
            let _ = writeln!(
                f,
                "{{\"device\":\"{}\",\"sensor\":\"{}\",\"count\":{},\"sum\":{:?},\"min\":{:?},\"max\":{:?}}}",
                readings::device_id(k / a.sensors),
                readings::sensor_id(k % a.sensors),
                e.count,
                e.sum,
                e.min,
                e.max
            );
        }
    }
    println!(
        "loadgen sent={sent} bad={bad} qos={} conns={} elapsed_s={elapsed:.3} rate={:.0} unacked={unacked} errors={errors}",
        a.qos,
        a.conns,
        sent as f64 / elapsed.max(1e-9)
    );
    if errors > 0 {
        std::process::exit(1);
    }
}
