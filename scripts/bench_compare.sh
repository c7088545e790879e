#!/usr/bin/env bash
# Before and after in one run: the criterion pipeline benchmark of an earlier commit, then of
# the working tree, one right after the other on the same machine, and criterion's change
# for every case the two share (the per-packet cost a change adds: mappings, pins).
#
#   scripts/bench_compare.sh BASE_COMMIT [BENCH] [CRITERION_ARGS...]
#   scripts/bench_compare.sh bcecd8e pipeline --warm-up-time 1 --measurement-time 4
#
# The earlier commit is built in a worktree of its own (its own target directory); both
# write to one criterion directory, so the second run is reported against the first's
# baseline ("change: ..."). Cases only the working tree has are reported without a change.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/bench_compare.sh BASE_COMMIT [BENCH] [CRITERION_ARGS...]}
bench=${2:-pipeline}
shift $(( $# >= 2 ? 2 : 1 ))
args=("$@")

scripts/setup.sh >&2
root=$(pwd)
tree=${BENCH_BASE_TREE:-/tmp/egressfwd-bench-base}
criterion_home=${CRITERION_HOME:-$root/target/criterion-compare}
rm -rf "$criterion_home"
if [ -d "$tree" ]; then
  git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
fi
git worktree prune
git worktree add --detach "$tree" "$base" >&2
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT

# Criterion resolves its directory from CRITERION_HOME; benches run from outside benches/ so
# that the generated fleets land in the same place for both.
run() { # tree baseline-flag -> criterion output
  (cd /tmp && CRITERION_HOME="$criterion_home" cargo bench --manifest-path "$1/Cargo.toml" \
    -p egressfwd-benches --bench "$bench" -- "${args[@]}" "${@:2}")
}

echo "== before: $(git rev-parse --short "$base")" >&2
run "$tree" --save-baseline before
echo "== after: working tree at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')" >&2
run "$root" --baseline-lenient before
