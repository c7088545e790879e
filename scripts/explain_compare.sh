#!/usr/bin/env bash
# `egressfwd explain` of an earlier commit and of the working tree on the same flows: their
# outputs must be byte for byte the same (a refactor must not change a decision). The flows
# are generated over the example fleet, 1M by default: egress from every pool, replies, fleet
# packets from peers and strangers (FOU on the encap port and another, IP-in-IP), IPv6 and
# strangers' traffic.
#
#   scripts/explain_compare.sh BASE_COMMIT [SERVER...]      # default lhr01-a sin01-a
#   FLOWS=100000 scripts/explain_compare.sh HEAD~3
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/explain_compare.sh BASE_COMMIT [SERVER...]}
shift
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(lhr01-a sin01-a)
root=$(pwd)
out=${OUT:-$root/bench-out/explain-compare}
mkdir -p "$out"
tree=/tmp/egressfwd-explain-base
git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
git worktree prune
git worktree add --detach "$tree" "$base" >/dev/null
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
(cd "$tree" && CARGO_TARGET_DIR=/tmp/egressfwd-explain-target cargo build --release -q -p egressfwd)
cargo build --release -q -p egressfwd

python3 - "${FLOWS:-1000000}" > "$out/flows.txt" <<'PY'
import random, sys
r = random.Random(16)
srcs = (["198.51.100.%d" % i for i in range(4)] + ["198.51.100.%d" % i for i in range(64, 80)]
        + ["203.0.113.%d" % i for i in range(8)] + ["203.0.113.%d" % i for i in range(128, 256)]
        + ["192.0.2.10"])
underlays = ["10.10.1.1", "10.10.1.2", "10.10.1.3", "10.10.2.1", "10.20.1.1", "10.20.1.2",
             "10.30.1.1", "10.40.1.1", "10.99.0.1"]
out = []
for _ in range(int(sys.argv[1])):
    k = r.randrange(100)
    proto = r.choice(["tcp", "udp", "tcp", "icmp"])
    sport, dport = r.randrange(1, 65536), r.choice([443, 80, 53, r.randrange(1, 65536)])
    other = "%d.%d.%d.%d" % (r.randrange(1, 224), r.randrange(256), r.randrange(256), r.randrange(256))
    if k < 60:
        out.append(f"{proto} {r.choice(srcs)} {sport} {other} {dport}")
    elif k < 80:
        out.append(f"{proto} {other} {dport} {r.choice(srcs)} {sport}")
    elif k < 88:
        out.append(f"udp {r.choice(underlays)} {sport} 10.10.1.1 {r.choice([6080, 6080, 7777])}")
    elif k < 90:
        out.append(f"4 {r.choice(underlays)} 0 10.10.1.1 0")
    elif k < 95:
        out.append(f"{proto} 2001:db8:{r.choice([1, 2, 3])}::{r.randrange(65536):x} {sport} "
                   f"2001:db8:ff::{r.randrange(65536):x} {dport}")
    else:
        out.append(f"{proto} {other} {sport} {other} {dport}")
print("\n".join(out))
PY
for server in "${servers[@]}"; do
  for side in before after; do
    binary=target/release/egressfwd
    [ "$side" = before ] && binary=/tmp/egressfwd-explain-target/release/egressfwd
    "$binary" explain --topology topology/examples/fleet.toml --server "$server" \
      --flows "$out/flows.txt" > "$out/$side-$server.jsonl"
  done
  cmp "$out/before-$server.jsonl" "$out/after-$server.jsonl"
  echo "$server: $(wc -l < "$out/after-$server.jsonl") decisions, byte for byte the same"
done
