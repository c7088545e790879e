#!/usr/bin/env python3
"""Generates large synthetic fleets (topology TOML) and flow lists for benchmarks.

Deterministic for a given seed. The default is the benchmark fleet of the issues: one
million IPv4 egress addresses and ten thousand servers, with egress prefixes of mixed
lengths (/24 to /32); --slash32 writes every address as its own /32 entry instead (the
worst case for the file size and the lookup tables).

  scripts/gen_fleet.py --out fleet-1m.toml
  scripts/gen_fleet.py --out fleet-100k-pools.toml --customer-scale
  scripts/gen_fleet.py --out fleet-1m.toml --flows 1000000 --flows-out flows.txt --server l00d0s000
"""
import argparse
import ipaddress
import random

# (prefix length, share of the addresses) for the mixed layout.
MIXED = [(24, 0.40), (28, 0.30), (30, 0.20), (32, 0.10)]


def server_name(location, dc, index):
    return f"l{location:02}d{dc}s{index:03}"


def build(args):
    rng = random.Random(args.seed)
    out = ["version = 1", ""]
    servers = []  # (name, location)
    per_dc = max(1, args.servers // (args.locations * args.dcs_per_location))
    underlay = int(ipaddress.IPv4Address("10.0.0.1"))
    for loc in range(args.locations):
        out += ["[[location]]", f'name = "loc{loc:02}"',
                f"latitude = {rng.uniform(-60, 70):.2f}", f"longitude = {rng.uniform(-179, 179):.2f}", ""]
        for dc in range(args.dcs_per_location):
            out += ["[[datacenter]]", f'name = "loc{loc:02}-dc{dc}"', f'location = "loc{loc:02}"', ""]
            for s in range(per_dc):
                if len(servers) >= args.servers:
                    break
                name = server_name(loc, dc, s)
                out += ["[[server]]", f'name = "{name}"', f'datacenter = "loc{loc:02}-dc{dc}"',
                        f'underlay = "{ipaddress.IPv4Address(underlay)}"', ""]
                underlay += 1
                servers.append((name, loc, dc))
    by_location = {}
    for name, loc, dc in servers:
        by_location.setdefault(loc, []).append((name, dc))
    first_name, first_location, _ = servers[0]
    dc_weight = {}
    for _, loc, dc in servers:
        # Capacity is set per data center.
        dc_weight.setdefault((loc, dc), rng.randint(1, args.weight_max) if args.weight_max else 1 + dc % 4)
    for p in range(args.pools):
        locations = rng.sample(sorted(by_location), k=min(len(by_location), rng.randint(1, args.locations_max)))
        # The benchmark server (the first) holds every Nth pool, so that it has local egress
        # traffic to measure; its location replaces one so a pool still spans at most four.
        first_holds = args.first_server_share and p % args.first_server_share == 0
        if first_holds and first_location not in locations:
            locations[-1] = first_location
        if args.holders_max:
            # The customer shape: 1 to holders_max servers in all, at least one per location.
            total = rng.randint(len(locations), max(len(locations), args.holders_max))
            per_location = [1] * len(locations)
            for _ in range(total - len(locations)):
                per_location[rng.randrange(len(locations))] += 1
        else:
            per_location = [None] * len(locations)  # drawn in turn below, as before
        holders = []
        for loc, count in zip(locations, per_location):
            count = rng.randint(1, 3) if count is None else count
            for name, dc in rng.sample(by_location[loc], k=min(len(by_location[loc]), count)):
                if name == first_name:
                    continue
                holders.append(f'{{ server = "{name}", weight = {dc_weight[(loc, dc)]} }}')
        if first_holds:
            holders.append(f'{{ server = "{first_name}", weight = {dc_weight[(first_location, 0)]} }}')
        out += ["[[pool]]", f'name = "pool{p}"', f"holders = [{', '.join(holders)}]", ""]

    next_address = int(ipaddress.IPv4Address("16.0.0.0"))
    layout = [(32, 1.0)] if args.slash32 else MIXED
    egress = []
    for length, share in layout:
        size = 1 << (32 - length)
        for _ in range(int(args.addresses * share) // size):
            next_address = (next_address + size - 1) // size * size
            egress.append((ipaddress.IPv4Network((next_address, length)), rng.randrange(args.pools)))
            next_address += size
    rng.shuffle(egress)
    for network, pool in egress:
        out += ["[[egress]]", f'prefix = "{network}"', f'pool = "pool{pool}"']
    out += ["", "[[egress]]", 'prefix = "2001:db8:1::/48"']
    return "\n".join(out) + "\n", egress, servers


def write_flows(args, egress, count):
    rng = random.Random(args.seed + 1)
    with open(args.flows_out, "w") as f:
        for _ in range(count):
            network, _ = egress[rng.randrange(len(egress))]
            src = network.network_address + rng.randrange(network.num_addresses)
            dst = ipaddress.IPv4Address(rng.randrange(1 << 24, 223 << 24))
            f.write(f"tcp {src} {rng.randrange(1024, 65536)} {dst} 443\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--addresses", type=int, default=1_000_000)
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--locations", type=int, default=50)
    ap.add_argument("--dcs-per-location", type=int, default=4)
    ap.add_argument("--pools", type=int, default=2_000)
    ap.add_argument("--locations-max", type=int, default=4, help="locations a pool spans, at most")
    ap.add_argument("--holders-max", type=int, default=0,
                    help="servers a pool has in all, 1 to this many (0: 1 to 3 per location)")
    ap.add_argument("--weight-max", type=int, default=0,
                    help="each data center's weight, 1 to this (0: 1 to 4 by the data center's index)")
    ap.add_argument("--customer-scale", action="store_true",
                    help="the customer-scale fleet: 100k pools, 1-16 holders over 1-4 locations, "
                         "weights 1-1000, 10k servers in 400 data centers")
    ap.add_argument("--slash32", action="store_true", help="every address as its own /32 entry")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first-server-share", type=int, default=10,
                    help="the first server also holds every Nth pool held in its location (0: none)")
    ap.add_argument("--flows", type=int, default=0, help="also write this many random egress flows")
    ap.add_argument("--flows-out")
    args = ap.parse_args()
    if args.customer_scale:
        args.pools, args.holders_max, args.weight_max, args.locations = 100_000, 16, 1000, 100
    text, egress, servers = build(args)
    with open(args.out, "w") as f:
        f.write(text)
    if args.flows:
        write_flows(args, egress, args.flows)
    addresses = sum(n.num_addresses for n, _ in egress)
    print(f"{args.out}: {len(servers)} servers, {args.pools} pools, {len(egress)} IPv4 egress prefixes, "
          f"{addresses} addresses; first server {servers[0][0]}")


if __name__ == "__main__":
    main()
