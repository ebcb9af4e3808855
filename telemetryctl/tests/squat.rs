//! Another local user got to `/dev/shm` first. `telemetryctl` refuses a planted stats page (wrong
//! owner or mode, a symlink, truncated) with exit 8 (or 5 for a truncated one) and a clear
//! message, never reading it and never crashing. (The supervisor's refusal of a squatted prefix
//! directory is in `supervisor/tests/squat.rs`.)
//!
//! Squats another user would make need root to build here (a page given to `nobody`); the ones
//! this user can make itself (modes, symlinks) run everywhere.

mod common;
use common::run::{run, Run};

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use records::names::{segment, stage};
use shm_ring::segment::{PrefixGuard, SHM_DIR};
use shm_ring::stats::create_stats_page;
use shm_ring::SegmentName;
use test_brokers::TempDir;

fn is_root() -> bool {
    nix::unistd::geteuid().as_raw() == 0
}

/// One test's prefix (its directory removed on drop, whatever is in its place) and config.
struct Scene {
    prefix: String,
    _guard: PrefixGuard,
    dir: TempDir,
}

impl Scene {
    fn new(test: &str, user: &str) -> Scene {
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
            format!("[pipeline]\nprefix = \"{}\"\nuser = \"{user}\"\n", s.prefix),
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

    fn page(&self) -> SegmentName {
        SegmentName::new(&self.prefix, segment::STATS).unwrap()
    }

    /// A stats page of the right layout, made by this user (as the supervisor would).
    fn make_page(&self) {
        let mut stages: Vec<&str> = stage::ALL.to_vec();
        stages.push(stage::SUPERVISOR);
        create_stats_page(&self.page(), &stages, &[(segment::RAW, 16)]).unwrap();
    }

    fn ctl(&self, args: &[&str]) -> Run {
        run(Command::new(env!("CARGO_BIN_EXE_telemetryctl"))
            .arg("--config")
            .arg(self.config())
            .args(args))
    }
}

#[test]
fn telemetryctl_refuses_a_page_others_can_write_or_reach_through_a_symlink() {
    let s = Scene::new("ctl-mode", "telemetry");
    s.make_page();
    std::fs::set_permissions(s.page().path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["stats"][..], &["status"]] {
        let r = s.ctl(args);
        assert_eq!(r.code, 8, "{args:?}: {r:?}");
        assert!(r.stderr.contains("is writable by its group or by others"), "{r:?}");
        assert!(r.stderr.contains("planted"), "{r:?}");
        assert!(r.stdout.is_empty(), "nothing read: {r:?}");
    }
    std::fs::set_permissions(s.page().path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(
        s.ctl(&["status"]).code,
        1,
        "the same page with its mode back is read (idle: unhealthy)"
    );

    // Another pipeline's directory reached through a symlink in this prefix's place.
    let t = Scene::new("ctl-link", "telemetry");
    std::os::unix::fs::symlink(s.shm_dir(), t.shm_dir()).unwrap();
    let r = t.ctl(&["status"]);
    assert_eq!(r.code, 8, "{r:?}");
    assert!(r.stderr.contains("is a symbolic link"), "{r:?}");
}

#[test]
fn telemetryctl_refuses_a_truncated_page_without_a_crash() {
    let s = Scene::new("ctl-short", "telemetry");
    s.make_page();
    for len in [100, 4096] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(s.page().path())
            .unwrap()
            .set_len(len)
            .unwrap();
        let r = s.ctl(&["stats"]);
        assert_eq!(r.code, 5, "{len}: {r:?}");
        assert!(r.stderr.contains("is corrupt or not a stats page"), "{len}: {r:?}");
    }
}

#[test]
fn telemetryctl_believes_only_the_pipelines_user_root_or_itself() {
    if !is_root() {
        eprintln!("skipped: needs root to make a page another uid owns (the owner rule has a unit test)");
        return;
    }
    // A page and directory of nobody: a consistent squat, refused unless nobody is the pipeline's user.
    let s = Scene::new("ctl-owner", "no-such-user-here");
    s.make_page();
    std::os::unix::fs::chown(s.page().path(), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(s.shm_dir(), Some(65534), Some(65534)).unwrap();
    let r = s.ctl(&["status"]);
    assert_eq!(r.code, 8, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "refusing {}: it belongs to uid 65534 (nobody), not to the pipeline's user no-such-user-here",
            s.page().path().display()
        )),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");

    std::fs::write(
        s.config(),
        format!("[pipeline]\nprefix = \"{}\"\nuser = \"nobody\"\n", s.prefix),
    )
    .unwrap();
    let r = s.ctl(&["stats", "--json"]);
    assert_eq!(r.code, 0, "the pipeline's user's page is read: {r:?}");
}
