//! Child specs: what the supervisor starts, in which order, and which rings each stage reads
//! and writes.

use std::path::{Path, PathBuf};

use records::names::{segment, stage};
use telemetry_config::Config;

/// One supervised stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSpec {
    /// The stage's name (its stats slot and binary).
    pub name: &'static str,
    /// The executable.
    pub program: PathBuf,
    /// The ring it consumes, if any (for poison detection, progress and ordered shutdown).
    pub input: Option<&'static str>,
    /// The ring it produces into, if its output is a ring (emitd's is NATS).
    pub output: Option<&'static str>,
}

impl ChildSpec {
    /// Whether a stalled input position means a hang: only for a stage between two rings
    /// (decoded, aggd), which must move whenever its input has records and its output has room.
    /// Not emitd: in JetStream mode it holds its position on purpose while NATS is away. Not
    /// ingestd: it has no input ring (its heartbeat and start timeout still apply).
    pub fn must_keep_moving(&self) -> bool {
        self.input.is_some() && self.output.is_some()
    }
}

/// The four stages in start order: consumers first (emitd, aggd, decoded, ingestd), so that
/// nothing is produced into a ring before its consumer is up. Stop order is the reverse.
///
/// Binaries are looked up in `supervisor.bin_dir`, or next to `own_exe` when that is empty.
pub fn child_specs(config: &Config, own_exe: &Path) -> Vec<ChildSpec> {
    let dir = if config.supervisor.bin_dir.is_empty() {
        own_exe.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        PathBuf::from(&config.supervisor.bin_dir)
    };
    [
        (stage::EMITD, Some(segment::AGGREGATES), None),
        (stage::AGGD, Some(segment::READINGS), Some(segment::AGGREGATES)),
        (stage::DECODED, Some(segment::RAW), Some(segment::READINGS)),
        (stage::INGESTD, None, Some(segment::RAW)),
    ]
    .into_iter()
    .map(|(name, input, output)| ChildSpec {
        name,
        program: dir.join(name),
        input,
        output,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_start_first_and_binaries_sit_next_to_the_supervisor() {
        let specs = child_specs(&Config::default(), Path::new("/opt/telemetry/bin/telemetry-supervisor"));
        let names: Vec<_> = specs.iter().map(|s| s.name).collect();
        assert_eq!(names, ["emitd", "aggd", "decoded", "ingestd"]);
        assert_eq!(specs[3].program, Path::new("/opt/telemetry/bin/ingestd"));
        let moving: Vec<_> = specs.iter().filter(|s| s.must_keep_moving()).map(|s| s.name).collect();
        assert_eq!(
            moving,
            ["aggd", "decoded"],
            "not emitd (JetStream holds), not ingestd (no input)"
        );
        let mut c = Config::default();
        c.supervisor.bin_dir = "/usr/lib/telemetry".into();
        assert_eq!(
            child_specs(&c, Path::new("/x/y"))[0].program,
            Path::new("/usr/lib/telemetry/emitd")
        );
    }
}
