"""A fleet of three appliances in network namespaces, with real kernels and sockets on the
host and origin sides (issue 19's harness).

- `lhr01-a`, `lhr01-b` and `lhr01-c` of the example fleet, each an `egressfwd run` process
  whose two ports are `net_af_packet` on veth ends in the root namespace, or (`ports="tap"`)
  `net_tap` ports whose kernel interfaces are moved into the namespaces once the appliance
  has made them, each with a MAC distinct from its port's. Pool globex
  (address X = 198.51.100.64) is held by lhr01-b and lhr01-c (one data center), not by
  lhr01-a.
- Each server's host side is a namespace (`<tag>-ha`, `-hb`, `-hc`) behind the veth's other
  end: the proxy's sockets live there, on the egress address, with a static neighbour for
  the appliance (the data plane answers no ARP).
- The fabric is a bridge in the `<tag>-o` namespace, which is also the origin and the
  underlay's router: it holds 192.0.2.80, routes the underlay addresses to the appliances'
  uplinks (static neighbours) and reaches X over an ECMP route through lhr01-b and lhr01-c,
  hashed on ports (`fib_multipath_hash_policy=1`), so replies land on either holder.
- Every interface keeps an MTU of 1500.

Everything is removed on exit, even on failure: namespaces (and the veths or taps in them),
processes, and the appliances' EAL leftovers (each run cleans its own).
"""
import os
import subprocess
import time
import uuid
from pathlib import Path

from conftest import EXAMPLE, free_tcp_port, metric, scrape, start, stop, wait_for_metrics, write_config

X = "198.51.100.64"
ORIGIN_ADDRESS = "192.0.2.80"
HOST_MAC = "02:00:00:00:00:01"      # the host side's interface: the appliances' host next hop
ROUTER_MAC = "02:00:00:00:00:fe"    # the fabric's bridge: the appliances' uplink next hop
SERVERS = {"lhr01-a": ("10.10.1.1", "a"), "lhr01-b": ("10.10.1.2", "b"), "lhr01-c": ("10.10.1.3", "c")}


def sh(*args, ns=None, check=True, **kw):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


class Fleet:
    def __init__(self, tmp_path: Path, ports="af_packet"):
        assert ports in ("af_packet", "tap")
        self.ports = ports
        self.tmp = tmp_path
        self.tag = uuid.uuid4().hex[:5]
        self.origin = f"efo{self.tag}"
        self.hosts = {name: f"efh{letter}{self.tag}" for name, (_, letter) in SERVERS.items()}
        self.procs = {}
        self.metrics_ports = {}
        self.links = []

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _veth(self, root_end, other_end, other_ns, root_mac, other_mac):
        # The peer is made in its namespace at once (its name may exist here, as eth0 does).
        sh("ip", "link", "add", root_end, "address", root_mac, "type", "veth", "peer", "name", other_end,
           "address", other_mac, "netns", other_ns)
        self.links.append(root_end)
        sh("sysctl", "-qw", f"net.ipv6.conf.{root_end}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", root_end, "up")

    def _build(self):
        # One topology file for the whole fleet, as in production: a change reaches all.
        self.topology = self.tmp / "fleet.toml"
        self.topology.write_text(EXAMPLE.read_text())
        o = self.origin
        sh("ip", "netns", "add", o)
        for ns in self.hosts.values():
            sh("ip", "netns", "add", ns)
        for ns in [o, *self.hosts.values()]:
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns, check=False)
            sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns, check=False)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        # The fabric: a bridge in the origin's namespace, which routes the underlay.
        sh("ip", "link", "add", "br0", "address", ROUTER_MAC, "type", "bridge", ns=o)
        sh("ip", "addr", "add", f"{ORIGIN_ADDRESS}/32", "dev", "br0", ns=o)
        sh("ip", "link", "set", "br0", "up", ns=o)
        sh("ethtool", "-K", "br0", "tx", "off", ns=o)
        for key, value in (("net.ipv4.ip_forward", 1), ("net.ipv4.fib_multipath_hash_policy", 1),
                           ("net.ipv4.conf.all.rp_filter", 0), ("net.ipv4.conf.default.rp_filter", 0),
                           ("net.ipv4.conf.all.send_redirects", 0), ("net.ipv4.conf.br0.send_redirects", 0),
                           ("net.ipv4.conf.br0.rp_filter", 0)):
            sh("sysctl", "-qw", f"{key}={value}", ns=o)
        for i, (name, (underlay, letter)) in enumerate(SERVERS.items()):
            up_mac, fabric_mac = f"02:00:00:0a:00:0{i + 1}", f"02:00:00:0b:00:0{i + 1}"
            host_port_mac = f"02:00:00:0c:00:0{i + 1}"
            up, host, host_ns = f"efu{letter}{self.tag}", f"efd{letter}{self.tag}", self.hosts[name]
            if self.ports == "tap":
                # The appliance makes its tap interfaces; their kernel sides then move into
                # the namespaces (the PMD keeps its queues' file descriptors), with MACs of
                # their own, distinct from the ports'.
                self._start(name, f"net_tap{2 * i},iface={up},mac={up_mac}",
                            f"net_tap{2 * i + 1},iface={host},mac={host_port_mac}")
                wait_for_metrics(self.metrics_ports[name], self.procs[name], timeout=60)
                sh("ip", "link", "set", up, "netns", o)
                sh("ip", "link", "set", up, "address", fabric_mac, ns=o)
                sh("ip", "link", "set", host, "netns", host_ns)
                sh("ip", "link", "set", host, "name", "eth0", ns=host_ns)
                sh("ip", "link", "set", "eth0", "address", HOST_MAC, ns=host_ns)
                fabric_end = up
            else:
                fabric_end = f"efU{letter}{self.tag}"
                self._veth(up, fabric_end, o, up_mac, fabric_mac)
                self._veth(host, "eth0", host_ns, host_port_mac, HOST_MAC)
                # DPDK's af_packet driver names its socket's fanout group `pid ^ ifindex`:
                # two appliances can draw the same group for different interfaces, and the
                # second is refused (EINVAL). Started again, it has another pid.
                for attempt in range(3):
                    self._start(name, f"net_af_packet{2 * i},iface={up}", f"net_af_packet{2 * i + 1},iface={host}")
                    try:
                        wait_for_metrics(self.metrics_ports[name], self.procs[name], timeout=60)
                        break
                    except AssertionError as err:
                        if "PACKET_FANOUT" not in str(err) or attempt == 2:
                            raise
            sh("ip", "link", "set", fabric_end, "master", "br0", ns=o)
            # Kernels hand veths their packets with the L4 checksum left to the "hardware":
            # on a wire to a NIC it would be filled in, here the appliance would read it
            # unfinished. Checksums are computed in software instead, as a NIC's would be.
            sh("ethtool", "-K", fabric_end, "tx", "off", ns=o, check=self.ports != "tap")
            sh("ip", "link", "set", fabric_end, "up", ns=o)
            # Known to the bridge from the start: no flooding of a holder's frames to the
            # other appliances before it has learnt where each is.
            sh("bridge", "fdb", "replace", up_mac, "dev", fabric_end, "master", "static", ns=o)
            sh("ip", "route", "add", f"{underlay}/32", "dev", "br0", ns=o)
            sh("ip", "neigh", "replace", underlay, "lladdr", up_mac, "dev", "br0", "nud", "permanent", ns=o)
            sh("ethtool", "-K", "eth0", "tx", "off", ns=host_ns, check=self.ports != "tap")
            sh("ip", "addr", "add", f"{X}/32", "dev", "eth0", ns=host_ns)
            sh("ip", "link", "set", "eth0", "up", ns=host_ns)
            sh("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink", "src", X, ns=host_ns)
            sh("ip", "neigh", "replace", "169.254.1.1", "lladdr", host_port_mac, "dev", "eth0",
               "nud", "permanent", ns=host_ns)
        # Replies to X: ECMP over the two holders, by ports.
        sh("ip", "route", "add", f"{X}/32", "nexthop", "via", "10.10.1.2", "dev", "br0",
           "nexthop", "via", "10.10.1.3", "dev", "br0", ns=o)
        for name, port in self.metrics_ports.items():
            wait_for_metrics(port, self.procs[name], timeout=60)

    def _start(self, name, uplink, host):
        port = free_tcp_port()
        config = write_config(self.tmp / f"{name}.toml", [
            ("uplink", uplink, ["uplink"]), ("host", host, ["host"]),
        ], topology=self.topology, server=name, metrics_port=port, extra_dataplane="idle_sleep_us = 200")
        self.metrics_ports[name] = port
        self.procs[name] = start(["run", "--config", config, "--stats-json", self.tmp / f"{name}.json"])

    def metrics(self, name):
        return scrape(self.metrics_ports[name])

    def reload(self, text):
        """Replaces the fleet's topology file (write and rename) and waits until every
        appliance has published it."""
        reloads = "egressfwd_topology_reloads_total"
        before = {n: metric(self.metrics(n), reloads, result="ok") for n in self.procs}
        tmp = self.topology.with_name("fleet.toml.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.topology)
        deadline = time.time() + 15
        while any(metric(self.metrics(n), reloads, result="ok") <= before[n] for n in self.procs):
            assert time.time() < deadline, "a reload was not seen"
            time.sleep(0.1)

    def __exit__(self, *exc):
        for name, proc in self.procs.items():
            if proc.poll() is None:
                rc, out, err = stop(proc)
                (self.tmp / f"{name}.log").write_text(err)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in [self.origin, *self.hosts.values()]:
            sh("ip", "netns", "del", ns, check=False)
        return False
