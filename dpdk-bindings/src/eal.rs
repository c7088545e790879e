use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::OnceLock;

use crate::error::{last_error, DpdkError};
use crate::ffi;

/// The initialised DPDK environment. DPDK allows one initialisation per process, so this is
/// a process-wide singleton: the first successful [`Eal::init`] wins and later calls with the
/// same arguments get the same handle.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Eal> = OnceLock::new();
static EAL_INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Eal {
    /// Initialises EAL with `args` (the program name first, as in `argv`). A second call with
    /// the same arguments returns the existing environment; with different arguments it is an
    /// error, because DPDK cannot be re-initialised.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal, DpdkError> {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let _serialise = EAL_INIT_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(eal) = EAL.get() {
            return if eal.args == args {
                Ok(eal)
            } else {
                Err(DpdkError::EalAlreadyInitialised {
                    first: eal.args.join(" "),
                })
            };
        }
        let c_args = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| DpdkError::NulInArgument(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        // EAL keeps pointers into argv for the life of the process (it may reorder the array
        // and remember option values), so the strings and the array are deliberately leaked:
        // this happens once per process.
        let argv: &'static mut [*mut c_char] = Box::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = i32::try_from(argv.len()).expect("argument count fits in i32");
        // SAFETY: argv holds argc valid NUL-terminated strings that live forever (leaked
        // above); init is serialised by EAL_INIT_LOCK and runs at most once successfully.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::EalInit {
                args: args.join(" "),
                reason: last_error(),
            });
        }
        Ok(EAL.get_or_init(|| Eal { args }))
    }

    /// The environment, if this process initialised it.
    pub fn get() -> Option<&'static Eal> {
        EAL.get()
    }

    /// The arguments EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// EAL's runtime directory (`/var/run/dpdk/PREFIX` for root): its shared config and
    /// sockets.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: EAL is initialised; the call returns a pointer to a NUL-terminated path
        // that EAL keeps for the life of the process.
        let dir = unsafe { std::ffi::CStr::from_ptr(ffi::rte_eal_get_runtime_dir()) };
        std::path::PathBuf::from(dir.to_string_lossy().into_owned())
    }

    /// This thread's lcore id, or `None` for a thread DPDK does not know.
    pub fn lcore_id() -> Option<u32> {
        // SAFETY: reads the calling thread's per-lcore variable only.
        let id = unsafe { ffi::efw_lcore_id() };
        (id != u32::MAX).then_some(id)
    }

    /// Releases EAL resources (hugepage files, devices). Call once at exit, after every port
    /// is closed and every mempool freed; DPDK must not be used afterwards.
    pub fn cleanup(&self) {
        // SAFETY: called at exit by the owner of the process's DPDK state; callers guarantee
        // nothing DPDK is used afterwards.
        unsafe { ffi::rte_eal_cleanup() };
    }
}

/// Packet capture by secondary processes (`dpdk-dumpcap`): once initialised, a capture
/// request installs rx and tx callbacks on the ports it names, which copy packets to the
/// capturing process. Without a request there is no callback, so the cost is nothing but the
/// check `rte_eth_rx_burst` always makes.
pub struct Capture {
    _private: (),
}

impl Capture {
    /// Serves capture requests from now on. Needs EAL's multi-process channel (shared
    /// config, hugepages): with `--no-shconf` or `--in-memory` this fails.
    pub fn enable(_eal: &Eal) -> Result<Self, DpdkError> {
        // SAFETY: EAL is initialised; pdump registers its multi-process handler.
        let rc = unsafe { ffi::rte_pdump_init() };
        if rc != 0 {
            return Err(DpdkError::Pdump(last_error()));
        }
        Ok(Self { _private: () })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: pdump was initialised by `enable`; uninit unregisters its handler.
        unsafe { ffi::rte_pdump_uninit() };
    }
}
