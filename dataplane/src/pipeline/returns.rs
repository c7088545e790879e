//! Replies (contract 7.3 to 7.5): restored by a mapping here, steered to their slice
//! owner, passed on for a second chance, or delivered to the host.

use super::*;

/// The outbound flow of mapped ends, as its host sent it (the key of its pin).
#[inline]
pub(super) fn outbound_flow_of(ends: &Ends) -> FlowKey {
    FlowKey {
        src: ends.local,
        dst: ends.remote,
        proto: ends.proto,
        sport: ends.local_port,
        dport: ends.remote_port,
    }
}

impl Pipeline {
    /// Contract 7.3 to 7.5: a packet to an egress address of `pool`, from the uplink
    /// (`origin` is [`Origin::Host`]: not through a tunnel) or passed on by a fleet peer.
    pub(super) fn reply<B: PacketBuf>(
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
    pub(super) fn route_reply<B: PacketBuf>(
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
            if ctx
                .mappings
                .pins()
                .contains(&outbound_flow_of(ends), ctx.now)
            {
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

    pub(super) fn send_reply<B: PacketBuf>(
        &mut self,
        ctx: &Context<'_>,
        buf: &mut B,
        route: FragmentRoute,
    ) -> Verdict {
        match route {
            FragmentRoute::Host => self.reply_to_host(buf),
            FragmentRoute::Encap { underlay, hash } => {
                self.encapsulate(ctx, buf, underlay, hash, Sender::Elsewhere, Syn::Unknown)
            }
        }
    }

    pub(super) fn reply_to_host<B: PacketBuf>(&mut self, buf: &mut B) -> Verdict {
        self.counters.replies_to_host += 1;
        route_v4(buf, &self.ethernet.host_v4, Verdict::Host)
    }
}
