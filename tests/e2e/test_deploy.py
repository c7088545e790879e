"""What an operator installs (issue 20, item 4): the Debian package, installed into a scratch
root and run from there; the systemd unit, checked by systemd-analyze; the Prometheus alert
rules, checked and unit-tested by promtool; the Grafana dashboard, whose every query parses
and names only metrics the appliance exports."""
import json
import re
import shutil
import subprocess
import time

import pytest
from conftest import BIN, ROOT, free_tcp_port, scrape, start, stop, wait_for_metrics, write_config

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "egressfwd-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "egressfwd-dashboard.json"


def exported_metrics(tmp_path):
    """The metric names a running appliance exports."""
    port = free_tcp_port()
    config = write_config(tmp_path / "c.toml", [("uplink", "net_null0", ["uplink"]), ("host", "net_null1", ["host"])],
                          metrics_port=port)
    proc = start(["run", "--config", config])
    try:
        wait_for_metrics(port, proc)
        time.sleep(0.3)
        text = scrape(port)
    finally:
        stop(proc)
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def dashboard_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_alert_rules_check_and_fire_as_their_tests_say():
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(["promtool", "test", "rules", "egressfwd-alerts.test.yml"], cwd=RULES.parent,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for alert in ("EgressfwdReloadFailed", "EgressfwdReloadRefused", "EgressfwdDropping", "EgressfwdConnectionsFull",
                  "EgressfwdMbufsNearExhaustion", "EgressfwdWorkerStalled"):
        assert f"alert: {alert}" in RULES.read_text()


def test_dashboard_and_rules_name_only_exported_metrics(tmp_path):
    exported = exported_metrics(tmp_path)
    # Drop reasons the data plane does not have yet (connections, part 1) are label values,
    # not metrics: the names below must all exist.
    for source, text in (("rules", RULES.read_text()), ("dashboard", DASHBOARD.read_text())):
        named = set(re.findall(r"egressfwd_[a-z0-9_]+", text)) - {"egressfwd_dashboard"}
        assert named, source
        assert named <= exported, f"{source} names metrics the appliance does not export: {sorted(named - exported)}"
    # Every dashboard query parses as PromQL: promtool checks them as recording rules.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q.replace("$instance", ".*")} for i, q in enumerate(dashboard_queries())]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "egressfwd.service").read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "WatchdogSec="):
        assert line in unit
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: scripts/setup.sh installs systemd")
    local = tmp_path / "egressfwd.service"
    local.write_text(unit.replace("/usr/bin/egressfwd", str(BIN)))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(local)], capture_output=True, text=True)
    problems = [l for l in (out.stdout + out.stderr).splitlines() if "egressfwd.service" in l]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_debian_package_installs_into_a_scratch_root_and_runs_from_there(tmp_path):
    out = subprocess.run([str(ROOT / "scripts" / "package.sh")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    deb = ROOT / out.stdout.strip().splitlines()[-1]
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True).stdout
    depends = next(l for l in info.splitlines() if l.strip().startswith("Depends:"))
    assert "librte-eal23" in depends and "librte-ethdev23" in depends and "librte-meta-allpmds" in depends, depends
    # dpkg itself, into a root of its own: a fresh database, the package's files and scripts.
    root = tmp_path / "root"
    admin = root / "var" / "lib" / "dpkg"
    for d in ("updates", "info", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_text("")
    install = subprocess.run(["dpkg", f"--root={root}", f"--admindir={admin}", "--force-depends",
                              "--force-not-root", "--force-script-chrootless", "--log=/dev/null", "-i", str(deb)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    status = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${Status} ${Version}", "egressfwd"],
                            capture_output=True, text=True, check=True).stdout
    assert status.startswith("install ok installed"), status
    for path in ("usr/bin/egressfwd", "lib/systemd/system/egressfwd.service", "etc/egressfwd/config.toml",
                 "etc/egressfwd/topology.toml", "usr/share/man/man1/egressfwd.1.gz",
                 "usr/share/bash-completion/completions/egressfwd",
                 "usr/share/doc/egressfwd/examples/egressfwd-alerts.yml"):
        assert (root / path).exists(), path
    conffiles = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f=${Conffiles}", "egressfwd"],
                               capture_output=True, text=True, check=True).stdout
    assert "/etc/egressfwd/config.toml" in conffiles
    # The installed binary checks the installed config and the topology beside it.
    check = subprocess.run([str(root / "usr/bin/egressfwd"), "check", "--config", str(root / "etc/egressfwd/config.toml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "server lhr01-a" in check.stdout
    man = subprocess.run(["man", "-l", str(root / "usr/share/man/man1/egressfwd.1.gz")], capture_output=True, text=True,
                         env={"MANPAGER": "cat", "PATH": "/usr/bin:/bin"})
    if man.returncode == 0:
        assert "egressfwd" in man.stdout
    print(f"{deb.name}: {depends.strip()}")
    print(check.stdout.strip())
