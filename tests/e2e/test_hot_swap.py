"""Hot swap under traffic: the topology is replaced 200 times, alternating two versions that
move an egress pool between tiers, with invalid versions in between. The appliance never
stops, decisions follow the file, failed reloads are counted, memory stays flat and every
packet is accounted for."""
import os
import time

from conftest import (EXAMPLE, example_node, free_tcp_port, load_stats, metric, scrape, start, stop,
                      wait_for_metrics, write_config)
from scapy.all import wrpcap

SWAPS = 200


def version(tier):
    """The example fleet where pool acme (198.51.100.0/30) is local to lhr01-a, or held only by
    lhr01-b (same_dc for lhr01-a); plus 300 pools of distinct weights so each compiled table
    weighs a few MB and a leak of replaced tables would show."""
    text = EXAMPLE.read_text()
    if tier == "same_dc":
        text = text.replace('holders = [{ server = "lhr01-a", weight = 2 }, { server = "cdg01-b" }]',
                            'holders = [{ server = "lhr01-b" }]')
        assert 'server = "lhr01-a", weight = 2' not in text
    bulk = "".join(f'\n[[pool]]\nname = "bulk{i}"\nholders = [{{ server = "lhr01-b", weight = {i + 1} }}, '
                   f'{{ server = "lhr01-c", weight = {(i * 7) % 1000 + 1} }}]\n' for i in range(300))
    return text + bulk


def invalid_versions():
    good = version("local")
    return [good[: len(good) // 2],                                  # half-written file
            good.replace("version = 1", "version = = 1"),             # syntax error
            good.replace('pool = "acme"', 'pool = "acme-typo"')]      # reference to nothing


def replace_atomically(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_topology_replaced_200_times_under_traffic(tmp_path):
    topology = tmp_path / "fleet.toml"
    topology.write_text(version("local"))
    node = example_node()
    traffic = [node.egress_tcp(f"198.51.100.{i % 4}", sport=1000 + i) for i in range(256)]
    wrpcap(str(tmp_path / "acme.pcap"), traffic)
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [
        ("uplink", "net_null0", ["uplink"]),
        ("host", f"net_pcap0,rx_pcap={tmp_path}/acme.pcap,infinite_rx=1", ["host"]),
    ], topology=topology, metrics_port=port)
    proc = start(["run", "--config", config, "--stats-json", tmp_path / "s.json"])
    try:
        wait_for_metrics(port, proc)
        invalid = invalid_versions()
        expected_ok, expected_error = 0, 0
        rss_early = None

        def reloads():
            text = scrape(port)
            return (metric(text, "egressfwd_topology_reloads_total", result="ok"),
                    metric(text, "egressfwd_topology_reloads_total", result="error"), text)

        def wait_reloaded(ok, error):
            deadline = time.time() + 10
            while time.time() < deadline:
                assert proc.poll() is None, f"egressfwd died: {proc.stderr.read()}"
                got_ok, got_error, _ = reloads()
                if (got_ok, got_error) == (ok, error):
                    return
                time.sleep(0.01)
            raise AssertionError(f"reload not seen: want ok={ok} error={error}, have {reloads()[:2]}")

        def decisions_during(seconds):
            before = scrape(port)
            time.sleep(seconds)
            after = scrape(port)
            return {t: metric(after, "egressfwd_decisions_total", tier=t) - metric(before, "egressfwd_decisions_total", tier=t)
                    for t in ("local", "same_dc")}

        for i in range(SWAPS):
            if i % 10 == 5:
                replace_atomically(topology, invalid[(i // 10) % len(invalid)])
                expected_error += 1
                wait_reloaded(expected_ok, expected_error)
            tier = "same_dc" if i % 2 == 0 else "local"
            replace_atomically(topology, version(tier))
            expected_ok += 1
            wait_reloaded(expected_ok, expected_error)
            # Counters are published every few dozen bursts: let those of the old table land.
            time.sleep(0.03)
            delta = decisions_during(0.06)
            other = "local" if tier == "same_dc" else "same_dc"
            assert delta[tier] > 0 and delta[other] == 0, f"swap {i}: version {tier}, decisions {delta}"
            if i == 20:
                rss_early = rss_kb(proc.pid)

        growth_mb = (rss_kb(proc.pid) - rss_early) / 1024
        # Each table is a few MB: keeping the 180 replaced since swap 20 would be ~500 MB.
        assert growth_mb < 32, f"memory grew by {growth_mb:.1f} MB over {SWAPS - 20} swaps"
        text = scrape(port)
        assert metric(text, "egressfwd_topology_generation") == 1 + expected_ok
        assert metric(text, "egressfwd_topology_reloads_total", result="error") == expected_error
        assert metric(text, "egressfwd_tables_retired_pending") == 0, "replaced tables are freed"
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    stats = load_stats(tmp_path / "s.json")
    assert stats["accounting"]["balanced"], stats["accounting"]
    assert stats["accounting"]["received"] > 100_000
    assert stats["topology"]["reloads_ok"] == expected_ok and stats["topology"]["reloads_error"] == expected_error
    assert stats["mbufs"]["in_use"] == 0
    assert "topology reload failed; keeping the current table" in err
