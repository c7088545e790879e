//! The connection table: which fleet server sent us each flow we egress for it, so that the
//! origin's replies (arriving here, where the address is held) go back to that server.
//!
//! Shared by every worker (RSS sends a reply to any queue), lock-free, fixed size: each
//! 64-byte bucket holds eight entries of `tag (32 bits) | underlay (32 bits)` in relaxed
//! atomics. A worker writes only when a flow is new or changed sender, so an established flow
//! costs one read per packet and no shared write. When a bucket is full, an entry chosen by
//! the new tag is replaced: old flows fade out without timers. A lost or colliding entry can
//! only send a reply to the host port, or (1 in 2^32 per bucket collision) to another fleet
//! server, which forwards it on by its own table.

use std::sync::atomic::{AtomicU64, Ordering};

use prefetch_index::prefetch_index;

const WAYS: usize = 8;

#[derive(Debug)]
pub struct ConnTable {
    slots: Box<[AtomicU64]>,
    bucket_mask: usize,
}

#[inline]
fn tag_of(flow_hash: u64) -> u64 {
    // Never zero, so that 0 can mean "empty".
    (flow_hash >> 32) | 1
}

impl ConnTable {
    /// A table of about `entries` entries (rounded up to a power of two, at least one bucket).
    pub fn new(entries: usize) -> Self {
        let buckets = (entries / WAYS).max(1).next_power_of_two();
        Self {
            slots: (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect(),
            bucket_mask: buckets - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The array every decapsulated flow and reply reads a bucket of.
    pub fn region(&self) -> topology::MemoryRegion {
        topology::MemoryRegion::of("connection table", &self.slots)
    }

    #[inline]
    fn bucket(&self, flow_hash: u64) -> &[AtomicU64] {
        let base = (flow_hash as usize & self.bucket_mask) * WAYS;
        &self.slots[base..base + WAYS]
    }

    /// Remembers that the flow with this hash came from `underlay`. Returns true when it
    /// wrote (a new flow, or a flow whose sender changed).
    #[inline]
    pub fn record(&self, flow_hash: u64, underlay: u32) -> bool {
        let tag = tag_of(flow_hash);
        let entry = (tag << 32) | u64::from(underlay);
        let bucket = self.bucket(flow_hash);
        let mut free = None;
        for slot in bucket {
            let current = slot.load(Ordering::Relaxed);
            if current >> 32 == tag {
                if current == entry {
                    return false;
                }
                slot.store(entry, Ordering::Relaxed);
                return true;
            }
            if current == 0 && free.is_none() {
                free = Some(slot);
            }
        }
        let victim = free.unwrap_or(&bucket[(tag as usize >> 1) % WAYS]);
        victim.store(entry, Ordering::Relaxed);
        true
    }

    /// Starts loading the flow's bucket ahead of [`ConnTable::record`] or
    /// [`ConnTable::lookup`], so that a burst's misses overlap.
    #[inline]
    pub fn prefetch(&self, flow_hash: u64) {
        prefetch_index(&self.slots, (flow_hash as usize & self.bucket_mask) * WAYS);
    }

    /// The underlay address the flow with this hash came from, if remembered.
    #[inline]
    pub fn lookup(&self, flow_hash: u64) -> Option<u32> {
        let tag = tag_of(flow_hash);
        self.bucket(flow_hash)
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .find(|e| e >> 32 == tag)
            .map(|e| e as u32)
    }

    /// Entries in use (for metrics; walks the whole table).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_updates_and_forgets_gracefully() {
        let t = ConnTable::new(64);
        assert_eq!(t.capacity(), 64);
        assert!(t.record(0xdead_beef_0000_0001, 0x0a00_0001));
        assert!(
            !t.record(0xdead_beef_0000_0001, 0x0a00_0001),
            "same flow, same sender: no write"
        );
        assert_eq!(t.lookup(0xdead_beef_0000_0001), Some(0x0a00_0001));
        assert!(
            t.record(0xdead_beef_0000_0001, 0x0a00_0002),
            "sender changed"
        );
        assert_eq!(t.lookup(0xdead_beef_0000_0001), Some(0x0a00_0002));
        assert_eq!(t.lookup(0x1234_5678_0000_0001), None);
        // Overfill one bucket: the table keeps working, holding at most WAYS of them.
        for i in 0..100u64 {
            t.record((i << 40) | 1, i as u32);
        }
        let remembered = (0..100u64)
            .filter(|i| t.lookup((i << 40) | 1) == Some(*i as u32))
            .count();
        assert!(remembered > 0 && remembered <= WAYS, "{remembered}");
        assert!(t.len() <= t.capacity());
    }
}
