"""The appliance as a service (issue 20, items 3 and 4): systemd's notifications (ready,
watchdog, reloading, stopping) on a socket of the test's own, as systemd would listen;
`/healthz`; periodic statistics off under systemd unless configured; logs as text without
colour when not on a terminal, or as JSON, DPDK's own lines included; shell completions and
the man page."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import BIN, EXAMPLE, free_tcp_port, start, stop, wait_for_metrics, write_config


def null_ports():
    return [("uplink", "net_null0", ["uplink"]), ("host", "net_null1", ["host"])]


def config_without_stats_interval(path, **kwargs):
    config = write_config(path, null_ports(), **kwargs)
    text = "\n".join(line for line in config.read_text().splitlines() if not line.startswith("stats_interval_seconds"))
    config.write_text(text + "\n")
    return config


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class NotifySocket:
    """What systemd listens on for a Type=notify service."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []

    def wait_for(self, state, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.seen.append(message)
            if state in message.split("\n"):
                return message
        raise AssertionError(f"no {state} in {timeout} s; seen {self.seen[-5:]}")

    def count(self, state):
        return sum(state in m.split("\n") for m in self.seen)


def test_systemd_is_told_ready_alive_reloading_and_stopping(tmp_path):
    notify = NotifySocket(tmp_path / "notify")
    port = free_tcp_port()
    config = config_without_stats_interval(tmp_path / "c.toml", metrics_port=port)
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000", INVOCATION_ID="0123456789abcdef")
    proc = subprocess.Popen([str(BIN), "run", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        ready = notify.wait_for("READY=1", 30)
        assert "STATUS=forwarding with topology generation 1" in ready, ready
        assert healthz(port) == (200, "ready\n")
        # Pings every half of WATCHDOG_USEC: at least four in a second, from the control thread.
        before = notify.count("WATCHDOG=1")
        t0 = time.time()
        while time.time() - t0 < 1.0:
            notify.wait_for("WATCHDOG=1", 1)
        assert notify.count("WATCHDOG=1") - before >= 4, notify.seen[-10:]
        # `systemctl reload` sends SIGHUP (ExecReload in deploy/egressfwd.service).
        proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1", 5)
        again = notify.wait_for("READY=1", 10)
        assert "generation 2" in again, again
        rc, out, err = stop(proc, signal.SIGTERM)
        notify.wait_for("STOPPING=1", 1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, err
    print("notifications:", [m.replace("\n", " ") for m in notify.seen if "WATCHDOG" not in m])
    # Under systemd, periodic statistics are printed only if the config asks (the journal is
    # the log); the summary on stop stays.
    assert out.count("Decisions:") == 1, out[:2000]
    assert "\x1b[" not in err, "no colour codes when standard error is not a terminal"


def test_without_systemd_statistics_are_printed_every_second(tmp_path):
    port = free_tcp_port()
    config = config_without_stats_interval(tmp_path / "c.toml", metrics_port=port)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "INVOCATION_ID")}
    out = subprocess.run([str(BIN), "run", "--config", str(config), "--duration", "2.5"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    # Two periodic reports at least, and the summary on stop.
    assert out.stdout.count("Decisions:") >= 3, out.stdout[:2000]


def test_json_logs_carry_dpdk_lines_too(tmp_path):
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", null_ports(), metrics_port=port)
    # EAL's own informational lines, which the appliance otherwise keeps at notice.
    out = subprocess.run([str(BIN), "--log-format", "json", "run", "--config", str(config), "--duration", "0.5",
                          "--", "--log-level=lib.eal:info"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]
    assert lines and all("level" in l and "target" in l for l in lines)
    dpdk = [l for l in lines if l["target"] == "dpdk"]
    assert dpdk, "DPDK's lines go through the logger"
    assert any(l["message"].startswith("EAL:") for l in dpdk), dpdk[:3]
    print(f"{len(lines)} JSON lines, {len(dpdk)} from DPDK, e.g. {dpdk[0]}")


def test_bad_log_format_is_bad_usage():
    out = subprocess.run([str(BIN), "--log-format", "xml", "check", str(EXAMPLE)], capture_output=True, text=True)
    assert out.returncode == 2 and "xml" in out.stderr


def test_completions_and_man_page():
    bash = subprocess.run([str(BIN), "completions", "bash"], capture_output=True, text=True, check=True).stdout
    assert "_egressfwd()" in bash and "explain" in bash
    subprocess.run(["bash", "-n"], input=bash, text=True, check=True)
    zsh = subprocess.run([str(BIN), "completions", "zsh"], capture_output=True, text=True, check=True).stdout
    assert zsh.startswith("#compdef egressfwd")
    man = subprocess.run([str(BIN), "manpage"], capture_output=True, text=True, check=True).stdout
    assert ".TH egressfwd 1" in man and "run" in man
    rendered = subprocess.run(["man", "-l", "-"], input=man, capture_output=True, text=True,
                              env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
    if rendered.returncode == 0:
        assert "Userspace egress forwarding appliance" in rendered.stdout


def test_worker_busy_and_idle_cycles_are_measured(tmp_path):
    """VPP's `show runtime` figures: a worker fed without pause is busy; one whose input has
    ended is idle, and its idle cycles keep growing at the counter's rate (an idle worker
    still publishes, so that a stalled one shows). Link state and device errors as well."""
    from conftest import metric, scrape
    from scapy.all import IP, UDP, Ether, wrpcap
    wrpcap(str(tmp_path / "few.pcap"), [Ether() / IP(dst="192.0.2.1") / UDP()] * 10)
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/few.pcap", ["uplink"]),
        ("host", "net_null0,no-rx=1", ["host"]),
    ], metrics_port=port)
    proc = start(["run", "--config", config])
    try:
        wait_for_metrics(port, proc)
        time.sleep(0.5)
        first, t0 = scrape(port), time.time()
        time.sleep(1.0)
        second, t1 = scrape(port), time.time()
    finally:
        rc, _, err = stop(proc)
    assert rc == 0, err
    hz = metric(second, "egressfwd_tsc_hz")
    assert hz > 1e8
    idle = metric(second, "egressfwd_worker_idle_cycles_total", worker="0") - metric(first, "egressfwd_worker_idle_cycles_total", worker="0")
    busy = metric(second, "egressfwd_worker_busy_cycles_total", worker="0") - metric(first, "egressfwd_worker_busy_cycles_total", worker="0")
    seconds = idle / hz
    assert 0.5 < seconds < 1.5 * (t1 - t0), f"idle {seconds:.2f} s of {t1 - t0:.2f} s"
    assert busy == 0, "nothing arrived: no busy round"
    assert metric(second, "egressfwd_worker_busy_cycles_total", worker="0") > 0, "the 10 packets were a busy round"
    assert metric(second, "egressfwd_port_link_up", port="host") == 1
    assert "egressfwd_device_rx_errors_total{port=\"uplink\"} 0" in second

    # A null device delivers without pause: every round is busy.
    config = write_config(tmp_path / "busy.toml", null_ports(), metrics_port=free_tcp_port())
    out = subprocess.run([str(BIN), "run", "--config", str(config), "--duration", "1", "--stats-json",
                          str(tmp_path / "s.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    worker = json.loads((tmp_path / "s.json").read_text())["workers"][0]
    utilisation = worker["busy_cycles"] / (worker["busy_cycles"] + worker["idle_cycles"])
    assert utilisation > 0.95, worker
    print(f"idle worker: {seconds:.2f} s idle of {t1 - t0:.2f} s; busy worker: {utilisation:.3f} busy")


def telemetry(prefix, *commands):
    """Answers of DPDK's own client, dpdk-telemetry.py, one JSON object a command."""
    out = subprocess.run(["dpdk-telemetry.py", "-f", prefix], input="".join(c + "\n" for c in commands),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    answers = {}
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            answers.update(json.loads(line))
    return answers


def test_telemetry_commands_of_two_appliances_on_one_machine(tmp_path):
    """`/egressfwd/stats` and `/egressfwd/table` on DPDK's telemetry socket, in a runtime
    directory named after the server, so two appliances on one machine answer apart."""
    from conftest import metric, scrape
    from scapy.all import IP, TCP, Ether, wrpcap
    frames = [Ether(dst="02:00:00:00:00:0b") / IP(src="198.51.100.1", dst="192.0.2.80") / TCP(sport=1000 + i, dport=443)
              for i in range(100)]
    wrpcap(str(tmp_path / "acme.pcap"), frames)
    # 20 flows lhr01-b forwarded to lhr01-a: each is a connection lhr01-a records.
    from conftest import example_node
    node = example_node()
    fleet = [node.fleet_packet("10.10.1.2", IP(src="198.51.100.2", dst="192.0.2.81") / TCP(sport=2000 + i, dport=443))
             for i in range(20)]
    wrpcap(str(tmp_path / "fleet.pcap"), fleet)
    procs, ports = [], []
    for server in ("lhr01-a", "lhr01-b"):
        port = free_tcp_port()
        uplink = f"net_pcap1,rx_pcap={tmp_path}/fleet.pcap" if server == "lhr01-a" else "net_null0,no-rx=1"
        config = write_config(tmp_path / f"{server}.toml", [
            ("uplink", uplink, ["uplink"]),
            ("host", f"net_pcap0,rx_pcap={tmp_path}/acme.pcap", ["host"]),
        ], server=server, metrics_port=port)
        procs.append(start(["run", "--config", config]))
        ports.append(port)
    try:
        for proc, port in zip(procs, ports):
            wait_for_metrics(port, proc)
        time.sleep(1.2)   # the pcaps are read, and the snapshot refreshed (twice a second)
        a = telemetry("egressfwd-lhr01-a", "/egressfwd/stats", "/egressfwd/table", "/ethdev/list")
        # Mappings in use are the workers' created less expired, in the twice-a-second snapshot.
        deadline = time.time() + 12
        while True:
            connections = telemetry("egressfwd-lhr01-a", "/egressfwd/connections")["/egressfwd/connections"]
            if connections["in_use"] >= 20 or time.time() > deadline:
                break
            time.sleep(0.5)
        b = telemetry("egressfwd-lhr01-b", "/egressfwd/table")
        text = scrape(ports[0])
    finally:
        for proc in procs:
            rc, _, err = stop(proc)
            assert rc == 0, err
    stats, table = a["/egressfwd/stats"], a["/egressfwd/table"]
    assert stats["received"] == 120 == stats["transmitted"], stats
    assert stats["decapsulated"] == 20, stats
    assert stats["decisions_local"] == metric(text, "egressfwd_decisions_total", tier="local") >= 100
    assert stats["dropped"] == 0 and stats["drops_too_big"] == 0
    assert table["server"] == "lhr01-a" and b["/egressfwd/table"]["server"] == "lhr01-b"
    assert table["generation"] == 1 and table["pools"] == 5 and len(table["topology_sha256"]) == 64
    assert a["/ethdev/list"] == [0, 1], "DPDK's own commands answer beside ours"
    # Every TCP or UDP flow egressing here has a mapping: the 20 decapsulated ones at least.
    assert connections["capacity"] >= 1 << 20, connections
    assert connections["in_use"] == connections["created"] >= 20 and connections["expired"] == 0, connections
    assert connections["refused_full"] == 0, connections
    print("telemetry:", {k: stats[k] for k in ("received", "transmitted", "decisions_local")}, table["server"],
          b["/egressfwd/table"]["server"], connections)


def test_too_few_worker_lcores_is_a_clear_error(tmp_path):
    """Workers are EAL lcores: EAL arguments that give it fewer worker lcores than the config
    has workers fail the run with a message, and leave nothing behind."""
    config = write_config(tmp_path / "c.toml", null_ports(), metrics_port=free_tcp_port())
    out = subprocess.run([str(BIN), "run", "--config", str(config), "--duration", "1", "--", "-l", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "EAL has 0 worker lcores" in out.stderr and "for 1 workers" in out.stderr, out.stderr
    assert not (Path("/var/run/dpdk") / "egressfwd-lhr01-a").exists(), "the runtime directory is removed"
