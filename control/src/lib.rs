//! The parts of the `egressfwd` binary that are plain functions over input, exposed as a
//! library so that the fuzz targets can reach them.

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod config;
