"""A kernel interface as the host port (net_tap): frames sent by the kernel's side go through
the appliance, and the uplink (a pcap) shows them locally egressed and encapsulated."""
import os
import subprocess
import time
import uuid

import pytest
from conftest import example_node, free_tcp_port, load_stats, start, stop, wait_for_metrics, write_config
from scapy.all import rdpcap, sendp, wrpcap


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_packets_from_a_kernel_tap_interface(tmp_path):
    iface = f"efw{uuid.uuid4().hex[:8]}"
    wrpcap(str(tmp_path / "empty.pcap"), [])
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/empty.pcap,tx_pcap={tmp_path}/uplink-out.pcap", ["uplink"]),
        ("host", f"net_tap0,iface={iface}", ["host"]),
    ], metrics_port=port)
    proc = start(["run", "--config", config, "--stats-json", tmp_path / "s.json"])
    try:
        wait_for_metrics(port, proc)
        # Keep the kernel's own IPv6 chatter off the interface, then bring it up.
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"], check=False)
        subprocess.run(["ip", "link", "set", iface, "up"], check=True)
        time.sleep(0.5)
        node = example_node("02:00:00:00:00:00", "02:00:00:00:00:00")
        local = node.egress_tcp("198.51.100.1", sport=41000)
        forward = node.egress_tcp("203.0.113.1", sport=41001)
        sendp([local, forward], iface=iface, verbose=False)
        time.sleep(1.0)
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    stats = load_stats(tmp_path / "s.json")
    macs = {p["name"]: p["mac"] for p in stats["ports"]}
    node.uplink_mac, node.host_mac = macs["uplink"], macs["host"]
    sent = {bytes(p) for p in rdpcap(str(tmp_path / "uplink-out.pcap"))}
    assert bytes(node.routed(local)) in sent, "local egress from the tap reached the uplink"
    expected_forward, decision = node.forward(forward)
    assert decision["target_server"] == "lhr02-a"
    assert bytes(expected_forward) in sent, "the forwarded packet left encapsulated"
    host = next(p for p in stats["ports"] if p["name"] == "host")
    assert host["rx_packets"] >= 2
    assert stats["accounting"]["balanced"] and stats["mbufs"]["in_use"] == 0
