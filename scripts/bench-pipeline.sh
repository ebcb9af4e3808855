#!/usr/bin/env bash
# bench-pipeline.sh: benchmark the whole pipeline (telemetry-supervisor + ingestd, decoded, aggd,
# emitd) on loopback, side by side with the Go reference and the broker's ceiling, plus a
# broker-less bench of decoded + aggd and a 1M-key cardinality bench of aggd.
# docs/benchmarks.md ("## Pipeline") has the method, the commands and the results.
#
# Phases (each can be skipped):
#   1. pipeline runs: for each REP, QOS and RATE, one run of this pipeline and, right after it,
#      one run of the Go reference (shared/reference/bench-seed.sh) at the same QoS and rate.
#      Each run starts its own mosquitto (limits raised as the reference does) and nats-server on
#      free loopback ports, runs the supervisor, drives `loadgen` for DUR s (4 connections,
#      DEVICES x SENSORS keys), waits (bounded) for the drain and one more aggregate emission,
#      and reads CPU and VmHWM of the supervisor and every stage from /proc.
#   2. ceiling runs: the reference's null MQTT subscriber (mqttcount, CEILING_MODES) flat out.
#   3. broker-less: `inject` fills the raw ring; decoded and aggd run by hand (INJECT_REPS).
#   4. cardinality: CARD_KEYS distinct keys through decoded + aggd with aggd.max_keys =
#      CARD_MAX_KEYS (= CARD_KEYS: no eviction; fewer: every new key evicts one, the churn case).
#   5. summary: scripts/bench/summarize.py prints per-group medians and the targets, writes
#      summary.md and the chart, and the last line of output is one `BENCH_SUMMARY {json}` line.
#
# Environment knobs (defaults in brackets):
#   RATES ["10000 50000 100000 200000 max"]  msg/s; max = flat out (loadgen --count MAX_COUNT_Q<qos>)
#   QOS_LIST ["0 1"]  loadgen publish QoS (ingestd subscribes at QoS 1, like the reference)
#   REPS [1]  DUR [10]  CONNS [4]  DEVICES [1000]  SENSORS [10]
#   MAX_COUNT_Q0 [3000000]  MAX_COUNT_Q1 [1500000]  messages of a `max` run (~DUR s at the ceiling)
#   MQTT_MAX_INFLIGHT [1000]  DRAIN_MAX [30]
#   BATCH_BUDGET_US, NAP_US, NAPS, RAW_RING [config defaults]  pipeline tuning for the runs
#   STATISTICS [config default]  [aggd] statistics as a TOML array, e.g.
#              '["count", "sum", "mean", "min", "max", "stddev", "last", "quantiles"]'
#   REFERENCE [1]  run the Go reference at the same rates (needs shared/reference built, see below)
#   CEILING_MODES ["null-raw"]  ("" to skip) reference null-subscriber ceiling runs, per QoS
#   SKIP_PIPELINE [0]  INJECT [1]  INJECT_REPS [3]  INJECT_COUNT [20000000]
#   CARD [1]  CARD_KEYS [1000000]  CARD_MAX_KEYS [CARD_KEYS]  CARD_ROUNDS [2]
#   QUIET_MAX [300]  QUIET_CORES [0.15]  before each measured run wait (at most QUIET_MAX s)
#                    until the host is idle (< QUIET_CORES of the 2 cores busy); others_cpu_s is
#                    the host CPU used during a run by processes this script did not start
#   PERF [""]  a sampling frequency (e.g. 999): `perf record` the supervisor and stages while loadgen
#              runs, report in runs/<run>/perf.txt (apt-get install linux-perf); not for figures
#   BUILD [1]  cargo build --release --workspace --bins first (and the reference's build.sh)
#   REF_DIR [<repo>/../shared/reference or /work/shared/reference]  REF_WORK [~/.cache/seed-reference]
#   OUT [target/bench-pipeline/<timestamp>]  CHART [docs/bench-cpu-per-msg.png] ("" for none)
#
# Ports are picked at run time among free loopback ports, and the script checks that the
# listeners belong to the brokers it started. It signals only PIDs it started; an EXIT trap stops
# them (TERM, then KILL after a bounded wait) and removes its own /dev/shm segments.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/scripts/bench
BIN=${BIN:-$ROOT/target/release}
RATES=${RATES:-"10000 50000 100000 200000 max"}
QOS_LIST=${QOS_LIST:-"0 1"}
REPS=${REPS:-1}
DUR=${DUR:-10}
CONNS=${CONNS:-4}
DEVICES=${DEVICES:-1000}
SENSORS=${SENSORS:-10}
MAX_COUNT_Q0=${MAX_COUNT_Q0:-3000000}
MAX_COUNT_Q1=${MAX_COUNT_Q1:-1500000}
MQTT_MAX_INFLIGHT=${MQTT_MAX_INFLIGHT:-1000}
DRAIN_MAX=${DRAIN_MAX:-30}
BATCH_BUDGET_US=${BATCH_BUDGET_US:-}
NAP_US=${NAP_US:-}
NAPS=${NAPS:-}
RAW_RING=${RAW_RING:-}
STATISTICS=${STATISTICS:-}
REFERENCE=${REFERENCE:-1}
CEILING_MODES=${CEILING_MODES-"null-raw"}
SKIP_PIPELINE=${SKIP_PIPELINE:-0}
INJECT=${INJECT:-1}
INJECT_REPS=${INJECT_REPS:-3}
INJECT_COUNT=${INJECT_COUNT:-20000000}
CARD=${CARD:-1}
CARD_KEYS=${CARD_KEYS:-1000000}
CARD_MAX_KEYS=${CARD_MAX_KEYS:-$CARD_KEYS}
CARD_ROUNDS=${CARD_ROUNDS:-2}
QUIET_MAX=${QUIET_MAX:-300}
QUIET_CORES=${QUIET_CORES:-0.15}
BUILD=${BUILD:-1}
PERF=${PERF:-}
if [ -z "${REF_DIR:-}" ]; then
  REF_DIR=/work/shared/reference
  [ -d "$ROOT/../shared/reference" ] && REF_DIR=$(cd "$ROOT/../shared/reference" && pwd)
fi
REF_WORK=${REF_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/seed-reference}
OUT=${OUT:-$ROOT/target/bench-pipeline/$(date +%Y%m%d-%H%M%S)}
CHART=${CHART-$ROOT/docs/bench-cpu-per-msg.png}
CLK_TCK=$(getconf CLK_TCK)
export REF_WORK

mkdir -p "$OUT/runs"
LOG=$OUT/bench.log
log() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }

for c in mosquitto nats-server ss jq python3 timeout; do
  command -v "$c" >/dev/null || { echo "need $c (scripts/install-deps.sh; apt-get install jq)" >&2; exit 1; }
done
if [ "$BUILD" = 1 ]; then
  log "building: cargo build --release --workspace --bins"
  (cd "$ROOT" && cargo build --release --workspace --bins -q) || { log "build failed"; exit 1; }
  if [ "$REFERENCE" = 1 ] || [ -n "$CEILING_MODES" ]; then
    if [ ! -x "$REF_WORK/bin/seed-go" ] || [ ! -x "$REF_WORK/bin/mqttcount" ]; then
      if command -v go >/dev/null && [ -x "$REF_DIR/build.sh" ]; then
        log "building the Go reference: $REF_DIR/build.sh"
        "$REF_DIR/build.sh" >>"$LOG" 2>&1 || log "warning: the reference did not build"
      fi
    fi
  fi
fi
for b in telemetry-supervisor telemetryctl ingestd decoded aggd emitd loadgen inject; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b (cargo build --release --workspace --bins)" >&2; exit 1; }
done
if { [ "$REFERENCE" = 1 ] || [ -n "$CEILING_MODES" ]; } && [ ! -x "$REF_WORK/bin/seed-go" ]; then
  log "warning: no Go reference in $REF_WORK/bin (apt-get install golang-go golang-github-eclipse-paho.mqtt.golang-dev golang-github-nats-io-go-nats-dev golang-github-fxamacker-cbor-dev; $REF_DIR/build.sh): skipping it"
  REFERENCE=0 CEILING_MODES=
fi

# ---- child process bookkeeping: only PIDs we started are ever signalled ----
PIDS=()
PREFIXES=()
REF_PID=
start_bg() { # start_bg LOGFILE CMD... ; sets LAST_PID
  "${@:2}" >"$1" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop_pid() { # stop_pid PID [SIG] [TENTHS]: signal, wait (bounded), then SIGKILL
  local p=$1 sig=${2:-TERM} n=${3:-50} i
  [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
  kill -"$sig" "$p" 2>/dev/null
  for ((i = 0; i < n; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
remove_prefix() { # our segments only: the prefix is unique to this invocation
  [ -n "$1" ] && [ -e "/dev/shm/$1" ] || return 0
  "$BIN/inject" --config "$2" --remove >/dev/null 2>&1 || true
}
cleanup() {
  local p i
  [ -n "$REF_PID" ] && stop_pid "$REF_PID" TERM 300
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}" TERM 150; done
  PIDS=()
  for p in "${PREFIXES[@]}"; do remove_prefix "${p%%:*}" "${p#*:}"; done
  PREFIXES=()
}
trap 'cleanup' EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- /proc helpers ----
cpu_ticks() { # utime+stime of PID in clock ticks (fields 14, 15; parsed after the last ')')
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  awk '{print $12 + $13}' <<<"$s"
}
ctx_switches() { # voluntary + involuntary context switches of every thread of PID (its wake-ups)
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}'
}
sum_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo $t; }
children_ticks() { # cutime+cstime of this shell: every child it has reaped (loadgen, telemetryctl, ...)
  local s; s=$(cat /proc/$$/stat); s=${s##*) }; awk '{print $14 + $15}' <<<"$s"
}
kb_of() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sum_kb() { local t=0 p v k=$1; shift; for p in "$@"; do v=$(kb_of "$p" "$k"); t=$((t + ${v:-0})); done; echo $t; }
host_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
sec() { awk -v t="$1" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", t/h}'; }
div() { awk -v a="$1" -v b="$2" -v m="${3:-1}" -v f="${4:-%.2f}" 'BEGIN{ if (b+0 > 0 && a != "" && a != "-") printf f, a*m/b; else printf "-"}'; }
kv() { # kv FILE KEY: value of KEY= on the last line of FILE that has it, "-" if none
  local v
  v=$(grep -oE "(^| )$2=[^ ]*" "$1" 2>/dev/null | tail -1 | cut -d= -f2)
  echo "${v:--}"
}
wait_quiet() { # wait until the host is idle, at most QUIET_MAX s
  local t=0 a b
  while :; do
    a=$(host_busy); sleep 2; b=$(host_busy)
    awk -v d=$((b - a)) -v h="$CLK_TCK" -v q="$QUIET_CORES" 'BEGIN{exit !(d / h / 2 < q)}' && return 0
    t=$((t + 2))
    if [ $t -ge "$QUIET_MAX" ]; then
      log "  warning: host still busy ($(awk -v d=$((b - a)) -v h="$CLK_TCK" 'BEGIN{printf "%.2f", d/h/2}') cores) after ${QUIET_MAX}s; running anyway"
      return 0
    fi
    [ $((t % 30)) = 0 ] && log "  waiting for an idle host ($(awk -v d=$((b - a)) -v h="$CLK_TCK" 'BEGIN{printf "%.2f", d/h/2}') cores busy)"
  done
}

# ---- ports: random free loopback ports below the ephemeral range, checked after start ----
port_free() { [ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]; }
free_port() {
  local p i
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    port_free "$p" && { echo "$p"; return; }
  done
  echo 0
}
wait_port() {
  local i
  for i in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
owns_port() { ss -Htlnp "sport = :$1" 2>/dev/null | grep -q "pid=$2,"; } # owns_port PORT PID

start_brokers() { # start_brokers RUNDIR: sets MOSQ NATS MP NP
  MP=$(free_port); NP=$(free_port)
  [ "$MP" != 0 ] && [ "$NP" != 0 ] && [ "$MP" != "$NP" ] || return 1
  cat >"$1/mosquitto.conf" <<EOF
listener $MP 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000000
max_queued_bytes 0
max_inflight_messages $MQTT_MAX_INFLIGHT
log_dest stdout
log_type error
log_type warning
EOF
  start_bg "$1/mosquitto.log" mosquitto -c "$1/mosquitto.conf"; MOSQ=$LAST_PID
  start_bg "$1/nats.log" nats-server -a 127.0.0.1 -p "$NP"; NATS=$LAST_PID
  wait_port "$MP" && wait_port "$NP" || return 1
  sleep 0.2
  owns_port "$MP" "$MOSQ" && owns_port "$NP" "$NATS" || { log "  port $MP/$NP is not served by our brokers"; return 1; }
  echo "mqtt_port=$MP nats_port=$NP mosquitto_pid=$MOSQ nats_pid=$NATS" >"$1/ports"
}

RUN_N=0
write_config() { # write_config FILE PREFIX [EXTRA_TOML...]
  local f=$1 prefix=$2
  {
    echo "[pipeline]"
    echo "prefix = \"$prefix\""
    echo "instance = \"bench\""
    [ -n "$RAW_RING" ] && echo "raw_ring = $RAW_RING"
    echo "[wait]"
    [ -n "$NAP_US" ] && echo "nap_us = $NAP_US"
    [ -n "$NAPS" ] && echo "naps = $NAPS"
    echo "[ingestd]"
    echo "broker = \"mqtt://127.0.0.1:${MP:-1}\""
    echo "client_id = \"bench-ingestd-$$-$RUN_N\""
    [ -n "$BATCH_BUDGET_US" ] && echo "batch_budget_us = $BATCH_BUDGET_US"
    echo "[emitd]"
    echo "nats = \"nats://127.0.0.1:${NP:-1}\""
    echo "[supervisor]"
    echo "shutdown_timeout_ms = 3000"
    echo "poison_attempts = 0"
    echo "dead_letter_file = \"$(dirname "$f")/dead-letter.jsonl\""
    printf '%s\n' "${@:3}"
    if [ -n "$STATISTICS" ]; then
      # Into the extra [aggd] section if the caller opened one, else a section of its own.
      case " ${*:3} " in *"[aggd]"*) ;; *) echo "[aggd]" ;; esac
      echo "statistics = $STATISTICS"
    fi
  } >"$f"
}
stats_json() { timeout 5 "$BIN/telemetryctl" --config "$1" stats --json 2>/dev/null; }
jq_stage() { jq -r --arg s "$2" --arg c "$3" '(.stages[] | select(.name == $s) | .counters[$c]) // 0' <<<"$1" 2>/dev/null || echo 0; }

HEADER="impl qos target rep pub_rate sent received dropped decoded undecodable rx_rate aggs_emitted aggs_published pipe_cpu_s cpu_us_msg rss_mb aggd_rss_mb mosq_cpu_s mosq_us_msg nats_cpu_s loadgen_cpu_s others_cpu_s drain_s stage_cpu stage_cs note"
TSV=$OUT/results.tsv
[ -s "$TSV" ] || echo "$HEADER" | tr ' ' '\t' >"$TSV"
row() { echo "$*" | tr ' ' '\t' >>"$TSV"; }

run_pipeline() { # run_pipeline QOS RATE REP
  local qos=$1 rate=$2 rep=$3
  RUN_N=$((RUN_N + 1))
  local d="$OUT/runs/rust-q$qos-$rate-r$rep"; mkdir -p "$d"
  local prefix="bench$$r$RUN_N" cfg="$d/telemetry.toml"
  wait_quiet
  log "pipeline qos=$qos rate=$rate rep=$rep"
  MOSQ=; NATS=; MP=; NP=
  if ! start_brokers "$d"; then log "  brokers did not start"; cleanup; return; fi
  write_config "$cfg" "$prefix"
  PREFIXES+=("$prefix:$cfg")
  start_bg "$d/supervisor.log" "$BIN/telemetry-supervisor" --config "$cfg"; local SUP=$LAST_PID
  local i ok=0
  for i in $(seq 300); do
    "$BIN/telemetryctl" --config "$cfg" status >/dev/null 2>&1 && { ok=1; break; }
    kill -0 "$SUP" 2>/dev/null || break
    sleep 0.1
  done
  [ $ok = 1 ] || { log "  the pipeline did not come up (see $d/supervisor.log)"; cleanup; return; }
  sleep 1
  local j0 j1 pids p0 m0 n0 h0 c0 lg0 lg1 t_start t_last t0 t1
  j0=$(stats_json "$cfg")
  echo "$j0" >"$d/stats-start.json"
  pids=$( (echo "$SUP"; jq -r '.stages[] | select(.pid > 0) | .pid' <<<"$j0") | sort -un | tr '\n' ' ')
  echo "pids=$pids" >>"$d/ports"
  local -a P=($pids)
  local -A s0 cs0
  for i in "${P[@]}"; do s0[$i]=$(cpu_ticks "$i"); cs0[$i]=$(ctx_switches "$i"); done
  p0=$(sum_ticks "${P[@]}"); m0=$(cpu_ticks "$MOSQ"); n0=$(cpu_ticks "$NATS"); h0=$(host_busy); c0=$(children_ticks)
  local lgargs=(--broker "mqtt://127.0.0.1:$MP" --qos "$qos" --conns "$CONNS" --devices "$DEVICES" --sensors "$SENSORS")
  if [ "$rate" = max ]; then
    local mc=$MAX_COUNT_Q0; [ "$qos" = 1 ] && mc=$MAX_COUNT_Q1
    lgargs+=(--count "$mc")
  else
    lgargs+=(--rate "$rate" --duration-s "$DUR")
  fi
  local PERFP=
  if [ -n "$PERF" ]; then # sample the pipeline's processes while loadgen runs (not for figures)
    start_bg "$d/perf.log" timeout -s INT $((DUR + 2)) perf record -F "$PERF" -o "$d/perf.data" -p "$(echo $pids | tr ' ' ',')"
    PERFP=$LAST_PID
  fi
  t_start=$(date +%s.%N)
  lg0=$(children_ticks)
  timeout $((DUR * 6 + 60)) "$BIN/loadgen" "${lgargs[@]}" >"$d/loadgen.log" 2>&1
  lg1=$(children_ticks)
  if [ -n "$PERFP" ]; then
    stop_pid "$PERFP" INT 100
    perf report -i "$d/perf.data" --no-children --sort comm,dso,sym --stdio --percent-limit 0.5 >"$d/perf.txt" 2>/dev/null
    perf report -i "$d/perf.data" --no-children --sort comm --stdio >"$d/perf-by-process.txt" 2>/dev/null
    log "  profile: $d/perf.txt"
  fi
  t0=$(date +%s.%N); t_last=$t0
  # drain: ingestd's received stable for 3 s and the raw and readings rings empty (bounded)
  local prev=-1 same=0 drained=0 rec raw rd line
  for i in $(seq $((DRAIN_MAX * 4))); do
    sleep 0.25
    line=$(stats_json "$cfg" | jq -r '[((.stages[] | select(.name == "ingestd") | .received) // -1),
        ((.rings[] | select(.name == "raw") | .depth) // -1), ((.rings[] | select(.name == "readings") | .depth) // -1)] | @tsv' 2>/dev/null)
    read -r rec raw rd <<<"$line"
    if [ "$rec" != "$prev" ]; then t_last=$(date +%s.%N); fi
    if [ "$rec" = "$prev" ] && [ "$raw" = 0 ] && [ "$rd" = 0 ]; then
      same=$((same + 1)); [ $same -ge 12 ] && { drained=1; break; }
    else same=0; fi
    prev=$rec
  done
  t1=$(date +%s.%N)
  local note=ok
  [ $drained = 1 ] || { log "  warning: not drained within ${DRAIN_MAX}s"; note=not_drained; }
  # one more aggd emission after the drain, and emitd having published all of it (bounded 12 s)
  local e0 e1 f1 ad
  e0=$(jq_stage "$(stats_json "$cfg")" aggd aggregates.emitted)
  for i in $(seq 120); do
    sleep 0.1
    j1=$(stats_json "$cfg")
    e1=$(jq_stage "$j1" aggd aggregates.emitted); f1=$(jq_stage "$j1" emitd forwarded)
    ad=$(jq -r '(.rings[] | select(.name == "aggregates") | .depth) // -1' <<<"$j1")
    [ "$e1" -gt "$e0" ] && [ "$ad" = 0 ] && [ "$f1" -ge "$e1" ] && break
  done
  sleep 0.5
  j1=$(stats_json "$cfg")
  echo "$j1" >"$d/stats-end.json"
  local p1 m1 n1 h1 c1 hwm aggd_hwm stage_cpu="" stage_cs=""
  p1=$(sum_ticks "${P[@]}"); m1=$(cpu_ticks "$MOSQ"); n1=$(cpu_ticks "$NATS"); h1=$(host_busy); c1=$(children_ticks)
  for i in "${P[@]}"; do
    local nm; nm=$(jq -r --argjson p "$i" '(.stages[] | select(.pid == $p) | .name) // "supervisor"' <<<"$j1" | head -1)
    stage_cpu+="${stage_cpu:+,}$nm:$(sec $(( $(cpu_ticks "$i") - ${s0[$i]} )))"
    stage_cs+="${stage_cs:+,}$nm:$(( $(ctx_switches "$i") - ${cs0[$i]} ))"
  done
  hwm=$(sum_kb VmHWM "${P[@]}")
  aggd_hwm=$(kb_of "$(jq -r '.stages[] | select(.name == "aggd") | .pid' <<<"$j1")" VmHWM)
  # the same processes must have run throughout (no restart)
  local pids_end
  pids_end=$( (echo "$SUP"; jq -r '.stages[] | select(.pid > 0) | .pid' <<<"$j1") | sort -un | tr '\n' ' ')
  [ "$pids_end" = "$pids" ] || { note="$note,restarted"; log "  warning: stage pids changed: $pids -> $pids_end"; }
  [ "$(jq -r '[.stages[].restarts] | add' <<<"$j1")" = 0 ] || note="$note,restarted"
  grep -q ' errors=0' "$d/loadgen.log" || note="$note,loadgen_errors"
  "$BIN/telemetryctl" --config "$cfg" stats >"$d/stats-end.txt" 2>&1
  stop_pid "$SUP" TERM 200
  stop_pid "$MOSQ"; stop_pid "$NATS"
  PIDS=()
  remove_prefix "$prefix" "$cfg"; PREFIXES=()

  local received dropped decoded undecodable pcpu=$((p1 - p0)) mcpu=$((m1 - m0)) ncpu=$((n1 - n0))
  received=$(jq_stage "$j1" ingestd received)
  dropped=$(jq -r '[.stages[] | select(.name == "ingestd") | .dropped[]] | add // 0' <<<"$j1")
  decoded=$(jq_stage "$j1" decoded forwarded)
  undecodable=$(jq -r '[.stages[] | select(.name == "decoded") | .errors[]] | add // 0' <<<"$j1")
  local lgcpu others
  lgcpu=$(sec $((lg1 - lg0)))
  others=$(awk -v h=$((h1 - h0 - pcpu - mcpu - ncpu - (c1 - c0))) -v t="$CLK_TCK" 'BEGIN{o = h/t; if (o < 0) o = 0; printf "%.2f", o}')
  row "rust $qos $rate $rep $(kv "$d/loadgen.log" rate) $(kv "$d/loadgen.log" sent)" \
    "$received $dropped $decoded $undecodable" \
    "$(awk -v r="$received" -v a="$t_start" -v b="$t_last" 'BEGIN{ if (b > a) printf "%.0f", r/(b-a); else print "-"}')" \
    "$e1 $f1 $(sec $pcpu) $(div $pcpu "$received" "$((1000000 / CLK_TCK))")" \
    "$(awk -v k="$hwm" 'BEGIN{printf "%.0f", k/1024}') $(awk -v k="${aggd_hwm:-0}" 'BEGIN{printf "%.0f", k/1024}')" \
    "$(sec $mcpu) $(div $mcpu "$received" "$((1000000 / CLK_TCK))") $(sec $ncpu) $lgcpu $others" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') $stage_cpu $stage_cs $note"
  tail -1 "$TSV" | tr '\t' ' ' | tee -a "$LOG" >&2
}

run_reference() { # run_reference QOS RATE REP [CEILING_MODES]: one run of shared/reference/bench-seed.sh
  local qos=$1 rate=$2 rep=$3 modes=${4:-} r=$2
  [ "$rate" = max ] && r=0
  local skip=0; [ -n "$modes" ] && skip=1
  log "reference qos=$qos rate=$rate rep=$rep${modes:+ ceiling=[$modes]}"
  # bench-seed.sh picks the next free port from the one given: give it random free ones
  OUT="$OUT/reference" RATES="$r" QOS_LIST="$qos" REPS=1 DUR="$DUR" CONNS="$CONNS" DEVICES="$DEVICES" \
    SENSORS="$SENSORS" CEILING_MODES="$modes" SKIP_PIPELINE=$skip MQTT_MAX_INFLIGHT="$MQTT_MAX_INFLIGHT" \
    MQTT_PORT="$(free_port)" NATS_PORT="$(free_port)" QUIET_MAX="$QUIET_MAX" QUIET_CORES="$QUIET_CORES" \
    DRAIN_MAX="$DRAIN_MAX" REF_WORK="$REF_WORK" BIN="$REF_WORK/bin" PIPELINE="$REF_WORK/bin/seed-go" \
    timeout $((DUR * 6 + DRAIN_MAX + QUIET_MAX + 120)) bash "$REF_DIR/bench-seed.sh" >>"$OUT/reference.log" 2>&1 &
  REF_PID=$!
  local before after
  before=0; [ -f "$OUT/reference/results.tsv" ] && before=$(wc -l <"$OUT/reference/results.tsv")
  wait "$REF_PID"; REF_PID=
  after=0; [ -f "$OUT/reference/results.tsv" ] && after=$(wc -l <"$OUT/reference/results.tsv")
  if [ "$after" -le "$before" ]; then
    log "  warning: the reference produced no result (see $OUT/reference.log)"
  else
    tail -1 "$OUT/reference/results.tsv" | tr '\t' ' ' | tee -a "$LOG" >&2
  fi
}

ITSV=$OUT/inject.tsv
run_inject() { # run_inject REP: decoded + aggd by hand, fed by `inject` (no broker, no ingestd)
  local rep=$1
  RUN_N=$((RUN_N + 1))
  local d="$OUT/runs/inject-r$rep"; mkdir -p "$d"
  local prefix="bench$$i$RUN_N" cfg="$d/telemetry.toml"
  MP=; NP=
  write_config "$cfg" "$prefix"
  PREFIXES+=("$prefix:$cfg")
  "$BIN/inject" --config "$cfg" --create >"$d/create.log" 2>&1 || { log "  cannot create segments"; cat "$d/create.log" >&2; return; }
  start_bg "$d/decoded.log" "$BIN/decoded" --config "$cfg"; local DEC=$LAST_PID
  start_bg "$d/aggd.log" "$BIN/aggd" --config "$cfg"; local AGG=$LAST_PID
  local i
  for i in $(seq 100); do
    [ "$(stats_json "$cfg" | jq -r '[.stages[] | select(.name == "decoded" or .name == "aggd") | .state] | join(",")')" = "running,running" ] && break
    sleep 0.1
  done
  wait_quiet
  log "broker-less rep=$rep records=$INJECT_COUNT"
  local h0 h1 dc0 ac0 c0 c1
  h0=$(host_busy); dc0=$(cpu_ticks "$DEC"); ac0=$(cpu_ticks "$AGG"); c0=$(children_ticks)
  timeout 300 "$BIN/inject" --config "$cfg" --count "$INJECT_COUNT" --devices "$DEVICES" --sensors "$SENSORS" \
    --wait-stage aggd --wait-timeout-s 120 --cpu-pids "$DEC,$AGG" >"$d/inject.log" 2>&1
  h1=$(host_busy); c1=$(children_ticks)
  local dcpu=$(( $(cpu_ticks "$DEC") - dc0 )) acpu=$(( $(cpu_ticks "$AGG") - ac0 ))
  local j; j=$(stats_json "$cfg"); echo "$j" >"$d/stats-end.json"
  local note=ok
  [ "$(kv "$d/inject.log" waited)" = ok ] || note=not_drained
  kill -0 "$DEC" 2>/dev/null && kill -0 "$AGG" 2>/dev/null || note="$note,stage_died"
  local hwm_d hwm_a
  hwm_d=$(kb_of "$DEC" VmHWM); hwm_a=$(kb_of "$AGG" VmHWM)
  stop_pid "$AGG"; stop_pid "$DEC"; PIDS=()
  remove_prefix "$prefix" "$cfg"; PREFIXES=()
  [ -s "$ITSV" ] || printf 'rep\trecords\tdone_s\trate\tcpu_s\tper_core\tcores_used\tdecoded_cpu_s\taggd_cpu_s\tinject_cpu_s\tdecoded_rss_mb\taggd_rss_mb\tothers_cpu_s\tnote\n' >"$ITSV"
  local L="$d/inject.log"
  local others
  others=$(awk -v h=$((h1 - h0 - dcpu - acpu - (c1 - c0))) -v t="$CLK_TCK" 'BEGIN{o = h/t; if (o < 0) o = 0; printf "%.2f", o}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$(kv "$L" records)" "$(kv "$L" done_s)" \
    "$(kv "$L" rate)" "$(kv "$L" cpu_s)" "$(kv "$L" per_core)" "$(div "$(kv "$L" cpu_s)" "$(kv "$L" done_s)")" \
    "$(sec $dcpu)" "$(sec $acpu)" "$(kv "$L" inject_cpu_s)" "$((hwm_d / 1024))" "$((hwm_a / 1024))" "$others" "$note" >>"$ITSV"
  log "  $(tail -1 "$ITSV" | tr '\t' ' ')"
}

CTSV=$OUT/cardinality.tsv
run_cardinality() { # 1M distinct keys through decoded + aggd, aggd.max_keys = CARD_MAX_KEYS
  RUN_N=$((RUN_N + 1))
  local d="$OUT/runs/cardinality"; mkdir -p "$d"
  local prefix="bench$$c$RUN_N" cfg="$d/telemetry.toml"
  MP=; NP=
  write_config "$cfg" "$prefix" "[aggd]" "max_keys = $CARD_MAX_KEYS"
  PREFIXES+=("$prefix:$cfg")
  "$BIN/inject" --config "$cfg" --create >"$d/create.log" 2>&1 || { log "  cannot create segments"; return; }
  start_bg "$d/decoded.log" "$BIN/decoded" --config "$cfg"; local DEC=$LAST_PID
  start_bg "$d/aggd.log" "$BIN/aggd" --config "$cfg"; local AGG=$LAST_PID
  local i
  for i in $(seq 300); do grep -q 'table_bytes_per_key' "$d/aggd.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  wait_quiet
  local devices=$(( (CARD_KEYS + 9) / 10 ))
  log "cardinality keys=$((devices * 10)) rounds=$CARD_ROUNDS max_keys=$CARD_MAX_KEYS"
  local rss0 hwm0; rss0=$(kb_of "$AGG" VmRSS); hwm0=$(kb_of "$AGG" VmHWM)
  timeout 600 "$BIN/inject" --config "$cfg" --count $((devices * 10 * CARD_ROUNDS)) --devices "$devices" --sensors 10 \
    --wait-stage aggd --wait-timeout-s 300 --cpu-pids "$DEC,$AGG" >"$d/inject.log" 2>&1
  sleep 6 # one emission over all keys
  local rss1 hwm1 shm_windows j keys full evicted note=ok
  rss1=$(kb_of "$AGG" VmRSS); hwm1=$(kb_of "$AGG" VmHWM)
  grep -E '^(Vm|Rss)' "/proc/$AGG/status" >"$d/aggd-status.txt" 2>/dev/null
  shm_windows=$(stat -c %s "/dev/shm/$prefix/windows" 2>/dev/null || echo 0)
  j=$(stats_json "$cfg"); echo "$j" >"$d/stats-end.json"
  keys=$(jq_stage "$j" aggd keys.inserted)
  full=$(jq_stage "$j" aggd error.key_table_full)
  evicted=$(jq_stage "$j" aggd evicted.capacity)
  [ "$(kv "$d/inject.log" waited)" = ok ] || note=not_drained
  kill -0 "$AGG" 2>/dev/null || note="$note,aggd_died"
  stop_pid "$AGG"; stop_pid "$DEC"; PIDS=()
  remove_prefix "$prefix" "$cfg"; PREFIXES=()
  local A="$d/aggd.log"
  printf 'keys\tmax_keys\tkey_table_full\tevicted_capacity\ttable_bytes\ttable_bytes_per_key\theap_bytes_per_key\twindows_segment_bytes\taggd_rss_before_mb\taggd_hwm_before_mb\taggd_rss_mb\taggd_hwm_mb\thwm_bytes_per_key\trate\tnote\n' >"$CTSV"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$keys" "$CARD_MAX_KEYS" "$full" "$evicted" \
    "$(kv "$A" table_bytes)" "$(kv "$A" table_bytes_per_key)" "$(kv "$A" heap_bytes_per_key)" "$shm_windows" \
    "$((rss0 / 1024))" "$((hwm0 / 1024))" "$((rss1 / 1024))" "$((hwm1 / 1024))" "$(div $((hwm1 * 1024)) "$keys" 1 %.0f)" \
    "$(kv "$d/inject.log" rate)" "$note" >>"$CTSV"
  log "  $(tail -1 "$CTSV" | tr '\t' ' ')"
}

{
  echo "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc) kernel=$(uname -r)"
  echo "cpu=$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo) mem=$(awk '/MemTotal/{print $2}' /proc/meminfo)kB"
  echo "rustc=$(rustc --version 2>/dev/null) go=$(go version 2>/dev/null) mosquitto=$(dpkg-query -W -f '${Version}' mosquitto 2>/dev/null) nats-server=$(nats-server --version 2>/dev/null)"
  echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo +dirty)"
  echo "rates=[$RATES] qos=[$QOS_LIST] reps=$REPS dur=$DUR conns=$CONNS keys=$((DEVICES * SENSORS)) max_count_q0=$MAX_COUNT_Q0 max_count_q1=$MAX_COUNT_Q1 inflight=$MQTT_MAX_INFLIGHT batch_budget_us=${BATCH_BUDGET_US:-default} nap_us=${NAP_US:-default} naps=${NAPS:-default} raw_ring=${RAW_RING:-default} reference=$REFERENCE ceiling=[$CEILING_MODES] inject=$INJECT x$INJECT_REPS count=$INJECT_COUNT card=$CARD keys=$CARD_KEYS"
} >"$OUT/machine.txt"
log "out=$OUT"
sed 's/^/  /' "$OUT/machine.txt" | tee -a "$LOG" >&2

for rep in $(seq "$REPS"); do
  if [ "$SKIP_PIPELINE" != 1 ]; then
    for qos in $QOS_LIST; do
      for rate in $RATES; do
        run_pipeline "$qos" "$rate" "$rep"
        [ "$REFERENCE" = 1 ] && run_reference "$qos" "$rate" "$rep"
      done
    done
  fi
  if [ -n "$CEILING_MODES" ]; then
    for qos in $QOS_LIST; do run_reference "$qos" max "$rep" "$CEILING_MODES"; done
  fi
done
if [ "$INJECT" = 1 ]; then for rep in $(seq "$INJECT_REPS"); do run_inject "$rep"; done; fi
[ "$CARD" = 1 ] && run_cardinality

# ---- summary and chart ----
PY=python3
VENV=${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-bench/venv}
if [ -n "$CHART" ]; then
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib into $VENV"
    { python3 -m venv "$VENV" && timeout 600 "$VENV/bin/pip" install -q matplotlib; } >>"$LOG" 2>&1 ||
      log "warning: could not install matplotlib; no chart"
  fi
  "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null && PY=$VENV/bin/python
fi
"$PY" "$BENCH/summarize.py" "$OUT" ${CHART:+--chart "$OUT/bench-cpu-per-msg.png"} | tee "$OUT/summary.txt"
if [ -n "$CHART" ] && [ -s "$OUT/bench-cpu-per-msg.png" ]; then cp "$OUT/bench-cpu-per-msg.png" "$CHART"; fi
