//! The shared index of a flow table: where each key's entry is, found without a lock.
//!
//! A fixed array of 64-byte buckets of seven slots and a flag word. A key may live in either
//! of two buckets, chosen by two parts of its hash: the first while it has room, else the
//! second. The index has twice as many slots as entries can exist, so a key finds a free slot
//! in one of its two buckets but in the rarest case (then the insert fails as the table being
//! full would), and most keys are in their first bucket: one line to read. A slot is
//! `tag:32 | worker:6 | entry:26`, 0 when free; a tag is never 0.
//!
//! Readers load slots (`Acquire`) and never write. Inserting and deleting take the flag of
//! both buckets (a compare-and-swap each, in bucket order, so two writers never wait on each
//! other in a cycle): that is a few nanoseconds per new or ended flow, never per packet of an
//! established one.

use std::sync::atomic::{AtomicU64, Ordering};

pub const SLOTS_PER_BUCKET: usize = 7;
/// Entries per worker are numbered in 26 bits, workers in 6.
pub const MAX_ENTRIES_PER_WORKER: usize = 1 << 26;
pub const MAX_WORKERS: usize = 1 << 6;

#[repr(align(64))]
#[derive(Default)]
struct Bucket {
    slots: [AtomicU64; SLOTS_PER_BUCKET],
    flag: AtomicU64,
}

/// Where an entry is: its owner worker and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryRef {
    pub worker: u8,
    pub entry: u32,
}

pub struct Index {
    buckets: Box<[Bucket]>,
    mask: usize,
}

/// The two buckets and the tag of a key's hash, computed once per packet (the probe) and
/// used to prefetch, then to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    first: usize,
    second: usize,
    tag: u32,
}

impl Index {
    /// An index for at least `entries` entries, at half load.
    pub fn new(entries: usize) -> Self {
        let buckets = (2 * entries)
            .div_ceil(SLOTS_PER_BUCKET)
            .next_power_of_two()
            .max(2);
        Self {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            mask: buckets - 1,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&self.buckets[..])
    }

    pub fn region(&self) -> topology::MemoryRegion {
        topology::MemoryRegion::of("flow index", &self.buckets)
    }

    #[inline]
    pub fn probe(&self, hash: u64) -> Probe {
        let first = (hash as usize) & self.mask;
        // Another part of the hash; never the first bucket again.
        let mut second = ((hash >> 20) as usize ^ (hash >> 44) as usize) & self.mask;
        if second == first {
            second = first ^ 1;
        }
        Probe {
            first,
            second,
            tag: ((hash >> 32) as u32) | 1,
        }
    }

    /// Starts loading the probe's first bucket, a burst ahead of [`Index::candidates`]:
    /// inserts fill the first bucket before the second, so most keys are found there with
    /// one line read (see [`Index::locate`] for the second).
    #[inline]
    pub fn prefetch(&self, probe: Probe) {
        prefetch_index::prefetch_index(&self.buckets, probe.first);
    }

    /// The second stage of a prefetched lookup: the first entry of the probe's first bucket
    /// that carries its tag, or, when there is none, starts loading the second bucket (where
    /// the key is if its first bucket was full when it came, and which a miss reads).
    #[inline]
    pub fn locate(&self, probe: Probe) -> Option<EntryRef> {
        for slot in &self.buckets[probe.first].slots {
            let value = slot.load(Ordering::Acquire);
            if value != 0 && (value >> 32) as u32 == probe.tag {
                return Some(decode(value));
            }
        }
        prefetch_index::prefetch_index(&self.buckets, probe.second);
        None
    }

    /// Every entry whose slot carries the probe's tag, for the caller to compare keys.
    #[inline]
    pub fn candidates(&self, probe: Probe, mut found: impl FnMut(EntryRef) -> bool) -> bool {
        for bucket in [probe.first, probe.second] {
            for slot in &self.buckets[bucket].slots {
                let value = slot.load(Ordering::Acquire);
                if value != 0 && (value >> 32) as u32 == probe.tag && found(decode(value)) {
                    return true;
                }
            }
        }
        false
    }

    /// Runs `write` with both of the probe's buckets held against other writers.
    fn with_buckets<T>(&self, probe: Probe, write: impl FnOnce(&Self) -> T) -> T {
        let (low, high) = if probe.first < probe.second {
            (probe.first, probe.second)
        } else {
            (probe.second, probe.first)
        };
        for bucket in [low, high] {
            let flag = &self.buckets[bucket].flag;
            while flag
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
        }
        let result = write(self);
        for bucket in [high, low] {
            self.buckets[bucket].flag.store(0, Ordering::Release);
        }
        result
    }

    /// Adds `entry` for the probe's key unless `present` finds the key already there (then
    /// returns that entry); `Err(None)` when both buckets are full.
    pub fn insert(
        &self,
        probe: Probe,
        entry: EntryRef,
        present: impl FnMut(EntryRef) -> bool,
    ) -> Result<(), Option<EntryRef>> {
        self.with_buckets(probe, |index| {
            let mut present = present;
            let mut existing = None;
            index.candidates(probe, |e| {
                let hit = present(e);
                if hit {
                    existing = Some(e);
                }
                hit
            });
            if let Some(e) = existing {
                return Err(Some(e));
            }
            // The first bucket while it has room: a lookup then reads one line for most keys
            // (at the index's half load, a bucket of seven slots overflows for a few keys in
            // a hundred), and the second holds the overflow.
            for bucket in [probe.first, probe.second] {
                for slot in &index.buckets[bucket].slots {
                    if slot.load(Ordering::Relaxed) == 0 {
                        slot.store(encode(probe.tag, entry), Ordering::Release);
                        return Ok(());
                    }
                }
            }
            Err(None)
        })
    }

    /// Removes the slot of `entry`; whether it was there.
    pub fn remove(&self, probe: Probe, entry: EntryRef) -> bool {
        self.with_buckets(probe, |index| {
            let wanted = encode(probe.tag, entry);
            for bucket in [probe.first, probe.second] {
                for slot in &index.buckets[bucket].slots {
                    if slot.load(Ordering::Relaxed) == wanted {
                        slot.store(0, Ordering::Release);
                        return true;
                    }
                }
            }
            false
        })
    }
}

fn encode(tag: u32, entry: EntryRef) -> u64 {
    (u64::from(tag) << 32) | (u64::from(entry.worker) << 26) | u64::from(entry.entry)
}

fn decode(slot: u64) -> EntryRef {
    EntryRef {
        worker: ((slot >> 26) & 0x3f) as u8,
        entry: (slot & 0x3ff_ffff) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_tags_are_never_zero() {
        let e = EntryRef {
            worker: 63,
            entry: (1 << 26) - 1,
        };
        assert_eq!(decode(encode(1, e)), e);
        let index = Index::new(100);
        assert_eq!(index.probe(0).tag & 1, 1);
        let p = index.probe(0x1234_5678_9abc_def0);
        assert_ne!(p.first, p.second);
    }

    #[test]
    fn a_key_is_inserted_once_and_removed() {
        let index = Index::new(16);
        let probe = index.probe(42);
        let e = EntryRef {
            worker: 1,
            entry: 7,
        };
        assert_eq!(index.insert(probe, e, |_| false), Ok(()));
        assert_eq!(
            index.insert(
                probe,
                EntryRef {
                    worker: 2,
                    entry: 1
                },
                |x| x == e
            ),
            Err(Some(e))
        );
        let mut seen = Vec::new();
        index.candidates(probe, |x| {
            seen.push(x);
            false
        });
        assert_eq!(seen, vec![e]);
        assert!(index.remove(probe, e));
        assert!(!index.remove(probe, e));
        assert!(!index.candidates(probe, |_| true));
    }
}
