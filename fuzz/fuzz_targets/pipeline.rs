//! The whole per-packet pipeline on arbitrary bytes: classification, decapsulation, every
//! rewrite, both encapsulations, mappings that remember across inputs (kept and translated
//! ports, replies and ICMP errors restored or steered, expiry on a clock that moves with the
//! inputs, a table small enough to fill), and tiny headroom. Nothing may panic or read out of
//! bounds.
#![no_main]

use std::sync::{Mutex, OnceLock};

use dataplane::{Context, Encap, MappingTable, PacketBuf, Pipeline, PipelineConfig, PortAddrs, Timeouts, VecBuf};
use libfuzzer_sys::fuzz_target;
use topology::ForwardingTable;

/// One pipeline (and mapping owner) for each of the 16 configurations the control byte's low
/// bits choose, so that each keeps its mappings from one input to the next.
const CONFIGS: usize = 16;

struct Rig {
    table: ForwardingTable,
    mappings: MappingTable,
    pipelines: Mutex<(u32, Vec<Pipeline>)>,
}

fn config(control: u8) -> PipelineConfig {
    PipelineConfig {
        encap: if control & 1 == 0 { Encap::Fou } else { Encap::Ipip },
        encap_port: 6080,
        mtu: if control & 2 == 0 { 1500 } else { 576 },
        underlay_mtu: if control & 4 == 0 { 1500 } else { 9000 },
        mss_clamp: (control & 8 == 0).then_some(1400),
        uplink: PortAddrs { mac: [2, 0, 0, 0, 0, 0x0a], next_hop: [2, 0, 0, 0, 0, 0xfe] },
        host: PortAddrs { mac: [2, 0, 0, 0, 0, 0x0b], next_hop: [2, 0, 0, 0, 0, 0x01] },
    }
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let text = include_str!("../../topology/examples/fleet.toml");
        let topology = topology::parse("fleet.toml", text).expect("example fleet is valid");
        let (mappings, owners) = MappingTable::new(CONFIGS, CONFIGS * 64, Timeouts::default(), 0);
        let pipelines = owners.into_iter().enumerate().map(|(i, owner)| Pipeline::new(config(i as u8), owner)).collect();
        Rig {
            table: ForwardingTable::compile(&topology, "lhr01-a").unwrap(),
            mappings,
            pipelines: Mutex::new((0, pipelines)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, frame)) = data.split_first() else { return };
    let rig = rig();
    let mut guard = rig.pipelines.lock().unwrap();
    let (clock, pipelines) = &mut *guard;
    // A second passes with every input: mappings made 30 inputs ago expire.
    *clock += 1;
    let ctx = Context { table: &rig.table, mappings: &rig.mappings, now: *clock };
    let pipeline = &mut pipelines[usize::from(control) % CONFIGS];
    pipeline.expire(&ctx, 8);
    let headroom = usize::from(control >> 2) * 4;
    // One packet alone and the same packet inside a burst take the same path (the first
    // made any mapping the packet needs; the second finds it).
    let mut single = VecBuf::with_headroom(frame, headroom);
    let verdict = pipeline.process(&ctx, &mut single);
    // `explain --trace` reads back what left, and whatever arrived.
    let _ = dataplane::trace::describe(&rig.table, single.data(), 6080);
    let _ = dataplane::trace::describe(&rig.table, frame, 6080);
    let mut burst = vec![VecBuf::with_headroom(frame, headroom), VecBuf::with_headroom(&frame[..frame.len() / 2], headroom)];
    let mut verdicts = [dataplane::Verdict::Pass; 2];
    pipeline.process_burst(&ctx, &mut burst, &mut verdicts);
    assert_eq!(verdict, verdicts[0]);
});
