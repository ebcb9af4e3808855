#!/usr/bin/env bash
# emitd alone, per sink: aggregates/s and emitd CPU per aggregate, for NATS core, NATS JetStream,
# Kafka and NATS + Kafka at once, in one run on one machine. Starts its own nats-server (with
# JetStream) and Tansu on free loopback ports, creates the segments with `inject --create`, starts
# the release emitd, and fills the aggregates ring with `inject-aggregates` (COUNT aggregates over
# KEYS keys, as fast as the ring takes them, after a WARMUP of aggregates that connects the sinks);
# rate = COUNT / (first write -> emitd released all).
#   COUNT=1000000 KEYS=1000000 WARMUP=10000 REPS=3 MODES="core jetstream kafka both" ./scripts/bench-sinks.sh
# One `sinks mode=... aggregates=... rate=... emitd_cpu_s=... cpu_us_per_agg=...` line per mode and
# repetition on stdout; logs in target/bench-sinks/<time>/. docs/benchmarks.md ("Sinks") has the
# method. BUILD=0 skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-1000000}"
KEYS="${KEYS:-1000000}"
WARMUP="${WARMUP:-10000}"
REPS="${REPS:-3}"
MODES="${MODES:-core jetstream kafka both}"
RING="${RING:-65536}"
PARTITIONS="${PARTITIONS:-3}"
BUILD="${BUILD:-1}"
OUT="${OUT:-target/bench-sinks/$(date -u +%Y%m%dT%H%M%S)}"
mkdir -p "$OUT"
./scripts/install-deps.sh
[ "$BUILD" = 1 ] && cargo build --release --workspace --bins -q
B="target/release"
TANSU=$(command -v tansu || echo /usr/local/bin/tansu)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
# user+system CPU seconds of a process (USER_HZ = 100).
cpu_s() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.2f\n", (f[12] + f[13]) / 100 }' "/proc/$1/stat"; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf --one-file-system /dev/shm/bench-sinks-$$-* 2>/dev/null || true
}
trap cleanup EXIT

NP=$(free_port); KP=$(free_port)
mkdir -p "$OUT/js"
nats-server -a 127.0.0.1 -p "$NP" -js -sd "$OUT/js" >"$OUT/nats.log" 2>&1 & pids+=($!)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KP" --advertised-listener-url "tcp://127.0.0.1:$KP" \
  --storage-engine memory://tansu/ >"$OUT/tansu.log" 2>&1 & pids+=($!)
wait_port "$NP"; wait_port "$KP"

run=0
for rep in $(seq "$REPS"); do
  for mode in $MODES; do
    run=$((run + 1))
    prefix="bench-sinks-$$-$run"
    topic="bench.$run"
    case "$mode" in
      core) emitd_keys='sinks = ["nats"]' ;;
      jetstream) emitd_keys=$'sinks = ["nats"]\njetstream = true' ;;
      kafka) emitd_keys='sinks = ["kafka"]' ;;
      both) emitd_keys='sinks = ["nats", "kafka"]' ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    case "$mode" in kafka | both) "$TANSU" topic create "$topic" --broker "tcp://127.0.0.1:$KP" --partitions "$PARTITIONS" >/dev/null ;; esac
    cat >"$OUT/$run.toml" <<CONF
[pipeline]
prefix = "$prefix"
instance = "bench"
aggregates_ring = $RING
[emitd]
nats = "nats://127.0.0.1:$NP"
subject_prefix = "bench.$run"
$emitd_keys
[emitd.kafka]
brokers = ["127.0.0.1:$KP"]
topic = "$topic"
CONF
    "$B/inject" --config "$OUT/$run.toml" --create 2>/dev/null
    "$B/emitd" --config "$OUT/$run.toml" 2>"$OUT/$run.emitd.log" & emitd=$!; pids+=($emitd)
    # Not measured: emitd connects its sinks and settles the first aggregates.
    "$B/inject-aggregates" --config "$OUT/$run.toml" --count "$WARMUP" --keys "$WARMUP" >/dev/null
    cpu0=$(cpu_s "$emitd")
    line=$("$B/inject-aggregates" --config "$OUT/$run.toml" --count "$COUNT" --keys "$KEYS" --first-window 1 | tail -1)
    cpu1=$(cpu_s "$emitd")
    kill -TERM "$emitd"; wait "$emitd" || echo "emitd ($mode) exited $?" >&2
    "$B/inject" --config "$OUT/$run.toml" --remove >/dev/null
    rate=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$line")
    waited=$(sed -n 's/.* waited=\([a-z]*\).*/\1/p' <<<"$line")
    python3 - "$mode" "$rep" "$COUNT" "$rate" "$cpu0" "$cpu1" "$waited" <<'PY'
import sys
mode, rep, n, rate, c0, c1, waited = sys.argv[1:]
cpu = float(c1) - float(c0)
print(f"sinks mode={mode} rep={rep} aggregates={n} rate={rate} emitd_cpu_s={cpu:.2f} "
      f"cpu_us_per_agg={cpu / int(n) * 1e6:.2f} waited={waited}")
PY
  done
done
