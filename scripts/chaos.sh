#!/usr/bin/env bash
# The chaos test (supervisor/tests/chaos.rs) against the release build, at a rate the debug build
# of the test suite does not reach, several times in a row: a random stage SIGKILLed every second
# for SECONDS while loadgen publishes QoS 1 readings through a persistent session; every reading
# is aggregated exactly once, nothing is dropped for a full ring, every stage ends running.
#   RATE=50000 SECONDS_=30 DEVICES=1000 RUNS=3 ./scripts/chaos.sh   (DEVICES x 10 keys)
# The test suite runs the same test at CHAOS_RATE=10000 (its default) on the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-50000}"
SECONDS_="${SECONDS_:-30}"
RUNS="${RUNS:-3}"
DEVICES="${DEVICES:-1000}"

./scripts/install-deps.sh
cargo build --release --workspace --bins
cargo test --release -p supervisor --test chaos --no-run
for run in $(seq 1 "$RUNS"); do
  echo "chaos run $run of $RUNS: $RATE readings/s for $SECONDS_ s"
  CHAOS_RATE="$RATE" CHAOS_SECONDS="$SECONDS_" CHAOS_DEVICES="$DEVICES" \
    cargo test --release -p supervisor --test chaos -- --nocapture 2>&1 | grep -E '^chaos:|test result|panicked|off'
done
