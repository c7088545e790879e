"""The command line of contract section 2: outputs and exit statuses."""
import json
import re
import subprocess

from conftest import BIN, EXAMPLE, run, write_config


def test_check_prints_the_counts(tmp_path):
    r = run(["check", EXAMPLE])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("4 locations, 5 datacenters, 8 servers, 5 pools, 157 IPv4 egress addresses, "
                                "2 IPv6 egress prefixes")


def test_check_reports_every_error_with_its_place(tmp_path):
    bad = tmp_path / "bad.toml"
    text = EXAMPLE.read_text().replace("latitude = 51.47", "latitude = 95").replace('underlay = "10.10.1.3"', 'underlay = "10.10.1.2"')
    bad.write_text(text)
    r = run(["check", bad])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    for line in lines:
        assert re.match(rf"^{re.escape(str(bad))}:\d+:\d+: ", line), line
    assert "latitude 95 is out of range" in lines[0]
    assert "duplicate underlay address 10.10.1.2" in lines[1]


def test_check_config_reports_every_error_of_the_config_and_its_topology(tmp_path):
    ports = [("uplink", "net_null0", ["uplink"]), ("host", "net_null1", ["host"])]
    good = write_config(tmp_path / "good.toml", ports)
    r = run(["check", "--config", good])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{good}: server lhr01-a, "), r.stdout
    assert "8 servers, 5 pools" in r.stdout

    bad_topology = tmp_path / "bad-topology.toml"
    bad_topology.write_text(EXAMPLE.read_text().replace("latitude = 51.47", "latitude = 95"))
    bad = write_config(tmp_path / "bad.toml", ports, topology=bad_topology, mtu=100)
    r = run(["check", "--config", bad])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith(f"{bad}:") and "mtu 100 is out of range" in lines[0], lines
    assert lines[1].startswith(f"{bad_topology}:") and "latitude 95 is out of range" in lines[1], lines

    stranger = write_config(tmp_path / "stranger.toml", ports, server="nowhere-z")
    r = run(["check", "--config", stranger])
    assert r.returncode == 2
    assert re.match(rf"^{re.escape(str(stranger))}:1:10: server `nowhere-z` is not in the topology", r.stderr), r.stderr

    r = run(["check", EXAMPLE, "--config", good])
    assert r.returncode == 2 and "cannot be used with" in r.stderr, r.stderr


def test_explain_and_table(tmp_path):
    r = run(["explain", "--topology", EXAMPLE, "--server", "lhr01-a", "--src", "203.0.113.1", "--dst", "93.184.216.34",
             "--proto", "tcp", "--sport", "40000", "--dport", "443"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["action"], out["tier"], out["target_server"]) == ("forward", "same_location", "lhr02-a")
    for key in ("src", "dst", "proto", "sport", "dport", "target_underlay", "target_datacenter", "target_location"):
        assert key in out
    flows = tmp_path / "flows.txt"
    flows.write_text("udp 2001:db8:1::1 1 2606:4700::1 53\nnonsense\nicmp 8.8.8.8 0 1.1.1.1 0\n")
    r = run(["explain", "--topology", EXAMPLE, "--server", "lhr01-a", "--flows", flows])
    assert r.returncode == 2, "a bad line is reported"
    assert f"{flows}:2:1:" in r.stderr
    assert [json.loads(l)["action"] for l in r.stdout.splitlines()] == ["local", "pass"]

    r = run(["table", "--topology", EXAMPLE, "--server", "lhr01-a", "--json"])
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    tiers = {p["prefix"]: p["tier"] for p in doc["prefixes"]}
    assert tiers["198.51.100.64/28"] == "same_dc" and tiers["2001:db8:1::/48"] == "ipv6_local"
    shares = [c["share"] for p in doc["prefixes"] if p["prefix"] == "203.0.113.128/25" for c in p["candidates"]]
    assert abs(sum(shares) - 1) < 1e-9 and 0.7 < max(shares) < 0.8, "umbrella splits 1:3"
    r = run(["table", "--topology", EXAMPLE, "--server", "nobody"])
    assert r.returncode == 2 and "nobody" in r.stderr


def test_run_refuses_bad_configuration_and_topology(tmp_path):
    config = write_config(tmp_path / "c.toml", [("u", "net_null0", ["uplink", "host"])])
    bad = config.read_text().replace("mtu = 1500", "mtu = 1500\nturbo = true")
    config.write_text(bad)
    r = run(["run", "--config", config, "--duration", "1"])
    assert r.returncode == 2
    assert re.search(rf"{re.escape(str(config))}:\d+:\d+: unknown field `turbo`", r.stderr), r.stderr

    topo = tmp_path / "t.toml"
    topo.write_text(EXAMPLE.read_text().replace('pool = "acme"', 'pool = "acmee"'))
    config = write_config(tmp_path / "c2.toml", [("u", "net_null0", ["uplink", "host"])], topology=topo)
    r = run(["run", "--config", config, "--duration", "1"])
    assert r.returncode == 2
    assert re.search(rf"{re.escape(str(topo))}:\d+:\d+: unknown pool `acmee`", r.stderr), r.stderr


def test_run_explains_device_and_eal_failures(tmp_path):
    config = write_config(tmp_path / "c.toml", [("u", "net_nosuchdriver0", ["uplink", "host"])])
    r = run(["run", "--config", config, "--duration", "1"])
    assert r.returncode == 1
    assert "net_nosuchdriver0" in r.stderr and "port `u`" in r.stderr, r.stderr
    config = write_config(tmp_path / "c2.toml", [("u", "net_null0", ["uplink", "host"])])
    r = run(["run", "--config", config, "--duration", "1", "--", "--not-an-eal-option"])
    assert r.returncode == 1
    assert "EAL initialisation failed" in r.stderr, r.stderr
    r = run(["run", "--config", tmp_path / "missing.toml"])
    assert r.returncode == 2 and "missing.toml:1:1: cannot read" in r.stderr
    r = run(["frobnicate"])
    assert r.returncode == 2


def test_run_stops_cleanly_and_returns_every_mbuf(tmp_path):
    config = write_config(tmp_path / "c.toml", [("uplink", "net_null0", ["uplink"]), ("host", "net_ring0", ["host"])])
    r = run(["run", "--config", config, "--duration", "1.5", "--stats-json", tmp_path / "s.json"])
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["accounting"]["balanced"] and stats["accounting"]["received"] > 0
    assert stats["mbufs"]["in_use"] == 0
    assert "Forward statistics for port 0 (uplink)" in r.stdout
    assert "Accumulated forward statistics" in r.stdout


def test_a_cpu_older_than_the_build_gets_a_message_not_a_crash():
    # The build targets x86-64-v3 (.cargo/config.toml); qemu's user-mode emulator runs the
    # binary as CPUs without it (Nehalem: no AVX at all; Sandy Bridge: AVX, no AVX2) and with it.
    for cpu in ("Nehalem", "SandyBridge"):
        r = subprocess.run(["qemu-x86_64", "-cpu", cpu, str(BIN), "check", str(EXAMPLE)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, (cpu, r.returncode, r.stderr)
        assert "needs an x86-64-v3 CPU" in r.stderr and 'RUSTFLAGS="-C target-cpu=x86-64"' in r.stderr, r.stderr
    r = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", str(BIN), "check", str(EXAMPLE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "157 IPv4 egress addresses" in r.stdout, r.stderr


def test_run_refuses_impossible_durations(tmp_path):
    """Hardening: these panicked (rc 134) or, for nan, ran and stopped at once."""
    config = write_config(tmp_path / "c.toml", [("u", "net_null0", ["uplink", "host"])])
    for bad in ["inf", "1e20", "18446744073709551616", "nan", "-1"]:
        r = run(["run", "--config", config, f"--duration={bad}"])
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "--duration" in r.stderr and bad in r.stderr, r.stderr


def test_run_names_the_server_key_when_the_topology_lacks_the_server(tmp_path):
    """Hardening: this was refused without a place."""
    config = write_config(tmp_path / "c.toml", [("u", "net_null0", ["uplink", "host"])], server="nobody-01")
    r = run(["run", "--config", config, "--duration", "1"])
    assert r.returncode == 2, r.stderr
    assert re.search(rf"^{re.escape(str(config))}:1:10: server `nobody-01` is not in the topology "
                     rf"{re.escape(str(EXAMPLE))}$", r.stderr, re.M), r.stderr


def test_run_refuses_a_next_hop_that_is_not_unicast(tmp_path):
    config = write_config(tmp_path / "c.toml", [("u", "net_null0", ["uplink", "host"])])
    config.write_text(config.read_text().replace("02:00:00:00:00:fe", "ff:ff:ff:ff:ff:ff"))
    r = run(["run", "--config", config, "--duration", "1"])
    assert r.returncode == 2
    assert re.search(rf"{re.escape(str(config))}:\d+:\d+: next_hop_mac `ff:ff:ff:ff:ff:ff` is the broadcast address",
                     r.stderr), r.stderr
