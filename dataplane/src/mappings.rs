//! Mappings (contract 7.2 to 7.4): every TCP, UDP or ICMP echo flow that leaves from one of
//! this server's egress addresses has one, which says the port it left with and where it
//! came from (the host port, or the fleet peer that forwarded it), so that its replies go
//! back there with their port restored. `docs/connections.md` sets out the design.
//!
//! Built on the flow-state table ([`crate::flow`]):
//! - the **external** entry of a mapping is keyed by the flow as the origin sees it (egress
//!   address, the port on the wire, remote address and port, protocol): replies and ICMP
//!   errors find it, on any worker;
//! - a flow whose port was translated also has an **outbound** entry, keyed by the port the
//!   flow came with and by where it came from, the partner of the external one: its next
//!   packets find their port with it. A kept port needs no second entry.
//!
//! Ports a worker translates to are its own (`port % workers == worker`) within this
//! server's slices, so two workers never pick the same one; a kept port is claimed through
//! the index's insert-if-absent, and a lost race translates instead.
//!
//! Only outbound packets (from the host, or from an authenticated peer) create mappings;
//! replies, ICMP errors and steering only read them. A TCP FIN or RST seen in a reply marks
//! the mapping closing, the only write a non-owner makes.

use topology::hash::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use topology::HeldSlices;

use crate::flow::{hash_key, EntryRef, FlowOwner, FlowTable, Key, Lifetime, Probe, Refused, Value};
use crate::fragments::{Datagram, FragmentOwner, FragmentRoute, FragmentTable};
use crate::pins::{PinOwner, PinTable};
pub use crate::timeouts::Timeouts;
use crate::wire::tcp;

/// Where a mapped flow came from, and where its replies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This server's host port.
    Host,
    /// The fleet server with this underlay address, which encapsulated the flow to us.
    Peer(u32),
}

impl Origin {
    fn word(self) -> u64 {
        match self {
            Origin::Host => 0,
            Origin::Peer(underlay) => 1 << 32 | u64::from(underlay),
        }
    }

    fn from_word(word: u64) -> Self {
        if word >> 32 == 0 {
            Origin::Host
        } else {
            Origin::Peer(word as u32)
        }
    }
}

/// A flow as a mapping sees it: this server's end (an egress address and the port, or echo
/// identifier, on that side) and the remote end. For an outbound packet the local end is
/// its source; for a reply, its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    pub proto: u8,
    pub local: u32,
    pub local_port: u16,
    pub remote: u32,
    /// Zero for an ICMP echo.
    pub remote_port: u16,
}

const EXTERNAL: u64 = 1;
const OUTBOUND: u64 = 2;

impl Ends {
    fn key(&self, kind: u64, origin: Origin) -> Key {
        [
            u64::from(self.local) << 32 | u64::from(self.remote),
            u64::from(self.local_port) << 48
                | u64::from(self.remote_port) << 32
                | u64::from(self.proto) << 8
                | kind,
            if kind == OUTBOUND { origin.word() } else { 0 },
        ]
    }

    fn external_key(&self) -> Key {
        self.key(EXTERNAL, Origin::Host)
    }

    fn with_port(self, local_port: u16) -> Self {
        Self { local_port, ..self }
    }
}

/// The external entry's value: the flow's own port, and its origin.
fn external_value(port: u16, origin: Origin) -> Value {
    [u64::from(port), origin.word()]
}

/// A mapping that a reply (or an ICMP error quoting a flow) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The port the flow left from at its origin: the reply's destination port once
    /// restored.
    pub port: u16,
    pub origin: Origin,
    at: EntryRef,
    key: Key,
}

/// What an outbound packet's mapping gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// The flow leaves with this port: its own (kept) or a translated one.
    Port(u16),
    /// No room for a new mapping: drop, counted as `connections_full`; no entry was evicted.
    Full,
    /// No free port of this server's slices was found for the flow (or it owns none):
    /// dropped, counted as `ports_exhausted`.
    NoPort,
}

/// What a new mapping was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Created {
    pub created: bool,
    pub translated: bool,
}

/// The mappings every worker reads.
pub struct MappingTable {
    flows: FlowTable,
    /// The routes of replies in flight in fragments, beside the mappings they follow.
    fragments: FragmentTable,
    /// The pinned flows this server forwards (7.6), bounded like the mappings.
    pins: PinTable,
}

/// One worker's half: the mappings it created, their clocks, its ports.
pub struct MappingOwner {
    flows: FlowOwner,
    fragments: FragmentOwner,
    pins: PinOwner,
    workers: u16,
    timeouts: Timeouts,
    random: u64,
    due: Vec<u32>,
}

/// Records of replies in fragments, in all: a few thousand datagrams in flight at once is a
/// busy server's worth; 16,384 take 2 MB.
pub const FRAGMENT_RECORDS: usize = 16_384;

/// Attempts at a free translated port before a flow is refused (VPP's
/// `ED_PORT_ALLOC_ATTEMPTS` is 10: one index lookup each).
const PORT_ATTEMPTS: usize = 8;

impl MappingTable {
    /// A table of `entries` mappings in all (divided between `workers`), each worker's owner
    /// half, and `now`, the workers' clock in seconds.
    pub fn new(
        workers: usize,
        entries: usize,
        timeouts: Timeouts,
        now: u32,
    ) -> (Self, Vec<MappingOwner>) {
        Self::with_pin_entries(workers, entries, entries, timeouts, now)
    }

    /// As [`MappingTable::new`], with room for `pin_entries` pinned flows instead of
    /// `entries`: the appliance bounds both alike; a benchmark sizes the pins apart to tell
    /// a pin's own cost from its table's span.
    pub fn with_pin_entries(
        workers: usize,
        entries: usize,
        pin_entries: usize,
        timeouts: Timeouts,
        now: u32,
    ) -> (Self, Vec<MappingOwner>) {
        let per_worker = entries.div_ceil(workers).max(1);
        let (flows, owners) = FlowTable::new(workers, per_worker, now);
        let (fragments, fragment_owners) = FragmentTable::new(workers, FRAGMENT_RECORDS, now);
        let (pins, pin_owners) = PinTable::new(workers, pin_entries, timeouts);
        let owners = owners
            .into_iter()
            .zip(fragment_owners)
            .zip(pin_owners)
            .map(|((flows, fragments), pins)| MappingOwner {
                random: 0x853c_49e6_748f_ea9b ^ u64::from(flows.worker()) << 17,
                flows,
                fragments,
                pins,
                workers: workers as u16,
                timeouts,
                due: Vec::new(),
            })
            .collect();
        (
            Self {
                flows,
                fragments,
                pins,
            },
            owners,
        )
    }

    /// The pinned flows (contract 7.6).
    pub fn pins(&self) -> &PinTable {
        &self.pins
    }

    /// Where the first fragment of `datagram` (a reply in fragments) went.
    pub fn fragment_route(&self, datagram: &Datagram) -> Option<FragmentRoute> {
        self.fragments.route(datagram)
    }

    /// Bytes of the shared part.
    pub fn memory_bytes(&self) -> usize {
        self.flows.memory_bytes() + self.fragments.memory_bytes() + self.pins.memory_bytes()
    }

    /// The arrays of the mappings and pins that lookups read at random, for the caller to
    /// place on huge pages (the fragment records are a few megabytes read rarely).
    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        let mut regions = self.flows.regions();
        regions.extend(self.pins.regions());
        regions
    }

    /// Where a reply's lookup reads (to prefetch a burst ahead).
    #[inline]
    pub fn reply_probe(&self, ends: &Ends) -> Probe {
        self.flows.probe(hash_key(&ends.external_key()))
    }

    /// Where an outbound packet's lookup reads first (to prefetch a burst ahead).
    #[inline]
    pub fn outbound_probe(&self, ends: &Ends, origin: Origin, held: &HeldSlices) -> Probe {
        let key = if held.is_mine(ends.local_port) {
            ends.external_key()
        } else {
            ends.key(OUTBOUND, origin)
        };
        self.flows.probe(hash_key(&key))
    }

    /// Starts loading the buckets of a probe.
    #[inline]
    pub fn prefetch(&self, probe: Probe) {
        self.flows.prefetch(probe);
    }

    /// Starts loading the entry the probe points to (which holds its clock too): once the
    /// buckets are in cache (a stage after [`MappingTable::prefetch`]).
    #[inline]
    pub fn prefetch_entry(&self, probe: Probe) {
        self.flows.prefetch_entry(probe);
    }

    /// The mapping of the flow a reply (or a quoted header, turned around) belongs to. A TCP
    /// reply with FIN or RST (`tcp_flags`) marks it closing.
    #[inline]
    pub fn reply(&self, ends: &Ends, tcp_flags: Option<u8>) -> Option<Found> {
        let key = ends.external_key();
        let (at, value) = self.flows.lookup(self.flows.probe(hash_key(&key)), &key)?;
        if tcp_flags.is_some_and(|f| f & (tcp::FLAG_FIN | tcp::FLAG_RST) != 0) {
            self.flows.mark_closing(at, &key);
        }
        Some(Found {
            port: value[0] as u16,
            origin: Origin::from_word(value[1]),
            at,
            key,
        })
    }

    /// Whether the outbound flow `ends` from `origin` has a mapping here, kept or
    /// translated: a flow this server carried before it was drained still leaves here (7.6).
    pub fn carries(&self, ends: &Ends, origin: Origin) -> bool {
        let found = |key: &Key| self.flows.lookup(self.flows.probe(hash_key(key)), key);
        let key = ends.external_key();
        found(&key).is_some_and(|(_, value)| value == external_value(ends.local_port, origin))
            || found(&ends.key(OUTBOUND, origin)).is_some()
    }

    /// Whether the mapping a reply found is still the same one (for tests of expiry).
    pub fn is_live(&self, found: &Found) -> bool {
        self.flows
            .lookup(self.flows.probe(hash_key(&found.key)), &found.key)
            .is_some_and(|(at, _)| at == found.at)
    }
}

impl MappingOwner {
    /// This worker's arrays of its mappings and pins (see [`MappingTable::regions`]).
    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        self.flows.regions()
    }

    /// Mappings of this worker in use (a translated one counts once).
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn lifetime(&self, proto: u8, tcp_flags: Option<u8>) -> Lifetime {
        self.timeouts.lifetime(proto, tcp_flags)
    }

    /// The mapping of an outbound packet of the flow `ends` from `origin`, found or created
    /// now; `held` is the slice map of the egress address's pool. `tcp_flags` are a TCP
    /// segment's flags. `created` learns whether a mapping was created, and translated.
    #[allow(clippy::too_many_arguments)]
    pub fn outbound(
        &mut self,
        table: &MappingTable,
        held: &HeldSlices,
        ends: &Ends,
        origin: Origin,
        tcp_flags: Option<u8>,
        now: u32,
        created: &mut Created,
    ) -> Outbound {
        let flows = &table.flows;
        let port = ends.local_port;
        let kept = held.is_mine(port);
        // The outbound key, hashed only when a lookup needs it: an established kept flow
        // never does.
        let outbound = || {
            let key = ends.key(OUTBOUND, origin);
            (key, hash_key(&key))
        };
        // A flow translated before a reload gave its own port's slice to this server keeps
        // its translation (the origin knows it by that port): looked up before a new kept
        // mapping is made, which only a new flow pays.
        let translated = |flows: &FlowTable| {
            let (key, hash) = outbound();
            flows.lookup(flows.probe(hash), &key).map(|(_, value)| {
                let primary = EntryRef {
                    worker: (value[1] >> 32) as u8,
                    entry: value[1] as u32,
                };
                (primary, value[0] as u16)
            })
        };
        let key = ends.external_key();
        let hash = hash_key(&key);
        if kept {
            match flows.lookup(flows.probe(hash), &key) {
                Some((at, value)) if value == external_value(port, origin) => {
                    self.used(flows, at, ends.proto, tcp_flags, now);
                    return Outbound::Port(port);
                }
                // The port is another flow's (or another origin's) for that remote end.
                Some(_) => {}
                None if translated(flows).is_some() => {}
                None => {
                    let value = external_value(port, origin);
                    let lifetime = self.lifetime(ends.proto, tcp_flags);
                    match self.flows.insert(flows, hash, &key, &value, now, lifetime) {
                        Ok(_) => {
                            created.created = true;
                            return Outbound::Port(port);
                        }
                        // Another worker claimed it for this very flow a moment ago.
                        Err(Refused::Exists(at, v)) if v == value => {
                            self.used(flows, at, ends.proto, tcp_flags, now);
                            return Outbound::Port(port);
                        }
                        Err(Refused::Exists(..)) => {}
                        Err(Refused::Full) => return Outbound::Full,
                    }
                }
            }
        }
        if let Some((primary, translated_port)) = translated(flows) {
            self.used(flows, primary, ends.proto, tcp_flags, now);
            return Outbound::Port(translated_port);
        }
        // A flow that kept its port before a reload gave the port's slice to another server
        // keeps it too: only a new flow outside this server's slices pays this lookup.
        if !kept {
            if let Some((at, value)) = flows.lookup(flows.probe(hash), &key) {
                if value == external_value(port, origin) {
                    self.used(flows, at, ends.proto, tcp_flags, now);
                    return Outbound::Port(port);
                }
            }
        }
        self.translate(
            table,
            held,
            ends,
            origin,
            outbound(),
            tcp_flags,
            now,
            created,
        )
    }

    /// A new mapping to a free port of this worker's share of `held`.
    #[allow(clippy::too_many_arguments)]
    fn translate(
        &mut self,
        table: &MappingTable,
        held: &HeldSlices,
        ends: &Ends,
        origin: Origin,
        (outbound_key, outbound_hash): (Key, u64),
        tcp_flags: Option<u8>,
        now: u32,
        created: &mut Created,
    ) -> Outbound {
        if self.flows.available() < 2 {
            return Outbound::Full;
        }
        let flows = &table.flows;
        let worker = u16::from(self.flows.worker());
        let lifetime = self.lifetime(ends.proto, tcp_flags);
        let value = external_value(ends.local_port, origin);
        for _ in 0..PORT_ATTEMPTS {
            let Some(port) = held.pick(self.next_random(), worker, self.workers) else {
                continue;
            };
            let key = ends.with_port(port).external_key();
            let at = match self
                .flows
                .insert(flows, hash_key(&key), &key, &value, now, lifetime)
            {
                Ok(at) => at,
                Err(Refused::Exists(..)) => continue,
                Err(Refused::Full) => return Outbound::Full,
            };
            let partner = [
                u64::from(port),
                u64::from(at.worker) << 32 | u64::from(at.entry),
            ];
            return match self.flows.insert_partner(
                flows,
                at.entry,
                outbound_hash,
                &outbound_key,
                &partner,
            ) {
                Ok(_) => {
                    *created = Created {
                        created: true,
                        translated: true,
                    };
                    Outbound::Port(port)
                }
                Err(_) => {
                    // Only when both index buckets of the key are full: refused as a full
                    // table would refuse it.
                    self.flows.remove_new(flows, at.entry);
                    Outbound::Full
                }
            };
        }
        Outbound::NoPort
    }

    /// An outbound packet used the mapping at `at`: its clock, and the TCP state it shows.
    /// A mapping of another worker (the flow moved queue) is left to its owner's clock.
    #[inline]
    fn used(
        &mut self,
        table: &FlowTable,
        at: EntryRef,
        proto: u8,
        tcp_flags: Option<u8>,
        now: u32,
    ) {
        self.timeouts
            .refresh(&mut self.flows, table, at, proto, tcp_flags, now);
    }

    /// Removes the mappings idle past their time, at most `budget` a call (and as many
    /// fragment records); returns how many mappings.
    pub fn expire(&mut self, table: &MappingTable, now: u32, budget: usize) -> usize {
        self.fragments.expire(&table.fragments, now, budget);
        self.flows
            .expire_into(&table.flows, now, budget, &mut self.due);
        self.due.len()
    }

    /// This worker's pins.
    pub fn pins(&mut self) -> &mut PinOwner {
        &mut self.pins
    }

    /// This worker's pins, to prefetch for.
    pub fn pins_ref(&self) -> &PinOwner {
        &self.pins
    }

    /// Records where the first fragment of `datagram` went, for its later fragments; `false`
    /// when there is no room.
    pub fn record_fragment(
        &mut self,
        table: &MappingTable,
        datagram: &Datagram,
        route: FragmentRoute,
        now: u32,
    ) -> bool {
        self.fragments
            .record(&table.fragments, datagram, route, now)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: cheap, and good enough to spread ports over slices.
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The mapped ends of an outbound packet's flow: TCP, UDP (not a fragment) or an ICMP echo
/// request, from `src` to `dst`, with its L4 header `l4`. `None` for anything else, which
/// has no mapping (contract 7.7).
pub fn outbound_ends(proto: u8, src: u32, dst: u32, l4: &[u8]) -> Option<Ends> {
    let (local_port, remote_port) = match proto {
        PROTO_TCP | PROTO_UDP => crate::wire::udp::ports(l4)?,
        PROTO_ICMP if l4.first() == Some(&crate::wire::icmp::TYPE_ECHO_REQUEST) => (
            crate::wire::ports::get(proto, l4, crate::wire::ports::End::Source)?,
            0,
        ),
        _ => return None,
    };
    Some(Ends {
        proto,
        local: src,
        local_port,
        remote: dst,
        remote_port,
    })
}

/// The mapped ends of a reply's flow from `src` to `dst` (an egress address): TCP, UDP or an
/// ICMP echo reply. ICMP errors are read by their quote ([`crate::reply::read`]).
pub fn reply_ends(proto: u8, src: u32, dst: u32, l4: &[u8]) -> Option<Ends> {
    let (remote_port, local_port) = match proto {
        PROTO_TCP | PROTO_UDP => crate::wire::udp::ports(l4)?,
        PROTO_ICMP if l4.first() == Some(&crate::wire::icmp::TYPE_ECHO_REPLY) => (
            0,
            crate::wire::ports::get(proto, l4, crate::wire::ports::End::Destination)?,
        ),
        _ => return None,
    };
    Some(Ends {
        proto,
        local: dst,
        local_port,
        remote: src,
        remote_port,
    })
}

#[cfg(test)]
mod tests;
