#!/usr/bin/env python3
"""Writes dataplane/tests/fixtures/golden.json: input frames and the exact frames the
pipeline must emit, built with scapy from the contract's description of each action (outer
headers, TTLs, checksums), with targets and outer ports from the independent golden model.

Run with Debian's python3 (it has scapy): /usr/bin/python3 scripts/gen_fixtures.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden_model import Model, flow_hash, outer_sport  # noqa: E402
from scapy.all import ARP, Dot1Q, ICMP, IP, IPv6, TCP, UDP, Ether, Raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGY = "topology/examples/fleet.toml"
SERVER = "lhr01-a"
MY_UNDERLAY = "10.10.1.1"
UP = {"mac": "02:00:00:00:00:0a", "next_hop": "02:00:00:00:00:fe"}
HOST = {"mac": "02:00:00:00:00:0b", "next_hop": "02:00:00:00:00:01"}
MTU = 1500
ENCAP_PORT = 6080
IN_ETHER = dict(dst=UP["mac"], src="02:00:00:00:00:77")
ORIGIN = "93.184.216.34"

model = Model(os.path.join(ROOT, TOPOLOGY), SERVER)


def routed(pkt, out):
    """The packet itself, routed: Ethernet to the port's next hop, TTL (hop limit) - 1."""
    l3 = pkt.payload.copy()
    if IP in l3:
        l3[IP].ttl -= 1
        del l3[IP].chksum
    else:
        l3[IPv6].hlim -= 1
    return Ether(dst=out["next_hop"], src=out["mac"]) / l3


def inner_forwarded(inner):
    inner = IP(bytes(inner))
    inner.ttl -= 1
    del inner.chksum
    return IP(bytes(inner))


def tunnel(inner, target_underlay, sport, encap):
    """Contract section 5 step 4, forward: outer IPv4 (IHL 5, DSCP/ECN from the inner, ID 0,
    DF, TTL 64, our underlay to the target's), then UDP (flow port, 6080, checksum 0) for fou."""
    inner = inner_forwarded(inner)
    outer = IP(src=MY_UNDERLAY, dst=target_underlay, tos=inner.tos, id=0, flags="DF", ttl=64,
               proto=17 if encap == "fou" else 4)
    if encap == "fou":
        return Ether(dst=UP["next_hop"], src=UP["mac"]) / outer / UDP(sport=sport, dport=ENCAP_PORT, chksum=0) / inner
    return Ether(dst=UP["next_hop"], src=UP["mac"]) / outer / inner


def forward(pkt, encap):
    ip = pkt[IP]
    l4 = pkt[TCP] if TCP in pkt else pkt[UDP]
    d = model.decide(ip.proto, ip.src, l4.sport, ip.dst, l4.dport)
    assert d["action"] == "forward", d
    return tunnel(ip, d["target_underlay"], d["outer_sport"], encap), d


def fleet_packet(src_underlay, inner, kind="fou"):
    """A packet a peer encapsulated to us: FOU, GUE variant 0 (what Linux `encap gue` sends:
    a 4-byte header, protocol 4), or IP-in-IP."""
    ether = Ether(**IN_ETHER)
    if kind == "ipip":
        return ether / IP(src=src_underlay, dst=MY_UNDERLAY, proto=4, flags="DF", ttl=64) / inner
    outer = IP(src=src_underlay, dst=MY_UNDERLAY, flags="DF", ttl=64) / UDP(sport=51000, dport=ENCAP_PORT, chksum=0)
    if kind == "gue0":
        return ether / outer / Raw(b"\x00\x04\x00\x00") / inner
    return ether / outer / inner


def frag_needed(pkt, encap):
    overhead = 28 if encap == "fou" else 20
    quoted = bytes(pkt[IP])[:576 - 28]
    return (Ether(dst=HOST["next_hop"], src=HOST["mac"])
            / IP(src=MY_UNDERLAY, dst=pkt[IP].src, tos=0xC0, id=0, flags=0, ttl=64, proto=1)
            / ICMP(type=3, code=4, unused=0, nexthopmtu=MTU - overhead) / Raw(quoted))


def step(frame, verdict, out=None):
    s = {"in": bytes(frame).hex(), "verdict": verdict}
    if out is not None:
        s["out"] = bytes(out).hex()
    return s


def egress_tcp(src, sport=40000, ttl=64, tos=0, payload=b"hello", flags="DF"):
    return Ether(**IN_ETHER) / IP(src=src, dst=ORIGIN, ttl=ttl, tos=tos, flags=flags, id=7) / TCP(sport=sport, dport=443, flags="S") / Raw(payload)


def cases():
    out = []

    p = egress_tcp("198.51.100.1")
    out.append({"name": "local_v4", "encap": "fou", "steps": [step(p, "uplink", routed(p, UP))]})

    p6 = Ether(**IN_ETHER) / IPv6(src="2001:db8:1::1", dst="2606:4700::1", hlim=64) / UDP(sport=5353, dport=53) / Raw(b"q")
    out.append({"name": "local_v6", "encap": "fou", "steps": [step(p6, "uplink", routed(p6, UP))]})

    for encap in ("fou", "ipip"):
        for name, src, tos in (("same_dc", "198.51.100.70", 0x2E), ("same_location", "203.0.113.1", 0),
                               ("nearest_location", "203.0.113.200", 0xB8)):
            p = egress_tcp(src, tos=tos)
            expected, d = forward(p, encap)
            assert d["tier"] == name, d
            out.append({"name": f"forward_{name}_{encap}", "encap": encap,
                        "target": d["target_server"], "steps": [step(p, "uplink", expected)]})

    inner = IP(src="198.51.100.2", dst=ORIGIN, ttl=63, id=9, flags="DF") / TCP(sport=40001, dport=443, flags="A") / Raw(b"x" * 20)
    for kind in ("fou", "gue0", "ipip"):
        p = fleet_packet("10.20.1.1", inner, kind)
        out.append({"name": f"decap_{kind}_then_local", "encap": "fou",
                    "steps": [step(p, "uplink", Ether(dst=UP["next_hop"], src=UP["mac"]) / inner_forwarded(inner))]})

    inner2 = IP(src="192.0.2.10", dst=ORIGIN, ttl=60, tos=0x10) / UDP(sport=4500, dport=4500) / Raw(b"y" * 12)
    d = model.decide(17, "192.0.2.10", 4500, ORIGIN, 4500)
    p = fleet_packet("10.10.2.1", inner2)
    out.append({"name": "decap_then_forward_again", "encap": "fou", "target": d["target_server"],
                "steps": [step(p, "uplink", tunnel(inner2, d["target_underlay"], d["outer_sport"], "fou"))]})

    # The holder receives a flow from a peer, then the origin's reply goes back to that peer.
    first = fleet_packet("10.20.1.1", inner)
    reply = Ether(**IN_ETHER) / IP(src=ORIGIN, dst="198.51.100.2", ttl=50, id=3) / TCP(sport=443, dport=40001, flags="SA") / Raw(b"r")
    back = tunnel(reply[IP], "10.20.1.1", outer_sport(flow_hash("198.51.100.2", ORIGIN, 6, 40001, 443)), "fou")
    out.append({"name": "reply_back_to_the_forwarding_peer", "encap": "fou", "steps": [
        step(first, "uplink", Ether(dst=UP["next_hop"], src=UP["mac"]) / inner_forwarded(inner)),
        step(reply, "uplink", back)]})

    reply = Ether(**IN_ETHER) / IP(src=ORIGIN, dst="198.51.100.1", ttl=50) / TCP(sport=443, dport=40000, flags="SA")
    out.append({"name": "reply_to_host", "encap": "fou", "steps": [step(reply, "host", routed(reply, HOST))]})
    reply6 = Ether(**IN_ETHER) / IPv6(src="2606:4700::1", dst="2001:db8:2::5", hlim=50) / UDP(sport=53, dport=5353)
    out.append({"name": "reply_v6_to_host", "encap": "fou", "steps": [step(reply6, "host", routed(reply6, HOST))]})

    arp = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:77") / ARP(psrc="10.10.1.9", pdst="10.10.1.1")
    plain = Ether(**IN_ETHER) / IP(src="1.1.1.1", dst="8.8.8.8") / UDP(sport=1, dport=53)
    vlan = Ether(**IN_ETHER) / Dot1Q(vlan=7) / IP(src="198.51.100.1", dst=ORIGIN) / TCP()
    to_us = Ether(**IN_ETHER) / IP(src="10.20.1.1", dst=MY_UNDERLAY) / TCP(sport=50000, dport=22)
    for name, frame in (("pass_arp", arp), ("pass_not_egress", plain), ("pass_vlan_tagged", vlan), ("pass_ssh_to_underlay", to_us)):
        out.append({"name": name, "encap": "fou", "steps": [step(frame, "pass", frame)]})

    for encap, total in (("fou", 1473), ("ipip", 1481)):
        p = egress_tcp("203.0.113.1", payload=b"z" * (total - 40))
        assert len(p[IP]) == total
        out.append({"name": f"icmp_frag_needed_{encap}", "encap": encap, "steps": [step(p, "host", frag_needed(p, encap))]})
        p = egress_tcp("203.0.113.1", payload=b"z" * (total - 41))
        expected, _ = forward(p, encap)
        out.append({"name": f"largest_that_fits_{encap}", "encap": encap, "steps": [step(p, "uplink", expected)]})
        assert len(expected) - 14 == MTU
    p = egress_tcp("203.0.113.1", payload=b"z" * 1500, flags=0)
    out.append({"name": "too_big_without_df", "encap": "fou", "steps": [step(p, "drop:too_big")]})
    return out


def main():
    doc = {"topology": TOPOLOGY, "server": SERVER, "uplink": UP, "host": HOST, "mtu": MTU,
           "encap_port": ENCAP_PORT, "cases": cases()}
    path = os.path.join(ROOT, "dataplane/tests/fixtures/golden.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{path}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
