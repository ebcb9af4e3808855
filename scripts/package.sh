#!/usr/bin/env bash
# Builds the Debian package target/debian/telemetry_<version>_<arch>.deb with dpkg-deb
# (docs/decisions.md D19): the release binaries of the workspace, the unit, the sysusers and
# tmpfiles snippets, the configuration as a conffile, man pages, bash/zsh completions, and the
# maintainer scripts of deploy/debian/. Then runs lintian on it when lintian is installed
# (scripts/install-deps.sh installs it) and fails on any error.
#   PACKAGE_FEATURES  cargo features for the release build (e.g. "emitd/kafka"); default none.
#   PACKAGE_NO_BUILD  set to 1 to package the binaries already in target/release.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one version: the workspace Cargo.toml's [workspace.package] version.
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "package: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
arch=$(dpkg --print-architecture)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Reproducible timestamps: the commit's date (or now, outside git).
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

stages=(telemetry-supervisor ingestd decoded aggd emitd)
if [ "${PACKAGE_NO_BUILD:-}" != 1 ]; then
  features=()
  [ -n "${PACKAGE_FEATURES:-}" ] && features=(--features "$PACKAGE_FEATURES")
  TELEMETRY_GIT_COMMIT="$commit" cargo build --release --workspace --bins "${features[@]}"
fi

name="telemetry_${version}_${arch}"
root="target/debian/$name"
rm -rf "$root" "target/debian/$name.deb"
install -d "$root/DEBIAN" "$root/usr/lib/telemetry" "$root/usr/bin" \
  "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
  "$root/etc/telemetry" "$root/usr/share/doc/telemetry" "$root/usr/share/man/man1" \
  "$root/usr/share/man/man8" "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions"

# Stripped as dh_strip does (the release profile keeps line tables for the developers' backtraces).
strip_into() { install -m 0755 "$1" "$2" && strip --strip-unneeded --remove-section=.comment --remove-section=.note "$2"; }
for bin in "${stages[@]}"; do
  strip_into "target/release/$bin" "$root/usr/lib/telemetry/$bin"
done
strip_into target/release/telemetryctl "$root/usr/bin/telemetryctl"
install -m 0644 deploy/telemetry.service "$root/usr/lib/systemd/system/telemetry.service"
install -m 0644 deploy/telemetry.sysusers.conf "$root/usr/lib/sysusers.d/telemetry.conf"
install -m 0644 deploy/telemetry.tmpfiles.conf "$root/usr/lib/tmpfiles.d/telemetry.conf"
# Owner and mode 0640 root:telemetry are set by postinst: the group does not exist at unpack time.
# /etc/telemetry/secrets is not in the package: postinst (and tmpfiles.d) make it 0700
# telemetry:telemetry, so that no unpacked state ever lets the group in.
install -m 0644 deploy/telemetry.toml "$root/etc/telemetry/telemetry.toml"
install -m 0644 deploy/completions/telemetryctl.bash "$root/usr/share/bash-completion/completions/telemetryctl"
install -m 0644 deploy/completions/telemetryctl.zsh "$root/usr/share/zsh/vendor-completions/_telemetryctl"
gzip -9n < deploy/man/telemetryctl.1 > "$root/usr/share/man/man1/telemetryctl.1.gz"
gzip -9n < deploy/man/telemetry-supervisor.8 > "$root/usr/share/man/man8/telemetry-supervisor.8.gz"
install -m 0644 README.md "$root/usr/share/doc/telemetry/README.md"
install -m 0644 deploy/debian/copyright "$root/usr/share/doc/telemetry/copyright"
{
  echo "telemetry ($version) unstable; urgency=medium"
  echo
  echo "  * Built from git commit $commit."
  echo
  echo " -- Telemetry maintainers <telemetry@example.invalid>  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$root/usr/share/doc/telemetry/changelog.gz"
chmod 0644 "$root/usr/share/doc/telemetry/changelog.gz" "$root"/usr/share/man/man*/*.gz

for script in postinst prerm postrm; do
  install -m 0755 "deploy/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/telemetry/telemetry.toml > "$root/DEBIAN/conffiles"

# The shared libraries the binaries link (libc, libgcc_s), as dpkg-shlibdeps finds them.
shlibs_dir=$(mktemp -d)
mkdir "$shlibs_dir/debian"
printf 'Source: telemetry\n\nPackage: telemetry\nArchitecture: any\n' > "$shlibs_dir/debian/control"
ln -s "$PWD/$root" "$shlibs_dir/debian/telemetry"
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O debian/telemetry/usr/lib/telemetry/* \
  debian/telemetry/usr/bin/telemetryctl | sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlibs_dir"
[ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no shared libraries" >&2; exit 1; }
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: telemetry
Version: $version
Architecture: $arch
Maintainer: Telemetry maintainers <telemetry@example.invalid>
Installed-Size: $installed_kb
Depends: ${shlibs:+$shlibs, }adduser, init-system-helpers (>= 1.54~)
Section: net
Priority: optional
Homepage: https://example.invalid/telemetry
Description: MQTT to NATS telemetry pipeline through shared-memory rings
 Four stage processes exchange fixed-size records through single-producer
 single-consumer rings in /dev/shm: ingestd (MQTT in), decoded (CBOR/JSON
 to readings), aggd (sliding windows) and emitd (NATS out). A supervisor
 runs and restarts them as the systemd service telemetry.service, and
 telemetryctl shows counters, drops and the stages' health.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$root" "target/debian/$name.deb" >/dev/null
echo "package: target/debian/$name.deb"

if command -v lintian >/dev/null 2>&1; then
  # Errors fail the build; warnings are listed (there are none, and no overrides). The info tags
  # left are docs/decisions.md D19's.
  lintian --fail-on error "target/debian/$name.deb"
  echo "package: lintian found no errors"
else
  echo "package: lintian not installed; not checked" >&2
fi
