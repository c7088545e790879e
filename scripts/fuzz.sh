#!/usr/bin/env bash
# Time-boxed runs of every fuzz target (cargo-fuzz, libFuzzer, on stable Rust), each seeded
# with real inputs: the example fleet, a config, flows, and the golden fixtures' frames.
#   scripts/fuzz.sh            # FUZZ_SECONDS (default 20) per target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
seeds=target/fuzz-seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{pipeline,topology_file,config_file,flows_file}
cp topology/examples/fleet.toml "$seeds/topology_file/"
/usr/bin/python3 - "$seeds" <<'PY'
import json, sys
seeds = sys.argv[1]
doc = json.load(open("dataplane/tests/fixtures/golden.json"))
n = 0
for case in doc["cases"]:
    for step in case["steps"]:
        # The pipeline target reads one control byte, then the frame.
        open(f"{seeds}/pipeline/{n:03}", "wb").write(b"\0" + bytes.fromhex(step["in"]))
        n += 1
open(f"{seeds}/flows_file/flows", "w").write(
    "tcp 198.51.100.1 40000 93.184.216.34 443\nudp 2001:db8:1::1 53 2606:4700::1 53\nicmp 8.8.8.8 0 1.1.1.1 0\n")
open(f"{seeds}/config_file/config.toml", "w").write("""server = "lhr01-a"
topology = "fleet.toml"
[dataplane]
workers = 2
encap = "ipip"
[[port]]
name = "uplink"
device = "net_null0"
roles = ["uplink", "host"]
next_hop_mac = "02:00:00:00:00:fe"
[metrics]
listen = "127.0.0.1:9750"
""")
PY
cd fuzz
for target in pipeline topology_file config_file flows_file; do
  echo "fuzz: $target for ${seconds}s" >&2
  log="../target/fuzz-$target.log"
  if ! cargo fuzz run "$target" --sanitizer none "../$seeds/$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed (crash input under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" >&2 || true
done
