//! Test harness: the aggregates ring and the stats page under a unique prefix (removed on drop,
//! also when a test fails), a config file, the real `emitd` binary, and NATS subscribers that
//! run on their own thread so the test itself can block.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use records::names::{segment, stage};
use records::{Aggregate, FixedText};
use shm_ring::ring::{RingObserver, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{StageSnapshot, StatsReader};
use shm_ring::{Producer, SegmentName};
use test_brokers::{wait_for, Process, TempDir};

/// A hang guard, never a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// An aggregate with a unique key per `i`.
pub fn aggregate(device: &str, sensor: &str, i: u64) -> Aggregate {
    let mut a = Aggregate::new(device.as_bytes(), sensor.as_bytes(), b"C").expect("ids fit");
    a.window_start_ms = 1_700_000_000_000 + i * 1000;
    a.window_end_ms = a.window_start_ms + 60_000;
    a.count = i + 1;
    a.sum = 2.0 * (i + 1) as f64;
    a.m2 = 0.0;
    a.min = 2.0;
    a.max = 2.0;
    a.last = 2.0;
    a.last_ms = a.window_end_ms - 1;
    (0..a.count).for_each(|_| a.histogram.fold(2.0));
    a
}

/// `n` aggregates over a few devices and sensors, each with a distinct window.
pub fn aggregates(n: u64) -> Vec<Aggregate> {
    (0..n)
        .map(|i| aggregate(&format!("dev{:03}", i % 37), &format!("s{}", i % 3), i))
        .collect()
}

/// The aggregates ring and stats page of one test, and its emitd.
pub struct Pipeline {
    pub emitd: Option<Process>,
    pub producer: Producer<Aggregate>,
    pub prefix: String,
    pub subject_prefix: String,
    pub config: PathBuf,
    pub dir: TempDir,
    _guard: PrefixGuard,
}

impl Pipeline {
    /// Creates the segments (`ring` slots) and a config for `nats_url` with `emitd_extra` lines
    /// added to `[emitd]`.
    pub fn new(name: &str, nats_url: &str, emitd_extra: &str, ring: u64) -> Pipeline {
        Self::with_shutdown_timeout(name, nats_url, emitd_extra, ring, 10_000)
    }

    /// As [`Pipeline::new`], with `[supervisor] shutdown_timeout_ms` (emitd drains for 80 % of it).
    pub fn with_shutdown_timeout(
        name: &str,
        nats_url: &str,
        emitd_extra: &str,
        ring: u64,
        shutdown_ms: u64,
    ) -> Pipeline {
        let prefix = format!("test-emitd-{name}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let _ = shm_ring::segment::remove_all(&prefix);
        let aggregates = SegmentName::new(&prefix, segment::AGGREGATES).unwrap();
        shm_ring::ring::create::<Aggregate>(&aggregates, &RingOptions::new(ring)).unwrap();
        shm_ring::stats::create_stats_page(
            &SegmentName::new(&prefix, segment::STATS).unwrap(),
            &stage::ALL,
            &[
                (segment::RAW, 1024),
                (segment::READINGS, 1024),
                (segment::AGGREGATES, ring),
            ],
        )
        .unwrap();
        let producer = Producer::attach(&aggregates).unwrap();
        let dir = TempDir::new(&format!("emitd-{name}"));
        let subject_prefix = format!("t{}.{name}", std::process::id());
        let config = dir.path().join("telemetry.toml");
        std::fs::write(
            &config,
            format!(
                "[pipeline]\nprefix = \"{prefix}\"\ninstance = \"edge-{name}\"\naggregates_ring = {ring}\n\
                 [wait]\nnap_us = 200\n\
                 [supervisor]\nshutdown_timeout_ms = {shutdown_ms}\n\
                 [emitd]\nnats = \"{nats_url}\"\nsubject_prefix = \"{subject_prefix}\"\n{emitd_extra}\n"
            ),
        )
        .unwrap();
        Pipeline {
            emitd: None,
            producer,
            prefix,
            subject_prefix,
            config,
            dir,
            _guard: guard,
        }
    }

    pub fn instance(&self) -> String {
        let name = self.subject_prefix.split_once('.').unwrap().1;
        format!("edge-{name}")
    }

    /// Starts emitd (stderr inherited, so its log shows with `--nocapture`).
    pub fn start_emitd(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_emitd"));
        cmd.arg("--config").arg(&self.config).stdout(Stdio::null());
        self.emitd = Some(Process::spawn("emitd", &mut cmd));
        wait_for("emitd to attach", PATIENCE, || {
            self.stats().pid.eq(&self.emitd.as_ref().unwrap().pid()).then_some(())
        });
    }

    pub fn emitd(&mut self) -> &mut Process {
        self.emitd.as_mut().expect("emitd started")
    }

    /// Pushes every aggregate, waiting for room in the ring.
    pub fn push(&mut self, aggs: &[Aggregate]) {
        let mut done = 0;
        while done < aggs.len() {
            let n = self.producer.push_slice(&aggs[done..]).unwrap();
            done += n;
            if n == 0 {
                wait_for("room in the aggregates ring", PATIENCE, || {
                    (self.producer.free_slots().unwrap() > 0).then_some(())
                });
            }
        }
    }

    pub fn stats(&self) -> StageSnapshot {
        let page = StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap()).unwrap();
        page.snapshot().stage(stage::EMITD).unwrap().clone()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.stats().counter(name).unwrap_or(0)
    }

    pub fn ring_gauge(&self) -> u64 {
        let page = StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap()).unwrap();
        page.snapshot()
            .rings
            .iter()
            .find(|r| r.name == segment::AGGREGATES)
            .unwrap()
            .depth
    }

    /// `(write, read)` positions of the aggregates ring.
    pub fn ring_positions(&self) -> (u64, u64) {
        RingObserver::attach(&SegmentName::new(&self.prefix, segment::AGGREGATES).unwrap())
            .unwrap()
            .positions()
    }

    /// Waits until emitd has released `n` aggregates from the ring in total and returns its
    /// counters, after checking `received = forwarded + dropped.*`.
    pub fn wait_released(&self, n: u64) -> StageSnapshot {
        let snap = wait_for(&format!("emitd to release {n} aggregates"), PATIENCE, || {
            let s = self.stats();
            (s.counter("received") == Some(n) && self.ring_positions().1 == n).then_some(s)
        });
        assert_conserved(&snap);
        snap
    }
}

/// `received = forwarded + dropped.*`.
pub fn assert_conserved(s: &StageSnapshot) {
    assert!(s.consistent, "{s:?}");
    let dropped: u64 = s
        .counters
        .iter()
        .filter(|(n, _)| n.starts_with("dropped."))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        s.counter("received").unwrap_or(0),
        s.counter("forwarded").unwrap_or(0) + dropped,
        "conservation: {:?}",
        s.counters
    );
}

/// One message as a subscriber saw it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub subject: String,
    pub payload: Vec<u8>,
    pub msg_id: Option<String>,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload of {} is not JSON ({e}): {:?}", self.subject, self.payload))
    }
}

enum Cmd {
    Probe,
}

/// A core NATS subscription running on its own thread and runtime, collecting what arrives.
pub struct Collector {
    msgs: Arc<Mutex<Vec<Msg>>>,
    probes_back: Arc<AtomicU64>,
    probes_sent: u64,
    cmd: Option<tokio::sync::mpsc::UnboundedSender<Cmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Subscribes to `subject` on `url` and returns once the subscription is in place.
    pub fn start(url: &str, subject: &str) -> Collector {
        Self::start_with(url, subject, async_nats::ConnectOptions::new)
    }

    /// As [`Collector::start`], with connect options (TLS, credentials) from `options`.
    pub fn start_with(
        url: &str,
        subject: &str,
        options: impl FnOnce() -> async_nats::ConnectOptions + Send + 'static,
    ) -> Collector {
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let probes_back = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (url, subject) = (url.to_owned(), subject.to_owned());
        let (m, p) = (msgs.clone(), probes_back.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = options()
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .connect(url.as_str())
                    .await
                    .unwrap();
                let mut sub = client.subscribe(subject).await.unwrap();
                let probe_subject = client.new_inbox();
                let mut probes = client.subscribe(probe_subject.clone()).await.unwrap();
                loop {
                    tokio::select! {
                        cmd = rx.recv() => match cmd {
                            Some(Cmd::Probe) => { let _ = client.publish(probe_subject.clone(), "probe".into()).await; }
                            None => break,
                        },
                        Some(msg) = sub.next() => {
                            let msg_id = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
                            m.lock().unwrap().push(Msg { subject: msg.subject.to_string(), payload: msg.payload.to_vec(), msg_id });
                        }
                        Some(_) = probes.next() => { p.fetch_add(1, Ordering::SeqCst); }
                    }
                }
            });
        });
        let mut c = Collector {
            msgs,
            probes_back,
            probes_sent: 0,
            cmd: Some(tx),
            thread: Some(thread),
        };
        c.sync();
        c
    }

    /// Returns once the server has processed this client's subscriptions (a probe sent after
    /// them came back), retrying across reconnects.
    pub fn sync(&mut self) {
        wait_for("a subscriber probe to come back", PATIENCE, || {
            self.probes_sent += 1;
            let want = self.probes_sent;
            self.cmd.as_ref().unwrap().send(Cmd::Probe).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while std::time::Instant::now() < deadline {
                if self.probes_back.load(Ordering::SeqCst) >= want {
                    return Some(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Lost while reconnecting; count it as answered so the next probe is awaited alone.
            self.probes_sent = self.probes_back.load(Ordering::SeqCst).max(want);
            None
        });
        self.probes_sent = self.probes_back.load(Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.msgs.lock().unwrap().len()
    }

    /// Waits until at least `n` messages arrived and returns them all.
    pub fn wait_count(&self, n: usize) -> Vec<Msg> {
        wait_for(&format!("{n} messages (have {})", self.count()), PATIENCE, || {
            (self.count() >= n).then(|| self.messages())
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.cmd.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `f` on a fresh current-thread runtime with a client of `url`.
pub fn with_client<T>(url: &str, f: impl AsyncFnOnce(async_nats::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        f(client).await
    })
}

/// Messages stored in `stream` now (0 if it does not exist yet).
pub fn stream_count(url: &str, stream: &str) -> u64 {
    with_client(url, async |client| {
        let js = jetstream::new(client);
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    })
}

/// Every message of `stream`, as delivered to a new pull consumer from the start.
pub fn consume_all(url: &str, stream: &str) -> Vec<Msg> {
    with_client(url, async |client| {
        let js = jetstream::new(client);
        let mut s = js.get_stream(stream).await.unwrap();
        let stored = s.info().await.unwrap().state.messages as usize;
        let consumer = s
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let mut batch = consumer
                .batch()
                .max_messages(1000)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .unwrap();
            let before = out.len();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                let msg_id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.to_string());
                out.push(Msg {
                    subject: m.subject.to_string(),
                    payload: m.payload.to_vec(),
                    msg_id,
                });
            }
            if out.len() == before && out.len() >= stored {
                break;
            }
        }
        out
    })
}

/// The `(device, sensor, window_end_ms)` of each aggregate.
pub fn keys(aggs: &[Aggregate]) -> HashSet<(String, String, u64)> {
    aggs.iter()
        .map(|a| {
            (
                a.device().text().into_owned(),
                a.sensor().text().into_owned(),
                a.window_end_ms,
            )
        })
        .collect()
}

/// The `(device, sensor, window_end_ms)` of a message's payload.
pub fn key_of(m: &Msg) -> (String, String, u64) {
    let v = m.json();
    (
        v["device"].as_str().unwrap().to_owned(),
        v["sensor"].as_str().unwrap().to_owned(),
        v["window_end_ms"].as_u64().unwrap(),
    )
}

#[cfg(feature = "kafka")]
pub mod kafka;

/// SIGTERM to emitd, which must drain and exit 0.
pub fn stop(p: &mut Pipeline) {
    p.emitd().signal(15);
    assert_eq!(
        p.emitd().wait_exit(PATIENCE),
        Some(0),
        "emitd must exit 0 after SIGTERM"
    );
}
