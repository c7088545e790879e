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


def test_customer_scale_shape(tmp_path):
    """Issue 22's shape scaled down: one pool per customer, 1 to 16 holders over 1 to 4
    locations, weights 1 to 1000. The first server's 3,000 pools have more candidate sets
    than get a bucket table, so its flows take both spreads."""
    fleet = tmp_path / "customers.toml"
    subprocess.run([sys.executable, ROOT / "scripts" / "gen_fleet.py", "--out", fleet, "--addresses", "30000",
                    "--servers", "800", "--locations", "20", "--pools", "3000", "--holders-max", "16",
                    "--weight-max", "1000", "--seed", "22"], check=True, capture_output=True)
    model = Model(fleet, "l00d0s000")
    for server in ["l00d0s000", "l07d2s005", "l19d3s009"]:
        compare(fleet, server, random_flows(model, 4000, 22), tmp_path)


def drained_variant(tmp_path):
    """The example fleet with two holders drained and slices of 256 ports."""
    text = EXAMPLE.read_text().replace("version = 1\n", "version = 1\nport_slice = 256\n", 1)
    for holder in ['{ server = "lhr01-b", weight = 2 }', '{ server = "cdg01-b" }']:
        assert holder in text
        text = text.replace(holder, holder[:-2] + ", drain = true }", 1)
    path = tmp_path / "drained.toml"
    path.write_text(text)
    return path


def compare_slices(topology, server, tmp_path):
    """`table --json` shows every pool's slices as the model derives them, and `explain`
    names the model's owner for replies to every port of a sample."""
    model = Model(topology, server)
    r = run(["table", "--topology", topology, "--server", server, "--json"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["port_slice"] == model.port_slice
    for pool in doc["pools"]:
        owned = {}
        for h in pool["holders"]:
            for text in h["ports"]:
                first, last = map(int, text.split("-"))
                for port in range(first, last + 1, model.port_slice):
                    owned[port] = h["server"]
        assert len(owned) == model.slice_count(), pool["name"]
        for port, owner in owned.items():
            assert owner == model.slice_owner(pool["name"], port), (pool["name"], port)
    rng = random.Random(3)
    flows = []
    for net, pool in model.v4:
        for _ in range(20):
            port = rng.randrange(65536)
            flows.append((pool, port, f"tcp 93.184.216.34 443 {net.network_address} {port}"))
    path = tmp_path / f"replies-{server}.txt"
    path.write_text("\n".join(f for _, _, f in flows) + "\n")
    r = run(["explain", "--topology", topology, "--server", server, "--flows", path])
    assert r.returncode == 0, r.stderr
    for (pool, port, line), got in zip(flows, map(json.loads, r.stdout.splitlines())):
        assert got["slice_owner"] == model.slice_owner(pool, port), line


def test_slices_and_drained_holders_agree_with_the_model(tmp_path):
    drained = drained_variant(tmp_path)
    model = Model(drained, "lhr01-a")
    for topology in (EXAMPLE, drained):
        for server in ("lhr01-a", "cdg01-a", "sin01-a"):
            compare_slices(topology, server, tmp_path)
    for server in model.servers:
        compare(drained, server, random_flows(model, 2000, 9), tmp_path)
