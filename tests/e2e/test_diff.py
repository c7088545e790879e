"""`egressfwd diff OLD NEW --server NAME` (issue 18): what a topology change would do, before
it is applied. Its figures are checked against `egressfwd explain` run on both files over
100k flows spread evenly over the egress addresses: the share of flows whose decision
changes, and for replies, the slice owners that change."""
import ipaddress
import json
import random
import re
import subprocess
import sys
import tomllib

from conftest import BIN, EXAMPLE, ROOT

FLOWS = 100_000


def run(*args):
    out = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def diff(old, new, server):
    return json.loads(run("diff", old, new, "--server", server, "--json"))


def egress_blocks(text):
    """(first address, size) of every IPv4 egress prefix of either file."""
    blocks = set()
    for entry in tomllib.loads(text).get("egress", []):
        net = ipaddress.ip_network(entry["prefix"])
        if net.version == 4:
            blocks.add((int(net.network_address), net.num_addresses))
    return sorted(blocks)


def even_flows(texts, count, seed=18):
    """Flows from addresses drawn evenly over the union of the files' egress addresses."""
    rng = random.Random(seed)
    # The union as disjoint ranges (prefixes of the two files may overlap).
    ranges = []
    for first, size in sorted({b for t in texts for b in egress_blocks(t)}):
        last = first + size - 1
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
    sizes = [last - first + 1 for first, last in ranges]
    picks = rng.choices(range(len(ranges)), weights=sizes, k=count)
    flows = []
    for i in picks:
        addr = ipaddress.ip_address(rng.randint(*ranges[i]))
        flows.append(f"tcp {addr} {rng.randint(1024, 65535)} 192.0.2.80 443")
    return flows


def decisions(topology, server, flows, tmp_path, name):
    path = tmp_path / name
    path.write_text("\n".join(flows) + "\n")
    out = run("explain", "--topology", topology, "--server", server, "--flows", path)
    return [(d["action"], d["target_server"]) for d in map(json.loads, out.splitlines())]


def check_against_explain(old, new, server, tmp_path):
    d = diff(old, new, server)
    texts = [old.read_text(), new.read_text()]
    flows = even_flows(texts, FLOWS)
    a = decisions(old, server, flows, tmp_path, "flows-a.txt")
    b = decisions(new, server, flows, tmp_path, "flows-b.txt")
    moved = sum(x != y for x, y in zip(a, b)) / FLOWS
    p = d["moved_share"]
    sigma = max((p * (1 - p) / FLOWS) ** 0.5, 1 / FLOWS)
    assert abs(moved - p) <= 4 * sigma + 1e-4, f"diff says {p:.4f} of flows move, explain shows {moved:.4f}"

    # Replies: explain names the owner of the destination port's slice in both files; diff
    # lists exactly the slices whose owner changes.
    changed = {}
    for s in d["slices"]:
        for r in s["ports"]:
            lo, hi = map(int, r.split("-"))
            changed.setdefault(s["pool"], []).append((lo, hi, s["from"], s["to"]))
    rng = random.Random(7)
    replies = [f"tcp 192.0.2.80 443 {f.split()[1]} {rng.randint(1024, 65535)}" for f in flows[:5000]]
    path = tmp_path / "replies.txt"
    path.write_text("\n".join(replies) + "\n")
    ra = [json.loads(l) for l in run("explain", "--topology", old, "--server", server, "--flows", path).splitlines()]
    rb = [json.loads(l) for l in run("explain", "--topology", new, "--server", server, "--flows", path).splitlines()]
    pools_a = pool_of_addresses(texts[0])
    checked = 0
    for x, y in zip(ra, rb):
        if x["slice_owner"] is None or y["slice_owner"] is None:
            continue
        pool = pools_a(x["dst"])
        listed = [c for c in changed.get(pool, []) if c[0] <= x["dport"] <= c[1]]
        if x["slice_owner"] == y["slice_owner"]:
            assert not listed, (x, listed)
        else:
            assert listed and (listed[0][2], listed[0][3]) == (x["slice_owner"], y["slice_owner"]), (x, y, listed)
        checked += 1
    assert checked > 1000
    return d, moved


def pool_of_addresses(text):
    nets = [(ipaddress.ip_network(e["prefix"]), e.get("pool")) for e in tomllib.loads(text)["egress"]]
    def pool(addr):
        a = ipaddress.ip_address(addr)
        return next(p for n, p in nets if n.version == 4 and a in n)
    return pool


def test_diff_of_the_example_fleet(tmp_path):
    text = EXAMPLE.read_text()
    # globex loses lhr01-c; acme's weights change; a prefix is split in two, one half going
    # to another pool.
    new_text = text.replace('{ server = "lhr01-c" }, ', '', 1)
    new_text = new_text.replace('{ server = "lhr01-a", weight = 2 }', '{ server = "lhr01-a", weight = 5 }')
    assert new_text != text
    new = tmp_path / "new.toml"
    new.write_text(new_text)
    human = run("diff", EXAMPLE, new, "--server", "lhr01-a")
    assert re.search(r"^server lhr01-a: \d+ address blocks change route; [0-9.]+% of new flows would move", human, re.M), human
    assert "pool globex same_dc [lhr01-b" in human and "lhr01-c" in human
    assert "port slices changing owner:" in human
    d, moved = check_against_explain(EXAMPLE, new, "lhr01-a", tmp_path)
    assert 0 < d["moved_share"] < 0.2
    assert all(s["pool"] in ("globex", "acme") for s in d["slices"]), d["slices"]
    # A file against itself changes nothing.
    same = diff(EXAMPLE, EXAMPLE, "lhr01-a")
    assert same["prefixes"] == [] and same["slices"] == [] and same["moved_share"] == 0
    print(f"example: diff {d['moved_share']:.4f}, explain {moved:.4f}; {len(d['slices'])} slice groups")


def test_diff_of_a_generated_fleet(tmp_path):
    old = tmp_path / "old.toml"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_fleet.py"), "--out", str(old), "--addresses", "50000",
                    "--servers", "400", "--pools", "200", "--seed", "18"], check=True, capture_output=True)
    text = old.read_text()
    # Among the pools l00d0s000 does not hold (whose flows it forwards): the weights of every
    # fifth change, and one loses its first holder.
    pools = [(n, h) for n, h in re.findall(r'name = "(pool\d+)"\nholders = \[(.*)\]', text) if '"l00d0s000"' not in h]
    new_text = text
    for i, (name, holders) in enumerate(pools):
        if i % 5 == 0 and "weight = " in holders:
            changed = re.sub(r"weight = (\d+)", lambda m: f"weight = {int(m.group(1)) * 3 % 1000 + 1}", holders)
            new_text = new_text.replace(f'name = "{name}"\nholders = [{holders}]', f'name = "{name}"\nholders = [{changed}]')
    name, holders = next((n, h) for n, h in pools[1:] if h.count("server =") >= 3)
    fewer = holders.split("}, ", 1)[1]
    new_text = new_text.replace(f'name = "{name}"\nholders = [{holders}]', f'name = "{name}"\nholders = [{fewer}]')
    assert new_text != text
    new = tmp_path / "new.toml"
    new.write_text(new_text)
    d, moved = check_against_explain(old, new, "l00d0s000", tmp_path)
    assert d["moved_share"] > 0 and d["slices"]
    print(f"generated fleet: diff {d['moved_share']:.4f}, explain {moved:.4f} over {FLOWS} flows; "
          f"{len(d['prefixes'])} blocks, {sum(s['slices'] for s in d['slices'])} slices change owner")
