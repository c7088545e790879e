#!/usr/bin/env python3
"""Benchmark workloads as pcaps, written directly (scapy is too slow for 64k packets):

  local     egress from addresses this server holds
  forward   egress from addresses held elsewhere (encapsulated, fou)
  mix       60% forward, 30% local, 10% decapsulated from peers
  mix-imix  the mix in simple-IMIX sizes (7:4:1 of 64, 570 and 1486-byte frames on the
            wire; 1486 is the largest that still fits the 1500-byte MTU after FOU)

Frames are 64 bytes on the wire (60 in the pcap, plus the FCS) except where noted; a
decapsulated packet cannot be that small (70 bytes: outer Ethernet/IPv4/UDP around an
IPv4/UDP packet). Each workload has 65,536 packets with distinct flows over a working set of
up to 64k source addresses, drawn from the server's table (`egressfwd table --json`).

  gen_bench_traffic.py --table TABLE.json --workload mix --out mix.pcap [--imix]
"""
import argparse
import ipaddress
import json
import random
import struct

PACKETS = 1 << 16
WIRE_FCS = 4


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ttl=64):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, ttl, proto, 0, src, dst)
    c = checksum(header)
    return header[:10] + struct.pack("!H", c) + header[12:] + payload


ETHER = bytes.fromhex("0270636170000200000000770800")  # to the port, from a neighbour, IPv4


def tcp_frame(src, dst, sport, frame_len):
    """An Ethernet/IPv4/TCP frame of `frame_len` bytes (without FCS)."""
    tcp = struct.pack("!HHIIBBHHH", sport, 443, 0, 0, 0x50, 0x10, 8192, 0, 0)
    pad = frame_len - 14 - 20 - len(tcp)
    return ETHER + ipv4(src, dst, 6, tcp + b"\0" * max(pad, 0))


def fou_frame(peer, me, inner_src, dst, sport):
    inner = ipv4(inner_src, dst, 17, struct.pack("!HHHH", sport, 443, 8, 0))
    udp = struct.pack("!HHHH", 51000, 6080, 8 + len(inner), 0)
    return ETHER + ipv4(peer, me, 17, udp + inner)


def addresses(table, local, rng, count):
    prefixes = [ipaddress.ip_network(p["prefix"]) for p in table["prefixes"]
                if p["tier"] != "ipv6_local" and (p["tier"] == "local") == local]
    if not prefixes:
        raise SystemExit("the table has no " + ("local" if local else "forwarded") + " IPv4 egress prefixes")
    weights = [p.num_addresses for p in prefixes]
    chosen = rng.choices(prefixes, weights=weights, k=count)
    return [int(p.network_address) + rng.randrange(p.num_addresses) for p in chosen]


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(frame), len(frame)))
            f.write(frame)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="output of egressfwd table --json")
    ap.add_argument("--peer", default=None, help="underlay of the peer decapsulated packets come from")
    ap.add_argument("--workload", required=True, choices=["local", "forward", "mix"])
    ap.add_argument("--imix", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    table = json.load(open(args.table))
    rng = random.Random(args.seed)
    me = ipaddress.IPv4Address(table["underlay"]).packed
    peer = ipaddress.IPv4Address(args.peer or str(ipaddress.IPv4Address(table["underlay"]) + 1)).packed
    local = addresses(table, True, rng, PACKETS)
    remote = addresses(table, False, rng, PACKETS)
    sizes = [60] * 7 + [566] * 4 + [1482] if args.imix else [60]
    frames = []
    for i in range(PACKETS):
        dst = struct.pack("!I", 0x5DB80000 + (i & 0xFFFF))
        sport = 1024 + i % 60000
        size = sizes[i % len(sizes)]
        if args.workload == "local":
            kind = "local"
        elif args.workload == "forward":
            kind = "forward"
        else:
            kind = ("forward",) * 6 + ("local",) * 3 + ("decap",)
            kind = kind[i % 10]
        if kind == "local":
            frames.append(tcp_frame(struct.pack("!I", local[i]), dst, sport, size))
        elif kind == "forward":
            frames.append(tcp_frame(struct.pack("!I", remote[i]), dst, sport, size))
        else:
            frames.append(fou_frame(peer, me, struct.pack("!I", local[i]), dst, sport))
    write_pcap(args.out, frames)
    wire = sum(len(f) + WIRE_FCS for f in frames) / len(frames)
    print(f"{args.out}: {len(frames)} packets, {wire:.0f} bytes on the wire on average")


if __name__ == "__main__":
    main()
