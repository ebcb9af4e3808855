//! The pipeline's segments: the supervisor creates the three rings and the stats page in the
//! pipeline's directory `/dev/shm/<prefix>/`, or re-adopts them with everything queued in them
//! when a previous supervisor left them (killed, or restarted by systemd); it removes them after
//! a clean stop unless told to keep them. The directory is removed too only if this supervisor
//! made it: one made at boot (tmpfiles.d) stays, so that no other user can take the name while
//! the pipeline is stopped.

use std::time::{Duration, Instant};

use records::names::{segment, stage};
use records::{Aggregate, RawRecord, Reading};
use shm_ring::ring::{create, RingOptions};
use shm_ring::segment::{Created, IfExists};
use shm_ring::stats::create_stats_page;
use shm_ring::SegmentName;
use telemetry_config::Config;
use tracing::info;

fn name(config: &Config, n: &str) -> Result<SegmentName, shm_ring::Error> {
    SegmentName::new(&config.pipeline.prefix, n)
}

/// The rings' names and capacities, upstream first.
pub fn rings(config: &Config) -> [(&'static str, u64); 3] {
    let p = &config.pipeline;
    [
        (segment::RAW, p.raw_ring),
        (segment::READINGS, p.readings_ring),
        (segment::AGGREGATES, p.aggregates_ring),
    ]
}

/// What [`prepare`] found on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The prefix directory did not exist and was made by this supervisor.
    pub made_dir: bool,
}

/// Creates or re-adopts every segment, in the prefix directory (made mode 0750 if missing; one
/// of another user, a symlink, or one writable by group or others is refused). Waits up to
/// `patience` for roles still held by stages of a previous supervisor (they die with it, but not
/// instantly).
pub fn prepare(config: &Config, patience: Duration) -> Result<Prepared, shm_ring::Error> {
    let made_dir = shm_ring::segment::prepare_dir(&config.pipeline.prefix)?;
    let deadline = Instant::now() + patience;
    loop {
        match try_prepare(config) {
            Err(shm_ring::Error::RoleHeld { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map(|()| Prepared { made_dir }),
        }
    }
}

/// Exit code of a supervisor that found its directory or a segment in the hands of another
/// user, or in a state it must not trust (a symlink, writable by others): restarting cannot help.
pub const EXIT_SEGMENTS_UNTRUSTED: u8 = 4;
/// Exit code of a supervisor that could not reserve its segments' pages (`/dev/shm` full).
pub const EXIT_NO_SPACE: u8 = 5;

/// The exit code and a hint for an error of [`prepare`].
pub fn exit_for(err: &shm_ring::Error) -> (u8, String) {
    match err {
        shm_ring::Error::ForeignOwner { segment, owner_uid, .. } => (
            EXIT_SEGMENTS_UNTRUSTED,
            format!(
                "{segment} belongs to {}: if that user created it first, remove it (sudo rm -r {segment}) \
                 or set another [pipeline] prefix",
                user_name(*owner_uid)
            ),
        ),
        shm_ring::Error::Untrusted { path, owner_uid, .. } => (
            EXIT_SEGMENTS_UNTRUSTED,
            format!(
                "{path} (owner {}) is not safe to use: remove it (sudo rm -r {path}; a symlink is removed, \
                 not followed) or set another [pipeline] prefix",
                owner_uid.map_or_else(|| "unknown".to_owned(), user_name)
            ),
        ),
        shm_ring::Error::NoSpace { .. } => (
            EXIT_NO_SPACE,
            "free space in /dev/shm (df -h /dev/shm), or make [pipeline] rings or aggd.max_keys smaller".to_owned(),
        ),
        _ => (1, String::new()),
    }
}

/// `uid N (name)`, or `uid N` when the name is unknown.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn try_prepare(config: &Config) -> Result<(), shm_ring::Error> {
    let [raw, readings, aggregates] = rings(config);
    let adopt = |cap| RingOptions::new(cap).if_exists(IfExists::Adopt);
    let outcomes = [
        (raw.0, create::<RawRecord>(&name(config, raw.0)?, &adopt(raw.1))?),
        (
            readings.0,
            create::<Reading>(&name(config, readings.0)?, &adopt(readings.1))?,
        ),
        (
            aggregates.0,
            create::<Aggregate>(&name(config, aggregates.0)?, &adopt(aggregates.1))?,
        ),
    ];
    for (ring, outcome) in outcomes {
        match outcome {
            Created::New => info!(ring, "created"),
            Created::Adopted { depth } => info!(ring, depth, "re-adopted with the records queued in it"),
            Created::Replaced { reason } => info!(ring, %reason, "replaced an unusable segment"),
        }
    }
    let mut stages: Vec<&str> = stage::ALL.to_vec();
    stages.push(stage::SUPERVISOR);
    create_stats_page(&name(config, segment::STATS)?, &stages, &rings(config))?;
    Ok(())
}

/// Removes every segment of the pipeline (after a clean stop), and its directory if this
/// supervisor made it.
pub fn remove(config: &Config, prepared: Prepared) -> Result<usize, shm_ring::Error> {
    if prepared.made_dir {
        shm_ring::segment::remove_all(&config.pipeline.prefix)
    } else {
        shm_ring::segment::remove_segments(&config.pipeline.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_squat_is_exit_4_and_no_space_exit_5_each_with_what_to_do() {
        let (code, hint) = exit_for(&shm_ring::Error::ForeignOwner {
            segment: "/dev/shm/telemetry".into(),
            owner_uid: 0,
            our_uid: 998,
        });
        assert_eq!(code, EXIT_SEGMENTS_UNTRUSTED);
        assert!(hint.starts_with("/dev/shm/telemetry belongs to uid 0 (root)"), "{hint}");
        assert!(hint.contains("sudo rm -r /dev/shm/telemetry"), "{hint}");
        let (code, hint) = exit_for(&shm_ring::Error::Untrusted {
            path: "/dev/shm/telemetry".into(),
            owner_uid: None,
            mode: None,
            reason: "is a symbolic link".into(),
        });
        assert_eq!(code, EXIT_SEGMENTS_UNTRUSTED);
        assert!(
            hint.contains("(owner unknown)") && hint.contains("a symlink is removed"),
            "{hint}"
        );
        let (code, hint) = exit_for(&shm_ring::Error::NoSpace {
            segment: "/dev/shm/telemetry/windows".into(),
            bytes: 1 << 30,
            errno: nix::errno::Errno::ENOSPC,
        });
        assert_eq!(code, EXIT_NO_SPACE);
        assert!(hint.contains("df -h /dev/shm"), "{hint}");
        assert_eq!(exit_for(&shm_ring::Error::NotFound { segment: "x".into() }).0, 1);
    }
}
