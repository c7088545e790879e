//! Everything the appliance does to a packet (contract sections 1 and 5), as pure functions
//! over a [`PacketBuf`]: classify, decide (through the topology crate's one decision
//! implementation), rewrite, encapsulate, decapsulate.

use topology::hash::{outer_source_port, PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP};
use topology::{
    Continued, Decision, DecisionV6, FleetPacket, FlowKey, Forwarding, ForwardingTable, Lookup,
    PoolId, ServerId, Started, Tier,
};

use crate::buf::PacketBuf;
use crate::counters::{tier_index, DropReason, PipelineCounters};
use crate::flow::Probe;
use crate::fragments::FragmentRoute;
use crate::mappings::{self, Created, Ends, MappingOwner, MappingTable, Origin, Outbound};
use crate::pins::{PinProbe, Pinned};
use crate::reply::{self, Reply};
use crate::wire::ports::{self, End};
use crate::wire::{ethernet, gue, icmp, ipv4, ipv6, tcp, udp, WireError};

// The stages' and actions' own rooms; this file keeps the types, the burst's stages and the
// dispatch from a decision to its action.
mod classify;
mod icmp_errors;
mod returns;
mod state;
mod tunnel;

use crate::wire::tunnel::TunnelTemplate;
use classify::*;
use state::{PinAhead, Syn};

/// The tunnel forwarded packets travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// IPv4 / UDP / inner IPv4: GUE variant 1, as Linux FOU with `ipproto 4`.
    Fou,
    /// IPv4 / inner IPv4 (protocol 4).
    Ipip,
}

impl Encap {
    /// Bytes the tunnel adds in front of the inner IPv4 packet.
    pub fn overhead(self) -> usize {
        match self {
            Encap::Fou => ipv4::HEADER_LEN + udp::HEADER_LEN,
            Encap::Ipip => ipv4::HEADER_LEN,
        }
    }
}

/// The Ethernet addresses output through one port uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortAddrs {
    /// The port's own MAC: the source of what it sends.
    pub mac: [u8; 6],
    /// Where the port's output is addressed.
    pub next_hop: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    pub encap: Encap,
    pub encap_port: u16,
    /// IP MTU of the uplink towards the internet: the largest packet sent out unencapsulated.
    pub mtu: u16,
    /// IP MTU of the fabric between fleet servers: the largest encapsulated packet.
    pub underlay_mtu: u16,
    /// The largest TCP MSS a SYN or SYN-ACK may announce when it enters a tunnel, so that the
    /// connection's full-size segments fit through it; `None` leaves the MSS alone.
    pub mss_clamp: Option<u16>,
    pub uplink: PortAddrs,
    pub host: PortAddrs,
}

impl PipelineConfig {
    /// FOU on port 6080, 1500-byte MTUs on both sides, the MSS clamp they derive, and
    /// placeholder MACs (ports `…:0a` uplink and `…:0b` host, next hops `…:fe` and `…:01`):
    /// what benchmarks and tests run with.
    pub fn example() -> Self {
        Self {
            encap: Encap::Fou,
            encap_port: 6080,
            mtu: 1500,
            underlay_mtu: 1500,
            mss_clamp: Some(Self::derived_mss_clamp(1500, 1500, Encap::Fou)),
            uplink: PortAddrs {
                mac: [2, 0, 0, 0, 0, 0x0a],
                next_hop: [2, 0, 0, 0, 0, 0xfe],
            },
            host: PortAddrs {
                mac: [2, 0, 0, 0, 0, 0x0b],
                next_hop: [2, 0, 0, 0, 0, 0x01],
            },
        }
    }

    /// The MSS that makes a TCP segment without options fit both the tunnel and the internet
    /// path beyond it: `min(mtu, underlay_mtu - overhead)` less the 40 bytes of IPv4 and TCP
    /// headers.
    pub fn derived_mss_clamp(mtu: u16, underlay_mtu: u16, encap: Encap) -> u16 {
        let through_tunnel = usize::from(underlay_mtu).saturating_sub(encap.overhead());
        let ip = through_tunnel.min(usize::from(mtu));
        ip.saturating_sub(ipv4::HEADER_LEN + tcp::HEADER_LEN) as u16
    }
}

/// Who sent a packet the pipeline acts on, which decides whether we may answer it with an
/// ICMP error: only our own host's packets. A peer's inner packet or an origin's reply has a
/// source we must not send errors to from our underlay (it is on another server, or on the
/// internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Host,
    Elsewhere,
}

impl Sender {
    fn of(origin: Origin) -> Self {
        match origin {
            Origin::Host => Sender::Host,
            Origin::Peer(_) => Sender::Elsewhere,
        }
    }
}

/// A packet that dies here (TTL 1, egressing or forwarded) leaves no state behind: a
/// traceroute from the host would otherwise fill the tables with a mapping or pin per probe.
#[inline]
fn dies_here<B: PacketBuf>(buf: &mut B) -> bool {
    ip4_header_mut(buf.data_mut()).is_some_and(|ip| ip.ttl() <= 1)
}

/// Where a processed packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Out the uplink port (local egress, encapsulated, replies to peers).
    Uplink,
    /// Out the host port (replies for this host, ICMP errors).
    Host,
    /// Unchanged, out the port of the other role than the one it came in on.
    Pass,
    Drop(DropReason),
}

/// What the pipeline reads per burst: the current table, the mappings every worker shares,
/// and the workers' clock in seconds.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub table: &'a ForwardingTable,
    pub mappings: &'a MappingTable,
    pub now: u32,
}

/// What the pipeline knows of one packet between its stages.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Decided by the first stage (not IP, malformed, a stranger's tunnel, ...).
    Done(Verdict),
    V4,
    V6,
    /// A fleet packet from `peer`: its inner packet (the one decided) starts `strip` bytes
    /// after the Ethernet header.
    Fleet {
        peer: ServerId,
        strip: u16,
    },
}

/// One packet between the stages of the pipeline: what [`Pipeline::begin`] learned of it
/// and [`Pipeline::advance`] added.
#[derive(Debug, Clone, Copy)]
struct PacketRecord {
    kind: Kind,
    /// The flow an IPv4 packet is decided by: its own, or for a fleet packet the inner one.
    flow: FlowKey,
    /// Stage 1's lookups of the flow's routes (for [`Kind::V4`] and [`Kind::Fleet`]).
    lookup: Lookup,
    /// Stage 2's decision, complete but for a spread flow's target.
    continued: Continued,
    /// The mapping lookup (of a TCP or UDP flow egressing here, or of a reply) whose buckets
    /// stage 2 started loading.
    mapping: Option<Probe>,
    /// The pin of a TCP or UDP flow forwarded from the host, whose line stage 2 started
    /// loading instead of the flow's rendezvous bucket: an established flow's pin settles its
    /// target, and the table's is read only when it does not.
    pin: Option<PinProbe>,
    /// Stage 1's read of a TCP segment's flags (of [`Kind::V4`] packets): a pin's lifetime
    /// follows them, and a tunnel's MSS clamp passes over a packet they show is no SYN.
    tcp_flags: Option<u8>,
}

impl Default for PacketRecord {
    fn default() -> Self {
        Self {
            kind: Kind::V6,
            flow: FlowKey::default(),
            lookup: Lookup::default(),
            continued: Continued::default(),
            mapping: None,
            pin: None,
            tcp_flags: None,
        }
    }
}

/// The records of the burst the stages are working on.
#[derive(Debug, Clone)]
struct Burst {
    len: usize,
    packets: [PacketRecord; CHUNK],
}

impl Default for Burst {
    fn default() -> Self {
        Self {
            len: 0,
            packets: [PacketRecord::default(); CHUNK],
        }
    }
}

impl Burst {
    fn packets(&self) -> &[PacketRecord] {
        &self.packets[..self.len]
    }
}

/// TTL and TOS of ICMP errors we originate (Linux: precedence "internetwork control").
const ICMP_TTL: u8 = 64;
const ICMP_TOS: u8 = 0xc0;

/// Largest burst processed in one pass (bigger slices are processed in chunks of this).
pub const CHUNK: usize = 32;

/// The Ethernet header of a packet sent through a port.
fn ethernet_header(addrs: PortAddrs, ethertype: u16) -> [u8; ethernet::HEADER_LEN] {
    let mut header = [0u8; ethernet::HEADER_LEN];
    if let Ok(mut eth) = ethernet::Frame::new_checked(&mut header[..]) {
        eth.set_dst(addrs.next_hop);
        eth.set_src(addrs.mac);
        eth.set_ethertype(ethertype);
    }
    header
}

/// The Ethernet headers of everything the pipeline sends, built once per configuration, so
/// that addressing a packet is one 14-byte copy.
#[derive(Debug, Clone)]
struct EthernetHeaders {
    uplink_v4: [u8; ethernet::HEADER_LEN],
    host_v4: [u8; ethernet::HEADER_LEN],
    uplink_v6: [u8; ethernet::HEADER_LEN],
    host_v6: [u8; ethernet::HEADER_LEN],
}

impl EthernetHeaders {
    fn new(config: &PipelineConfig) -> Self {
        Self {
            uplink_v4: ethernet_header(config.uplink, ethernet::ETHERTYPE_IPV4),
            host_v4: ethernet_header(config.host, ethernet::ETHERTYPE_IPV4),
            uplink_v6: ethernet_header(config.uplink, ethernet::ETHERTYPE_IPV6),
            host_v6: ethernet_header(config.host, ethernet::ETHERTYPE_IPV6),
        }
    }
}

#[inline]
fn write_ethernet(frame: &mut [u8], header: &[u8; ethernet::HEADER_LEN]) {
    if let Some(h) = frame.first_chunk_mut() {
        *h = *header;
    }
}

/// The IPv4 packet of a frame that [`Pipeline::begin`] (or decapsulation) already checked.
fn ip4_mut(frame: &mut [u8]) -> Result<ipv4::Packet<&mut [u8]>, DropReason> {
    let ip = frame
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(DropReason::Truncated)?;
    ipv4::Packet::new_checked(ip).map_err(malformed)
}

/// The fixed IPv4 header of a frame that [`Pipeline::begin`] (or decapsulation) already checked:
/// its rewrites need no second validation.
#[inline]
fn ip4_header_mut(frame: &mut [u8]) -> Option<ipv4::FixedHeader<&mut [u8; ipv4::HEADER_LEN]>> {
    ipv4::FixedHeader::of_mut(frame.get_mut(ethernet::HEADER_LEN..)?)
}

pub struct Pipeline {
    config: PipelineConfig,
    /// This worker's half of the mappings: the ones it created, their clocks, its ports.
    mappings: MappingOwner,
    tunnel: TunnelTemplate,
    ethernet: EthernetHeaders,
    /// The records of the burst [`Pipeline::process_burst`] is processing: kept here rather
    /// than on the stack, so that their few KiB are not initialised per burst. (Taken out
    /// while in use, so that the stages can borrow the pipeline.)
    scratch: Option<Box<Burst>>,
    pub counters: PipelineCounters,
}

impl Pipeline {
    /// A worker's pipeline, with its half of the mappings.
    pub fn new(config: PipelineConfig, mappings: MappingOwner) -> Self {
        Self {
            mappings,
            tunnel: TunnelTemplate::new(
                config.uplink.mac,
                config.uplink.next_hop,
                config.encap == Encap::Fou,
                config.encap_port,
            ),
            ethernet: EthernetHeaders::new(&config),
            config,
            scratch: Some(Box::default()),
            counters: PipelineCounters::default(),
        }
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Processes one packet: a burst of one.
    pub fn process<B: PacketBuf>(&mut self, ctx: &Context<'_>, buf: &mut B) -> Verdict {
        let mut verdict = [Verdict::Pass];
        self.process_burst(ctx, std::slice::from_mut(buf), &mut verdict);
        verdict[0]
    }

    /// Processes a burst in place and says where each packet goes. `verdicts` must be as long
    /// as `bufs`. Drops and passes are counted here; the caller counts what it transmits.
    ///
    /// In three stages over the burst, each of which starts loading the table entries the
    /// next one reads: the cache misses of a whole burst overlap, instead of stalling on each
    /// packet in turn.
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        bufs: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        assert_eq!(bufs.len(), verdicts.len(), "one verdict per packet");
        let mut burst = self.scratch.take().unwrap_or_default();
        for (bufs, verdicts) in bufs.chunks_mut(CHUNK).zip(verdicts.chunks_mut(CHUNK)) {
            self.begin(ctx, bufs, &mut burst);
            self.advance(ctx, &mut burst);
            Self::locate_flow_state(ctx, &burst);
            self.finish(ctx, bufs, &burst, verdicts);
        }
        self.scratch = Some(burst);
    }

    /// Stage 1 of a burst of at most [`CHUNK`] packets (contract section 5 steps 1 to 3):
    /// classifies and validates each packet, takes the inner packet out of a fleet packet,
    /// and starts the table lookups of the flow to decide. Nothing is changed or counted yet.
    fn begin<B: PacketBuf>(&self, ctx: &Context<'_>, bufs: &[B], burst: &mut Burst) {
        assert!(bufs.len() <= CHUNK, "a burst has at most {CHUNK} packets");
        burst.len = bufs.len();
        let encap_port = self.config.encap_port;
        for (buf, record) in bufs.iter().zip(&mut burst.packets) {
            let frame = buf.data();
            let Ok(eth) = ethernet::Frame::new_checked(frame) else {
                record.kind = Kind::Done(Verdict::Drop(DropReason::Truncated));
                continue;
            };
            record.kind = match eth.ethertype() {
                ethernet::ETHERTYPE_IPV4 => match flow_and_flags_of(eth.payload()) {
                    Ok((flow, tcp_flags)) => match ctx.table.start_v4(&flow, encap_port) {
                        Started::Fleet(FleetPacket::From(peer)) => match inner_of(frame) {
                            Ok((strip, inner)) => match ctx.table.start_v4(&inner, encap_port) {
                                Started::Lookup(lookup) => {
                                    record.flow = inner;
                                    // Only a host flow's pin reads them.
                                    record.tcp_flags = None;
                                    record.lookup = lookup;
                                    Kind::Fleet {
                                        peer,
                                        strip: strip as u16,
                                    }
                                }
                                // Itself a tunnel to us: nothing a peer may send.
                                Started::Fleet(_) => {
                                    Kind::Done(Verdict::Drop(DropReason::BadInner))
                                }
                            },
                            Err(reason) => Kind::Done(Verdict::Drop(reason)),
                        },
                        Started::Fleet(FleetPacket::UnknownPeer) => {
                            Kind::Done(Verdict::Drop(DropReason::UnknownPeer))
                        }
                        Started::Lookup(lookup) => {
                            record.flow = flow;
                            record.tcp_flags = tcp_flags;
                            record.lookup = lookup;
                            Kind::V4
                        }
                    },
                    Err(reason) => Kind::Done(Verdict::Drop(reason)),
                },
                ethernet::ETHERTYPE_IPV6 => match ipv6::Packet::new_checked(eth.payload()) {
                    Ok(_) => Kind::V6,
                    Err(err) => Kind::Done(Verdict::Drop(malformed(err))),
                },
                _ => Kind::Done(Verdict::Pass),
            };
        }
    }

    /// Stage 2: the routes of each flow, as far as they decide it; starts loading the
    /// mapping buckets of a TCP or UDP flow egressing here or of a reply, the pin line of one
    /// forwarded from the host, or else the rendezvous bucket of a flow spread over several
    /// servers.
    fn advance(&self, ctx: &Context<'_>, burst: &mut Burst) {
        let worker = self.mappings.pins_ref().worker();
        for record in &mut burst.packets[..burst.len] {
            record.mapping = None;
            record.pin = None;
            let origin = match record.kind {
                Kind::V4 => Origin::Host,
                Kind::Fleet { peer, .. } => Origin::Peer(ctx.table.underlay_of(peer)),
                Kind::Done(_) | Kind::V6 => continue,
            };
            let flow = &record.flow;
            let continued = ctx.table.continue_v4(flow, record.lookup);
            record.continued = continued;
            // Fragments and ICMP carry no ports in the flow key: looked up when acted on.
            let ports = state::has_ports(flow);
            record.mapping = match continued {
                Continued::Decided(Decision::LocalEgress { pool }) if ports => {
                    ctx.table.held_slices(pool).map(|held| {
                        ctx.mappings
                            .outbound_probe(&outbound_ends_of(flow), origin, held)
                    })
                }
                Continued::Decided(Decision::Reply { .. }) if ports => {
                    Some(ctx.mappings.reply_probe(&reply_ends_of(flow)))
                }
                // A flow forwarded from the host reads its pin instead of its target.
                Continued::Decided(Decision::Forward { flow_hash, .. })
                    if ports && matches!(record.kind, Kind::V4) =>
                {
                    record.pin = Some(Self::prefetch_pin(ctx, worker, flow_hash));
                    None
                }
                Continued::Spreading(_) => {
                    match continued.forwarding() {
                        Some(f) if ports && matches!(record.kind, Kind::V4) => {
                            record.pin = Some(Self::prefetch_pin(ctx, worker, f.flow_hash));
                        }
                        _ => ctx.table.prefetch_target(&continued),
                    }
                    None
                }
                _ => None,
            };
            if let Some(probe) = record.mapping {
                ctx.mappings.prefetch(probe);
            }
        }
    }

    /// Starts loading the pin of a flow `worker` forwards from the host, and says where it is.
    #[inline]
    fn prefetch_pin(ctx: &Context<'_>, worker: u16, flow_hash: u64) -> PinProbe {
        let pins = ctx.mappings.pins();
        let probe = pins.probe(worker, flow_hash);
        pins.prefetch(probe);
        probe
    }

    /// Stage 2b: once the mapping buckets of the burst are on their way, starts loading the
    /// entry each key's tag points to (with its clock), so that stage 3 finds an established
    /// flow's mapping in cache (at 1M mappings, each is a miss otherwise). A pin is whole in
    /// the line stage 2 prefetched.
    fn locate_flow_state(ctx: &Context<'_>, burst: &Burst) {
        for probe in burst.packets().iter().filter_map(|r| r.mapping) {
            ctx.mappings.prefetch_entry(probe);
        }
    }

    /// Stage 3: decides each packet, rewrites it and counts drops and passes. `bufs` and
    /// `verdicts` are the burst [`Pipeline::begin`] saw, with the records it and
    /// [`Pipeline::advance`] left.
    fn finish<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        bufs: &mut [B],
        burst: &Burst,
        verdicts: &mut [Verdict],
    ) {
        assert!(
            bufs.len() == burst.len && verdicts.len() == burst.len,
            "finish sees the burst begin saw"
        );
        let per_packet = bufs
            .iter_mut()
            .zip(verdicts.iter_mut())
            .zip(burst.packets());
        for ((buf, verdict), record) in per_packet {
            *verdict = match record.kind {
                Kind::Done(v) => v,
                Kind::V4 => match record.continued.forwarding() {
                    // The table's target is read only if the flow's pin does not settle it.
                    Some(forwarding) => {
                        let pin = record.pin.map(|probe| PinAhead {
                            probe,
                            tcp_flags: record.tcp_flags,
                        });
                        let syn = Syn::of(record.tcp_flags);
                        self.forward(ctx, buf, &record.flow, forwarding, pin, syn, Origin::Host)
                    }
                    None => {
                        let decision = ctx.table.finish_v4(record.continued);
                        self.act_v4(ctx, buf, &record.flow, decision, Origin::Host)
                    }
                },
                Kind::Fleet { peer, strip } => {
                    let decision = ctx.table.finish_v4(record.continued);
                    let peer = ctx.table.underlay_of(peer);
                    self.decapsulate(ctx, buf, &record.flow, peer, strip, decision)
                }
                Kind::V6 => self.act_v6(ctx, buf),
            };
            match *verdict {
                Verdict::Drop(reason) => self.counters.drop(reason),
                Verdict::Pass => self.counters.passed += 1,
                Verdict::Uplink | Verdict::Host => {}
            }
        }
    }

    /// Steps 3 to 6 for an IPv4 packet whose decision is known. `origin` is where it came
    /// from: [`Origin::Host`] for a packet that did not come through a tunnel (an egress
    /// packet from the host port, or a reply from the uplink), else the peer that
    /// encapsulated it.
    fn act_v4<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        flow: &FlowKey,
        decision: Decision,
        origin: Origin,
    ) -> Verdict {
        let sender = Sender::of(origin);
        match decision {
            Decision::Pass => Verdict::Pass,
            Decision::LocalEgress { pool } => {
                if dies_here(buf) {
                    return Verdict::Drop(DropReason::TtlExceeded);
                }
                // 7.6: a flow pinned to another holder before this server took the address
                // on keeps going there.
                if matches!(origin, Origin::Host) && ctx.table.newly_held(pool, ctx.now) {
                    if let Some((target, hash)) = self.pinned_elsewhere(ctx, buf, flow) {
                        self.counters.pins_elsewhere += 1;
                        return self.encapsulate(
                            ctx,
                            buf,
                            ctx.table.underlay_of(target),
                            hash,
                            sender,
                            Syn::Unknown,
                        );
                    }
                }
                self.counters.tiers[tier_index(Tier::Local)] += 1;
                let room = self.config.mtu;
                if ip4_header_mut(buf.data_mut())
                    .is_some_and(|ip| ip.total_len() > usize::from(room))
                {
                    return self.too_big(ctx, buf, room, sender);
                }
                if let Err(reason) = self.map_outbound(ctx, buf, pool, origin) {
                    return Verdict::Drop(reason);
                }
                // The replies of a pool with other holders may land on one of them and be
                // steered here through a tunnel (7.3.2): their segments must fit it too.
                if let Some(mss) = self.config.mss_clamp {
                    if ctx.table.routes()[pool.index()].holders.len() > 1 {
                        self.clamp_syn(buf, mss);
                    }
                }
                route_v4(buf, &self.ethernet.uplink_v4, Verdict::Uplink)
            }
            Decision::Forward {
                tier,
                target,
                flow_hash,
            } => {
                let forwarding = Forwarding::to(tier, target, flow_hash);
                self.forward(ctx, buf, flow, forwarding, None, Syn::Unknown, origin)
            }
            Decision::Reply { pool } => self.reply(ctx, buf, pool, origin),
        }
    }

    /// Step 4's forward: encapsulates the packet to the table's target, or, for a flow from
    /// the host, to the one its pin keeps (7.6; `pin` is where stage 2 started loading it).
    /// `syn` is what stage 1 knows of it being a SYN to clamp.
    #[allow(clippy::too_many_arguments)]
    fn forward<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        flow: &FlowKey,
        forwarding: Forwarding,
        pin: Option<PinAhead>,
        syn: Syn,
        origin: Origin,
    ) -> Verdict {
        if dies_here(buf) {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        if let Some(pool) = self.drained_but_leaving_here(ctx, buf, origin) {
            return self.act_v4(ctx, buf, flow, Decision::LocalEgress { pool }, origin);
        }
        self.counters.tiers[tier_index(forwarding.tier)] += 1;
        let target = match origin {
            Origin::Host => match self.pinned_target(ctx, buf, flow, &forwarding, pin) {
                Ok(target) => target,
                Err(reason) => return Verdict::Drop(reason),
            },
            Origin::Peer(_) => ctx.table.forward_target(&forwarding),
        };
        let underlay = ctx.table.underlay_of(target);
        let sender = Sender::of(origin);
        self.encapsulate(ctx, buf, underlay, forwarding.flow_hash, sender, syn)
    }

    /// Removes the mappings of this worker idle past their time, at most `budget`; the
    /// worker calls it once per poll round.
    pub fn expire(&mut self, ctx: &Context<'_>, budget: usize) {
        let removed = self.mappings.expire(ctx.mappings, ctx.now, budget);
        self.counters.mappings_expired += removed as u64;
        let unpinned = self
            .mappings
            .pins()
            .expire(ctx.mappings.pins(), ctx.now, budget);
        self.counters.pins_expired += unpinned as u64;
    }

    /// This worker's pinned flows in use.
    pub fn pins_in_use(&self) -> usize {
        self.mappings.pins_ref().len()
    }

    /// This worker's mappings in use.
    pub fn mappings_in_use(&self) -> usize {
        self.mappings.len()
    }

    fn act_v6<B: PacketBuf>(&mut self, ctx: &Context<'_>, buf: &mut B) -> Verdict {
        let frame = buf.data_mut();
        let Some(Ok(mut ip)) = frame
            .get_mut(ethernet::HEADER_LEN..)
            .map(ipv6::Packet::new_checked)
        else {
            return Verdict::Drop(DropReason::Truncated);
        };
        let (header, verdict) = match ctx.table.decide_v6(ip.src(), ip.dst()) {
            DecisionV6::Pass => return Verdict::Pass,
            DecisionV6::LocalEgress => {
                self.counters.tiers[tier_index(Tier::Ipv6Local)] += 1;
                (&self.ethernet.uplink_v6, Verdict::Uplink)
            }
            DecisionV6::Reply => {
                self.counters.replies_to_host += 1;
                (&self.ethernet.host_v6, Verdict::Host)
            }
        };
        if ip.hop_limit() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        // No ICMPv6 "packet too big" is generated here: IPv6 egress leaves unencapsulated, so
        // only a host that ignores its own MTU sends one, and the uplink drops it, counted.
        if verdict == Verdict::Uplink
            && ipv6::HEADER_LEN + ip.payload_len() > usize::from(self.config.mtu)
        {
            return Verdict::Drop(DropReason::TooBig);
        }
        ip.decrement_hop_limit();
        write_ethernet(frame, header);
        verdict
    }
}

/// The hash of the outbound direction of the flow `ends` left with `port`: what spreads its
/// replies' tunnels over the receiver's queues (the same outer port as its own packets).
fn outbound_hash(ends: &Ends, port: u16) -> u64 {
    FlowKey::new(
        ends.local,
        ends.remote,
        ends.proto,
        Some((port, ends.remote_port)),
    )
    .hash()
}

/// The mapped ends of an outbound TCP or UDP flow, from its key (which has its ports).
#[inline]
fn outbound_ends_of(flow: &FlowKey) -> Ends {
    Ends {
        proto: flow.proto,
        local: flow.src,
        local_port: flow.sport,
        remote: flow.dst,
        remote_port: flow.dport,
    }
}

/// The mapped ends of a TCP or UDP reply, from its key.
#[inline]
fn reply_ends_of(flow: &FlowKey) -> Ends {
    Ends {
        proto: flow.proto,
        local: flow.dst,
        local_port: flow.dport,
        remote: flow.src,
        remote_port: flow.sport,
    }
}

/// Routes the packet itself out of a port: TTL down by one, Ethernet addressed to the port's
/// next hop.
fn route_v4<B: PacketBuf>(
    buf: &mut B,
    ethernet: &[u8; ethernet::HEADER_LEN],
    verdict: Verdict,
) -> Verdict {
    let frame = buf.data_mut();
    let Some(mut ip) = ip4_header_mut(frame) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    if ip.ttl() <= 1 {
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    ip.decrement_ttl();
    write_ethernet(frame, ethernet);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid TCP/IPv4 header without options, with `payload` bytes after it.
    fn plain_packet(payload: &[u8]) -> Vec<u8> {
        let mut ip = vec![0u8; ipv4::HEADER_LEN];
        ipv4::Repr {
            src: 0xc633_6401,
            dst: 0x5db8_d822,
            protocol: PROTO_TCP,
            tos: 0,
            ttl: 64,
            dont_fragment: true,
            payload_len: payload.len(),
        }
        .emit(&mut ip);
        ip.extend_from_slice(payload);
        ip
    }

    proptest! {
        /// The fast path for headers without options is the general rule, not a second one:
        /// for any bytes that start like such a header, both give the same key or the same
        /// drop reason.
        #[test]
        fn plain_headers_get_what_the_general_checks_give(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            patches in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            cut in 0usize..64,
        ) {
            let mut ip = plain_packet(&payload);
            for (at, byte) in patches {
                if let Some(b) = ip.get_mut(at) {
                    *b = byte;
                }
            }
            ip[0] = 0x45;
            ip.truncate(cut.max(ipv4::HEADER_LEN));
            prop_assert_eq!(flow_and_flags_of(&ip), flow_with_options_of(&ip));
        }
    }

    #[test]
    fn the_fast_path_reads_ports_and_skips_them_for_fragments() {
        let mut ip = plain_packet(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0]);
        let flow = flow_of(&ip).unwrap();
        assert_eq!(
            (flow.sport, flow.dport, flow.proto),
            (40000, 443, PROTO_TCP)
        );
        // Eight bytes of TCP: no flags to read.
        assert_eq!((flow, None), flow_with_options_of(&ip).unwrap());
        // More fragments: no ports, checksum fixed up again.
        ip[6] |= 0x20;
        ipv4::Packet::new_checked(&mut ip[..])
            .unwrap()
            .fill_checksum();
        let fragment = flow_of(&ip).unwrap();
        assert_eq!((fragment.sport, fragment.dport), (0, 0));
        assert_eq!((fragment, None), flow_with_options_of(&ip).unwrap());
    }

    #[test]
    fn stage_one_reads_the_flags_of_a_tcp_segment_within_its_total_length() {
        let mut segment = [0u8; 20];
        segment[..4].copy_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        segment[tcp::FLAGS] = tcp::FLAG_FIN | tcp::FLAG_ACK;
        let ip = plain_packet(&segment);
        let (_, flags) = flow_and_flags_of(&ip).unwrap();
        assert_eq!(flags, Some(tcp::FLAG_FIN | tcp::FLAG_ACK));
        assert_eq!(flow_with_options_of(&ip).unwrap().1, flags);
        // The flags byte past the total length (trailing bytes of a short frame): not read.
        let mut short = plain_packet(&segment[..tcp::FLAGS]);
        short.extend_from_slice(&segment[tcp::FLAGS..]);
        assert_eq!(flow_and_flags_of(&short).unwrap().1, None);
    }
}
