//! What a packet to an egress address is, as the return path (contract 7.3 to 7.5) reads it:
//! a reply of a mapped kind of flow, an ICMP error quoting one of our flows, or anything
//! else; and the rewrite that restores a reply's original port. Pure functions over the
//! bytes of an IPv4 packet; the pipeline decides where the packet then goes.

use topology::hash::{PROTO_ICMP, PROTO_TCP};

use crate::counters::DropReason;
use crate::fragments::Datagram;
use crate::mappings::{reply_ends, Ends};
use crate::wire::ports::{self, End};
use crate::wire::{icmp, ipv4, tcp};

/// A packet to an egress address, read for the return path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A TCP or UDP reply, or an ICMP echo reply: `ends` seen from our side; a TCP reply's
    /// flags; the datagram it is the first fragment of, if it is one.
    Flow {
        ends: Ends,
        tcp_flags: Option<u8>,
        first_fragment: Option<Datagram>,
    },
    /// A fragment other than the first: it goes where its first fragment went.
    LaterFragment(Datagram),
    /// An ICMP error about the flow `ends` (from the quoted header, seen from our side),
    /// whose quoted L4 header starts `quote_at` bytes into the IPv4 packet.
    Error { ends: Ends, quote_at: usize },
    /// Anything else (other protocols, ICMP that is neither, ICMP in fragments): no
    /// mapping, to the host port of whoever receives it (contract 7.7).
    Other,
}

impl Reply {
    pub fn ends(&self) -> Option<&Ends> {
        match self {
            Reply::Flow { ends, .. } | Reply::Error { ends, .. } => Some(ends),
            Reply::LaterFragment(_) | Reply::Other => None,
        }
    }
}

/// Reads the IPv4 packet `ip` (checked well-formed by the pipeline's first stage) for the
/// return path. An ICMP error whose quote is a fragment, or too short to hold its ports, is
/// dropped: it cannot be told which flow it is about.
pub fn read(ip: &[u8]) -> Result<Reply, DropReason> {
    let packet = ipv4::Packet::new_checked(ip).map_err(|_| DropReason::Truncated)?;
    let (proto, src, dst) = (packet.protocol(), packet.src(), packet.dst());
    let first_fragment = packet.is_fragment().then_some(Datagram {
        src,
        dst,
        proto,
        ident: packet.ident(),
    });
    if let Some(datagram) = first_fragment {
        // Only TCP and UDP replies are followed through their fragments (an ICMP message in
        // fragments goes to the host, as anything else without a mapping, 7.7).
        if !matches!(proto, PROTO_TCP | topology::hash::PROTO_UDP) {
            return Ok(Reply::Other);
        }
        if packet.is_later_fragment() {
            return Ok(Reply::LaterFragment(datagram));
        }
    }
    let l4 = packet.payload();
    if proto == PROTO_ICMP
        && l4
            .first()
            .is_some_and(|t| icmp::STEERED_ERROR_TYPES.contains(t))
    {
        return read_error(dst, packet.header_len(), l4);
    }
    Ok(match reply_ends(proto, src, dst, l4) {
        Some(ends) => Reply::Flow {
            ends,
            tcp_flags: (proto == PROTO_TCP)
                .then(|| l4.get(tcp::FLAGS).copied())
                .flatten(),
            first_fragment,
        },
        None => Reply::Other,
    })
}

/// An ICMP error to `dst`, whose message `message` follows an IPv4 header of `header_len`.
fn read_error(dst: u32, header_len: usize, message: &[u8]) -> Result<Reply, DropReason> {
    let quoted = message
        .get(icmp::HEADER_LEN..)
        .ok_or(DropReason::Truncated)?;
    let header = ipv4::FixedHeader::of(quoted).ok_or(DropReason::Truncated)?;
    let quoted_header_len = usize::from(quoted[0] & 0x0f) * 4;
    if quoted_header_len < ipv4::HEADER_LEN {
        return Err(DropReason::BadInner);
    }
    if header.is_fragment() {
        return Err(DropReason::QuotedFragment);
    }
    // About a flow of ours only if the quote left from the address the error is sent to.
    if header.src() != dst {
        return Ok(Reply::Other);
    }
    let l4 = quoted
        .get(quoted_header_len..)
        .ok_or(DropReason::Truncated)?;
    let proto = header.protocol();
    let Some(ends) = crate::mappings::outbound_ends(proto, header.src(), header.dst(), l4) else {
        // A quote of something we never map (an error about an error, another protocol).
        return if matches!(proto, topology::hash::PROTO_TCP | topology::hash::PROTO_UDP) {
            Err(DropReason::Truncated)
        } else {
            Ok(Reply::Other)
        };
    };
    Ok(Reply::Error {
        ends,
        quote_at: header_len + icmp::HEADER_LEN + quoted_header_len,
    })
}

/// Restores the port the flow left its origin with (`port`): a reply's destination port
/// (an echo reply's identifier), or an error's quoted source port, with every checksum that
/// covers it (the reply's L4 checksum; the quote's L4 checksum if quoted, and the error's
/// ICMP checksum). `ip` is the packet [`read`] read as `reply`.
pub fn restore(ip: &mut [u8], reply: &Reply, port: u16) -> Result<(), DropReason> {
    let header_len = ipv4::Packet::new_checked(&*ip)
        .map_err(|_| DropReason::Truncated)?
        .header_len();
    match *reply {
        Reply::Flow { ends, .. } => {
            if ends.local_port != port {
                let l4 = ip.get_mut(header_len..).ok_or(DropReason::Truncated)?;
                ports::set(ends.proto, l4, End::Destination, port).ok_or(DropReason::Truncated)?;
            }
        }
        Reply::Error { ends, quote_at } => {
            if ends.local_port != port {
                let quote = ip.get_mut(quote_at..).ok_or(DropReason::Truncated)?;
                let changed = ports::set(ends.proto, quote, End::Source, port)
                    .ok_or(DropReason::Truncated)?;
                let sum_at = header_len + icmp::CHECKSUM;
                let sum = ip.get(sum_at..sum_at + 2).ok_or(DropReason::Truncated)?;
                let updated = changed.update(u16::from_be_bytes([sum[0], sum[1]]));
                ip[sum_at..sum_at + 2].copy_from_slice(&updated.to_be_bytes());
            }
        }
        Reply::LaterFragment(_) | Reply::Other => {}
    }
    // The IPv4 headers (outer and quoted) are untouched: no address changes.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use topology::hash::PROTO_UDP;

    fn udp_packet(src: u32, dst: u32, sport: u16, dport: u16) -> Vec<u8> {
        let payload = [0x11u8; 12];
        let mut ip = vec![0u8; ipv4::HEADER_LEN + 8 + payload.len()];
        ipv4::Repr {
            src,
            dst,
            protocol: PROTO_UDP,
            tos: 0,
            ttl: 64,
            dont_fragment: true,
            payload_len: 8 + payload.len(),
        }
        .emit(&mut ip);
        let l4 = &mut ip[ipv4::HEADER_LEN..];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4[8..].copy_from_slice(&payload);
        ip
    }

    /// An ICMP port unreachable from `from` to `to`, quoting `quoted` (cut to `quote_len`).
    fn icmp_error(from: u32, to: u32, quoted: &[u8], quote_len: usize) -> Vec<u8> {
        let quote = &quoted[..quote_len.min(quoted.len())];
        let mut ip = vec![0u8; ipv4::HEADER_LEN + icmp::HEADER_LEN + quote.len()];
        ipv4::Repr {
            src: from,
            dst: to,
            protocol: PROTO_ICMP,
            tos: 0,
            ttl: 64,
            dont_fragment: false,
            payload_len: icmp::HEADER_LEN + quote.len(),
        }
        .emit(&mut ip);
        let message = &mut ip[ipv4::HEADER_LEN..];
        message[0] = 3;
        message[1] = 3;
        message[icmp::HEADER_LEN..].copy_from_slice(quote);
        let sum = checksum::checksum(message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        ip
    }

    const X: u32 = 0xc633_6401;
    const R: u32 = 0x5db8_d822;

    #[test]
    fn replies_are_read_from_our_side() {
        let reply = read(&udp_packet(R, X, 53, 40000)).unwrap();
        assert_eq!(
            reply.ends(),
            Some(&Ends {
                proto: PROTO_UDP,
                local: X,
                local_port: 40000,
                remote: R,
                remote_port: 53
            })
        );
    }

    #[test]
    fn an_error_is_read_by_its_quote_and_restored_with_every_checksum() {
        let outbound = udp_packet(X, R, 5000, 53);
        for quote_len in [ipv4::HEADER_LEN + 8, outbound.len()] {
            let mut error = icmp_error(0x0a00_0001, X, &outbound, quote_len);
            let reply = read(&error).unwrap();
            let Reply::Error { ends, quote_at } = reply else {
                panic!("{reply:?}")
            };
            assert_eq!(
                (ends.local, ends.local_port, ends.remote, ends.remote_port),
                (X, 5000, R, 53)
            );
            assert_eq!(quote_at, 48);
            restore(&mut error, &reply, 40000).unwrap();
            let message = &error[ipv4::HEADER_LEN..];
            assert_eq!(checksum::sum(message), 0xffff, "ICMP checksum still valid");
            assert_eq!(&error[quote_at..quote_at + 2], &40000u16.to_be_bytes());
        }
        // A quote too short for its ports, a quoted fragment, a quote from someone else.
        let short = icmp_error(1, X, &outbound, ipv4::HEADER_LEN + 2);
        assert_eq!(read(&short), Err(DropReason::Truncated));
        let mut fragment = outbound.clone();
        fragment[6] |= 0x20;
        assert_eq!(
            read(&icmp_error(1, X, &fragment, 28)),
            Err(DropReason::QuotedFragment)
        );
        let theirs = udp_packet(R, 0x0101_0101, 1, 2);
        assert_eq!(read(&icmp_error(1, X, &theirs, 28)), Ok(Reply::Other));
    }
}
