//! The fleet topology and everything decided from it, as pure Rust (no DPDK):
//!
//! - [`parse()`] / [`load`]: the topology file (contract section 4) into a validated
//!   [`Topology`], or every error as `FILE:LINE:COL: message`.
//! - [`ForwardingTable::compile`]: for one server, the decision of contract section 1 for
//!   every egress prefix, and the per-flow choice of a target within a tier (weighted
//!   rendezvous hashing, precomputed into buckets).
//! - [`ForwardingTable::decide_v4`] and friends: the one implementation of the decision that
//!   both the data plane and `egressfwd explain` call.

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod change;
pub mod diag;
pub mod diff;
pub mod model;
pub mod parse;
pub mod prefix;

pub use diag::{Diagnostic, Diagnostics, SourceMap};
pub use model::*;
pub use parse::{load, parse, parse_bytes, read};
pub use prefix::{Ipv4Prefix, Ipv6Prefix, Prefix};
pub mod hash;
pub mod lookup;
pub mod rendezvous;
pub mod slices;
pub mod table;

pub use hash::FlowKey;
pub use lookup::{MemoryRegion, Probe};
pub use slices::HeldSlices;
pub use table::{
    Classified, CompileError, Continued, Decision, DecisionV6, FleetPacket, Forwarding,
    ForwardingTable, Lookup, Route, ServerInfo, Spreading, Started, Tier,
};
pub mod explain;
