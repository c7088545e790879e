"""Helpers for the end-to-end tests: they run the real `egressfwd` binary on DPDK virtual
devices and look at what comes out the other side, the way the network would."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

BIN = Path(os.environ.get("EGRESSFWD_BIN", ROOT / "target" / "release" / "egressfwd"))
EXAMPLE = ROOT / "topology" / "examples" / "fleet.toml"
UPLINK_NEXT_HOP = "02:00:00:00:00:fe"
HOST_NEXT_HOP = "02:00:00:00:00:01"


@pytest.fixture(scope="session", autouse=True)
def binary_exists():
    assert BIN.exists(), f"{BIN} is missing: build it with `cargo build --release -p egressfwd`"


def example_node(uplink_mac="02:00:00:00:00:0a", host_mac="02:00:00:00:00:0b", **options):
    """Server lhr01-a of the example fleet, as the packet builders and the model see it;
    `options` are Node's data-plane settings (mtu, underlay_mtu, ...)."""
    from golden_model import Model
    from packets import Node
    return Node(Model(EXAMPLE, "lhr01-a"), "10.10.1.1", uplink_mac, UPLINK_NEXT_HOP, host_mac, HOST_NEXT_HOP,
                **options)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, ports, topology=EXAMPLE, server="lhr01-a", workers=1, encap="fou", mtu=1500,
                 metrics_port=None, stats_interval=0, extra_dataplane=""):
    """An appliance config. `ports` is a list of (name, device, roles)."""
    metrics_port = metrics_port or free_tcp_port()
    lines = [f'server = "{server}"', f'topology = "{topology}"', "", "[dataplane]", f"workers = {workers}",
             f'encap = "{encap}"', "encap_port = 6080", f"mtu = {mtu}", extra_dataplane, ""]
    for name, device, roles in ports:
        next_hop = UPLINK_NEXT_HOP if "uplink" in roles else HOST_NEXT_HOP
        lines += ["[[port]]", f'name = "{name}"', f'device = "{device}"',
                  "roles = [" + ", ".join(f'"{r}"' for r in roles) + "]", f'next_hop_mac = "{next_hop}"', ""]
    lines += ["[metrics]", f'listen = "127.0.0.1:{metrics_port}"', f"stats_interval_seconds = {stats_interval}"]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def run(args, timeout=120, **kw):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def start(args):
    return subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc, sig=signal.SIGINT, timeout=60):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def scrape(port, timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read().decode()


def metric(text, name, **labels):
    """The value of one sample of the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name or (want and key.startswith(name + "{") and all(f'{k}="{v}"' in key for k, v in labels.items())):
            return float(value)
    return 0.0


def wait_for_metrics(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"egressfwd exited early ({proc.returncode}): {proc.stderr.read()}")
        try:
            return scrape(port)
        except OSError:
            time.sleep(0.1)
    raise AssertionError("metrics endpoint never came up")


def load_stats(path):
    return json.loads(Path(path).read_text())


def checksums_ok(frame):
    """Recomputes with scapy every IPv4 header, TCP, UDP (unless 0, as FOU sends) and ICMP
    checksum of the frame, through tunnels. An ICMP error's quoted packet is truncated by
    design, so the walk stops at ICMP."""
    from scapy.all import ICMP, IP, TCP, UDP, Ether
    layer = Ether(frame).payload
    while type(layer) in (IP, TCP, UDP, ICMP):
        kind = type(layer)
        if kind is IP:
            fresh = IP(bytes(layer))
            fresh.chksum = None
            if IP(bytes(fresh)).chksum != layer.chksum:
                return False
        elif kind is ICMP:
            fresh = ICMP(bytes(layer))
            fresh.chksum = None
            return ICMP(bytes(fresh)).chksum == layer.chksum
        elif not (kind is UDP and layer.chksum == 0):
            parent = IP(bytes(layer.underlayer))
            parent[kind].chksum = None
            if IP(bytes(parent))[kind].chksum != layer.chksum:
                return False
        layer = layer.payload
    return True


def run_pcap_cases(tmp_path, build_cases, node_options=None, duration=3, **config_options):
    """Runs the appliance over packets and checks that exactly the expected packets came out.

    `build_cases(node)` returns (arrives_on, packet, verdict, expected) tuples. `arrives_on`
    is "uplink" or "host". `verdict` is "uplink", "host", "pass" or "drop:REASON". The inputs
    go into one pcap per port (net_pcap), and the appliance runs with
    `write_config(**config_options)`.
    - Every output frame must be an expected one, and every expected frame must be there,
      judged byte for byte by scapy with every checksum recomputed.
    - Drops must match by reason.
    - Received must equal transmitted plus dropped, and every mbuf must come back.

    Returns the appliance's stats and the cases (with the real port MACs)."""
    from collections import Counter
    from scapy.all import IP, TCP, UDP, Ether, rdpcap, wrpcap
    node_options = node_options or {}
    # Inputs do not depend on the ports' MACs: write them now, build the expected outputs
    # once the appliance has told us its MACs.
    cases = build_cases(example_node("02:00:00:00:00:0a", "02:00:00:00:00:0b", **node_options))
    for side in ("uplink", "host"):
        wrpcap(str(tmp_path / f"{side}-in.pcap"), [p for arrives, p, _, _ in cases if arrives == side])
    config = write_config(tmp_path / "egressfwd.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/uplink-in.pcap,tx_pcap={tmp_path}/uplink-out.pcap", ["uplink"]),
        ("host", f"net_pcap1,rx_pcap={tmp_path}/host-in.pcap,tx_pcap={tmp_path}/host-out.pcap", ["host"]),
    ], **config_options)
    result = run(["run", "--config", config, "--duration", str(duration), "--stats-json", tmp_path / "stats.json"])
    assert result.returncode == 0, result.stderr
    stats = load_stats(tmp_path / "stats.json")
    macs = {p["name"]: p["mac"] for p in stats["ports"]}
    node = example_node(macs["uplink"], macs["host"], **node_options)
    real = build_cases(node)
    # Same inputs but for the Ethernet destination (the port MAC they were addressed to).
    assert [bytes(p)[6:] for _, p, _, _ in real] == [bytes(p)[6:] for _, p, _, _ in cases]

    model = node.model

    def zeroed_port(frame):
        p = Ether(frame)
        l4 = p[TCP] if TCP in p else p[UDP]
        l4.sport, l4.chksum = 0, 0
        return bytes(p)

    def leaves_translated(frame):
        # Contract 7.2: a flow egressing here keeps its source port when the port is in one
        # of this server's slices, else is translated into one (a port chosen at random).
        p = Ether(frame)
        if IP not in p or not (TCP in p or UDP in p) or (UDP in p and p[UDP].dport == node.encap_port):
            return False
        found = model.pool_of(p[IP].src)
        l4 = p[TCP] if TCP in p else p[UDP]
        return bool(found and found[1]) and model.slice_owner(found[1], l4.sport) != model.me["name"]

    # Byte for byte, except local egress that must be translated: compared with source port
    # and L4 checksum zeroed, the new port checked to be in this server's slices, every
    # checksum by scapy below.
    exact = {"uplink": Counter(), "host": Counter()}
    translated = {"uplink": Counter(), "host": Counter()}
    for (arrives, sent, verdict, _), (_, _, _, out) in zip(cases, real):
        if verdict == "pass":
            exact["host" if arrives == "uplink" else "uplink"][bytes(sent)] += 1
        elif verdict == "uplink" and leaves_translated(bytes(out)):
            translated[verdict][zeroed_port(bytes(out))] += 1
        elif verdict in ("uplink", "host"):
            exact[verdict][bytes(out)] += 1

    for side in ("uplink", "host"):
        raw = [bytes(p) for p in rdpcap(str(tmp_path / f"{side}-out.pcap"))]
        unexpected = Counter()
        for f in raw:
            if exact[side][f] > 0:
                exact[side][f] -= 1
            elif side == "uplink" and not leaves_translated(f) and translated[side][zeroed_port(f)] > 0:
                translated[side][zeroed_port(f)] -= 1
            else:
                unexpected[f] += 1
        missing = +exact[side] + +translated[side]
        assert not missing and not unexpected, (
            f"{side}: {sum(missing.values())} expected packets missing, {sum(unexpected.values())} unexpected; "
            f"first missing: {Ether(next(iter(missing))).summary() if missing else None}; "
            f"first unexpected: {Ether(next(iter(unexpected))).summary() if unexpected else None}")
        assert all(checksums_ok(f) for f in raw), f"{side}: a checksum is wrong"

    drops = Counter(v.split(":", 1)[1] for _, _, v, _ in real if v.startswith("drop:"))
    assert {r: n for r, n in stats["drops"].items() if n} == dict(drops)
    acc = stats["accounting"]
    assert acc["received"] == len(real)
    assert acc["received"] == acc["transmitted"] + acc["dropped"], acc
    assert acc["balanced"] is True
    assert stats["mbufs"]["in_use"] == 0
    return stats, real
