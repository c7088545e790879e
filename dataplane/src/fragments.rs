//! Replies that arrive in fragments (large UDP answers, DNS over UDP): the first fragment
//! carries the ports, so it alone is read for the return path (restored, steered or sent to
//! the host), and the way it went is kept for two seconds under the datagram's identity
//! (source, destination, protocol, IP ID), as VPP's virtual reassembly does. Later fragments
//! look it up and go the same way, unchanged: they carry no port to restore. A later
//! fragment with no first fragment on record (it came first, or the record expired or did
//! not fit) is dropped and counted (`fragment_orphan`); none is held back.
//!
//! This is the one state a packet from the internet creates (a reply's first fragment), and
//! it is bounded: a fixed number of records, two seconds each, none evicted for a new one.

use crate::flow::{hash_key, FlowOwner, FlowTable, Key, Lifetime, Value};

/// How long a first fragment's record lives: the fragments of one datagram arrive within
/// milliseconds of each other.
pub const FRAGMENT_SECONDS: u32 = 2;

/// Where the fragments of one reply go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentRoute {
    /// To the host port.
    Host,
    /// Encapsulated to `underlay`, with outer source port from `hash`.
    Encap { underlay: u32, hash: u64 },
}

impl FragmentRoute {
    fn value(self) -> Value {
        match self {
            FragmentRoute::Host => [0, 0],
            FragmentRoute::Encap { underlay, hash } => [1 << 32 | u64::from(underlay), hash],
        }
    }

    fn from_value(value: Value) -> Self {
        if value[0] >> 32 == 0 {
            FragmentRoute::Host
        } else {
            FragmentRoute::Encap {
                underlay: value[0] as u32,
                hash: value[1],
            }
        }
    }
}

/// The identity of a fragmented IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub ident: u16,
}

impl Datagram {
    fn key(&self) -> Key {
        [
            u64::from(self.src) << 32 | u64::from(self.dst),
            u64::from(self.proto) << 16 | u64::from(self.ident),
            0,
        ]
    }

    fn hash(&self) -> u64 {
        hash_key(&self.key())
    }
}

/// The part every worker reads.
pub struct FragmentTable {
    flows: FlowTable,
}

/// One worker's records.
pub struct FragmentOwner {
    flows: FlowOwner,
    due: Vec<u32>,
}

impl FragmentTable {
    /// `entries` records in all, divided between `workers`.
    pub fn new(workers: usize, entries: usize, now: u32) -> (Self, Vec<FragmentOwner>) {
        let (flows, owners) = FlowTable::new(workers, entries.div_ceil(workers).max(1), now);
        let owners = owners
            .into_iter()
            .map(|flows| FragmentOwner {
                flows,
                due: Vec::new(),
            })
            .collect();
        (Self { flows }, owners)
    }

    /// Where the first fragment of `datagram` went, if it is on record.
    pub fn route(&self, datagram: &Datagram) -> Option<FragmentRoute> {
        let key = datagram.key();
        self.flows
            .lookup(self.flows.probe(datagram.hash()), &key)
            .map(|(_, value)| FragmentRoute::from_value(value))
    }

    pub fn memory_bytes(&self) -> usize {
        self.flows.memory_bytes()
    }
}

impl FragmentOwner {
    /// Records where the first fragment of `datagram` went; `false` when there is no room
    /// (its later fragments will be orphans). A datagram already on record keeps its route.
    pub fn record(
        &mut self,
        table: &FragmentTable,
        datagram: &Datagram,
        route: FragmentRoute,
        now: u32,
    ) -> bool {
        self.flows
            .insert(
                &table.flows,
                datagram.hash(),
                &datagram.key(),
                &route.value(),
                now,
                Lifetime::fixed(FRAGMENT_SECONDS),
            )
            .is_ok()
    }

    /// Removes the records past their time, at most `budget`; returns how many.
    pub fn expire(&mut self, table: &FragmentTable, now: u32, budget: usize) -> usize {
        self.flows
            .expire_into(&table.flows, now, budget, &mut self.due);
        self.due.len()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_fragment_route_is_found_by_any_worker_and_expires() {
        let (table, mut owners) = FragmentTable::new(2, 8, 0);
        let d = Datagram {
            src: 1,
            dst: 2,
            proto: 17,
            ident: 7,
        };
        let route = FragmentRoute::Encap {
            underlay: 0x0a14_0102,
            hash: 99,
        };
        assert!(owners[0].record(&table, &d, route, 10));
        assert_eq!(table.route(&d), Some(route));
        assert_eq!(table.route(&Datagram { ident: 8, ..d }), None);
        // The same datagram again keeps its first route.
        owners[1].record(&table, &d, FragmentRoute::Host, 10);
        assert_eq!(table.route(&d), Some(route));
        assert_eq!(owners[0].expire(&table, 11, 16), 0);
        assert_eq!(owners[0].expire(&table, 10 + FRAGMENT_SECONDS + 1, 16), 1);
        assert_eq!(table.route(&d), None);
    }

    #[test]
    fn a_full_table_records_nothing_more() {
        let (table, mut owners) = FragmentTable::new(1, 2, 0);
        let d = |ident| Datagram {
            src: 1,
            dst: 2,
            proto: 17,
            ident,
        };
        assert!(owners[0].record(&table, &d(1), FragmentRoute::Host, 0));
        assert!(owners[0].record(&table, &d(2), FragmentRoute::Host, 0));
        assert!(!owners[0].record(&table, &d(3), FragmentRoute::Host, 0));
        assert_eq!(table.route(&d(1)), Some(FragmentRoute::Host));
    }
}
