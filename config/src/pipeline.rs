//! `[pipeline]` and `[wait]`: what every process shares.

use serde::{Deserialize, Serialize};

use crate::error::{bad, check_name, check_ring, ConfigError};

/// `[pipeline]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's directory in `/dev/shm` (`/dev/shm/<prefix>/raw`, `…/stats`, …). Two
    /// pipelines on one host need two prefixes.
    pub prefix: String,
    /// The user the pipeline runs as (the unit's `User=`). `telemetryctl` reads a stats page only
    /// if it belongs to this user, to root, or to the user running `telemetryctl`, so a page
    /// that another local user planted is refused. Nothing switches to this user.
    pub user: String,
    /// This pipeline's name, sent in every aggregate; pipelines in one shared-subscription group
    /// need distinct names.
    pub instance: String,
    /// Slots of the raw ring (ingestd → decoded); a power of two.
    pub raw_ring: u64,
    /// Slots of the readings ring (decoded → aggd); a power of two.
    pub readings_ring: u64,
    /// Slots of the aggregates ring (aggd → emitd); a power of two.
    pub aggregates_ring: u64,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            prefix: "telemetry".into(),
            user: "telemetry".into(),
            instance: "telemetry".into(),
            raw_ring: 65536,
            readings_ring: 65536,
            aggregates_ring: 16384,
        }
    }
}

/// `[wait]`: how an idle stage waits on its input ring (see `shm_ring::ring::WaitStrategy`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Wait {
    /// Length of one nap in µs: the latency a burst may wait so that it is taken as one batch.
    pub nap_us: u64,
    /// Naps before sleeping on the futex until woken.
    pub naps: u32,
}

impl Default for Wait {
    fn default() -> Self {
        Wait { nap_us: 2_000, naps: 1 }
    }
}

impl Pipeline {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_name("pipeline.prefix", &self.prefix)?;
        check_name("pipeline.user", &self.user)?;
        check_name("pipeline.instance", &self.instance)?;
        check_ring("pipeline.raw_ring", self.raw_ring)?;
        check_ring("pipeline.readings_ring", self.readings_ring)?;
        check_ring("pipeline.aggregates_ring", self.aggregates_ring)
    }
}

impl Wait {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.nap_us > 100_000 {
            return Err(bad("wait.nap_us", self.nap_us, "must be at most 100000 (100 ms)"));
        }
        Ok(())
    }
}
