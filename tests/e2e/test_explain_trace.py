"""`egressfwd explain --trace` against the running appliance: the frames `explain` builds for a
set of flows (forwarded, local egress, a fleet packet from a peer, replies steered and to
the host, not egress, TTL 1, too big for the tunnel), replayed through `egressfwd run` on
pcap ports. Every frame the trace says was sent is the very frame the appliance sent, on the
port the trace names (the ports' own MACs aside: the trace cannot know a NIC's), and every
drop it names is the appliance's drop."""
import json
from collections import Counter

from conftest import BIN, EXAMPLE, load_stats, run, write_config
from golden_model import Model
from scapy.all import rdpcap, wrpcap, Ether

ORIGIN = "93.184.216.34"


def explain(*args):
    out = run(["explain", "--topology", EXAMPLE, "--server", "lhr01-a", "--trace", *map(str, args)])
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_trace_frames_are_what_the_appliance_sends(tmp_path):
    model = Model(EXAMPLE, "lhr01-a")
    mine = next(p for p in range(40000, 60000) if model.slice_owner("acme", p) == "lhr01-a")
    theirs = next(p for p in range(40000, 60000) if model.slice_owner("acme", p) == "cdg01-b")
    ours_unknown = next(p for p in range(mine + 1, 60000) if model.slice_owner("acme", p) == "lhr01-a")
    flows = tmp_path / "flows"
    flows.write_text(
        f"tcp 198.51.100.64 41000 {ORIGIN} 443\n"          # forwarded to a holder in lhr01
        f"udp 203.0.113.1 41001 {ORIGIN} 53\n"             # forwarded to lhr02-a
        f"tcp 198.51.100.1 {mine} {ORIGIN} 443\n"          # local egress, its port kept
        f"tcp {ORIGIN} 443 198.51.100.1 {theirs}\n"        # a reply for cdg01-b's slice: steered
        f"tcp {ORIGIN} 443 198.51.100.1 {ours_unknown}\n"  # a reply for our slice, no mapping: host
        f"udp 192.0.2.200 5000 192.0.2.201 53\n"           # not egress: passed
    )
    traced = explain("--flows", flows)
    traced += explain("--from", "cdg01-b", "--src", "198.51.100.2", "--dst", ORIGIN, "--sport", mine, "--dport", 80)
    traced += explain("--ttl", 1, "--src", "198.51.100.64", "--dst", ORIGIN, "--sport", 41002, "--dport", 443)
    traced += explain("--size", 1500, "--tcp-flags", "A", "--src", "198.51.100.64", "--dst", ORIGIN,
                      "--sport", 41003, "--dport", 443)
    for t in traced:
        print(f"{t['proto']} {t['src']}:{t['sport']} -> {t['dst']}:{t['dport']}: {t['trace']['verdict']}; "
              f"{', '.join(t['trace']['steps'])}; sent {t['trace']['sent']}")
    arrivals = {"host": [], "uplink": []}
    for t in traced:
        side = "host" if t["trace"]["steps"][0] == "arrived host" else "uplink"
        arrivals[side].append(Ether(bytes.fromhex(t["trace"]["frame_in"])))
    for side, frames in arrivals.items():
        wrpcap(str(tmp_path / f"{side}-in.pcap"), frames)
    config = write_config(tmp_path / "c.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/uplink-in.pcap,tx_pcap={tmp_path}/uplink-out.pcap", ["uplink"]),
        ("host", f"net_pcap1,rx_pcap={tmp_path}/host-in.pcap,tx_pcap={tmp_path}/host-out.pcap", ["host"]),
    ])
    result = run(["run", "--config", config, "--duration", "2", "--stats-json", tmp_path / "stats.json"])
    assert result.returncode == 0, result.stderr
    stats = load_stats(tmp_path / "stats.json")
    macs = {p["name"]: bytes.fromhex(p["mac"].replace(":", "")) for p in stats["ports"]}

    expected = {"host": Counter(), "uplink": Counter()}
    drops = Counter()
    for t in traced:
        verdict = t["trace"]["verdict"]
        if verdict.startswith("drop "):
            drops[verdict[5:]] += 1
            continue
        arrived_on = "host" if t["trace"]["steps"][0] == "arrived host" else "uplink"
        side = {"pass": "uplink" if arrived_on == "host" else "host"}.get(verdict, verdict)
        out = bytes.fromhex(t["trace"]["frame_out"])
        if verdict != "pass":
            # The source MAC is the port's own: the appliance's, not the trace's placeholder.
            out = out[:6] + macs[side] + out[12:]
        expected[side][out] += 1
    for side in ("host", "uplink"):
        sent = Counter(bytes(p) for p in rdpcap(str(tmp_path / f"{side}-out.pcap")))
        assert sent == expected[side], f"{side}: the appliance sent {sent - expected[side]}, " \
                                       f"the trace said {expected[side] - sent}"
    assert drops == Counter({"ttl_exceeded": 1})
    assert {k: v for k, v in stats["drops"].items() if v} == dict(drops)
    verdicts = Counter(t["trace"]["verdict"] for t in traced)
    assert verdicts == Counter({"uplink": 5, "host": 2, "pass": 1, "drop ttl_exceeded": 1}), verdicts
