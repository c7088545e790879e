//! Address → route lookups for the data plane: O(1), no allocation, sized for millions of
//! IPv4 egress addresses given as any mix of prefix lengths.
//!
//! Egress prefixes never overlap (validation refuses it), so a lookup only has to find *the*
//! prefix containing an address, not the longest. The IPv4 map has three levels:
//! - a 65,536-entry directory indexed by the top 16 bits (256 KiB, stays in cache): either
//!   nothing here (the common answer for non-egress addresses), a route for a whole /16 or
//!   shorter prefix, or flags saying which finer table holds this /16's prefixes;
//! - an open-addressing table keyed by /24 for prefixes /17../24 (each expanded to its /24s,
//!   at most 128 per prefix);
//! - an open-addressing table keyed by /32 for prefixes /25../32 (each expanded to its
//!   addresses, at most 128 per prefix).
//! A lookup is one directory read plus at most two hash probes; memory is bounded by
//! 128 entries per prefix whatever the prefix lengths.

use crate::prefix::Ipv4Prefix;

/// Open-addressing hash table from `u32` keys to `u32` values, one `u64` per slot
/// (key in the high half, value + 1 in the low half; 0 marks an empty slot), linear probing,
/// load factor at most one half.
#[derive(Debug, Clone)]
pub struct FlatMap {
    slots: Box<[u64]>,
    shift: u32,
    len: usize,
}

impl FlatMap {
    pub fn with_capacity(entries: usize) -> Self {
        let size = (entries.max(4) * 2).next_power_of_two();
        Self {
            slots: vec![0; size].into_boxed_slice(),
            shift: 64 - size.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn home(&self, key: u32) -> usize {
        // Fibonacci hashing: consecutive keys (consecutive addresses) land far apart.
        (u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Inserts or replaces. `value` must be below `u32::MAX`.
    pub fn insert(&mut self, key: u32, value: u32) {
        assert!(value < u32::MAX);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let entry = (u64::from(key) << 32) | u64::from(value + 1);
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.slots[i] = entry;
                self.len += 1;
                return;
            }
            if (slot >> 32) as u32 == key {
                self.slots[i] = entry;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::with_capacity(self.slots.len()));
        for slot in old.slots.iter().copied().filter(|&s| s != 0) {
            self.insert((slot >> 32) as u32, slot as u32 - 1);
        }
    }

    #[inline]
    pub fn get(&self, key: u32) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i & mask];
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == key {
                return Some(slot as u32 - 1);
            }
            i += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

const DIR_LEAF: u32 = 1 << 31;
const DIR_HAS_24: u32 = 1;
const DIR_HAS_32: u32 = 2;

/// IPv4 address → route index for non-overlapping prefixes.
#[derive(Debug, Clone)]
pub struct PrefixMapV4 {
    directory: Box<[u32]>,
    by_24: FlatMap,
    by_32: FlatMap,
}

impl PrefixMapV4 {
    /// Builds the map. Prefixes must not overlap; routes must be below 2^31.
    pub fn build(prefixes: impl IntoIterator<Item = (Ipv4Prefix, u32)> + Clone) -> Self {
        let (mut n24, mut n32) = (0usize, 0usize);
        for (p, _) in prefixes.clone() {
            match p.len() {
                17..=24 => n24 += 1 << (24 - p.len()),
                25..=32 => n32 += 1 << (32 - p.len()),
                _ => {}
            }
        }
        let mut map = Self {
            directory: vec![0; 1 << 16].into_boxed_slice(),
            by_24: FlatMap::with_capacity(n24),
            by_32: FlatMap::with_capacity(n32),
        };
        for (p, route) in prefixes {
            assert!(route < DIR_LEAF, "route index too large");
            let first = p.first();
            match p.len() {
                0..=16 => {
                    let (lo, hi) = ((first >> 16) as usize, (p.last() >> 16) as usize);
                    map.directory[lo..=hi].fill(DIR_LEAF | route);
                }
                17..=24 => {
                    map.directory[(first >> 16) as usize] |= DIR_HAS_24;
                    for k in 0..1u32 << (24 - p.len()) {
                        map.by_24.insert((first >> 8) + k, route);
                    }
                }
                _ => {
                    map.directory[(first >> 16) as usize] |= DIR_HAS_32;
                    for k in 0..1u32 << (32 - p.len()) {
                        map.by_32.insert(first + k, route);
                    }
                }
            }
        }
        map
    }

    #[inline]
    pub fn get(&self, addr: u32) -> Option<u32> {
        let entry = self.directory[(addr >> 16) as usize];
        if entry == 0 {
            return None;
        }
        if entry & DIR_LEAF != 0 {
            return Some(entry & !DIR_LEAF);
        }
        if entry & DIR_HAS_32 != 0 {
            if let Some(route) = self.by_32.get(addr) {
                return Some(route);
            }
        }
        if entry & DIR_HAS_24 != 0 {
            return self.by_24.get(addr >> 8);
        }
        None
    }

    /// Looks up a burst of addresses. The directory reads for the whole burst are issued
    /// before any hash probe, so their cache misses overlap instead of queueing.
    #[inline]
    pub fn get_burst(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        const CHUNK: usize = 32;
        for (addrs, out) in addrs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let mut entries = [0u32; CHUNK];
            for (e, &a) in entries.iter_mut().zip(addrs) {
                *e = self.directory[(a >> 16) as usize];
            }
            for ((o, &a), &e) in out.iter_mut().zip(addrs).zip(&entries) {
                *o = if e == 0 {
                    None
                } else if e & DIR_LEAF != 0 {
                    Some(e & !DIR_LEAF)
                } else {
                    self.get(a)
                };
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.directory.len() * 4 + self.by_24.memory_bytes() + self.by_32.memory_bytes()
    }
}

/// IPv6 address → index for a (small) set of non-overlapping prefixes: binary search.
#[derive(Debug, Clone, Default)]
pub struct PrefixSetV6 {
    ranges: Vec<(u128, u128, u32)>,
}

impl PrefixSetV6 {
    pub fn build(prefixes: impl IntoIterator<Item = (crate::prefix::Ipv6Prefix, u32)>) -> Self {
        let mut ranges: Vec<_> = prefixes
            .into_iter()
            .map(|(p, i)| (p.first(), p.last(), i))
            .collect();
        ranges.sort_unstable();
        Self { ranges }
    }

    #[inline]
    pub fn get(&self, addr: u128) -> Option<u32> {
        let after = self.ranges.partition_point(|&(first, _, _)| first <= addr);
        let &(_, last, index) = self.ranges.get(after.checked_sub(1)?)?;
        (addr <= last).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::{Ipv6Prefix, Prefix};

    fn v4(text: &str) -> Ipv4Prefix {
        match text.parse::<Prefix>().unwrap() {
            Prefix::V4(p) => p,
            Prefix::V6(_) => panic!(),
        }
    }

    fn addr(text: &str) -> u32 {
        u32::from(text.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn flat_map_inserts_replaces_and_grows() {
        let mut m = FlatMap::with_capacity(1);
        for k in 0..10_000u32 {
            m.insert(k.wrapping_mul(2_654_435_761), k);
        }
        m.insert(0, 77);
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(0), Some(77));
        for k in 1..10_000u32 {
            assert_eq!(m.get(k.wrapping_mul(2_654_435_761)), Some(k));
        }
        assert_eq!(m.get(3), None);
    }

    #[test]
    fn every_prefix_length_resolves_and_neighbours_miss() {
        let prefixes = [
            (v4("10.0.0.0/8"), 1),
            (v4("192.0.2.0/24"), 2),
            (v4("198.51.100.0/30"), 3),
            (v4("198.51.100.128/25"), 4),
            (v4("203.0.113.7/32"), 5),
            (v4("172.16.0.0/17"), 6),
            (v4("198.51.0.0/20"), 7),
        ];
        let map = PrefixMapV4::build(prefixes);
        for (text, want) in [
            ("10.0.0.0", Some(1)),
            ("10.255.255.255", Some(1)),
            ("11.0.0.0", None),
            ("192.0.2.255", Some(2)),
            ("192.0.3.0", None),
            ("198.51.100.3", Some(3)),
            ("198.51.100.4", None),
            ("198.51.100.128", Some(4)),
            ("198.51.100.255", Some(4)),
            ("198.51.100.127", None),
            ("203.0.113.7", Some(5)),
            ("203.0.113.8", None),
            ("172.16.127.255", Some(6)),
            ("172.16.128.0", None),
            ("198.51.15.255", Some(7)),
            ("198.51.16.0", None),
            ("0.0.0.0", None),
            ("255.255.255.255", None),
        ] {
            assert_eq!(map.get(addr(text)), want, "{text}");
        }
        let addrs: Vec<u32> = ["10.1.2.3", "9.9.9.9", "198.51.100.2", "203.0.113.7"]
            .iter()
            .map(|a| addr(a))
            .collect();
        let mut out = vec![None; addrs.len()];
        map.get_burst(&addrs, &mut out);
        assert_eq!(out, vec![Some(1), None, Some(3), Some(5)]);
    }

    #[test]
    fn default_route_prefix_covers_everything() {
        let map = PrefixMapV4::build([(v4("0.0.0.0/0"), 9)]);
        assert_eq!(map.get(0), Some(9));
        assert_eq!(map.get(u32::MAX), Some(9));
    }

    #[test]
    fn v6_set_finds_the_containing_prefix() {
        let p = |t: &str| match t.parse::<Prefix>().unwrap() {
            Prefix::V6(p) => p,
            Prefix::V4(_) => panic!(),
        };
        let set = PrefixSetV6::build([(p("2001:db8:1::/48"), 0), (p("2001:db8:3::/64"), 1)]);
        let a = |t: &str| u128::from(t.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(set.get(a("2001:db8:1::1")), Some(0));
        assert_eq!(set.get(a("2001:db8:1:ffff:ffff:ffff:ffff:ffff")), Some(0));
        assert_eq!(set.get(a("2001:db8:2::1")), None);
        assert_eq!(set.get(a("2001:db8:3::5")), Some(1));
        assert_eq!(set.get(a("2001:db8:3:1::")), None);
        assert_eq!(set.get(0), None);
        let _: Option<Ipv6Prefix> = None;
    }
}
