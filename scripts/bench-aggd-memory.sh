#!/usr/bin/env bash
# bench-aggd-memory.sh: aggd's memory per key, all in, at KEYS distinct keys, for each set of
# [aggd] statistics in SETS.
#
# For each set: a fresh pipeline prefix, `inject` fills the raw ring with KEYS distinct keys
# (KEYS/10 devices × 10 sensors, ROUNDS readings each), decoded and aggd run by hand with
# aggd.max_keys = KEYS, and once aggd has folded them all and emitted once over every key:
#
#   shm_per_key     bytes of the windows and strings (key text) segments resident in /dev/shm
#                   (allocated pages) / keys
#   heap_per_key    aggd's RssAnon (heap, stacks, anonymous maps: an upper bound of its heap) / keys
#   all_in_per_key  shm_per_key + heap_per_key: the figure the targets of issue 11 are about
#   hwm_mb          aggd's VmHWM (peak RSS, which counts the shared pages aggd touched)
#   segments_mb     resident size of all the pipeline's segments (rings, stats page, windows)
#
# The seed's method (the Go port keeps raw samples) is about 20 KB per key at the same load.
#
# Usage:  scripts/bench-aggd-memory.sh                        # 1M keys, full set and count+mean
#         KEYS=2000 BUILD=0 BIN=target/debug scripts/bench-aggd-memory.sh   # a quick check
# Knobs:  KEYS [1000000]  ROUNDS [2]  SETS ["all count,mean"] (comma-separated statistics, or
#         "all")  WINDOW_MS [60000]  EMIT_EVERY_MS [5000]  BUILD [1]  BIN [target/release]
#         OUT [target/bench-aggd-memory/<time>]
# Output: a TSV (OUT/memory.tsv) and one line per set on stderr. Only processes and segments
# this script started are stopped or removed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-2}
SETS=${SETS:-"all count,mean"}
WINDOW_MS=${WINDOW_MS:-60000}
EMIT_EVERY_MS=${EMIT_EVERY_MS:-5000}
BUILD=${BUILD:-1}
BIN=${BIN:-$ROOT/target/release}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
OUT=${OUT:-$ROOT/target/bench-aggd-memory/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*" >&2; }

if [ "$BUILD" = 1 ]; then
  log "building: cargo build --release -p decoded -p aggd -p loadgen -p telemetryctl"
  (cd "$ROOT" && cargo build --release -q -p decoded -p aggd -p loadgen -p telemetryctl)
fi
for b in decoded aggd inject telemetryctl; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (cargo build --release --workspace --bins)" >&2; exit 1; }
done

PIDS=()
CFG=
stop_pid() { # stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL
  local p=$1 i
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  PIDS=()
  [ -n "$CFG" ] && "$BIN/inject" --config "$CFG" --remove >/dev/null 2>&1 || true
  CFG=
}
trap cleanup EXIT INT TERM

kb_of() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
resident_bytes() { # allocated bytes of the given files (tmpfs allocates only touched pages)
  local t=0 f b s
  for f in "$@"; do
    [ -e "$f" ] || continue
    read -r b s < <(stat -c '%b %B' "$f")
    t=$((t + b * s))
  done
  echo $t
}
tracked_keys() { # keys.inserted − evicted.* of aggd, from the stats page
  timeout 10 "$BIN/telemetryctl" --config "$1" stats --json 2>/dev/null | python3 -c '
import json, sys
stage = next(s for s in json.load(sys.stdin)["stages"] if s["name"] == "aggd")
c = stage["counters"]
print(c.get("keys.inserted", 0) - sum(v for k, v in c.items() if k.startswith("evicted.")))'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f", a / b; else printf "-"}'; }

TSV=$OUT/memory.tsv
printf 'statistics\tkeys\tpanes\tshm_per_key\theap_per_key\tall_in_per_key\thwm_mb\tsegments_mb\thwm_plus_segments_mb\twindows_and_strings_mb\tnote\n' >"$TSV"
devices=$(((KEYS + 9) / 10))
n=0
for set in $SETS; do
  n=$((n + 1))
  d="$OUT/run-$n"; mkdir -p "$d"
  prefix="memb$$n$n"
  CFG="$d/telemetry.toml"
  if [ "$set" = all ]; then stats='["count", "sum", "mean", "min", "max", "stddev", "last"]'
  else stats="[$(echo "$set" | sed 's/[^,][^,]*/"&"/g; s/,/, /g')]"; fi
  cat >"$CFG" <<TOML
[pipeline]
prefix = "$prefix"
instance = "bench-memory"
[aggd]
window_ms = $WINDOW_MS
emit_every_ms = $EMIT_EVERY_MS
max_keys = $KEYS
idle_ttl_ms = $((WINDOW_MS * 10))
statistics = $stats
TOML
  "$BIN/inject" --config "$CFG" --create >"$d/create.log" 2>&1
  "$BIN/decoded" --config "$CFG" >"$d/decoded.log" 2>&1 & DEC=$!; PIDS+=("$DEC")
  "$BIN/aggd" --config "$CFG" >"$d/aggd.log" 2>&1 & AGG=$!; PIDS+=("$AGG")
  for _ in $(seq 300); do grep -q 'aggd running' "$d/aggd.log" 2>/dev/null && break; sleep 0.1; done
  log "statistics = $stats: $((devices * 10)) keys × $ROUNDS readings"
  timeout 900 "$BIN/inject" --config "$CFG" --count $((devices * 10 * ROUNDS)) --devices "$devices" --sensors 10 \
    --wait-stage aggd --wait-timeout-s 600 >"$d/inject.log" 2>&1 || true
  # One emission over every key (its batch is on the heap), then measure.
  sleep $(((EMIT_EVERY_MS + 999) / 1000 + 2))
  note=ok
  grep -q 'waited=ok' "$d/inject.log" || note=not_drained
  kill -0 "$AGG" 2>/dev/null || note="$note,aggd_died"
  keys=$(tracked_keys "$CFG" || echo 0)
  grep -E '^(Vm|Rss)' "/proc/$AGG/status" >"$d/aggd-status.txt" 2>/dev/null || true
  anon=$(($(kb_of "$AGG" RssAnon) * 1024))
  hwm=$(($(kb_of "$AGG" VmHWM) * 1024))
  windows=$(resident_bytes "/dev/shm/$prefix/windows" "/dev/shm/$prefix/strings")
  segments=$(resident_bytes /dev/shm/"$prefix"/*)
  panes=$((WINDOW_MS / EMIT_EVERY_MS))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$keys" "$panes" \
    "$(div "$windows" "$keys")" "$(div "$anon" "$keys")" "$(div $((windows + anon)) "$keys")" \
    "$(div "$hwm" 1048576)" "$(div "$segments" 1048576)" "$(div $((hwm + segments)) 1048576)" \
    "$(div "$windows" 1048576)" "$note" >>"$TSV"
  log "  $(tail -1 "$TSV" | tr '\t' ' ')"
  cleanup
done
log "results: $TSV"
column -t -s $'\t' "$TSV" >&2 2>/dev/null || cat "$TSV" >&2
