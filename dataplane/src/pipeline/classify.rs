//! Stage 1: what a frame is, read from its bytes: the flow of an IPv4 packet (its
//! header checked), the inner packet of a fleet packet.

use super::*;

pub(super) fn malformed(err: WireError) -> DropReason {
    match err {
        WireError::Truncated => DropReason::Truncated,
        WireError::BadVersion => DropReason::BadVersion,
        WireError::BadHeaderLength => DropReason::BadHeaderLength,
        WireError::BadTotalLength => DropReason::BadTotalLength,
    }
}

/// The flow key of a well-formed IPv4 packet, or why it is malformed.
#[inline(always)]
pub(super) fn flow_of(ip: &[u8]) -> Result<FlowKey, DropReason> {
    flow_and_flags_of(ip).map(|(flow, _)| flow)
}

/// [`flow_of`], and a TCP segment's flags when it has them (not a fragment, the flags byte
/// within the total length): read with the ports, so that stage 3 reads no packet byte
/// again for a pin, nor for a tunnel's MSS clamp of a packet that is no SYN.
///
/// Always inlined into [`Pipeline::begin`]: returned through memory, the key is written field by
/// field and read back whole by the caller, a store-forwarding stall per packet.
#[inline(always)]
pub(super) fn flow_and_flags_of(ip: &[u8]) -> Result<(FlowKey, Option<u8>), DropReason> {
    match ipv4::FixedHeader::of(ip) {
        Some(header) if header.is_plain() => plain_flow_of(ip, &header),
        _ => flow_with_options_of(ip),
    }
}

/// [`flow_of`] for a header without options, read at fixed offsets: the same checks in the
/// same order as [`ipv4::Packet::new_checked`] makes them for such a header.
#[inline(always)]
pub(super) fn plain_flow_of(
    ip: &[u8],
    header: &ipv4::FixedHeader<&[u8; ipv4::HEADER_LEN]>,
) -> Result<(FlowKey, Option<u8>), DropReason> {
    let total_len = header.total_len();
    if total_len < ipv4::HEADER_LEN || total_len > ip.len() {
        return Err(DropReason::BadTotalLength);
    }
    if !header.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let protocol = header.protocol();
    let ((sport, dport), tcp_flags) = match protocol {
        PROTO_TCP | PROTO_UDP if !header.is_fragment() => {
            let l4 = ip
                .get(ipv4::HEADER_LEN..total_len)
                .ok_or(DropReason::Truncated)?;
            let ports = udp::ports(l4).ok_or(DropReason::Truncated)?;
            (ports, tcp_flags_of(protocol, l4))
        }
        _ => ((0, 0), None),
    };
    let flow = FlowKey {
        src: header.src(),
        dst: header.dst(),
        proto: protocol,
        sport,
        dport,
    };
    Ok((flow, tcp_flags))
}

/// The flags of a TCP segment `l4` (up to the packet's total length), if it reaches them.
#[inline(always)]
fn tcp_flags_of(protocol: u8, l4: &[u8]) -> Option<u8> {
    (protocol == PROTO_TCP)
        .then(|| l4.get(tcp::FLAGS).copied())
        .flatten()
}

/// [`flow_of`] for every other header: options, or not IPv4 at all (kept out of line, so that
/// the burst loop stays small for the common case).
#[inline(never)]
pub(super) fn flow_with_options_of(ip: &[u8]) -> Result<(FlowKey, Option<u8>), DropReason> {
    let p = ipv4::Packet::new_checked(ip).map_err(malformed)?;
    if !p.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    let (ports, tcp_flags) = match p.protocol() {
        PROTO_TCP | PROTO_UDP if !p.is_fragment() => (
            Some(udp::ports(p.payload()).ok_or(DropReason::Truncated)?),
            tcp_flags_of(p.protocol(), p.payload()),
        ),
        _ => (None, None),
    };
    Ok((
        FlowKey::new(p.src(), p.dst(), p.protocol(), ports),
        tcp_flags,
    ))
}

/// Where the inner IPv4 packet of a fleet packet starts (bytes after the Ethernet header)
/// and its flow, or why there is no acceptable inner packet.
pub(super) fn inner_of(frame: &[u8]) -> Result<(usize, FlowKey), DropReason> {
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
