//! Encapsulation and decapsulation (contract section 4): the outer headers, built once
//! per configuration and completed per packet, and the way back out of them.

use super::*;

impl Pipeline {
    /// Encapsulates the packet to the fleet server with underlay `target`; a SYN's MSS is
    /// clamped unless `syn` says stage 1 saw the packet is none.
    pub(super) fn encapsulate<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        target: u32,
        flow_hash: u64,
        sender: Sender,
        syn: Syn,
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
        if let Some(mss) = self.config.mss_clamp.filter(|_| syn != Syn::NotSyn) {
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
        flow: &FlowKey,
        peer: u32,
        strip: u16,
        decision: Decision,
    ) -> Verdict {
        // Not egress traffic: nothing a peer may send (nor a tunnel to us, which stage 1
        // dropped).
        if decision == Decision::Pass {
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
        self.act_v4(ctx, buf, flow, decision, Origin::Peer(peer))
    }
}
