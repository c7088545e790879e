"""Two workers on a two-queue device: worker i polls queue i, and both receive and forward."""
from conftest import example_node, load_stats, run, write_config
from packets import mixed_traffic
from scapy.all import rdpcap, wrpcap


def test_two_workers_both_receive_and_forward(tmp_path):
    node = example_node()
    traffic = [p for _, p, _, _ in mixed_traffic(node, 400, seed=3)]
    # net_pcap gives one rx queue per rx_pcap and one tx queue per tx_pcap.
    wrpcap(str(tmp_path / "q0.pcap"), traffic[0::2])
    wrpcap(str(tmp_path / "q1.pcap"), traffic[1::2])
    device = (f"net_pcap0,rx_pcap={tmp_path}/q0.pcap,rx_pcap={tmp_path}/q1.pcap,"
              f"tx_pcap={tmp_path}/o0.pcap,tx_pcap={tmp_path}/o1.pcap")
    config = write_config(tmp_path / "c.toml", [("wire", device, ["uplink", "host"])], workers=2)
    result = run(["run", "--config", config, "--duration", "3", "--stats-json", tmp_path / "s.json"])
    assert result.returncode == 0, result.stderr
    stats = load_stats(tmp_path / "s.json")
    workers = stats["workers"]
    assert len(workers) == 2
    for w in workers:
        assert w["rx_packets"] > 0 and w["tx_packets"] > 0, workers
    queues = stats["ports"][0]["queues"]
    assert [q["rx_packets"] for q in queues] == [len(traffic[0::2]), len(traffic[1::2])]
    # A one-armed port sends everything back out of itself, on the worker's own queue.
    out0, out1 = rdpcap(str(tmp_path / "o0.pcap")), rdpcap(str(tmp_path / "o1.pcap"))
    assert [len(out0), len(out1)] == [q["tx_packets"] for q in queues]
    assert len(out0) > 0 and len(out1) > 0
    assert stats["accounting"]["balanced"] and stats["accounting"]["received"] == len(traffic)
    assert stats["mbufs"]["in_use"] == 0
