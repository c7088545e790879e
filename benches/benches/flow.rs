//! Per-packet cost of the flow-state table (`dataplane::flow`) at 1M entries: what a mapping
//! or a pin lookup adds to an established flow's packet (issues 17 and 18 budget 15 and 10 ns),
//! and what a flood of replies for unknown flows costs (a probe each, nothing written).
//!
//! Lookups come in bursts of 32 as in the pipeline: the 32 probes are computed and their
//! buckets prefetched, then the 32 keys are resolved. (A third step that located and
//! prefetched each entry before resolving it was tried: no gain at 1M entries.)
//!
//! `pin_lookup`: the same for a worker's pins (`dataplane::pins`, one line a pin), through
//! the call the pipeline makes for a forwarded packet of an established flow.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::{FlowTable, Key, Lifetime};
use dataplane::pins::{PinTable, Pinned};
use dataplane::Timeouts;
use topology::{FlowKey, ServerId};

const BURST: usize = 32;

fn hash_of(key: &Key) -> u64 {
    let mut h = key[0].wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key[1].rotate_left(29);
    h ^= h >> 31;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn keys(n: usize, salt: u64) -> Vec<Key> {
    (0..n as u64)
        .map(|i| [i.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ salt, i, 0])
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_lookup");
    for entries in [1_000usize, 1_000_000] {
        let (table, mut owners) = FlowTable::new(1, entries, 0);
        // On transparent huge pages, as the appliance places its flow tables.
        for region in table.regions().into_iter().chain(owners[0].regions()) {
            dpdk_sys::advise_huge_pages(region.start, region.bytes);
        }
        let present = keys(entries, 0);
        for key in &present {
            owners[0]
                .insert(
                    &table,
                    hash_of(key),
                    key,
                    &[key[1], 1],
                    0,
                    Lifetime::fixed(300),
                )
                .expect("room for every key");
        }
        // Lookups in an order unrelated to insertion, as packets of many flows arrive.
        let mut order: Vec<usize> = (0..entries).collect();
        let mut state = 0x1234_5678u64;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let working: Vec<Key> = order.iter().take(1 << 16).map(|&i| present[i]).collect();
        let absent = keys(1 << 16, 0xdead_beef);
        for (name, set) in [("established", &working), ("unknown", &absent)] {
            group.throughput(Throughput::Elements(set.len() as u64));
            group.bench_with_input(BenchmarkId::new(name, entries), set, |b, set| {
                b.iter(|| {
                    let mut found = 0usize;
                    for burst in set.chunks(BURST) {
                        let mut probes = [table.probe(0); BURST];
                        for (p, key) in probes.iter_mut().zip(burst) {
                            *p = table.probe(hash_of(key));
                            table.prefetch(*p);
                        }
                        for (p, key) in probes.iter().zip(burst) {
                            found += usize::from(table.lookup(*p, key).is_some());
                        }
                    }
                    found
                })
            });
        }
        println!(
            "flow table of {entries} entries: {} MB shared",
            table.memory_bytes() / (1 << 20)
        );
    }
    group.finish();
}

fn pins(c: &mut Criterion) {
    let fleet = topology::parse(
        "fleet.toml",
        include_str!("../../topology/examples/fleet.toml"),
    )
    .unwrap();
    let table = topology::ForwardingTable::compile(&fleet, "lhr01-a").unwrap();
    let mut group = c.benchmark_group("pin_lookup");
    for entries in [1_000usize, 1_000_000] {
        let (pins, mut owners) = PinTable::new(1, entries, Timeouts::default());
        for region in pins.regions() {
            dpdk_sys::advise_huge_pages(region.start, region.bytes);
        }
        let owner = &mut owners[0];
        let flow = |i: u64| {
            let r = i.wrapping_mul(0x2545_f491_4f6c_dd1d);
            FlowKey {
                src: 0xcb00_7180 | (r as u32 & 0x7f),
                dst: (r >> 20) as u32,
                proto: 6,
                sport: (r >> 52) as u16 | 1024,
                dport: 443,
            }
        };
        let present: Vec<FlowKey> = (0..entries as u64).map(flow).collect();
        for f in &present {
            let probe = pins.probe(0, f.hash());
            let pinned = owner.target(&pins, &table, probe, f, || ServerId(1), Some(0x10), 0);
            assert!(
                matches!(pinned, Pinned::Created { .. }),
                "room for every pin"
            );
        }
        let mut state = 0x1234_5678u64;
        let working: Vec<FlowKey> = (0..1 << 16)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                present[(state % entries as u64) as usize]
            })
            .collect();
        group.throughput(Throughput::Elements(working.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("established", entries),
            &working,
            |b, set| {
                b.iter(|| {
                    let mut kept = 0usize;
                    for burst in set.chunks(BURST) {
                        // As the pipeline: the probe from the flow hash the table's decision
                        // computed, a stage ahead; the table's target never read.
                        let mut probes = [None; BURST];
                        for (f, probe) in burst.iter().zip(&mut probes) {
                            let p = pins.probe(0, f.hash());
                            pins.prefetch(p);
                            *probe = Some(p);
                        }
                        for (f, probe) in burst.iter().zip(probes) {
                            let probe = probe.expect("one a flow");
                            let pinned = owner.target(
                                &pins,
                                &table,
                                probe,
                                f,
                                || unreachable!("an established flow"),
                                Some(0x10),
                                0,
                            );
                            kept += usize::from(matches!(pinned, Pinned::Kept(_)));
                        }
                    }
                    kept
                })
            },
        );
        println!("pins: {entries} in {} MB", pins.memory_bytes() / (1 << 20));
    }
    group.finish();
}

criterion_group!(benches, bench, pins);
criterion_main!(benches);
