//! The whole per-packet pipeline on arbitrary bytes: classification, decapsulation, every
//! rewrite, both encapsulations, a connection table that remembers across inputs, and tiny
//! headroom. Nothing may panic or read out of bounds.
#![no_main]

use std::sync::OnceLock;

use dataplane::{ConnTable, Context, Encap, Pipeline, PipelineConfig, PortAddrs, VecBuf};
use libfuzzer_sys::fuzz_target;
use topology::ForwardingTable;

struct Rig {
    table: ForwardingTable,
    connections: ConnTable,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let text = include_str!("../../topology/examples/fleet.toml");
        let topology = topology::parse("fleet.toml", text).expect("example fleet is valid");
        Rig { table: ForwardingTable::compile(&topology, "lhr01-a").unwrap(), connections: ConnTable::new(1024) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, frame)) = data.split_first() else { return };
    let rig = rig();
    let config = PipelineConfig {
        encap: if control & 1 == 0 { Encap::Fou } else { Encap::Ipip },
        encap_port: 6080,
        mtu: if control & 2 == 0 { 1500 } else { 576 },
        underlay_mtu: if control & 4 == 0 { 1500 } else { 9000 },
        mss_clamp: (control & 8 == 0).then_some(1400),
        uplink: PortAddrs { mac: [2, 0, 0, 0, 0, 0x0a], next_hop: [2, 0, 0, 0, 0, 0xfe] },
        host: PortAddrs { mac: [2, 0, 0, 0, 0, 0x0b], next_hop: [2, 0, 0, 0, 0, 0x01] },
    };
    let mut pipeline = Pipeline::new(config);
    let ctx = Context { table: &rig.table, connections: &rig.connections };
    let headroom = usize::from(control >> 2) * 4;
    // One packet alone and the same packet inside a burst take the same path.
    let mut single = VecBuf::with_headroom(frame, headroom);
    let verdict = pipeline.process(&ctx, &mut single);
    let mut burst = vec![VecBuf::with_headroom(frame, headroom), VecBuf::with_headroom(&frame[..frame.len() / 2], headroom)];
    let mut verdicts = [dataplane::Verdict::Pass; 2];
    pipeline.process_burst(&ctx, &mut burst, &mut verdicts);
    assert_eq!(verdict, verdicts[0]);
});
