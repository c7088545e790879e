//! The worker loop over real DPDK queues: packets received are routed by verdict, what the
//! driver refuses is freed and counted (tx_full), counters reach the control thread, every
//! mbuf is back in the pool afterwards, and a burst hook sees each packet once, rewritten,
//! with its verdict.
#![cfg(feature = "dpdk")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::wire::{ethernet, ipv4};
use dataplane::worker::{BurstHook, Worker, WorkerConfig, WorkerPort};
use dataplane::{
    DropReason, Encap, MappingTable, Pipeline, PipelineConfig, PortAddrs, Published, StatsCell,
    Timeouts, Verdict,
};
use dpdk_sys::{Mbuf, MbufBurst, Mempool, Port, PortConfig, MBUF_DEFAULT_BUF_SIZE};
use topology::ForwardingTable;

/// An ARP-like frame: not IP, so the pipeline passes it unchanged.
fn frame(i: u8) -> Vec<u8> {
    let mut f = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, i, 0x08, 0x06,
    ];
    f.resize(60, i);
    f
}

#[test]
fn refused_packets_are_freed_counted_and_accounted_for() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("worker_test", 8191, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    let mut source = Port::open("net_ring10").unwrap();
    let mut sink = Port::open("net_ring11").unwrap();
    for port in [&mut source, &mut sink] {
        port.configure(&PortConfig::default(), &pool).unwrap();
    }

    // Fill the sink's ring until its driver refuses: nobody drains it during the test.
    let mut fill = sink.tx_queue(0).unwrap();
    let mut prefilled = 0;
    loop {
        let mut burst = MbufBurst::new();
        for i in 0..32 {
            burst
                .push(Mbuf::from_bytes(&pool, &frame(i)).unwrap())
                .unwrap();
        }
        let sent = fill.tx_burst(&mut burst);
        prefilled += sent;
        if !burst.is_empty() {
            break;
        }
    }
    // 64 frames for the worker to receive.
    let mut inject = source.tx_queue(0).unwrap();
    let mut burst = MbufBurst::new();
    for i in 0..64 {
        burst
            .push(Mbuf::from_bytes(&pool, &frame(i)).unwrap())
            .unwrap();
    }
    assert_eq!(inject.tx_burst(&mut burst), 64);

    let topology = topology::parse(
        "fleet.toml",
        include_str!("../../topology/examples/fleet.toml"),
    )
    .unwrap();
    let tables = Published::new(Arc::new(
        ForwardingTable::compile(&topology, "lhr01-a").unwrap(),
    ));
    let (mappings, mut mapping_owners) = MappingTable::new(1, 1024, Timeouts::default(), 0);
    let cell = StatsCell::new(1);
    let stop = AtomicBool::new(false);
    let addrs = PortAddrs {
        mac: [2, 0, 0, 0, 0, 1],
        next_hop: [2, 0, 0, 0, 0, 2],
    };
    let pipeline = Pipeline::new(
        PipelineConfig {
            encap: Encap::Fou,
            encap_port: 6080,
            mtu: 1500,
            underlay_mtu: 1500,
            mss_clamp: None,
            uplink: addrs,
            host: addrs,
        },
        mapping_owners.pop().unwrap(),
    );
    // One port holding both roles, receiving from the source ring, sending into the full one.
    let rx = source.rx_queue(0).unwrap();
    // The sink's tx handle, which filled it: each handle exists once.
    let tx = fill;
    let config = WorkerConfig {
        ports: vec![WorkerPort { rx, tx, pass_to: 0 }],
        uplink: 0,
        host: 0,
        uplink_mtu: 1500,
        burst: 32,
        idle_sleep: Duration::from_micros(50),
    };
    let stats = std::thread::scope(|scope| {
        let worker =
            scope.spawn(|| Worker::new(config, pipeline, &mappings, &cell).run(&tables, &stop));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap()
    });

    assert_eq!(cell.snapshot(), stats, "the final counters are published");
    assert_eq!(stats.ports[0].rx_packets, 64);
    assert_eq!(stats.pipeline.passed, 64);
    let refused = stats.pipeline.drops[DropReason::TxFull.index()];
    assert!(refused > 0, "the full ring refused packets");
    assert_eq!(
        stats.ports[0].tx_packets + refused,
        64,
        "every packet sent or dropped with a reason"
    );
    assert!(stats.idle_sleeps > 0, "an idle worker sleeps");

    // What the sink holds: the prefill plus what the worker managed to send.
    let mut drain = sink.rx_queue(0).unwrap();
    let mut got = MbufBurst::new();
    let mut drained = 0;
    while drain.rx_burst(&mut got, 32) > 0 {
        drained += got.clear();
    }
    assert_eq!(drained as u64, prefilled as u64 + stats.ports[0].tx_packets);
    source.close().unwrap();
    sink.close().unwrap();
    assert_eq!(pool.in_use(), 0, "no mbuf leaked or freed twice");
}

/// What a hook saw: per packet, the port it came in on, its verdict, its length and its
/// (outer) IPv4 TTL (0 for a frame that is not IPv4).
#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<SeenPacket>>>);

type SeenPacket = (usize, Verdict, usize, u8);

impl BurstHook for Seen {
    fn burst(&mut self, port: usize, packets: &[Mbuf], verdicts: &[Verdict]) {
        assert_eq!(packets.len(), verdicts.len(), "a verdict per packet");
        let mut seen = self.0.lock().unwrap();
        for (m, &v) in packets.iter().zip(verdicts) {
            let ttl = match m.data().get(12..14) {
                Some([0x08, 0x00]) => m.data()[ethernet::HEADER_LEN + 8],
                _ => 0,
            };
            seen.push((port, v, m.data().len(), ttl));
        }
    }
}

/// Ethernet / IPv4 (TTL 64) / TCP from `src`, port `sport`, to an origin.
fn tcp_frame(src: u32, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + 20];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    ipv4::Repr {
        src,
        dst: 0x5db8_d822,
        protocol: 6,
        tos: 0,
        ttl: 64,
        dont_fragment: true,
        payload_len: 20,
    }
    .emit(&mut f[ethernet::HEADER_LEN..]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&443u16.to_be_bytes());
    f[46] = 0x50;
    f
}

#[test]
fn the_burst_hook_sees_every_packet_once_rewritten_with_its_verdict() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("worker_hook_test", 1023, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    let mut source = Port::open("net_ring12").unwrap();
    let mut sink = Port::open("net_ring13").unwrap();
    for port in [&mut source, &mut sink] {
        port.configure(&PortConfig::default(), &pool).unwrap();
    }
    // 24 packets leaving here (198.51.100.1 is lhr01-a's), 16 forwarded (203.0.113.128/25 is
    // held elsewhere), 8 not IP: three actions in mixed bursts.
    let mut inject = source.tx_queue(0).unwrap();
    let mut burst = MbufBurst::new();
    for i in 0..48u16 {
        let frame = match i % 6 {
            0..=2 => tcp_frame(0xc633_6401, 40000 + i),
            3..=4 => tcp_frame(0xcb00_7180, 40000 + i),
            _ => frame(i as u8),
        };
        burst
            .push(Mbuf::from_bytes(&pool, &frame).unwrap())
            .unwrap();
        if burst.len() == 16 {
            assert_eq!(inject.tx_burst(&mut burst), 16);
        }
    }
    let topology = topology::parse(
        "fleet.toml",
        include_str!("../../topology/examples/fleet.toml"),
    )
    .unwrap();
    let tables = Published::new(Arc::new(
        ForwardingTable::compile(&topology, "lhr01-a").unwrap(),
    ));
    let (mappings, mut mapping_owners) = MappingTable::new(1, 1024, Timeouts::default(), 0);
    let cell = StatsCell::new(1);
    let stop = AtomicBool::new(false);
    let addrs = PortAddrs {
        mac: [2, 0, 0, 0, 0, 1],
        next_hop: [2, 0, 0, 0, 0, 2],
    };
    let pipeline = Pipeline::new(
        PipelineConfig {
            uplink: addrs,
            host: addrs,
            ..PipelineConfig::example()
        },
        mapping_owners.pop().unwrap(),
    );
    let rx = source.rx_queue(0).unwrap();
    let tx = sink.tx_queue(0).unwrap();
    let config = WorkerConfig {
        ports: vec![WorkerPort { rx, tx, pass_to: 0 }],
        uplink: 0,
        host: 0,
        uplink_mtu: 1500,
        burst: 32,
        idle_sleep: Duration::from_micros(50),
    };
    let seen = Seen::default();
    let stats = std::thread::scope(|scope| {
        let hook = Box::new(seen.clone());
        let worker = scope.spawn(|| {
            Worker::new(config, pipeline, &mappings, &cell)
                .with_hook(hook)
                .run(&tables, &stop)
        });
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap()
    });

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 48, "each packet once");
    let count = |verdict: Verdict, len: usize, ttl: u8| {
        seen.iter()
            .filter(|&&s| s == (0, verdict, len, ttl))
            .count()
    };
    // Rewritten before the hook sees them: one hop less, or in a tunnel (FOU: 28 bytes more,
    // a fresh outer TTL).
    assert_eq!(count(Verdict::Uplink, 54, 63), 24, "local egress");
    assert_eq!(count(Verdict::Uplink, 54 + 28, 64), 16, "forwarded");
    assert_eq!(count(Verdict::Pass, 60, 0), 8, "not IP, passed");
    assert_eq!(stats.ports[0].rx_packets, 48);
    assert_eq!(stats.ports[0].tx_packets, 48);
    let mut drain = sink.rx_queue(0).unwrap();
    let mut got = MbufBurst::new();
    let mut drained = 0;
    while drain.rx_burst(&mut got, 32) > 0 {
        drained += got.clear();
    }
    assert_eq!(drained, 48, "the hook kept nothing");
    source.close().unwrap();
    sink.close().unwrap();
    assert_eq!(pool.in_use(), 0, "no mbuf leaked or freed twice");
}
