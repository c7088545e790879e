//! The decision table of one server: what contract section 1 decides for every egress
//! prefix, compiled into the lookups the data plane reads per packet.

use std::net::Ipv4Addr;

use hashbrown::HashMap;
use prefetch_index::prefetch_index;

use crate::hash::{bucket_hash, name_seed, slice_hash, FlowKey, PROTO_IPIP, PROTO_UDP};
use crate::lookup::{FlatMap, MemoryRegion, PrefixMapV4, PrefixSetV6, Probe};
use crate::model::{Holder, LocationId, PoolId, ServerId, Topology};
use crate::prefix::Ipv4Prefix;
use crate::prefix::Ipv6Prefix;
use crate::rendezvous::{
    bucket_of, equal_weights, fill_buckets, winner, winner_quick, Candidate, Contender, BUCKETS,
};
use crate::slices::HeldSlices;
use previous::PreviousOwners;

// What a reloaded table keeps of the one it replaced: part of the table, built from two.
mod previous;

/// Where an IPv4 egress address may leave from, as seen from one server; or IPv6 egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Local,
    SameDc,
    SameLocation,
    NearestLocation,
    Ipv6Local,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Local,
        Tier::SameDc,
        Tier::SameLocation,
        Tier::NearestLocation,
        Tier::Ipv6Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::SameDc => "same_dc",
            Tier::SameLocation => "same_location",
            Tier::NearestLocation => "nearest_location",
            Tier::Ipv6Local => "ipv6_local",
        }
    }
}

/// What the table says of one IPv4 packet: a fleet packet, known by its outer header alone,
/// or a packet whose way out it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// Encapsulated to this server's underlay address.
    Fleet(FleetPacket),
    /// Anything else.
    Decided(Decision),
}

/// A packet encapsulated to this server's underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetPacket {
    /// From a fleet server: decapsulate it, then decide the inner packet.
    From(ServerId),
    /// From someone who is not a fleet server (or from our own address: a spoofer or a loop).
    UnknownPeer,
}

/// Where an IPv4 packet that is not a fleet packet goes (before any packet-level check such
/// as TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The source is an egress address of `pool`, which this server holds: send it out.
    LocalEgress { pool: PoolId },
    /// The source is an egress address held elsewhere: encapsulate to `target`.
    Forward {
        tier: Tier,
        target: ServerId,
        flow_hash: u64,
    },
    /// The destination is an egress address of `pool`: a reply from an origin.
    Reply { pool: PoolId },
    /// Not egress traffic.
    Pass,
}

/// An IPv4 packet after the first step of its decision ([`ForwardingTable::start_v4`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A fleet packet: nothing more to look up.
    Fleet(FleetPacket),
    /// Any other packet: the routes of its source and destination are on their way.
    Lookup(Lookup),
}

/// The routes of a packet's source and destination, on their way from memory: what
/// [`ForwardingTable::continue_v4`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lookup {
    src: Probe,
    dst: Probe,
}

/// An IPv4 decision after its second step ([`ForwardingTable::continue_v4`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continued {
    /// Complete.
    Decided(Decision),
    /// A forwarded flow spread over several candidates: its target is still to be read from
    /// the rendezvous bucket (or computed from the members) that the step started loading,
    /// by [`ForwardingTable::finish_v4`].
    Spreading(Spreading),
}

/// A forwarded flow whose target [`ForwardingTable::finish_v4`] is still to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spreading {
    tier: Tier,
    flow_hash: u64,
    spread: Spread,
    bucket: u16,
}

impl Continued {
    /// A forwarded flow's decision as far as it is known before its target (a spread flow's
    /// target is still to be read from its bucket).
    #[inline]
    pub fn forwarding(&self) -> Option<Forwarding> {
        match *self {
            Continued::Decided(Decision::Forward {
                tier,
                target,
                flow_hash,
            }) => Some(Forwarding::to(tier, target, flow_hash)),
            Continued::Spreading(s) => Some(Forwarding {
                tier: s.tier,
                flow_hash: s.flow_hash,
                target: PendingTarget::Spread(s.spread, s.bucket),
            }),
            Continued::Decided(_) => None,
        }
    }
}

/// A forwarded flow whose tier and hash are known, and its target once
/// [`ForwardingTable::forward_target`] reads it: what a caller needs that may not need the
/// target (a flow pinned to one already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub tier: Tier,
    pub flow_hash: u64,
    target: PendingTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingTarget {
    Known(ServerId),
    /// The spread and the flow's bucket in it.
    Spread(Spread, u16),
}

impl Forwarding {
    /// A forwarded flow whose target is decided.
    pub fn to(tier: Tier, target: ServerId, flow_hash: u64) -> Self {
        Self {
            tier,
            flow_hash,
            target: PendingTarget::Known(target),
        }
    }
}

impl Default for Continued {
    fn default() -> Self {
        Continued::Decided(Decision::Pass)
    }
}

/// What the table decides for one IPv6 packet: IPv6 egress is global, never forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionV6 {
    LocalEgress,
    Reply,
    Pass,
}

/// A server as the data plane and `explain` need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub underlay: Ipv4Addr,
    pub datacenter: String,
    pub location: String,
}

/// The compiled decision for one pool (every prefix of the pool shares it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub pool: PoolId,
    pub tier: Tier,
    /// The weighted servers flows are spread over (just this server for `local`).
    pub candidates: Vec<Holder>,
    /// Every holder of the pool, drained ones included: the owners of its port slices.
    pub holders: Vec<Holder>,
    spread: Spread,
}

/// How the flows of a route find their target among its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spread {
    /// One candidate (this server for `local`): nothing to choose.
    One(ServerId),
    /// A rendezvous table of [`BUCKETS`] entries in [`ForwardingTable::buckets`] from here.
    Buckets(u32),
    /// The same rendezvous, computed per flow from `len` members in
    /// [`ForwardingTable::members`] from `start`: for the candidate sets beyond
    /// [`MATERIALISED_CANDIDATES`], where a table each would cost 8 KiB and its filling time.
    Computed {
        start: u32,
        len: u16,
        equal_weights: bool,
    },
}

/// How many candidates, over all the candidate sets that get a bucket table (8 KiB each); the
/// rest are computed per flow. Filling a table costs a rendezvous per bucket and candidate, so
/// this bounds the compile time (about 0.3 s of CPU, measured with perf on the fleet below). A server of the 2,000-pool benchmark
/// fleet has 1,132 sets of 2,831 candidates, so all its flows read a table as before; a server
/// of a fleet of 100k customer pools has 73k sets of 399k candidates, whose tables would take
/// 600 MB and 20 s to fill.
pub const MATERIALISED_CANDIDATES: usize = 4096;

/// A candidate as the per-flow rendezvous reads it: 24 bytes, no name (its rank in name order
/// breaks exact ties as the name would), its weight's inverse ready to multiply by.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Member {
    seed: u64,
    inverse_weight: f64,
    weight: u32,
    /// Server indices fit 16 bits, as in the bucket tables.
    server: u16,
    name_rank: u16,
}

impl Contender for Member {
    #[inline]
    fn seed(&self) -> u64 {
        self.seed
    }
    #[inline]
    fn weight(&self) -> u32 {
        self.weight
    }
    #[inline]
    fn name_order(&self, other: &Self) -> std::cmp::Ordering {
        self.name_rank.cmp(&other.name_rank)
    }
    #[inline]
    fn inverse_weight(&self) -> f64 {
        self.inverse_weight
    }
}

impl Route {
    /// The server the flows of each of the [`BUCKETS`] positions go to, in bucket order (a
    /// flow's position is [`crate::rendezvous::bucket_of`] its hash): this server for `local`. The
    /// same targets the data plane reads, so two tables' targets tell which flows a change
    /// moves.
    pub fn targets(&self, table: &ForwardingTable) -> Vec<ServerId> {
        if self.tier == Tier::Local {
            return vec![table.me(); BUCKETS];
        }
        (0..BUCKETS)
            .map(|bucket| table.bucket_target(self.spread, bucket))
            .collect()
    }

    /// Share of flows each candidate receives (fraction of buckets), in candidate order.
    pub fn shares(&self, table: &ForwardingTable) -> Vec<f64> {
        if self.tier == Tier::Local {
            return vec![1.0];
        }
        let targets = self.targets(table);
        self.candidates
            .iter()
            .map(|h| targets.iter().filter(|&&t| t == h.server).count() as f64 / BUCKETS as f64)
            .collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("server `{0}` is not in the topology")]
    UnknownServer(String),
}

/// Everything one server needs to decide every packet.
#[derive(Debug, Clone)]
pub struct ForwardingTable {
    me: ServerId,
    my_underlay: u32,
    servers: Vec<ServerInfo>,
    /// Each server's underlay, densely: the data plane reads it per forwarded packet, and a
    /// 4-byte stride keeps a whole fleet's worth in cache.
    underlays: Vec<u32>,
    /// Underlay address → server: who may send us encapsulated packets.
    peers: FlatMap,
    v4: PrefixMapV4,
    routes: Vec<Route>,
    /// What the data plane reads of each route, densely (a few bytes per pool, so a whole
    /// fleet's worth stays in cache, where [`Route`] with its candidate list would not).
    hot_routes: Vec<HotRoute>,
    buckets: Vec<u16>,
    /// The candidates of the sets computed per flow ([`Spread::Computed`]), set after set.
    members: Vec<Member>,
    v6: PrefixSetV6,
    egress_v4: Vec<(Ipv4Prefix, PoolId)>,
    /// How many addresses `egress_v4` covers: a figure of every stats report and scrape,
    /// counted once here rather than over a million prefixes each time.
    egress_v4_addresses: u64,
    egress_v6: Vec<Ipv6Prefix>,
    pool_names: Vec<String>,
    /// Each server's rendezvous seed (from its name), for slice owners computed on demand.
    seeds: Vec<u64>,
    port_slice: u16,
    /// The slice maps of the pools this server holds, one per distinct set of holders.
    held: Vec<HeldSlices>,
    /// Each pool's entry in `held`, or [`NOT_HELD`].
    held_of_pool: Vec<u32>,
    /// The slices that moved here in the last reload, for the second chance (7.5.3); empty
    /// until [`ForwardingTable::remember_previous`].
    previous: PreviousOwners,
    /// Which compilation this is, unique in the process: a pinned flow that recorded it
    /// needs no check that its target is still a holder while this table is in use.
    epoch: u32,
    /// Whether this server is a drained holder of some pool (see
    /// [`ForwardingTable::drains_here`]).
    drains_here: bool,
}

/// Compilations so far in this process (see [`ForwardingTable::epoch`]).
static EPOCHS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

const NOT_HELD: u32 = u32::MAX;

/// The part of a [`Route`] every forwarded packet reads.
#[derive(Debug, Clone, Copy)]
struct HotRoute {
    tier: Tier,
    spread: Spread,
}

impl From<&Route> for HotRoute {
    fn from(route: &Route) -> Self {
        Self {
            tier: route.tier,
            spread: route.spread,
        }
    }
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

impl ForwardingTable {
    /// Compiles the table of server `server` of `topology`.
    pub fn compile(topology: &Topology, server: &str) -> Result<Self, CompileError> {
        Self::compile_with_table_budget(topology, server, MATERIALISED_CANDIDATES)
    }

    /// [`ForwardingTable::compile`] with `table_budget` candidates' worth of bucket tables
    /// instead of [`MATERIALISED_CANDIDATES`]: tests compare the two spreads with it.
    #[doc(hidden)]
    pub fn compile_with_table_budget(
        topology: &Topology,
        server: &str,
        table_budget: usize,
    ) -> Result<Self, CompileError> {
        let me = topology
            .server_by_name(server)
            .ok_or_else(|| CompileError::UnknownServer(server.to_owned()))?;
        let my = topology.server(me);
        let my_location = topology.location(my.location);
        let distance: Vec<f64> = topology
            .locations
            .iter()
            .map(|l| {
                distance_km(
                    my_location.latitude,
                    my_location.longitude,
                    l.latitude,
                    l.longitude,
                )
            })
            .collect();

        let servers: Vec<ServerInfo> = topology
            .servers
            .iter()
            .map(|s| ServerInfo {
                name: s.name.clone(),
                underlay: s.underlay,
                datacenter: topology.datacenter(s.datacenter).name.clone(),
                location: topology.location(s.location).name.clone(),
            })
            .collect();
        let mut peers = FlatMap::with_capacity(servers.len());
        for (i, s) in topology.servers.iter().enumerate() {
            peers.insert(u32::from(s.underlay), i as u32);
        }

        // Pools that end up with the same candidates share one spread.
        let mut sets: HashMap<Vec<Holder>, u32> = HashMap::new();
        let mut set_list: Vec<(Vec<Holder>, u32)> = Vec::new(); // (candidates, pools using it)
        let mut routes = Vec::with_capacity(topology.pools.len());
        let mut route_sets = Vec::with_capacity(topology.pools.len());
        for (p, pool) in topology.pools.iter().enumerate() {
            let (tier, mut candidates) = choose_tier(topology, me, &distance, &pool.holders);
            candidates.sort_unstable_by_key(|h| h.server);
            let set = if candidates.len() == 1 {
                None
            } else {
                let next = set_list.len() as u32;
                let set = *sets.entry_ref(&candidates[..]).or_insert_with(|| {
                    set_list.push((candidates.clone(), 0));
                    next
                });
                set_list[set as usize].1 += 1;
                Some(set)
            };
            route_sets.push(set);
            routes.push(Route {
                pool: PoolId(p as u32),
                tier,
                spread: Spread::One(candidates[0].server),
                candidates,
                holders: pool.holders.clone(),
            });
        }
        drop(sets);
        let seeds: Vec<u64> = topology
            .servers
            .iter()
            .map(|s| name_seed(&s.name))
            .collect();
        let (spreads, buckets, members) = spread_sets(topology, &seeds, &set_list, table_budget);
        for (route, set) in routes.iter_mut().zip(route_sets) {
            if let Some(set) = set {
                route.spread = spreads[set as usize];
            }
        }

        let (held, held_of_pool) = held_slices(topology, me, &seeds);

        let egress_v4: Vec<(Ipv4Prefix, PoolId)> = topology
            .egress_v4
            .iter()
            .map(|e| (e.prefix, e.pool))
            .collect();
        let egress_v4_addresses = egress_v4.iter().map(|(p, _)| p.size()).sum();
        let v4 = PrefixMapV4::build(egress_v4.iter().map(|&(p, pool)| (p, pool.0)));
        let v6 = PrefixSetV6::build(
            topology
                .egress_v6
                .iter()
                .enumerate()
                .map(|(i, &p)| (p, i as u32)),
        );
        Ok(Self {
            me,
            my_underlay: u32::from(my.underlay),
            underlays: servers.iter().map(|s| u32::from(s.underlay)).collect(),
            servers,
            peers,
            v4,
            hot_routes: routes.iter().map(HotRoute::from).collect(),
            routes,
            buckets,
            members,
            v6,
            egress_v4,
            egress_v4_addresses,
            egress_v6: topology.egress_v6.clone(),
            pool_names: topology.pools.iter().map(|p| p.name.clone()).collect(),
            seeds,
            port_slice: topology.port_slice,
            held,
            held_of_pool,
            previous: PreviousOwners::default(),
            epoch: EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            drains_here: topology
                .pools
                .iter()
                .any(|p| p.holders.iter().any(|h| h.server == me && h.drain)),
        })
    }

    /// This compilation's number, unique in the process and never 0.
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether this server is a drained holder of some pool: the one question a forwarded
    /// packet asks before [`ForwardingTable::drained_pool_of`].
    #[inline]
    pub fn drains_here(&self) -> bool {
        self.drains_here
    }

    /// The pool of `addr` when this server is one of its drained holders: the table sends
    /// the pool's new flows elsewhere, but the flows this server carries, and whatever peers
    /// still send it, leave here (7.6).
    pub fn drained_pool_of(&self, addr: u32) -> Option<PoolId> {
        let route = self.route_v4(addr)?;
        (route.tier != Tier::Local && self.held_slices(route.pool).is_some()).then_some(route.pool)
    }

    /// The server whose underlay is `underlay`, if it holds the egress address `addr` (drained
    /// or not): a pinned flow's target is checked so after a table swap.
    pub fn holder_of(&self, addr: u32, underlay: u32) -> Option<ServerId> {
        let server = self
            .peer(underlay)
            .or_else(|| (underlay == self.my_underlay).then_some(self.me))?;
        self.route_v4(addr)?
            .holders
            .iter()
            .any(|h| h.server == server)
            .then_some(server)
    }

    /// Keeps what the second chance (contract 7.5.3) needs of `previous`, the table this one
    /// replaces, until `until` on the workers' clock.
    pub fn remember_previous(&mut self, previous: &ForwardingTable, now: u32, until: u32) {
        self.previous = PreviousOwners::between(previous, self, now, until);
    }

    /// Whether this server took `pool` on in a reload within the grace period: flows it
    /// forwarded for the pool before may still be pinned to another holder.
    #[inline]
    pub fn newly_held(&self, pool: PoolId, now: u32) -> bool {
        self.previous.newly_held(pool, now)
    }

    /// The underlay of the server that owned `port`'s slice of `pool` in the table this one
    /// replaced, when this server owns it now and another did then, within the grace period.
    #[inline]
    pub fn previous_owner(&self, pool: PoolId, port: u16, now: u32) -> Option<u32> {
        self.previous.owner(pool, port, now)
    }

    /// Bytes kept of the previous table for the second chance.
    pub fn previous_memory_bytes(&self) -> usize {
        self.previous.memory_bytes()
    }

    pub fn me(&self) -> ServerId {
        self.me
    }

    pub fn my_underlay(&self) -> u32 {
        self.my_underlay
    }

    /// How many servers the fleet has (ids are `0..server_count()`).
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    pub fn server(&self, id: ServerId) -> &ServerInfo {
        &self.servers[id.index()]
    }

    #[inline]
    pub fn underlay_of(&self, id: ServerId) -> u32 {
        self.underlays[id.index()]
    }

    /// The fleet server with this underlay address.
    #[inline]
    pub fn peer(&self, underlay: u32) -> Option<ServerId> {
        self.peers.get(underlay).map(ServerId)
    }

    /// The route of the egress prefix containing `addr`, if any.
    #[inline]
    pub fn route_v4(&self, addr: u32) -> Option<&Route> {
        self.v4.get(addr).map(|r| &self.routes[r as usize])
    }

    /// Whether `addr` is inside an IPv6 egress prefix.
    #[inline]
    pub fn is_egress_v6(&self, addr: u128) -> bool {
        self.v6.get(addr).is_some()
    }

    /// Number of IPv4 egress addresses this server holds itself.
    pub fn local_addresses(&self) -> u64 {
        self.egress_v4
            .iter()
            .filter(|(_, pool)| self.routes[pool.index()].tier == Tier::Local)
            .map(|(p, _)| p.size())
            .sum()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn pool_name(&self, pool: PoolId) -> &str {
        &self.pool_names[pool.index()]
    }

    /// Ports per slice of every pool (contract 7.1).
    pub fn port_slice(&self) -> u16 {
        self.port_slice
    }

    /// The pool's holders as rendezvous candidates for its slices (the candidate index is
    /// the server index), made on the way.
    fn slice_candidates(&self, pool: PoolId) -> impl Iterator<Item = Candidate<'_>> + Clone {
        self.routes[pool.index()].holders.iter().map(|h| Candidate {
            index: h.server.0 as u16,
            seed: self.seeds[h.server.index()],
            weight: h.weight,
            name: &self.servers[h.server.index()].name,
        })
    }

    /// The server owning the slice of `port` in `pool` (`None` for ports below the first
    /// slice): read from the slice map of a pool this server holds, else computed from the
    /// pool's holders with nothing allocated (a fleet of 100k pools would need a map each).
    #[inline]
    pub fn slice_owner(&self, pool: PoolId, port: u16) -> Option<ServerId> {
        if let Some(held) = self.held_slices(pool) {
            return held.owner(port).map(|i| ServerId(u32::from(i)));
        }
        let slice = crate::slices::slice_of(port, self.port_slice)?;
        let holders = &self.routes[pool.index()].holders;
        let equal = holders.iter().all(|h| h.weight == holders[0].weight);
        crate::rendezvous::winner_of(self.slice_candidates(pool), slice_hash(slice), equal)
            .map(|c| ServerId(u32::from(c.index)))
    }

    /// The owner of every slice of `pool`, in slice order.
    pub fn slice_map(&self, pool: PoolId) -> Vec<ServerId> {
        let candidates: Vec<Candidate<'_>> = self.slice_candidates(pool).collect();
        crate::slices::map(&candidates, self.port_slice)
            .into_iter()
            .map(|i| ServerId(u32::from(i)))
            .collect()
    }

    /// The slices of a pool this server holds (drained or not): who owns each, and which are
    /// this server's, to keep or allocate ports in.
    #[inline]
    pub fn held_slices(&self, pool: PoolId) -> Option<&HeldSlices> {
        let set = *self.held_of_pool.get(pool.index())?;
        self.held.get(set as usize)
    }

    pub fn egress_v4(&self) -> &[(Ipv4Prefix, PoolId)] {
        &self.egress_v4
    }

    /// IPv4 egress addresses of the whole fleet.
    pub fn egress_v4_addresses(&self) -> u64 {
        self.egress_v4_addresses
    }

    pub fn egress_v6(&self) -> &[Ipv6Prefix] {
        &self.egress_v6
    }

    /// The target of a flow in `bucket` of a route with this spread.
    #[inline]
    fn bucket_target(&self, spread: Spread, bucket: usize) -> ServerId {
        match spread {
            Spread::One(target) => target,
            Spread::Buckets(base) => ServerId(u32::from(self.buckets[base as usize + bucket])),
            Spread::Computed {
                start,
                len,
                equal_weights,
            } => {
                let members = &self.members[start as usize..start as usize + usize::from(len)];
                let point = bucket_hash(bucket);
                ServerId(u32::from(if equal_weights {
                    winner(members, point, true).server
                } else {
                    winner_quick(members, point).server
                }))
            }
        }
    }

    /// The large arrays the data plane reads at random.
    pub fn regions(&self) -> Vec<MemoryRegion> {
        let mut regions = self.v4.regions().to_vec();
        regions.push(MemoryRegion::of("rendezvous buckets", &self.buckets));
        regions.push(MemoryRegion::of("rendezvous members", &self.members));
        regions
    }

    /// Approximate memory the data plane reads from, for logs.
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes()
            + self.buckets.len() * 2
            + std::mem::size_of_val(&self.members[..])
            + self.peers.memory_bytes()
    }

    /// The decision for one IPv4 packet, contract section 5 steps 3 to 6. `encap_port` is the
    /// UDP port fleet packets arrive on. A burst of one: the rule has one implementation.
    pub fn decide_v4(&self, flow: &FlowKey, encap_port: u16) -> Classified {
        let mut out = [Classified::Decided(Decision::Pass)];
        self.decide_v4_burst(std::slice::from_ref(flow), encap_port, &mut out);
        out[0]
    }

    /// [`ForwardingTable::decide_v4`] for a burst; `out` must be as long as `flows`.
    ///
    /// The three steps of a decision, each for the whole burst before the next: each step
    /// starts loading what the next one reads, so the cache misses of a burst overlap
    /// instead of queueing behind one another packet by packet. The data plane's pipeline
    /// runs the same steps over each received burst, between its own.
    #[inline]
    pub fn decide_v4_burst(&self, flows: &[FlowKey], encap_port: u16, out: &mut [Classified]) {
        const CHUNK: usize = 32;
        for (flows, out) in flows.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let mut started = [Started::Fleet(FleetPacket::UnknownPeer); CHUNK];
            for (s, f) in started.iter_mut().zip(flows) {
                *s = self.start_v4(f, encap_port);
            }
            let mut steps = [Continued::default(); CHUNK];
            for ((c, f), s) in steps.iter_mut().zip(flows).zip(&started) {
                if let Started::Lookup(lookup) = *s {
                    *c = self.continue_v4(f, lookup);
                    self.prefetch_target(c);
                }
            }
            for ((o, c), s) in out.iter_mut().zip(steps).zip(started) {
                *o = match s {
                    Started::Fleet(fleet) => Classified::Fleet(fleet),
                    Started::Lookup(_) => Classified::Decided(self.finish_v4(c)),
                };
            }
        }
    }

    /// Step 1 of a decision: a fleet packet is classified by its addresses and protocol alone
    /// (the peers' map is small and stays in cache); any other packet starts the lookups of
    /// its source and destination, whose last level may not be in cache.
    #[inline]
    pub fn start_v4(&self, flow: &FlowKey, encap_port: u16) -> Started {
        if self.is_fleet_packet(flow, encap_port) {
            // Our own underlay is no peer: a tunnel "from us to us" comes from a spoofer (or
            // a loop), and decapsulating it would let a stranger inject inner packets.
            return Started::Fleet(match self.peers.get(flow.src) {
                Some(peer) if flow.src != self.my_underlay => FleetPacket::From(ServerId(peer)),
                _ => FleetPacket::UnknownPeer,
            });
        }
        Started::Lookup(Lookup {
            src: self.v4.probe(flow.src),
            dst: self.v4.probe(flow.dst),
        })
    }

    /// Step 2: the source's route decides egress (locally, or to which candidates); else the
    /// destination's decides whether this is a reply. A flow spread over several candidates
    /// still has its target to read: [`ForwardingTable::prefetch_target`] starts loading it.
    #[inline]
    pub fn continue_v4(&self, flow: &FlowKey, lookup: Lookup) -> Continued {
        if let Some(r) = self.v4.resolve(flow.src, lookup.src) {
            let route = self.hot_routes[r as usize];
            if route.tier == Tier::Local {
                return Continued::Decided(Decision::LocalEgress { pool: PoolId(r) });
            }
            let flow_hash = flow.hash();
            if let Spread::One(target) = route.spread {
                return Continued::Decided(Decision::Forward {
                    tier: route.tier,
                    target,
                    flow_hash,
                });
            }
            return Continued::Spreading(Spreading {
                tier: route.tier,
                flow_hash,
                spread: route.spread,
                bucket: bucket_of(flow_hash) as u16,
            });
        }
        Continued::Decided(match self.v4.resolve(flow.dst, lookup.dst) {
            Some(pool) => Decision::Reply { pool: PoolId(pool) },
            None => Decision::Pass,
        })
    }

    /// Between steps 2 and 3: starts loading what [`ForwardingTable::finish_v4`] reads of a
    /// spread flow (its rendezvous bucket, or the members its target is computed from). Apart
    /// from step 2 so that a caller that may not need the target (a flow pinned to one
    /// already) does not spend a load on it.
    #[inline]
    pub fn prefetch_target(&self, continued: &Continued) {
        let Continued::Spreading(s) = continued else {
            return;
        };
        match s.spread {
            Spread::One(_) => {}
            Spread::Buckets(base) => {
                prefetch_index(&self.buckets, base as usize + usize::from(s.bucket))
            }
            Spread::Computed { start, len, .. } => {
                // The first and the last of its (at most a few) cache lines.
                prefetch_index(&self.members, start as usize);
                prefetch_index(&self.members, start as usize + usize::from(len) - 1);
            }
        }
    }

    /// Step 3: the target of a flow spread over several candidates, from its bucket.
    #[inline]
    pub fn finish_v4(&self, continued: Continued) -> Decision {
        match continued {
            Continued::Decided(decision) => decision,
            Continued::Spreading(s) => Decision::Forward {
                tier: s.tier,
                target: self.bucket_target(s.spread, usize::from(s.bucket)),
                flow_hash: s.flow_hash,
            },
        }
    }

    /// Step 3 for a forwarded flow alone ([`Continued::forwarding`]): its target.
    #[inline]
    pub fn forward_target(&self, forwarding: &Forwarding) -> ServerId {
        match forwarding.target {
            PendingTarget::Known(target) => target,
            PendingTarget::Spread(spread, bucket) => {
                self.bucket_target(spread, usize::from(bucket))
            }
        }
    }

    #[inline]
    fn is_fleet_packet(&self, flow: &FlowKey, encap_port: u16) -> bool {
        flow.dst == self.my_underlay
            && (flow.proto == PROTO_IPIP || (flow.proto == PROTO_UDP && flow.dport == encap_port))
    }

    /// The decision for one IPv6 packet.
    #[inline]
    pub fn decide_v6(&self, src: u128, dst: u128) -> DecisionV6 {
        if self.v6.get(src).is_some() {
            DecisionV6::LocalEgress
        } else if self.v6.get(dst).is_some() {
            DecisionV6::Reply
        } else {
            DecisionV6::Pass
        }
    }
}

/// The slice maps of the pools `me` holds, one per distinct set of holders, and each pool's
/// map (or [`NOT_HELD`]).
fn held_slices(topology: &Topology, me: ServerId, seeds: &[u64]) -> (Vec<HeldSlices>, Vec<u32>) {
    let mut sets: HashMap<&[Holder], u32> = HashMap::new();
    let mut held = Vec::new();
    let held_of_pool = topology
        .pools
        .iter()
        .map(|pool| {
            if !pool.holders.iter().any(|h| h.server == me) {
                return NOT_HELD;
            }
            *sets.entry(&pool.holders[..]).or_insert_with(|| {
                let candidates = candidates_of(topology, seeds, &pool.holders);
                let map = crate::slices::map(&candidates, topology.port_slice);
                held.push(HeldSlices::new(map, me.0 as u16, topology.port_slice));
                held.len() as u32 - 1
            })
        })
        .collect();
    (held, held_of_pool)
}

/// Contract section 1 for one pool: the first tier that has holders, and those holders.
fn choose_tier(
    topology: &Topology,
    me: ServerId,
    distance: &[f64],
    holders: &[Holder],
) -> (Tier, Vec<Holder>) {
    let my = topology.server(me);
    // A drained holder takes no new flows (contract 4): the tiers are chosen among the
    // others. Validation guarantees that a pool has at least one.
    let accepting: Vec<Holder>;
    let holders = if holders.iter().any(|h| h.drain) {
        accepting = holders.iter().copied().filter(|h| !h.drain).collect();
        &accepting[..]
    } else {
        holders
    };
    if holders.iter().any(|h| h.server == me) {
        return (
            Tier::Local,
            vec![Holder {
                server: me,
                weight: 1,
                drain: false,
            }],
        );
    }
    let in_my_dc: Vec<Holder> = holders
        .iter()
        .copied()
        .filter(|h| topology.server(h.server).datacenter == my.datacenter)
        .collect();
    if !in_my_dc.is_empty() {
        return (Tier::SameDc, in_my_dc);
    }
    let in_my_location: Vec<Holder> = holders
        .iter()
        .copied()
        .filter(|h| topology.server(h.server).location == my.location)
        .collect();
    if !in_my_location.is_empty() {
        return (Tier::SameLocation, in_my_location);
    }
    let nearest: LocationId = holders
        .iter()
        .map(|h| topology.server(h.server).location)
        .min_by(|&a, &b| {
            distance[a.index()]
                .total_cmp(&distance[b.index()])
                .then_with(|| topology.location(a).name.cmp(&topology.location(b).name))
        })
        .expect("validation guarantees every pool has a holder");
    let there = holders
        .iter()
        .copied()
        .filter(|h| topology.server(h.server).location == nearest)
        .collect();
    (Tier::NearestLocation, there)
}

/// The spread of every candidate set (`sets`: candidates and how many pools use them), with
/// the bucket tables and members they point into. The sets used by the most pools get a table
/// (filled over the machine's cores) while their candidates fit `table_budget`;
/// the others are computed per flow. Either gives the same target for every flow: the winner
/// of the flow's bucket.
fn spread_sets(
    topology: &Topology,
    seeds: &[u64],
    sets: &[(Vec<Holder>, u32)],
    table_budget: usize,
) -> (Vec<Spread>, Vec<u16>, Vec<Member>) {
    let mut by_use: Vec<usize> = (0..sets.len()).collect();
    by_use.sort_unstable_by_key(|&i| (std::cmp::Reverse(sets[i].1), i));
    let mut budget = table_budget;
    let mut materialised = Vec::new();
    let mut computed = Vec::new();
    for set in by_use {
        match budget.checked_sub(sets[set].0.len()) {
            Some(left) => {
                budget = left;
                materialised.push(set);
            }
            None => computed.push(set),
        }
    }
    let mut spreads = vec![Spread::One(ServerId(0)); sets.len()];
    for (n, &set) in materialised.iter().enumerate() {
        spreads[set] = Spread::Buckets((n * BUCKETS) as u32);
    }
    let mut by_name: Vec<usize> = (0..topology.servers.len()).collect();
    by_name.sort_unstable_by(|&a, &b| topology.servers[a].name.cmp(&topology.servers[b].name));
    let mut name_rank = vec![0usize; by_name.len()];
    for (rank, &server) in by_name.iter().enumerate() {
        name_rank[server] = rank;
    }
    let mut members = Vec::new();
    for set in computed {
        let start = members.len() as u32;
        members.extend(sets[set].0.iter().map(|h| Member {
            seed: seeds[h.server.index()],
            weight: h.weight,
            server: h.server.0 as u16,
            name_rank: name_rank[h.server.index()] as u16,
            inverse_weight: 1.0 / f64::from(h.weight),
        }));
        let these = &members[start as usize..];
        spreads[set] = Spread::Computed {
            start,
            len: u16::try_from(these.len()).expect("a pool has fewer than 65536 holders"),
            equal_weights: equal_weights(these),
        };
    }
    let chosen: Vec<&[Holder]> = materialised.iter().map(|&i| &sets[i].0[..]).collect();
    (spreads, fill_all_buckets(topology, seeds, &chosen), members)
}

/// Fills the buckets of the given candidate sets, spread over the machine's cores.
/// Holders as rendezvous candidates (the candidate index is the server index).
fn candidates_of<'t>(
    topology: &'t Topology,
    seeds: &[u64],
    holders: &[Holder],
) -> Vec<Candidate<'t>> {
    holders
        .iter()
        .map(|h| Candidate {
            index: h.server.0 as u16,
            seed: seeds[h.server.index()],
            weight: h.weight,
            name: &topology.server(h.server).name,
        })
        .collect()
}

fn fill_all_buckets(topology: &Topology, seeds: &[u64], sets: &[&[Holder]]) -> Vec<u16> {
    let mut buckets = vec![0u16; sets.len() * BUCKETS];
    let fill = |set: &[Holder], out: &mut [u16]| {
        fill_buckets(&candidates_of(topology, seeds, set), out);
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sets.len().div_ceil(64))
        .max(1);
    if threads == 1 {
        for (set, out) in sets.iter().zip(buckets.chunks_mut(BUCKETS)) {
            fill(set, out);
        }
        return buckets;
    }
    let per_thread = sets.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (sets, out) in sets
            .chunks(per_thread)
            .zip(buckets.chunks_mut(per_thread * BUCKETS))
        {
            scope.spawn(move || {
                for (set, out) in sets.iter().zip(out.chunks_mut(BUCKETS)) {
                    fill(set, out);
                }
            });
        }
    });
    buckets
}
