//! Conservation: is every message accounted for? A pure computation over one snapshot of the
//! stats page and the ring depths, shown by `telemetryctl stats` as `BALANCE: ok` or
//! `BALANCE: off by N at <where>`.
//!
//! # What is checked
//!
//! Within each stage (the table in `records::names`), everything taken in ended at exactly one
//! outcome counter:
//!
//! | stage | check |
//! |---|---|
//! | ingestd | `received = forwarded + dropped.* + error.*` |
//! | decoded | `received = forwarded + dropped.* + error.*` |
//! | aggd | `received = forwarded + error.*` |
//! | emitd | `received = forwarded + dropped.* + error.*` |
//!
//! (`dropped.*` is the sum of every `dropped.<reason>` counter, `error.*` likewise. The names
//! table lists only `dropped.*` for ingestd and emitd and only `error.*` for decoded; a stage
//! keeping the other kind too is still balanced. aggd's `dropped.aggregates_ring_full` counts
//! *aggregates*, not the readings that `received` counts, so it is not part of aggd's check.)
//!
//! Between stages, what one stage forwarded was either received by the next or still sits in
//! the ring between them:
//!
//! | link | check |
//! |---|---|
//! | ingestd->decoded | `ingestd.forwarded = decoded.received + raw depth` |
//! | decoded->aggd | `decoded.forwarded = aggd.received + readings depth` |
//! | aggd->emitd | `aggd.aggregates.emitted = emitd.received + aggregates depth` (aggd's `forwarded` counts readings folded into windows) |
//!
//! ingestd's HTTP requests (when it listens) have an equation of their own, in requests, not
//! readings (a refused request's readings never became records; an accepted one's are in
//! ingestd's `received` and `forwarded`):
//!
//! | where | check |
//! |---|---|
//! | ingestd http | `http.requests = http.accepted + http.rejected.*` |
//!
//! A poison record the supervisor neutralised stays in its ring as an empty record, which the
//! stage then counts as bad input, so it needs no term of its own.
//!
//! `off_by` is left minus right: positive means messages are missing (taken in but not
//! accounted for), negative means more is accounted for than was taken in.
//!
//! # Exactness
//!
//! One stage's counters are mutually consistent (the stats page's seqlock), but different stages
//! and the ring depths are read at slightly different moments, and a stage holds a batch in
//! flight between moving records and publishing its counters. A running pipeline can therefore
//! be off by what is in flight; a stopped or idle one balances exactly.

use pipeline_stats::counters::{sum_prefix, value, DROPPED_PREFIX, ERROR_PREFIX};
use records::names::{counter, http, segment, stage};
use shm_ring::stats::{StageSnapshot, StatsSnapshot};

/// Whether a check is inside one stage or between two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// `received = forwarded + outcomes` of one stage.
    Stage,
    /// `upstream.forwarded = downstream.received + ring depth`.
    Link,
}

impl CheckKind {
    /// `"stage"` or `"link"`, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Stage => "stage",
            CheckKind::Link => "link",
        }
    }
}

/// One named value on the right-hand side of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// For example `forwarded`, `dropped.*`, `decoded.received`, `raw depth`.
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// One equation and how far off it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Stage or link.
    pub kind: CheckKind,
    /// Where: a stage name (`decoded`) or a link (`ingestd->decoded`).
    pub at: String,
    /// Name of the left-hand side, for example `received` or `ingestd.forwarded`.
    pub left_name: String,
    /// Value of the left-hand side.
    pub left: u64,
    /// The right-hand side, summed.
    pub right: Vec<Term>,
    /// `left - sum(right)`.
    pub off_by: i64,
    /// Anything that qualifies the result.
    pub note: Option<String>,
}

impl Check {
    /// Sum of the right-hand side.
    pub fn right_total(&self) -> u64 {
        self.right.iter().fold(0u64, |a, t| a.saturating_add(t.value))
    }

    /// True when both sides are equal.
    pub fn ok(&self) -> bool {
        self.off_by == 0
    }

    /// The equation with its values, for example
    /// `received 10 = forwarded 7 + error.* 2 (1 not accounted for)`.
    pub fn describe(&self) -> String {
        let right: Vec<String> = self.right.iter().map(|t| format!("{} {}", t.name, t.value)).collect();
        let mut s = format!("{} {} = {}", self.left_name, self.left, right.join(" + "));
        match self.off_by {
            0 => {}
            n if n > 0 => s.push_str(&format!(" ({n} not accounted for)")),
            n => s.push_str(&format!(" ({} more accounted for than taken in)", n.unsigned_abs())),
        }
        if let Some(note) = &self.note {
            s.push_str(&format!("; {note}"));
        }
        s
    }
}

/// A check that could not be made, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unchecked {
    /// Where (as in [`Check::at`]).
    pub at: String,
    /// Why not.
    pub reason: String,
}

/// Every check of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// The checks made, stages first (upstream first), then links.
    pub checks: Vec<Check>,
    /// The checks that could not be made.
    pub unchecked: Vec<Unchecked>,
}

impl Balance {
    /// True when every check that could be made holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    /// `BALANCE: ok`, or `BALANCE: off by N at X` for every failing check (joined by `; `).
    pub fn summary(&self) -> String {
        let off: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok())
            .map(|c| format!("off by {} at {}", c.off_by.unsigned_abs(), c.at))
            .collect();
        if off.is_empty() {
            "BALANCE: ok".to_owned()
        } else {
            format!("BALANCE: {}", off.join("; "))
        }
    }
}

/// Which outcome counters close each stage's equation (see the module docs).
const STAGE_OUTCOMES: [(&str, &[&str]); 4] = [
    (stage::INGESTD, &[DROPPED_PREFIX, ERROR_PREFIX]),
    (stage::DECODED, &[DROPPED_PREFIX, ERROR_PREFIX]),
    (stage::AGGD, &[ERROR_PREFIX]),
    (stage::EMITD, &[DROPPED_PREFIX, ERROR_PREFIX]),
];

/// A link between two stages through a ring: `(upstream, its counter of records written into
/// the ring, ring, downstream)`.
const LINKS: [(&str, &str, &str, &str); 3] = [
    (stage::INGESTD, counter::FORWARDED, segment::RAW, stage::DECODED),
    (stage::DECODED, counter::FORWARDED, segment::READINGS, stage::AGGD),
    (
        stage::AGGD,
        counter::AGGREGATES_EMITTED,
        segment::AGGREGATES,
        stage::EMITD,
    ),
];

fn off_by(left: u64, right: u64) -> i64 {
    let d = i128::from(left) - i128::from(right);
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn inconsistent_note(s: &StageSnapshot) -> Option<String> {
    (!s.consistent).then(|| {
        format!(
            "{}'s counters may be from different batches (it died inside a counter update and has not restarted)",
            s.name
        )
    })
}

/// ingestd's HTTP requests, when it has counted any (see the module docs).
fn http_check(s: &StageSnapshot) -> Option<Check> {
    let left = s.counter(http::REQUESTS)?;
    let right = vec![
        Term {
            name: http::ACCEPTED.into(),
            value: value(s, http::ACCEPTED),
        },
        Term {
            name: format!("{}*", http::REJECTED_PREFIX),
            value: sum_prefix(s, http::REJECTED_PREFIX),
        },
    ];
    let mut check = Check {
        kind: CheckKind::Stage,
        at: format!("{} http", stage::INGESTD),
        left_name: http::REQUESTS.into(),
        left,
        right,
        off_by: 0,
        note: inconsistent_note(s),
    };
    check.off_by = off_by(left, check.right_total());
    Some(check)
}

/// Checks every stage and link of `stats`, with `ring_depths` giving the number of records in
/// each ring by name (a ring missing from it makes its link unchecked).
pub fn compute(stats: &StatsSnapshot, ring_depths: &[(&str, u64)]) -> Balance {
    let mut checks = Vec::new();
    let mut unchecked = Vec::new();

    for (name, prefixes) in STAGE_OUTCOMES {
        let Some(s) = stats.stage(name) else {
            unchecked.push(Unchecked {
                at: name.to_owned(),
                reason: "no slot for it in the stats page".into(),
            });
            continue;
        };
        let mut right = vec![Term {
            name: counter::FORWARDED.into(),
            value: value(s, counter::FORWARDED),
        }];
        right.extend(prefixes.iter().map(|p| Term {
            name: format!("{p}*"),
            value: sum_prefix(s, p),
        }));
        let left = value(s, counter::RECEIVED);
        let mut check = Check {
            kind: CheckKind::Stage,
            at: name.to_owned(),
            left_name: counter::RECEIVED.into(),
            left,
            right,
            off_by: 0,
            note: inconsistent_note(s),
        };
        check.off_by = off_by(left, check.right_total());
        checks.push(check);
    }

    if let Some(check) = stats.stage(stage::INGESTD).and_then(http_check) {
        checks.push(check);
    }

    for (up, up_counter, ring, down) in LINKS {
        let at = format!("{up}->{down}");
        let (Some(u), Some(d)) = (stats.stage(up), stats.stage(down)) else {
            unchecked.push(Unchecked {
                at,
                reason: "a stage has no slot in the stats page".into(),
            });
            continue;
        };
        let Some(depth) = ring_depths.iter().find(|(n, _)| *n == ring).map(|(_, d)| *d) else {
            unchecked.push(Unchecked {
                at,
                reason: format!("the depth of the {ring} ring is unknown"),
            });
            continue;
        };
        let left = value(u, up_counter);
        let mut check = Check {
            kind: CheckKind::Link,
            at,
            left_name: format!("{up}.{up_counter}"),
            left,
            right: vec![
                Term {
                    name: format!("{down}.{}", counter::RECEIVED),
                    value: value(d, counter::RECEIVED),
                },
                Term {
                    name: format!("{ring} depth"),
                    value: depth,
                },
            ],
            off_by: 0,
            note: inconsistent_note(u).or_else(|| inconsistent_note(d)),
        };
        check.off_by = off_by(left, check.right_total());
        checks.push(check);
    }
    Balance { checks, unchecked }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_stats::fixtures::stage as snap;

    fn pipeline(decoded_received: u64) -> StatsSnapshot {
        StatsSnapshot {
            stages: vec![
                snap(
                    "ingestd",
                    &[
                        ("received", 100),
                        ("forwarded", 90),
                        ("dropped.ring_full", 7),
                        ("dropped.topic_too_long", 3),
                    ],
                ),
                snap(
                    "decoded",
                    &[
                        ("received", decoded_received),
                        ("forwarded", 80),
                        ("error.malformed", 5),
                    ],
                ),
                snap(
                    "aggd",
                    &[
                        ("received", 78),
                        ("forwarded", 77),
                        ("error.key_table_full", 1),
                        ("dropped.aggregates_ring_full", 9),
                        ("aggregates.emitted", 24),
                    ],
                ),
                snap(
                    "emitd",
                    &[("received", 20), ("forwarded", 18), ("dropped.unsafe_subject", 2)],
                ),
            ],
            rings: vec![],
        }
    }

    const DEPTHS: [(&str, u64); 3] = [("raw", 5), ("readings", 2), ("aggregates", 4)];

    #[test]
    fn a_balanced_pipeline_is_ok() {
        let b = compute(&pipeline(85), &DEPTHS);
        assert!(b.ok(), "{b:#?}");
        assert_eq!(b.summary(), "BALANCE: ok");
        assert_eq!(b.checks.len(), 7);
        let ingestd = &b.checks[0];
        assert_eq!(
            ingestd.describe(),
            "received 100 = forwarded 90 + dropped.* 10 + error.* 0"
        );
        // aggd's dropped.* (aggregates) is not part of its equation.
        assert_eq!(b.checks[2].describe(), "received 78 = forwarded 77 + error.* 1");
        let link = &b.checks[4];
        assert_eq!(link.at, "ingestd->decoded");
        assert_eq!(
            link.describe(),
            "ingestd.forwarded 90 = decoded.received 85 + raw depth 5"
        );
        assert!(b.unchecked.is_empty());
        assert_eq!(
            b.checks[6].describe(),
            "aggd.aggregates.emitted 24 = emitd.received 20 + aggregates depth 4"
        );
    }

    #[test]
    fn an_imbalance_names_the_stage_and_the_amount() {
        // decoded took in 86 but accounts for 85; and the raw link now has one too many.
        let b = compute(&pipeline(86), &DEPTHS);
        assert!(!b.ok());
        assert_eq!(
            b.summary(),
            "BALANCE: off by 1 at decoded; off by 1 at ingestd->decoded"
        );
        let decoded = b.checks.iter().find(|c| c.at == "decoded").unwrap();
        assert_eq!(decoded.off_by, 1);
        assert!(
            decoded.describe().ends_with("(1 not accounted for)"),
            "{}",
            decoded.describe()
        );
        let link = b.checks.iter().find(|c| c.at == "ingestd->decoded").unwrap();
        assert_eq!(link.off_by, -1);
        assert!(link.describe().contains("1 more accounted for"), "{}", link.describe());
    }

    #[test]
    fn missing_pieces_are_unchecked_not_guessed() {
        let mut stats = pipeline(85);
        stats.stages.retain(|s| s.name != "aggd");
        let b = compute(&stats, &[("raw", 5)]);
        let at: Vec<&str> = b.unchecked.iter().map(|u| u.at.as_str()).collect();
        assert_eq!(at, ["aggd", "decoded->aggd", "aggd->emitd"]);
        assert!(b.ok());
    }

    #[test]
    fn a_stage_that_never_counted_balances_at_zero() {
        let stats = StatsSnapshot {
            stages: ["ingestd", "decoded", "aggd", "emitd"]
                .iter()
                .map(|n| snap(n, &[]))
                .collect(),
            rings: vec![],
        };
        let b = compute(&stats, &[("raw", 0), ("readings", 0)]);
        assert!(b.ok());
        assert_eq!(b.checks.len(), 6);
    }

    #[test]
    fn notes_explain_inconsistent_counters() {
        let mut stats = pipeline(80);
        stats.stages[1].consistent = false;
        let b = compute(&stats, &DEPTHS);
        let decoded = b.checks.iter().find(|c| c.at == "decoded").unwrap();
        assert!(decoded.note.as_deref().unwrap().contains("different batches"));
        let link = b.checks.iter().find(|c| c.at == "ingestd->decoded").unwrap();
        assert_eq!(link.off_by, 5);
        assert!(link.note.as_deref().unwrap().contains("different batches"));
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let stats = StatsSnapshot {
            stages: vec![snap(
                "ingestd",
                &[("received", 0), ("forwarded", u64::MAX), ("dropped.x", u64::MAX)],
            )],
            rings: vec![],
        };
        let b = compute(&stats, &[]);
        assert_eq!(b.checks[0].off_by, i64::MIN);
    }

    #[test]
    fn http_requests_balance_when_ingestd_listens() {
        let mut stats = pipeline(85);
        assert!(
            compute(&stats, &DEPTHS).checks.iter().all(|c| c.at != "ingestd http"),
            "no HTTP, no check"
        );
        stats.stages[0] = snap(
            "ingestd",
            &[
                ("received", 100),
                ("forwarded", 90),
                ("dropped.ring_full", 10),
                ("http.requests", 9),
                ("http.accepted", 5),
                ("http.rejected.ring_full", 3),
            ],
        );
        let b = compute(&stats, &DEPTHS);
        let http = b.checks.iter().find(|c| c.at == "ingestd http").unwrap();
        assert_eq!(
            http.describe(),
            "http.requests 9 = http.accepted 5 + http.rejected.* 3 (1 not accounted for)"
        );
        assert_eq!(b.summary(), "BALANCE: off by 1 at ingestd http");
    }
}
