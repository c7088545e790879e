"""Live capture (issue 20, item 2): dpdk-dumpcap attaches to a running appliance as a DPDK
secondary process, in the runtime directory named after the server, and captures what a
port sends; tshark decodes the tunnel (`-d udp.port==6080,ip`). dpdk-proc-info attaches too.
A stopped appliance leaves neither its runtime directory nor hugepage files behind."""
import glob
import subprocess
import time
from pathlib import Path

import pytest
from conftest import example_node, free_tcp_port, scrape, start, stop, wait_for_metrics, write_config
from packets import egress_addresses
from scapy.all import wrpcap

PREFIX = "egressfwd-lhr01-a"


def hugepages_shared():
    free = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("HugePages_Free")))
    return free > 0 and " hugetlbfs " in open("/proc/mounts").read()


def leftovers():
    runtime = Path("/var/run/dpdk") / PREFIX
    huge = [f for m in open("/proc/mounts") if " hugetlbfs " in m for f in glob.glob(f"{m.split()[1]}/{PREFIX}map_*")]
    return ([str(runtime)] if runtime.exists() else []) + huge


def test_dumpcap_captures_a_running_appliance_and_tshark_decodes_it(tmp_path):
    if not hugepages_shared():
        pytest.fail("live capture needs hugepages: scripts/setup.sh reserves them")
    node = example_node()
    model = node.model
    sources = egress_addresses(model, "same_dc")[:8]
    frames = [node.egress_tcp(src, sport=41000 + i) for i, src in enumerate(sources)]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [
        ("uplink", "net_null0,no-rx=1", ["uplink"]),
        ("host", f"net_pcap0,rx_pcap={tmp_path}/in.pcap,infinite_rx=1", ["host"]),
    ], metrics_port=port)
    proc = start(["run", "--config", config])
    capture = tmp_path / "uplink.pcapng"
    try:
        wait_for_metrics(port, proc)
        # The uplink's device is net_null0: what it sends is every packet, encapsulated.
        dumpcap = subprocess.run(["dpdk-dumpcap", "--file-prefix", PREFIX, "-i", "net_null0", "-c", "200",
                                  "-w", str(capture), "-q"], capture_output=True, text=True, timeout=60)
        assert dumpcap.returncode == 0, dumpcap.stdout + dumpcap.stderr
        info = subprocess.run(["dpdk-proc-info", "--file-prefix", PREFIX, "--log-level=lib.eal:notice", "--", "--stats"],
                              capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stdout + info.stderr
        assert "NIC statistics for port 0" in info.stdout or "RX-packets" in info.stdout, info.stdout
        assert leftovers(), "while running, the shared config is there for secondaries"
        time.sleep(0.2)
        text = scrape(port)
    finally:
        rc, _, err = stop(proc)
    assert rc == 0, err
    assert "live capture: dpdk-dumpcap --file-prefix egressfwd-lhr01-a" in err

    fields = ["ip.src", "ip.dst", "udp.dstport", "ip.ttl", "tcp.srcport"]
    decoded = subprocess.run(["tshark", "-r", str(capture), "-d", "udp.port==6080,ip", "-T", "fields",
                              "-E", "separator=,", "-E", "occurrence=a", "-E", "aggregator=;",
                              *sum((["-e", f] for f in fields), [])], capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in decoded.splitlines() if line]
    assert len(rows) >= 200, f"{len(rows)} packets captured"
    expected = {}
    for frame in frames:
        out, decision = node.forward(frame)
        expected[frame["TCP"].sport] = decision["target_underlay"]
    for ip_src, ip_dst, udp_dport, ttl, sport in rows:
        outer_src, inner_src = ip_src.split(";")
        outer_dst, inner_dst = ip_dst.split(";")
        outer_ttl, inner_ttl = ttl.split(";")
        assert outer_src == "10.10.1.1" and udp_dport == "6080", (ip_src, udp_dport)
        assert outer_dst == expected[int(sport)], (sport, outer_dst)
        assert inner_src in sources and inner_dst == "93.184.216.34"
        assert (outer_ttl, inner_ttl) == ("64", "63")
    assert not leftovers(), f"left behind: {leftovers()}"
    print(f"captured {len(rows)} tunnelled packets, e.g. {rows[0]}; proc-info: {info.stdout.splitlines()[1:3]}")
