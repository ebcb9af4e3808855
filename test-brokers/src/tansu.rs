//! A Tansu broker (a Kafka-protocol broker, `tansu` 0.6.0; installed by
//! `scripts/install-deps.sh`) on a free loopback port, with in-memory storage, stopped when
//! dropped. Topics are created with `tansu topic create`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_listening, Process};

/// Where `scripts/install-deps.sh` puts the binary, when it is not on `PATH`.
const INSTALLED: &str = "/usr/local/bin/tansu";

/// The `tansu` binary: `$TANSU`, else `tansu` on `PATH`, else [`INSTALLED`].
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TANSU") {
        return p.into();
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let p = dir.join("tansu");
        if p.is_file() {
            return p;
        }
    }
    let p = PathBuf::from(INSTALLED);
    assert!(p.exists(), "tansu is not installed: run scripts/install-deps.sh");
    p
}

/// A Tansu broker on a free loopback port.
pub struct Tansu {
    process: Process,
    port: u16,
}

impl Tansu {
    /// Starts a broker.
    pub fn start() -> Tansu {
        for _ in 0..20 {
            let port = free_port();
            if let Some(process) = Self::launch(port) {
                return Tansu { process, port };
            }
        }
        panic!("tansu did not start on any of 20 free ports");
    }

    /// Starts a broker on `port` (for a test that holds the port before the broker exists).
    pub fn start_on(port: u16) -> Tansu {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(process) = Self::launch(port) {
                return Tansu { process, port };
            }
            assert!(Instant::now() < deadline, "tansu did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn launch(port: u16) -> Option<Process> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_binary());
        cmd.arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            // Its settings come from these arguments only, never from the caller's environment.
            .env_remove("CLUSTER_ID")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = Process::spawn("tansu", &mut cmd);
        wait_listening(&mut process, port, Duration::from_secs(20)).then_some(process)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as `bootstrap.servers` and `[emitd.kafka] brokers` take it.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Creates `topic` with `partitions` partitions (`tansu topic create`).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(tansu_binary())
            .args(["topic", "create", topic])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {topic} failed: {status}");
    }

    /// Kills the broker (SIGKILL); its in-memory topics are gone.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}
