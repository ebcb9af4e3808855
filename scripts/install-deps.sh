#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian 12 machine that has the Rust
# toolchain: the MQTT broker and the NATS server (started only by the demo and the tests
# themselves, on free loopback ports), curl (the HTTP client of the demo and the HTTP tests),
# openssl (makes the HTTPS test's certificate), wrk (scripts/bench-http.sh's load generator) and
# cargo-audit. Safe to run again; does nothing when all is present.
set -euo pipefail

# cargo-audit checks Cargo.lock against the RustSec advisories (scripts/test.sh, offline).
if ! command -v cargo-audit >/dev/null 2>&1; then
  echo "install-deps: installing cargo-audit" >&2
  cargo install --locked --quiet cargo-audit --version 0.22.2
fi

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v wrk >/dev/null 2>&1 || need+=(wrk)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
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
