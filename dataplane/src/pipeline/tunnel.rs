//! Encapsulation and decapsulation (contract section 4): the outer headers, built once
//! per configuration and completed per packet, and the way back out of them.

use super::*;

/// Room for the longest tunnel: Ethernet, IPv4 and UDP.
pub(super) const TUNNEL_MAX: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// The outer headers of every encapsulated packet, built once per configuration. Per packet
/// only the source and destination underlays, the TOS, the lengths, the UDP source port and
/// the checksum change; the checksum is completed from the sum of the constant words.
#[derive(Debug, Clone)]
pub(super) struct TunnelTemplate {
    headers: [u8; TUNNEL_MAX],
    udp: bool,
    /// One's-complement sum of the IPv4 header words that never change: version and IHL
    /// (TOS excluded), flags, TTL and protocol.
    constant_sum: u32,
}

impl TunnelTemplate {
    pub(super) fn new(config: &PipelineConfig) -> Self {
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
    pub(super) fn write(
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
    pub(super) fn fill_ip(&self, h: &mut [u8], src: u32, dst: u32, tos: u8, ip_total: u16) {
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

impl Pipeline {
    /// Encapsulates the packet to the fleet server with underlay `target`.
    pub(super) fn encapsulate<B: PacketBuf>(
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

    /// Step 3: strips the tunnel of a fleet packet from `peer` (its underlay) and acts on the
    /// inner packet, `strip` bytes after the Ethernet header, already decided.
    pub(super) fn decapsulate<B: PacketBuf>(
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
