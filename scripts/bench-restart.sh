#!/usr/bin/env bash
# Restart latency: SIGKILL -> replacement ready, per stage, under steady load, and the
# supervisor's idle CPU. Starts its own mosquitto and nats-server on free loopback ports, runs
# the release build under the supervisor, keeps loadgen publishing QoS 1 readings at RATE, and
# kills each stage KILLS times, INTERVAL_MS apart, with `restart-latency` (loadgen/src/bin).
#   KILLS=100 INTERVAL_MS=1000 RATE=10000 STAGES="ingestd decoded aggd emitd" ./scripts/bench-restart.sh
# Results go to target/bench-restart/<time>/ (logs) and stdout, one `restart stage=...` line per
# stage plus `supervisor_idle_cpu_pct=...`. docs/benchmarks.md ("Restarts") has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${KILLS:-100}"
INTERVAL_MS="${INTERVAL_MS:-1000}"
RATE="${RATE:-10000}"
IDLE_S="${IDLE_S:-30}"
BUILD="${BUILD:-1}"
OUT="${OUT:-target/bench-restart/$(date -u +%Y%m%dT%H%M%S)}"
mkdir -p "$OUT"
./scripts/install-deps.sh
[ "$BUILD" = 1 ] && [ -z "${BIN:-}" ] && cargo build --release --workspace --bins
B="${BIN:-target/release}"   # BIN: a folder with copies of target/release/* (an A/B)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf --one-file-system /dev/shm/bench-restart-$$ 2>/dev/null || true
}
trap cleanup EXIT

MP=$(free_port); NP=$(free_port)
cat >"$OUT/mosquitto.conf" <<CONF
listener $MP 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 10000000
max_queued_bytes 0
log_dest stderr
log_type error
log_type warning
CONF
mosquitto -c "$OUT/mosquitto.conf" 2>"$OUT/mosquitto.log" & pids+=($!)
nats-server -a 127.0.0.1 -p "$NP" >"$OUT/nats.log" 2>&1 & pids+=($!)
sleep 0.5
cat >"$OUT/telemetry.toml" <<CONF
[pipeline]
prefix = "bench-restart-$$"
instance = "bench-restart-$$"
[ingestd]
broker = "mqtt://127.0.0.1:$MP"
[emitd]
nats = "nats://127.0.0.1:$NP"
[supervisor]
restart_intensity = 100000
restart_period_s = 1
CONF
$B/telemetry-supervisor --config "$OUT/telemetry.toml" 2>"$OUT/supervisor.log" & SUP=$!; pids+=($SUP)

# Idle CPU of the supervisor: no load, every stage running.
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
t0=$(ticks "$SUP"); sleep "$IDLE_S"; t1=$(ticks "$SUP")
hz=$(getconf CLK_TCK)
echo "supervisor_idle_cpu_pct=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE_S" 'BEGIN{printf "%.3f", 100 * d / hz / s}') over ${IDLE_S}s" | tee "$OUT/idle.txt"

# Steady load for the whole kill schedule.
secs=$(( (KILLS * INTERVAL_MS / 1000 + 30) * 4 ))
$B/loadgen --broker "mqtt://127.0.0.1:$MP" --devices 100 --sensors 10 --rate "$RATE" --duration-s "$secs" --qos 1 \
  >"$OUT/loadgen.log" 2>&1 & LOAD=$!; pids+=($LOAD)
sleep 2
for stage in ${STAGES:-ingestd decoded aggd emitd}; do
  $B/restart-latency --config "$OUT/telemetry.toml" --stage "$stage" --kills "$KILLS" --interval-ms "$INTERVAL_MS" | tail -1 | tee -a "$OUT/restart.txt"
done
$B/telemetryctl --config "$OUT/telemetry.toml" stats >"$OUT/stats.txt" 2>&1 || true
echo "logs: $OUT"
