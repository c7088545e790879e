//! Runs the pipeline over 65,536 packets of one kind against the example fleet, for
//! instruction counting under `valgrind --tool=callgrind` (deterministic, unlike timings on a
//! shared machine):
//!   valgrind --tool=callgrind target/release/examples/instructions encap
//! Kinds: `local` (held here), `encap` (forwarded to a weighted candidate), `decap` (a fleet
//! packet from lhr01-b whose inner packet leaves here), `pass` (not egress), `mix` (the bench
//! mix of `scripts/gen_bench_traffic.py`: 60% encap, 30% local, 10% decap, packet by packet).
//! Every packet of these is a new flow. `established`: the `encap` packets again, their
//! flows pinned by a first pass that is not counted (it runs outside `run_burst`).
//! `baseline` does everything but the pipeline: subtract it to get the pipeline's share.
use dataplane::{Context, MappingTable, Pipeline, Timeouts, VecBuf, Verdict};
use egressfwd_benches::{frames, pipeline_config, run_burst};

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let topology = topology::load(&root.join("topology/examples/fleet.toml")).unwrap();
    let table = topology::ForwardingTable::compile(&topology, "lhr01-a").unwrap();
    let (mappings, mut mapping_owners) = MappingTable::new(1, 1 << 16, Timeouts::default(), 0);
    let ctx = Context {
        table: &table,
        mappings: &mappings,
        now: 0,
    };
    let mut pipeline = Pipeline::new(pipeline_config(), mapping_owners.pop().unwrap());
    const LOCAL: u32 = 0xc633_6401; // 198.51.100.1, held here
    const ENCAP: u32 = 0xcb00_7180; // 203.0.113.128/25, two weighted candidates
    const PASS: u32 = 0x0101_0101; // not egress
    const PEER: u32 = 0x0a0a_0102; // lhr01-b's underlay
    let me = table.my_underlay();
    let packet = |src: u32, i: u32| {
        frames::tcp(
            src + (i & 3),
            0x5db8_0000 + i,
            1024 + (i % 60000) as u16,
            443,
            6,
        )
    };
    let frame = |i: u32| match kind.as_str() {
        "local" => packet(LOCAL, i),
        "encap" | "established" => packet(ENCAP, i),
        "decap" => frames::fou(PEER, me, &packet(LOCAL, i)),
        "mix" => match i % 10 {
            0..6 => packet(ENCAP, i),
            6..9 => packet(LOCAL, i),
            _ => frames::fou(PEER, me, &packet(LOCAL, i)),
        },
        _ => packet(PASS, i),
    };
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&[0; 128])).collect();
    let mut verdicts = [Verdict::Pass; 32];
    let mut uplink = 0;
    if kind == "established" {
        for burst in 0..2048u32 {
            for (i, b) in bufs.iter_mut().enumerate() {
                b.refill(&frame(burst * 32 + i as u32), 128);
            }
            pipeline.process_burst(&ctx, &mut bufs, &mut verdicts);
        }
    }
    for burst in 0..2048u32 {
        for (i, b) in bufs.iter_mut().enumerate() {
            b.refill(&frame(burst * 32 + i as u32), 128);
        }
        if kind != "baseline" {
            run_burst(&mut pipeline, &ctx, &mut bufs, &mut verdicts);
        }
        uplink += verdicts.iter().filter(|v| **v == Verdict::Uplink).count();
    }
    println!("{kind}: {uplink} of 65536 to the uplink");
}
