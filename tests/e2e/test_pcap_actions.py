"""Contract section 5 through the running appliance: a pcap of every kind of packet goes in
through net_pcap ports, the output pcaps are read back with scapy, and every packet must be
exactly the expected one (built from the contract and the independent golden model), with
every checksum valid and every packet accounted for."""
from conftest import run_pcap_cases
from packets import fragmented_reply_flow, mixed_traffic, reply_flow
from scapy.all import IP, UDP, Ether


def build_cases(node):
    cases = mixed_traffic(node, 360, seed=7)
    cases += reply_flow(node, "10.20.1.1", "198.51.100.2")
    cases += fragmented_reply_flow(node, "10.20.1.2", "198.51.100.3")
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


def test_every_packet_leaves_as_the_contract_says(tmp_path):
    stats, _ = run_pcap_cases(tmp_path, build_cases)
    for tier in ("local", "same_dc", "same_location", "nearest_location", "ipv6_local"):
        assert stats["decisions"][tier] > 0, tier
    # The reply, the ICMP error about the peer's flow and the first fragment of the answer
    # went back to their peers.
    assert stats["replies_to_peer"] == 3 and stats["icmp_frag_needed"] == 1
    # Unmatched replies: some ports in this server's slices (to the host), some in others'.
    assert stats["replies_steered"] > 0 and stats["replies_to_host"] > 0
    # The answer in three fragments: the first replied to the peer, the two others followed.
    assert stats["fragments_followed"] == 2
