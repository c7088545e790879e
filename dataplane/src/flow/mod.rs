//! Flow state shared between workers: the table the mappings of contract 7.2 to 7.5 live in
//! (any worker reads a mapping: replies arrive on any queue), as `docs/connections.md` sets
//! it out. (The pinned flows of 7.6 are each worker's own, in `crate::pins`.)
//!
//! - Exact keys of three words and values of two words, encoded by each use.
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

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use index::Index;
pub use index::{EntryRef, Probe, MAX_ENTRIES_PER_WORKER, MAX_WORKERS};
use wheel::Wheel;

pub type Key = [u64; 3];
pub type Value = [u64; 2];

/// The hash of a key, for [`FlowTable::probe`]: three rounds of multiply and fold, so that
/// the index takes its buckets and tag from all of the key's bits. One for every use.
#[inline]
pub fn hash_key(key: &Key) -> u64 {
    let mut h = key[0].wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = (h ^ key[1] ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ key[2] ^ (h >> 32)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// One cache line, so that the lookup that found its slot reads one line more (prefetched a
/// stage ahead by [`FlowTable::prefetch_entry`]), and the packet that found it refreshes its
/// clock in that same line: an established flow's packet reads no owner record.
#[repr(align(64))]
#[derive(Default)]
struct SharedEntry {
    /// Odd while the owner writes the key and value.
    version: AtomicU64,
    key: [AtomicU64; 3],
    value: [AtomicU64; 2],
    /// Set by any worker that sees the flow end from the other side (a TCP FIN or RST in a
    /// reply, which may reach any queue): the owner then expires the entry after its closing
    /// time. The only field a non-owner writes, and only once per flow.
    closing: AtomicU32,
    /// The owner's clock of the entry (outside the version: readers never look at it).
    /// Written at most once a second per flow, when the second changes, so that other cores
    /// reading the line lose it that rarely.
    last_seen: AtomicU32,
    /// The entry's [`Lifetime`], written by its owner.
    idle: AtomicU32,
    closing_time: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<SharedEntry>() == 64);

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
                records: vec![Record::default(); entries_per_worker].into_boxed_slice(),
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

    /// The arrays lookups read at random (the index and every worker's entries), for the
    /// caller to place on huge pages: at a million entries a lookup otherwise pays a
    /// page-table walk for each line it reads.
    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        std::iter::once(self.index.region())
            .chain(
                self.entries
                    .iter()
                    .map(|e| topology::MemoryRegion::of("flow entries", e)),
            )
            .collect()
    }

    #[inline]
    pub fn probe(&self, hash: u64) -> Probe {
        self.index.probe(hash)
    }

    #[inline]
    pub fn prefetch(&self, probe: Probe) {
        self.index.prefetch(probe);
    }

    /// Starts loading the entry the probe's tag points to in its first bucket (a key almost
    /// always has one candidate), or else the second bucket, once the first is in cache: the
    /// second stage of a burst's lookups, between [`FlowTable::prefetch`] and
    /// [`FlowTable::lookup`]. The entry holds the flow's clock too, so nothing else of an
    /// established flow's state is read.
    #[inline]
    pub fn prefetch_entry(&self, probe: Probe) {
        let Some(at) = self.index.locate(probe) else {
            return;
        };
        if let Some(entry) = self
            .entries
            .get(usize::from(at.worker))
            .and_then(|e| e.get(at.entry as usize))
        {
            prefetch_index::prefetch_index(std::slice::from_ref(entry), 0);
        }
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
                entry.key[2].load(Ordering::Relaxed),
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

    #[inline]
    fn entry(&self, at: EntryRef) -> &SharedEntry {
        &self.entries[usize::from(at.worker)][at.entry as usize]
    }

    fn write(&self, at: EntryRef, key: &Key, value: &Value) {
        let entry = self.entry(at);
        let version = entry.version.load(Ordering::Relaxed);
        entry.version.store(version + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, word) in entry.key.iter().zip(key) {
            slot.store(*word, Ordering::Relaxed);
        }
        for (slot, word) in entry.value.iter().zip(value) {
            slot.store(*word, Ordering::Relaxed);
        }
        entry.closing.store(0, Ordering::Relaxed);
        entry.version.store(version + 2, Ordering::Release);
    }

    /// Marks the entry at `at` as closing (see [`FlowOwner::expire`]), if it still holds
    /// `key`. A recycled entry is rechecked by its key, so a late mark reaches a new flow only
    /// if the entry was recycled between the check and the store: that flow then expires
    /// after its closing time of idleness, not its full timeout.
    pub fn mark_closing(&self, at: EntryRef, key: &Key) {
        let entry = self.entry(at);
        if entry.closing.load(Ordering::Relaxed) == 0 && self.read(at, key).is_some() {
            entry.closing.store(1, Ordering::Relaxed);
        }
    }

    fn is_closing(&self, at: EntryRef) -> bool {
        self.entry(at).closing.load(Ordering::Relaxed) != 0
    }
}

/// No partner entry.
const NO_PARTNER: u32 = u32::MAX;

/// How long an entry lives idle: `idle` seconds, or `closing` seconds once the flow has been
/// seen to end (by its owner through [`FlowOwner::set_closing`], or by any worker through
/// [`FlowTable::mark_closing`]). An entry that can close is visited at least every `closing`
/// seconds, so that a mark from another worker takes effect on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub idle: u32,
    pub closing: u32,
}

impl Lifetime {
    /// A lifetime that no mark shortens.
    pub fn fixed(idle: u32) -> Self {
        Self {
            idle,
            closing: idle,
        }
    }
}

/// What the owner alone keeps of one of its entries, beside the clock and lifetime it keeps
/// in the entry itself: what only creation, closing and expiry need.
#[derive(Debug, Clone, Copy)]
struct Record {
    hash: u64,
    /// A second entry that lives and dies with this one (a translated mapping's outbound
    /// key), or [`NO_PARTNER`]. Partners are never in the wheel.
    partner: u32,
    /// Whether the owner itself has seen the flow end.
    closed: bool,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            hash: 0,
            partner: NO_PARTNER,
            closed: false,
        }
    }
}

/// One worker's half of a flow table: its free entries, its records, its timer wheel.
/// Only that worker holds it (`&mut self`), so none of this is shared or atomic.
pub struct FlowOwner {
    worker: u8,
    free: Vec<u32>,
    records: Box<[Record]>,
    wheel: Wheel,
}

impl FlowOwner {
    pub fn worker(&self) -> u8 {
        self.worker
    }

    /// Entries in use (partners included).
    pub fn len(&self) -> usize {
        self.records.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// This owner's per-entry arrays, for placing on huge pages (see
    /// [`FlowTable::regions`]).
    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        let mut regions = vec![
            topology::MemoryRegion::of("flow records", &self.records),
            topology::MemoryRegion::of("flow free list", &self.free[..]),
        ];
        regions.extend(self.wheel.regions());
        regions
    }

    /// Free entries.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Creates the entry of `key` (whose hash is `hash`), due after `lifetime` of idleness
    /// from `now`. A key that has an entry keeps it: the caller gets that entry instead.
    pub fn insert(
        &mut self,
        table: &FlowTable,
        hash: u64,
        key: &Key,
        value: &Value,
        now: u32,
        lifetime: Lifetime,
    ) -> Result<EntryRef, Refused> {
        let at = self.publish(table, hash, key, value)?;
        let record = &mut self.records[at.entry as usize];
        record.closed = false;
        record.partner = NO_PARTNER;
        self.set_lifetime(table, at.entry, lifetime, now);
        self.wheel.link(
            at.entry,
            now.saturating_add(lifetime.idle.min(lifetime.closing)),
        );
        Ok(at)
    }

    /// Creates the entry of `key` as the partner of `primary` (one of this owner's entries,
    /// without a partner yet): it is removed when `primary` is, and has no clock of its own.
    pub fn insert_partner(
        &mut self,
        table: &FlowTable,
        primary: u32,
        hash: u64,
        key: &Key,
        value: &Value,
    ) -> Result<EntryRef, Refused> {
        debug_assert_eq!(self.records[primary as usize].partner, NO_PARTNER);
        let at = self.publish(table, hash, key, value)?;
        self.records[at.entry as usize].partner = NO_PARTNER;
        self.records[primary as usize].partner = at.entry;
        Ok(at)
    }

    /// Writes a free entry with `key` and `value` and adds it to the index.
    fn publish(
        &mut self,
        table: &FlowTable,
        hash: u64,
        key: &Key,
        value: &Value,
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
        let mut existing_value = None;
        let inserted = table.index.insert(table.probe(hash), at, |other| {
            existing_value = table.read(other, key);
            existing_value.is_some()
        });
        match inserted {
            Ok(()) => {
                self.free.pop();
                self.records[entry as usize].hash = hash;
                Ok(at)
            }
            Err(Some(other)) => Err(Refused::Exists(
                other,
                existing_value.expect("read when found"),
            )),
            Err(None) => Err(Refused::Full),
        }
    }

    /// Removes an entry that [`FlowOwner::insert`] just created and nothing else refers to
    /// yet (its partner could not be created): as if it had never been.
    pub fn remove_new(&mut self, table: &FlowTable, entry: u32) {
        self.wheel.unlink(entry);
        self.release(table, entry);
    }

    /// Gives one of this owner's entries a new value (readers see the old or the new, whole).
    pub fn rewrite(&mut self, table: &FlowTable, entry: u32, key: &Key, value: &Value) {
        table.write(
            EntryRef {
                worker: self.worker,
                entry,
            },
            key,
            value,
        );
    }

    /// One of this owner's entries, in the shared table.
    #[inline]
    fn own<'t>(&self, table: &'t FlowTable, entry: u32) -> &'t SharedEntry {
        table.entry(EntryRef {
            worker: self.worker,
            entry,
        })
    }

    /// The entry was used at `now`: its deadline moves on (found by the wheel when it visits).
    /// A store only when the second changed.
    #[inline]
    pub fn touch(&mut self, table: &FlowTable, entry: u32, now: u32) {
        let last_seen = &self.own(table, entry).last_seen;
        if last_seen.load(Ordering::Relaxed) != now {
            last_seen.store(now, Ordering::Relaxed);
        }
    }

    /// The owner has seen the flow end: the entry expires after its closing time from `now`.
    pub fn set_closing(&mut self, table: &FlowTable, entry: u32, now: u32) {
        self.touch(table, entry, now);
        let record = &mut self.records[entry as usize];
        if !record.closed {
            record.closed = true;
            let closing = self.lifetime(table, entry).closing;
            self.wheel.unlink(entry);
            self.wheel.link(entry, now.saturating_add(closing));
        }
    }

    #[inline]
    pub fn lifetime(&self, table: &FlowTable, entry: u32) -> Lifetime {
        let shared = self.own(table, entry);
        Lifetime {
            idle: shared.idle.load(Ordering::Relaxed),
            closing: shared.closing_time.load(Ordering::Relaxed),
        }
    }

    /// A new lifetime from `now` on (a TCP connection that was opening is established).
    pub fn set_lifetime(&mut self, table: &FlowTable, entry: u32, lifetime: Lifetime, now: u32) {
        let shared = self.own(table, entry);
        shared.last_seen.store(now, Ordering::Relaxed);
        shared.idle.store(lifetime.idle, Ordering::Relaxed);
        shared
            .closing_time
            .store(lifetime.closing, Ordering::Relaxed);
    }

    /// Whether the entry (one of this owner's, created by [`FlowOwner::insert`]) has been
    /// seen to end, by its owner or by another worker.
    pub fn is_closing(&self, table: &FlowTable, entry: u32) -> bool {
        self.records[entry as usize].closed
            || table.is_closing(EntryRef {
                worker: self.worker,
                entry,
            })
    }

    /// Removes the entries that have been idle for their lifetime by `now`, visiting at most
    /// `budget` due entries; returns how many flows (entries with their partners) were
    /// removed.
    pub fn expire(&mut self, table: &FlowTable, now: u32, budget: usize) -> usize {
        let mut due = Vec::new();
        self.expire_into(table, now, budget, &mut due);
        due.len()
    }

    /// [`FlowOwner::expire`] into a caller's buffer (cleared first), which receives the
    /// removed entries: no allocation once the buffer has grown.
    pub fn expire_into(&mut self, table: &FlowTable, now: u32, budget: usize, due: &mut Vec<u32>) {
        due.clear();
        let records = &self.records;
        let worker = self.worker;
        self.wheel.advance(now, budget, |entry| {
            let at = EntryRef { worker, entry };
            let shared = table.entry(at);
            let life = Lifetime {
                idle: shared.idle.load(Ordering::Relaxed),
                closing: shared.closing_time.load(Ordering::Relaxed),
            };
            let closing = records[entry as usize].closed || table.is_closing(at);
            let idle = if closing { life.closing } else { life.idle };
            let deadline = shared
                .last_seen
                .load(Ordering::Relaxed)
                .saturating_add(idle);
            if deadline > now {
                // Not due: back at its deadline, or sooner to look for a closing mark.
                let recheck = if closing {
                    deadline
                } else {
                    deadline.min(now.saturating_add(life.closing))
                };
                return Some(recheck);
            }
            due.push(entry);
            None
        });
        for &entry in due.iter() {
            let partner = self.records[entry as usize].partner;
            if partner != NO_PARTNER {
                self.release(table, partner);
            }
            self.release(table, entry);
        }
    }

    /// Takes the entry out of the index and back to the free list (its wheel link is gone).
    fn release(&mut self, table: &FlowTable, entry: u32) {
        let e = entry as usize;
        let at = EntryRef {
            worker: self.worker,
            entry,
        };
        table.index.remove(table.probe(self.records[e].hash), at);
        // Bumped so that a reader holding the old slot sees a changed version.
        table.write(at, &[0; 3], &[0; 2]);
        self.records[e].partner = NO_PARTNER;
        self.records[e].closed = false;
        self.free.push(entry);
    }
}

#[cfg(test)]
mod tests;
