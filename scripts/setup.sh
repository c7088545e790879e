#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need on Debian 12, and reserves
# hugepages when the kernel lets us. Idempotent: safe to run any number of times.
set -euo pipefail

APT_PACKAGES=(
  # build: DPDK headers and libraries, bindgen's libclang, pkg-config
  libdpdk-dev dpdk pkg-config clang libclang-dev
  # tests and benchmarks: dpdk-testpmd, packet checks, metrics lint, plots
  dpdk-dev tshark prometheus python3-scapy python3-matplotlib python3-pytest
  # network-namespace tests (the metrics listener, the fleet: veth offloads, real clients);
  # profiling
  iproute2 iputils-ping ethtool curl tcpdump valgrind
  # the packaged service: the unit's check (systemd-analyze), the package (objcopy, dpkg-deb),
  # the man page's rendering
  systemd binutils man-db
  # the CPU check of a build for x86-64-v3, run as older CPUs (user-mode emulation)
  qemu-user
)

log() { printf 'setup: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "run as root (apt and hugepages need it)"
    exit 1
  fi
}

install_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt packages already installed"
    return
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Hugepages make DPDK faster and are what production uses; every command also works with
# --no-huge, so failure here (containers, no permission) is only a warning.
reserve_hugepages() {
  local want=${EGRESSFWD_HUGEPAGES:-1024}   # 2 MiB pages: 2 GiB
  local sysfs=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  if [ ! -w "$sysfs" ]; then
    log "cannot reserve hugepages here; DPDK will run with --no-huge"
    return
  fi
  local have
  have=$(cat "$sysfs")
  if [ "$have" -lt "$want" ]; then
    echo "$want" > "$sysfs" 2>/dev/null || true
    have=$(cat "$sysfs")
  fi
  if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || log "cannot mount hugetlbfs; DPDK will run with --no-huge"
  fi
  log "hugepages (2 MiB) reserved: $have"
}

install_rust_tools() {
  if command -v rustup >/dev/null; then
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  fi
  # The fuzz targets build with cargo-fuzz; it runs on stable with `--sanitizer none`.
  if ! command -v cargo-fuzz >/dev/null; then
    log "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
}

need_root
install_packages
install_rust_tools
reserve_hugepages
log "done"
