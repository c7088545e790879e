#!/usr/bin/env bash
# What live capture costs the forwarding core, on the bench mix at 1M addresses (the setup of
# scripts/bench.sh: one net_pcap port replaying the mix, one worker on core 1), in paired
# timed runs that alternate three ways of running the same binary:
#   no-capture   EAL in memory (`-- --in-memory`): no shared config, pdump not initialised,
#                as before capture existed;
#   ready        the default: shared config and pdump initialised, nobody capturing;
#   capturing    the default with dpdk-dumpcap attached to the port, writing to /dev/null.
#
#   scripts/bench_capture.sh                  # ROUNDS=5 DURATION=10: about 3 minutes
#
# Writes $OUT/capture.csv and prints the medians; needs hugepages (capture shares them).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench-out}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
SIZE=${SIZE:-1000000}

scripts/setup.sh
cargo build --release -p egressfwd
source scripts/bench_common.sh
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
BIN="$OUT/egressfwd"
cp target/release/egressfwd "$BIN"
pcap=$(workload mix "$SIZE")
fleet_file=$(fleet "$SIZE")
config="$OUT/egressfwd-capture.toml"
egressfwd_config "$pcap" "$fleet_file" 0 19791 > "$config"

median_pps() {
  grep -E '^\s*Rx-pps:' | awk '{print $2}' | tail -n +3 | sort -n | awk '{v[NR]=$1} END {if (NR==0) print 0; else print v[int((NR+1)/2)]}'
}

run() { # variant -> pps
  case $1 in
    no-capture) "$BIN" run --config "$config" --duration "$DURATION" -- --in-memory 2>>"$OUT/capture.log" | median_pps ;;
    ready) "$BIN" run --config "$config" --duration "$DURATION" 2>>"$OUT/capture.log" | median_pps ;;
    capturing)
      ( sleep 2; exec dpdk-dumpcap --file-prefix "egressfwd-$SERVER" -i net_pcap0 -w /dev/null -q \
          >>"$OUT/capture.log" 2>&1 ) &
      local dumpcap=$!
      "$BIN" run --config "$config" --duration "$DURATION" 2>>"$OUT/capture.log" | median_pps
      kill "$dumpcap" 2>/dev/null || true
      wait "$dumpcap" 2>/dev/null || true ;;
  esac
}

echo "variant,round,mpps" > "$OUT/capture.csv"
for round in $(seq 1 "$ROUNDS"); do
  for variant in no-capture ready capturing; do
    pps=$(run "$variant")
    mpps=$(awk -v p="$pps" 'BEGIN {printf "%.3f", p / 1e6}')
    echo "$variant,$round,$mpps" >> "$OUT/capture.csv"
    echo "bench_capture: round $round $variant $mpps Mpps" >&2
  done
done
echo "| variant | median Mpps | runs | vs no-capture |"
echo "|---|---:|---|---:|"
base=$(awk -F, '$1=="no-capture" {print $3}' "$OUT/capture.csv" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
for variant in no-capture ready capturing; do
  runs=$(awk -F, -v v="$variant" '$1==v {print $3}' "$OUT/capture.csv" | paste -sd' ' -)
  median=$(awk -F, -v v="$variant" '$1==v {print $3}' "$OUT/capture.csv" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "| $variant | $median | $runs | $(awk -v m="$median" -v b="$base" 'BEGIN {printf "%.3f", m / b}') |"
done
