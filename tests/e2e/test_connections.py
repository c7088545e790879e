"""Connections, part 1 (contract 7.2 to 7.5 and the bound of 7.6) through the running
appliance:
- three appliances, the test relaying frames between their uplinks: a request out through
  another holder, and its reply back from a third;
- a reply for a slice that moved here in a live reload, passed on to its previous owner;
- live, on two kernel tap interfaces, with the clock driven by the config's timeouts: a flow
  outside this server's slices is translated into them and one inside is not; the origin's
  reply and an ICMP error about the flow come back with the original port restored (every
  checksum recomputed by scapy); once the mapping has expired, the reply is no longer
  restored;
- from pcaps looped at full speed: a flood of a million replies for unknown flows creates no
  mapping and costs the established flows nothing; a table filled to its bound refuses new
  flows (`connections_full`) and never evicts a live one."""
import os
import random
import subprocess
import time
import uuid

import pytest
from conftest import (checksums_ok, example_node, free_tcp_port, load_stats, metric, scrape, start, stop,
                      wait_for_metrics, write_config)
from packets import ORIGIN
from scapy.all import ICMP, IP, TCP, UDP, AsyncSniffer, Ether, Raw, sendp, wrpcap

LOCAL = "198.51.100.1"          # pool acme, held by lhr01-a (the server under test)


def connections_config(path, ports, metrics_port, topology=None, server="lhr01-a", **limits):
    """A one-worker config with `[connections]` set to `limits`."""
    extra = {"topology": topology} if topology else {}
    config = write_config(path, ports, workers=1, metrics_port=metrics_port, server=server, **extra)
    with open(config, "a") as f:
        f.write("\n[connections]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    return config


def slice_ports(model, mine, count, seed=3):
    """`count` ports of pool acme whose slice is (or is not) this server's."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        port = rng.randrange(1024, 65536)
        if (model.slice_owner("acme", port) == model.me["name"]) == mine and port not in out:
            out.append(port)
    return out


class Taps:
    """The appliance with both ports on kernel tap interfaces: what scapy sends on one is
    received by that port, and what the port sends is sniffed on its interface."""

    def __init__(self, tmp_path, topology=None, server="lhr01-a", **limits):
        tag = uuid.uuid4().hex[:6]
        self.uplink, self.host = f"efwu{tag}", f"efwh{tag}"
        self.metrics_port = free_tcp_port()
        config = connections_config(tmp_path / f"c-{server}.toml", [
            ("uplink", f"net_tap0,iface={self.uplink}", ["uplink"]),
            ("host", f"net_tap1,iface={self.host}", ["host"]),
        ], self.metrics_port, topology, server, **limits)
        self.stats_path = tmp_path / f"s-{server}.json"
        self.proc = start(["run", "--config", config, "--stats-json", self.stats_path])
        wait_for_metrics(self.metrics_port, self.proc)
        for iface in (self.uplink, self.host):
            # Keep the kernel's own IPv6 chatter off the interfaces.
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"], check=False)
            subprocess.run(["ip", "link", "set", iface, "up"], check=True)
        time.sleep(0.5)
        self.node = example_node("02:00:00:00:00:00", "02:00:00:00:00:00")

    def exchange(self, frame, send_on, sniff_on, want, timeout=2.0):
        """Sends `frame` on one interface; returns the first frame seen on the other that
        `want` accepts (None if none within `timeout`)."""
        sniffer = AsyncSniffer(iface=sniff_on, lfilter=lambda p: IP in p and want(p), count=1, timeout=timeout)
        sniffer.start()
        time.sleep(0.2)
        sendp(frame, iface=send_on, verbose=False)
        sniffer.join()
        got = sniffer.results
        return got[0] if got else None

    def exchange_all(self, frames, send_on, sniff_on, want, timeout=3.0):
        """Sends `frames` on one interface; returns the frames `want` accepts seen on the
        other, as many as were sent if they all came within `timeout`."""
        sniffer = AsyncSniffer(iface=sniff_on, lfilter=lambda p: IP in p and want(p), count=len(frames),
                               timeout=timeout)
        sniffer.start()
        time.sleep(0.2)
        sendp(frames, iface=send_on, verbose=False)
        sniffer.join()
        return list(sniffer.results)

    def reload(self, topology, text):
        """Replaces the topology file (write and rename) and waits for the reload."""
        before = metric(self.metrics(), "egressfwd_topology_reloads_total", result="ok")
        tmp = topology.with_name(topology.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, topology)
        deadline = time.time() + 10
        while metric(self.metrics(), "egressfwd_topology_reloads_total", result="ok") <= before:
            assert self.proc.poll() is None, "egressfwd died"
            assert time.time() < deadline, "reload not seen"
            time.sleep(0.05)

    def metrics(self):
        return scrape(self.metrics_port)

    def close(self):
        return stop(self.proc)


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_translated_flow_its_reply_and_error_come_back_restored_until_expiry(tmp_path):
    taps = Taps(tmp_path, udp_seconds=2)
    node = taps.node
    model = node.model
    try:
        outside, = slice_ports(model, mine=False, count=1)
        inside, = slice_ports(model, mine=True, count=1, seed=4)

        def request(sport):
            return (Ether(dst="02:00:00:00:00:0b", src="02:00:00:00:00:77") / IP(src=LOCAL, dst=ORIGIN, ttl=64)
                    / UDP(sport=sport, dport=53) / Raw(b"query"))

        def leaving(p):
            return UDP in p and p[IP].src == LOCAL and p[UDP].dport == 53

        # 7.2: a port in this server's slices is kept; one outside is translated into them.
        kept = taps.exchange(request(inside), taps.host, taps.uplink, leaving)
        assert kept is not None, "the flow inside the slices did not leave"
        assert kept[UDP].sport == inside and checksums_ok(bytes(kept))
        out = taps.exchange(request(outside), taps.host, taps.uplink, leaving)
        assert out is not None, "the flow outside the slices did not leave"
        translated = out[UDP].sport
        assert translated != outside
        assert model.slice_owner("acme", translated) == model.me["name"], translated
        assert checksums_ok(bytes(out)), "translated packet with a wrong checksum"

        # 7.3.1: the origin's reply to the translated port comes back with the original.
        reply = (Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:fe") / IP(src=ORIGIN, dst=LOCAL, ttl=50)
                 / UDP(sport=53, dport=translated) / Raw(b"answer"))

        def arriving(p):
            return p[IP].dst == LOCAL and p[IP].src == ORIGIN

        back = taps.exchange(reply, taps.uplink, taps.host, arriving)
        assert back is not None, "the reply did not reach the host"
        assert back[UDP].dport == outside and back[IP].ttl == 49 and checksums_ok(bytes(back))

        # 7.4: an ICMP error quoting the translated packet, restored in its quote too.
        quoted = bytes(out[IP])[:28]
        error = (Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:fe") / IP(src=ORIGIN, dst=LOCAL, ttl=50)
                 / ICMP(type=3, code=3) / Raw(quoted))
        back = taps.exchange(error, taps.uplink, taps.host, lambda p: arriving(p) and ICMP in p)
        assert back is not None, "the ICMP error did not reach the host"
        inner = IP(bytes(back[ICMP].payload))
        assert inner[UDP].sport == outside, inner.summary()
        assert checksums_ok(bytes(back))
        icmp = back[ICMP].copy()
        icmp.chksum = None
        assert ICMP(bytes(icmp))[ICMP].chksum == back[ICMP].chksum, "ICMP checksum"

        # 7.6: once idle past udp_seconds, the mapping is gone: the reply reaches the host
        # (this server owns the translated port's slice) with the port as the origin sent it.
        assert metric(taps.metrics(), "egressfwd_mappings_in_use") == 2
        deadline = time.time() + 15
        while metric(taps.metrics(), "egressfwd_mappings_expired_total") < 2:
            assert time.time() < deadline, "the mappings did not expire"
            time.sleep(0.25)
        back = taps.exchange(reply, taps.uplink, taps.host, arriving)
        assert back is not None and back[UDP].dport == translated, back and back.summary()
        assert metric(taps.metrics(), "egressfwd_mappings_in_use") == 0
    finally:
        rc, _, err = taps.close()
    assert rc == 0, err
    stats = load_stats(taps.stats_path)
    assert stats["mappings_created"] == 2 and stats["mappings_translated"] == 1
    assert stats["mappings_expired"] == 2
    assert stats["replies_to_host"] >= 3


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_after_a_reload_a_reply_for_a_moved_slice_is_passed_to_its_previous_owner(tmp_path):
    """Contract 7.5.3 through a real reload: acme loses cdg01-b, whose slices move to
    lhr01-a. A reply another server steers here for one of them, that no mapping here
    matches, goes on to cdg01-b (which may still carry the connection), once."""
    from conftest import EXAMPLE
    from golden_model import Model, flow_hash, outer_sport
    topology = tmp_path / "fleet.toml"
    text = EXAMPLE.read_text()
    topology.write_text(text)
    taps = Taps(tmp_path, topology=topology)
    node = taps.node
    try:
        old = Model(EXAMPLE, "lhr01-a")
        moved = next(p for p in range(20000, 65536) if old.slice_owner("acme", p) == "cdg01-b")
        reply_ip = IP(src=ORIGIN, dst=LOCAL, ttl=50) / UDP(sport=53, dport=moved) / Raw(b"answer")
        steered = node.fleet_packet("10.10.1.2", reply_ip)   # from lhr01-b, which steered it
        steered[Ether].dst = "02:00:00:00:00:0a"

        def to_cdg01_b(p):
            return UDP in p and p[IP].dst == "10.20.1.2" and p[UDP].dport == 6080

        # Before the reload the slice is cdg01-b's, not ours: nothing to pass on.
        assert taps.exchange(steered, taps.uplink, taps.uplink, to_cdg01_b, timeout=1.0) is None
        changed = text.replace('holders = [{ server = "lhr01-a", weight = 2 }, { server = "cdg01-b" }]',
                               'holders = [{ server = "lhr01-a", weight = 2 }]')
        assert changed != text
        tmp = tmp_path / "fleet.toml.tmp"
        tmp.write_text(changed)
        os.replace(tmp, topology)
        deadline = time.time() + 10
        while metric(taps.metrics(), "egressfwd_topology_reloads_total", result="ok") < 1:
            assert time.time() < deadline, "reload not seen"
            time.sleep(0.1)
        passed = taps.exchange(steered, taps.uplink, taps.uplink, to_cdg01_b)
        assert passed is not None, "the reply was not passed on to the previous owner"
        inner = IP(bytes(passed[UDP].payload))
        assert inner[UDP].dport == moved and inner[IP].ttl == 49 and checksums_ok(bytes(passed))
        assert passed[UDP].sport == outer_sport(flow_hash(LOCAL, ORIGIN, 17, moved, 53))
        assert metric(taps.metrics(), "egressfwd_replies_total", to="second_chance") == 1
    finally:
        rc, _, err = taps.close()
    assert rc == 0, err
    stats = load_stats(taps.stats_path)
    assert stats["replies_second_chance"] == 1
    assert stats["drops"]["misrouted_reply"] >= 1    # the one before the reload


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_three_appliances_carry_a_request_out_and_its_reply_back_from_another_holder(tmp_path):
    """Issue 17: three `egressfwd run` processes (lhr01-a, lhr01-b, lhr01-c of the example
    fleet), each on two taps, with this test as the network between their uplinks. Pool
    globex is held by lhr01-b and lhr01-c, not by lhr01-a. A request from lhr01-a's host
    goes A -> B -> origin; the origin's reply lands on C (as anycast may deliver it), which
    steers it to B by its port's slice; B restores it and returns it to A; A gives it to its
    host: origin -> C -> B -> A -> host, the reply as the host's socket expects it."""
    from golden_model import Model, flow_hash, outer_sport
    from conftest import EXAMPLE
    model_a = Model(EXAMPLE, "lhr01-a")
    model_b = Model(EXAMPLE, "lhr01-b")
    source = "198.51.100.64"                                   # globex
    sport = next(p for p in range(40000, 65536)
                 if model_a.decide(6, source, p, ORIGIN, 443).get("target_server") == "lhr01-b")
    a, b, c = (Taps(tmp_path, server=s) for s in ("lhr01-a", "lhr01-b", "lhr01-c"))
    try:
        request = (Ether(dst="02:00:00:00:00:0b", src="02:00:00:00:00:77") / IP(src=source, dst=ORIGIN, ttl=64)
                   / TCP(sport=sport, dport=443, flags="S", seq=1000) / Raw(b"hello"))
        # A: encapsulated to B (10.10.1.2).
        to_b = a.exchange(request, a.host, a.uplink, lambda p: UDP in p and p[IP].dst == "10.10.1.2")
        assert to_b is not None, "A did not forward the request to B"
        # B: decapsulated and out to the origin from the egress address, its port kept when
        # in B's slices, else translated into them.
        out = b.exchange(to_b, b.uplink, b.uplink, lambda p: TCP in p and p[IP].src == source and p[IP].dst == ORIGIN)
        assert out is not None, "B did not send the request out"
        assert checksums_ok(bytes(out))
        wire_port = out[TCP].sport
        assert model_b.slice_owner("globex", wire_port) == "lhr01-b"
        assert (wire_port == sport) == (model_b.slice_owner("globex", sport) == "lhr01-b")
        # The origin's SYN-ACK reaches C.
        reply = (Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:fe") / IP(src=ORIGIN, dst=source, ttl=50)
                 / TCP(sport=443, dport=wire_port, flags="SA", seq=5000, ack=1006) / Raw(b"world"))
        steered = c.exchange(reply, c.uplink, c.uplink, lambda p: UDP in p and p[IP].dst == "10.10.1.2")
        assert steered is not None, "C did not steer the reply to B"
        assert IP(bytes(steered[UDP].payload))[TCP].dport == wire_port, "steered unchanged"
        assert steered[UDP].sport == outer_sport(flow_hash(source, ORIGIN, 6, wire_port, 443))
        # B: its mapping restores the port, and the reply goes back to A (10.10.1.1).
        back = b.exchange(steered, b.uplink, b.uplink, lambda p: UDP in p and p[IP].dst == "10.10.1.1")
        assert back is not None, "B did not return the reply to A"
        assert IP(bytes(back[UDP].payload))[TCP].dport == sport
        # A: to its host, as the socket that sent the SYN expects it.
        home = a.exchange(back, a.uplink, a.host, lambda p: TCP in p and p[IP].dst == source)
        assert home is not None, "A did not deliver the reply to its host"
        assert (home[IP].src, home[TCP].sport, home[TCP].dport) == (ORIGIN, 443, sport)
        assert home[TCP].flags == "SA" and home[TCP].ack == 1006 and bytes(home[TCP].payload) == b"world"
        assert checksums_ok(bytes(home))
        for taps, name in ((a, "A"), (b, "B"), (c, "C")):
            assert metric(taps.metrics(), "egressfwd_drops_total", reason="misrouted_reply") == 0, name
        assert metric(c.metrics(), "egressfwd_replies_total", to="steered") == 1
        assert metric(b.metrics(), "egressfwd_replies_total", to="peer") == 1
        assert metric(a.metrics(), "egressfwd_replies_total", to="host") == 1
    finally:
        results = [t.close() for t in (a, b, c)]
    for rc, _, err in results:
        assert rc == 0, err


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_pinned_flows_keep_their_target_across_fifty_swaps_and_new_ones_follow_the_table(tmp_path):
    """Issue 18 through the running appliance: TCP flows that lhr01-a forwards for pool
    globex (lhr01-b, lhr01-c, fra01-a) keep their target through 50 reloads that change
    weights and add and remove holders; new flows follow the table in use; a drained holder
    keeps its flows and gets no new one; flows whose holder left are decided again."""
    from conftest import EXAMPLE
    from golden_model import Model
    original = 'holders = [{ server = "lhr01-b", weight = 2 }, { server = "lhr01-c" }, { server = "fra01-a" }]'
    text = EXAMPLE.read_text()
    assert original in text
    variants = [
        'holders = [{ server = "lhr01-b" }, { server = "lhr01-c", weight = 9 }, { server = "fra01-a" }]',
        'holders = [{ server = "lhr01-b", weight = 2 }, { server = "lhr01-c" }, { server = "fra01-a" }, { server = "lhr02-a" }]',
        'holders = [{ server = "lhr01-b", weight = 5 }, { server = "lhr01-c", weight = 3 }]',
        original,
    ]
    drained = 'holders = [{ server = "lhr01-b", weight = 2, drain = true }, { server = "lhr01-c" }, { server = "fra01-a" }]'
    without_b = 'holders = [{ server = "lhr01-c" }, { server = "fra01-a" }]'
    topology = tmp_path / "fleet.toml"
    topology.write_text(text)
    taps = Taps(tmp_path, topology=topology)
    source = "198.51.100.64"

    def segments(ports, flags):
        return [Ether(dst="02:00:00:00:00:0b", src="02:00:00:00:00:77") / IP(src=source, dst=ORIGIN, ttl=64)
                / TCP(sport=p, dport=443, flags=flags, seq=1) for p in ports]

    def targets(ports, flags="A"):
        """Where each flow's next segment goes (outer destination), by source port."""
        got = taps.exchange_all(segments(ports, flags), taps.host, taps.uplink,
                                lambda p: UDP in p and p[UDP].dport == 6080)
        seen = {IP(bytes(p[UDP].payload))[TCP].sport: p[IP].dst for p in got}
        assert set(seen) == set(ports), f"{len(ports) - len(seen)} segments did not leave"
        return seen

    def decided(ports, holders):
        path = tmp_path / "model.toml"
        path.write_text(text.replace(original, holders))
        model = Model(path, "lhr01-a")
        return {p: model.decide(6, source, p, ORIGIN, 443)["target_underlay"] for p in ports}

    try:
        old = list(range(41000, 41024))
        pinned = targets(old, "S")
        assert pinned == decided(old, original)
        assert {"10.10.1.2", "10.10.1.3"} <= set(pinned.values())
        for i in range(50):
            holders = variants[i % len(variants)]
            taps.reload(topology, text.replace(original, holders))
            assert targets(old) == pinned, f"swap {i}: a pinned flow moved"
        # New flows follow the table in use (the last variant: the original file).
        new = list(range(42000, 42024))
        assert targets(new, "S") == decided(new, variants[49 % len(variants)])
        # Drained lhr01-b: its flows stay, no new flow goes to it.
        taps.reload(topology, text.replace(original, drained))
        assert targets(old) == pinned
        fresh = targets(list(range(43000, 43024)), "S")
        assert "10.10.1.2" not in fresh.values() and fresh == decided(list(fresh), drained)
        # lhr01-b leaves: its flows are decided again by the table, the others stay.
        taps.reload(topology, text.replace(original, without_b))
        moved = [p for p in old if pinned[p] == "10.10.1.2"]
        after = targets(old)
        assert all(after[p] == pinned[p] for p in old if p not in moved)
        assert all(after[p] == decided([p], without_b)[p] for p in moved)
        assert metric(taps.metrics(), "egressfwd_pins_redecided_total") == len(moved)
        assert metric(taps.metrics(), "egressfwd_pins_in_use") == 3 * 24
    finally:
        rc, _, err = taps.close()
    assert rc == 0, err
    stats = load_stats(taps.stats_path)
    assert stats["pins_created"] == 3 * 24 and stats["topology"]["reloads_ok"] == 52
    assert sum(stats["drops"].values()) == 0, stats["drops"]


def test_echo_flows_are_pinned_by_their_identifier_across_swaps(tmp_path):
    """ICMP echo flows that lhr01-a forwards for pool globex keep their holder through
    reloads that move their origins' share, each flow by its identifier (as its mapping at
    the holder is keyed); another identifier to the same origin is a new flow and follows
    the table in use."""
    from conftest import EXAMPLE
    from golden_model import Model
    original = 'holders = [{ server = "lhr01-b", weight = 2 }, { server = "lhr01-c" }, { server = "fra01-a" }]'
    reweighed = 'holders = [{ server = "lhr01-b" }, { server = "lhr01-c", weight = 9 }, { server = "fra01-a" }]'
    text = EXAMPLE.read_text()
    assert original in text
    topology = tmp_path / "fleet.toml"
    topology.write_text(text)
    taps = Taps(tmp_path, topology=topology)
    source = "198.51.100.64"
    origins = [f"93.184.216.{10 + i}" for i in range(24)]

    def decided(holders):
        path = tmp_path / "model.toml"
        path.write_text(text.replace(original, holders))
        model = Model(path, "lhr01-a")
        return {o: model.decide(1, source, 0, o, 0)["target_underlay"] for o in origins}

    def targets(identifier):
        """Where an echo request of `identifier` to each origin goes (outer destination)."""
        pings = [Ether(dst="02:00:00:00:00:0b", src="02:00:00:00:00:77") / IP(src=source, dst=o, ttl=64)
                 / ICMP(type=8, id=identifier, seq=1) / Raw(b"ping") for o in origins]
        got = taps.exchange_all(pings, taps.host, taps.uplink, lambda p: UDP in p and p[UDP].dport == 6080)
        seen = {IP(bytes(p[UDP].payload)).dst: p[IP].dst for p in got
                if IP(bytes(p[UDP].payload))[ICMP].id == identifier}
        assert set(seen) == set(origins), f"{len(origins) - len(seen)} requests did not leave"
        return seen

    before, after = decided(original), decided(reweighed)
    moving = [o for o in origins if before[o] != after[o]]
    assert moving, "the reweighed table moves some origins' echo flows"
    try:
        pinned = targets(7)
        assert pinned == before
        for i in range(6):
            taps.reload(topology, text.replace(original, [reweighed, original][i % 2]))
            assert targets(7) == pinned, f"swap {i}: an echo flow moved"
        taps.reload(topology, text.replace(original, reweighed))
        assert targets(7) == pinned
        assert targets(8) == after, "a new identifier follows the table in use"
        assert metric(taps.metrics(), "egressfwd_pins_in_use") == 2 * len(origins)
    finally:
        rc, _, err = taps.close()
    assert rc == 0, err
    stats = load_stats(taps.stats_path)
    assert stats["pins_created"] == 2 * len(origins) and stats["pins_redecided"] == 0
    assert sum(stats["drops"].values()) == 0, stats["drops"]


def udp(src, dst, sport, dport, to_mac="02:00:00:00:00:0b"):
    return Ether(dst=to_mac, src="02:00:00:00:00:77") / IP(src=src, dst=dst, ttl=64) / UDP(sport=sport, dport=dport) / Raw(b"x" * 8)


def run_looped(tmp_path, host_frames, uplink_frames, seconds, **limits):
    """The appliance on pcaps replayed in a loop (net_pcap infinite_rx), uplink transmitting
    into nothing; returns its final stats."""
    for name, frames in (("host", host_frames), ("uplink", uplink_frames)):
        wrpcap(str(tmp_path / f"{name}.pcap"), frames)
    port = free_tcp_port()
    # (net_pcap needs an mbuf for every packet of a looped file, and loops no empty one.)
    loop = {name: ",infinite_rx=1" if frames else "" for name, frames in (("host", host_frames), ("uplink", uplink_frames))}
    config = write_config(tmp_path / "c.toml", [
        ("uplink", f"net_pcap0,rx_pcap={tmp_path}/uplink.pcap{loop['uplink']}", ["uplink"]),
        ("host", f"net_pcap1,rx_pcap={tmp_path}/host.pcap{loop['host']}", ["host"]),
    ], workers=1, metrics_port=port)
    with open(config, "a") as f:
        f.write("\n[connections]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    proc = start(["run", "--config", config, "--duration", str(seconds), "--stats-json", tmp_path / "s.json"])
    _, err = proc.communicate(timeout=seconds + 60)
    assert proc.returncode == 0, err
    return load_stats(tmp_path / "s.json")


def test_a_flood_of_unknown_replies_creates_nothing_and_costs_established_flows_nothing(tmp_path):
    node = example_node()
    model = node.model
    established = [udp(LOCAL, ORIGIN, port, 443) for port in slice_ports(model, mine=True, count=32)]
    # Replies from origins to a held address, to ports no flow of ours uses.
    rng = random.Random(11)
    flood = [udp(f"100.64.{rng.randrange(256)}.{rng.randrange(1, 255)}", "198.51.100.2", rng.randrange(1, 65536), rng.randrange(1024, 65536),
                 to_mac="02:00:00:00:00:0a") for _ in range(2048)]
    stats = run_looped(tmp_path, established, flood, seconds=4, max_entries=4096)
    uplink = next(p for p in stats["ports"] if p["name"] == "uplink")
    host = next(p for p in stats["ports"] if p["name"] == "host")
    replies = stats["replies_to_host"] + stats["replies_steered"]
    print(f"flood: {uplink['rx_packets']} replies received, {host['rx_packets']} established packets")
    assert uplink["rx_packets"] >= 1_000_000, "the flood was not a million replies"
    # Internet traffic never creates state: the only mappings are the 32 flows'.
    assert stats["mappings_created"] == 32, stats["mappings_created"]
    assert replies == uplink["rx_packets"]
    assert stats["replies_steered"] > 0 and stats["replies_to_host"] > 0
    # Every established packet left, none dropped.
    assert sum(stats["drops"].values()) == 0, stats["drops"]
    assert stats["decisions"]["local"] == host["rx_packets"]
    assert stats["accounting"]["balanced"]


def test_a_full_table_refuses_new_flows_and_evicts_none(tmp_path):
    node = example_node()
    flows = [udp(LOCAL, ORIGIN, port, 443) for port in slice_ports(node.model, mine=True, count=48)]
    stats = run_looped(tmp_path, flows, [], seconds=2, max_entries=16)
    host = next(p for p in stats["ports"] if p["name"] == "host")
    full = stats["drops"]["connections_full"]
    print(f"full table: {host['rx_packets']} packets, {full} refused")
    # The first 16 flows took the 16 entries and kept them; the 32 others were refused each
    # time they came round, and never took an entry from a live flow.
    assert stats["mappings_created"] == 16 and stats["mappings_expired"] == 0
    uplink = next(p for p in stats["ports"] if p["name"] == "uplink")
    assert full > 0 and uplink["tx_packets"] + full == host["rx_packets"]
    loops = host["rx_packets"] / 48
    assert abs(full - 32 * loops) <= 48, (full, loops)
    assert {r: n for r, n in stats["drops"].items() if n} == {"connections_full": full}
