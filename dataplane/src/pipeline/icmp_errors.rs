//! The ICMP errors the pipeline sends: only to this server's own host, for its own
//! packets that do not fit (`Sender`).

use super::*;

impl Pipeline {
    /// A packet larger than the `room` its path allows. A host's own DF packet is answered
    /// with an ICMP "fragmentation needed" through the host port, so that its path MTU
    /// discovery works. Everything else is dropped (`too_big`):
    /// - without DF, because we never fragment;
    /// - from a peer or from the internet, because an ICMP from our underlay address must
    ///   never reach an internet origin, and a peer's host is reached through that peer (MSS
    ///   clamping keeps TCP from getting here);
    /// - an ICMP error or a later fragment, which RFC 1812 4.3.2.7 forbids answering.
    pub(super) fn too_big<B: PacketBuf>(
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
    pub(super) fn frag_needed<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        mtu: u16,
    ) -> Verdict {
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
}
