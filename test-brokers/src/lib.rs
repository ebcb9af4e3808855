//! Test support for the pipeline's integration tests: a real `mosquitto`, a real `nats-server`
//! (Debian packages) and a real Kafka-protocol broker ([`Tansu`], in `tansu`), all installed by
//! `scripts/install-deps.sh`, each started on a
//! free loopback port chosen at run time, and stopped (SIGKILL, reaped) when dropped, also when a
//! test fails. Nothing here touches a broker it did not start.
//!
//! Also finds the pipeline's binaries in the target directory of the running test.

#![deny(missing_docs)]

pub mod pki;
mod tansu;
pub mod tls;
pub use tansu::{tansu_binary, Tansu};

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 at the time of asking. Another process may take it before the
/// caller binds it; [`Mosquitto`] and [`Nats`] retry with a new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A directory for one test's files, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/<name>-<pid>-<n>`.
    pub fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed and reaped when dropped.
pub struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    /// Spawns `command`, named `name` in messages.
    pub fn spawn(name: &str, command: &mut Command) -> Process {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Process {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Sends a signal (for example `libc::SIGTERM` = 15, `SIGKILL` = 9) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// SIGKILLs and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the process to exit and returns its exit code (`None`: killed by
    /// a signal). Panics on timeout (after killing it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("process already reaped");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The child's standard output, if it was piped; call after it exited.
    pub fn take_stdout(&mut self) -> String {
        let mut out = String::new();
        if let Some(s) = self.child.as_mut().and_then(|c| c.stdout.as_mut()) {
            let _ = s.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`, or the process exits.
fn wait_listening(process: &mut Process, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !process.alive() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Ours if it is still running: a broker that failed to bind exits.
            std::thread::sleep(Duration::from_millis(50));
            return process.alive();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn find_program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/install-deps.sh");
}

/// A mosquitto broker on a free loopback port.
pub struct Mosquitto {
    process: Process,
    port: u16,
    dir: TempDir,
    /// Extra listeners: port and settings (see [`Mosquitto::start_with`]).
    extra: Vec<(u16, String)>,
}

impl Mosquitto {
    /// Starts mosquitto with queues and in-flight limits raised for benchmarks and bursts.
    pub fn start() -> Mosquitto {
        Self::start_with(&[])
    }

    /// Starts mosquitto with its anonymous plain listener (for publishers such as loadgen) and
    /// one more listener per entry of `extra`, each on its own free port with those settings
    /// (`per_listener_settings true`): for example [`tls::mosquitto_tls`] and
    /// [`tls::mosquitto_password`]. [`Mosquitto::extra_url`] names them.
    pub fn start_with(extra: &[String]) -> Mosquitto {
        let dir = TempDir::new("mosquitto");
        for _ in 0..20 {
            let port = free_port();
            let extra: Vec<(u16, String)> = extra.iter().map(|s| (free_port(), s.clone())).collect();
            if let Some(process) = Self::launch(&dir, port, &extra) {
                return Mosquitto {
                    process,
                    port,
                    dir,
                    extra,
                };
            }
        }
        panic!("mosquitto did not start on any of 20 free ports");
    }

    /// `<scheme>://127.0.0.1:<port>` of the extra listener `i` (see [`Mosquitto::start_with`]).
    pub fn extra_url(&self, i: usize, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.extra[i].0)
    }

    fn launch(dir: &TempDir, port: u16, extra: &[(u16, String)]) -> Option<Process> {
        let conf = dir.path().join("mosquitto.conf");
        let mut listeners = format!("per_listener_settings true\nlistener {port} 127.0.0.1\nallow_anonymous true\n");
        for (p, settings) in extra {
            listeners.push_str(&format!("listener {p} 127.0.0.1\n{settings}"));
        }
        std::fs::write(
            &conf,
            format!(
                "{listeners}persistence false\n\
                 max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .ok()?;
        let mut process = Process::spawn(
            "mosquitto",
            Command::new(find_program("mosquitto"))
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null()),
        );
        let all_listening = wait_listening(&mut process, port, Duration::from_secs(10))
            && extra
                .iter()
                .all(|(p, _)| wait_listening(&mut process, *p, Duration::from_secs(10)));
        all_listening.then_some(process)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Kills the broker (SIGKILL).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.process.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(p) = Self::launch(&self.dir, self.port, &self.extra) {
                self.process = p;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Publishes each line as one message with `mosquitto_pub -l` (MQTT 5), and waits until it
    /// has sent them all (at QoS 1, until the broker acked them).
    pub fn publish_lines(&self, topic: &str, lines: &[String], qos: u8) {
        use std::io::Write;
        let mut child = Command::new(find_program("mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-V",
                "mqttv5",
                "-q",
                &qos.to_string(),
                "-t",
                topic,
            ])
            .arg("-l")
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            for line in lines {
                writeln!(stdin, "{line}").expect("write to mosquitto_pub");
            }
        }
        let status = child.wait().expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed: {status}");
    }

    /// Publishes one message, the contents of `file`, with `mosquitto_pub -f`.
    pub fn publish_file(&self, topic: &str, file: &Path, qos: u8) {
        let status = Command::new(find_program("mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-V",
                "mqttv5",
                "-q",
                &qos.to_string(),
                "-t",
                topic,
            ])
            .arg("-f")
            .arg(file)
            .status()
            .expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed: {status}");
    }
}

/// A nats-server on a free loopback port, optionally with JetStream.
pub struct Nats {
    process: Process,
    port: u16,
    jetstream: Option<TempDir>,
    /// A configuration file's directory and extra settings (see [`Nats::start_configured`]).
    configured: Option<(TempDir, String)>,
}

impl Nats {
    /// Starts core NATS.
    pub fn start() -> Nats {
        Self::start_with(false)
    }

    /// Starts NATS with JetStream enabled (storage in a temporary directory).
    pub fn start_jetstream() -> Nats {
        Self::start_with(true)
    }

    /// Starts core NATS with `settings` in its configuration file (nats-server's syntax): for
    /// example [`tls::nats_tls`] or an `authorization { ... }` block.
    pub fn start_configured(settings: &str) -> Nats {
        Self::start_inner(false, Some(settings))
    }

    fn start_with(jetstream: bool) -> Nats {
        Self::start_inner(jetstream, None)
    }

    fn start_inner(jetstream: bool, settings: Option<&str>) -> Nats {
        let store = jetstream.then(|| TempDir::new("nats-js"));
        let configured = settings.map(|s| (TempDir::new("nats-conf"), s.to_owned()));
        for _ in 0..20 {
            let port = free_port();
            if let Some(process) = Self::launch(port, store.as_ref(), configured.as_ref()) {
                return Nats {
                    process,
                    port,
                    jetstream: store,
                    configured,
                };
            }
        }
        panic!("nats-server did not start on any of 20 free ports");
    }

    fn launch(port: u16, store: Option<&TempDir>, configured: Option<&(TempDir, String)>) -> Option<Process> {
        let mut cmd = Command::new(find_program("nats-server"));
        if let Some((dir, settings)) = configured {
            let conf = dir.path().join("nats.conf");
            std::fs::write(&conf, format!("listen: \"127.0.0.1:{port}\"\n{settings}\n")).ok()?;
            cmd.arg("-c").arg(conf);
        } else {
            cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(dir) = store {
            cmd.arg("-js").arg("-sd").arg(dir.path());
        }
        let mut process = Process::spawn("nats-server", &mut cmd);
        wait_listening(&mut process, port, Duration::from_secs(10)).then_some(process)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `<scheme>://127.0.0.1:<port>` (`tls` for a TLS server).
    pub fn url_with(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port (with the same JetStream storage).
    pub fn restart(&mut self) {
        self.process.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(p) = Self::launch(self.port, self.jetstream.as_ref(), self.configured.as_ref()) {
                self.process = p;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The path of a workspace binary (`ingestd`, `telemetry-supervisor`, …) built for the same
/// profile as the running test. `scripts/test.sh` builds them all before running tests.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
/// For waiting on processes and brokers; the timeout is a hang guard, never a speed assertion.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
