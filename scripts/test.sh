#!/usr/bin/env bash
# Runs every test of the workspace. This is the README's test command and what CI runs.
#   - unit, integration (real processes, SIGKILL) and doc tests of every crate;
#   - the Debian package: built and checked by lintian, installed, run and purged
#     (scripts/install-test.sh; as root only, as in CI: it installs onto this machine);
#   - the loom model of the ring protocol, with a bounded number of preemptions so that it fits
#     CI's time (LOOM_MAX_PREEMPTIONS; unset it for the exhaustive run, about 4 minutes here).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# Tests that spawn processes and map segments leave nothing behind even when they fail, but a
# killed test run cannot clean up after itself: report (never remove) what an earlier run left.
leftover=$(ls /dev/shm 2>/dev/null | grep -E '^(test|doc|bench)-' || true)
if [ -n "$leftover" ]; then
  echo "note: segments left in /dev/shm by an earlier, interrupted run:" >&2
  echo "$leftover" >&2
fi

./scripts/check-deploy.sh

# Known vulnerabilities in any dependency fail the run. The advisory database cannot be fetched
# here: a snapshot sits next to the project (ADVISORY_DB overrides where). Where there is none
# (a checkout on its own), the audit is skipped with one loud line, not a cryptic failure.
advisory_db="${ADVISORY_DB:-../shared/advisory-db}"
if [ -d "$advisory_db" ]; then
  cargo audit --db "$advisory_db" --no-fetch --deny warnings
else
  echo "test.sh: SKIPPED cargo audit: no advisory database at $advisory_db (set ADVISORY_DB to a RustSec advisory-db checkout)" >&2
fi

# The end-to-end tests run the stage binaries (and loadgen) from the target directory.
cargo build --workspace --bins
cargo test --workspace
# The ring benchmark's sub-second smoke run: it still compiles and its processes still work.
cargo test -p shm-ring --benches

# The package's install test, after the others: it installs onto this machine, and it builds
# the release binaries.
./scripts/install-test.sh

LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-4}" RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p shm-ring --lib --release loom
