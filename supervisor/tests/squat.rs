//! Another local user got to `/dev/shm` first. The supervisor refuses a squatted prefix
//! directory (a symlink, one others can write, one of another user) with exit code 4 and a
//! message naming the path, its owner and what to do, instead of adopting it or crashing.
//! (`telemetryctl`'s refusal of a planted stats page is in `telemetryctl/tests/squat.rs`.)
//!
//! Squats another user would make need root to build here (a directory given to `nobody`); the
//! ones this user can make itself (modes, symlinks) run everywhere.

use std::fs::File;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shm_ring::segment::{PrefixGuard, SHM_DIR};
use test_brokers::{Process, TempDir};

/// How long the supervisor may take to refuse before the test calls it hung (a guard against a
/// hang, not a speed requirement).
const HANG_GUARD: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    nix::unistd::geteuid().as_raw() == 0
}

/// One test's prefix (its directory removed on drop, whatever is in its place) and config.
struct Scene {
    prefix: String,
    _guard: PrefixGuard,
    dir: TempDir,
}

/// How the supervisor ended: its exit code (`None`: killed by a signal) and what it said.
struct Run {
    code: Option<i32>,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stderr\n{}", self.code, self.stderr)
    }
}

impl Scene {
    fn new(test: &str) -> Scene {
        let prefix = format!("test-squat-{test}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let _ = shm_ring::segment::remove_all(&prefix);
        let s = Scene {
            prefix,
            _guard: guard,
            dir: TempDir::new(&format!("squat-{test}")),
        };
        std::fs::write(
            s.config(),
            format!("[pipeline]\nprefix = \"{}\"\nuser = \"telemetry\"\n", s.prefix),
        )
        .unwrap();
        std::fs::set_permissions(s.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
        s
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("telemetry.toml")
    }

    fn shm_dir(&self) -> PathBuf {
        Path::new(SHM_DIR).join(&self.prefix)
    }

    /// Runs the supervisor on this scene until it exits; its standard error goes to a file.
    fn supervisor(&self) -> Run {
        let log = self.dir.path().join("supervisor.stderr");
        let mut p = Process::spawn(
            "telemetry-supervisor",
            Command::new(env!("CARGO_BIN_EXE_telemetry-supervisor"))
                .arg("--config")
                .arg(self.config())
                .env("TELEMETRY_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap()),
        );
        let code = p.wait_exit(HANG_GUARD);
        Run {
            code,
            stderr: std::fs::read_to_string(&log).unwrap(),
        }
    }
}

/// The supervisor's refusal: exit 4, the path, and what to do; nothing made through the squat.
fn assert_refused(r: &Run, path: &Path, why: &str) {
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stderr.contains("cannot prepare the pipeline's segments"), "{r:?}");
    assert!(r.stderr.contains(&path.display().to_string()), "{r:?}");
    assert!(r.stderr.contains(why), "{r:?}");
    assert!(r.stderr.contains("set another [pipeline] prefix"), "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}

#[test]
fn a_symlink_in_place_of_the_directory_stops_the_supervisor_with_exit_4() {
    let s = Scene::new("link");
    let target = s.dir.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, s.shm_dir()).unwrap();
    let r = s.supervisor();
    assert_refused(&r, &s.shm_dir(), "is a symbolic link or not a directory");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing made through the link"
    );
    eprintln!("{}", r.stderr.trim());
}

#[test]
fn a_directory_others_can_write_stops_the_supervisor_with_exit_4() {
    let s = Scene::new("mode");
    std::fs::create_dir(s.shm_dir()).unwrap();
    std::fs::set_permissions(s.shm_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = s.supervisor();
    assert_refused(&r, &s.shm_dir(), "is writable by its group or by others");
    assert!(r.stderr.contains("mode 0777"), "{r:?}");
    assert_eq!(
        std::fs::read_dir(s.shm_dir()).unwrap().count(),
        0,
        "no segment made in it"
    );
}

#[test]
fn a_directory_of_another_user_stops_the_supervisor_with_exit_4_naming_the_owner() {
    if !is_root() {
        eprintln!("skipped: needs root to give a directory to another uid (the mode and symlink squats run)");
        return;
    }
    let s = Scene::new("owner");
    std::fs::create_dir(s.shm_dir()).unwrap();
    std::fs::set_permissions(s.shm_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(s.shm_dir(), Some(65534), Some(65534)).unwrap();
    let r = s.supervisor();
    assert_refused(&r, &s.shm_dir(), "belongs to uid 65534 (nobody)");
    assert!(
        r.stderr.contains(&format!("sudo rm -r {}", s.shm_dir().display())),
        "{r:?}"
    );
    eprintln!("{}", r.stderr.trim());
}
