#!/usr/bin/env bash
# Builds the Debian package of egressfwd: target/debian/egressfwd_VERSION_ARCH.deb, with the
# binary, the systemd unit, an example config and topology (conffiles in /etc/egressfwd), the
# man page, shell completions, and the Prometheus rules and Grafana dashboard as examples.
# Its dependencies are the Debian packages of the shared libraries the binary links (DPDK's
# runtime libraries among them), found with dpkg -S, as dpkg-shlibdeps would, and DPDK's
# poll-mode drivers, which EAL loads as plugins.
#
#   scripts/package.sh            # prints the path of the .deb
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'package: %s\n' "$*" >&2; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
cargo build --release -p egressfwd >&2
bin=target/release/egressfwd

stage="target/debian/egressfwd_${version}_${arch}"
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/egressfwd" \
  "$stage/usr/share/man/man1" "$stage/usr/share/doc/egressfwd/examples" \
  "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"
# The release build keeps line tables for profiling; the package carries symbols only.
objcopy --strip-debug "$bin" "$stage/usr/bin/egressfwd"
chmod 755 "$stage/usr/bin/egressfwd"
install -m644 deploy/egressfwd.service "$stage/lib/systemd/system/egressfwd.service"
install -m644 deploy/config.toml "$stage/etc/egressfwd/config.toml"
install -m644 topology/examples/fleet.toml "$stage/etc/egressfwd/topology.toml"
"$bin" manpage | gzip -9n > "$stage/usr/share/man/man1/egressfwd.1.gz"
"$bin" completions bash > "$stage/usr/share/bash-completion/completions/egressfwd"
"$bin" completions zsh > "$stage/usr/share/zsh/vendor-completions/_egressfwd"
"$bin" completions fish > "$stage/usr/share/fish/vendor_completions.d/egressfwd.fish"
install -m644 README.md "$stage/usr/share/doc/egressfwd/README.md"
install -m644 deploy/prometheus/egressfwd-alerts.yml deploy/grafana/egressfwd-dashboard.json \
  "$stage/usr/share/doc/egressfwd/examples/"
cat > "$stage/usr/share/doc/egressfwd/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: egressfwd
License: Apache-2.0
COPYRIGHT

# Dependencies: the package of every shared library the binary needs.
depends=$(ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
  dpkg -S "$(realpath "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | while read -r pkg; do
  printf '%s (>= %s)\n' "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg" | sed 's/-[^-]*$//')"
done | paste -sd, - | sed 's/,/, /g')
[ -n "$depends" ] || { log "could not find the packages of the binary's libraries"; exit 1; }
# The poll-mode drivers are not linked: EAL loads them from Debian's plugin directory.
depends="$depends, librte-meta-allpmds (>= 22.11)"

size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: egressfwd
Version: $version
Architecture: $arch
Maintainer: egressfwd developers <egressfwd@example.org>
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Description: userspace egress forwarding appliance on DPDK
 Decides per packet, at line rate, where traffic from a fleet's dedicated egress IP
 addresses may leave: locally, or encapsulated to a holder in the same data center,
 location or the nearest location. Runs as the systemd service egressfwd.
CONTROL
printf '/etc/egressfwd/config.toml\n/etc/egressfwd/topology.toml\n' > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
# Not enabled on install: the config names this server and its ports, which only the
# operator knows. `systemctl enable --now egressfwd` once /etc/egressfwd/config.toml is set.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop egressfwd.service >/dev/null 2>&1 || true
fi
PRERM
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"

deb="target/debian/egressfwd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
log "built $deb (Depends: $depends)"
echo "$deb"
