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
from golden_model import Model  # noqa: E402
from packets import ORIGIN, Node, reply_flow  # noqa: E402
from scapy.all import ARP, Dot1Q, IP, IPv6, TCP, UDP, Ether, Raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGY = "topology/examples/fleet.toml"
SERVER = "lhr01-a"
UP = {"mac": "02:00:00:00:00:0a", "next_hop": "02:00:00:00:00:fe"}
HOST = {"mac": "02:00:00:00:00:0b", "next_hop": "02:00:00:00:00:01"}
MTU = 1500
ENCAP_PORT = 6080

model = Model(os.path.join(ROOT, TOPOLOGY), SERVER)
node = Node(model, "10.10.1.1", UP["mac"], UP["next_hop"], HOST["mac"], HOST["next_hop"], MTU, "fou", ENCAP_PORT)


def step(frame, verdict, out=None):
    s = {"in": bytes(frame).hex(), "verdict": verdict}
    if out is not None:
        s["out"] = bytes(out).hex()
    return s


def egress_tcp(src, **kw):
    return node.egress_tcp(src, to_host_port=False, **kw)


def cases():
    out = []

    p = egress_tcp("198.51.100.1")
    out.append({"name": "local_v4", "encap": "fou", "steps": [step(p, "uplink", node.routed(p))]})

    p6 = node.ether_in() / IPv6(src="2001:db8:1::1", dst="2606:4700::1", hlim=64) / UDP(sport=5353, dport=53) / Raw(b"q")
    out.append({"name": "local_v6", "encap": "fou", "steps": [step(p6, "uplink", node.routed(p6))]})

    for encap in ("fou", "ipip"):
        for name, src, tos in (("same_dc", "198.51.100.70", 0x2E), ("same_location", "203.0.113.1", 0),
                               ("nearest_location", "203.0.113.200", 0xB8)):
            p = egress_tcp(src, tos=tos)
            expected, d = node.forward(p, encap)
            assert d["tier"] == name, d
            out.append({"name": f"forward_{name}_{encap}", "encap": encap,
                        "target": d["target_server"], "steps": [step(p, "uplink", expected)]})

    inner = IP(src="198.51.100.2", dst=ORIGIN, ttl=63, id=9, flags="DF") / TCP(sport=40001, dport=443, flags="A") / Raw(b"x" * 20)
    for kind in ("fou", "gue0", "ipip"):
        p = node.fleet_packet("10.20.1.1", inner, kind)
        out.append({"name": f"decap_{kind}_then_local", "encap": "fou",
                    "steps": [step(p, "uplink", node.decapsulated(inner))]})

    inner2 = IP(src="192.0.2.10", dst=ORIGIN, ttl=60, tos=0x10) / UDP(sport=4500, dport=4500) / Raw(b"y" * 12)
    d = model.decide(17, "192.0.2.10", 4500, ORIGIN, 4500)
    p = node.fleet_packet("10.10.2.1", inner2)
    out.append({"name": "decap_then_forward_again", "encap": "fou", "target": d["target_server"],
                "steps": [step(p, "uplink", node.tunnel(inner2, d["target_underlay"], d["outer_sport"], "fou"))]})

    # The holder receives a flow from a peer, then the origin's reply goes back to that peer.
    out.append({"name": "reply_back_to_the_forwarding_peer", "encap": "fou",
                "steps": [step(p, v, e) for _, p, v, e in reply_flow(node, "10.20.1.1", "198.51.100.2")]})

    reply = node.ether_in() / IP(src=ORIGIN, dst="198.51.100.1", ttl=50) / TCP(sport=443, dport=40000, flags="SA")
    out.append({"name": "reply_to_host", "encap": "fou", "steps": [step(reply, "host", node.routed(reply, 'host'))]})
    reply6 = node.ether_in() / IPv6(src="2606:4700::1", dst="2001:db8:2::5", hlim=50) / UDP(sport=53, dport=5353)
    out.append({"name": "reply_v6_to_host", "encap": "fou", "steps": [step(reply6, "host", node.routed(reply6, 'host'))]})

    arp = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:77") / ARP(psrc="10.10.1.9", pdst="10.10.1.1")
    plain = node.ether_in() / IP(src="1.1.1.1", dst="8.8.8.8") / UDP(sport=1, dport=53)
    vlan = node.ether_in() / Dot1Q(vlan=7) / IP(src="198.51.100.1", dst=ORIGIN) / TCP()
    to_us = node.ether_in() / IP(src="10.20.1.1", dst=node.underlay) / TCP(sport=50000, dport=22)
    for name, frame in (("pass_arp", arp), ("pass_not_egress", plain), ("pass_vlan_tagged", vlan), ("pass_ssh_to_underlay", to_us)):
        out.append({"name": name, "encap": "fou", "steps": [step(frame, "pass", frame)]})

    for encap, total in (("fou", 1473), ("ipip", 1481)):
        p = egress_tcp("203.0.113.1", payload=b"z" * (total - 40))
        assert len(p[IP]) == total
        out.append({"name": f"icmp_frag_needed_{encap}", "encap": encap, "steps": [step(p, "host", node.frag_needed(p, encap))]})
        p = egress_tcp("203.0.113.1", payload=b"z" * (total - 41))
        expected, _ = node.forward(p, encap)
        out.append({"name": f"largest_that_fits_{encap}", "encap": encap, "steps": [step(p, "uplink", expected)]})
        assert len(expected) - 14 == MTU
    p = egress_tcp("203.0.113.1", payload=b"z" * 1500, flags=0)
    out.append({"name": "too_big_without_df", "encap": "fou", "steps": [step(p, "drop:too_big")]})
    return out


def main():
    doc = {"topology": TOPOLOGY, "server": SERVER, "uplink": UP, "host": HOST, "mtu": MTU,
           "encap_port": ENCAP_PORT, "cases": cases()}
    text = json.dumps(doc, indent=1) + "\n"
    path = os.path.join(ROOT, "dataplane/tests/fixtures/golden.json")
    if "--check" in sys.argv:
        with open(path) as f:
            if f.read() != text:
                sys.exit(f"{path} is out of date: run scripts/gen_fixtures.py")
        print(f"{path}: up to date ({len(doc['cases'])} cases)")
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(f"{path}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
