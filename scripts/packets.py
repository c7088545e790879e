"""Packet builders shared by the golden fixtures, the demo/benchmark traffic and the
end-to-end tests. Every expected output is built from the contract's description of the
action (section 5), never from the appliance's code; targets and outer ports come from the
independent golden model.
"""
import random
from dataclasses import dataclass

from golden_model import Model, flow_hash, outer_sport
from scapy.all import ARP, Dot1Q, ICMP, IP, IPv6, TCP, UDP, Ether, Raw, fragment

ORIGIN = "93.184.216.34"
ORIGIN6 = "2606:4700::1"
PEER_MAC = "02:00:00:00:00:77"


@dataclass
class Node:
    """The server under test: its name, underlay, port addresses and data-plane settings."""
    model: Model
    underlay: str
    uplink_mac: str
    uplink_next_hop: str
    host_mac: str
    host_next_hop: str
    mtu: int = 1500
    encap: str = "fou"
    encap_port: int = 6080
    underlay_mtu: int = 0          # 0: the same as mtu

    def ether_in(self, to_host_port=False):
        return Ether(dst=self.host_mac if to_host_port else self.uplink_mac, src=PEER_MAC)

    def routed(self, pkt, out="uplink"):
        """The packet itself, routed: Ethernet to the port's next hop, TTL (hop limit) - 1."""
        l3 = pkt.payload.copy()
        if IP in l3:
            l3[IP].ttl -= 1
            del l3[IP].chksum
        else:
            l3[IPv6].hlim -= 1
        if out == "uplink":
            return Ether(dst=self.uplink_next_hop, src=self.uplink_mac) / l3
        return Ether(dst=self.host_next_hop, src=self.host_mac) / l3

    def tunnel(self, inner, target_underlay, sport, encap=None):
        """Section 5 step 4, forward: outer IPv4 (IHL 5, DSCP/ECN of the inner, ID 0, DF,
        TTL 64, our underlay to the target's), UDP (flow port, encap port, checksum 0) for
        fou; the inner packet with its TTL one lower."""
        encap = encap or self.encap
        inner = IP(bytes(inner))
        inner.ttl -= 1
        del inner.chksum
        inner = IP(bytes(inner))
        outer = IP(src=self.underlay, dst=target_underlay, tos=inner.tos, id=0, flags="DF", ttl=64,
                   proto=17 if encap == "fou" else 4)
        eth = Ether(dst=self.uplink_next_hop, src=self.uplink_mac)
        if encap == "fou":
            return eth / outer / UDP(sport=sport, dport=self.encap_port, chksum=0) / inner
        return eth / outer / inner

    def forward(self, pkt, encap=None):
        """The expected output for an egress packet the model says is forwarded."""
        ip = pkt[IP]
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP]
        d = self.model.decide(ip.proto, ip.src, l4.sport, ip.dst, l4.dport)
        assert d["action"] == "forward", d
        return self.tunnel(ip, d["target_underlay"], d["outer_sport"], encap), d

    def unmatched_reply(self, pkt):
        """Contract 7.3.2 and 7.3.3: a reply no mapping here matches goes to the owner of its
        destination port's slice, encapsulated unchanged (outer port from the flow's own
        outbound hash), or to the host when that owner is this server. Returns (verdict,
        expected)."""
        ip = pkt[IP]
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP]
        owner = self.model.slice_owner(self.model.pool_of(ip.dst)[1], l4.dport)
        if owner is None or owner == self.model.me["name"]:
            return "host", self.routed(pkt, "host")
        sport = outer_sport(flow_hash(ip.dst, ip.src, ip.proto, l4.dport, l4.sport))
        return "uplink", self.tunnel(ip, self.model.servers[owner]["underlay"], sport)

    def decapsulated(self, inner):
        """A decapsulated packet egressing here: the inner packet, TTL - 1, out the uplink."""
        out = Ether(dst=self.uplink_next_hop, src=self.uplink_mac) / IP(bytes(inner))
        out[IP].ttl -= 1
        del out[IP].chksum
        return Ether(bytes(out))

    def fleet_packet(self, src_underlay, inner, kind="fou"):
        """A packet a peer encapsulated to us: FOU, GUE variant 0 (Linux `encap gue`: a
        4-byte header, protocol 4), or IP-in-IP."""
        if kind == "ipip":
            return self.ether_in() / IP(src=src_underlay, dst=self.underlay, proto=4, flags="DF", ttl=64) / inner
        outer = IP(src=src_underlay, dst=self.underlay, flags="DF", ttl=64) / UDP(sport=51000, dport=self.encap_port, chksum=0)
        if kind == "gue0":
            return self.ether_in() / outer / Raw(b"\x00\x04\x00\x00") / inner
        if kind == "gue0-private":
            # hlen 1, flag GUE_FLAG_PRIV, and its 4-byte private-flags field, empty.
            return self.ether_in() / outer / Raw(b"\x01\x04\x00\x01\x00\x00\x00\x00") / inner
        return self.ether_in() / outer / inner

    def frag_needed(self, pkt, encap=None, next_hop_mtu=None):
        """The ICMP "fragmentation needed" the host gets for its too-big packet: by default
        for a tunnel (the underlay MTU less the tunnel's overhead)."""
        overhead = 28 if (encap or self.encap) == "fou" else 20
        if next_hop_mtu is None:
            next_hop_mtu = (self.underlay_mtu or self.mtu) - overhead
        quoted = bytes(pkt[IP])[:576 - 28]
        return (Ether(dst=self.host_next_hop, src=self.host_mac)
                / IP(src=self.underlay, dst=pkt[IP].src, tos=0xC0, id=0, flags=0, ttl=64, proto=1)
                / ICMP(type=3, code=4, unused=0, nexthopmtu=next_hop_mtu) / Raw(quoted))

    def mss_clamp(self):
        """The MSS a SYN entering a tunnel is clamped to: min(mtu, underlay_mtu - overhead) - 40."""
        overhead = 28 if self.encap == "fou" else 20
        return min(self.mtu, (self.underlay_mtu or self.mtu) - overhead) - 40

    def egress_tcp(self, src, sport=40000, ttl=64, tos=0, payload=b"hello", flags="DF", dst=ORIGIN, to_host_port=True):
        return (self.ether_in(to_host_port) / IP(src=src, dst=dst, ttl=ttl, tos=tos, flags=flags, id=7)
                / TCP(sport=sport, dport=443, flags="S") / Raw(payload))


def egress_addresses(model, tier):
    """IPv4 egress addresses whose pool has this tier for the model's server."""
    out = []
    for net, pool in model.v4:
        if pool and model.tier(pool)[0] == tier:
            out.extend(str(a) for a in list(net)[:64])
    return out


def mixed_traffic(node, count, seed=1):
    """`count` packets of every kind, each with the verdict the contract gives it and the
    exact expected output (None when dropped). Returns a list of (arrives_on, packet,
    verdict, expected) with arrives_on "uplink" or "host"."""
    rng = random.Random(seed)
    m = node.model
    peers = [s["underlay"] for n, s in m.servers.items() if n != m.me["name"]]
    by_tier = {t: egress_addresses(m, t) for t in ("local", "same_dc", "same_location", "nearest_location")}
    local_v6 = [str(net.network_address + 1) for net, _ in m.v6]
    out = []
    for i in range(count):
        kind = i % 12
        sport = 1024 + rng.randrange(60000)
        if kind == 0 and by_tier["local"]:
            p = node.egress_tcp(rng.choice(by_tier["local"]), sport)
            out.append(("host", p, "uplink", node.routed(p)))
        elif kind in (1, 2, 3) and any(by_tier[t] for t in ("same_dc", "same_location", "nearest_location")):
            tier = ("same_dc", "same_location", "nearest_location")[kind - 1]
            if not by_tier[tier]:
                continue
            p = node.egress_tcp(rng.choice(by_tier[tier]), sport, tos=rng.choice([0, 0x2E, 0xB8]))
            expected, _ = node.forward(p)
            out.append(("host", p, "uplink", expected))
        elif kind == 4 and local_v6:
            p = node.ether_in(True) / IPv6(src=local_v6[0], dst=ORIGIN6, hlim=64) / UDP(sport=sport, dport=53) / Raw(b"q")
            out.append(("host", p, "uplink", node.routed(p)))
        elif kind == 5 and by_tier["local"]:
            inner = IP(src=rng.choice(by_tier["local"]), dst=ORIGIN, ttl=63) / TCP(sport=sport, dport=443) / Raw(b"d")
            p = node.fleet_packet(rng.choice(peers), inner, rng.choice(["fou", "gue0", "ipip"]))
            out.append(("uplink", p, "uplink", node.decapsulated(inner)))
        elif kind == 6 and by_tier["local"]:
            # A reply from the origin to a locally held address, with no connection recorded:
            # to the host when this server owns the port's slice, else steered to the owner.
            p = node.ether_in() / IP(src=ORIGIN, dst=rng.choice(by_tier["local"]), ttl=50) / TCP(sport=443, dport=sport, flags="SA")
            out.append(("uplink", p, *node.unmatched_reply(p)))
        elif kind == 7:
            p = node.ether_in() / IP(src="1.1.1.1", dst="8.8.8.8") / UDP(sport=sport, dport=53)
            out.append(("uplink", p, "pass", p))
        elif kind == 8:
            p = Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(psrc="10.99.0.1", pdst=node.underlay)
            out.append(("uplink", p, "pass", p))
        elif kind == 9:
            good = bytes(node.egress_tcp(rng.choice(by_tier["local"] or ["198.51.100.1"]), sport))
            bad = bytearray(good)
            bad[24] ^= 0xFF  # IPv4 header checksum
            out.append(("host", Ether(bytes(bad)), "drop:bad_checksum", None))
        elif kind == 10:
            inner = IP(src=rng.choice(by_tier["local"] or ["198.51.100.1"]), dst=ORIGIN) / TCP(sport=sport, dport=443)
            p = node.fleet_packet("192.0.2.250", inner)  # not a fleet server
            out.append(("uplink", p, "drop:unknown_peer", None))
        elif kind == 11:
            p = Ether(dst=node.uplink_mac, src=PEER_MAC) / Dot1Q(vlan=5) / IP(src="198.51.100.1", dst=ORIGIN) / TCP()
            out.append(("uplink", p, "pass", p))
    return out


def reply_flow(node, peer_underlay, local_address, sport=40001):
    """A flow a peer forwards to us (we hold the address), then the origin's reply, which
    must go back to that peer. Returns [(arrives_on, packet, verdict, expected), ...]."""
    inner = IP(src=local_address, dst=ORIGIN, ttl=63, id=9, flags="DF") / TCP(sport=sport, dport=443, flags="A") / Raw(b"x" * 20)
    first = node.fleet_packet(peer_underlay, inner)
    reply = node.ether_in() / IP(src=ORIGIN, dst=local_address, ttl=50, id=3) / TCP(sport=443, dport=sport, flags="SA") / Raw(b"r")
    back = node.tunnel(reply[IP], peer_underlay, outer_sport(flow_hash(local_address, ORIGIN, 6, sport, 443)))
    # An ICMP error from a router on the way, quoting the flow's packet as it left (the
    # minimal quote: its IPv4 header and 8 bytes of TCP): back to the peer too (7.4).
    left = IP(bytes(inner))
    left.ttl -= 1
    del left.chksum
    error = (node.ether_in() / IP(src="192.0.2.99", dst=local_address, ttl=50, id=4)
             / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(bytes(IP(bytes(left)))[:28]))
    error_back = node.tunnel(error[IP], peer_underlay, outer_sport(flow_hash(local_address, ORIGIN, 6, sport, 443)))
    return [("uplink", first, "uplink", node.decapsulated(inner)), ("uplink", reply, "uplink", back),
            ("uplink", error, "uplink", error_back)]


def fragmented_reply_flow(node, peer_underlay, local_address, sport=40002):
    """A UDP flow a peer forwards to us, then the origin's answer in fragments: every
    fragment goes back to that peer where the first one goes (the later ones carry no port),
    and a fragment of a datagram whose first fragment never came is dropped."""
    query = IP(src=local_address, dst=ORIGIN, ttl=63, id=11) / UDP(sport=sport, dport=53) / Raw(b"q" * 30)
    first = node.fleet_packet(peer_underlay, query)
    answer = IP(src=ORIGIN, dst=local_address, ttl=50, id=4242) / UDP(sport=53, dport=sport) / Raw(bytes(range(256)) * 4)
    hash_port = outer_sport(flow_hash(local_address, ORIGIN, 17, sport, 53))
    cases = [("uplink", first, "uplink", node.decapsulated(query))]
    for piece in fragment(answer, fragsize=400):
        piece = IP(bytes(piece))
        cases.append(("uplink", node.ether_in() / piece, "uplink", node.tunnel(piece, peer_underlay, hash_port)))
    orphan = IP(bytes(fragment(IP(src=ORIGIN, dst=local_address, ttl=50, id=4343) / UDP(sport=53, dport=sport)
                               / Raw(b"o" * 800), fragsize=400)[1]))
    cases.append(("uplink", node.ether_in() / orphan, "drop:fragment_orphan", None))
    return cases
