#!/usr/bin/env bash
# Instructions per packet of the pipeline, an earlier commit beside the working tree, counted
# by callgrind over benches/examples/instructions.rs (65,536 packets of one kind against the
# example fleet). Deterministic, unlike timings on a shared machine: what a change costs in
# work per packet (not in cache misses, which the timed benchmarks show).
#
#   scripts/instructions_compare.sh BASE_COMMIT [KIND...]     # kinds: local encap decap pass mix
#
# Prints a markdown table: the pipeline's instructions per packet (only those inside
# `egressfwd_benches::run_burst`, which the harness calls per burst) before and after, and the
# change. Both sides must say the same of where the packets went, or the script fails.
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

count() { # binary kind -> "instructions verdicts"
  local out
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
    --toggle-collect='egressfwd_benches::run_burst' "$1" "$2" 2>&1)
  echo "$(grep -o 'Collected : [0-9]*' <<<"$out" | grep -o '[0-9]*$') $(grep -o "^$2: .*" <<<"$out")"
}
packets=65536
echo "| kind | before | after | change |"
echo "|---|---:|---:|---:|"
for kind in "${kinds[@]}"; do
  read -r b said_before <<<"$(count "$before" "$kind")"
  read -r a said_after <<<"$(count "$after" "$kind")"
  if [ "$said_before" != "$said_after" ]; then
    echo "$kind: before says \"$said_before\", after \"$said_after\"" >&2
    exit 1
  fi
  awk -v k="$kind" -v b="$b" -v a="$a" -v n="$packets" 'BEGIN {
    printf "| %s | %.1f | %.1f | %+.2f%% |\n", k, b / n, a / n, (a - b) / b * 100
  }'
done
