use std::ffi::CStr;

/// A failure reported by DPDK, with the operation that failed and DPDK's own explanation.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("EAL initialisation failed ({reason}); arguments were: {args}")]
    EalInit { args: String, reason: String },
    #[error("EAL was already initialised in this process with different arguments ({first}); DPDK allows one initialisation per process")]
    EalAlreadyInitialised { first: String },
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    #[error("cannot launch work on lcore {lcore} (code {code}): is it a worker lcore, and idle?")]
    Launch { lcore: u32, code: i32 },
    #[error("cannot initialise packet capture (pdump): {0}")]
    Pdump(String),
    #[error("cannot register telemetry command {command:?} (code {code})")]
    Telemetry { command: String, code: i32 },
    #[error("cannot create mempool {name:?} of {count} buffers: {reason}")]
    MempoolCreate {
        name: String,
        count: u32,
        reason: String,
    },
    #[error("cannot create device {device:?}: {reason}")]
    Probe { device: String, reason: String },
    #[error("no DPDK port named {name:?} (available: {available})")]
    NoSuchPort { name: String, available: String },
    #[error("port {port}: {step} failed: {reason}")]
    Port {
        port: String,
        step: &'static str,
        reason: String,
    },
}

/// DPDK's text for an error number (either a `-errno` return value or `rte_errno`).
pub(crate) fn strerror(code: i32) -> String {
    let code = code.abs();
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // that stays valid until the next call on this thread; it is copied out immediately.
    let text = unsafe { CStr::from_ptr(crate::ffi::rte_strerror(code)) };
    format!("{} (errno {code})", text.to_string_lossy())
}

/// The thread's current `rte_errno`, as text.
pub(crate) fn last_error() -> String {
    // SAFETY: efw_errno only reads the calling thread's rte_errno.
    strerror(unsafe { crate::ffi::efw_errno() })
}
