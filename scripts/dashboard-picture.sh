#!/usr/bin/env bash
# A stand-in picture of deploy/grafana/telemetry.json (Grafana is not in Debian): runs a real
# pipeline on loopback (its own mosquitto and nats-server on free ports, the release binaries),
# records `telemetryctl stats --watch --json` once a second while loadgen publishes (with some
# malformed messages, and one operator restart of decoded half way), and plots the dashboard's
# series from those samples with matplotlib: docs/dashboard-standin.png.
#   SECONDS_OF_LOAD [20]  RATE [2000]  OUT [docs/dashboard-standin.png]
# matplotlib comes from PyPI into a venv (DASHBOARD_VENV, default ~/.cache/telemetry-dashboard/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_OF_LOAD="${SECONDS_OF_LOAD:-20}"
RATE="${RATE:-2000}"
OUT="${OUT:-$PWD/docs/dashboard-standin.png}"
VENV="${DASHBOARD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-dashboard/venv}"

./scripts/install-deps.sh
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib
fi
cargo build --release --workspace --bins -q
bin="$PWD/target/release"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
mqtt_port=$(free_port)
nats_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" & pids+=($!)
nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$mqtt_port"
wait_port "$nats_port"
prefix="dashboard-$$"
cat > "$work/telemetry.toml" <<TOML
[pipeline]
prefix = "$prefix"
instance = "dashboard"
[ingestd]
broker = "mqtt://127.0.0.1:$mqtt_port"
[emitd]
nats = "nats://127.0.0.1:$nats_port"
[aggd]
window_ms = 10000
emit_every_ms = 1000
TOML
"$bin/telemetry-supervisor" --config "$work/telemetry.toml" 2>"$work/supervisor.log" & supervisor=$!
pids+=("$supervisor")
for _ in $(seq 300); do "$bin/telemetryctl" --prefix "$prefix" status >/dev/null 2>&1 && break; sleep 0.1; done

samples=$((SECONDS_OF_LOAD + 8))
"$bin/telemetryctl" --prefix "$prefix" stats --watch --json --count "$samples" > "$work/samples.jsonl" & watcher=$!
pids+=("$watcher")
sleep 2
"$bin/loadgen" --broker "mqtt://127.0.0.1:$mqtt_port" --devices 50 --sensors 4 --rate "$RATE" \
  --duration-s "$SECONDS_OF_LOAD" --qos 1 --bad 0.01 >/dev/null & loader=$!
pids+=("$loader")
sleep $((SECONDS_OF_LOAD / 2))
"$bin/telemetryctl" --prefix "$prefix" restart decoded
wait "$loader"
wait "$watcher"
kill -TERM "$supervisor"
wait "$supervisor" || true
"$VENV/bin/python" scripts/dashboard/plot.py "$work/samples.jsonl" "$OUT"
echo "dashboard-picture: $OUT"
