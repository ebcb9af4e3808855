#!/usr/bin/env bash
# The main job, end to end on loopback. Installs what is missing (scripts/install-deps.sh),
# builds in release mode, and shows the pipeline's substrate at work: producer and consumer
# processes SIGKILLed tens of times with every record still delivered, and the cross-process ring
# benchmark against rtrb. (The full MQTT -> NATS demo replaces this once the supervisor exists.)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cargo build --release --workspace

echo
echo "== crash safety: real producer and consumer processes, SIGKILLed at random moments"
cargo test --release -p shm-ring --test kill -- --nocapture --test-threads 1 2>&1 \
  | grep -E "records|test result|KILL_SEED"

echo
echo "== ring benchmark (shm-ring across processes vs rtrb in one process)"
cargo bench -p shm-ring --bench ring
