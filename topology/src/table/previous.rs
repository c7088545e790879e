//! Contract 7.5.3, the second chance: after a reload, for the pools this server holds, the
//! slices it owns now that another server owned in the table it replaced, with that server's
//! underlay, until the end of the grace period (`slice_grace_seconds`). A reply passed to
//! this server for such a slice, that no mapping here matches, may belong to a connection
//! the previous owner still carries: it is passed on to it, once.
//!
//! Only what a reply needs is kept (an underlay per fine slice of the pools held now, shared
//! between pools with the same holders before and after), not the previous table: at
//! customer scale that would hold a second table for the whole grace period.

use std::collections::HashMap;

use super::{ForwardingTable, Tier};
use crate::model::PoolId;
use crate::slices::FIRST_PORT;

/// No previous owner to pass a reply on to (the same owner before, or not this server's
/// slice now).
const NONE: u32 = 0;
const NOT_KEPT: u32 = u32::MAX;

/// A pool's holders as underlay and weight: comparable between two tables, whose server ids
/// may differ.
type Holders = Vec<(u32, u32)>;

#[derive(Debug, Clone, Default)]
pub struct PreviousOwners {
    /// The workers' clock (seconds) from which on it is forgotten (a grace of 0 keeps
    /// nothing).
    until: u32,
    /// Ports per entry of a map, as a shift: the smaller of the two tables' slices, so that an
    /// entry lies within one slice of each.
    shift: u32,
    /// Each pool's map in `maps` (by the new table's pool ids), or [`NOT_KEPT`].
    of_pool: Vec<u32>,
    /// For every fine slice, the previous owner's underlay, or [`NONE`].
    maps: Vec<Box<[u32]>>,
    /// By the new table's pool ids: pools this server holds now but did not hold in a table
    /// within the grace period. Flows it forwarded for them before may still be pinned to
    /// another holder (7.6), so their local egress consults the pins until `until`.
    newly_held: Vec<bool>,
}

impl PreviousOwners {
    /// What `next` (about to replace `previous`) keeps of `previous` until `until`; `now` is
    /// the workers' clock (a pool `previous` had newly taken on is still new if its own grace
    /// has not ended).
    pub fn between(
        previous: &ForwardingTable,
        next: &ForwardingTable,
        now: u32,
        until: u32,
    ) -> Self {
        let port_slice = previous.port_slice().min(next.port_slice());
        let shift = port_slice.trailing_zeros();
        let entries = (65536 - u32::from(FIRST_PORT)) >> shift;
        let old_pools: HashMap<&str, PoolId> = (0..previous.routes().len())
            .map(|i| PoolId(i as u32))
            .map(|p| (previous.pool_name(p), p))
            .collect();
        // Pools with the same holders before and after have the same map: one for them all.
        let mut shared: HashMap<(Holders, Holders), u32> = HashMap::new();
        let mut maps: Vec<Box<[u32]>> = Vec::new();
        let of_pool = (0..next.routes().len())
            .map(|i| {
                let pool = PoolId(i as u32);
                let (Some(held), Some(&old)) =
                    (next.held_slices(pool), old_pools.get(next.pool_name(pool)))
                else {
                    return NOT_KEPT;
                };
                let holders = |t: &ForwardingTable, p: PoolId| -> Holders {
                    t.routes()[p.index()]
                        .holders
                        .iter()
                        .map(|h| (t.underlay_of(h.server), h.weight))
                        .collect()
                };
                let key = (holders(previous, old), holders(next, pool));
                if key.0 == key.1 {
                    return NOT_KEPT;
                }
                *shared.entry(key).or_insert_with(|| {
                    let map: Box<[u32]> = (0..entries)
                        .map(|e| {
                            let port = (u32::from(FIRST_PORT) + (e << shift)) as u16;
                            if !held.is_mine(port) {
                                return NONE;
                            }
                            match previous.slice_owner(old, port) {
                                Some(owner) if owner != previous.me() => {
                                    previous.underlay_of(owner)
                                }
                                _ => NONE,
                            }
                        })
                        .collect();
                    if map.iter().all(|&u| u == NONE) {
                        return NOT_KEPT;
                    }
                    maps.push(map);
                    maps.len() as u32 - 1
                })
            })
            .collect();
        // New flows leave from here now but were forwarded before: the pool was taken on,
        // or this server's drain was lifted.
        let egresses = |table: &ForwardingTable, pool: PoolId| {
            table.routes()[pool.index()].tier == Tier::Local
        };
        let newly_held = (0..next.routes().len())
            .map(|i| {
                let pool = PoolId(i as u32);
                egresses(next, pool)
                    && match old_pools.get(next.pool_name(pool)) {
                        None => true,
                        Some(&old) => !egresses(previous, old) || previous.newly_held(old, now),
                    }
            })
            .collect();
        Self {
            until,
            shift,
            of_pool,
            maps,
            newly_held,
        }
    }

    /// Whether this server took `pool` on within the grace period (see `newly_held`).
    #[inline]
    pub fn newly_held(&self, pool: PoolId, now: u32) -> bool {
        now < self.until && self.newly_held.get(pool.index()).copied().unwrap_or(false)
    }

    /// The underlay of the server that owned `port`'s slice of `pool` before the last reload,
    /// if this server owns it now, another did then, and `now` is within the grace period.
    #[inline]
    pub fn owner(&self, pool: PoolId, port: u16, now: u32) -> Option<u32> {
        if now >= self.until {
            return None;
        }
        let map = self.maps.get(*self.of_pool.get(pool.index())? as usize)?;
        let entry = usize::from(port.checked_sub(FIRST_PORT)? >> self.shift);
        map.get(entry).copied().filter(|&u| u != NONE)
    }

    /// Bytes kept, for logs.
    pub fn memory_bytes(&self) -> usize {
        self.of_pool.len() * 4
            + self.newly_held.len()
            + self.maps.iter().map(|m| m.len() * 4).sum::<usize>()
    }
}
