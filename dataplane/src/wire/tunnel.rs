//! The outer headers of every encapsulated packet (Ethernet, IPv4 and, for FOU, UDP), built
//! once per configuration. Per packet only the source and destination underlays, the TOS,
//! the lengths, the UDP source port and the IPv4 checksum change; the checksum is completed
//! from the sum of the words that never do.

use super::{checksum, ethernet, ipv4, udp};

/// Room for the longest tunnel: Ethernet, IPv4 and UDP.
pub const TUNNEL_MAX: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Where the outer IPv4 and UDP headers start in the template.
const IP: usize = ethernet::HEADER_LEN;
const UDP: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

/// Outer TTL of encapsulated packets, as Linux tunnels default to.
pub const OUTER_TTL: u8 = 64;

#[derive(Debug, Clone)]
pub struct TunnelTemplate {
    headers: [u8; TUNNEL_MAX],
    udp: bool,
    /// One's-complement sum of the IPv4 header words that never change: version and IHL
    /// (TOS excluded), flags, TTL and protocol.
    constant_sum: u32,
}

/// IPv4 protocol numbers of the two tunnels.
const PROTO_IPIP: u8 = 4;
const PROTO_UDP: u8 = 17;

impl TunnelTemplate {
    /// The template of a tunnel leaving from `mac` to the next hop `next_hop`: FOU to
    /// `encap_port` when `udp`, else IP-in-IP.
    pub fn new(mac: [u8; 6], next_hop: [u8; 6], udp: bool, encap_port: u16) -> Self {
        let protocol = if udp { PROTO_UDP } else { PROTO_IPIP };
        let mut headers = [0u8; TUNNEL_MAX];
        headers[ethernet::field::DST].copy_from_slice(&next_hop);
        headers[ethernet::field::SRC].copy_from_slice(&mac);
        headers[ethernet::field::ETHERTYPE]
            .copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut headers[IP..UDP];
        ip[ipv4::field::VER_IHL] = 0x45;
        ip[ipv4::field::FLAGS_FRAG].copy_from_slice(&ipv4::FLAG_DONT_FRAGMENT.to_be_bytes());
        ip[ipv4::field::TTL] = OUTER_TTL;
        ip[ipv4::field::PROTOCOL] = protocol;
        headers[UDP..][udp::field::DST_PORT].copy_from_slice(&encap_port.to_be_bytes());
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
    pub fn write(
        &self,
        frame: &mut [u8],
        src: u32,
        dst: u32,
        tos: u8,
        inner_len: usize,
        sport: u16,
    ) {
        if self.udp {
            let Some(h) = frame.first_chunk_mut::<TUNNEL_MAX>() else {
                return;
            };
            *h = self.headers;
            let l4 = &mut h[UDP..];
            l4[udp::field::SRC_PORT].copy_from_slice(&sport.to_be_bytes());
            l4[udp::field::LENGTH]
                .copy_from_slice(&((udp::HEADER_LEN + inner_len) as u16).to_be_bytes());
            self.fill_ip(
                h,
                src,
                dst,
                tos,
                (ipv4::HEADER_LEN + udp::HEADER_LEN + inner_len) as u16,
            );
        } else {
            let Some(h) = frame.first_chunk_mut::<UDP>() else {
                return;
            };
            h.copy_from_slice(&self.headers[..UDP]);
            self.fill_ip(h, src, dst, tos, (ipv4::HEADER_LEN + inner_len) as u16);
        }
    }

    /// The per-packet fields of the outer IPv4 header, behind the Ethernet header in `h`, and
    /// its checksum.
    #[inline(always)]
    fn fill_ip(&self, h: &mut [u8], src: u32, dst: u32, tos: u8, ip_total: u16) {
        let ip = &mut h[IP..UDP];
        ip[ipv4::field::TOS] = tos;
        ip[ipv4::field::TOTAL_LEN].copy_from_slice(&ip_total.to_be_bytes());
        ip[ipv4::field::SRC].copy_from_slice(&src.to_be_bytes());
        ip[ipv4::field::DST].copy_from_slice(&dst.to_be_bytes());
        let words = [
            u16::from(tos),
            ip_total,
            (src >> 16) as u16,
            src as u16,
            (dst >> 16) as u16,
            dst as u16,
        ];
        ip[ipv4::field::CHECKSUM].copy_from_slice(
            &checksum::finish(checksum::add_words(self.constant_sum, &words)).to_be_bytes(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fou_header_is_valid_and_carries_its_fields() {
        let t = TunnelTemplate::new([2, 0, 0, 0, 0, 0x0a], [2, 0, 0, 0, 0, 0xfe], true, 6080);
        let mut frame = [0u8; TUNNEL_MAX + 10];
        t.write(&mut frame, 0x0a0a_0101, 0x0a0a_0102, 0xb8, 10, 51000);
        let ip = ipv4::Packet::new_checked(&frame[IP..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl(), ip.protocol()),
            (0x0a0a_0101, 0x0a0a_0102, 64, 17)
        );
        assert_eq!(ip.total_len(), 20 + 8 + 10);
        assert_eq!(udp::ports(&frame[UDP..]), Some((51000, 6080)));
        assert_eq!(&frame[UDP + 4..UDP + 6], &18u16.to_be_bytes());
        let ipip = TunnelTemplate::new([2; 6], [3; 6], false, 6080);
        let mut frame = [0u8; UDP + 10];
        ipip.write(&mut frame, 1, 2, 0, 10, 0);
        let ip = ipv4::Packet::new_checked(&frame[IP..]).unwrap();
        assert!(ip.verify_checksum() && ip.protocol() == 4 && ip.total_len() == 30);
    }
}
