//! Arbitrary bytes as lines of an `explain` flows file, explained against the example fleet.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use topology::explain::{explain_flows, FlowSpec};
use topology::ForwardingTable;

fn table() -> &'static ForwardingTable {
    static TABLE: OnceLock<ForwardingTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let topology = topology::parse("fleet.toml", include_str!("../../topology/examples/fleet.toml")).unwrap();
        ForwardingTable::compile(&topology, "lhr01-a").unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let flows: Vec<FlowSpec> = text.lines().filter_map(|l| FlowSpec::parse_line(l).ok().flatten()).collect();
    let explained = explain_flows(table(), &flows, 6080);
    assert_eq!(explained.len(), flows.len());
});
