"""Helpers for the end-to-end tests: they run the real `egressfwd` binary on DPDK virtual
devices and look at what comes out the other side, the way the network would."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

BIN = Path(os.environ.get("EGRESSFWD_BIN", ROOT / "target" / "release" / "egressfwd"))
EXAMPLE = ROOT / "topology" / "examples" / "fleet.toml"
UPLINK_NEXT_HOP = "02:00:00:00:00:fe"
HOST_NEXT_HOP = "02:00:00:00:00:01"


@pytest.fixture(scope="session", autouse=True)
def binary_exists():
    assert BIN.exists(), f"{BIN} is missing: build it with `cargo build --release -p egressfwd`"


def example_node(uplink_mac="02:00:00:00:00:0a", host_mac="02:00:00:00:00:0b"):
    """Server lhr01-a of the example fleet, as the packet builders and the model see it."""
    from golden_model import Model
    from packets import Node
    return Node(Model(EXAMPLE, "lhr01-a"), "10.10.1.1", uplink_mac, UPLINK_NEXT_HOP, host_mac, HOST_NEXT_HOP)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, ports, topology=EXAMPLE, server="lhr01-a", workers=1, encap="fou", mtu=1500,
                 metrics_port=None, stats_interval=0, extra_dataplane=""):
    """An appliance config. `ports` is a list of (name, device, roles)."""
    metrics_port = metrics_port or free_tcp_port()
    lines = [f'server = "{server}"', f'topology = "{topology}"', "", "[dataplane]", f"workers = {workers}",
             f'encap = "{encap}"', "encap_port = 6080", f"mtu = {mtu}", extra_dataplane, ""]
    for name, device, roles in ports:
        next_hop = UPLINK_NEXT_HOP if "uplink" in roles else HOST_NEXT_HOP
        lines += ["[[port]]", f'name = "{name}"', f'device = "{device}"',
                  "roles = [" + ", ".join(f'"{r}"' for r in roles) + "]", f'next_hop_mac = "{next_hop}"', ""]
    lines += ["[metrics]", f'listen = "127.0.0.1:{metrics_port}"', f"stats_interval_seconds = {stats_interval}"]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def run(args, timeout=120, **kw):
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def start(args):
    return subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc, sig=signal.SIGINT, timeout=60):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def scrape(port, timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read().decode()


def metric(text, name, **labels):
    """The value of one sample of the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name or (want and key.startswith(name + "{") and all(f'{k}="{v}"' in key for k, v in labels.items())):
            return float(value)
    return 0.0


def wait_for_metrics(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"egressfwd exited early ({proc.returncode}): {proc.stderr.read()}")
        try:
            return scrape(port)
        except OSError:
            time.sleep(0.1)
    raise AssertionError("metrics endpoint never came up")


def load_stats(path):
    return json.loads(Path(path).read_text())
