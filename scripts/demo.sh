#!/usr/bin/env bash
# The main job, end to end on loopback, for a newcomer:
#   1. installs what the demo needs if it is missing (scripts/install-deps.sh --demo) and builds
#      the release binaries;
#   2. starts its own mosquitto, nats-server and Tansu (Kafka protocol) on free loopback ports;
#   3. starts telemetry-supervisor, which creates the rings and starts the four stages;
#   4. publishes a stream of readings with loadgen (DEVICES x SENSORS keys, RATE msg/s, LOAD_SECONDS s),
#      then 200 protobuf readings (the protobuf door: decoded reads them by their content type),
#      and posts one batch over HTTP with curl (ingestd's second door);
#   5. shows aggregates arriving on NATS (the HTTP batch's among them) and in Kafka (emitd's two
#      sinks), and `telemetryctl stats`;
#   6. stops everything cleanly (the supervisor stops the stages upstream first).
# Everything it starts is stopped on exit, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICES="${DEVICES:-100}"
SENSORS="${SENSORS:-5}"
RATE="${RATE:-5000}"
SECONDS_OF_LOAD="${LOAD_SECONDS:-10}"

./scripts/install-deps.sh --demo
echo "== building (release)"
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
kafka_port=$(free_port)
http_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n' \
  "$mqtt_port" > "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" & pids+=($!)
nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 & pids+=($!)
tansu_bin=$(command -v tansu || echo /usr/local/bin/tansu)
"$tansu_bin" broker --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 & pids+=($!)
wait_port "$mqtt_port"
wait_port "$nats_port"
wait_port "$kafka_port"
"$tansu_bin" topic create telemetry.agg --broker "tcp://127.0.0.1:$kafka_port" --partitions 1 >/dev/null
echo "== mosquitto on 127.0.0.1:$mqtt_port, nats-server on 127.0.0.1:$nats_port, Tansu (Kafka) on 127.0.0.1:$kafka_port"

prefix="demo-$$"
cat > "$work/telemetry.toml" <<EOF
[pipeline]
prefix = "$prefix"
instance = "demo"
[ingestd]
broker = "mqtt://127.0.0.1:$mqtt_port"
[ingestd.http]
listen = "127.0.0.1:$http_port"
[emitd]
sinks = ["nats", "kafka"]
nats = "nats://127.0.0.1:$nats_port"
[emitd.kafka]
brokers = ["127.0.0.1:$kafka_port"]
[aggd]
window_ms = 10000
emit_every_ms = 2000
statistics = ["count", "sum", "mean", "min", "max", "stddev", "last", "quantiles"]
quantiles = [0.5, 0.9, 0.99]
EOF

echo "== starting telemetry-supervisor (config: $work/telemetry.toml)"
"$bin/telemetry-supervisor" --config "$work/telemetry.toml" 2>"$work/supervisor.log" & supervisor=$!
pids+=("$supervisor")
for _ in $(seq 300); do
  "$bin/telemetryctl" --config "$work/telemetry.toml" status >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin/telemetryctl" --config "$work/telemetry.toml" status

# A plain NATS subscriber over /dev/tcp: the protocol is text, so the aggregates can be shown as
# they arrive without another client.
exec 5<>"/dev/tcp/127.0.0.1/$nats_port"
printf 'CONNECT {"verbose":false}\r\nSUB telemetry.agg.> 1\r\n' >&5
(timeout $((SECONDS_OF_LOAD + 4)) cat <&5 | tr -d '\r' > "$work/nats-messages.txt") & pids+=($!)

echo "== posting two readings over HTTP (127.0.0.1:$http_port, ingestd's second door)"
set -x
curl -sS -H 'Content-Type: application/json' \
  --data-binary '[{"d":"http-demo","s":"temp","v":21.5},{"d":"http-demo","s":"temp","v":22.5}]' \
  "http://127.0.0.1:$http_port/v1/readings"
{ set +x; } 2>/dev/null

echo "== publishing $((RATE * SECONDS_OF_LOAD)) readings: $DEVICES devices x $SENSORS sensors at $RATE msg/s, QoS 1"
"$bin/loadgen" --broker "mqtt://127.0.0.1:$mqtt_port" --devices "$DEVICES" --sensors "$SENSORS" \
  --rate "$RATE" --duration-s "$SECONDS_OF_LOAD" --qos 1
echo "== publishing 200 protobuf readings (telemetry.v1.Reading, content type application/x-protobuf)"
"$bin/loadgen" --broker "mqtt://127.0.0.1:$mqtt_port" --devices "$DEVICES" --sensors "$SENSORS" \
  --count 200 --qos 1 --proto --client "demo-proto-$$"
sleep 3

echo
echo "== some aggregates received from NATS (subject, then payload)"
grep -A1 '^MSG' "$work/nats-messages.txt" | grep -v '^--' | head -6 || true
echo "   ... $(grep -c '^MSG' "$work/nats-messages.txt" || true) aggregates in total"
echo "== the HTTP batch's aggregate (device http-demo: count 2, mean 22, p50 21.5 and p99 22.5 within 0.54 %)"
grep -A1 '^MSG telemetry.agg.http-demo.temp' "$work/nats-messages.txt" | tail -1

echo
echo "== some aggregates read back from Kafka (topic telemetry.agg, with tansu cat consume)"
timeout 10 "$tansu_bin" cat consume telemetry.agg --broker "tcp://127.0.0.1:$kafka_port" --max-wait-time-ms 1000 \
  2>/dev/null | python3 -c '
import json, sys
# The first fetch: a JSON array of {"key", "value"} (tansu prints one per fetch).
records, _ = json.JSONDecoder().raw_decode(sys.stdin.read().lstrip())
for r in records[:3]:
    print(json.dumps(r["value"], sort_keys=True))
print(f"   ... {len(records)} records in the first fetch")' || true
"$bin/telemetryctl" --config "$work/telemetry.toml" stats | grep -E "^emitd +(nats|kafka)\.delivered" || true
echo
echo "== telemetryctl stats"
"$bin/telemetryctl" --config "$work/telemetry.toml" stats

echo
echo "== stopping (SIGTERM to the supervisor: ingestd first, then each stage once its input is drained)"
kill -TERM "$supervisor"
wait "$supervisor" && echo "supervisor exited 0"
[ -e /dev/shm/"$prefix" ] && echo "segments left in /dev/shm/$prefix" || echo "no segments left in /dev/shm"
