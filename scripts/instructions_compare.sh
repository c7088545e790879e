#!/usr/bin/env bash
# Instructions per packet of the pipeline, an earlier commit beside the working tree, counted
# by callgrind over benches/examples/instructions.rs (65,536 packets of one kind against the
# example fleet). Deterministic, unlike timings on a shared machine: what a change costs in
# work per packet (not in cache misses, which the timed benchmarks show).
#
#   scripts/instructions_compare.sh BASE_COMMIT [KIND...]     # kinds: local encap decap pass mix
#
# Prints a markdown table: the pipeline's instructions per packet (the run's count less the
# `baseline` kind's, which does everything but the pipeline) before and after, and the change.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/instructions_compare.sh BASE_COMMIT [KIND...]}
shift
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(local encap decap pass mix)
root=$(pwd)
tree=/tmp/egressfwd-instructions-base
target=${INSTRUCTIONS_TARGET:-/tmp/egressfwd-instructions-target}
git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
git worktree prune
git worktree add --detach "$tree" "$base" >/dev/null
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT

build() { # tree side -> path of the example
  (cd "$1" && CARGO_TARGET_DIR="$target/$2" cargo build --release -q -p egressfwd-benches --example instructions)
  echo "$target/$2/release/examples/instructions"
}
before=$(build "$tree" before)
after=$(build "$root" after)

count() { # binary kind -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" 2>&1 |
    grep -o 'Collected : [0-9]*' | grep -o '[0-9]*$'
}
packets=65536
base_before=$(count "$before" baseline)
base_after=$(count "$after" baseline)
echo "| kind | before | after | change |"
echo "|---|---:|---:|---:|"
for kind in "${kinds[@]}"; do
  b=$(count "$before" "$kind")
  a=$(count "$after" "$kind")
  awk -v k="$kind" -v b="$b" -v a="$a" -v bb="$base_before" -v ba="$base_after" -v n="$packets" 'BEGIN {
    pb = (b - bb) / n; pa = (a - ba) / n
    printf "| %s | %.1f | %.1f | %+.2f%% |\n", k, pb, pa, (pa - pb) / pb * 100
  }'
done
