//! Pinned flows (contract 7.6): a flow this server forwards from its host (TCP, UDP, or ICMP
//! echo by its identifier) keeps the target its first packet was given, across any number
//! of table swaps, until it expires (idle, or after FIN or RST), as long as that target is
//! still a holder of the egress address (drained or not). A flow whose target left the pool
//! is decided again by the current table, and counted. The pipeline reads a pin instead of
//! the table's target: [`PinOwner::target`] asks the table only for a new flow or a pin
//! whose target left.
//!
//! Only packets from the host port are pinned: internet traffic creates no pin. Each worker
//! keeps its own pins: the host port's RSS hashes a flow's addresses (and ports) to one queue
//! for the flow's life, so the worker that pinned a flow sees all of its packets, and a pin
//! needs no sharing. Its table is open addressing over slots of 32 bytes, two to a cache line,
//! a key's home being the first slot of a line: the pin of an established flow is found, with
//! its target and its clock, in the one line the burst prefetched (at a quarter load, 97 keys
//! in 100 are in their home line; linear probing goes on into the next). Other workers read
//! a worker's pins only for contract 7.5.1 (a reply a peer returns for a flow of this host,
//! on any queue: [`PinTable::contains`]), without a lock, retrying if the owner was moving
//! slots meanwhile.
//!
//! A pin records its target by underlay, which every table agrees on, and the epoch of the
//! table that last checked it: while that table is in use, the pin is used without a check.
//! A pin idle past its lifetime is gone for its flow from that moment (a lookup that meets it
//! removes it); [`PinOwner::expire`] sweeps the rest, a bounded number of slots a call, so
//! that their slots come back.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use topology::{FlowKey, ForwardingTable, ServerId};

use crate::timeouts::{LifetimeChange, Timeouts};

/// One pin: 32 bytes, two to a line. Words, all written by the owner worker only:
/// 0: source << 32 | destination; 1: [`USED`], [`CLOSING`], the target's server id (bits 40
/// to 55: a topology has at most [`topology::parse::MAX_SERVERS`]), protocol (32 to 39),
/// source port (16 to 31), destination port (0 to 15); 2: the target's underlay << 32 | the
/// epoch of the table that last checked it; 3: the pin's clock ([`clock`]: last seen, and
/// the idle lifetime in force). Empty: word 1 is 0.
#[repr(align(32))]
#[derive(Default)]
struct Slot([AtomicU64; 4]);

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

impl Slot {
    /// Word 1: used, closing, target, key ports and protocol.
    #[inline]
    fn ports(&self) -> u64 {
        self.0[1].load(Ordering::Relaxed)
    }

    /// Word 2: the target's underlay << 32 | the epoch of the table that last checked it.
    #[inline]
    fn checked_by(&self) -> u64 {
        self.0[2].load(Ordering::Relaxed)
    }

    /// Word 3: [`clock`].
    #[inline]
    fn clock(&self) -> u64 {
        self.0[3].load(Ordering::Relaxed)
    }
}

const USED: u64 = 1 << 63;
/// A FIN or RST was seen: the pin lives the transitory time from its last packet, whatever
/// comes after.
const CLOSING: u64 = 1 << 62;
const SERVER_SHIFT: u32 = 40;
const KEY_BITS: u64 = USED | 0xff_ffff_ffff;
/// How long a reader waits for an owner's removal to end (a removal moves a few slots, well
/// under a microsecond) before reading the table as it stands, its owner stopped.
const MOVE_SPINS: u32 = 2_000;

/// A pin's key in its two words, as the slot holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PinKey {
    addresses: u64,
    ports: u64,
}

impl PinKey {
    fn of(flow: &FlowKey) -> Self {
        Self {
            addresses: u64::from(flow.src) << 32 | u64::from(flow.dst),
            ports: USED
                | u64::from(flow.proto) << 32
                | u64::from(flow.sport) << 16
                | u64::from(flow.dport),
        }
    }

    /// The flow the key was made of.
    fn flow(self) -> FlowKey {
        FlowKey {
            src: (self.addresses >> 32) as u32,
            dst: self.addresses as u32,
            proto: (self.ports >> 32) as u8,
            sport: (self.ports >> 16) as u16,
            dport: self.ports as u16,
        }
    }
}

/// Where a pin's lookup reads: the owner's table and the key's home slot, from the flow's
/// fleet-wide hash (which the table's decision has computed already), a stage ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinProbe {
    worker: u16,
    home: u32,
}

/// What a pin did for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// The flow's pin, still valid: its target.
    Kept(ServerId),
    /// A new flow, pinned to the table's decision, `target`; `replaced_expired` when the
    /// flow's previous pin had expired (counted as expired too).
    Created {
        target: ServerId,
        replaced_expired: bool,
    },
    /// The pinned target is no longer a holder: the table's decision, pinned instead.
    Redecided(ServerId),
    /// No room for a new pin: the flow is refused (`connections_full`), nothing evicted.
    Full,
}

/// One worker's pins, as every worker may read them.
struct WorkerPins {
    slots: Box<[Slot]>,
    mask: usize,
    /// Odd while the owner moves slots (the backward shift of a removal).
    moving: AtomicU64,
}

impl WorkerPins {
    fn new(capacity: usize) -> Self {
        // At most a quarter full: a key is then outside its home line for 3 keys in 100 (12
        // at half load, each a second miss no stage prefetched), and a probe ends soon.
        let slots = (4 * capacity).next_power_of_two().max(4);
        Self {
            slots: (0..slots).map(|_| Slot::default()).collect(),
            mask: slots - 1,
            moving: AtomicU64::new(0),
        }
    }

    /// The first slot of the line a flow's hash picks. Not the hash's low bits, which the
    /// table's rendezvous bucket takes: flows to one target would crowd some homes.
    #[inline]
    fn home(&self, flow_hash: u64) -> usize {
        ((flow_hash >> 16) as usize & self.mask) & !1
    }

    /// The slot holding `key`, or the empty slot its probe ended at.
    #[inline]
    fn find(&self, key: PinKey, home: usize) -> Result<usize, usize> {
        let mut i = home;
        loop {
            let words = &self.slots[i].0;
            let ports = words[1].load(Ordering::Acquire);
            if ports == 0 {
                return Err(i);
            }
            if ports & KEY_BITS == key.ports && words[0].load(Ordering::Relaxed) == key.addresses {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn region(&self) -> topology::MemoryRegion {
        topology::MemoryRegion::of("pins", &self.slots)
    }
}

/// Every worker's pins.
pub struct PinTable {
    workers: Box<[WorkerPins]>,
}

/// One worker's hold on its pins: only it writes them.
pub struct PinOwner {
    worker: u16,
    len: usize,
    capacity: usize,
    /// Where the sweep of [`PinOwner::expire`] goes on.
    cursor: usize,
    timeouts: Timeouts,
}

/// Whether a pin last seen at `last_seen` with `idle` seconds to live is gone at `now`. A
/// `now` before `last_seen` is another worker's clock a moment behind the owner's (each reads
/// the TSC once a round): not expired.
#[inline]
fn expired(last_seen: u32, idle: u32, now: u32) -> bool {
    now > last_seen && now - last_seen >= idle
}

/// A pin's clock word: last seen (the workers' clock) << 32 | the idle lifetime in force.
/// Owner and readers judge a pin's life by this word alone.
#[inline]
fn clock(last_seen: u32, idle: u32) -> u64 {
    u64::from(last_seen) << 32 | u64::from(idle)
}

#[inline]
fn clock_expired(clock: u64, now: u32) -> bool {
    expired((clock >> 32) as u32, clock as u32, now)
}

impl PinTable {
    /// `entries` pins in all, divided between `workers`.
    pub fn new(workers: usize, entries: usize, timeouts: Timeouts) -> (Self, Vec<PinOwner>) {
        let capacity = entries.div_ceil(workers.max(1)).max(1);
        let table = Self {
            workers: (0..workers).map(|_| WorkerPins::new(capacity)).collect(),
        };
        let owners = (0..workers)
            .map(|w| PinOwner {
                worker: w as u16,
                len: 0,
                capacity,
                cursor: 0,
                timeouts,
            })
            .collect();
        (table, owners)
    }

    /// Where `worker`'s pin of a flow is looked up: `flow_hash` is the [`FlowKey::hash`] of
    /// the pin's key.
    #[inline]
    pub fn probe(&self, worker: u16, flow_hash: u64) -> PinProbe {
        let home = self.workers[usize::from(worker)].home(flow_hash);
        PinProbe {
            worker,
            home: home as u32,
        }
    }

    /// Starts loading the probe's line, which holds the pin of an established flow whole.
    #[inline]
    pub fn prefetch(&self, probe: PinProbe) {
        if let Some(pins) = self.workers.get(usize::from(probe.worker)) {
            prefetch_index::prefetch_index(&pins.slots, probe.home as usize);
        }
    }

    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        self.workers.iter().map(WorkerPins::region).collect()
    }

    /// Whether the host's flow `flow` is pinned here, by any worker, at `now`: a reply a peer
    /// returns for it is this server's host's even when this server holds the address (7.5.1:
    /// it took the address on, or is a drained holder, after the flow was pinned elsewhere).
    pub fn contains(&self, flow: &FlowKey, now: u32) -> bool {
        let key = PinKey::of(flow);
        let flow_hash = flow.hash();
        self.workers.iter().any(|pins| {
            let home = pins.home(flow_hash);
            let live = || {
                pins.find(key, home)
                    .ok()
                    .is_some_and(|i| !clock_expired(pins.slots[i].clock(), now))
            };
            // A removal moving slots meanwhile could hide the key: read again after it.
            for _ in 0..MOVE_SPINS {
                let before = pins.moving.load(Ordering::Acquire);
                if before & 1 == 1 {
                    std::hint::spin_loop();
                    continue;
                }
                let found = live();
                fence(Ordering::Acquire);
                if pins.moving.load(Ordering::Relaxed) == before {
                    return found;
                }
            }
            // The owner stopped mid-removal (preempted): while it stays stopped, every live
            // pin is still on its probe path (a moved pin is in its old slot until the next
            // move overwrites it), so reading the table as it stands is right.
            live()
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.workers
            .iter()
            .map(|w| std::mem::size_of_val(&w.slots[..]))
            .sum()
    }
}

impl PinOwner {
    pub fn worker(&self) -> u16 {
        self.worker
    }

    fn own<'t>(&self, pins: &'t PinTable) -> &'t WorkerPins {
        &pins.workers[usize::from(self.worker)]
    }

    /// The target of a packet of `flow`, whose pin `probe` locates: the pinned one while it
    /// holds the address, else what `table` decides (`decide`, pinned now). `decide` is called
    /// only then: an established flow pinned under this table reads no more than its pin.
    /// `tcp_flags` are a TCP segment's flags.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn target(
        &mut self,
        pins: &PinTable,
        table: &ForwardingTable,
        probe: PinProbe,
        flow: &FlowKey,
        decide: impl FnOnce() -> ServerId,
        tcp_flags: Option<u8>,
        now: u32,
    ) -> Pinned {
        debug_assert_eq!(probe.worker, self.worker, "a worker reads its own pins");
        let key = PinKey::of(flow);
        let own = self.own(pins);
        let home = probe.home as usize;
        let mut replaced_expired = false;
        let empty = match own.find(key, home) {
            Ok(at) => {
                // Each word read once: an established flow's packet is this and the clock's
                // store, once a second.
                let slot = &own.slots[at];
                let (ports, clock) = (slot.ports(), slot.clock());
                if !clock_expired(clock, now) {
                    self.refresh(slot, ports, clock, flow.proto, tcp_flags, now);
                    return checked(slot, ports, table, flow, decide);
                }
                self.remove(pins, at);
                replaced_expired = true;
                // Removed: the probe ends elsewhere now.
                match own.find(key, home) {
                    Ok(_) => unreachable!("a key is in its table once"),
                    Err(empty) => empty,
                }
            }
            Err(empty) => empty,
        };
        if self.len >= self.capacity {
            return Pinned::Full;
        }
        let decided = decide();
        let lifetime = self.timeouts.lifetime(flow.proto, tcp_flags);
        self.write(
            pins,
            empty,
            key,
            decided,
            table.underlay_of(decided),
            table.epoch(),
            (now, lifetime.idle),
        );
        self.len += 1;
        Pinned::Created {
            target: decided,
            replaced_expired,
        }
    }

    /// Whether the pin at `at` is still live at `now`; else removes it.
    fn live(&mut self, pins: &PinTable, at: usize, now: u32) -> bool {
        if clock_expired(self.own(pins).slots[at].clock(), now) {
            self.remove(pins, at);
            return false;
        }
        true
    }

    /// A packet of the pin in `slot` (its word 1 `ports`, its clock `old`) at `now`: one rule
    /// with the mappings ([`Timeouts::change`]).
    #[inline]
    fn refresh(
        &self,
        slot: &Slot,
        ports: u64,
        old: u64,
        proto: u8,
        tcp_flags: Option<u8>,
        now: u32,
    ) {
        let idle = old as u32;
        let idle = match self.timeouts.change(proto, tcp_flags, idle) {
            _ if ports & CLOSING != 0 => idle,
            LifetimeChange::None => idle,
            LifetimeChange::Close => {
                slot.0[1].store(ports | CLOSING, Ordering::Release);
                self.timeouts.tcp_transitory
            }
            LifetimeChange::Establish(lifetime) => lifetime.idle,
        };
        // Stored only when it changes: at most once a second for an established flow.
        let new = clock(now, idle);
        if new != old {
            slot.0[3].store(new, Ordering::Relaxed);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        pins: &PinTable,
        at: usize,
        key: PinKey,
        server: ServerId,
        underlay: u32,
        epoch: u32,
        (now, idle): (u32, u32),
    ) {
        let words = &self.own(pins).slots[at].0;
        words[0].store(key.addresses, Ordering::Relaxed);
        words[2].store(
            u64::from(underlay) << 32 | u64::from(epoch),
            Ordering::Relaxed,
        );
        words[3].store(clock(now, idle), Ordering::Relaxed);
        // Published last: a reader that sees the slot used sees the rest.
        words[1].store(
            key.ports | u64::from(server.0) << SERVER_SHIFT,
            Ordering::Release,
        );
    }

    /// Removes the pin at `at`, moving back the pins after it whose probe passed it (Knuth's
    /// deletion for linear probing: no tombstones, probes stay short).
    fn remove(&mut self, pins: &PinTable, at: usize) {
        let own = self.own(pins);
        own.moving.fetch_add(1, Ordering::Acquire);
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & own.mask;
            let words = &own.slots[next].0;
            let ports = words[1].load(Ordering::Relaxed);
            if ports == 0 {
                break;
            }
            let key = PinKey {
                addresses: words[0].load(Ordering::Relaxed),
                ports: ports & KEY_BITS,
            };
            let home = own.home(key.flow().hash());
            // Stays unless its home is cyclically outside (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if stays {
                continue;
            }
            let target = &own.slots[hole].0;
            for w in [0, 2, 3, 1] {
                target[w].store(words[w].load(Ordering::Relaxed), Ordering::Relaxed);
            }
            hole = next;
        }
        own.slots[hole].0[1].store(0, Ordering::Relaxed);
        own.moving.fetch_add(1, Ordering::Release);
        self.len -= 1;
    }

    /// The target another holder of `flow`'s address still carries it to, if the flow was
    /// pinned before this server took the address on (a pin, with a target that still holds
    /// the address, other than this server). Creates nothing.
    pub fn pinned_elsewhere(
        &mut self,
        pins: &PinTable,
        table: &ForwardingTable,
        flow: &FlowKey,
        tcp_flags: Option<u8>,
        now: u32,
    ) -> Option<ServerId> {
        let key = PinKey::of(flow);
        let own = self.own(pins);
        let at = own.find(key, own.home(flow.hash())).ok()?;
        if !self.live(pins, at, now) {
            return None;
        }
        let slot = &own.slots[at];
        let underlay = (slot.checked_by() >> 32) as u32;
        let target = table
            .holder_of(flow.src, underlay)
            .filter(|&t| t != table.me())?;
        self.refresh(slot, slot.ports(), slot.clock(), flow.proto, tcp_flags, now);
        Some(target)
    }

    /// Sweeps the table for pins idle past their time, removing them, `budget` steps a call
    /// (a step visits a slot, or removes a pin); returns how many were removed.
    pub fn expire(&mut self, pins: &PinTable, now: u32, budget: usize) -> usize {
        if self.len == 0 {
            return 0;
        }
        let mask = self.own(pins).mask;
        let mut removed = 0;
        for _ in 0..budget {
            let at = self.cursor;
            let used = self.own(pins).slots[at].ports() != 0;
            if used && !self.live(pins, at, now) {
                // A pin moved back into this slot is looked at on the next visit.
                removed += 1;
                continue;
            }
            self.cursor = (at + 1) & mask;
        }
        removed
    }

    /// Pins of this worker in use.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The target of the live pin in `slot` (word 1 `ports`), checked against `table` if it last
/// was against another: still a holder of the flow's address, or else `decide`'s (pinned now).
#[inline]
fn checked(
    slot: &Slot,
    ports: u64,
    table: &ForwardingTable,
    flow: &FlowKey,
    decide: impl FnOnce() -> ServerId,
) -> Pinned {
    let checked_by = slot.checked_by();
    let epoch = table.epoch();
    if checked_by as u32 == epoch {
        return Pinned::Kept(ServerId(((ports >> SERVER_SHIFT) & 0xffff) as u32));
    }
    // A table swap since: still a holder (it may have a new id in the new table)?
    let underlay = (checked_by >> 32) as u32;
    let (server, kept) = match table.holder_of(flow.src, underlay) {
        Some(server) => (server, true),
        None => (decide(), false),
    };
    let ports = ports & !(0xffff << SERVER_SHIFT) | u64::from(server.0) << SERVER_SHIFT;
    slot.0[2].store(
        u64::from(table.underlay_of(server)) << 32 | u64::from(epoch),
        Ordering::Relaxed,
    );
    slot.0[1].store(ports, Ordering::Release);
    if kept {
        Pinned::Kept(server)
    } else {
        Pinned::Redecided(server)
    }
}

#[cfg(test)]
mod tests;
