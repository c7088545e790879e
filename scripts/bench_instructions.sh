#!/usr/bin/env bash
# Instructions per packet of the forwarding thread, egressfwd beside dpdk-testpmd, on the same
# input and configuration as scripts/bench.sh, counted by valgrind's callgrind. Unlike the
# timed runs, the counts do not depend on what else the shared machine is doing: they show
# where the per-packet work goes and how far apart the tools are, without the noise (a count
# is not a time: cache misses and instruction-level parallelism are not in it).
#
#   scripts/bench_instructions.sh                       # the mix at 1M addresses (~15 minutes)
#   WORKLOAD="forward 1000000" scripts/bench_instructions.sh
#   TOOLS="egressfwd io" SECONDS_EACH=20 scripts/bench_instructions.sh
#   BEFORE_BIN=bench-out/paired/egressfwd-before TOOLS="egressfwd-before egressfwd" \
#     scripts/bench_instructions.sh                    # an earlier build beside this one
#
# Writes $OUT/instructions.csv and prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-out}
WORKLOAD=${WORKLOAD:-"mix 1000000"}
TOOLS=${TOOLS:-"egressfwd egressfwd-no-pipeline io macswap 5tswap"}
SECONDS_EACH=${SECONDS_EACH:-30}
# valgrind cannot reserve the virtual area EAL wants for hugepages: both tools run without.
EAL_MEMORY=(--no-huge --no-shconf -m 1024)

scripts/setup.sh
source scripts/bench_common.sh
mkdir -p "$OUT/callgrind"
OUT=$(realpath "$OUT")
FLOOR_BIN="$OUT/egressfwd-bench-floor"
if [[ " $TOOLS " == *" egressfwd-no-pipeline "* ]]; then
  cargo build --release -p egressfwd --features bench-floor
  cp target/release/egressfwd "$FLOOR_BIN"
fi
cargo build --release -p egressfwd
# Copies, so that a build while this runs does not change what is measured.
BIN="$OUT/egressfwd"
cp target/release/egressfwd "$BIN"

read -r name size <<<"$WORKLOAD"
pcap=$(workload "$name" "$size")
fleet_file=$(fleet "$size")

# Runs one tool under callgrind, one profile per thread; prints "packets instructions" where
# instructions are those of the busiest thread (the forwarding one) and packets what the
# tool's final statistics say it received.
count() { # tool -> "packets instructions"
  local tool=$1 profile="$OUT/callgrind/$1" log="$OUT/callgrind/$1.log"
  rm -f "$profile"-*
  # Fair scheduling: valgrind runs one thread at a time, and by default the busy-polling
  # forwarding thread can starve the one that would stop the run.
  local valgrind=(valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes --callgrind-out-file="$profile")
  case $tool in
    egressfwd | egressfwd-no-pipeline | egressfwd-before)
      local binary=$BIN
      [ "$tool" = egressfwd-no-pipeline ] && binary=$FLOOR_BIN
      [ "$tool" = egressfwd-before ] && binary=${BEFORE_BIN:?egressfwd-before needs BEFORE_BIN}
      egressfwd_config "$pcap" "$fleet_file" 0 19792 > "$OUT/callgrind/egressfwd.toml"
      "${valgrind[@]}" "$binary" run --config "$OUT/callgrind/egressfwd.toml" \
        --duration "$SECONDS_EACH" -- "${EAL_MEMORY[@]}" > "$log" 2>&1
      ;;
    *)
      testpmd_argv "$pcap" "$tool" "${EAL_MEMORY[@]}"
      # Stopped by SIGINT like an operator would; timeout's status 124 is the normal end.
      timeout -s INT "$SECONDS_EACH" "${valgrind[@]}" "${TESTPMD_ARGV[@]}" > "$log" 2>&1 ||
        [ $? -eq 124 ]
      ;;
  esac
  local packets instructions
  packets=$(grep -E '^\s*RX-packets:' "$log" | tail -1 | awk '{print $2}')
  instructions=$(cat "$profile"-* | awk '/^summary:/ {if ($2 > max) max = $2} END {print max + 0}')
  if [[ $tool == egressfwd* ]]; then
    # The worker is an EAL lcore: count what it ran (dpdk_sys::lcore::run_work, inclusive),
    # not its thread's whole profile. valgrind reuses the numbers of threads that ended, and
    # EAL starts its lcores just after the topology compile's helper threads have ended, so the
    # worker's profile can hold one of theirs. Older builds (workers on plain threads) lack
    # the symbol and keep the busiest thread.
    local worker
    worker=$(for f in "$profile"-*; do
      callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk '/lcore\.rs:dpdk_sys::lcore::run_work/ {gsub(",", "", $1); print $1; exit}'
    done | sort -n | tail -1)
    [ -n "$worker" ] && instructions=$worker
  fi
  if [ -z "$packets" ] || [ "$packets" = 0 ] || [ "$instructions" = 0 ]; then
    echo "bench_instructions: $tool counted nothing: see $log" >&2
    exit 1
  fi
  echo "$packets $instructions"
}

CSV="$OUT/instructions.csv"
echo "workload,addresses,tool,packets,instructions,instructions_per_packet" > "$CSV"
for tool in $TOOLS; do
  read -r packets instructions < <(count "$tool")
  per_packet=$(awk -v i="$instructions" -v p="$packets" 'BEGIN {printf "%.1f", i / p}')
  echo "$name,$size,$tool,$packets,$instructions,$per_packet" >> "$CSV"
  printf 'bench_instructions: %-22s %12s packets %6s instructions/packet\n' \
    "$tool" "$packets" "$per_packet" >&2
done

# The table: each tool's count, and what egressfwd's count is as a fraction of each testpmd
# mode's (the throughput ratio the instruction counts alone would predict).
awk -F, 'NR > 1 {tool[NR] = $3; ipp[NR] = $6; by[$3] = $6; n = NR}
  END {
    print "| tool | instructions per packet | testpmd mode / this (instructions) |"
    print "|---|---:|---:|"
    for (r = 2; r <= n; r++) {
      ratios = ""
      for (m = 2; m <= n; m++) if (tool[m] !~ /^egressfwd/ && tool[r] ~ /^egressfwd/)
        ratios = ratios sprintf("%s%s %.2f", ratios == "" ? "" : ", ", tool[m], ipp[m] / ipp[r])
      printf "| %s | %s | %s |\n", tool[r], ipp[r], ratios
    }
  }' "$CSV"
