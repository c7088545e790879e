"""`egressfwd explain` against the independent Python model, on random flows, for every
server of the example fleet and of a generated fleet: two implementations written apart must
agree on every tier, target and outer port."""
import ipaddress
import json
import random
import subprocess
import sys

from conftest import EXAMPLE, ROOT, run
from golden_model import Model


def random_flows(model, count, seed):
    rng = random.Random(seed)
    nets = [net for net, _ in model.v4]
    flows = []
    for _ in range(count):
        net = rng.choice(nets)
        src = net.network_address + rng.randrange(net.num_addresses)
        dst = ipaddress.IPv4Address(rng.randrange(1 << 24, 223 << 24))
        proto = rng.choice(["tcp", "udp", "icmp"])
        sport, dport = (0, 0) if proto == "icmp" else (rng.randrange(65536), rng.randrange(65536))
        flows.append(f"{proto} {src} {sport} {dst} {dport}")
    return flows


def compare(topology, server, flows, tmp_path):
    path = tmp_path / f"flows-{server}.txt"
    path.write_text("\n".join(flows) + "\n")
    r = run(["explain", "--topology", topology, "--server", server, "--flows", path])
    assert r.returncode == 0, r.stderr
    ours = [json.loads(l) for l in r.stdout.splitlines()]
    model = Model(topology, server)
    assert len(ours) == len(flows)
    for line, got in zip(flows, ours):
        proto, src, sport, dst, dport = line.split()
        want = model.decide({"tcp": 6, "udp": 17, "icmp": 1}[proto], src, int(sport), dst, int(dport))
        for key in ("action", "tier", "target_server", "target_underlay", "outer_sport"):
            if key in want:
                assert got[key] == want[key], f"{server} {line}: {key} {got[key]} != {want[key]}"


def test_example_fleet_every_server(tmp_path):
    model = Model(EXAMPLE, "lhr01-a")
    for server in model.servers:
        compare(EXAMPLE, server, random_flows(model, 3000, hash(server) & 0xFFFF), tmp_path)


def test_generated_fleet(tmp_path):
    fleet = tmp_path / "fleet.toml"
    subprocess.run([sys.executable, ROOT / "scripts" / "gen_fleet.py", "--out", fleet, "--addresses", "20000",
                    "--servers", "300", "--locations", "12", "--pools", "80", "--seed", "11"], check=True, capture_output=True)
    model = Model(fleet, "l00d0s000")
    for server in ["l00d0s000", "l05d1s002", "l11d3s004"]:
        compare(fleet, server, random_flows(model, 4000, 5), tmp_path)
