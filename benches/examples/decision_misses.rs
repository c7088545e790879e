//! Runs the decision over a 64k-address working set of a fleet's table, for counting cache
//! misses with callgrind's cache simulator (deterministic, unlike timings on a shared
//! machine), with a last-level cache the size this machine's behaves like (about 1 MiB):
//!   valgrind --tool=callgrind --cache-sim=yes --LL=1048576,16,64 \
//!     --collect-atstart=no --toggle-collect=decision_misses::decide_all \
//!     target/release/examples/decision_misses FLEET.toml [SERVER]
//! The first pass over the flows warms the caches; the second is what is collected.
use egressfwd_benches::{egress_addresses, BENCH_SERVER};
use topology::hash::PROTO_TCP;
use topology::{Classified, Decision, FlowKey, ForwardingTable};

const WORKING_SET: usize = 1 << 16;

fn main() {
    let mut args = std::env::args().skip(1);
    let fleet = args
        .next()
        .expect("usage: decision_misses FLEET.toml [SERVER]");
    let server = args.next().unwrap_or_else(|| BENCH_SERVER.to_owned());
    let table = ForwardingTable::compile(
        &topology::load(std::path::Path::new(&fleet)).expect("load the fleet"),
        &server,
    )
    .expect("compile the table");
    let flows: Vec<FlowKey> = egress_addresses(&table, WORKING_SET, 7, |_| true)
        .iter()
        .enumerate()
        .map(|(i, &a)| FlowKey::new(a, 0x5db8_d822 ^ i as u32, PROTO_TCP, Some((40000, 443))))
        .collect();
    let mut out = vec![Classified::Decided(Decision::Pass); flows.len()];
    warm(&table, &flows, &mut out);
    decide_all(&table, &flows, &mut out);
    let forwarded = out
        .iter()
        .filter(|d| matches!(d, Classified::Decided(Decision::Forward { .. })))
        .count();
    println!("{fleet}: {forwarded} of {} flows forwarded", flows.len());
}

#[inline(never)]
fn warm(table: &ForwardingTable, flows: &[FlowKey], out: &mut [Classified]) {
    decide_in_bursts(table, flows, out);
}

/// Out of line, so that callgrind collects exactly this (`--toggle-collect`).
#[inline(never)]
fn decide_all(table: &ForwardingTable, flows: &[FlowKey], out: &mut [Classified]) {
    decide_in_bursts(table, flows, out);
}

#[inline(always)]
fn decide_in_bursts(table: &ForwardingTable, flows: &[FlowKey], out: &mut [Classified]) {
    for (flows, out) in flows.chunks(32).zip(out.chunks_mut(32)) {
        table.decide_v4_burst(flows, 6080, out);
    }
}
