//! Everything the appliance does to a packet (contract sections 1 and 5), as pure functions
//! over a [`PacketBuf`]: classify, decide (through the topology crate's one decision
//! implementation), rewrite, encapsulate, decapsulate.

use topology::hash::{outer_source_port, PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP};
use topology::{
    Continued, Decision, DecisionV6, FlowKey, ForwardingTable, PoolId, ServerId, Started, Tier,
};

use crate::buf::PacketBuf;
use crate::counters::{tier_index, DropReason, PipelineCounters};
use crate::flow::Probe;
use crate::fragments::FragmentRoute;
use crate::mappings::{self, Created, Ends, MappingOwner, MappingTable, Origin, Outbound};
use crate::pins::Pinned;
use crate::reply::{self, Reply};
use crate::wire::ports::{self, End};
use crate::wire::{checksum, ethernet, gue, icmp, ipv4, ipv6, tcp, udp, WireError};

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

/// One burst between the stages of the pipeline: what [`Pipeline::begin`] learned of each
/// packet and [`Pipeline::advance`] added.
#[derive(Debug, Clone)]
struct BurstState {
    len: usize,
    kinds: [Kind; CHUNK],
    /// The flow each IPv4 packet is decided by: its own, or for a fleet packet the inner one.
    flows: [FlowKey; CHUNK],
    started: [Started; CHUNK],
    continued: [Continued; CHUNK],
    /// The mapping lookup of a TCP or UDP flow egressing here or of a reply, whose buckets
    /// stage 2 started loading.
    mapping_probes: [Option<Probe>; CHUNK],
    /// The pin lookup of a TCP or UDP flow from the host that the table forwards.
    pin_probes: [Option<Probe>; CHUNK],
}

impl Default for BurstState {
    fn default() -> Self {
        Self {
            len: 0,
            kinds: [Kind::V6; CHUNK],
            flows: [FlowKey::default(); CHUNK],
            started: [Started::default(); CHUNK],
            continued: [Continued::default(); CHUNK],
            mapping_probes: [None; CHUNK],
            pin_probes: [None; CHUNK],
        }
    }
}

/// Outer TTL of encapsulated packets, as Linux tunnels default to.
const OUTER_TTL: u8 = 64;
/// TTL and TOS of ICMP errors we originate (Linux: precedence "internetwork control").
const ICMP_TTL: u8 = 64;
const ICMP_TOS: u8 = 0xc0;

/// Largest burst processed in one pass (bigger slices are processed in chunks of this).
pub const CHUNK: usize = 32;

fn malformed(err: WireError) -> DropReason {
    match err {
        WireError::Truncated => DropReason::Truncated,
        WireError::BadVersion => DropReason::BadVersion,
        WireError::BadHeaderLength => DropReason::BadHeaderLength,
        WireError::BadTotalLength => DropReason::BadTotalLength,
    }
}

/// The flow key of a well-formed IPv4 packet, or why it is malformed.
///
/// Always inlined into [`Pipeline::begin`]: returned through memory, the key is written field by
/// field and read back whole by the caller, a store-forwarding stall per packet.
#[inline(always)]
fn flow_of(ip: &[u8]) -> Result<FlowKey, DropReason> {
    match ipv4::FixedHeader::of(ip) {
        Some(header) if header.is_plain() => plain_flow_of(ip, &header),
        _ => flow_with_options_of(ip),
    }
}

/// [`flow_of`] for a header without options, read at fixed offsets: the same checks in the
/// same order as [`ipv4::Packet::new_checked`] makes them for such a header.
#[inline(always)]
fn plain_flow_of(
    ip: &[u8],
    header: &ipv4::FixedHeader<&[u8; ipv4::HEADER_LEN]>,
) -> Result<FlowKey, DropReason> {
    let total_len = header.total_len();
    if total_len < ipv4::HEADER_LEN || total_len > ip.len() {
        return Err(DropReason::BadTotalLength);
    }
    if !header.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let protocol = header.protocol();
    let (sport, dport) = match protocol {
        PROTO_TCP | PROTO_UDP if !header.is_fragment() => ip
            .get(ipv4::HEADER_LEN..total_len)
            .and_then(udp::ports)
            .ok_or(DropReason::Truncated)?,
        _ => (0, 0),
    };
    Ok(FlowKey {
        src: header.src(),
        dst: header.dst(),
        proto: protocol,
        sport,
        dport,
    })
}

/// [`flow_of`] for every other header: options, or not IPv4 at all (kept out of line, so that
/// the burst loop stays small for the common case).
#[inline(never)]
fn flow_with_options_of(ip: &[u8]) -> Result<FlowKey, DropReason> {
    let p = ipv4::Packet::new_checked(ip).map_err(malformed)?;
    if !p.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let ports = match p.protocol() {
        PROTO_TCP | PROTO_UDP if !p.is_fragment() => {
            Some(udp::ports(p.payload()).ok_or(DropReason::Truncated)?)
        }
        _ => None,
    };
    Ok(FlowKey::new(p.src(), p.dst(), p.protocol(), ports))
}

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

/// Room for the longest tunnel: Ethernet, IPv4 and UDP.
const TUNNEL_MAX: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// The outer headers of every encapsulated packet, built once per configuration. Per packet
/// only the source and destination underlays, the TOS, the lengths, the UDP source port and
/// the checksum change; the checksum is completed from the sum of the constant words.
#[derive(Debug, Clone)]
struct TunnelTemplate {
    headers: [u8; TUNNEL_MAX],
    udp: bool,
    /// One's-complement sum of the IPv4 header words that never change: version and IHL
    /// (TOS excluded), flags, TTL and protocol.
    constant_sum: u32,
}

impl TunnelTemplate {
    fn new(config: &PipelineConfig) -> Self {
        let udp = config.encap == Encap::Fou;
        let protocol = if udp { PROTO_UDP } else { PROTO_IPIP };
        let mut headers = [0u8; TUNNEL_MAX];
        headers[0..6].copy_from_slice(&config.uplink.next_hop);
        headers[6..12].copy_from_slice(&config.uplink.mac);
        headers[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        headers[14] = 0x45;
        headers[20..22].copy_from_slice(&ipv4::FLAG_DONT_FRAGMENT.to_be_bytes());
        headers[22] = OUTER_TTL;
        headers[23] = protocol;
        headers[36..38].copy_from_slice(&config.encap_port.to_be_bytes());
        let constant_sum = checksum::add_words(
            0,
            &[
                0x4500,
                ipv4::FLAG_DONT_FRAGMENT,
                u16::from_be_bytes([OUTER_TTL, protocol]),
            ],
        );
        Self {
            headers,
            udp,
            constant_sum,
        }
    }

    /// Writes the outer headers at the front of `frame`, in front of an inner packet of
    /// `inner_len` bytes. `frame` has room for them (the caller prepended the overhead).
    #[inline(always)]
    fn write(&self, frame: &mut [u8], src: u32, dst: u32, tos: u8, inner_len: usize, sport: u16) {
        if self.udp {
            let Some(h) = frame.first_chunk_mut::<TUNNEL_MAX>() else {
                return;
            };
            *h = self.headers;
            h[34..36].copy_from_slice(&sport.to_be_bytes());
            h[38..40].copy_from_slice(&((udp::HEADER_LEN + inner_len) as u16).to_be_bytes());
            self.fill_ip(
                h,
                src,
                dst,
                tos,
                (ipv4::HEADER_LEN + udp::HEADER_LEN + inner_len) as u16,
            );
        } else {
            const LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
            let Some(h) = frame.first_chunk_mut::<LEN>() else {
                return;
            };
            h.copy_from_slice(&self.headers[..LEN]);
            self.fill_ip(h, src, dst, tos, (ipv4::HEADER_LEN + inner_len) as u16);
        }
    }

    /// The per-packet fields of the outer IPv4 header, behind the Ethernet header in `h`, and
    /// its checksum.
    #[inline(always)]
    fn fill_ip(&self, h: &mut [u8], src: u32, dst: u32, tos: u8, ip_total: u16) {
        h[15] = tos;
        h[16..18].copy_from_slice(&ip_total.to_be_bytes());
        h[26..30].copy_from_slice(&src.to_be_bytes());
        h[30..34].copy_from_slice(&dst.to_be_bytes());
        let words = [
            u16::from(tos),
            ip_total,
            (src >> 16) as u16,
            src as u16,
            (dst >> 16) as u16,
            dst as u16,
        ];
        h[24..26].copy_from_slice(
            &checksum::finish(checksum::add_words(self.constant_sum, &words)).to_be_bytes(),
        );
    }
}

pub struct Pipeline {
    config: PipelineConfig,
    /// This worker's half of the mappings: the ones it created, their clocks, its ports.
    mappings: MappingOwner,
    tunnel: TunnelTemplate,
    ethernet: EthernetHeaders,
    /// The state of the burst [`Pipeline::process_burst`] is processing: kept here rather
    /// than on the stack, so that its 2 KiB are not initialised per burst. (Taken out while
    /// in use, so that the stages can borrow the pipeline.)
    scratch: Option<Box<BurstState>>,
    pub counters: PipelineCounters,
}

impl Pipeline {
    /// A worker's pipeline, with its half of the mappings.
    pub fn new(config: PipelineConfig, mappings: MappingOwner) -> Self {
        Self {
            mappings,
            tunnel: TunnelTemplate::new(&config),
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
        let mut state = self.scratch.take().unwrap_or_default();
        for (bufs, verdicts) in bufs.chunks_mut(CHUNK).zip(verdicts.chunks_mut(CHUNK)) {
            self.begin(ctx, bufs, &mut state);
            Self::advance(ctx, &mut state);
            self.locate_mappings(ctx, &state);
            self.finish(ctx, bufs, &state, verdicts);
        }
        self.scratch = Some(state);
    }

    /// Stage 1 of a burst of at most [`CHUNK`] packets (contract section 5 steps 1 to 3):
    /// classifies and validates each packet, takes the inner packet out of a fleet packet,
    /// and starts the table lookups of the flow to decide. Nothing is changed or counted yet.
    fn begin<B: PacketBuf>(&self, ctx: &Context<'_>, bufs: &[B], state: &mut BurstState) {
        assert!(bufs.len() <= CHUNK, "a burst has at most {CHUNK} packets");
        state.len = bufs.len();
        let encap_port = self.config.encap_port;
        for (i, buf) in bufs.iter().enumerate() {
            let frame = buf.data();
            let Ok(eth) = ethernet::Frame::new_checked(frame) else {
                state.kinds[i] = Kind::Done(Verdict::Drop(DropReason::Truncated));
                continue;
            };
            state.kinds[i] = match eth.ethertype() {
                ethernet::ETHERTYPE_IPV4 => match flow_of(eth.payload()) {
                    Ok(flow) => match ctx.table.start_v4(&flow, encap_port) {
                        Started::Decided(Decision::Decapsulate { peer }) => match inner_of(frame) {
                            Ok((strip, inner)) => {
                                state.flows[i] = inner;
                                state.started[i] = ctx.table.start_v4(&inner, encap_port);
                                Kind::Fleet {
                                    peer,
                                    strip: strip as u16,
                                }
                            }
                            Err(reason) => Kind::Done(Verdict::Drop(reason)),
                        },
                        Started::Decided(_) => Kind::Done(Verdict::Drop(DropReason::UnknownPeer)),
                        started => {
                            state.flows[i] = flow;
                            state.started[i] = started;
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
    /// rendezvous bucket of a flow spread over several servers, and the mapping buckets of a
    /// TCP or UDP flow egressing here or of a reply.
    fn advance(ctx: &Context<'_>, state: &mut BurstState) {
        let n = state.len;
        let per_packet = state.kinds[..n]
            .iter()
            .zip(&state.flows[..n])
            .zip(&state.started[..n])
            .zip(&mut state.continued[..n])
            .zip(&mut state.mapping_probes[..n])
            .zip(&mut state.pin_probes[..n]);
        for (((((kind, flow), &started), continued), probe), pin_probe) in per_packet {
            *probe = None;
            *pin_probe = None;
            let origin = match *kind {
                Kind::V4 => Origin::Host,
                Kind::Fleet { peer, .. } => Origin::Peer(ctx.table.underlay_of(peer)),
                Kind::Done(_) | Kind::V6 => continue,
            };
            let c = ctx.table.continue_v4(flow, started);
            // Fragments and ICMP carry no ports in the flow key: looked up when acted on.
            if matches!(flow.proto, PROTO_TCP | PROTO_UDP) && (flow.sport | flow.dport) != 0 {
                *probe = match c.decision() {
                    Decision::LocalEgress { pool } => ctx.table.held_slices(pool).map(|held| {
                        ctx.mappings
                            .outbound_probe(&outbound_ends_of(flow), origin, held)
                    }),
                    Decision::Reply { .. } => Some(ctx.mappings.reply_probe(&reply_ends_of(flow))),
                    Decision::Forward { .. } if matches!(kind, Kind::V4) => {
                        let pins = ctx.mappings.pins();
                        let pin = pins.probe(flow);
                        pins.prefetch(pin);
                        *pin_probe = Some(pin);
                        None
                    }
                    _ => None,
                };
                if let Some(probe) = *probe {
                    ctx.mappings.prefetch(probe);
                }
            }
            *continued = c;
        }
    }

    /// Stage 2b: once the mapping buckets of the burst are on their way, starts loading the
    /// entry each key's tag points to (with its clock), so that stage 3 finds an established
    /// flow's mapping in cache (at 1M mappings, each is a miss otherwise).
    fn locate_mappings(&self, ctx: &Context<'_>, state: &BurstState) {
        for probe in state.mapping_probes[..state.len].iter().flatten() {
            ctx.mappings.prefetch_entry(*probe);
        }
        for probe in state.pin_probes[..state.len].iter().flatten() {
            ctx.mappings.pins().prefetch_entry(*probe);
        }
    }

    /// Stage 3: decides each packet, rewrites it and counts drops and passes. `bufs` and
    /// `verdicts` are the burst [`Pipeline::begin`] saw, with the state it and
    /// [`Pipeline::advance`] left.
    fn finish<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        bufs: &mut [B],
        state: &BurstState,
        verdicts: &mut [Verdict],
    ) {
        assert!(
            bufs.len() == state.len && verdicts.len() == state.len,
            "finish sees the burst begin saw"
        );
        for (i, (buf, verdict)) in bufs.iter_mut().zip(verdicts.iter_mut()).enumerate() {
            *verdict = match state.kinds[i] {
                Kind::Done(v) => v,
                Kind::V4 => {
                    let decision = ctx.table.finish_v4(state.continued[i]);
                    self.act_v4(ctx, buf, decision, Origin::Host)
                }
                Kind::Fleet { peer, strip } => {
                    let decision = ctx.table.finish_v4(state.continued[i]);
                    let peer = ctx.table.underlay_of(peer);
                    self.decapsulate(ctx, buf, peer, strip, decision)
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
        decision: Decision,
        origin: Origin,
    ) -> Verdict {
        let sender = match origin {
            Origin::Host => Sender::Host,
            Origin::Peer(_) => Sender::Elsewhere,
        };
        // A packet that dies here leaves no state behind (a traceroute from the host would
        // otherwise fill the tables with a mapping or pin per probe).
        if matches!(
            decision,
            Decision::LocalEgress { .. } | Decision::Forward { .. }
        ) && ip4_header_mut(buf.data_mut()).is_some_and(|ip| ip.ttl() <= 1)
        {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        match decision {
            Decision::Pass => Verdict::Pass,
            Decision::UnknownPeer => Verdict::Drop(DropReason::UnknownPeer),
            // Fleet packets are decapsulated before this; an inner packet that is itself a
            // tunnel to us never gets here (it is a bad inner packet).
            Decision::Decapsulate { .. } => Verdict::Drop(DropReason::BadInner),
            Decision::LocalEgress { pool } => {
                // 7.6: a flow pinned to another holder before this server took the address
                // on keeps going there.
                if matches!(origin, Origin::Host) && ctx.table.newly_held(pool, ctx.now) {
                    if let Some((target, hash)) = self.pinned_elsewhere(ctx, buf) {
                        self.counters.pins_elsewhere += 1;
                        return self.encapsulate(
                            ctx,
                            buf,
                            ctx.table.underlay_of(target),
                            hash,
                            sender,
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
                if let Some(pool) = self.drained_but_leaving_here(ctx, buf, origin) {
                    return self.act_v4(ctx, buf, Decision::LocalEgress { pool }, origin);
                }
                self.counters.tiers[tier_index(tier)] += 1;
                // 7.6: a flow from the host keeps its target across table swaps.
                let target = match origin {
                    Origin::Host => match self.pinned_target(ctx, buf, target) {
                        Ok(target) => target,
                        Err(reason) => return Verdict::Drop(reason),
                    },
                    Origin::Peer(_) => target,
                };
                self.encapsulate(ctx, buf, ctx.table.underlay_of(target), flow_hash, sender)
            }
            Decision::Reply { pool } => self.reply(ctx, buf, pool, origin),
        }
    }

    /// The holder a flow from the host is still pinned to, with its flow hash, when it is
    /// pinned to another server than this one (see [`PinOwner::pinned_elsewhere`]).
    fn pinned_elsewhere<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
    ) -> Option<(ServerId, u64)> {
        let (flow, tcp_flags) = self.pinnable(buf)?;
        let target = self.mappings.pins().pinned_elsewhere(
            ctx.mappings.pins(),
            ctx.table,
            &flow,
            tcp_flags,
            ctx.now,
        )?;
        Some((target, flow.hash()))
    }

    /// The pool of a packet that the table forwards because this server is a drained holder
    /// of its source, when it leaves here all the same (7.6): a peer sent it (a peer that
    /// pinned the flow here, or decided it by an older table; sent on, it would leave from a
    /// server its replies cannot find), or it is a flow from the host this server already
    /// carries. Only the host's new flows follow the drain.
    fn drained_but_leaving_here<B: PacketBuf>(
        &self,
        ctx: &Context<'_>,
        buf: &B,
        origin: Origin,
    ) -> Option<PoolId> {
        let ip = ipv4::Packet::new_checked(buf.data().get(ethernet::HEADER_LEN..)?).ok()?;
        let pool = ctx.table.drained_pool_of(ip.src())?;
        if matches!(origin, Origin::Peer(_)) {
            return Some(pool);
        }
        let ends = mappings::outbound_ends(ip.protocol(), ip.src(), ip.dst(), ip.payload())?;
        ctx.mappings.carries(&ends, origin).then_some(pool)
    }

    /// The pin key and TCP flags of a TCP or UDP packet that is not a fragment.
    fn pinnable<B: PacketBuf>(&self, buf: &B) -> Option<(FlowKey, Option<u8>)> {
        let ip = ipv4::Packet::new_checked(buf.data().get(ethernet::HEADER_LEN..)?).ok()?;
        let proto = ip.protocol();
        if ip.is_fragment() || !matches!(proto, PROTO_TCP | PROTO_UDP) {
            return None;
        }
        let l4 = ip.payload();
        let (sport, dport) = udp::ports(l4)?;
        let tcp_flags = (proto == PROTO_TCP)
            .then(|| l4.get(tcp::FLAGS).copied())
            .flatten();
        Some((
            FlowKey {
                src: ip.src(),
                dst: ip.dst(),
                proto,
                sport,
                dport,
            },
            tcp_flags,
        ))
    }

    /// Contract 7.6: the target of a TCP or UDP flow from the host that the table sends to
    /// `decided`: its pinned target while that one still holds the address. Fragments and
    /// other protocols are not pinned.
    fn pinned_target<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        decided: ServerId,
    ) -> Result<ServerId, DropReason> {
        let Some((flow, tcp_flags)) = self.pinnable(buf) else {
            return Ok(decided);
        };
        match self.mappings.pins().target(
            ctx.mappings.pins(),
            ctx.table,
            &flow,
            decided,
            tcp_flags,
            ctx.now,
        ) {
            Pinned::Kept(target) => Ok(target),
            Pinned::Created => {
                self.counters.pins_created += 1;
                Ok(decided)
            }
            Pinned::Redecided => {
                self.counters.pins_redecided += 1;
                Ok(decided)
            }
            Pinned::Full => Err(DropReason::ConnectionsFull),
        }
    }

    /// Contract 7.2: the mapping of a flow egressing here from `origin`, found or created,
    /// and its source port translated if the mapping says so. Flows without ports (other
    /// protocols, fragments) have none.
    fn map_outbound<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        pool: PoolId,
        origin: Origin,
    ) -> Result<(), DropReason> {
        // A holder whose weight wins it no slice (a tiny weight among heavy ones) has no
        // port to give: its flows leave unmapped, and their replies find their owner by
        // slice, rather than being dropped here.
        let Some(held) = ctx.table.held_slices(pool).filter(|h| h.count() > 0) else {
            return Ok(());
        };
        let ip = ip4_mut(buf.data_mut())?;
        // A later fragment carries no port: it leaves as it came (its first fragment, with
        // the ports, was mapped and translated; the L4 checksum it carries covers all).
        if ip.is_later_fragment() {
            return Ok(());
        }
        let (proto, src, dst, header_len) = (ip.protocol(), ip.src(), ip.dst(), ip.header_len());
        let l4 = buf
            .data_mut()
            .get_mut(ethernet::HEADER_LEN + header_len..)
            .ok_or(DropReason::Truncated)?;
        let Some(ends) = mappings::outbound_ends(proto, src, dst, l4) else {
            return Ok(());
        };
        let tcp_flags = (proto == PROTO_TCP)
            .then(|| l4.get(tcp::FLAGS).copied())
            .flatten();
        let mut created = Created::default();
        let outcome = self.mappings.outbound(
            ctx.mappings,
            held,
            &ends,
            origin,
            tcp_flags,
            ctx.now,
            &mut created,
        );
        self.counters.mappings_created += u64::from(created.created);
        self.counters.mappings_translated += u64::from(created.translated);
        match outcome {
            Outbound::Port(port) => {
                if port != ends.local_port {
                    ports::set(proto, l4, End::Source, port).ok_or(DropReason::Truncated)?;
                }
                Ok(())
            }
            Outbound::Full => Err(DropReason::ConnectionsFull),
            Outbound::NoPort => Err(DropReason::PortsExhausted),
        }
    }

    /// Contract 7.3 to 7.5: a packet to an egress address of `pool`, from the uplink
    /// (`origin` is [`Origin::Host`]: not through a tunnel) or passed on by a fleet peer.
    fn reply<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        pool: PoolId,
        origin: Origin,
    ) -> Verdict {
        let from_fleet = matches!(origin, Origin::Peer(_));
        let held = ctx.table.held_slices(pool).is_some();
        // 7.5.1: a reply passed to a server that does not hold the address is for its host.
        if from_fleet && !held {
            return self.reply_to_host(buf);
        }
        let read = match buf.data().get(ethernet::HEADER_LEN..).map(reply::read) {
            Some(Ok(read)) => read,
            Some(Err(reason)) => return Verdict::Drop(reason),
            None => return Verdict::Drop(DropReason::Truncated),
        };
        if let Reply::LaterFragment(datagram) = read {
            // Where its first fragment went, unchanged: it carries no port.
            return match ctx.mappings.fragment_route(&datagram) {
                Some(route) => {
                    self.counters.fragments_followed += 1;
                    self.send_reply(ctx, buf, route)
                }
                None => Verdict::Drop(DropReason::FragmentOrphan),
            };
        }
        let Some(ends) = read.ends().copied() else {
            // 7.7: no ports, no mapping; nobody steers these, so from a peer it is misrouted.
            return if from_fleet {
                Verdict::Drop(DropReason::MisroutedReply)
            } else {
                self.reply_to_host(buf)
            };
        };
        let (tcp_flags, first_fragment) = match read {
            Reply::Flow {
                tcp_flags,
                first_fragment,
                ..
            } => (tcp_flags, first_fragment),
            _ => (None, None),
        };
        let route = match self.route_reply(ctx, buf, pool, origin, &read, &ends, tcp_flags) {
            Ok(route) => route,
            Err(reason) => return Verdict::Drop(reason),
        };
        if let Some(datagram) = first_fragment {
            if !self
                .mappings
                .record_fragment(ctx.mappings, &datagram, route, ctx.now)
            {
                self.counters.fragments_untracked += 1;
            }
        }
        self.send_reply(ctx, buf, route)
    }

    /// Contract 7.3 to 7.5 for a reply (or ICMP error) with ports: where it goes, its port
    /// restored first if a mapping here matches it. Counts the outcome.
    #[allow(clippy::too_many_arguments)]
    fn route_reply<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        pool: PoolId,
        origin: Origin,
        read: &Reply,
        ends: &Ends,
        tcp_flags: Option<u8>,
    ) -> Result<FragmentRoute, DropReason> {
        if let Some(found) = ctx.mappings.reply(ends, tcp_flags) {
            // 7.3.1 (and 7.5.2): a local mapping wins. Restored, then where the flow came from.
            let ip = buf
                .data_mut()
                .get_mut(ethernet::HEADER_LEN..)
                .ok_or(DropReason::Truncated)?;
            reply::restore(ip, read, found.port)?;
            return Ok(match found.origin {
                Origin::Host => FragmentRoute::Host,
                Origin::Peer(peer) => {
                    self.counters.replies_to_peer += 1;
                    // The outer source port of the flow's own direction, as the peer sent it.
                    FragmentRoute::Encap {
                        underlay: peer,
                        hash: outbound_hash(ends, found.port),
                    }
                }
            });
        }
        let hash = outbound_hash(ends, ends.local_port);
        if let Origin::Peer(from) = origin {
            // 7.5.1: returned by the holder a flow of this server's host is pinned to.
            if ctx.mappings.pins().contains(&outbound_flow_of(ends)) {
                return Ok(FragmentRoute::Host);
            }
            // 7.5.3: a slice that moved here in the last reload; its previous owner may still
            // carry the connection. Not back to the server that passed it here: it had no
            // mapping either (7.3.1 comes before steering), so it would only drop it.
            return match ctx.table.previous_owner(pool, ends.local_port, ctx.now) {
                Some(previous) if previous != from => {
                    self.counters.replies_second_chance += 1;
                    Ok(FragmentRoute::Encap {
                        underlay: previous,
                        hash,
                    })
                }
                _ => Err(DropReason::MisroutedReply),
            };
        }
        // 7.3.2: the slice's owner has the mapping, if anyone has.
        Ok(match ctx.table.slice_owner(pool, ends.local_port) {
            Some(owner) if owner != ctx.table.me() => {
                self.counters.replies_steered += 1;
                FragmentRoute::Encap {
                    underlay: ctx.table.underlay_of(owner),
                    hash,
                }
            }
            // The slice moved here in the last reload and the reply landed here directly:
            // its previous owner may carry the connection, as in 7.5.3.
            _ => match ctx.table.previous_owner(pool, ends.local_port, ctx.now) {
                Some(previous) => {
                    self.counters.replies_second_chance += 1;
                    FragmentRoute::Encap {
                        underlay: previous,
                        hash,
                    }
                }
                None => FragmentRoute::Host,
            },
        })
    }

    fn send_reply<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        route: FragmentRoute,
    ) -> Verdict {
        match route {
            FragmentRoute::Host => self.reply_to_host(buf),
            FragmentRoute::Encap { underlay, hash } => {
                self.encapsulate(ctx, buf, underlay, hash, Sender::Elsewhere)
            }
        }
    }

    /// Lowers the MSS of a TCP SYN or SYN-ACK in `buf` (an Ethernet frame with a checked
    /// IPv4 header) to `mss`, its checksum updated, and counts it.
    fn clamp_syn<B: PacketBuf>(&mut self, buf: &mut B, mss: u16) {
        let Some(ip) = ip4_header_mut(buf.data_mut()) else {
            return;
        };
        // A TCP header to look at (clamp_mss itself checks for a SYN).
        if ip.protocol() != PROTO_TCP || ip.is_later_fragment() {
            return;
        }
        let segment = ethernet::HEADER_LEN + ip.header_len()..ethernet::HEADER_LEN + ip.total_len();
        if let Some(segment) = buf.data_mut().get_mut(segment) {
            if tcp::clamp_mss(segment, mss) {
                self.counters.mss_clamped += 1;
            }
        }
    }

    fn reply_to_host<B: PacketBuf>(&mut self, buf: &mut B) -> Verdict {
        self.counters.replies_to_host += 1;
        route_v4(buf, &self.ethernet.host_v4, Verdict::Host)
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

    /// Encapsulates the packet to the fleet server with underlay `target`.
    fn encapsulate<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        target: u32,
        flow_hash: u64,
        sender: Sender,
    ) -> Verdict {
        let overhead = self.config.encap.overhead();
        let frame = buf.data_mut();
        let frame_len = frame.len();
        let Some(mut ip) = ip4_header_mut(frame) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let (total_len, tos) = (ip.total_len(), ip.tos());
        if total_len + overhead > usize::from(self.config.underlay_mtu) {
            let room = usize::from(self.config.underlay_mtu).saturating_sub(overhead) as u16;
            return self.too_big(ctx, buf, room, sender);
        }
        ip.decrement_ttl();
        if let Some(mss) = self.config.mss_clamp {
            self.clamp_syn(buf, mss);
        }
        // Ethernet padding must not travel inside the tunnel.
        let padding = frame_len.checked_sub(ethernet::HEADER_LEN + total_len);
        if !padding.is_some_and(|padding| buf.trim(padding)) {
            return Verdict::Drop(DropReason::Truncated);
        }
        if !buf.prepend(overhead) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let sport = outer_source_port(flow_hash);
        self.tunnel.write(
            buf.data_mut(),
            ctx.table.my_underlay(),
            target,
            tos,
            total_len,
            sport,
        );
        Verdict::Uplink
    }

    /// A packet larger than the `room` its path allows. A host's own DF packet is answered
    /// with an ICMP "fragmentation needed" through the host port, so that its path MTU
    /// discovery works. Everything else is dropped (`too_big`):
    /// - without DF, because we never fragment;
    /// - from a peer or from the internet, because an ICMP from our underlay address must
    ///   never reach an internet origin, and a peer's host is reached through that peer (MSS
    ///   clamping keeps TCP from getting here);
    /// - an ICMP error or a later fragment, which RFC 1812 4.3.2.7 forbids answering.
    fn too_big<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        room: u16,
        sender: Sender,
    ) -> Verdict {
        let Ok(ip) = ip4_mut(buf.data_mut()) else {
            return Verdict::Drop(DropReason::Truncated);
        };
        let is_icmp_error = ip.protocol() == PROTO_ICMP
            && ip
                .payload()
                .first()
                .is_none_or(|t| icmp::ERROR_TYPES.contains(t));
        let later_fragment =
            ipv4::FixedHeader::of(ip.header()).is_some_and(|h| h.is_later_fragment());
        if sender == Sender::Elsewhere || !ip.dont_fragment() || is_icmp_error || later_fragment {
            return Verdict::Drop(DropReason::TooBig);
        }
        self.frag_needed(ctx, buf, room)
    }

    /// Turns the packet into an ICMP "fragmentation needed" to its source, through the host
    /// port, quoting as much of it as RFC 1812 allows.
    fn frag_needed<B: PacketBuf>(&mut self, ctx: &Context<'_>, buf: &mut B, mtu: u16) -> Verdict {
        const ERROR_HEADERS: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN;
        let (source, total_len) = match ip4_mut(buf.data_mut()) {
            Ok(ip) => (ip.src(), ip.total_len()),
            Err(reason) => return Verdict::Drop(reason),
        };
        let quoted = total_len.min(icmp::MAX_ERROR_DATAGRAM - ERROR_HEADERS);
        let excess = buf.data().len() - ethernet::HEADER_LEN - quoted;
        if !buf.trim(excess) {
            return Verdict::Drop(DropReason::Truncated);
        }
        if !buf.prepend(ERROR_HEADERS) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let frame = buf.data_mut();
        write_ethernet(frame, &self.ethernet.host_v4);
        let ip = &mut frame[ethernet::HEADER_LEN..];
        ipv4::Repr {
            src: ctx.table.my_underlay(),
            dst: source,
            protocol: PROTO_ICMP,
            tos: ICMP_TOS,
            ttl: ICMP_TTL,
            dont_fragment: false,
            payload_len: icmp::HEADER_LEN + quoted,
        }
        .emit(ip);
        if !icmp::emit_frag_needed(&mut ip[ipv4::HEADER_LEN..], mtu, quoted) {
            return Verdict::Drop(DropReason::Truncated);
        }
        self.counters.icmp_frag_needed += 1;
        Verdict::Host
    }

    /// Step 3: strips the tunnel of a fleet packet from `peer` (its underlay) and acts on the
    /// inner packet, `strip` bytes after the Ethernet header, already decided.
    fn decapsulate<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        peer: u32,
        strip: u16,
        decision: Decision,
    ) -> Verdict {
        // Not egress traffic, or itself a tunnel to us: nothing a peer may send.
        if matches!(
            decision,
            Decision::Pass | Decision::Decapsulate { .. } | Decision::UnknownPeer
        ) {
            return Verdict::Drop(DropReason::BadInner);
        }
        // [eth][outer headers: strip bytes][inner ...]  ->  [eth][inner ...]
        if !buf.adj(usize::from(strip)) {
            return Verdict::Drop(DropReason::Truncated);
        }
        let frame = buf.data_mut();
        write_ethernet(frame, &self.ethernet.uplink_v4);
        let frame_len = frame.len();
        let excess = ip4_header_mut(frame)
            .and_then(|ip| frame_len.checked_sub(ethernet::HEADER_LEN + ip.total_len()));
        if !excess.is_some_and(|excess| buf.trim(excess)) {
            return Verdict::Drop(DropReason::BadInner);
        }
        self.counters.decapsulated += 1;
        self.act_v4(ctx, buf, decision, Origin::Peer(peer))
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

/// The outbound flow of mapped ends, as its host sent it (the key of its pin).
#[inline]
fn outbound_flow_of(ends: &Ends) -> FlowKey {
    FlowKey {
        src: ends.local,
        dst: ends.remote,
        proto: ends.proto,
        sport: ends.local_port,
        dport: ends.remote_port,
    }
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

/// Where the inner IPv4 packet of a fleet packet starts (bytes after the Ethernet header)
/// and its flow, or why there is no acceptable inner packet.
fn inner_of(frame: &[u8]) -> Result<(usize, FlowKey), DropReason> {
    let outer = frame
        .get(ethernet::HEADER_LEN..)
        .ok_or(DropReason::Truncated)?;
    let outer = ipv4::Packet::new_checked(outer).map_err(malformed)?;
    if outer.is_fragment() {
        // A piece of a tunnel packet cannot be decapsulated without reassembly.
        return Err(DropReason::BadInner);
    }
    let (strip, inner) = match outer.protocol() {
        PROTO_IPIP => (outer.header_len(), outer.payload()),
        _ => {
            let datagram = outer.payload();
            let tunnel = udp::Packet::new_checked(datagram).map_err(|_| DropReason::BadInner)?;
            let Ok(gue::Inner::Ipv4At(offset)) = gue::inner(tunnel.payload()) else {
                return Err(DropReason::BadInner);
            };
            let start = udp::HEADER_LEN + offset;
            let inner = datagram
                .get(start..tunnel.len())
                .ok_or(DropReason::BadInner)?;
            (outer.header_len() + start, inner)
        }
    };
    let flow = flow_of(inner).map_err(|_| DropReason::BadInner)?;
    Ok((strip, flow))
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
            prop_assert_eq!(flow_of(&ip), flow_with_options_of(&ip));
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
        assert_eq!(flow, flow_with_options_of(&ip).unwrap());
        // More fragments: no ports, checksum fixed up again.
        ip[6] |= 0x20;
        ipv4::Packet::new_checked(&mut ip[..])
            .unwrap()
            .fill_checksum();
        let fragment = flow_of(&ip).unwrap();
        assert_eq!((fragment.sport, fragment.dport), (0, 0));
        assert_eq!(fragment, flow_with_options_of(&ip).unwrap());
    }
}
