//! Per-packet cost of the pipeline (issue: data plane): bursts of 32 over a working set of
//! 64k packets with distinct addresses, on the 1M-address, 10k-server fleet, for each kind
//! of traffic: local egress, encapsulation (forward), decapsulation (then local egress), and
//! pass; replies to mapped flows (restored, to the host) and to unknown ones (a flood:
//! steered or to the host); the bench mix (60% forward, 30% local, 10% decapsulated) and
//! the same with 30% replies.
//!
//! The mapping table is filled with about a million other flows first (issue 17 budgets an
//! established flow's packet at 1M mappings), by a second worker, and the measured worker's
//! pins with as many forwarded ones (issue 18: at 1M pins), so that lookups miss the cache as
//! they would in production.
//!
//! Like a driver, each burst is first copied from a contiguous capture into 32 reused
//! buffers, so packet data is warm when the pipeline reads it (as after net_pcap's copy or a
//! NIC's DMA into cache) while the tables are hit with a working set of 64k addresses. The
//! `copy_only` case measures that copy alone: the pipeline's own cost is the difference.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::{Context, MappingTable, PacketBuf, Pipeline, Timeouts, VecBuf, Verdict};
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

/// Flows egressing here that fill the mapping table, beside the measured working set.
const FILLER_FLOWS: usize = 960_000;

/// [`FILLER_FLOWS`] distinct TCP flows from egress addresses of the tiers `want` accepts.
fn filler_flows(table: &ForwardingTable, seed: u64, want: impl Fn(Tier) -> bool) -> Vec<Vec<u8>> {
    egress_addresses(table, FILLER_FLOWS, seed, want)
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            frames::tcp(
                a,
                0x5eb8_0000 | (i as u32 & 0xffff),
                1024 + (i % 61000) as u16,
                80,
                6,
            )
        })
        .collect()
}

/// The mix of `scripts/gen_bench_traffic.py` (60% forward, 30% local, 10% decapsulated),
/// with `reply_percent` of replies taken out of it, drawn packet by packet.
fn mix(workloads: &Workloads, reply_percent: u64) -> Vec<Vec<u8>> {
    let mut rng = egressfwd_benches::Rng(0x006d_6978);
    let mut next = [0usize; 4];
    (0..WORKING_SET)
        .map(|_| {
            let r = rng.next();
            let kind = if r % 100 < reply_percent {
                3
            } else {
                match (r >> 32) % 100 {
                    0..60 => 0,
                    60..90 => 1,
                    _ => 2,
                }
            };
            let set = [
                &workloads.encap,
                &workloads.local,
                &workloads.decap,
                &workloads.reply,
            ][kind];
            next[kind] += 1;
            set[next[kind] - 1].clone()
        })
        .collect()
}

struct Workloads {
    local: Vec<Vec<u8>>,
    encap: Vec<Vec<u8>>,
    decap: Vec<Vec<u8>>,
    reply: Vec<Vec<u8>>,
}

/// The origin's reply to each local-egress frame as it left (its source port possibly
/// translated).
fn replies_to(sent: &[Vec<u8>]) -> Vec<Vec<u8>> {
    sent.iter()
        .map(|f| {
            let ip = |at: usize| u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
            let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
            frames::tcp(ip(30), ip(26), port(36), port(34), 6)
        })
        .collect()
}

/// Runs `frames` through `pipeline` once; returns each frame as it left and its verdict.
fn run_once(
    pipeline: &mut Pipeline,
    ctx: &Context<'_>,
    frames: &[Vec<u8>],
) -> (Vec<Vec<u8>>, Vec<Verdict>) {
    let mut out = Vec::with_capacity(frames.len());
    let mut verdicts = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(BURST) {
        let mut bufs: Vec<VecBuf> = chunk.iter().map(|f| VecBuf::new(f)).collect();
        let mut v = vec![Verdict::Pass; chunk.len()];
        pipeline.process_burst(ctx, &mut bufs, &mut v);
        out.extend(bufs.iter().map(|b| b.data().to_vec()));
        verdicts.extend(v);
    }
    (out, verdicts)
}

fn pipeline(c: &mut Criterion) {
    let table =
        ForwardingTable::compile(&topology::load(&fleet_1m()).unwrap(), BENCH_SERVER).unwrap();
    // EGRESSFWD_BENCH_PIN_ENTRIES sizes the pin table alone and leaves out the forwarded
    // filler: with 131072 (the measured worker's 64k flows at a quarter load, 8 MiB), a pin
    // costs what it would where its table's span is within the TLB's reach
    // (docs/performance.md, 2026-12-08).
    let pin_entries = std::env::var("EGRESSFWD_BENCH_PIN_ENTRIES").ok().map(|v| {
        v.parse::<usize>()
            .expect("EGRESSFWD_BENCH_PIN_ENTRIES: a number")
    });
    let (mappings, mut owners) = MappingTable::with_pin_entries(
        2,
        2 << 20,
        pin_entries.unwrap_or(2 << 20),
        Timeouts::default(),
        0,
    );
    // As the appliance does at start (control/src/run/mod.rs): the flow-state tables on
    // transparent huge pages. The forwarding table stays where the earlier benches had it,
    // so that before/after comparisons measure the flow state alone.
    let regions = mappings.regions().into_iter();
    // What the kernel gave each region: a run whose tables stayed on small pages is slower
    // by far (a random line over 128 MiB costs twice as much), and says so in its header.
    let advice: Vec<String> = regions
        .chain(owners.iter().flat_map(|o| o.regions()))
        .map(|region| {
            let advice = dpdk_sys::advise_huge_pages(region.start, region.bytes);
            format!("{} {} MiB {advice:?}", region.name, region.bytes >> 20)
        })
        .collect();
    println!("huge pages: {}", advice.join(", "));
    let measured_owner = owners.pop().expect("two owners");
    let mut filler = Pipeline::new(pipeline_config(), owners.pop().expect("two owners"));
    let ctx = Context {
        table: &table,
        mappings: &mappings,
        now: 0,
    };
    // Flows egressing here (mapped, in the table every worker shares), and as many forwarded
    // from the host, pinned by the measured worker itself (each worker keeps its own pins).
    run_once(
        &mut filler,
        &ctx,
        &filler_flows(&table, 9, |t| t == Tier::Local),
    );
    let config = pipeline_config();
    let mut pipeline = Pipeline::new(config, measured_owner);
    if pin_entries.is_none() {
        run_once(
            &mut pipeline,
            &ctx,
            &filler_flows(&table, 10, |t| t != Tier::Local),
        );
    }
    let local = workload(&table, "local");
    // The replies of the measured local flows: their mappings made by a first pass.
    let (sent, _) = run_once(&mut pipeline, &ctx, &local);
    let workloads = Workloads {
        reply: replies_to(&sent),
        local,
        encap: workload(&table, "encap"),
        decap: workload(&table, "decap"),
    };
    // Replies from origins to held addresses, at ports no flow of ours uses (a flood).
    let unknown_replies: Vec<Vec<u8>> =
        egress_addresses(&table, WORKING_SET, 4, |t| t == Tier::Local)
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                frames::tcp(
                    0x6440_0000 | i as u32,
                    a,
                    443,
                    1024 + (i * 7 % 64000) as u16,
                    6,
                )
            })
            .collect();
    println!(
        "mappings in use: {} (filler) + {} (measured); pinned flows: {} + {}",
        filler.mappings_in_use(),
        pipeline.mappings_in_use(),
        filler.pins_in_use(),
        pipeline.pins_in_use()
    );

    let mut group = c.benchmark_group("pipeline_per_packet_1m_table_64k_working_set");
    group.throughput(Throughput::Elements(WORKING_SET as u64));
    for kind in [
        "copy_only",
        "local",
        "encap",
        "decap",
        "pass",
        "reply",
        "reply_unknown",
        "mix",
        "mix_replies30",
    ] {
        let frames = match kind {
            "copy_only" | "local" => workloads.local.clone(),
            "encap" => workloads.encap.clone(),
            "decap" => workloads.decap.clone(),
            "reply" => workloads.reply.clone(),
            "reply_unknown" => unknown_replies.clone(),
            "mix" => mix(&workloads, 0),
            "mix_replies30" => mix(&workloads, 30),
            other => workload(&table, other),
        };
        if kind != "copy_only" {
            let (_, verdicts) = run_once(&mut pipeline, &ctx, &frames);
            let expected: &[Verdict] = match kind {
                "pass" => &[Verdict::Pass],
                "reply" => &[Verdict::Host],
                "reply_unknown" => &[Verdict::Host, Verdict::Uplink],
                "mix_replies30" => &[Verdict::Host, Verdict::Uplink],
                _ => &[Verdict::Uplink],
            };
            assert!(
                verdicts.iter().all(|v| expected.contains(v)),
                "{kind}: {:?}",
                verdicts.iter().find(|v| !expected.contains(v))
            );
        }
        let capture = Capture::new(&frames);
        let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 256])).collect();
        let mut verdicts = [Verdict::Pass; BURST];
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
