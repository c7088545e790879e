//! Everything the appliance does to a packet (contract sections 1 and 5), as pure functions
//! over a [`PacketBuf`]: classify, decide (through the topology crate's one decision
//! implementation), rewrite, encapsulate, decapsulate.

use topology::hash::{outer_source_port, PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP};
use topology::{Decision, DecisionV6, FlowKey, ForwardingTable, Tier};

use crate::buf::PacketBuf;
use crate::conn::ConnTable;
use crate::counters::{tier_index, DropReason, PipelineCounters};
use crate::wire::{ethernet, gue, icmp, ipv4, ipv6, udp, WireError};

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
    /// IP MTU of the uplink.
    pub mtu: u16,
    pub uplink: PortAddrs,
    pub host: PortAddrs,
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

/// What the pipeline reads per burst: the current table and the shared connection table.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub table: &'a ForwardingTable,
    pub connections: &'a ConnTable,
}

/// Outer TTL of encapsulated packets, as Linux tunnels default to.
const OUTER_TTL: u8 = 64;
/// TTL and TOS of ICMP errors we originate (Linux: precedence "internetwork control").
const ICMP_TTL: u8 = 64;
const ICMP_TOS: u8 = 0xc0;

/// Largest burst processed in one pass (bigger slices are processed in chunks of this).
pub const CHUNK: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Classified {
    Done(Verdict),
    V4(FlowKey),
    V6 { src: u128, dst: u128 },
}

fn malformed(err: WireError) -> DropReason {
    match err {
        WireError::Truncated => DropReason::Truncated,
        WireError::BadVersion => DropReason::BadVersion,
        WireError::BadHeaderLength => DropReason::BadHeaderLength,
        WireError::BadTotalLength => DropReason::BadTotalLength,
    }
}

/// The flow key of a well-formed IPv4 packet, or why it is malformed.
fn flow_of(ip: &[u8]) -> Result<FlowKey, DropReason> {
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

/// Contract section 5 steps 1 and 2: not IP, malformed, or an IP packet to decide.
fn classify(frame: &[u8]) -> Classified {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Classified::Done(Verdict::Drop(DropReason::Truncated));
    };
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => match flow_of(eth.payload()) {
            Ok(flow) => Classified::V4(flow),
            Err(reason) => Classified::Done(Verdict::Drop(reason)),
        },
        ethernet::ETHERTYPE_IPV6 => match ipv6::Packet::new_checked(eth.payload()) {
            Ok(p) => Classified::V6 {
                src: p.src(),
                dst: p.dst(),
            },
            Err(err) => Classified::Done(Verdict::Drop(malformed(err))),
        },
        _ => Classified::Done(Verdict::Pass),
    }
}

fn set_ethernet(frame: &mut [u8], addrs: PortAddrs, ethertype: u16) {
    if let Ok(mut eth) = ethernet::Frame::new_checked(frame) {
        eth.set_dst(addrs.next_hop);
        eth.set_src(addrs.mac);
        eth.set_ethertype(ethertype);
    }
}

/// The IPv4 packet of a frame that [`classify`] (or decapsulation) already checked.
fn ip4_mut(frame: &mut [u8]) -> Result<ipv4::Packet<&mut [u8]>, DropReason> {
    let ip = frame
        .get_mut(ethernet::HEADER_LEN..)
        .ok_or(DropReason::Truncated)?;
    ipv4::Packet::new_checked(ip).map_err(malformed)
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    config: PipelineConfig,
    pub counters: PipelineCounters,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            config,
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
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        bufs: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        for (bufs, verdicts) in bufs.chunks_mut(CHUNK).zip(verdicts.chunks_mut(CHUNK)) {
            let mut classified = [Classified::Done(Verdict::Pass); CHUNK];
            let mut flows = [FlowKey::default(); CHUNK];
            let mut n4 = 0;
            for (c, buf) in classified.iter_mut().zip(bufs.iter()) {
                *c = classify(buf.data());
                if let Classified::V4(flow) = *c {
                    flows[n4] = flow;
                    n4 += 1;
                }
            }
            let mut decisions = [Decision::Pass; CHUNK];
            ctx.table
                .decide_v4_burst(&flows[..n4], self.config.encap_port, &mut decisions[..n4]);

            let mut next_v4 = 0;
            for ((c, buf), verdict) in classified
                .iter()
                .zip(bufs.iter_mut())
                .zip(verdicts.iter_mut())
            {
                *verdict = match *c {
                    Classified::Done(v) => v,
                    Classified::V4(flow) => {
                        let d = decisions[next_v4];
                        next_v4 += 1;
                        self.act_v4(ctx, buf, &flow, d)
                    }
                    Classified::V6 { src, dst } => self.act_v6(ctx, buf, src, dst),
                };
                match *verdict {
                    Verdict::Drop(reason) => self.counters.drop(reason),
                    Verdict::Pass => self.counters.passed += 1,
                    Verdict::Uplink | Verdict::Host => {}
                }
            }
        }
    }

    /// Steps 3 to 6 for an IPv4 packet whose decision is known.
    fn act_v4<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        flow: &FlowKey,
        decision: Decision,
    ) -> Verdict {
        match decision {
            Decision::Pass => Verdict::Pass,
            Decision::UnknownPeer => Verdict::Drop(DropReason::UnknownPeer),
            Decision::Decapsulate { peer } => {
                self.decapsulate(ctx, buf, ctx.table.underlay_of(peer))
            }
            Decision::LocalEgress => {
                self.counters.tiers[tier_index(Tier::Local)] += 1;
                self.route_v4(buf, self.config.uplink, Verdict::Uplink)
            }
            Decision::Forward {
                tier,
                target,
                flow_hash,
            } => {
                self.counters.tiers[tier_index(tier)] += 1;
                self.encapsulate(ctx, buf, ctx.table.underlay_of(target), flow_hash)
            }
            Decision::Reply => {
                // The connection table is keyed by the outbound direction of the flow.
                let outbound = flow.reversed().hash();
                match ctx.connections.lookup(outbound) {
                    Some(sender) => {
                        self.counters.replies_to_peer += 1;
                        self.encapsulate(ctx, buf, sender, outbound)
                    }
                    None => {
                        self.counters.replies_to_host += 1;
                        self.route_v4(buf, self.config.host, Verdict::Host)
                    }
                }
            }
        }
    }

    fn act_v6<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        src: u128,
        dst: u128,
    ) -> Verdict {
        let (addrs, verdict) = match ctx.table.decide_v6(src, dst) {
            DecisionV6::Pass => return Verdict::Pass,
            DecisionV6::LocalEgress => {
                self.counters.tiers[tier_index(Tier::Ipv6Local)] += 1;
                (self.config.uplink, Verdict::Uplink)
            }
            DecisionV6::Reply => {
                self.counters.replies_to_host += 1;
                (self.config.host, Verdict::Host)
            }
        };
        let frame = buf.data_mut();
        let Some(Ok(mut ip)) = frame
            .get_mut(ethernet::HEADER_LEN..)
            .map(ipv6::Packet::new_checked)
        else {
            return Verdict::Drop(DropReason::Truncated);
        };
        if ip.hop_limit() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        ip.decrement_hop_limit();
        set_ethernet(frame, addrs, ethernet::ETHERTYPE_IPV6);
        verdict
    }

    /// Routes the packet itself out of a port: TTL down by one, Ethernet addressed to the
    /// port's next hop.
    fn route_v4<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        addrs: PortAddrs,
        verdict: Verdict,
    ) -> Verdict {
        let frame = buf.data_mut();
        let mut ip = match ip4_mut(frame) {
            Ok(ip) => ip,
            Err(reason) => return Verdict::Drop(reason),
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        ip.decrement_ttl();
        set_ethernet(frame, addrs, ethernet::ETHERTYPE_IPV4);
        verdict
    }

    /// Encapsulates the packet to the fleet server with underlay `target`.
    fn encapsulate<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        target: u32,
        flow_hash: u64,
    ) -> Verdict {
        let encap = self.config.encap;
        let (total_len, tos, dont_fragment) = {
            let ip = match ip4_mut(buf.data_mut()) {
                Ok(ip) => ip,
                Err(reason) => return Verdict::Drop(reason),
            };
            if ip.ttl() <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            (ip.total_len(), ip.tos(), ip.dont_fragment())
        };
        let mtu = usize::from(self.config.mtu);
        if total_len + encap.overhead() > mtu {
            if !dont_fragment {
                return Verdict::Drop(DropReason::TooBig);
            }
            let room = mtu.saturating_sub(encap.overhead()) as u16;
            return self.frag_needed(ctx, buf, room);
        }
        // Ethernet padding must not travel inside the tunnel.
        let padding = buf.data().len() - ethernet::HEADER_LEN - total_len;
        if !buf.trim(padding) {
            return Verdict::Drop(DropReason::Truncated);
        }
        if let Ok(mut ip) = ip4_mut(buf.data_mut()) {
            ip.decrement_ttl();
        }
        if !buf.prepend(encap.overhead()) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let frame = buf.data_mut();
        set_ethernet(frame, self.config.uplink, ethernet::ETHERTYPE_IPV4);
        let outer = &mut frame[ethernet::HEADER_LEN..];
        let (protocol, ip_payload) = match encap {
            Encap::Fou => (PROTO_UDP, udp::HEADER_LEN + total_len),
            Encap::Ipip => (PROTO_IPIP, total_len),
        };
        ipv4::Repr {
            src: ctx.table.my_underlay(),
            dst: target,
            protocol,
            tos,
            ttl: OUTER_TTL,
            dont_fragment: true,
            payload_len: ip_payload,
        }
        .emit(outer);
        if encap == Encap::Fou {
            udp::Repr {
                src_port: outer_source_port(flow_hash),
                dst_port: self.config.encap_port,
                payload_len: total_len,
            }
            .emit(&mut outer[ipv4::HEADER_LEN..]);
        }
        Verdict::Uplink
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
        set_ethernet(frame, self.config.host, ethernet::ETHERTYPE_IPV4);
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

    /// Step 3: strips the tunnel of a fleet packet from `peer` and decides the inner packet.
    fn decapsulate<B: PacketBuf>(&mut self, ctx: &Context<'_>, buf: &mut B, peer: u32) -> Verdict {
        let (strip, inner_flow) = match self.inner_of(buf.data()) {
            Ok(found) => found,
            Err(reason) => return Verdict::Drop(reason),
        };
        let decision = ctx.table.decide_v4(&inner_flow, self.config.encap_port);
        match decision {
            // Not egress traffic, or itself a tunnel to us: nothing a peer may send.
            Decision::Pass | Decision::Decapsulate { .. } | Decision::UnknownPeer => {
                return Verdict::Drop(DropReason::BadInner)
            }
            Decision::LocalEgress | Decision::Forward { .. } => {
                if ctx.connections.record(inner_flow.hash(), peer) {
                    self.counters.connections_recorded += 1;
                }
            }
            Decision::Reply => {}
        }
        // [eth][outer headers: strip bytes][inner ...]  ->  [eth][inner ...]
        if !buf.adj(strip) {
            return Verdict::Drop(DropReason::Truncated);
        }
        let frame = buf.data_mut();
        set_ethernet(frame, self.config.uplink, ethernet::ETHERTYPE_IPV4);
        let frame_len = frame.len();
        let excess = match ip4_mut(frame) {
            Ok(ip) => frame_len - ethernet::HEADER_LEN - ip.total_len(),
            Err(_) => return Verdict::Drop(DropReason::BadInner),
        };
        if !buf.trim(excess) {
            return Verdict::Drop(DropReason::BadInner);
        }
        self.counters.decapsulated += 1;
        self.act_v4(ctx, buf, &inner_flow, decision)
    }

    /// Where the inner IPv4 packet of a fleet packet starts (bytes after the Ethernet header)
    /// and its flow, or why there is no acceptable inner packet.
    fn inner_of(&self, frame: &[u8]) -> Result<(usize, FlowKey), DropReason> {
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
                let tunnel =
                    udp::Packet::new_checked(datagram).map_err(|_| DropReason::BadInner)?;
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
}
