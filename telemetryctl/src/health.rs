//! `telemetryctl status`: is every stage healthy? A pure evaluation of one snapshot.
//!
//! A stage (ingestd, decoded, aggd, emitd) is healthy when the stats page has its slot, its
//! state is `running`, and its heartbeat is younger than the limit. The limit is the
//! configuration's `supervisor.hang_timeout_ms` (default 10 s): past it the supervisor itself
//! declares the stage hung and restarts it, so an older heartbeat means the stage is hung and the
//! supervisor is not acting on it. `--heartbeat-timeout-ms` overrides it.
//!
//! The supervisor's own slot is reported as a note but does not decide the exit code, and so is
//! a stage that the supervisor restarted as hung: the note says how often and why it last was
//! (`heartbeat`, `start_timeout` or `no_progress`), whether the stage is healthy now or not.

use pipeline_stats::lifecycle::{ExitStatus, StageLifecycle};
use records::names::{gauge, stage};
use shm_ring::stats::{StageState, StatsSnapshot};

use crate::format;

/// One unhealthy stage and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The stage.
    pub stage: String,
    /// One line, for example `state exited (last exit: signal 9 (SIGKILL))`.
    pub reason: String,
}

/// Why one stage is unhealthy, or `None` if it is healthy.
fn problem_of(stats: &StatsSnapshot, name: &str, max_heartbeat_age_ms: u64) -> Option<String> {
    let Some(s) = stats.stage(name) else {
        return Some("no slot for it in the stats page".into());
    };
    let life = StageLifecycle::of(s);
    if s.state != Some(StageState::Running) {
        let mut reason = format!("state {}", format::state(s.state));
        if life.last_exit != ExitStatus::None {
            reason.push_str(&format!(" (last exit: {})", format::exit_status(life.last_exit)));
        }
        if life.restarts > 0 {
            reason.push_str(&format!(", {} restart(s)", life.restarts));
        }
        return Some(reason);
    }
    match s.heartbeat_age_ms {
        None => Some("running but has never sent a heartbeat".into()),
        Some(age) if age >= max_heartbeat_age_ms => Some(format!(
            "heartbeat {} old (limit {}): hung, or the supervisor is not restarting it",
            format::duration_ms(age),
            format::duration_ms(max_heartbeat_age_ms)
        )),
        Some(_) => disconnected(s),
    }
}

/// A running stage whose server does not accept its connection on some wire (its
/// `gauge.connected.<wire>` is 0), with the cause of the last failed attempt.
fn disconnected(s: &shm_ring::stats::StageSnapshot) -> Option<String> {
    let wires: Vec<String> = s
        .counters
        .iter()
        .filter_map(|(name, v)| {
            let wire = name.strip_prefix(gauge::CONNECTED_PREFIX)?;
            (*v == 0).then(|| {
                let failure = s
                    .counter(&format!("{}{wire}", gauge::FAILURE_PREFIX))
                    .unwrap_or(gauge::failure::NONE);
                if failure == gauge::failure::NONE {
                    format!("not connected to {wire} (connecting)")
                } else {
                    format!(
                        "not connected to {wire}: the last attempt failed ({}; its log says why)",
                        gauge::failure::describe(failure)
                    )
                }
            })
        })
        .collect();
    (!wires.is_empty()).then(|| format!("running but {}", wires.join(", ")))
}

/// The unhealthy stages among ingestd, decoded, aggd and emitd, upstream first.
pub fn evaluate(stats: &StatsSnapshot, max_heartbeat_age_ms: u64) -> Vec<Problem> {
    stage::ALL
        .iter()
        .filter_map(|name| {
            problem_of(stats, name, max_heartbeat_age_ms).map(|reason| Problem {
                stage: (*name).to_owned(),
                reason,
            })
        })
        .collect()
}

/// One note per stage (ingestd, decoded, aggd, emitd) that was ever restarted as hung: how often,
/// and why the last time.
pub fn hang_notes(stats: &StatsSnapshot) -> Vec<String> {
    stage::ALL
        .iter()
        .filter_map(|name| {
            let life = StageLifecycle::of(stats.stage(name)?);
            (life.hangs > 0).then(|| {
                let why = life.last_hang.map_or("reason unknown".to_owned(), |h| {
                    format!("{}: {}", h.as_str(), h.describe())
                });
                format!("note: {name}: restarted as hung {} time(s); last: {why}", life.hangs)
            })
        })
        .collect()
}

/// A note about the supervisor's slot if it is present and not healthy (it does not change the
/// exit code: the stages run without it, but nothing restarts them).
pub fn supervisor_note(stats: &StatsSnapshot, max_heartbeat_age_ms: u64) -> Option<String> {
    stats.stage(stage::SUPERVISOR)?;
    problem_of(stats, stage::SUPERVISOR, max_heartbeat_age_ms)
        .map(|r| format!("note: supervisor: {r} (not counted in the exit code; stages are not restarted meanwhile)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_stats::fixtures::stage as snap;
    use pipeline_stats::lifecycle::HangReason;

    fn all_running() -> StatsSnapshot {
        StatsSnapshot {
            stages: ["ingestd", "decoded", "aggd", "emitd", "supervisor"]
                .iter()
                .map(|n| snap(n, &[]))
                .collect(),
            rings: vec![],
        }
    }

    #[test]
    fn all_running_with_fresh_heartbeats_is_healthy() {
        assert!(evaluate(&all_running(), 10_000).is_empty());
        assert_eq!(supervisor_note(&all_running(), 10_000), None);
    }

    #[test]
    fn each_problem_is_one_line_per_stage() {
        let mut stats = all_running();
        stats.stages[1].state = Some(StageState::Exited);
        StageLifecycle {
            restarts: 2,
            hangs: 0,
            last_exit: ExitStatus::Signal(9),
            last_hang: None,
        }
        .write_to(&mut stats.stages[1]);
        stats.stages[2].heartbeat_age_ms = Some(12_300);
        stats.stages[3].heartbeat_age_ms = None;
        stats.stages.remove(0);
        let p = evaluate(&stats, 10_000);
        let lines: Vec<String> = p.iter().map(|p| format!("{}: {}", p.stage, p.reason)).collect();
        assert_eq!(
            lines,
            [
                "ingestd: no slot for it in the stats page",
                "decoded: state exited (last exit: signal 9 (SIGKILL)), 2 restart(s)",
                "aggd: heartbeat 12.3s old (limit 10.0s): hung, or the supervisor is not restarting it",
                "emitd: running but has never sent a heartbeat",
            ]
        );
    }

    #[test]
    fn a_running_stage_that_is_not_connected_says_which_wire_and_why() {
        let mut stats = all_running();
        stats.stages[0].counters.push(("gauge.connected.mqtt".into(), 1));
        assert!(evaluate(&stats, 10_000).is_empty());
        stats.stages[0].counters[..].last_mut().unwrap().1 = 0;
        stats.stages[0]
            .counters
            .push(("gauge.failure.mqtt".into(), gauge::failure::TLS));
        let problems = evaluate(&stats, 10_000);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].reason,
            "running but not connected to mqtt: the last attempt failed (tls; its log says why)"
        );
        stats.stages[0].counters.pop();
        assert_eq!(
            evaluate(&stats, 10_000)[0].reason,
            "running but not connected to mqtt (connecting)"
        );
    }

    #[test]
    fn a_stage_restarted_as_hung_gets_a_note_with_the_last_reason() {
        let mut stats = all_running();
        assert!(hang_notes(&stats).is_empty());
        StageLifecycle {
            restarts: 3,
            hangs: 2,
            last_exit: ExitStatus::Signal(9),
            last_hang: Some(HangReason::NoProgress),
        }
        .write_to(&mut stats.stages[1]);
        assert_eq!(
            hang_notes(&stats),
            [
                "note: decoded: restarted as hung 2 time(s); last: no_progress: its input was pending but \
              its position did not move for hang_timeout_ms"
            ]
        );
        assert!(evaluate(&stats, 10_000).is_empty(), "a note, not a problem");
    }

    #[test]
    fn an_unhealthy_supervisor_is_a_note() {
        let mut stats = all_running();
        stats.stages[4].state = Some(StageState::Idle);
        assert!(evaluate(&stats, 10_000).is_empty());
        assert!(supervisor_note(&stats, 10_000)
            .unwrap()
            .contains("supervisor: state idle"));
        stats.stages.pop();
        assert_eq!(supervisor_note(&stats, 10_000), None);
    }
}
