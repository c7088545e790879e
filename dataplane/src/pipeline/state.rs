//! A packet's flow state: its mapping when it egresses here (7.2), its pin when it is
//! forwarded from the host (7.6), a drained holder's flows, and the MSS clamp of SYNs.

use super::*;

/// Whether a TCP or UDP flow key has its ports: not a fragment (every fragment is keyed
/// without them, [`classify::flow_of`]).
#[inline]
pub(super) fn has_ports(flow: &FlowKey) -> bool {
    matches!(flow.proto, PROTO_TCP | PROTO_UDP) && (flow.sport | flow.dport) != 0
}

/// What stages 1 and 2 found of the pin of a TCP or UDP flow forwarded from the host: where
/// its line is, and the segment's TCP flags. Its key is the flow key stage 1 read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PinAhead {
    pub probe: PinProbe,
    pub tcp_flags: Option<u8>,
}

/// Whether a packet may be a TCP SYN (or SYN-ACK) whose MSS a tunnel's clamp lowers: only
/// stage 1's read of the flags can say it is not, which spares an established flow's packet
/// parsing its headers again for the clamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Syn {
    /// Stage 1 read the segment's flags, and they carry no SYN.
    NotSyn,
    /// A SYN, or flags nobody read (another protocol, a fragment, a packet decided later).
    Unknown,
}

impl Syn {
    /// From stage 1's read of a packet's TCP flags.
    pub fn of(tcp_flags: Option<u8>) -> Self {
        match tcp_flags {
            Some(flags) if flags & tcp::FLAG_SYN == 0 => Syn::NotSyn,
            _ => Syn::Unknown,
        }
    }
}

/// The pin key and TCP flags of a packet from the host whose flow key is `flow`, if it can be
/// pinned: a TCP or UDP flow with its ports (the key itself), or an ICMP echo request, not a
/// fragment (its identifier as the source port, as its mapping has it). Fragments hash
/// without ports, so they follow the table alike.
#[inline]
pub(super) fn pin_key<B: PacketBuf>(buf: &B, flow: &FlowKey) -> Option<(FlowKey, Option<u8>)> {
    let ip = buf.data().get(ethernet::HEADER_LEN..)?;
    if has_ports(flow) {
        // Stage 1 checked the header the key was read from.
        let tcp_flags = (flow.proto == PROTO_TCP)
            .then(|| {
                let header = ipv4::FixedHeader::of(ip)?;
                let segment = ip.get(header.header_len()..header.total_len())?;
                segment.get(tcp::FLAGS).copied()
            })
            .flatten();
        return Some((*flow, tcp_flags));
    }
    if flow.proto != PROTO_ICMP {
        return None;
    }
    let ip = ipv4::Packet::new_checked(ip).ok()?;
    if ip.is_fragment() {
        return None;
    }
    let ends = mappings::outbound_ends(flow.proto, ip.src(), ip.dst(), ip.payload())?;
    Some((returns::outbound_flow_of(&ends), None))
}

impl Pipeline {
    /// The holder a flow from the host is still pinned to, with its flow hash, when it is
    /// pinned to another server than this one (see [`PinOwner::pinned_elsewhere`]).
    pub(super) fn pinned_elsewhere<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        flow: &FlowKey,
    ) -> Option<(ServerId, u64)> {
        let (flow, tcp_flags) = pin_key(buf, flow)?;
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
    pub(super) fn drained_but_leaving_here<B: PacketBuf>(
        &self,
        ctx: &Context<'_>,
        buf: &B,
        origin: Origin,
    ) -> Option<PoolId> {
        // Every forwarded packet asks: one branch unless this server drains a pool.
        if !ctx.table.drains_here() {
            return None;
        }
        let ip = ipv4::Packet::new_checked(buf.data().get(ethernet::HEADER_LEN..)?).ok()?;
        let pool = ctx.table.drained_pool_of(ip.src())?;
        if matches!(origin, Origin::Peer(_)) {
            return Some(pool);
        }
        let ends = mappings::outbound_ends(ip.protocol(), ip.src(), ip.dst(), ip.payload())?;
        ctx.mappings.carries(&ends, origin).then_some(pool)
    }

    /// Contract 7.6: the target of a flow from the host that the table forwards: its pinned
    /// target while that one still holds the address, else the table's (read only then).
    /// `pin` is where stage 2 started loading its pin, if it did. Fragments and other
    /// protocols than TCP, UDP and ICMP echo are not pinned.
    pub(super) fn pinned_target<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        flow: &FlowKey,
        forwarding: &Forwarding,
        pin: Option<PinAhead>,
    ) -> Result<ServerId, DropReason> {
        let decide = || ctx.table.forward_target(forwarding);
        let pins = ctx.mappings.pins();
        let worker = self.mappings.pins_ref().worker();
        let (flow, tcp_flags, probe) = match pin {
            Some(ahead) => {
                debug_assert_eq!(
                    pin_key(buf, flow),
                    Some((*flow, ahead.tcp_flags)),
                    "stages 1 and 2 read the key and flags stage 3 would"
                );
                (*flow, ahead.tcp_flags, ahead.probe)
            }
            None => {
                let Some((flow, tcp_flags)) = pin_key(buf, flow) else {
                    return Ok(decide());
                };
                (flow, tcp_flags, pins.probe(worker, flow.hash()))
            }
        };
        debug_assert_eq!(
            probe,
            pins.probe(worker, flow.hash()),
            "stage 2 probed the pin of the key stage 3 looks up"
        );
        let pinned = self
            .mappings
            .pins()
            .target(pins, ctx.table, probe, &flow, decide, tcp_flags, ctx.now);
        match pinned {
            Pinned::Kept(target) => Ok(target),
            Pinned::Created {
                target,
                replaced_expired,
            } => {
                self.counters.pins_created += 1;
                self.counters.pins_expired += u64::from(replaced_expired);
                Ok(target)
            }
            Pinned::Redecided(target) => {
                self.counters.pins_redecided += 1;
                Ok(target)
            }
            Pinned::Full => Err(DropReason::ConnectionsFull),
        }
    }

    /// Contract 7.2: the mapping of a flow egressing here from `origin`, found or created,
    /// and its source port translated if the mapping says so. Flows without ports (other
    /// protocols, fragments) have none.
    pub(super) fn map_outbound<B: PacketBuf>(
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

    /// Lowers the MSS of a TCP SYN or SYN-ACK in `buf` (an Ethernet frame with a checked
    /// IPv4 header) to `mss`, its checksum updated, and counts it.
    pub(super) fn clamp_syn<B: PacketBuf>(&mut self, buf: &mut B, mss: u16) {
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
}
