//! A harness for end-to-end tests: one pipeline (its segments, its config file, its four stage
//! processes) between a real mosquitto and a real nats-server that the harness starts on free
//! loopback ports, plus a NATS subscriber that collects the aggregates. Everything is stopped and
//! removed on drop, also when a test fails.
//!
//! The stage binaries are the workspace's, from the target directory of the running test
//! (`scripts/test.sh` builds them before running tests).

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use records::names::{segment, stage};
use records::{Aggregate, RawRecord, Reading};
use shm_ring::ring::{create, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{create_stats_page, StatsReader, StatsSnapshot};
use shm_ring::SegmentName;
use telemetry_config::Config;
use test_brokers::{binary, Mosquitto, Nats, Process, TempDir};

/// Generous limit for anything the harness waits on; a hang guard, not a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// One aggregate as emitd published it.
#[derive(Clone, Debug)]
pub struct Published {
    /// The NATS subject.
    pub subject: String,
    /// The JSON payload.
    pub body: serde_json::Value,
}

impl Published {
    /// A numeric field.
    pub fn num(&self, key: &str) -> f64 {
        self.body[key].as_f64().unwrap_or(f64::NAN)
    }

    /// A text field.
    pub fn text(&self, key: &str) -> String {
        self.body[key].as_str().unwrap_or_default().to_owned()
    }
}

/// Collects every message published on a subject pattern, from a background thread.
pub struct Collector {
    messages: Arc<Mutex<Vec<Published>>>,
    _runtime: std::thread::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Collector {
    /// Subscribes to `pattern` at `nats_url` and returns once the subscription is in place.
    pub fn start(nats_url: &str, pattern: &str) -> Collector {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (url, pattern, sink) = (nats_url.to_owned(), pattern.to_owned(), messages.clone());
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(url)
                    .await
                    .expect("connect to NATS");
                let mut sub = client.subscribe(pattern).await.expect("subscribe");
                client.flush().await.expect("flush");
                let _ = ready_tx.send(());
                use futures_util::StreamExt as _;
                loop {
                    tokio::select! {
                        m = sub.next() => match m {
                            Some(m) => {
                                let body = serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null);
                                sink.lock().unwrap().push(Published { subject: m.subject.to_string(), body });
                            }
                            None => break,
                        },
                        _ = &mut stop_rx => break,
                    }
                }
            });
        });
        ready_rx.recv_timeout(PATIENCE).expect("NATS subscription ready");
        Collector {
            messages,
            _runtime: runtime,
            stop: Some(stop_tx),
        }
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<Published> {
        self.messages.lock().unwrap().clone()
    }

    /// Per (device, sensor), the received aggregate with the largest count (ties: the latest).
    pub fn fullest(&self) -> BTreeMap<(String, String), Published> {
        let mut best: BTreeMap<(String, String), Published> = BTreeMap::new();
        for p in self.all() {
            let key = (p.text("device"), p.text("sensor"));
            match best.get(&key) {
                Some(b) if b.num("count") > p.num("count") => {}
                _ => {
                    best.insert(key, p);
                }
            }
        }
        best
    }
}

/// Per (device, sensor): what the aggregates must show (from `loadgen --expect`).
pub type Expected = BTreeMap<(String, String), serde_json::Value>;

impl Collector {
    /// Waits until, for every key in `expected`, an aggregate with exactly the expected count has
    /// arrived (the aggregate whose window holds every reading).
    pub fn wait_covering(&self, what: &str, expected: &Expected) {
        test_brokers::wait_for(what, PATIENCE, || {
            let fullest = self.fullest();
            expected
                .iter()
                .all(|(k, v)| {
                    fullest
                        .get(k)
                        .is_some_and(|a| a.num("count") == v["count"].as_f64().unwrap())
                })
                .then_some(())
        });
    }
}

/// Asserts that, per key, the fullest aggregate received equals the expectation exactly
/// (count, min, max) and to float-summation accuracy (sum, mean).
pub fn assert_exact(fullest: &BTreeMap<(String, String), Published>, expected: &Expected) {
    assert_eq!(fullest.len(), expected.len(), "one aggregate stream per key");
    for (key, want) in expected {
        let got = &fullest[key];
        let count = want["count"].as_f64().unwrap();
        assert_eq!(got.num("count"), count, "{key:?} count");
        assert_eq!(got.num("min"), want["min"].as_f64().unwrap(), "{key:?} min");
        assert_eq!(got.num("max"), want["max"].as_f64().unwrap(), "{key:?} max");
        let sum = want["sum"].as_f64().unwrap();
        assert!(
            (got.num("sum") - sum).abs() <= 1e-9 * sum.abs().max(1.0),
            "{key:?} sum {} vs {sum}",
            got.num("sum")
        );
        assert!(
            (got.num("mean") - sum / count).abs() <= 1e-9 * (sum / count).abs().max(1.0),
            "{key:?} mean"
        );
    }
}

/// `expected` with every count multiplied by `factor` (the same readings sent again).
pub fn times(expected: &Expected, factor: f64) -> Expected {
    expected
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            v["count"] = (factor * v["count"].as_f64().unwrap()).into();
            (k.clone(), v)
        })
        .collect()
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// One pipeline: segments, config, stage processes.
pub struct Pipeline {
    /// Its segment prefix.
    pub prefix: String,
    /// Its config.
    pub config: Config,
    /// Its config file.
    pub config_path: PathBuf,
    stages: BTreeMap<&'static str, Process>,
    dir: TempDir,
    _guard: PrefixGuard,
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Pipeline {
    /// Writes the config (the harness's settings, then `extra` TOML appended to the sections it
    /// names) and creates the segments, as the supervisor would, for stages started by hand.
    pub fn new(test: &str, mqtt: &Mosquitto, nats: &Nats, extra: &str) -> Pipeline {
        let p = Self::configure(test, mqtt, nats, extra);
        p.create_segments();
        p
    }

    /// Writes the config only: for a pipeline run by the supervisor, which creates the segments.
    pub fn configure(test: &str, mqtt: &Mosquitto, nats: &Nats, extra: &str) -> Pipeline {
        let prefix = format!("test-e2e-{test}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let dir = TempDir::new(&format!("e2e-{test}"));
        let toml = format!(
            "[pipeline]\nprefix = \"{prefix}\"\ninstance = \"{prefix}\"\nraw_ring = 65536\nreadings_ring = 65536\naggregates_ring = 16384\n\
             [ingestd]\nbroker = \"{}\"\nclient_id = \"{prefix}\"\nreconnect_min_ms = 20\nreconnect_max_ms = 500\n\
             [emitd]\nnats = \"{}\"\nsubject_prefix = \"agg.{prefix}\"\n\
             [aggd]\nwindow_ms = 60000\nemit_every_ms = 1000\n",
            mqtt.url(),
            nats.url()
        );
        let toml = merge_toml(&toml, extra);
        let config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("test config: {e}\n{toml}"));
        let config_path = dir.path().join("telemetry.toml");
        std::fs::write(&config_path, &toml).unwrap();
        Pipeline {
            prefix,
            config,
            config_path,
            stages: BTreeMap::new(),
            dir,
            _guard: guard,
        }
    }

    /// Creates the three rings and the stats page.
    pub fn create_segments(&self) {
        let prefix = &self.prefix;
        let name = |n: &str| SegmentName::new(prefix, n).unwrap();
        let p = &self.config.pipeline;
        create::<RawRecord>(&name(segment::RAW), &RingOptions::new(p.raw_ring)).unwrap();
        create::<Reading>(&name(segment::READINGS), &RingOptions::new(p.readings_ring)).unwrap();
        create::<Aggregate>(&name(segment::AGGREGATES), &RingOptions::new(p.aggregates_ring)).unwrap();
        create_stats_page(
            &name(segment::STATS),
            &stage::ALL,
            &[
                (segment::RAW, p.raw_ring),
                (segment::READINGS, p.readings_ring),
                (segment::AGGREGATES, p.aggregates_ring),
            ],
        )
        .unwrap();
    }

    /// A file path in this pipeline's temporary directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `telemetry-supervisor` with this pipeline's config, with extra environment.
    pub fn supervise(&self, env: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(binary("telemetry-supervisor"));
        cmd.arg("--config").arg(&self.config_path).stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Process::spawn("telemetry-supervisor", &mut cmd)
    }

    /// Waits until every stage reports Running with a live pid, and returns the pids.
    pub fn wait_running(&self) -> BTreeMap<String, u32> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let snap = self.try_stats();
            let running: BTreeMap<String, u32> = stage::ALL
                .iter()
                .filter_map(|s| {
                    let st = snap.as_ref()?.stage(s)?;
                    (st.state == Some(shm_ring::stats::StageState::Running) && st.pid != 0 && alive(st.pid))
                        .then(|| (s.to_string(), st.pid))
                })
                .collect();
            if running.len() == stage::ALL.len() {
                return running;
            }
            if std::time::Instant::now() > deadline {
                let states: Vec<String> = snap
                    .map(|s| {
                        s.stages
                            .iter()
                            .map(|st| format!("{} {:?} pid {} alive {}", st.name, st.state, st.pid, alive(st.pid)))
                            .collect()
                    })
                    .unwrap_or_default();
                panic!("timed out after {PATIENCE:?} waiting for every stage to run: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `victim` runs with a pid other than `before[victim]`, and returns all pids.
    pub fn wait_replaced(&self, before: &BTreeMap<String, u32>, victim: &str) -> BTreeMap<String, u32> {
        test_brokers::wait_for(&format!("{victim} to be replaced"), PATIENCE, || {
            let now = self.wait_running();
            (now[victim] != before[victim]).then_some(now)
        })
    }

    /// The NATS subject pattern of this pipeline's aggregates.
    pub fn subjects(&self) -> String {
        format!("{}.>", self.config.emitd.subject_prefix)
    }

    /// Starts one stage by hand from the config.
    pub fn start(&mut self, name: &'static str) {
        let p = Process::spawn(
            name,
            Command::new(binary(name))
                .arg("--config")
                .arg(&self.config_path)
                .stdout(Stdio::null()),
        );
        self.stages.insert(name, p);
    }

    /// Starts all four, consumers first, and waits until each is running.
    pub fn start_all(&mut self) {
        for name in [stage::EMITD, stage::AGGD, stage::DECODED, stage::INGESTD] {
            self.start(name);
        }
        self.wait_running();
    }

    /// SIGKILLs one stage.
    pub fn kill(&mut self, name: &'static str) {
        if let Some(mut p) = self.stages.remove(name) {
            p.kill();
        }
    }

    /// The pid of a running stage.
    pub fn pid(&self, name: &'static str) -> u32 {
        self.stages.get(name).map_or(0, Process::pid)
    }

    /// SIGTERMs one stage and returns its exit code.
    pub fn stop(&mut self, name: &'static str) -> Option<i32> {
        let mut p = self.stages.remove(name).expect("stage running");
        p.signal(15);
        p.wait_exit(PATIENCE)
    }

    /// The stats page now.
    pub fn stats(&self) -> StatsSnapshot {
        self.try_stats().expect("the stats page exists")
    }

    /// The stats page now, if it exists yet (a supervisor creates it after it starts).
    pub fn try_stats(&self) -> Option<StatsSnapshot> {
        StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap())
            .ok()
            .map(|r| r.snapshot())
    }

    /// A counter of a stage (0 if not registered yet, or no page yet).
    pub fn counter(&self, stage: &str, counter: &str) -> u64 {
        self.try_stats()
            .and_then(|s| s.stage(stage).and_then(|s| s.counter(counter)))
            .unwrap_or(0)
    }
}

/// Appends `extra` to `base`, merging `[section]` headers that appear in both (TOML forbids a
/// section twice).
fn merge_toml(base: &str, extra: &str) -> String {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |text: &str| {
        let mut current = String::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                current = t.to_owned();
                if !sections.iter().any(|(s, _)| *s == current) {
                    sections.push((current.clone(), Vec::new()));
                }
            } else if !t.is_empty() {
                let key = t.split('=').next().unwrap_or("").trim().to_owned();
                let entry = &mut sections
                    .iter_mut()
                    .find(|(s, _)| *s == current)
                    .expect("key before any section")
                    .1;
                entry.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
                entry.push(t.to_owned());
            }
        }
    };
    add(base);
    add(extra);
    let mut out = String::new();
    for (s, lines) in sections {
        out.push_str(&s);
        out.push('\n');
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// One scrape of the supervisor's Prometheus endpoint on 127.0.0.1:`port`: the whole answer
/// (status line, headers, body), or `None` if it is not up or did not answer 200.
pub fn scrape_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.contains("200 OK").then_some(out)
}

/// Runs the workspace's `loadgen` against `mqtt` with `args` (flags separated by whitespace, so
/// that a test names them on one line) and returns its summary line.
pub fn loadgen(mqtt: &Mosquitto, args: &str) -> String {
    let out = Command::new(binary("loadgen"))
        .arg("--broker")
        .arg(mqtt.url())
        .args(args.split_whitespace())
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// A `key=value` field of a summary line.
pub fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Per-key expectations written by `loadgen --expect`.
pub fn expectations(path: &std::path::Path) -> Expected {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["device"].as_str().unwrap().to_owned(),
                    v["sensor"].as_str().unwrap().to_owned(),
                ),
                v,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn toml_sections_merge_and_later_keys_win() {
        let m = super::merge_toml("[a]\nx = 1\ny = 2\n[b]\nz = 3\n", "[a]\ny = 5\n[c]\nw = 1\n");
        assert_eq!(m, "[a]\nx = 1\ny = 5\n[b]\nz = 3\n[c]\nw = 1\n");
    }
}
