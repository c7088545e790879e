//! Pinned flows (contract 7.6): a flow this server forwards from its host keeps the target
//! its first packet was given, across any number of table swaps, until it expires (idle, or
//! after FIN or RST), as long as that target is still a holder of the egress address
//! (drained or not). A flow whose target left the pool is decided again by the current
//! table, and counted.
//!
//! Only packets from the host port are pinned: internet traffic creates no pin. A pin's
//! owner is the worker whose host queue saw the flow first (RSS keeps a flow on one queue);
//! the table is shared, so a flow whose packets move queue still finds its pin.
//!
//! A pin records its target by underlay, which every table agrees on, and the epoch of the
//! table that last checked it: while that table is in use, the pin is used without a check.

use topology::{FlowKey, ForwardingTable, ServerId};

use crate::flow::{hash_key, FlowOwner, FlowTable, Key, Probe, Refused, Value};
use crate::timeouts::Timeouts;

/// A pin's key: the flow as its host sent it (a TCP or UDP packet, not a fragment).
fn key_of(flow: &FlowKey) -> Key {
    [
        u64::from(flow.src) << 32 | u64::from(flow.dst),
        u64::from(flow.proto) << 32 | u64::from(flow.sport) << 16 | u64::from(flow.dport),
        0,
    ]
}

/// What a pin did for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// The flow's pin, still valid: its target.
    Kept(ServerId),
    /// A new flow, pinned to the table's decision.
    Created,
    /// The pinned target is no longer a holder: the table's decision, pinned instead.
    Redecided,
    /// No room for a new pin: the flow is refused (`connections_full`), nothing evicted.
    Full,
}

fn value(underlay: u32, server: ServerId, epoch: u32) -> Value {
    [
        u64::from(epoch) << 32 | u64::from(underlay),
        u64::from(server.0),
    ]
}

/// The part every worker reads.
pub struct PinTable {
    flows: FlowTable,
}

/// One worker's pins.
pub struct PinOwner {
    flows: FlowOwner,
    timeouts: Timeouts,
    due: Vec<u32>,
}

impl PinTable {
    /// `entries` pins in all, divided between `workers`.
    pub fn new(
        workers: usize,
        entries: usize,
        timeouts: Timeouts,
        now: u32,
    ) -> (Self, Vec<PinOwner>) {
        let (flows, owners) = FlowTable::new(workers, entries.div_ceil(workers).max(1), now);
        let owners = owners
            .into_iter()
            .map(|flows| PinOwner {
                flows,
                timeouts,
                due: Vec::new(),
            })
            .collect();
        (Self { flows }, owners)
    }

    pub fn probe(&self, flow: &FlowKey) -> Probe {
        self.flows.probe(hash_key(&key_of(flow)))
    }

    pub fn prefetch(&self, probe: Probe) {
        self.flows.prefetch(probe);
    }

    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        self.flows.regions()
    }

    /// Starts loading the pin the probe points to (which holds its clock too).
    pub fn prefetch_entry(&self, probe: Probe) {
        self.flows.prefetch_entry(probe);
    }

    /// Whether the host's flow `flow` is pinned here: a reply a peer returns for it is this
    /// server's host's even when this server holds the address (7.5.1: it took the address
    /// on, or is a drained holder, after the flow was pinned elsewhere).
    pub fn contains(&self, flow: &FlowKey) -> bool {
        let key = key_of(flow);
        self.flows
            .lookup(self.flows.probe(hash_key(&key)), &key)
            .is_some()
    }

    pub fn memory_bytes(&self) -> usize {
        self.flows.memory_bytes()
    }
}

impl PinOwner {
    /// The target of a packet of `flow` that `table` decides to send to `decided`:
    /// the pinned one while it holds the address, else `decided` (pinned now). `tcp_flags`
    /// are a TCP segment's flags.
    #[allow(clippy::too_many_arguments)]
    pub fn target(
        &mut self,
        pins: &PinTable,
        table: &ForwardingTable,
        flow: &FlowKey,
        decided: ServerId,
        tcp_flags: Option<u8>,
        now: u32,
    ) -> Pinned {
        let key = key_of(flow);
        let hash = hash_key(&key);
        let epoch = table.epoch();
        if let Some((at, found)) = pins.flows.lookup(pins.flows.probe(hash), &key) {
            self.timeouts
                .refresh(&mut self.flows, &pins.flows, at, flow.proto, tcp_flags, now);
            if (found[0] >> 32) as u32 == epoch {
                return Pinned::Kept(ServerId(found[1] as u32));
            }
            // A table swap since: still a holder (it may have a new id in the new table)?
            let underlay = found[0] as u32;
            let mine = at.worker == self.flows.worker();
            return match table.holder_of(flow.src, underlay) {
                Some(server) => {
                    if mine {
                        self.flows.rewrite(
                            &pins.flows,
                            at.entry,
                            &key,
                            &value(underlay, server, epoch),
                        );
                    }
                    Pinned::Kept(server)
                }
                None => {
                    if mine {
                        let underlay = table.underlay_of(decided);
                        self.flows.rewrite(
                            &pins.flows,
                            at.entry,
                            &key,
                            &value(underlay, decided, epoch),
                        );
                    }
                    Pinned::Redecided
                }
            };
        }
        let lifetime = self.timeouts.lifetime(flow.proto, tcp_flags);
        let pin = value(table.underlay_of(decided), decided, epoch);
        match self
            .flows
            .insert(&pins.flows, hash, &key, &pin, now, lifetime)
        {
            Ok(_) => Pinned::Created,
            // Another worker pinned it a moment ago: as it did.
            Err(Refused::Exists(_, found)) => match table.holder_of(flow.src, found[0] as u32) {
                Some(server) => Pinned::Kept(server),
                None => Pinned::Redecided,
            },
            Err(Refused::Full) => Pinned::Full,
        }
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
        let key = key_of(flow);
        let (at, found) = pins.flows.lookup(pins.flows.probe(hash_key(&key)), &key)?;
        let target = table
            .holder_of(flow.src, found[0] as u32)
            .filter(|&t| t != table.me())?;
        self.timeouts
            .refresh(&mut self.flows, &pins.flows, at, flow.proto, tcp_flags, now);
        Some(target)
    }

    /// Removes the pins idle past their time, at most `budget`; returns how many.
    pub fn expire(&mut self, pins: &PinTable, now: u32, budget: usize) -> usize {
        self.flows
            .expire_into(&pins.flows, now, budget, &mut self.due);
        self.due.len()
    }

    pub fn regions(&self) -> Vec<topology::MemoryRegion> {
        self.flows.regions()
    }

    /// Pins of this worker in use.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}
