//! The validated topology: every reference resolved to an index, every rule of the contract
//! checked. Built only by [`crate::parse()`].

use std::net::Ipv4Addr;

use crate::prefix::{Ipv4Prefix, Ipv6Prefix};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// Index into [`Topology::locations`].
    LocationId
);
id_type!(
    /// Index into [`Topology::datacenters`].
    DatacenterId
);
id_type!(
    /// Index into [`Topology::servers`].
    ServerId
);
id_type!(
    /// Index into [`Topology::pools`].
    PoolId
);

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datacenter {
    pub name: String,
    pub location: LocationId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub datacenter: DatacenterId,
    pub location: LocationId,
    pub underlay: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder {
    pub server: ServerId,
    /// Capacity share, 1..=1000.
    pub weight: u32,
    /// Takes no new flows, and keeps its port slices (contract 4 and 7.1).
    pub drain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub holders: Vec<Holder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressV4 {
    pub prefix: Ipv4Prefix,
    pub pool: PoolId,
}

/// A whole fleet, as one topology file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Ports per slice of every IPv4 pool's port space (contract 7.1).
    pub port_slice: u16,
    pub locations: Vec<Location>,
    pub datacenters: Vec<Datacenter>,
    pub servers: Vec<Server>,
    pub pools: Vec<Pool>,
    /// IPv4 egress prefixes, in file order; they never overlap.
    pub egress_v4: Vec<EgressV4>,
    /// IPv6 egress prefixes, in file order; they never overlap.
    pub egress_v6: Vec<Ipv6Prefix>,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            port_slice: crate::slices::DEFAULT_PORT_SLICE,
            locations: Vec::new(),
            datacenters: Vec::new(),
            servers: Vec::new(),
            pools: Vec::new(),
            egress_v4: Vec::new(),
            egress_v6: Vec::new(),
        }
    }
}

/// What `egressfwd check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub locations: usize,
    pub datacenters: usize,
    pub servers: usize,
    pub pools: usize,
    pub ipv4_egress_addresses: u64,
    pub ipv6_egress_prefixes: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} locations, {} datacenters, {} servers, {} pools, {} IPv4 egress addresses, {} IPv6 egress prefixes",
            self.locations,
            self.datacenters,
            self.servers,
            self.pools,
            self.ipv4_egress_addresses,
            self.ipv6_egress_prefixes
        )
    }
}

impl Topology {
    pub fn summary(&self) -> Summary {
        Summary {
            locations: self.locations.len(),
            datacenters: self.datacenters.len(),
            servers: self.servers.len(),
            pools: self.pools.len(),
            ipv4_egress_addresses: self.egress_v4.iter().map(|e| e.prefix.size()).sum(),
            ipv6_egress_prefixes: self.egress_v6.len(),
        }
    }

    pub fn server_by_name(&self, name: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .position(|s| s.name == name)
            .map(|i| ServerId(i as u32))
    }

    pub fn server(&self, id: ServerId) -> &Server {
        &self.servers[id.index()]
    }

    pub fn datacenter(&self, id: DatacenterId) -> &Datacenter {
        &self.datacenters[id.index()]
    }

    pub fn location(&self, id: LocationId) -> &Location {
        &self.locations[id.index()]
    }
}
