#!/usr/bin/env bash
# Before and after in one run: the criterion benchmark of an earlier commit and of the
# working tree, alternated for several rounds on the same machine, and for every case the
# two share the ratio after/before of each round's median, then the median of the rounds.
# This machine is shared: a single before-then-after pair drifts with its neighbours'
# load, alternating rounds shows how much.
#
#   scripts/bench_compare.sh BASE_COMMIT [BENCH] [CRITERION_ARGS...]
#   ROUNDS=3 scripts/bench_compare.sh bcecd8e pipeline --warm-up-time 1 --measurement-time 3
#
# The earlier commit is built in a worktree of its own (its own target directory); both
# write their estimates to one criterion directory, one baseline per round and side.
# Writes $OUT/compare.csv (round, case, before_ns, after_ns) and prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: scripts/bench_compare.sh BASE_COMMIT [BENCH] [CRITERION_ARGS...]}
bench=${2:-pipeline}
shift $(( $# >= 2 ? 2 : 1 ))
args=("$@")
rounds=${ROUNDS:-3}

scripts/setup.sh >&2
root=$(pwd)
OUT=${OUT:-$root/bench-out/compare}
mkdir -p "$OUT"
tree=${BENCH_BASE_TREE:-/tmp/egressfwd-bench-base}
criterion_home="$OUT/criterion"
rm -rf "$criterion_home"
if [ -d "$tree" ]; then
  git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
fi
git worktree prune
git worktree add --detach "$tree" "$base" >&2
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT

# The bench executable of a tree (built once; run from outside benches/ so that both use the
# same generated fleets).
executable() { # tree -> path
  (cd /tmp && cargo bench --manifest-path "$1/Cargo.toml" -p egressfwd-benches --bench "$bench" \
    --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$bench" | tail -1
}
before_bin=$(executable "$tree")
after_bin=$(executable "$root")
[ -x "$before_bin" ] && [ -x "$after_bin" ] || { echo "bench_compare: a build failed" >&2; exit 1; }

for round in $(seq 1 "$rounds"); do
  for side in before after; do
    bin=$before_bin
    [ "$side" = after ] && bin=$after_bin
    echo "== round $round: $side" >&2
    (cd /tmp && CRITERION_HOME="$criterion_home" "$bin" --bench "${args[@]}" \
      --save-baseline "r${round}-$side" >/dev/null)
  done
done

python3 - "$criterion_home" "$rounds" "$OUT/compare.csv" "$(git rev-parse --short "$base")" <<'PY'
import csv, json, pathlib, statistics, sys
home, rounds, out, base = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows, cases = [], {}
for est in sorted(home.glob("**/r1-before/estimates.json")):
    case = str(est.parent.parent.relative_to(home))
    ratios = []
    for r in range(1, rounds + 1):
        side = {}
        for s in ("before", "after"):
            f = est.parent.parent / f"r{r}-{s}" / "estimates.json"
            if f.exists():
                side[s] = json.loads(f.read_text())["median"]["point_estimate"]
        if len(side) == 2:
            rows.append((r, case, side["before"], side["after"]))
            ratios.append(side["after"] / side["before"])
    if ratios:
        cases[case] = ratios
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["round", "case", "before_ns", "after_ns"])
    w.writerows(rows)
print(f"| case | after / before ({base} → working tree), each round | median |")
print("|---|---|---:|")
for case, ratios in cases.items():
    print(f"| {case} | {', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f} |")
PY
