#!/usr/bin/env python3
"""Writes pcaps of mixed traffic for one server of a topology: every tier, IPv6, packets
decapsulated from peers, replies, passes and malformed packets, split by the port they
arrive on. Used by the demo (replayed with net_pcap infinite_rx) and by the end-to-end tests.

  /usr/bin/python3 scripts/gen_traffic.py --topology T --server S --out-dir DIR [--count N]
writes DIR/uplink-in.pcap and DIR/host-in.pcap.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from golden_model import Model  # noqa: E402
from packets import Node, mixed_traffic  # noqa: E402
from scapy.all import wrpcap  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--count", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    model = Model(args.topology, args.server)
    # Addresses only matter for the expected outputs, which the demo does not check.
    node = Node(model, model.me["underlay"], "02:00:00:00:00:0a", "02:00:00:00:00:fe", "02:00:00:00:00:0b", "02:00:00:00:00:01")
    traffic = mixed_traffic(node, args.count, args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    for side in ("uplink", "host"):
        packets = [p for arrives, p, _, _ in traffic if arrives == side]
        wrpcap(os.path.join(args.out_dir, f"{side}-in.pcap"), packets)
        print(f"{args.out_dir}/{side}-in.pcap: {len(packets)} packets")


if __name__ == "__main__":
    main()
