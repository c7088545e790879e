//! Topology benchmarks (issue: topology):
//! - load + validate + compile of the 1M-address, 10k-server fleet (target: about a second),
//!   and of the same with 100k customer pools (issue 22: 1.5 s);
//! - address → route lookup per packet at 1k, 100k and 1M egress addresses, on random egress
//!   addresses, in bursts of 32 (target: under 20 ns at 1M).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use egressfwd_benches::{
    egress_addresses, fleet_1m, fleet_1m_slash32, fleet_customer_scale, fleet_slash32, BENCH_SERVER,
};
use topology::hash::PROTO_TCP;
use topology::{Classified, Decision, FlowKey, ForwardingTable};

fn load_and_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("topology_1m_addresses_10k_servers");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, path) in [
        ("mixed_prefixes", fleet_1m()),
        ("all_slash32", fleet_1m_slash32()),
        ("customer_pools_100k", fleet_customer_scale()),
    ] {
        group.bench_function(BenchmarkId::new("load_validate", name), |b| {
            b.iter(|| black_box(topology::load(&path).unwrap()))
        });
        let topology = topology::load(&path).unwrap();
        group.bench_function(BenchmarkId::new("compile", name), |b| {
            b.iter(|| black_box(ForwardingTable::compile(&topology, BENCH_SERVER).unwrap()))
        });
        group.bench_function(BenchmarkId::new("load_validate_compile", name), |b| {
            b.iter(|| {
                let topology = topology::load(&path).unwrap();
                black_box(ForwardingTable::compile(&topology, BENCH_SERVER).unwrap())
            })
        });
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup_per_packet");
    const BURST: usize = 32;
    const PACKETS: usize = 1 << 16;
    group.throughput(Throughput::Elements(PACKETS as u64));
    for (size, label) in [
        (1_000usize, "1000_slash32"),
        (100_000, "100000_slash32"),
        (1_000_000, "1000000_slash32"),
        (1_000_000, "1000000_customer_pools"),
    ] {
        let path = match label {
            "1000000_customer_pools" => fleet_customer_scale(),
            "1000000_slash32" => fleet_1m_slash32(),
            _ => fleet_slash32(size),
        };
        let table =
            ForwardingTable::compile(&topology::load(&path).unwrap(), BENCH_SERVER).unwrap();
        let addresses = egress_addresses(&table, PACKETS, size as u64, |_| true);
        let flows: Vec<FlowKey> = addresses
            .iter()
            .enumerate()
            .map(|(i, &a)| FlowKey::new(a, 0x5db8_d822 ^ i as u32, PROTO_TCP, Some((40000, 443))))
            .collect();
        group.bench_with_input(
            BenchmarkId::new("route_v4_burst32", label),
            &addresses,
            |b, addresses| {
                let mut out = [None; BURST];
                b.iter(|| {
                    for chunk in addresses.chunks(BURST) {
                        table_lookup_burst(&table, chunk, &mut out);
                        black_box(&out);
                    }
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decide_v4_burst32", label),
            &flows,
            |b, flows| {
                let mut out = [Classified::Decided(Decision::Pass); BURST];
                b.iter(|| {
                    for chunk in flows.chunks(BURST) {
                        table.decide_v4_burst(chunk, 6080, &mut out[..chunk.len()]);
                        black_box(&out);
                    }
                })
            },
        );
    }
    group.finish();
}

fn table_lookup_burst(
    table: &ForwardingTable,
    addrs: &[u32],
    out: &mut [Option<topology::PoolId>],
) {
    for (o, &a) in out.iter_mut().zip(addrs) {
        *o = table.route_v4(a).map(|r| r.pool);
    }
}

criterion_group!(benches, lookup, load_and_compile);
criterion_main!(benches);
