#!/usr/bin/env bash
# Throughput of egressfwd side by side with dpdk-testpmd (forward modes macswap and 5tswap)
# on the same input: a net_pcap vdev replaying the same pcap (infinite_rx=1), one forwarding
# core each (main thread on core 0, forwarding on core 1), the same mempool and burst size,
# hugepages when available. Runs alternate tools and repeat, because the machine is shared.
#
#   scripts/bench.sh                         # everything (about 25 minutes)
#   REPEATS=5 DURATION=15 scripts/bench.sh   # longer
#   SIZES="1000 1000000" scripts/bench.sh    # a shorter table-size sweep
#   SWEEP_ROUNDS=9 scripts/bench.sh          # more rounds of the paired table-size sweep
#   FLOOR_ROUNDS=0 scripts/bench.sh          # without the worker-floor phase
#   REPEATS=0 FLOOR_ROUNDS=0 SWEEP_ROUNDS=12 SIZES="1000 1000000" scripts/bench.sh
#                                            # the paired table-size sweep alone
#   BEFORE=COMMIT PAIRED_ROUNDS=6 REPEATS=0 FLOOR_ROUNDS=0 SWEEP_ROUNDS=0 scripts/bench.sh
#                                            # an earlier commit's egressfwd beside this one's,
#                                            # alternated on the mix at 1M addresses
#
# Writes bench-out/results.csv (every run), bench-out/results.md (medians and ratios) and
# bench-out/throughput.png, bench-out/sweep.png.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10}
SIZES=${SIZES:-"1000 100000 1000000 4000000"}
SWEEP_ROUNDS=${SWEEP_ROUNDS:-5}
FLOOR_ROUNDS=${FLOOR_ROUNDS:-3}
BEFORE=${BEFORE:-}
PAIRED_ROUNDS=${PAIRED_ROUNDS:-6}
OUT=${OUT:-bench-out}

scripts/setup.sh
source scripts/bench_common.sh
mkdir -p "$OUT"
# The worker floor: the same binary built to pass every packet unprocessed (first, since both
# builds write target/release/egressfwd).
FLOOR_BIN="$OUT/egressfwd-bench-floor"
if [ "$FLOOR_ROUNDS" -gt 0 ]; then
  cargo build --release -p egressfwd --features bench-floor
  cp target/release/egressfwd "$FLOOR_BIN"
fi
# The earlier commit's binary, built in a worktree of its own with its own target directory.
BEFORE_BIN="$OUT/egressfwd-before"
if [ -n "$BEFORE" ]; then
  tree=/tmp/egressfwd-bench-before
  git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
  git worktree prune
  git worktree add --detach "$tree" "$BEFORE" >&2
  (cd "$tree" && CARGO_TARGET_DIR=/tmp/egressfwd-bench-before-target cargo build --release -p egressfwd)
  cp /tmp/egressfwd-bench-before-target/release/egressfwd "$BEFORE_BIN"
  git worktree remove --force "$tree"
fi
cargo build --release -p egressfwd
BIN=target/release/egressfwd
# Both tools use hugepages when they are reserved, like production; else both run without.
if grep -qs ' hugetlbfs ' /proc/mounts && [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -gt 0 ]; then
  TESTPMD_MEMORY=(--in-memory)
else
  TESTPMD_MEMORY=(--no-huge --no-shconf -m 1024)
fi

# The median packets/s of the periodic "Rx-pps:" lines both tools print, skipping the first
# two seconds (pcap loading, warm-up).
median_pps() {
  grep -E '^\s*Rx-pps:' | awk '{print $2}' | tail -n +3 | sort -n | awk '{v[NR]=$1} END {if (NR==0) print 0; else print v[int((NR+1)/2)]}'
}

run_egressfwd() { # pcap fleet [idle_sleep_us [binary]] -> pps
  local config="$OUT/egressfwd.toml"
  egressfwd_config "$1" "$2" "${3:-0}" > "$config"
  "${4:-$BIN}" run --config "$config" --duration "$DURATION" 2>>"$OUT/egressfwd.log" | median_pps
}

run_testpmd() { # pcap mode -> pps
  testpmd_argv "$1" "$2" "${TESTPMD_MEMORY[@]}"
  # testpmd runs until interrupted; timeout's status 124 is the normal end here.
  { timeout -s INT $((DURATION + 6)) "${TESTPMD_ARGV[@]}" --stats-period 1 \
      2>>"$OUT/testpmd.log" || [ $? -eq 124 ]; } | median_pps
}

CSV="$OUT/results.csv"
echo "workload,addresses,tool,run,mpps" > "$CSV"
record() { # workload size tool run pps
  local mpps
  mpps=$(awk -v p="$5" 'BEGIN {printf "%.3f", p / 1e6}')
  echo "$1,$2,$3,$4,$mpps" >> "$CSV"
  printf 'bench: run %s %-9s %8s addresses %-10s %s Mpps\n' "$4" "$1" "$2" "$3" "$mpps" >&2
  if [ "${5:-0}" = 0 ]; then
    echo "bench: $3 measured nothing on $1 ($2 addresses): see $OUT/egressfwd.log and $OUT/testpmd.log" >&2
    exit 1
  fi
}

CASES=("local 1000000" "forward 1000000" "mix 1000000" "mix-imix 1000000")
for size in $SIZES; do
  [ "$size" = 1000000 ] || CASES+=("mix $size")
done
TOOLS=(egressfwd macswap 5tswap)
for run in $(seq 1 "$REPEATS"); do
  for case in "${CASES[@]}"; do
    read -r name size <<<"$case"
    pcap=$(workload "$name" "$size")
    fleet_file=$(fleet "$size")
    # Rotate the order every run so no tool always goes first.
    for i in 0 1 2; do
      tool=${TOOLS[$(( (i + run) % 3 ))]}
      if [ "$tool" = egressfwd ]; then
        pps=$(run_egressfwd "$pcap" "$fleet_file")
      else
        pps=$(run_testpmd "$pcap" "$tool")
      fi
      record "$name" "$size" "$tool" "$run" "$pps"
    done
    # The cost of backing off when idle (the default, 100 us sleeps) under full load.
    if [ "$case" = "mix 1000000" ]; then
      record "$name" "$size" egressfwd-idle-sleep "$run" "$(run_egressfwd "$pcap" "$fleet_file" 100)"
    fi
  done
done

# The table-size cost, measured on egressfwd alone with the sizes back to back in each round
# (rotating their order): the runs of one round are seconds apart, so the ratio of two of them
# is less exposed to the machine's slow swings than the medians above, whose runs of
# different sizes are minutes apart (not to its fast ones: see docs/performance.md).
read -r -a SWEEP <<<"$SIZES"
for round in $(seq 1 "$SWEEP_ROUNDS"); do
  for i in "${!SWEEP[@]}"; do
    size=${SWEEP[$(( (i + round) % ${#SWEEP[@]} ))]}
    record mix "$size" egressfwd-sweep "$round" \
      "$(run_egressfwd "$(workload mix "$size")" "$(fleet "$size")")"
  done
done

# The floor the worker loop and the driver set: egressfwd without its pipeline, beside
# testpmd's own no-work mode (io), macswap and egressfwd itself, in rounds back to back on the
# mix at 1M addresses (order rotating). What separates egressfwd from the floor is the
# pipeline's cost per packet; what separates the floor from macswap, the worker loop's.
FLOOR_TOOLS=(floor:egressfwd-no-pipeline floor:io floor:macswap floor:egressfwd)
for round in $(seq 1 "$FLOOR_ROUNDS"); do
  pcap=$(workload mix 1000000)
  fleet_file=$(fleet 1000000)
  for i in "${!FLOOR_TOOLS[@]}"; do
    tool=${FLOOR_TOOLS[$(( (i + round) % ${#FLOOR_TOOLS[@]} ))]}
    case $tool in
      floor:egressfwd-no-pipeline) pps=$(run_egressfwd "$pcap" "$fleet_file" 0 "$FLOOR_BIN") ;;
      floor:egressfwd) pps=$(run_egressfwd "$pcap" "$fleet_file") ;;
      *) pps=$(run_testpmd "$pcap" "${tool#floor:}") ;;
    esac
    record mix 1000000 "$tool" "$round" "$pps"
  done
done

# Before and after a change: the earlier commit's egressfwd and this one's, back to back in
# each round (order alternating) on the mix at 1M addresses.
if [ -n "$BEFORE" ]; then
  pcap=$(workload mix 1000000)
  fleet_file=$(fleet 1000000)
  for round in $(seq 1 "$PAIRED_ROUNDS"); do
    for side in $( ((round % 2)) && echo "before after" || echo "after before"); do
      if [ "$side" = before ]; then
        pps=$(run_egressfwd "$pcap" "$fleet_file" 0 "$BEFORE_BIN")
      else
        pps=$(run_egressfwd "$pcap" "$fleet_file")
      fi
      record mix 1000000 "paired:$side" "$round" "$pps"
    done
  done
fi

BEFORE="$BEFORE" /usr/bin/python3 scripts/bench_report.py "$CSV" "$OUT"
