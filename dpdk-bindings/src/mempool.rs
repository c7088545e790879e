use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{last_error, DpdkError};
use crate::ffi;

/// An owned pool of packet buffers, freed on drop (after every buffer has come back).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: DPDK mempools created with the default (multi-producer, multi-consumer ring) ops
// are safe to use from any thread; the pointer is only freed in Drop.
unsafe impl Send for Mempool {}
// SAFETY: as above: alloc, free and the counters are thread-safe operations in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` packet buffers of `data_room` bytes (headroom included) with
    /// a per-lcore cache of `cache` buffers, on any NUMA socket.
    pub fn create(name: &str, count: u32, cache: u32, data_room: u16) -> Result<Self, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        // SAFETY: c_name is a valid NUL-terminated string for the duration of the call; DPDK
        // copies it. SOCKET_ID_ANY lets DPDK choose the memory.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                count,
                cache,
                0,
                data_room,
                ffi::SOCKET_ID_ANY,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::MempoolCreate {
            name: name.to_owned(),
            count,
            reason: last_error(),
        })?;
        Ok(Self {
            raw,
            name: name.to_owned(),
            size: count,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of buffers the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Buffers currently allocated (in queues, in flight, in a worker's hands), including the
    /// per-lcore caches' accounting. Back at zero when nothing leaked.
    pub fn in_use(&self) -> u32 {
        // SAFETY: self.raw is a live mempool; the count only reads its state.
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Buffers currently free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: as in `in_use`.
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let outstanding = self.in_use();
        if outstanding != 0 {
            // Freeing a pool whose buffers are still referenced (by a port's rings, say)
            // would turn those references into use-after-free; leaking is the safe choice.
            tracing::error!(pool = %self.name, outstanding, "mempool still has buffers in use; not freeing it");
            return;
        }
        // SAFETY: no buffer of the pool is in use and the pool is owned by self.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) };
    }
}
