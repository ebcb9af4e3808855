//! ingestd under test, shared by its test files: the segments it attaches to ([`raw_segments`],
//! for every test), and for `tests/http.rs` and `tests/hostile_http.rs` the HTTP door: its
//! own raw ring and stats page under a prefix of the test's (removed when the test ends, even
//! when it fails), ingestd started on a free loopback port and killed when dropped, curl, and a
//! certificate made by openssl.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use records::names::segment;
use records::names::stage;
use records::{ContentType, RawRecord};
use shm_ring::ring::{create, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{create_stats_page, StatsReader};
use shm_ring::{Consumer, SegmentName};
use test_brokers::{free_port, wait_for, Process, TempDir};

/// A hang guard, never a speed assertion.
pub const LONG: Duration = Duration::from_secs(60);
/// The token in `token_file` (see [`Ingestd::prepare`]).
pub const TOKEN: &str = "s3cret-token";

/// What ingestd attaches to under `prefix`: a raw ring of `capacity` records and the stats page,
/// removed (with the prefix's directory) when the guard drops, even when the test fails.
pub fn raw_segments(prefix: &str, capacity: u64) -> PrefixGuard {
    let guard = PrefixGuard::new(prefix);
    create::<RawRecord>(
        &SegmentName::new(prefix, segment::RAW).unwrap(),
        &RingOptions::new(capacity),
    )
    .unwrap();
    create_stats_page(
        &SegmentName::new(prefix, segment::STATS).unwrap(),
        &stage::ALL,
        &[(segment::RAW, capacity)],
    )
    .unwrap();
    guard
}

/// One ingestd, its segments and its files.
pub struct Ingestd {
    _guard: PrefixGuard,
    pub prefix: String,
    pub dir: TempDir,
    pub port: u16,
    pub process: Option<Process>,
}

impl Ingestd {
    /// ingestd with only its HTTP door, a raw ring of `capacity`, the token, bodies up to 8 KiB,
    /// and `extra` lines in `[ingestd.http]`.
    pub fn start(test: &str, capacity: u64, extra: &str) -> Ingestd {
        Ingestd::prepare(
            test,
            capacity,
            "broker = \"\"\nmax_payload = 200\n",
            &format!(
                "token_file = \"{{token_file}}\"\nmax_body_bytes = 8192\nallow_plaintext_credentials = true\n{extra}"
            ),
        )
        .run()
    }

    /// Segments and configuration, not started: `ingestd` lines in `[ingestd]`, `http` lines in
    /// `[ingestd.http]` (after `listen`), where `{token_file}` names a file holding [`TOKEN`].
    pub fn prepare(test: &str, capacity: u64, ingestd: &str, http: &str) -> Ingestd {
        let prefix = format!("test-ingestd-http-{test}-{}", std::process::id());
        let guard = raw_segments(&prefix, capacity);
        let dir = TempDir::new("ingestd-http");
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let port = free_port();
        let http = http.replace("{token_file}", &token.display().to_string());
        std::fs::write(
            dir.path().join("telemetry.toml"),
            format!(
                "[pipeline]\nprefix = \"{prefix}\"\n[ingestd]\n{ingestd}\n\
                 [ingestd.http]\nlisten = \"127.0.0.1:{port}\"\n{http}"
            ),
        )
        .unwrap();
        Ingestd {
            _guard: guard,
            prefix,
            dir,
            port,
            process: None,
        }
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("telemetry.toml")
    }

    /// Starts ingestd and waits until it runs.
    pub fn run(mut self) -> Ingestd {
        self.process = Some(Process::spawn(
            "ingestd",
            Command::new(env!("CARGO_BIN_EXE_ingestd"))
                .arg("--config")
                .arg(self.config()),
        ));
        wait_for("ingestd to listen", LONG, || self.running().then_some(()));
        self
    }

    pub fn stats(&self) -> shm_ring::stats::StageSnapshot {
        let reader = StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap()).unwrap();
        reader.snapshot().stage(stage::INGESTD).unwrap().clone()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.stats().counter(name).unwrap_or(0)
    }

    pub fn running(&self) -> bool {
        self.stats().state == Some(shm_ring::stats::StageState::Running)
    }

    pub fn consumer(&self) -> Consumer<RawRecord> {
        Consumer::attach(&SegmentName::new(&self.prefix, segment::RAW).unwrap()).unwrap()
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// curl: (status, headers and body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        curl(&format!("http://127.0.0.1:{}", self.port), args)
    }

    /// POSTs `body` to /v1/readings with the token: (status, body).
    pub fn post(&self, content_type: &str, body: &[u8]) -> (u16, String) {
        let file = self.file("body", body);
        let data = format!("@{}", file.display());
        let ct = format!("Content-Type: {content_type}");
        let auth = format!("Authorization: Bearer {TOKEN}");
        self.curl(&["-H", &ct, "-H", &auth, "--data-binary", &data, "/v1/readings"])
    }
}

/// Runs curl against `base` + the last argument (a path); returns the status and the output
/// (`-i`: headers, then the body).
pub fn curl(base: &str, args: &[&str]) -> (u16, String) {
    let (path, rest) = args.split_last().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-i", "-w", "\n%{http_code}"])
        .args(rest)
        .arg(format!("{base}{path}"))
        .output()
        .expect("run curl (scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (output, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), output.to_owned())
}

/// Every record in the ring, read and released.
pub fn drain(consumer: &mut Consumer<RawRecord>) -> Vec<(ContentType, Vec<u8>)> {
    let chunk = consumer.read_chunk(usize::MAX).unwrap();
    let got = chunk.iter().map(|r| (r.content_type(), r.payload().to_vec())).collect();
    chunk.commit_all();
    got
}

/// A self-signed certificate for 127.0.0.1 and its key (0600), made by openssl.
pub fn openssl_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (scripts/install-deps.sh installs it)");
    assert!(status.success());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}
