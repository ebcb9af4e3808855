//! Reading one sample of a running (or stopped, or hung) pipeline, read-only: the stats page
//! through `StatsReader` (`O_RDONLY`, `PROT_READ`) and each ring's live depth through
//! `RingObserver` (read-only too). Nothing here needs write permission or a live supervisor.
//!
//! A ring that cannot be observed (missing, or not readable by this user) falls back to the
//! depth its consumer last wrote into the stats page's ring gauge, and says why.
//!
//! The counters are read twice, before and after the ring depths; when they did not change in
//! between, the sample is *settled*: counters and depths describe the same moment, so the
//! balance is exact. Up to [`SETTLE_ATTEMPTS`] samples are taken to get a settled one.

use std::time::Instant;

use records::names::segment;
use shm_ring::ring::RingObserver;
use shm_ring::stats::{StatsReader, StatsSnapshot};
use shm_ring::SegmentName;

/// Attempts at reading a settled sample before showing an unsettled one.
pub const SETTLE_ATTEMPTS: usize = 5;

/// One ring as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingView {
    /// The ring's name (`raw`, `readings`, `aggregates`).
    pub name: String,
    /// Records queued: live from the ring if it could be observed, else the page's gauge; `None`
    /// if neither is available.
    pub depth: Option<u64>,
    /// Slots.
    pub capacity: u64,
    /// True when `depth` is live from the ring's positions, false when it is the gauge's.
    pub live: bool,
    /// The depth the ring's consumer last wrote into the stats page, if the page has a gauge.
    pub gauge_depth: Option<u64>,
    /// Why the ring could not be observed, if it could not.
    pub problem: Option<String>,
}

/// Everything `telemetryctl stats` shows, read at (nearly) one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The pipeline's segment prefix.
    pub prefix: String,
    /// Wall clock when read, ms since the epoch.
    pub unix_ms: u64,
    /// Monotonic clock when read, for rates.
    pub at: Instant,
    /// The stats page.
    pub stats: StatsSnapshot,
    /// The rings, in pipeline order.
    pub rings: Vec<RingView>,
    /// True when the counters did not change while the ring depths were read.
    pub settled: bool,
}

impl Sample {
    /// The known ring depths, for [`crate::balance::compute`].
    pub fn ring_depths(&self) -> Vec<(&str, u64)> {
        self.rings
            .iter()
            .filter_map(|r| r.depth.map(|d| (r.name.as_str(), d)))
            .collect()
    }
}

/// The path of the stats page of pipeline `prefix`, for messages.
pub fn page_path(prefix: &str) -> String {
    format!("{}/{prefix}/{}", shm_ring::segment::SHM_DIR, segment::STATS)
}

/// The stats page's segment name.
pub fn page_name(prefix: &str) -> Result<SegmentName, shm_ring::Error> {
    SegmentName::new(prefix, segment::STATS)
}

/// Reads a sample (see the module docs) from a stats page opened read-only and checked
/// ([`crate::trust::open_page`]); rings are observed only if they have the page's owner.
pub fn take(prefix: &str, reader: &StatsReader) -> Sample {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let at = Instant::now();
        let unix_ms = stage_runtime::unix_ms();
        let stats = reader.snapshot();
        let rings = observe_rings(prefix, &stats, reader.owner_uid());
        let after = reader.snapshot();
        let settled = same_counters(&stats, &after);
        if settled || attempt >= SETTLE_ATTEMPTS {
            return Sample {
                prefix: prefix.to_owned(),
                unix_ms,
                at,
                stats,
                rings,
                settled,
            };
        }
    }
}

/// True when every stage has the same counters in both snapshots.
pub fn same_counters(a: &StatsSnapshot, b: &StatsSnapshot) -> bool {
    a.stages.len() == b.stages.len()
        && a.stages
            .iter()
            .zip(&b.stages)
            .all(|(x, y)| x.name == y.name && x.counters == y.counters)
}

/// The rings to show: the pipeline's three in order, then any other ring gauge of the page. A
/// ring with neither a gauge nor a segment is left out. A ring not owned by `owner` (the page's)
/// is not read.
fn observe_rings(prefix: &str, stats: &StatsSnapshot, owner: u32) -> Vec<RingView> {
    let mut names: Vec<&str> = vec![segment::RAW, segment::READINGS, segment::AGGREGATES];
    for g in &stats.rings {
        if !names.contains(&g.name.as_str()) {
            names.push(&g.name);
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let gauge = stats.rings.iter().find(|g| g.name == name);
            let observed = SegmentName::new(prefix, name)
                .and_then(|n| RingObserver::attach(&n))
                .and_then(|o| {
                    if o.owner_uid() != owner {
                        return Err(shm_ring::Error::ForeignOwner {
                            segment: o_name(prefix, name),
                            owner_uid: o.owner_uid(),
                            our_uid: owner,
                        });
                    }
                    Ok((o.depth()?, o.capacity()))
                });
            match observed {
                Ok((depth, capacity)) => Some(RingView {
                    name: name.to_owned(),
                    depth: Some(depth),
                    capacity,
                    live: true,
                    gauge_depth: gauge.map(|g| g.depth),
                    problem: None,
                }),
                Err(shm_ring::Error::NotFound { .. }) if gauge.is_none() => None,
                Err(e) => Some(RingView {
                    name: name.to_owned(),
                    depth: gauge.map(|g| g.depth),
                    capacity: gauge.map_or(0, |g| g.capacity),
                    live: false,
                    gauge_depth: gauge.map(|g| g.depth),
                    problem: Some(ring_problem(&e)),
                }),
            }
        })
        .collect()
}

fn o_name(prefix: &str, name: &str) -> String {
    format!("{}/{prefix}/{name}", shm_ring::segment::SHM_DIR)
}

/// Why a ring could not be observed, briefly.
fn ring_problem(e: &shm_ring::Error) -> String {
    use nix::errno::Errno;
    match e {
        shm_ring::Error::NotFound { .. } => "ring segment missing".into(),
        shm_ring::Error::ForeignOwner { owner_uid, .. } => {
            format!("ring owned by uid {owner_uid}, not the stats page's owner")
        }
        shm_ring::Error::Os {
            errno: Errno::EACCES | Errno::EPERM,
            ..
        } => "permission denied on the ring".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_stats::fixtures::stage;

    #[test]
    fn settled_means_same_counters() {
        let a = StatsSnapshot {
            stages: vec![stage("ingestd", &[("received", 1)])],
            rings: vec![],
        };
        let mut b = a.clone();
        b.stages[0].heartbeat_age_ms = Some(999);
        assert!(same_counters(&a, &b));
        b.stages[0].counters[0].1 = 2;
        assert!(!same_counters(&a, &b));
    }

    #[test]
    fn ring_problems_are_short() {
        assert_eq!(
            ring_problem(&shm_ring::Error::ForeignOwner {
                segment: "p.raw".into(),
                owner_uid: 0,
                our_uid: 65534
            }),
            "ring owned by uid 0, not the stats page's owner"
        );
    }
}
