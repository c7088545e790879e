//! Arbitrary bytes as a topology file: parse, validate, and compile whatever is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(topology) = topology::parse("fuzz.toml", &text) {
        for server in topology.servers.iter().take(4) {
            topology::ForwardingTable::compile(&topology, &server.name).unwrap();
        }
    }
});
