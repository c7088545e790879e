//! How long flow state lives (contract 7.6): the idle timeouts by protocol and TCP state,
//! and the refresh of an entry by one of its flow's packets. One rule for mappings and pins.

use topology::hash::{PROTO_TCP, PROTO_UDP};

use crate::flow::{EntryRef, FlowOwner, FlowTable, Lifetime};
use crate::wire::tcp;

/// Idle timeouts, in seconds (contract 7.6, `[connections]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub udp: u32,
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_established: 1200,
            tcp_transitory: 30,
            udp: 30,
            icmp: 30,
        }
    }
}

impl Timeouts {
    /// The lifetime of a new entry for a flow of `proto` whose first packet had `tcp_flags`:
    /// a TCP SYN opens (transitory time), any other TCP segment is established (and closes
    /// after FIN or RST with the transitory time).
    pub fn lifetime(&self, proto: u8, tcp_flags: Option<u8>) -> Lifetime {
        match proto {
            PROTO_TCP if tcp_flags.is_some_and(is_opening) => Lifetime::fixed(self.tcp_transitory),
            PROTO_TCP => Lifetime {
                idle: self.tcp_established,
                closing: self.tcp_transitory,
            },
            PROTO_UDP => Lifetime::fixed(self.udp),
            _ => Lifetime::fixed(self.icmp),
        }
    }

    /// What a packet of a flow of `proto` with `tcp_flags` does to its lifetime, whose idle
    /// time is `idle` now: a FIN or RST closes it, the handshake's last ACK establishes it.
    /// One rule for mappings ([`Timeouts::refresh`]) and pins.
    #[inline]
    pub fn change(&self, proto: u8, tcp_flags: Option<u8>, idle: u32) -> LifetimeChange {
        let Some(flags) = tcp_flags.filter(|_| proto == PROTO_TCP) else {
            return LifetimeChange::None;
        };
        if flags & (tcp::FLAG_FIN | tcp::FLAG_RST) != 0 {
            LifetimeChange::Close
        } else if !is_opening(flags) && idle != self.tcp_established {
            LifetimeChange::Establish(self.lifetime(PROTO_TCP, Some(tcp::FLAG_ACK)))
        } else {
            LifetimeChange::None
        }
    }

    /// A packet of the flow of `at` was seen at `now`: its clock moves on, and its lifetime
    /// changes as [`Timeouts::change`] says. An entry of another worker (the flow moved
    /// queue) is left to its owner's clock.
    #[inline]
    pub fn refresh(
        &self,
        owner: &mut FlowOwner,
        table: &FlowTable,
        at: EntryRef,
        proto: u8,
        tcp_flags: Option<u8>,
        now: u32,
    ) {
        if at.worker != owner.worker() {
            return;
        }
        owner.touch(table, at.entry, now);
        if proto != PROTO_TCP {
            return;
        }
        match self.change(proto, tcp_flags, owner.lifetime(table, at.entry).idle) {
            LifetimeChange::None => {}
            LifetimeChange::Close => owner.set_closing(table, at.entry, now),
            LifetimeChange::Establish(established) => {
                owner.set_lifetime(table, at.entry, established, now)
            }
        }
    }
}

/// What one packet does to its flow's lifetime (see [`Timeouts::change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeChange {
    None,
    /// A FIN or RST: the flow lives its closing time from now.
    Close,
    /// An opening TCP connection is established: this lifetime from now.
    Establish(Lifetime),
}

/// A SYN without ACK: the connection is opening.
pub fn is_opening(flags: u8) -> bool {
    flags & tcp::FLAG_SYN != 0 && flags & tcp::FLAG_ACK == 0
}
