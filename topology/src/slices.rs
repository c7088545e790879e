//! Port slices (contract 7.1): for every IPv4 pool, the ports 1024..=65535 of its addresses
//! are cut into slices of `port_slice` ports, and each slice belongs to one holder by weighted
//! rendezvous over all the pool's holders, drained ones included. Every server derives the
//! same map from the topology file alone, so the destination port of a reply names the
//! server that owns its connection, wherever the reply lands, with no per-flow state.
//!
//! A slice is the same port range on every address of its pool. Ports below 1024 belong to
//! no slice. The last slice is shorter when `port_slice` does not divide the 64,512 ports.

use std::ops::RangeInclusive;

use crate::hash::slice_hash;
use crate::rendezvous::{equal_weights, winner, Candidate};

/// The first port of the first slice.
pub const FIRST_PORT: u16 = 1024;
/// Ports in slices: 1024..=65535.
pub const PORTS: u32 = 65536 - FIRST_PORT as u32;
/// Ports per slice when the topology does not say (contract 4).
pub const DEFAULT_PORT_SLICE: u16 = 64;

/// Number of slices of a pool.
pub fn count(port_slice: u16) -> usize {
    PORTS.div_ceil(u32::from(port_slice)) as usize
}

/// The slice holding `port`, or `None` below 1024.
#[inline]
pub fn slice_of(port: u16, port_slice: u16) -> Option<u16> {
    port.checked_sub(FIRST_PORT).map(|p| p / port_slice)
}

/// The ports of slice `slice`.
pub fn ports_of(slice: u16, port_slice: u16) -> RangeInclusive<u16> {
    let first = u32::from(FIRST_PORT) + u32::from(slice) * u32::from(port_slice);
    let last = (first + u32::from(port_slice) - 1).min(u32::from(u16::MAX));
    first as u16..=last as u16
}

/// The owner of `slice` among `holders` (all of a pool's holders, drained ones included).
#[inline]
pub fn owner<'c, 'a>(holders: &'c [Candidate<'a>], slice: u16) -> &'c Candidate<'a> {
    winner(holders, slice_hash(slice), equal_weights(holders))
}

/// The owner's [`Candidate::index`] of every slice of a pool, in slice order.
pub fn map(holders: &[Candidate<'_>], port_slice: u16) -> Vec<u16> {
    assert!(!holders.is_empty(), "a pool always has holders");
    let equal = equal_weights(holders);
    (0..count(port_slice) as u16)
        .map(|s| winner(holders, slice_hash(s), equal).index)
        .collect()
}

/// The port ranges of the slices that `map` gives to `index`, adjacent slices merged.
pub fn ranges(map: &[u16], port_slice: u16, index: u16) -> Vec<RangeInclusive<u16>> {
    let slices = (0..map.len() as u16).filter(|&s| map[usize::from(s)] == index);
    merged_ports(slices, port_slice)
}

/// The ports of `slices` (in increasing order), adjacent slices merged into one range.
pub fn merged_ports(
    slices: impl IntoIterator<Item = u16>,
    port_slice: u16,
) -> Vec<RangeInclusive<u16>> {
    let mut out: Vec<RangeInclusive<u16>> = Vec::new();
    for slice in slices {
        let ports = ports_of(slice, port_slice);
        match out.last_mut() {
            Some(last) if u32::from(*last.end()) + 1 == u32::from(*ports.start()) => {
                *last = *last.start()..=*ports.end();
            }
            _ => out.push(ports),
        }
    }
    out
}

/// The slice map of a pool as one of its holders keeps it: the owner of every slice (by
/// server index), and this holder's own slices, to keep a flow's port in or to allocate one
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSlices {
    /// Bit `s` is set when slice `s` is this holder's. Every outbound packet asks, so the
    /// answer is one word of a bitmap (128 bytes at 64 ports a slice), not an entry of the
    /// owners (2 KB), which a fleet of many pools would keep out of cache.
    mine_bits: Box<[u64]>,
    owners: Vec<u16>,
    mine: Vec<u16>,
    me: u16,
    port_slice: u16,
    /// `port_slice` is a power of two (validated): slices are found by a shift.
    shift: u32,
}

impl HeldSlices {
    /// From a pool's map ([`map`]) as holder `me` sees it. `port_slice` is a power of two.
    pub fn new(owners: Vec<u16>, me: u16, port_slice: u16) -> Self {
        assert!(port_slice.is_power_of_two(), "port_slice is a power of two");
        let mine: Vec<u16> = (0..owners.len() as u16)
            .filter(|&s| owners[usize::from(s)] == me)
            .collect();
        let mut mine_bits = vec![0u64; owners.len().div_ceil(64)].into_boxed_slice();
        for &s in &mine {
            mine_bits[usize::from(s) / 64] |= 1 << (s % 64);
        }
        Self {
            mine_bits,
            owners,
            mine,
            me,
            port_slice,
            shift: port_slice.trailing_zeros(),
        }
    }

    #[inline]
    fn slice_of(&self, port: u16) -> Option<usize> {
        port.checked_sub(FIRST_PORT)
            .map(|p| usize::from(p >> self.shift))
    }

    /// The owner (server index) of `port`'s slice; `None` below the first slice.
    #[inline]
    pub fn owner(&self, port: u16) -> Option<u16> {
        self.owners.get(self.slice_of(port)?).copied()
    }

    /// Whether `port` is in one of this holder's slices.
    #[inline]
    pub fn is_mine(&self, port: u16) -> bool {
        self.slice_of(port)
            .and_then(|s| self.mine_bits.get(s / 64).map(|w| w >> (s % 64) & 1 == 1))
            .unwrap_or(false)
    }

    /// How many slices this holder owns.
    pub fn count(&self) -> usize {
        self.mine.len()
    }

    /// A port of this holder's slices, chosen by `random`, that is `worker` modulo `workers`:
    /// each worker allocates from its own share of the slices, so two never pick the same
    /// port. `None` when this holder owns no slice, or the chosen slice has no such port
    /// (more workers than ports in a slice).
    #[inline]
    pub fn pick(&self, random: u64, worker: u16, workers: u16) -> Option<u16> {
        if self.mine.is_empty() || workers == 0 {
            return None;
        }
        let slice = self.mine[(random % self.mine.len() as u64) as usize];
        let ports = ports_of(slice, self.port_slice);
        let (first, last) = (u32::from(*ports.start()), u32::from(*ports.end()));
        let workers = u32::from(workers);
        let start = first + (u32::from(worker) + workers - first % workers) % workers;
        if start > last {
            return None;
        }
        let choices = (last - start) / workers + 1;
        let step = ((random >> 32) % u64::from(choices)) as u32;
        Some((start + step * workers) as u16)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn held_slices_pick_only_own_ports_of_the_worker_share() {
        // Slices of 16: owners alternate between servers 3 and 5.
        let owners: Vec<u16> = (0..super::count(16) as u16)
            .map(|s| if s % 2 == 0 { 3 } else { 5 })
            .collect();
        let held = super::HeldSlices::new(owners, 5, 16);
        assert_eq!(held.count(), super::count(16) / 2);
        assert_eq!(held.owner(1023), None);
        assert_eq!((held.owner(1024), held.owner(1040)), (Some(3), Some(5)));
        assert!(held.is_mine(1040) && !held.is_mine(1039));
        let mut random = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            random = random.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(1);
            let port = held.pick(random, 2, 3).unwrap();
            assert!(held.is_mine(port) && port % 3 == 2, "{port}");
        }
        // More workers than ports in a slice: some workers have none in a given slice.
        assert!((0..64u64).any(|r| held.pick(r, 40, 48).is_none()));
    }

    use super::*;

    fn candidate(index: u16, name: &'static str, weight: u32) -> Candidate<'static> {
        Candidate {
            index,
            seed: crate::hash::name_seed(name),
            weight,
            name,
        }
    }

    #[test]
    fn slices_cover_every_port_from_1024_once() {
        for port_slice in [16u16, 64, 100, 4096] {
            let n = count(port_slice);
            assert_eq!(slice_of(1023, port_slice), None);
            assert_eq!(slice_of(1024, port_slice), Some(0));
            assert_eq!(slice_of(65535, port_slice), Some(n as u16 - 1));
            assert_eq!(*ports_of(n as u16 - 1, port_slice).end(), 65535);
            let covered: u32 = (0..n as u16)
                .map(|s| {
                    let r = ports_of(s, port_slice);
                    assert!(r.clone().all(|p| slice_of(p, port_slice) == Some(s)));
                    u32::from(*r.end()) - u32::from(*r.start()) + 1
                })
                .sum();
            assert_eq!(covered, PORTS);
        }
        assert_eq!(count(64), 1008);
        assert_eq!(ports_of(0, 64), 1024..=1087);
    }

    #[test]
    fn ranges_merge_adjacent_slices_and_partition_the_ports() {
        let holders = [
            candidate(0, "a", 1),
            candidate(1, "b", 3),
            candidate(2, "c", 1),
        ];
        let map = map(&holders, 64);
        let all: u32 = (0..3)
            .flat_map(|i| ranges(&map, 64, i))
            .map(|r| u32::from(*r.end()) - u32::from(*r.start()) + 1)
            .sum();
        assert_eq!(all, PORTS);
        for i in 0..3 {
            let rs = ranges(&map, 64, i);
            assert!(rs
                .windows(2)
                .all(|w| u32::from(*w[0].end()) + 1 < u32::from(*w[1].start())));
        }
        assert_eq!(ranges(&[0, 0, 1, 0], 64, 0), vec![1024..=1151, 1216..=1279]);
        let only = [candidate(7, "solo", 5)];
        assert_eq!(super::map(&only, 4096), vec![7; 16]);
        assert_eq!(owner(&only, 3).index, 7);
    }
}
