# Shared by the benchmark scripts (sourced, not run): the generated fleets and workloads, and
# the one configuration both tools run with: the same net_pcap device replaying the same pcap,
# one forwarding core (core 1, the main thread on core 0), the same mempool and burst size.
# Expects OUT (output directory) and BIN (the egressfwd binary).

MBUFS=131071
SERVER=l00d0s000

fleet() { # addresses -> fleet file (generated once)
  local f="$OUT/fleet-$1.toml"
  [ -s "$f" ] || python3 scripts/gen_fleet.py --addresses "$1" --out "$f" >&2
  [ -s "$OUT/table-$1.json" ] || "$BIN" table --topology "$f" --server "$SERVER" --json > "$OUT/table-$1.json"
  echo "$f"
}

workload() { # name addresses -> pcap (generated once)
  local name=$1 size=$2 pcap="$OUT/$1-$2.pcap"
  fleet "$size" > /dev/null
  if [ ! -s "$pcap" ]; then
    case $name in
      mix-imix) python3 scripts/gen_bench_traffic.py --table "$OUT/table-$size.json" --workload mix --imix --out "$pcap" >&2 ;;
      *) python3 scripts/gen_bench_traffic.py --table "$OUT/table-$size.json" --workload "$name" --out "$pcap" >&2 ;;
    esac
  fi
  echo "$pcap"
}

egressfwd_config() { # pcap fleet idle_sleep_us metrics_port -> config on stdout
  cat <<TOML
server = "$SERVER"
topology = "$(realpath "$2")"
[dataplane]
workers = 1
cores = [1]
burst = 32
mbufs = $MBUFS
idle_sleep_us = $3
[[port]]
name = "wire"
device = "net_pcap0,rx_pcap=$(realpath "$1"),infinite_rx=1"
roles = ["uplink", "host"]
next_hop_mac = "02:00:00:00:00:fe"
[metrics]
listen = "127.0.0.1:${4:-19790}"
stats_interval_seconds = 1
TOML
}

testpmd_argv() { # pcap mode [EAL memory arguments...] -> the command in TESTPMD_ARGV
  local pcap=$1 mode=$2
  shift 2
  TESTPMD_ARGV=(dpdk-testpmd -l 0,1 "$@" --no-pci
    --vdev "net_pcap0,rx_pcap=$(realpath "$pcap"),infinite_rx=1" --
    --forward-mode="$mode" --port-topology=loop --burst=32 --rxd=1024 --txd=1024
    --total-num-mbufs="$MBUFS" --auto-start)
}
