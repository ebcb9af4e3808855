//! Human-readable renderings shared by the table and `status`: durations, exit statuses, states,
//! UTC timestamps, rates, and left/right-aligned text columns.

use pipeline_stats::lifecycle::ExitStatus;
use shm_ring::stats::StageState;

/// A duration in milliseconds, compactly: `250ms`, `12.3s`, `5m02s`, `1h02m`, `3d04h`.
pub fn duration_ms(ms: u64) -> String {
    const S: u64 = 1_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;
    const D: u64 = 24 * H;
    match ms {
        0..S => format!("{ms}ms"),
        S..M => format!("{:.1}s", ms as f64 / 1000.0),
        M..H => format!("{}m{:02}s", ms / M, ms % M / S),
        H..D => format!("{}h{:02}m", ms / H, ms % H / M),
        _ => format!("{}d{:02}h", ms / D, ms % D / H),
    }
}

/// How a process ended: `-`, `code 1`, `signal 9 (SIGKILL)`.
pub fn exit_status(e: ExitStatus) -> String {
    match e {
        ExitStatus::None => "-".into(),
        ExitStatus::Code(c) => format!("code {c}"),
        ExitStatus::Signal(s) => match nix::sys::signal::Signal::try_from(s) {
            Ok(sig) => format!("signal {s} ({})", sig.as_str()),
            Err(_) => format!("signal {s}"),
        },
    }
}

/// A state's name, `unknown` for a value this version does not know.
pub fn state(s: Option<StageState>) -> &'static str {
    s.map_or("unknown", StageState::as_str)
}

/// Milliseconds since the epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A rate per second with a sensible precision: `0/s`, `0.5/s`, `12.3/s`, `4512/s`.
pub fn rate(per_second: f64) -> String {
    if per_second == 0.0 {
        "0/s".into()
    } else if per_second < 100.0 {
        format!("{per_second:.1}/s")
    } else {
        format!("{per_second:.0}/s")
    }
}

/// Column alignment for [`columns`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Lays out rows as columns two spaces apart (the first row is the header); trailing spaces are
/// trimmed. Each line ends with a newline.
pub fn columns(rows: &[Vec<String>], align: &[Align]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            match align.get(i).copied().unwrap_or(Align::Left) {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(0), "0ms");
        assert_eq!(duration_ms(999), "999ms");
        assert_eq!(duration_ms(12_345), "12.3s");
        assert_eq!(duration_ms(302_000), "5m02s");
        assert_eq!(duration_ms(3_720_000), "1h02m");
        assert_eq!(duration_ms(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }

    #[test]
    fn exits_and_states() {
        assert_eq!(exit_status(ExitStatus::None), "-");
        assert_eq!(exit_status(ExitStatus::Code(101)), "code 101");
        assert_eq!(exit_status(ExitStatus::Signal(9)), "signal 9 (SIGKILL)");
        assert_eq!(exit_status(ExitStatus::Signal(99)), "signal 99");
        assert_eq!(state(Some(StageState::Backoff)), "backoff");
        assert_eq!(state(None), "unknown");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_151_199_999), "2025-11-26 09:59:59 UTC");
    }

    #[test]
    fn rates_and_columns() {
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(0.25), "0.2/s");
        assert_eq!(rate(4512.4), "4512/s");
        let rows = vec![
            vec!["A".to_owned(), "N".to_owned(), "x".to_owned()],
            vec!["long".to_owned(), "12345".to_owned(), String::new()],
        ];
        assert_eq!(
            columns(&rows, &[Align::Left, Align::Right]),
            "A         N  x\nlong  12345\n"
        );
    }
}
