//! Per-packet cost of the pipeline (issue: data plane): bursts of 32 over a working set of
//! 64k packets with distinct addresses, on the 1M-address, 10k-server fleet, for each kind
//! of traffic: local egress, encapsulation (forward), decapsulation (then local egress), and
//! pass.
//!
//! Like a driver, each burst is first copied from a contiguous capture into 32 reused
//! buffers, so packet data is warm when the pipeline reads it (as after net_pcap's copy or a
//! NIC's DMA into cache) while the tables are hit with a working set of 64k addresses. The
//! `copy_only` case measures that copy alone: the pipeline's own cost is the difference.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::{Context, MappingTable, Pipeline, Timeouts, VecBuf, Verdict};
use egressfwd_benches::{egress_addresses, fleet_1m, frames, pipeline_config, BENCH_SERVER};
use topology::{ForwardingTable, Tier};

const WORKING_SET: usize = 1 << 16;
const BURST: usize = 32;

fn workload(table: &ForwardingTable, kind: &str) -> Vec<Vec<u8>> {
    let origin = |i: usize| 0x5db8_0000 | (i as u32 & 0xffff);
    let sport = |i: usize| 1024 + (i % 60000) as u16;
    match kind {
        "local" => egress_addresses(table, WORKING_SET, 1, |t| t == Tier::Local)
            .iter()
            .enumerate()
            .map(|(i, &a)| frames::tcp(a, origin(i), sport(i), 443, 6))
            .collect(),
        "encap" => egress_addresses(table, WORKING_SET, 2, |t| t != Tier::Local)
            .iter()
            .enumerate()
            .map(|(i, &a)| frames::tcp(a, origin(i), sport(i), 443, 6))
            .collect(),
        "decap" => {
            let me = table.my_underlay();
            let peer = table.underlay_of(topology::ServerId(7));
            egress_addresses(table, WORKING_SET, 3, |t| t == Tier::Local)
                .iter()
                .enumerate()
                .map(|(i, &a)| frames::fou(peer, me, &frames::tcp(a, origin(i), sport(i), 443, 6)))
                .collect()
        }
        "pass" => (0..WORKING_SET)
            .map(|i| frames::tcp(0x0100_0000 + i as u32, 0x0808_0808, sport(i), 53, 6))
            .collect(),
        _ => unreachable!(),
    }
}

/// Frames back to back in one allocation, as a capture file is in memory.
struct Capture {
    bytes: Vec<u8>,
    offsets: Vec<(usize, usize)>,
}

impl Capture {
    fn new(frames: &[Vec<u8>]) -> Self {
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(frames.len());
        for f in frames {
            offsets.push((bytes.len(), f.len()));
            bytes.extend_from_slice(f);
        }
        Self { bytes, offsets }
    }

    /// Copies burst number `burst` into the buffers, as a driver fills recycled mbufs.
    fn load(&self, burst: usize, bufs: &mut [VecBuf]) {
        for (buf, &(at, len)) in bufs.iter_mut().zip(&self.offsets[burst * BURST..]) {
            buf.refill(&self.bytes[at..at + len], dataplane::buf::DEFAULT_HEADROOM);
        }
    }
}

fn pipeline(c: &mut Criterion) {
    let table =
        ForwardingTable::compile(&topology::load(&fleet_1m()).unwrap(), BENCH_SERVER).unwrap();
    let (mappings, mut mapping_owners) = MappingTable::new(5, 1 << 20, Timeouts::default(), 0);
    mapping_owners.reverse();
    let ctx = Context {
        table: &table,
        mappings: &mappings,
        now: 0,
    };
    let config = pipeline_config();
    let mut group = c.benchmark_group("pipeline_per_packet_1m_table_64k_working_set");
    group.throughput(Throughput::Elements(WORKING_SET as u64));
    for kind in ["copy_only", "local", "encap", "decap", "pass"] {
        let capture = Capture::new(&workload(
            &table,
            if kind == "copy_only" { "local" } else { kind },
        ));
        let mut pipeline = Pipeline::new(
            config.clone(),
            mapping_owners.pop().expect("one owner a kind"),
        );
        let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 256])).collect();
        let mut verdicts = [Verdict::Pass; BURST];
        if kind != "copy_only" {
            capture.load(0, &mut bufs);
            pipeline.process_burst(&ctx, &mut bufs, &mut verdicts);
            let expected = if kind == "pass" {
                Verdict::Pass
            } else {
                Verdict::Uplink
            };
            assert!(
                verdicts.iter().all(|&v| v == expected),
                "{kind}: {verdicts:?}"
            );
        }
        group.bench_function(BenchmarkId::new("burst32", kind), |b| {
            b.iter(|| {
                for burst in 0..WORKING_SET / BURST {
                    capture.load(burst, &mut bufs);
                    if kind != "copy_only" {
                        pipeline.process_burst(&ctx, &mut bufs, &mut verdicts);
                    }
                }
                std::hint::black_box(&bufs);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
