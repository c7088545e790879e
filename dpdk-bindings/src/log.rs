//! DPDK's own log lines (EAL, drivers) through the appliance's logger, so that they share its
//! format (text or JSON), its filter and its destination, instead of going raw to stderr.

use std::os::raw::c_char;

use crate::ffi;

/// The `tracing` target of DPDK's lines: `RUST_LOG=dpdk=debug` shows them all.
pub const LOG_TARGET: &str = "dpdk";

/// Routes DPDK's log to `tracing` from now on, before or after EAL initialisation. Returns
/// whether the stream could be opened (else DPDK keeps logging to stderr).
pub fn route_log_to_tracing() -> bool {
    // SAFETY: the shim opens a stdio stream whose writes call `sink`, which is valid for the
    // life of the process, and hands the stream to rte_openlog_stream (which keeps it).
    unsafe { ffi::efw_log_redirect(Some(sink)) == 0 }
}

extern "C" fn sink(level: u32, text: *const c_char, len: usize) {
    if text.is_null() {
        return;
    }
    // SAFETY: stdio passes a buffer of `len` bytes that is valid for the duration of the call.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    emit(level, &String::from_utf8_lossy(bytes));
}

/// One `tracing` event per non-empty line, at the level DPDK gave the message.
fn emit(level: u32, text: &str) {
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        match level {
            0..=4 => tracing::error!(target: LOG_TARGET, "{line}"),
            5 => tracing::warn!(target: LOG_TARGET, "{line}"),
            6 | 7 => tracing::info!(target: LOG_TARGET, "{line}"),
            _ => tracing::debug!(target: LOG_TARGET, "{line}"),
        }
    }
}
