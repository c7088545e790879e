"""Contract section 5 through the running appliance: a pcap of every kind of packet goes in
through net_pcap ports, the output pcaps are read back with scapy, and every packet must be
exactly the expected one (built from the contract and the independent golden model), with
every checksum valid and every packet accounted for."""
from collections import Counter

from conftest import example_node, load_stats, run, write_config
from packets import mixed_traffic, reply_flow
from scapy.all import ICMP, IP, TCP, UDP, Ether, rdpcap, wrpcap


def build_cases(node):
    cases = mixed_traffic(node, 360, seed=7)
    cases += reply_flow(node, "10.20.1.1", "198.51.100.2")
    big = node.egress_tcp("203.0.113.1", payload=b"z" * 1440)           # DF, too big for FOU
    cases.append(("host", big, "host", node.frag_needed(big)))
    big_no_df = node.egress_tcp("203.0.113.1", payload=b"z" * 1440, flags=0)
    cases.append(("host", big_no_df, "drop:too_big", None))
    cases.append(("host", node.egress_tcp("198.51.100.1", ttl=1), "drop:ttl_exceeded", None))
    good = bytes(node.egress_tcp("198.51.100.1"))
    cases.append(("host", Ether(good[:30]), "drop:truncated", None))
    cases.append(("host", Ether(good[:14] + bytes([0x65]) + good[15:]), "drop:bad_version", None))
    cases.append(("host", Ether(good[:14] + bytes([0x44]) + good[15:]), "drop:bad_header_length", None))
    cases.append(("host", Ether(good[:16] + bytes([0x0f, 0xff]) + good[18:]), "drop:bad_total_length", None))
    not_egress_inner = IP(src="1.1.1.1", dst="8.8.8.8") / UDP(sport=1, dport=2)
    cases.append(("uplink", node.fleet_packet("10.20.1.1", not_egress_inner), "drop:bad_inner", None))
    # Larger than one mbuf: net_pcap chains several, which the appliance does not process.
    jumbo = node.egress_tcp("198.51.100.1", payload=b"j" * 3000)
    cases.append(("host", jumbo, "drop:multi_segment", None))
    return cases


def checksums_ok(frame):
    """Recomputes with scapy every IPv4 header, TCP, UDP (unless 0, as FOU sends) and ICMP
    checksum of the frame, through tunnels. An ICMP error's quoted packet is truncated by
    design, so the walk stops at ICMP."""
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


def test_every_packet_leaves_as_the_contract_says(tmp_path):
    node = example_node
    # Inputs do not depend on the ports' MACs: write them now, build the expected outputs
    # once the appliance has told us its MACs.
    cases = build_cases(node("02:00:00:00:00:0a", "02:00:00:00:00:0b"))
    for side in ("uplink", "host"):
        wrpcap(str(tmp_path / f"{side}-in.pcap"), [p for arrives, p, _, _ in cases if arrives == side])
    config = write_config(tmp_path / "egressfwd.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/uplink-in.pcap,tx_pcap={tmp_path}/uplink-out.pcap", ["uplink"]),
        ("host", f"net_pcap1,rx_pcap={tmp_path}/host-in.pcap,tx_pcap={tmp_path}/host-out.pcap", ["host"]),
    ])
    result = run(["run", "--config", config, "--duration", "3", "--stats-json", tmp_path / "stats.json"])
    assert result.returncode == 0, result.stderr
    stats = load_stats(tmp_path / "stats.json")
    macs = {p["name"]: p["mac"] for p in stats["ports"]}
    real = build_cases(node(macs["uplink"], macs["host"]))
    # Same inputs but for the Ethernet destination (the port MAC they were addressed to).
    assert [bytes(p)[6:] for _, p, _, _ in real] == [bytes(p)[6:] for _, p, _, _ in cases]

    expected = {"uplink": Counter(), "host": Counter()}
    for (arrives, sent, verdict, _), (_, _, _, out) in zip(cases, real):
        if verdict == "pass":
            # Passed unchanged: exactly the bytes that went in.
            expected["host" if arrives == "uplink" else "uplink"][bytes(sent)] += 1
        elif verdict in ("uplink", "host"):
            expected[verdict][bytes(out)] += 1
    for side in ("uplink", "host"):
        got = [bytes(p) for p in rdpcap(str(tmp_path / f"{side}-out.pcap"))]
        missing = expected[side] - Counter(got)
        unexpected = Counter(got) - expected[side]
        assert not missing and not unexpected, (
            f"{side}: {sum(missing.values())} expected packets missing, {sum(unexpected.values())} unexpected; "
            f"first missing: {Ether(next(iter(missing))).summary() if missing else None}; "
            f"first unexpected: {Ether(next(iter(unexpected))).summary() if unexpected else None}")
        assert all(checksums_ok(f) for f in got), f"{side}: a checksum is wrong"

    drops = Counter(v.split(":", 1)[1] for _, _, v, _ in real if v.startswith("drop:"))
    assert {r: n for r, n in stats["drops"].items() if n} == dict(drops)
    acc = stats["accounting"]
    assert acc["received"] == len(real)
    assert acc["received"] == acc["transmitted"] + acc["dropped"], acc
    assert acc["balanced"] is True
    assert stats["mbufs"]["in_use"] == 0
    for tier in ("local", "same_dc", "same_location", "nearest_location", "ipv6_local"):
        assert stats["decisions"][tier] > 0, tier
    assert stats["replies_to_peer"] == 1 and stats["icmp_frag_needed"] == 1
