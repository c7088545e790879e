//! `dpdk-sys`: bindings to the system DPDK and the thin safe layer the rest of egressfwd uses.
//!
//! [`ffi`] is the raw bindgen output plus the C shim for DPDK's `static inline` fast path.
//! Everything else wraps it with ownership that matches DPDK's rules:
//!
//! - [`Eal`] initialises the environment once per process.
//! - [`Mempool`] owns a packet-buffer pool and reports how many buffers are out (leak checks).
//! - [`Mbuf`] owns one packet buffer (`Send`, not `Sync`, freed on drop); [`MbufBurst`] is a
//!   fixed-capacity array of them for rx/tx bursts without allocation.
//! - [`Port`] configures and starts a device; its [`RxQueue`] / [`TxQueue`] handles are owned
//!   by exactly one worker and burst through `&mut self`.
//! - [`lcore_scope`] runs workers on EAL's worker lcores; [`Capture`] serves `dpdk-dumpcap`;
//!   [`register_telemetry_command`] answers on the telemetry socket.
//!
//! All `unsafe` of the project lives in this crate, each block with its `SAFETY` argument.

mod cycles;
mod eal;
mod error;
pub mod ffi;
mod lcore;
mod log;
mod mbuf;
mod memory;
mod mempool;
mod port;
mod telemetry;
pub mod test_support;

pub use cycles::{tsc, tsc_hz};
pub use eal::{Capture, Eal};
pub use error::DpdkError;
pub use lcore::{lcore_scope, LcoreScope};
pub use log::{route_log_to_tracing, LOG_TARGET};
pub use mbuf::{Mbuf, MbufBurst, BURST_CAPACITY};
pub use memory::{advise_huge_pages, release_free_heap, HugePageAdvice};
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use telemetry::{register_telemetry_command, TelemetryHandler, TelemetryValue};

/// The headroom DPDK reserves in front of received packets: room to prepend tunnel headers.
pub const MBUF_HEADROOM: usize = ffi::RTE_PKTMBUF_HEADROOM as usize;
/// Data room of a default mbuf (headroom plus 2048 bytes of packet).
pub const MBUF_DEFAULT_BUF_SIZE: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
