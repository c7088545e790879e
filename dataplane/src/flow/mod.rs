//! Flow state: one table design for the state connections need (the mappings of contract
//! 7.2 to 7.5, the pinned flows of 7.6), as `docs/connections.md` sets it out.
//!
//! - Exact keys of two words and values of two words, encoded by each use.
//! - Any worker looks up any entry without a lock or a write ([`FlowTable::lookup`]), after a
//!   [`FlowTable::probe`] that can be prefetched a burst ahead.
//! - Each entry has one owner, the worker that created it ([`FlowOwner`]): only it writes
//!   the entry, links it in its timer wheel and removes it. Entries are preallocated per
//!   worker: the bound on entries is fixed at start, and nothing is allocated per packet.
//! - A full table refuses the new entry; a live entry is never evicted.
//! - Expiry visits only the wheel's due slots, a bounded number of entries per call.
//!
//! An entry's fields are atomics under a version (a seqlock): a reader on another core that
//! meets an entry being rewritten reads it again, and one that meets a recycled entry finds a
//! different key, which is a miss.

mod index;
mod wheel;

use std::sync::atomic::{fence, AtomicU64, Ordering};

use index::Index;
pub use index::{EntryRef, Probe, MAX_ENTRIES_PER_WORKER, MAX_WORKERS};
use wheel::Wheel;

pub type Key = [u64; 2];
pub type Value = [u64; 2];

#[derive(Default)]
struct SharedEntry {
    /// Odd while the owner writes the entry.
    version: AtomicU64,
    key: [AtomicU64; 2],
    value: [AtomicU64; 2],
}

/// The part of a flow table every worker reads.
pub struct FlowTable {
    index: Index,
    entries: Box<[Box<[SharedEntry]>]>,
}

/// Why an entry was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every entry of this worker is in use (or, rarer, both index buckets of the key are
    /// full): the caller counts it, and evicts nothing.
    Full,
    /// The key has an entry already (another worker may have created it first).
    Exists(EntryRef, Value),
}

impl FlowTable {
    /// A table of `entries_per_worker` entries for each of `workers` workers, and each
    /// worker's owner half. `now` is the workers' clock in seconds.
    pub fn new(workers: usize, entries_per_worker: usize, now: u32) -> (Self, Vec<FlowOwner>) {
        assert!(
            (1..=MAX_WORKERS).contains(&workers),
            "1 to {MAX_WORKERS} workers"
        );
        assert!(
            entries_per_worker < MAX_ENTRIES_PER_WORKER,
            "entries fit 26 bits"
        );
        let table = Self {
            index: Index::new(workers * entries_per_worker),
            entries: (0..workers)
                .map(|_| {
                    (0..entries_per_worker)
                        .map(|_| SharedEntry::default())
                        .collect()
                })
                .collect(),
        };
        let owners = (0..workers)
            .map(|w| FlowOwner {
                worker: w as u8,
                free: (0..entries_per_worker as u32).rev().collect(),
                hashes: vec![0; entries_per_worker].into_boxed_slice(),
                last_seen: vec![0; entries_per_worker].into_boxed_slice(),
                timeout: vec![0; entries_per_worker].into_boxed_slice(),
                wheel: Wheel::new(entries_per_worker, now),
            })
            .collect();
        (table, owners)
    }

    /// Bytes of the shared part (the index and the entries).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self
                .entries
                .iter()
                .map(|e| std::mem::size_of_val(&e[..]))
                .sum::<usize>()
    }

    #[inline]
    pub fn probe(&self, hash: u64) -> Probe {
        self.index.probe(hash)
    }

    #[inline]
    pub fn prefetch(&self, probe: Probe) {
        self.index.prefetch(probe);
    }

    /// The entry of `key`, if there is one. No lock, no write.
    #[inline]
    pub fn lookup(&self, probe: Probe, key: &Key) -> Option<(EntryRef, Value)> {
        let mut found = None;
        self.index.candidates(probe, |at| {
            found = self.read(at, key).map(|value| (at, value));
            found.is_some()
        });
        found
    }

    /// The value of the entry at `at` if it holds `key`, read consistently.
    fn read(&self, at: EntryRef, key: &Key) -> Option<Value> {
        let entry = &self.entries[usize::from(at.worker)][at.entry as usize];
        for _ in 0..4 {
            let before = entry.version.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let k = [
                entry.key[0].load(Ordering::Relaxed),
                entry.key[1].load(Ordering::Relaxed),
            ];
            let v = [
                entry.value[0].load(Ordering::Relaxed),
                entry.value[1].load(Ordering::Relaxed),
            ];
            fence(Ordering::Acquire);
            if entry.version.load(Ordering::Relaxed) == before {
                return (k == *key).then_some(v);
            }
        }
        // Rewritten under us again and again: the owner is replacing it; treat as absent.
        None
    }

    fn write(&self, at: EntryRef, key: &Key, value: &Value) {
        let entry = &self.entries[usize::from(at.worker)][at.entry as usize];
        let version = entry.version.load(Ordering::Relaxed);
        entry.version.store(version + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, word) in entry.key.iter().zip(key) {
            slot.store(*word, Ordering::Relaxed);
        }
        for (slot, word) in entry.value.iter().zip(value) {
            slot.store(*word, Ordering::Relaxed);
        }
        entry.version.store(version + 2, Ordering::Release);
    }
}

/// One worker's half of a flow table: its free entries, its clock marks, its timer wheel.
/// Only that worker holds it (`&mut self`), so none of this is shared or atomic.
pub struct FlowOwner {
    worker: u8,
    free: Vec<u32>,
    hashes: Box<[u64]>,
    last_seen: Box<[u32]>,
    timeout: Box<[u32]>,
    wheel: Wheel,
}

impl FlowOwner {
    pub fn worker(&self) -> u8 {
        self.worker
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.hashes.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.hashes.len()
    }

    /// Creates the entry of `key` (whose hash is `hash`), due `timeout` seconds after its
    /// last use. A key that has an entry keeps it: the caller gets that entry instead.
    pub fn insert(
        &mut self,
        table: &FlowTable,
        hash: u64,
        key: &Key,
        value: &Value,
        now: u32,
        timeout: u32,
    ) -> Result<EntryRef, Refused> {
        let Some(&entry) = self.free.last() else {
            return match table.lookup(table.probe(hash), key) {
                Some((at, v)) => Err(Refused::Exists(at, v)),
                None => Err(Refused::Full),
            };
        };
        let at = EntryRef {
            worker: self.worker,
            entry,
        };
        // Written before it is published, so a reader that finds the slot finds the key.
        table.write(at, key, value);
        let probe = table.probe(hash);
        let mut existing_value = None;
        let inserted = table.index.insert(probe, at, |other| {
            existing_value = table.read(other, key);
            existing_value.is_some()
        });
        match inserted {
            Ok(()) => {
                self.free.pop();
                let e = entry as usize;
                self.hashes[e] = hash;
                self.last_seen[e] = now;
                self.timeout[e] = timeout;
                self.wheel.link(entry, now.saturating_add(timeout));
                Ok(at)
            }
            Err(Some(other)) => Err(Refused::Exists(
                other,
                existing_value.expect("read when found"),
            )),
            Err(None) => Err(Refused::Full),
        }
    }

    /// The entry was used at `now`: its deadline moves on (found by the wheel when it visits).
    #[inline]
    pub fn touch(&mut self, entry: u32, now: u32) {
        self.last_seen[entry as usize] = now;
    }

    /// A new timeout from `now` on (a TCP connection that has seen FIN or RST: the transitory
    /// time), relinked in the wheel at once since it may be sooner.
    pub fn set_timeout(&mut self, entry: u32, timeout: u32, now: u32) {
        let e = entry as usize;
        self.last_seen[e] = now;
        self.timeout[e] = timeout;
        self.wheel.unlink(entry);
        self.wheel.link(entry, now.saturating_add(timeout));
    }

    /// Removes the entries that have been idle for their timeout by `now`, visiting at most
    /// `budget` due entries; returns how many were removed.
    pub fn expire(&mut self, table: &FlowTable, now: u32, budget: usize) -> usize {
        let mut removed = 0;
        let (hashes, last_seen, timeout, free) =
            (&self.hashes, &self.last_seen, &self.timeout, &mut self.free);
        let worker = self.worker;
        self.wheel.advance(now, budget, |entry| {
            let e = entry as usize;
            let deadline = last_seen[e].saturating_add(timeout[e]);
            if deadline > now {
                return Some(deadline);
            }
            let at = EntryRef { worker, entry };
            table.index.remove(table.probe(hashes[e]), at);
            // Bumped so that a reader holding the old slot sees a changed version.
            table.write(at, &[0, 0], &[0, 0]);
            free.push(entry);
            removed += 1;
            None
        });
        removed
    }
}

#[cfg(test)]
mod tests;
