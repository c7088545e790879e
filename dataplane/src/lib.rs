//! The data plane of egressfwd.
//!
//! - [`wire`]: zero-copy header views with a written no-panic contract.
//! - [`pipeline`]: contract section 5 as pure functions over a [`PacketBuf`], in bursts.
//! - [`conn`]: the connection table that sends replies back to the server that forwarded
//!   their flow.
//! - [`flow`]: the flow-state table for the mappings and pins of contract section 7
//!   (exact keys, lock-free lookups, one owner per entry, bounded, expiry by timer wheel).
//! - `worker` (feature `dpdk`): the thin poll loop over DPDK mbufs.

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod buf;
pub mod conn;
pub mod counters;
pub mod flow;
pub mod pipeline;
pub mod publish;
pub mod stats;
pub mod wire;
#[cfg(feature = "dpdk")]
pub mod worker;

pub use buf::{PacketBuf, VecBuf};
pub use conn::ConnTable;
pub use counters::{DropReason, PipelineCounters};
pub use pipeline::{Context, Encap, Pipeline, PipelineConfig, PortAddrs, Verdict};
pub use publish::{Published, Reader, Retired};
pub use stats::{PortCounters, StatsCell, WorkerStats};
