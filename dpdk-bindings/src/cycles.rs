//! The CPU's time-stamp counter, as DPDK's `rte_rdtsc` reads it: how workers measure the
//! cycles they spend busy and idle (VPP's `show runtime` figures) at a few cycles a read.

/// The time-stamp counter now. Monotonic on the invariant-TSC CPUs DPDK supports.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a counter; it has no memory effects, and every x86-64 CPU has
        // it (DPDK's own rte_rdtsc is this instruction).
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Counter ticks a second, as EAL measured them at initialisation (0 before).
pub fn tsc_hz() -> u64 {
    if cfg!(target_arch = "x86_64") {
        // SAFETY: rte_get_tsc_hz reads a value EAL set during initialisation; before it, 0.
        unsafe { crate::ffi::rte_get_tsc_hz() }
    } else {
        1_000_000_000
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counter_moves_forward() {
        let a = super::tsc();
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(super::tsc() > a);
    }
}
