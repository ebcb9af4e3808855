#!/usr/bin/env bash
# Checks deploy/telemetry.service: its resource limits are there (docs/security.md, "The unit's
# resource limits"), systemd-analyze verify finds nothing, and systemd-analyze security scores it
# no worse than EXPOSURE_MAX (tenths: 25 = 2.5; it scores 2.1), where the machine has
# systemd-analyze. The unit's ExecStart names the installed path, so systemd-analyze runs on a
# copy that points at a binary that exists here; any other complaint fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=deploy/telemetry.service
for key in LimitNOFILE MemoryMax TasksMax OOMPolicy; do
  grep -q "^$key=" "$unit" || { echo "check-deploy: $unit sets no $key=" >&2; exit 1; }
done
# ingestd's HTTP door holds up to 1024 connections; keep four times that at least.
nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
if ! [[ "$nofile" =~ ^[0-9]+$ ]] || [ "$nofile" -lt 4096 ]; then
  echo "check-deploy: $unit: LimitNOFILE=$nofile, want a number of at least 4096" >&2
  exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-deploy: systemd-analyze not available; verify and security skipped"
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/lib/telemetry/telemetry-supervisor|$(command -v true)|" "$unit" > "$dir/telemetry.service"
out=$(systemd-analyze verify --man=no "$dir/telemetry.service" 2>&1 || true)
if [ -n "$out" ]; then
  echo "check-deploy: systemd-analyze verify found problems:" >&2
  echo "$out" >&2
  exit 1
fi
EXPOSURE_MAX=${EXPOSURE_MAX:-25}
if ! score=$(systemd-analyze security --offline=true --threshold="$EXPOSURE_MAX" "$dir/telemetry.service" 2>&1); then
  echo "check-deploy: systemd-analyze security scores $unit above $EXPOSURE_MAX tenths:" >&2
  echo "$score" | tail -n 1 >&2
  exit 1
fi
echo "check-deploy: $unit verified; $(echo "$score" | tail -n 1 | sed 's/^→ //')"
