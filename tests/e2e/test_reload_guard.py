"""A topology file read half-written is often still a valid topology: one that stops before
its `[[egress]]` entries, say. Publishing it would send the missing pools' traffic out
unencapsulated from a server that does not hold them. The appliance refuses a table that
loses more than `[reload] max_loss` (default 25%) of the egress addresses or servers, counts
it, keeps the current table and says how to force it; SIGUSR1 forces it."""
import hashlib
import os
import re
import signal
import subprocess
import time

from conftest import EXAMPLE, free_tcp_port, metric, scrape, start, stop, wait_for_metrics, write_config


def until(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s: {what}")


def start_on_the_example(tmp_path):
    """An appliance on null ports whose topology is a copy of the example: (path, metrics port, process)."""
    topology = tmp_path / "fleet.toml"
    topology.write_text(EXAMPLE.read_text())
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [("uplink", "net_null0", ["uplink"]), ("host", "net_null1", ["host"])],
                          topology=topology, metrics_port=port)
    return topology, port, start(["run", "--config", config])


def test_a_truncated_topology_is_refused_until_forced(tmp_path):
    full = EXAMPLE.read_text()
    truncated = full[: full.index("[[egress]]")]  # what `head` of the file gives: no egress at all
    topology, port, proc = start_on_the_example(tmp_path)
    try:
        wait_for_metrics(port, proc)
        before = scrape(port)
        local = metric(before, "egressfwd_egress_addresses_local")
        assert local > 0 and metric(before, "egressfwd_topology_generation") == 1
        assert sizes(before) == (157, 2, 5, 8), sizes(before)  # the example: `check` counts the same
        assert info(before) == {"server": "lhr01-a", "datacenter": "lhr01", "location": "lhr",
                                "topology_sha256": hashlib.sha256(full.encode()).hexdigest()}, before

        # Written in place, as `head -110 fleet.toml > topology.toml` would.
        with open(topology, "w") as f:
            f.write(truncated)
        text = until(lambda: (t := scrape(port)) and metric(t, "egressfwd_topology_reloads_total", result="refused") == 1 and t,
                     "the refused reload")
        assert metric(text, "egressfwd_topology_generation") == 1
        assert metric(text, "egressfwd_topology_reloads_total", result="ok") == 0
        assert metric(text, "egressfwd_egress_addresses_local") == local

        # The whole file again: nothing lost, published.
        with open(topology, "w") as f:
            f.write(full)
        until(lambda: metric(scrape(port), "egressfwd_topology_reloads_total", result="ok") == 1, "the full file's reload")

        with open(topology, "w") as f:
            f.write(truncated)
        until(lambda: metric(scrape(port), "egressfwd_topology_reloads_total", result="refused") == 2, "a second refusal")
        proc.send_signal(signal.SIGUSR1)
        text = until(lambda: (t := scrape(port)) and metric(t, "egressfwd_topology_reloads_total", result="ok") == 2 and t,
                     "the forced reload")
        assert metric(text, "egressfwd_topology_generation") == 3
        assert metric(text, "egressfwd_egress_addresses_local") == 0
        assert sizes(text) == (0, 0, 5, 8), sizes(text)
        assert info(text)["topology_sha256"] == hashlib.sha256(truncated.encode()).hexdigest()
        assert len(re.findall(r"^egressfwd_info\{", text, re.M)) == 1, "one info sample, the old one gone"
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    assert "topology reload refused" in err and "SIGUSR1" in err and "max_loss" in err, err
    assert "IPv4 egress addresses (100%)" in err, err


def sizes(text):
    return tuple(int(metric(text, f"egressfwd_topology_{name}")) for name in
                 ("ipv4_egress_addresses", "ipv6_egress_prefixes", "pools", "servers"))


def info(text):
    line = next(l for l in text.splitlines() if l.startswith("egressfwd_info{"))
    assert line.endswith("} 1"), line
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    assert labels.pop("version"), line
    return labels


def test_only_complete_writes_are_read_whatever_the_tool(tmp_path):
    """Each way real tools write a file causes one reload of the complete file: `cp`, a
    shell's `>` redirect, an editor's write-and-rename, and a slow writer that pauses
    mid-file (read then, the file would be half a topology: a failed or refused reload)."""
    full = EXAMPLE.read_text()
    source = tmp_path / "source.toml"
    source.write_text(full)
    topology, port, proc = start_on_the_example(tmp_path)

    def results():
        text = scrape(port)
        return tuple(int(metric(text, "egressfwd_topology_reloads_total", result=r)) for r in ("ok", "error", "refused"))

    def editor_rename():
        tmp = tmp_path / ".fleet.toml.swp"
        tmp.write_text(full)
        os.replace(tmp, topology)

    def slow_writer():
        with open(topology, "w") as f:
            cut = full.index("[[pool]]")
            f.write(full[:cut])
            f.flush()
            time.sleep(0.8)  # 16 control ticks with a half-written file
            f.write(full[cut:])

    writers = [("cp", lambda: subprocess.run(["cp", str(source), str(topology)], check=True)),
               ("redirect", lambda: subprocess.run(f"cat {source} > {topology}", shell=True, check=True)),
               ("editor", editor_rename),
               ("slow", slow_writer)]
    try:
        wait_for_metrics(port, proc)
        assert results() == (0, 0, 0)
        for n, (name, write) in enumerate(writers, start=1):
            write()
            until(lambda: results()[0] >= n, f"the reload after {name}")
            time.sleep(0.3)  # a second reload of the same write would show here
            assert results() == (n, 0, 0), (name, results())
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
    assert "reload failed" not in err and "reload refused" not in err, err


def test_a_symlinked_topology_is_followed(tmp_path):
    """A topology reached through links that are swapped (as Kubernetes updates a ConfigMap:
    a new directory, then a rename of the link) changes without an event on its own name:
    such a path is polled, and the swap is a reload."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "fleet.toml").write_text(EXAMPLE.read_text())
    os.symlink("v1", tmp_path / "..data")
    topology = tmp_path / "fleet.toml"
    os.symlink("..data/fleet.toml", topology)
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [("uplink", "net_null0", ["uplink"]), ("host", "net_null1", ["host"])],
                          topology=topology, metrics_port=port)
    proc = start(["run", "--config", config])
    try:
        wait_for_metrics(port, proc)
        os.symlink("v2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        until(lambda: metric(scrape(port), "egressfwd_topology_reloads_total", result="ok") == 1, "the reload after the swap")
    finally:
        rc, out, err = stop(proc)
    assert rc == 0, err
