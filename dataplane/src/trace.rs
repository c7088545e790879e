//! What the pipeline does to one packet, told back (`egressfwd explain --trace`): the packet
//! of a flow is built as it would arrive (from the host, from the uplink, or encapsulated by
//! a peer), run through [`Pipeline::process`], and read back: the verdict, every counter it
//! moved, and the packet as it left. Nothing here decides anything: the trace is the
//! pipeline's own doing, so it cannot disagree with the data plane.

use std::net::{IpAddr, Ipv4Addr};

use topology::hash::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use topology::{ForwardingTable, Tier};

use crate::buf::{PacketBuf, VecBuf};
use crate::counters::{tier_index, DropReason, PipelineCounters};
use crate::pipeline::{Context, Pipeline, PipelineConfig, Verdict};
use crate::wire::{checksum, ethernet, ipv4};

const PROTO_IPIP: u8 = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Where a traced packet arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On the host port, from this server's proxy.
    Host,
    /// On the uplink, from the internet (a reply, or traffic that is not egress).
    Uplink,
    /// On the uplink, encapsulated by the fleet server with this underlay address.
    Peer(Ipv4Addr),
}

/// The packet to trace: a flow's first header fields, as a client or origin would send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IP total length (header included): at least the headers, padded with zeros.
    pub size: u16,
    /// TCP flags (a SYN opens a connection, the default).
    pub tcp_flags: u8,
    /// IPv4 don't-fragment bit.
    pub dont_fragment: bool,
}

/// What the pipeline did with one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub verdict: Verdict,
    /// The counters the packet moved, by the names the stats use: `tier same_dc`,
    /// `drop ttl_exceeded`, `decapsulated`, `mappings_created`, ...
    pub counted: Vec<String>,
    /// The frame as it arrived, and as it left (empty when dropped).
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    /// The frame that left, in words.
    pub sent: Option<String>,
}

/// The Ethernet frame of `packet` as it arrives at a server with `config`'s ports, whose
/// underlay (the outer destination of a peer's tunnel) is `my_underlay`.
pub fn frame(
    packet: &Packet,
    arrival: Arrival,
    config: &PipelineConfig,
    my_underlay: Ipv4Addr,
) -> Vec<u8> {
    let ip = ip_packet(packet);
    let (port, inner) = match arrival {
        Arrival::Host => (config.host, ip),
        Arrival::Uplink => (config.uplink, ip),
        Arrival::Peer(peer) => {
            let mut udp = Vec::with_capacity(8 + ip.len());
            udp.extend_from_slice(&51000u16.to_be_bytes());
            udp.extend_from_slice(&config.encap_port.to_be_bytes());
            udp.extend_from_slice(&((8 + ip.len()) as u16).to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            udp.extend_from_slice(&ip);
            (
                config.uplink,
                ipv4_packet(peer, my_underlay, PROTO_UDP, 64, true, &udp),
            )
        }
    };
    let ethertype = if inner[0] >> 4 == 6 {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + inner.len());
    frame.extend_from_slice(&port.mac);
    frame.extend_from_slice(&port.next_hop);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&inner);
    frame
}

/// Runs `frame` through `pipeline` and reports what it did.
pub fn trace(pipeline: &mut Pipeline, ctx: &Context<'_>, frame: &[u8]) -> Trace {
    let before = pipeline.counters;
    let mut buf = VecBuf::new(frame);
    let verdict = pipeline.process(ctx, &mut buf);
    let counted = moved(&before, &pipeline.counters);
    let (output, sent) = match verdict {
        Verdict::Drop(_) => (Vec::new(), None),
        _ => {
            let output = buf.data().to_vec();
            let sent = describe(ctx.table, &output, pipeline.config().encap_port);
            (output, Some(sent))
        }
    };
    Trace {
        verdict,
        counted,
        input: frame.to_vec(),
        output,
        sent,
    }
}

/// The counters that differ between `before` and `after`, by name.
fn moved(before: &PipelineCounters, after: &PipelineCounters) -> Vec<String> {
    let mut counted = Vec::new();
    for tier in Tier::ALL {
        let i = tier_index(tier);
        if after.tiers[i] != before.tiers[i] {
            counted.push(format!("tier {}", tier.as_str()));
        }
    }
    for reason in DropReason::ALL {
        let i = reason.index();
        if after.drops[i] != before.drops[i] {
            counted.push(format!("drop {}", reason.as_str()));
        }
    }
    for ((info, was), (_, is)) in before.named().zip(after.named()) {
        if was != is {
            counted.push(info.field.to_owned());
        }
    }
    counted
}

/// An Ethernet frame the pipeline sent, in words: the outer tunnel if any, then the packet.
pub fn describe(table: &ForwardingTable, frame: &[u8], encap_port: u16) -> String {
    let Some(ip) = frame.get(ethernet::HEADER_LEN..) else {
        return "a frame too short for Ethernet".to_owned();
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) => describe_v4(table, ip, encap_port),
        Some(6) => describe_v6(ip),
        _ => "not IP".to_owned(),
    }
}

fn describe_v4(table: &ForwardingTable, ip: &[u8], encap_port: u16) -> String {
    let Ok(p) = ipv4::Packet::new_checked(ip) else {
        return "a malformed IPv4 packet".to_owned();
    };
    let (src, dst) = (Ipv4Addr::from(p.src()), Ipv4Addr::from(p.dst()));
    let l4 = p.payload();
    let tunnel = |kind: &str, inner: &[u8]| {
        let to = table
            .peer(p.dst())
            .map(|s| format!(" ({})", table.server(s).name))
            .unwrap_or_default();
        format!(
            "encapsulated ({kind}) {src} -> {dst}{to}: {}",
            describe_v4(table, inner, encap_port)
        )
    };
    match p.protocol() {
        PROTO_IPIP => tunnel("ipip", l4),
        PROTO_UDP if port(l4, 2) == Some(encap_port) && l4.len() > 8 => {
            let inner = tunnel("fou", &l4[8..]);
            format!("{inner}; outer source port {}", port(l4, 0).unwrap_or(0))
        }
        proto => format!(
            "{} ttl {}",
            endpoints(proto, &src.to_string(), &dst.to_string(), l4),
            p.ttl()
        ),
    }
}

fn describe_v6(ip: &[u8]) -> String {
    if ip.len() < 40 {
        return "a malformed IPv6 packet".to_owned();
    }
    let address = |at: usize| {
        let bytes: [u8; 16] = ip[at..at + 16].try_into().expect("16 bytes");
        std::net::Ipv6Addr::from(bytes).to_string()
    };
    format!(
        "{} hop limit {}",
        endpoints(ip[6], &address(8), &address(24), &ip[40..]),
        ip[7]
    )
}

/// `tcp 198.51.100.1:40000 -> 93.184.216.34:443 [S]`, `icmp type 3 code 4 ...`.
fn endpoints(proto: u8, src: &str, dst: &str, l4: &[u8]) -> String {
    match proto {
        PROTO_TCP | PROTO_UDP => {
            let name = if proto == PROTO_TCP { "tcp" } else { "udp" };
            let (sport, dport) = (port(l4, 0).unwrap_or(0), port(l4, 2).unwrap_or(0));
            let flags = match l4.get(13) {
                Some(&f) if proto == PROTO_TCP => format!(" [{}]", tcp_flags_text(f)),
                _ => String::new(),
            };
            format!("{name} {src}:{sport} -> {dst}:{dport}{flags}")
        }
        PROTO_ICMP => {
            let (kind, code) = (l4.first().copied(), l4.get(1).copied());
            let what = match (kind, code) {
                (Some(3), Some(4)) => {
                    format!(" (fragmentation needed, mtu {})", port(l4, 6).unwrap_or(0))
                }
                (Some(8), _) | (Some(0), _) => {
                    format!(" (echo, identifier {})", port(l4, 4).unwrap_or(0))
                }
                _ => String::new(),
            };
            format!(
                "icmp {src} -> {dst} type {} code {}{what}",
                kind.unwrap_or(0),
                code.unwrap_or(0)
            )
        }
        other => format!("protocol {other} {src} -> {dst}"),
    }
}

fn tcp_flags_text(flags: u8) -> String {
    let names = [
        (0x02, 'S'),
        (0x10, 'A'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
    ];
    names
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|&(_, c)| c)
        .collect()
}

/// The big-endian 16-bit word at `at`.
fn port(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The IP packet (v4 or v6 by its addresses) of `packet`, with valid checksums.
fn ip_packet(packet: &Packet) -> Vec<u8> {
    let header_len = if packet.src.is_ipv4() { 20 } else { 40 };
    // A SYN carries the MSS option, as every client's does (so that clamping shows).
    let syn = packet.proto == PROTO_TCP && packet.tcp_flags & 0x02 != 0;
    let l4_min = match packet.proto {
        PROTO_TCP if syn => 24,
        PROTO_TCP => 20,
        PROTO_UDP | PROTO_ICMP => 8,
        _ => 0,
    };
    let l4_len = usize::from(packet.size)
        .saturating_sub(header_len)
        .max(l4_min);
    let mut l4 = vec![0u8; l4_len];
    match packet.proto {
        PROTO_TCP => {
            l4[0..2].copy_from_slice(&packet.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&packet.dport.to_be_bytes());
            l4[4..8].copy_from_slice(&1u32.to_be_bytes());
            l4[12] = if syn { 0x60 } else { 0x50 };
            l4[13] = packet.tcp_flags;
            l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
            if syn {
                l4[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
            }
        }
        PROTO_UDP => {
            l4[0..2].copy_from_slice(&packet.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&packet.dport.to_be_bytes());
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        PROTO_ICMP => {
            // An echo request: the identifier is the flow's source port, the sequence its
            // destination port.
            l4[0] = 8;
            l4[4..6].copy_from_slice(&packet.sport.to_be_bytes());
            l4[6..8].copy_from_slice(&packet.dport.to_be_bytes());
        }
        _ => {}
    }
    // An IPv4 source with an IPv6 destination (or the reverse) is traced as IPv6, the IPv4
    // address mapped.
    let (src, dst) = match (packet.src, packet.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => (src.octets().to_vec(), dst.octets().to_vec()),
        (src, dst) => (v6_octets(src).to_vec(), v6_octets(dst).to_vec()),
    };
    // The pseudo-header: IPv4's (zero, protocol, 16-bit length) and IPv6's (32-bit length,
    // zeros, next header) sum alike for lengths under 64 KiB.
    let at = match packet.proto {
        PROTO_TCP => Some(16),
        PROTO_UDP => Some(6),
        _ => None,
    };
    if let Some(at) = at {
        let mut pseudo = [&src[..], &dst[..], &[0, packet.proto]].concat();
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        set_checksum(&mut l4, at, &pseudo);
    } else if packet.proto == PROTO_ICMP {
        set_checksum(&mut l4, 2, &[]);
    }
    if src.len() == 4 {
        let address = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        return ipv4_packet(
            address(&src),
            address(&dst),
            packet.proto,
            packet.ttl,
            packet.dont_fragment,
            &l4,
        );
    }
    let mut ip = Vec::with_capacity(40 + l4.len());
    ip.extend_from_slice(&[0x60, 0, 0, 0]);
    ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[packet.proto, packet.ttl]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&l4);
    ip
}

fn v6_octets(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Writes at `at` the checksum of `l4` after `pseudo` (its pseudo-header, if any).
fn set_checksum(l4: &mut [u8], at: usize, pseudo: &[u8]) {
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let mut whole = pseudo.to_vec();
    whole.extend_from_slice(l4);
    let sum = checksum::checksum(&whole);
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    dont_fragment: bool,
    l4: &[u8],
) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut ip = vec![0u8; 20];
    ipv4::Repr {
        src: u32::from(src),
        dst: u32::from(dst),
        protocol: proto,
        tos: 0,
        ttl,
        dont_fragment,
        payload_len: l4.len(),
    }
    .emit(&mut ip);
    debug_assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), total);
    ip.extend_from_slice(l4);
    ip
}

#[cfg(test)]
mod tests;
