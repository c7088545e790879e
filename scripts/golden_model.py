#!/usr/bin/env python3
"""An independent model of egressfwd's decisions, written from the contract, not the code.

Reads the topology TOML itself and decides, for one server, the tier and target server of
any IPv4 flow, and the outer UDP source port of encapsulated packets. The test suite compares
it with `egressfwd explain` on random flows, and the golden packet fixtures are built from it.

  golden_model.py TOPOLOGY SERVER < flows      # prints one JSON object per flow
"""
import ipaddress
import json
import math
import sys
import tomllib

M64 = (1 << 64) - 1
FLOW_SALT = 0x6567726573736677
BUCKET_SALT = 0x9E3779B97F4A7C15
SLICE_SALT = 0x736C696365737631  # "slicesv1"
BUCKETS = 4096
FIRST_SLICE_PORT = 1024
OUTER_SPORT_MIN = 49152
PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


def mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def name_seed(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return mix64(h)


def flow_hash(src, dst, proto, sport, dport):
    """Ports count for TCP and UDP only (callers pass 0 for fragments)."""
    if proto not in (6, 17):
        sport = dport = 0
    addresses = (int(ipaddress.IPv4Address(src)) << 32) | int(ipaddress.IPv4Address(dst))
    rest = (proto << 32) | (sport << 16) | dport
    return mix64(mix64(addresses ^ FLOW_SALT) ^ rest)


def outer_sport(h):
    return OUTER_SPORT_MIN | ((h >> 32) & 0x3FFF)


def haversine(a, b):
    p1, p2 = math.radians(a["latitude"]), math.radians(b["latitude"])
    dp = math.radians(b["latitude"] - a["latitude"])
    dl = math.radians(b["longitude"] - a["longitude"])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


class Model:
    def __init__(self, topology_path, server):
        with open(topology_path, "rb") as f:
            t = tomllib.load(f)
        self.locations = {l["name"]: l for l in t.get("location", [])}
        self.dc_location = {d["name"]: d["location"] for d in t.get("datacenter", [])}
        self.servers = {s["name"]: s for s in t.get("server", [])}
        self.me = self.servers[server]
        self.port_slice = t.get("port_slice", 64)
        # Every holder (the slices' owners); new flows go to those not drained.
        self.holders = {p["name"]: [(h["server"], h.get("weight", 1)) for h in p["holders"]] for p in t.get("pool", [])}
        self.pools = {p["name"]: [(h["server"], h.get("weight", 1)) for h in p["holders"] if not h.get("drain", False)]
                      for p in t.get("pool", [])}
        self.v4 = []
        self.v6 = []
        for e in t.get("egress", []):
            net = ipaddress.ip_network(e["prefix"])
            (self.v4 if net.version == 4 else self.v6).append((net, e.get("pool")))

    def location_of(self, server):
        return self.dc_location[self.servers[server]["datacenter"]]

    def tier(self, pool):
        """Contract section 1: the first tier with holders, and those holders."""
        holders = self.pools[pool]
        me = self.me["name"]
        mine = [h for h in holders if h[0] == me]
        if mine:
            return "local", mine
        my_dc, my_loc = self.me["datacenter"], self.location_of(me)
        same_dc = [h for h in holders if self.servers[h[0]]["datacenter"] == my_dc]
        if same_dc:
            return "same_dc", same_dc
        same_loc = [h for h in holders if self.location_of(h[0]) == my_loc]
        if same_loc:
            return "same_location", same_loc
        here = self.locations[my_loc]
        nearest = min({self.location_of(h[0]) for h in holders},
                      key=lambda l: (haversine(here, self.locations[l]), l))
        return "nearest_location", [h for h in holders if self.location_of(h[0]) == nearest]

    @staticmethod
    def winner(candidates, point):
        """Weighted rendezvous at a point (a bucket's or a slice's hash): max ln(u)/w, then
        score, then the smaller name."""
        equal = len({w for _, w in candidates}) == 1

        def key(c):
            name, weight = c
            score = mix64(point ^ name_seed(name))
            u = ((score >> 11) + 0.5) * (1.0 / (1 << 53))
            k = 0.0 if equal else math.log(u) / weight
            return (k, score, [-ord(ch) for ch in name])

        return max(candidates, key=key)[0]

    def choose(self, candidates, h):
        """The target of a flow: the winner of its bucket."""
        return self.winner(candidates, mix64((h & (BUCKETS - 1)) ^ BUCKET_SALT))

    def slice_owner(self, pool, port):
        """Contract 7.1: the holder (drained or not) owning the slice of `port`, or None
        below the first slice."""
        if port < FIRST_SLICE_PORT:
            return None
        slice_ = (port - FIRST_SLICE_PORT) // self.port_slice
        return self.winner(self.holders[pool], mix64(slice_ ^ SLICE_SALT))

    def slice_count(self):
        return -(-(65536 - FIRST_SLICE_PORT) // self.port_slice)

    def pool_of(self, address):
        a = ipaddress.ip_address(address)
        for net, pool in self.v4 if a.version == 4 else self.v6:
            if a in net:
                return net, pool
        return None

    def decide(self, proto, src, sport, dst, dport):
        """Where a plain (not encapsulated) packet of this flow goes."""
        if ipaddress.ip_address(src).version == 6:
            if self.pool_of(src):
                return {"action": "local", "tier": "ipv6_local"}
            return {"action": "local" if self.pool_of(dst) else "pass", "tier": None}
        found = self.pool_of(src)
        if found:
            tier, candidates = self.tier(found[1])
            if tier == "local":
                return {"action": "local", "tier": "local"}
            h = flow_hash(src, dst, proto, sport, dport)
            target = self.choose(candidates, h)
            return {"action": "forward", "tier": tier, "target_server": target,
                    "target_underlay": self.servers[target]["underlay"], "outer_sport": outer_sport(h)}
        return {"action": "local" if self.pool_of(dst) else "pass", "tier": None}


def main():
    model = Model(sys.argv[1], sys.argv[2])
    for line in sys.stdin:
        fields = line.split("#")[0].split()
        if not fields:
            continue
        proto, src, sport, dst, dport = fields
        proto = PROTO.get(proto, None) if not proto.isdigit() else int(proto)
        out = model.decide(proto, src, int(sport), dst, int(dport))
        out.update({"src": src, "dst": dst})
        print(json.dumps(out))


if __name__ == "__main__":
    main()
