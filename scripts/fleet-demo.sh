#!/usr/bin/env bash
# A fleet of three appliances in network namespaces, for a newcomer to watch connections go
# through it: lhr01-a, lhr01-b and lhr01-c of the example fleet, each an `egressfwd run`
# process; an HTTP server at the origin; unmodified `curl` clients in lhr01-a's host
# namespace bound to the egress address 198.51.100.64, which only lhr01-b and lhr01-c hold.
# Prints what each connection did and the counters of each appliance that show the path it
# took, then tears everything down (also on failure or Ctrl-C). Needs root.
#
#   scripts/fleet-demo.sh               # 5 downloads of 20 MB
#   CLIENTS=20 scripts/fleet-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p egressfwd
out=$(mktemp -d /tmp/egressfwd-fleet-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT
CLIENTS=${CLIENTS:-5} /usr/bin/python3 - "$out" <<'PY'
import hashlib, os, subprocess, sys, time
from pathlib import Path
sys.path[:0] = ["tests/e2e", "scripts"]
from conftest import metric
from fleet import ORIGIN_ADDRESS, X, Fleet

tmp, clients = Path(sys.argv[1]), int(os.environ["CLIENTS"])
(tmp / "www").mkdir()
blob = os.urandom(20 << 20)
(tmp / "www" / "file").write_bytes(blob)
digest = hashlib.sha256(blob).hexdigest()
print(f"fleet: lhr01-a (holds no address of pool globex), lhr01-b and lhr01-c (hold {X});")
print(f"       the origin {ORIGIN_ADDRESS} reaches {X} by ECMP over lhr01-b and lhr01-c")
with Fleet(tmp) as fleet:
    server = subprocess.Popen(["ip", "netns", "exec", fleet.origin, "/usr/bin/python3", "-m", "http.server",
                               "--bind", ORIGIN_ADDRESS, "80"], cwd=tmp / "www",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        print(f"\n{clients} x curl --interface {X} http://{ORIGIN_ADDRESS}/file (20 MB) from lhr01-a's host")
        started = time.time()
        curls = [subprocess.Popen(["ip", "netns", "exec", fleet.hosts["lhr01-a"], "curl", "-sS", "--interface", X,
                                   "-o", str(tmp / f"got{i}"), "-w", "%{local_port} %{size_download} %{speed_download}",
                                   f"http://{ORIGIN_ADDRESS}/file"], stdout=subprocess.PIPE, text=True)
                 for i in range(clients)]
        for i, c in enumerate(curls):
            port, size, speed = c.communicate()[0].split()
            same = hashlib.sha256((tmp / f"got{i}").read_bytes()).hexdigest() == digest
            print(f"  connection from {X}:{port}: {int(size) >> 20} MB at {float(speed) / 1e6:.0f} MB/s, "
                  f"sha256 {'equal' if same else 'DIFFERENT'}")
        print(f"  all done in {time.time() - started:.1f} s")
    finally:
        server.terminate()
    print("\nthe path, by each appliance's counters:")
    for name, what in (("lhr01-a", [("egressfwd_decisions_total", {"tier": "same_dc"}, "packets forwarded to a holder"),
                                    ("egressfwd_decapsulated_total", {}, "replies returned by a holder"),
                                    ("egressfwd_replies_total", {"to": "host"}, "of them delivered to its host"),
                                    ("egressfwd_mss_clamped_total", {}, "SYNs whose MSS was fitted to the tunnel")]),
                       ("lhr01-b", None), ("lhr01-c", None)):
        text = fleet.metrics(name)
        what = what or [("egressfwd_decapsulated_total", {}, "packets decapsulated (from lhr01-a or steered)"),
                        ("egressfwd_decisions_total", {"tier": "local"}, "packets sent out to the origin"),
                        ("egressfwd_replies_total", {"to": "peer"}, "replies restored and returned to lhr01-a"),
                        ("egressfwd_replies_total", {"to": "steered"}, "replies steered to the other holder")]
        print(f"  {name}:")
        for metric_name, labels, meaning in what:
            print(f"    {int(metric(text, metric_name, **labels)):>9}  {meaning}")
print("\nfleet torn down: namespaces, links and processes removed")
PY
