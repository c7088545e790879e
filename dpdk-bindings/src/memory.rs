//! Huge pages for the large lookup tables built on the Rust heap, and giving the heap that a
//! topology load freed back to the kernel.
//!
//! The forwarding table's rendezvous buckets and trie leaves and the connection table are
//! megabytes read at random, a few lines per packet. DPDK's hugepage memory is for mbufs;
//! these tables are ordinary allocations, so they are given transparent huge pages instead,
//! which spares the reads page-table walks (a 1–3% gain measured at 4M addresses; see
//! docs/performance.md).

/// Size of an x86-64 (and arm64 4K-granule) PMD huge page.
const HUGE_PAGE: usize = 2 << 20;

/// What [`advise_huge_pages`] achieved for one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePageAdvice {
    /// The region is smaller than one aligned huge page: nothing to do.
    TooSmall,
    /// Collapsed into huge pages now (`MADV_COLLAPSE`, Linux 6.1 and later).
    Collapsed,
    /// Marked for huge pages (`MADV_HUGEPAGE`); the kernel collapses it in the background.
    Marked,
    /// The kernel refused both (THP disabled or unsupported): stays on small pages.
    Refused(i32),
}

/// Asks the kernel to back the huge-page-aligned interior of `len` bytes at `start` with
/// transparent huge pages. Advisory only: it never changes the memory's contents, so a
/// failure leaves the table as fast as it was.
pub fn advise_huge_pages(start: *const u8, len: usize) -> HugePageAdvice {
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize).saturating_add(len) & !(HUGE_PAGE - 1);
    if end <= first {
        return HugePageAdvice::TooSmall;
    }
    let (addr, length) = (first as *mut libc::c_void, end - first);
    // SAFETY: MADV_COLLAPSE and MADV_HUGEPAGE only change how the pages of a range are
    // backed, never their contents or protection, whatever range is passed; on a range that is
    // not mapped the kernel returns ENOMEM. The range is page-aligned, as madvise requires.
    unsafe {
        if libc::madvise(addr, length, libc::MADV_COLLAPSE) == 0 {
            return HugePageAdvice::Collapsed;
        }
        if libc::madvise(addr, length, libc::MADV_HUGEPAGE) == 0 {
            return HugePageAdvice::Marked;
        }
    }
    HugePageAdvice::Refused(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Returns the free memory of the heap to the kernel (glibc's `malloc_trim`), and whether any
/// was returned. Loading a large topology frees a hundred megabytes in small blocks among the
/// table's; glibc keeps them, so the appliance's resident memory would stay at its loading peak
/// and the next reload would add its own peak on top. Called by the control thread after a
/// load, never by a worker.
pub fn release_free_heap() -> bool {
    // SAFETY: malloc_trim only returns free heap pages to the kernel (madvise DONTNEED, or
    // shrinking the top of the heap); live allocations are untouched, and it takes the
    // allocator's own locks, so it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_regions_are_left_alone() {
        let small = vec![0u8; 4096];
        assert_eq!(
            advise_huge_pages(small.as_ptr(), small.len()),
            HugePageAdvice::TooSmall
        );
    }

    #[test]
    fn a_large_region_keeps_its_contents() {
        let table: Vec<u32> = (0..(3 << 20)).collect();
        let advice = advise_huge_pages(table.as_ptr().cast(), table.len() * 4);
        assert_ne!(advice, HugePageAdvice::TooSmall);
        assert!(table.iter().enumerate().all(|(i, &v)| v == i as u32));
    }
}
