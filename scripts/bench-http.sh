#!/usr/bin/env bash
# bench-http.sh: HTTP ingest readings/s and whole-pipeline CPU µs per reading, driven by wrk
# (a load generator nobody here wrote; Debian package `wrk`) with a Lua POST script.
# docs/benchmarks.md ("## HTTP ingest") has the method and the results.
#
# One pipeline (telemetry-supervisor, HTTP only: [ingestd] broker = "", its own nats-server on a
# free loopback port) serves every run. For each BATCH (readings per request) and CONNS
# (keep-alive connections), wrk posts one pre-built JSON array of BATCH readings for DUR
# seconds; then the script waits (at most DRAIN_MAX s) until aggd has received every reading
# ingestd forwarded, and reads the CPU time (utime + stime, /proc) the supervisor and the four
# stages used from the run's start to that point.
#
#   readings/s   = wrk's requests/s x BATCH (2xx only: a run with non-2xx answers is marked)
#   cpu_us_read  = pipeline CPU / readings accepted (wrk and nats-server not included)
#
# Knobs (defaults in brackets): BATCHES ["1 10 100"]  CONNS_LIST ["1 16 64"]  DUR [10]
#   THREADS [2] (wrk threads)  KEYS [1000] (distinct device/sensor keys per body)
#   FORMAT [json] (json | ndjson)  DRAIN_MAX [30]  BUILD [1]  OUT [target/bench-http/<time>]
# Quick check that it runs: BATCHES=10 CONNS_LIST=2 DUR=1 BUILD=0 ./scripts/bench-http.sh
#
# It signals only PIDs it started; an EXIT trap stops them and removes its /dev/shm segments.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
BATCHES=${BATCHES:-"1 10 100"}
CONNS_LIST=${CONNS_LIST:-"1 16 64"}
DUR=${DUR:-10}
THREADS=${THREADS:-2}
KEYS=${KEYS:-1000}
FORMAT=${FORMAT:-json}
DRAIN_MAX=${DRAIN_MAX:-30}
BUILD=${BUILD:-1}
OUT=${OUT:-$ROOT/target/bench-http/$(date +%Y%m%d-%H%M%S)}
CLK_TCK=$(getconf CLK_TCK)

command -v wrk >/dev/null || { echo "bench-http: wrk is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --workspace --bins -q)
fi
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
supervisor=""
prefix="bench-http-$$"
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  rm -rf --one-file-system /dev/shm/"$prefix"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
cpu_ticks() { # utime+stime of PID in clock ticks (fields 14, 15, after the last ')')
  local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }; awk '{print $12 + $13}' <<<"$s"
}
pipeline_ticks() { # the supervisor and its children (the four stages)
  local t; t=$(cpu_ticks "$supervisor")
  for c in $(cat "/proc/$supervisor/task/"*/children 2>/dev/null); do t=$((t + $(cpu_ticks "$c"))); done
  echo "$t"
}
stat_of() { # counter $2 of stage $1, from telemetryctl stats --json
  "$BIN/telemetryctl" --config "$work/telemetry.toml" stats --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(next(s for s in d["stages"] if s["name"]==sys.argv[1])["counters"].get(sys.argv[2], 0))' "$1" "$2"
}

nats_port=$(free_port)
http_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$nats_port"
cat >"$work/telemetry.toml" <<TOML
[pipeline]
prefix = "$prefix"
instance = "bench-http"
[ingestd]
broker = ""
[ingestd.http]
listen = "127.0.0.1:$http_port"
max_body_bytes = 4194304
[emitd]
nats = "nats://127.0.0.1:$nats_port"
subject_prefix = "bench.agg"
TOML
"$BIN/telemetry-supervisor" --config "$work/telemetry.toml" 2>"$OUT/supervisor.log" & supervisor=$!
pids+=("$supervisor")
wait_port "$http_port"

# One body per batch size, written by Python's json module (not by us), and wrk's Lua script.
for b in $BATCHES; do
  python3 - "$b" "$KEYS" "$FORMAT" >"$work/body-$b" <<'PY'
import json, sys
n, keys, fmt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rs = [{"d": f"dev-{i % keys // 10}", "s": f"s{i % 10}", "v": i * 0.25} for i in range(n)]
sys.stdout.write(json.dumps(rs) if fmt == "json" else "".join(json.dumps(r) + "\n" for r in rs))
PY
  ct=application/json
  [ "$FORMAT" = ndjson ] && ct=application/x-ndjson
  cat >"$work/post-$b.lua" <<LUA
local f = io.open("$work/body-$b", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "$ct"
LUA
done

TSV=$OUT/http.tsv
printf 'batch\tconns\tdur_s\trequests\treq_per_s\treadings_per_s\tnon_2xx\taccepted_readings\tpipe_cpu_s\tcpu_us_read\tdrain_s\n' >"$TSV"
for b in $BATCHES; do
  for c in $CONNS_LIST; do
    t=$THREADS
    [ "$c" -lt "$t" ] && t=$c
    f0=$(stat_of ingestd forwarded)
    p0=$(pipeline_ticks)
    wrk -t "$t" -c "$c" -d "${DUR}s" -s "$work/post-$b.lua" "http://127.0.0.1:$http_port/v1/readings" >"$OUT/wrk-b$b-c$c.txt"
    start=$(date +%s.%N)
    f1=$(stat_of ingestd forwarded)
    for _ in $(seq $((DRAIN_MAX * 10))); do
      [ "$(stat_of aggd received)" -ge "$f1" ] && break
      sleep 0.1
    done
    drain=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')
    p1=$(pipeline_ticks)
    requests=$(awk '/requests in/{print $1}' "$OUT/wrk-b$b-c$c.txt")
    rps=$(awk '/^Requests\/sec/{print $2}' "$OUT/wrk-b$b-c$c.txt")
    non2xx=$(awk '/Non-2xx/{print $5}' "$OUT/wrk-b$b-c$c.txt")
    accepted=$((f1 - f0))
    awk -v b="$b" -v c="$c" -v d="$DUR" -v rq="$requests" -v rps="$rps" -v n="${non2xx:-0}" -v a="$accepted" \
      -v cpu=$((p1 - p0)) -v h="$CLK_TCK" -v dr="$drain" 'BEGIN{
        cs = cpu / h; us = a > 0 ? cs * 1e6 / a : 0
        printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.2f\t%.3f\t%s\n", b, c, d, rq, rps, rps * b, n, a, cs, us, dr
      }' >>"$TSV"
    tail -1 "$TSV"
  done
done
echo "== $TSV"
column -t "$TSV"
"$BIN/telemetryctl" --config "$work/telemetry.toml" stats | tail -5
