#!/usr/bin/env bash
# Installs the Debian package onto this machine and checks it, then purges it (CI runs as root):
#   1. dpkg -i target/debian/telemetry_*.deb (built by scripts/package.sh unless PACKAGE=path);
#   2. files, modes, owners, the telemetry user and group, the one line said at install;
#   3. systemd-analyze verify on the installed unit;
#   4. the installed telemetry-supervisor, as the telemetry user (setpriv; no systemd needed),
#      with the installed configuration edited as an operator would (its own mosquitto and
#      nats-server on free loopback ports, its own /dev/shm prefix): loadgen's readings come out
#      of NATS as exactly the expected aggregates;
#      (before it runs, the package installed again over the edited configuration: kept);
#   5. telemetryctl stats as a member of the telemetry group (and exit 4 for a non-member); the
#      group does not grant the secrets;
#   6. the supervisor SIGKILLed (the stages die with it, the segments stay, as after a crash),
#      then dpkg --purge, after the service's user planted symlinks where the old postrm wrote
#      and removed as root: nothing followed, nothing of the package is left, nor the segment
#      directory, nor its directories.
# Everything it starts or installs is undone on exit, also on failure. Without root it skips.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test: skipped (needs root: it installs the package onto this machine)"
  exit 0
fi
# A telemetry package installed by someone else is never touched; one a killed run of this test
# left behind (the marker says so) is purged first.
marker=/run/telemetry-install-test
if dpkg-query -W -f='${db:Status-Status}' telemetry 2>/dev/null | grep -qv '^not-installed$'; then
  if [ -e "$marker" ]; then
    dpkg --purge telemetry >/dev/null
  else
    echo "install-test: skipped (a telemetry package is installed on this machine; not touching it)"
    exit 0
  fi
fi

if [ -z "${PACKAGE:-}" ]; then
  ./scripts/package.sh
  PACKAGE=$(ls -t target/debian/telemetry_*.deb | head -n 1)
fi
bin="$PWD/target/release"
work=$(mktemp -d)
chmod 0755 "$work"
prefix="install-test-$$"
pids=()
user_existed=""
getent passwd telemetry >/dev/null && user_existed=1

fail() { echo "install-test: FAILED: $*" >&2; exit 1; }
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if dpkg-query -W -f='${db:Status-Status}' telemetry 2>/dev/null | grep -qv '^not-installed$'; then
    dpkg --purge telemetry >/dev/null 2>&1 || true
  fi
  rm -rf --one-file-system -- /dev/shm/"$prefix"
  # The package keeps its system user on purge (Debian practice); the test removes the one it
  # made, so that a run leaves the machine as it found it.
  if [ -z "$user_existed" ] && getent passwd telemetry >/dev/null; then
    userdel telemetry 2>/dev/null || true
    getent group telemetry >/dev/null && groupdel telemetry 2>/dev/null || true
  fi
  rm -rf "$work" "$marker"
  [ $status -eq 0 ] || echo "install-test: failed; cleaned up" >&2
}
trap cleanup EXIT
touch "$marker"

echo "== dpkg -i $PACKAGE"
dpkg -i "$PACKAGE" > "$work/dpkg-install.log" 2>&1 || { cat "$work/dpkg-install.log"; fail "dpkg -i"; }
grep -qx "telemetry: enabled, not started: edit /etc/telemetry/telemetry.toml, then run 'systemctl start telemetry'." \
  "$work/dpkg-install.log" || { cat "$work/dpkg-install.log"; fail "the install did not say how to start the service"; }

echo "== files, modes, owners"
getent passwd telemetry >/dev/null || fail "no telemetry user"
getent group telemetry >/dev/null || fail "no telemetry group"
[ "$(id -gn telemetry)" = telemetry ] || fail "telemetry's primary group is not telemetry"
check_mode() { # path "mode owner group"
  local got
  got=$(stat -c '%a %U %G' "$1" 2>/dev/null) || fail "$1 missing"
  [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
for b in telemetry-supervisor ingestd decoded aggd emitd; do
  check_mode "/usr/lib/telemetry/$b" "755 root root"
done
check_mode /usr/bin/telemetryctl "755 root root"
check_mode /usr/lib/systemd/system/telemetry.service "644 root root"
check_mode /usr/lib/sysusers.d/telemetry.conf "644 root root"
check_mode /usr/lib/tmpfiles.d/telemetry.conf "644 root root"
check_mode /etc/telemetry "750 root telemetry"
check_mode /etc/telemetry/secrets "700 telemetry telemetry"
check_mode /etc/telemetry/telemetry.toml "640 root telemetry"
check_mode /var/lib/telemetry "700 telemetry telemetry"
if command -v systemd-tmpfiles >/dev/null; then
  check_mode /dev/shm/telemetry "750 telemetry telemetry"
fi
check_mode /usr/share/man/man1/telemetryctl.1.gz "644 root root"
check_mode /usr/share/man/man8/telemetry-supervisor.8.gz "644 root root"
check_mode /usr/share/bash-completion/completions/telemetryctl "644 root root"
check_mode /usr/share/doc/telemetry/copyright "644 root root"
dpkg-query -W -f='${Conffiles}\n' telemetry | grep -q '^ /etc/telemetry/telemetry.toml ' ||
  fail "telemetry.toml is not a conffile"
version=$(dpkg-query -W -f='${Version}' telemetry)
for b in /usr/lib/telemetry/telemetry-supervisor /usr/lib/telemetry/ingestd /usr/bin/telemetryctl; do
  "$b" --version | grep -q "^$(basename "$b") $version (commit " || fail "$b --version: $("$b" --version)"
done
# Enabled (the [Install] symlink), not started.
[ -L /etc/systemd/system/multi-user.target.wants/telemetry.service ] || fail "the unit is not enabled"
dpkg -L telemetry > "$work/files"

echo "== systemd-analyze verify"
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/telemetry.service 2>&1 || true)
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify"; }

echo "== the installed supervisor as the telemetry user"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; fail "port $1 did not open"; }
mqtt_port=$(free_port)
nats_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" & pids+=($!)
nats-server -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$mqtt_port"
wait_port "$nats_port"
# The operator's edit of the installed configuration: brokers, a prefix of its own, short windows.
python3 - "$prefix" "$mqtt_port" "$nats_port" <<'PY'
import re, sys
prefix, mqtt, nats = sys.argv[1:]
path = "/etc/telemetry/telemetry.toml"
text = open(path).read()
for key, value in [("prefix", f'"{prefix}"'), ("instance", '"install-test"'),
                   ("broker", f'"mqtt://127.0.0.1:{mqtt}"'), ("nats", f'"nats://127.0.0.1:{nats}"'),
                   ("window_ms", "10000"), ("emit_every_ms", "1000")]:
    text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    assert n == 1, key
open(path, "w").write(text)
PY
# Installing again (the upgrade path: postinst gets the old version) keeps the edited conffile
# and its mode, and says nothing about starting.
dpkg -i "$PACKAGE" > "$work/dpkg-reinstall.log" 2>&1 || { cat "$work/dpkg-reinstall.log"; fail "dpkg -i again"; }
grep -q "^prefix = \"$prefix\"$" /etc/telemetry/telemetry.toml || fail "the reinstall replaced the edited configuration"
check_mode /etc/telemetry/telemetry.toml "640 root telemetry"
grep -q "enabled, not started" "$work/dpkg-reinstall.log" && fail "the reinstall said the install line again"
exec 5<>"/dev/tcp/127.0.0.1/$nats_port"
printf 'CONNECT {"verbose":false}\r\nSUB telemetry.agg.> 1\r\n' >&5
(cat <&5 | tr -d '\r' > "$work/nats-messages.txt") & pids+=($!)
(umask 0027; exec setpriv --reuid=telemetry --regid=telemetry --init-groups --inh-caps=-all \
  /usr/lib/telemetry/telemetry-supervisor --config /etc/telemetry/telemetry.toml) 2>"$work/supervisor.log" &
supervisor=$!
pids+=("$supervisor")
for _ in $(seq 300); do
  telemetryctl --prefix "$prefix" status >/dev/null 2>&1 && break
  sleep 0.1
done
telemetryctl --prefix "$prefix" status || { cat "$work/supervisor.log" >&2; fail "the pipeline did not come up"; }
check_mode /dev/shm/"$prefix" "750 telemetry telemetry"
check_mode /dev/shm/"$prefix"/stats "640 telemetry telemetry"
check_mode /dev/shm/"$prefix"/raw "600 telemetry telemetry"

"$bin/loadgen" --broker "mqtt://127.0.0.1:$mqtt_port" --devices 3 --sensors 2 --count 60 --qos 1 \
  --expect "$work/expected.jsonl" >/dev/null
python3 - "$work/expected.jsonl" "$work/nats-messages.txt" <<'PY' || fail "the aggregates are not exact"
import json, sys, time
expected = {(e["device"], e["sensor"]): e for e in map(json.loads, open(sys.argv[1]))}
deadline = time.time() + 60
while True:
    fullest = {}
    lines = open(sys.argv[2]).read().split("\n")
    for i, line in enumerate(lines[:-1]):
        if line.startswith("MSG ") and i + 1 < len(lines) - 1:
            try:
                a = json.loads(lines[i + 1])
            except ValueError:
                continue
            key = (a["device"], a["sensor"])
            if key not in fullest or a["count"] > fullest[key]["count"]:
                fullest[key] = a
    if all(k in fullest and fullest[k]["count"] >= e["count"] for k, e in expected.items()):
        break
    if time.time() > deadline:
        sys.exit(f"aggregates missing: {sorted(fullest.items())}")
    time.sleep(0.2)
for k, e in expected.items():
    a = fullest[k]
    got = (a["count"], a["min"], a["max"])
    want = (e["count"], e["min"], e["max"])
    assert got == want, f"{k}: got {got}, expected {want}"
print(f"install-test: {len(expected)} keys aggregated exactly")
PY

echo "== telemetryctl stats as a member of the telemetry group"
gid=$(getent group telemetry | cut -d: -f3)
setpriv --reuid=nobody --regid=nogroup --groups="$gid" telemetryctl --prefix "$prefix" stats > "$work/stats.txt" ||
  fail "telemetryctl stats as a group member"
grep -q ingestd "$work/stats.txt" || fail "stats shows no ingestd: $(cat "$work/stats.txt")"
code=0
setpriv --reuid=nobody --regid=nogroup --clear-groups telemetryctl --prefix "$prefix" stats >/dev/null 2>&1 || code=$?
[ "$code" -eq 4 ] || fail "telemetryctl stats as a non-member exited $code, expected 4 (permission denied)"
# The group reads the stats page and the configuration, and not the secrets.
printf 'not for the group\n' > /etc/telemetry/secrets/install-test
chown root:telemetry /etc/telemetry/secrets/install-test
chmod 0640 /etc/telemetry/secrets/install-test
setpriv --reuid=nobody --regid=nogroup --groups="$gid" cat /etc/telemetry/telemetry.toml >/dev/null ||
  fail "a member of the telemetry group cannot read the configuration"
if setpriv --reuid=nobody --regid=nogroup --groups="$gid" cat /etc/telemetry/secrets/install-test >/dev/null 2>&1; then
  fail "a member of the telemetry group can read the secrets"
fi
setpriv --reuid=telemetry --regid=telemetry --init-groups cat /etc/telemetry/secrets/install-test >/dev/null ||
  fail "the service's user cannot read its secrets"
rm -f /etc/telemetry/secrets/install-test

echo "== SIGKILL the supervisor, then dpkg --purge"
kill -KILL "$supervisor"
wait "$supervisor" 2>/dev/null || true
for _ in $(seq 100); do pgrep -u telemetry >/dev/null || break; sleep 0.1; done
pgrep -u telemetry >/dev/null && fail "stages of the killed supervisor still run"
ls /dev/shm/"$prefix"/stats >/dev/null || fail "expected the killed pipeline's segments in /dev/shm/$prefix"
# The service's user plants links where a root script might write or remove: its state directory
# (where the old postrm wrote .purge-prefix) and its segment directory. Nothing may follow them.
printf 'victim\n' > "$work/victim"
chmod 0644 "$work/victim"
mkdir "$work/victim-dir"
printf 'keep\n' > "$work/victim-dir/keep"
setpriv --reuid=telemetry --regid=telemetry --init-groups ln -s "$work/victim" /var/lib/telemetry/.purge-prefix
setpriv --reuid=telemetry --regid=telemetry --init-groups ln -s "$work/victim-dir" /dev/shm/"$prefix"/planted
dpkg -r telemetry > "$work/dpkg-remove.log" 2>&1 || { cat "$work/dpkg-remove.log"; fail "dpkg -r"; }
[ "$(cat "$work/victim")" = victim ] || fail "postrm remove wrote through the service user's symlink"
[ "$(stat -c %U /etc/telemetry/.purge-prefix)" = root ] || fail "the purge prefix is not root's"
[ "$(cat /etc/telemetry/.purge-prefix)" = "$prefix" ] || fail "the purge prefix is not the configured one"
dpkg --purge telemetry > "$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log"; fail "dpkg --purge"; }
[ "$(cat "$work/victim")" = victim ] || fail "the purge changed the symlink's target"
[ -f "$work/victim-dir/keep" ] || fail "the purge followed a symlink in the segment directory"
left=""
while read -r f; do
  [ "$f" = /. ] && continue
  # Directories the package shares with others (/usr, /etc, /usr/share/man/...) stay.
  if [ -e "$f" ] && ! [ -d "$f" ]; then left+="$f "; fi
done < "$work/files"
for d in /usr/lib/telemetry /usr/share/doc/telemetry /etc/telemetry /var/lib/telemetry; do
  [ -e "$d" ] && left+="$d "
done
[ -e /etc/systemd/system/multi-user.target.wants/telemetry.service ] && left+="the enablement symlink "
for d in /dev/shm/"$prefix" /dev/shm/telemetry; do
  [ -e "$d" ] || [ -L "$d" ] && left+="$d "
done
[ -z "$left" ] || fail "left after purge: $left"
echo "install-test: ok"
