//! The data plane of egressfwd.
//!
//! - [`wire`]: zero-copy header views with a written no-panic contract.
//! - [`pipeline`]: contract section 5 as pure functions over a [`PacketBuf`], in bursts.
//! - [`mappings`]: the mapping of every flow egressing here (contract 7.2), which sends its
//!   replies back where it came from; [`reply`] reads packets to egress addresses for it.
//! - [`flow`]: the flow-state table for the mappings and pins of contract section 7
//!   (exact keys, lock-free lookups, one owner per entry, bounded, expiry by timer wheel).
//! - `worker` (feature `dpdk`): the thin poll loop over DPDK mbufs.

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod buf;
pub mod counters;
pub mod flow;
pub mod fragments;
pub mod mappings;
pub mod pins;
pub mod pipeline;
pub mod publish;
pub mod reply;
pub mod stats;
pub mod timeouts;
pub mod trace;
pub mod wire;
#[cfg(feature = "dpdk")]
pub mod worker;

/// The example fleet's table for lhr01-a, which the unit tests decide by.
#[cfg(test)]
pub(crate) fn example_table() -> topology::ForwardingTable {
    let text = include_str!("../../topology/examples/fleet.toml");
    let fleet = topology::parse("fleet.toml", text).unwrap();
    topology::ForwardingTable::compile(&fleet, "lhr01-a").unwrap()
}

pub use buf::{PacketBuf, VecBuf};
pub use counters::{DropReason, PipelineCounters};
pub use mappings::{MappingOwner, MappingTable, Timeouts};
pub use pipeline::{Context, Encap, Pipeline, PipelineConfig, PortAddrs, Verdict};
pub use publish::{Published, Reader, Retired};
pub use stats::{PortCounters, StatsCell, WorkerStats};
