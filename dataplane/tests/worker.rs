//! The worker loop over real DPDK queues: packets received are routed by verdict, what the
//! driver refuses is freed and counted (tx_full), counters reach the control thread, and
//! every mbuf is back in the pool afterwards.
#![cfg(feature = "dpdk")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::worker::{run, WorkerConfig, WorkerPort};
use dataplane::{
    DropReason, Encap, MappingTable, Pipeline, PipelineConfig, PortAddrs, Published, StatsCell,
    Timeouts,
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
        let worker = scope.spawn(|| run(config, pipeline, &tables, &mappings, &cell, &stop));
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
