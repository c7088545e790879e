//! Address → route lookups for the data plane: O(1), no allocation, sized for millions of
//! IPv4 egress addresses given as any mix of prefix lengths.
//!
//! Egress prefixes never overlap (validation refuses it), so a lookup only has to find *the*
//! prefix containing an address, not the longest. The IPv4 map is a DIR-16-8-8 trie whose
//! last level adapts to density:
//! - a 65,536-entry directory indexed by the top 16 bits (256 KiB, stays in cache): nothing
//!   here (the usual answer for non-egress addresses), a route for a /16 or shorter prefix,
//!   or a 256-entry block for the /24s of this /16;
//! - per /24 in such a block: nothing, a route (prefixes /17 to /24), or, for prefixes /25 to
//!   /32, either a dense leaf (when the /24 holds many egress addresses) or "look in the /32
//!   hash table" (when it holds a few). A leaf has one entry per block of the /24's longest
//!   prefix: 256 for a /24 holding /32s, 16 for one of /28s.
//!
//! Leaf entries are 16 bits (route + 1, 0 for none): the leaves are the one level that grows
//! with the number of addresses (at a million addresses of the benchmark fleet, 2.4 MB of
//! 32-bit one-per-address leaves, 1.2 MB at 16 bits, 338 KB at their granularity), and on a
//! machine whose cache is small, keeping them small is what keeps large tables close to small
//! ones. A /24 whose routes do not fit in 16 bits (more than 65,534 pools) goes to the hash
//! table.
//!
//! Dense leaves keep neighbouring addresses in the same cache lines, which is what egress
//! ranges look like; scattered /32s go to a hash table so that memory stays bounded by a
//! small constant per prefix. A lookup is at most three dependent reads, the first one or two
//! almost always cached. On a machine whose cache is small next to the table, how many
//! distinct cache lines a packet touches decides the cost: this layout touches one (plus the
//! small directory levels), where a /32 hash table touches one line in a table four times as
//! large.

use prefetch_index::prefetch_index;

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

    /// Starts loading the slot where the search for `key` begins, ahead of [`FlatMap::get`].
    #[inline]
    pub fn prefetch(&self, key: u32) {
        prefetch_index(&self.slots, self.home(key));
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

    pub(crate) fn region(&self) -> MemoryRegion {
        MemoryRegion::of("sparse", &self.slots)
    }
}

/// One array the data plane reads at random, for whoever places it in memory (huge pages).
#[derive(Debug, Clone, Copy)]
pub struct MemoryRegion {
    pub name: &'static str,
    pub start: *const u8,
    pub bytes: usize,
}

impl MemoryRegion {
    pub fn of<T>(name: &'static str, array: &[T]) -> Self {
        Self {
            name,
            start: array.as_ptr().cast(),
            bytes: std::mem::size_of_val(array),
        }
    }
}

/// Entry encoding shared by every level: 0 = no egress here; `ROUTE | r` = route `r`;
/// otherwise a tagged index of the next level.
const EMPTY: u32 = 0;
const ROUTE: u32 = 1 << 31;
const NEXT_BLOCK: u32 = 1 << 30;
const NEXT_LEAF: u32 = 1 << 29;
const NEXT_HASH: u32 = 1 << 28;
const INDEX_MASK: u32 = NEXT_HASH - 1;
/// A /24 with at least this many addresses in /25../32 prefixes gets a dense leaf.
const DENSE_LEAF_MIN: usize = 16;
/// A block entry naming a leaf holds the leaf's first entry in its low bits and, above them,
/// the leaf's granularity: log2 of the addresses one leaf entry stands for.
const LEAF_OFFSET_BITS: u32 = 25;
const LEAF_OFFSET_MASK: u32 = (1 << LEAF_OFFSET_BITS) - 1;

/// The leaf entry of `addr` for the block entry `entry` naming its leaf.
#[inline]
fn leaf_slot(entry: u32, addr: u32) -> u32 {
    let shift = (entry >> LEAF_OFFSET_BITS) & 0x7;
    (entry & LEAF_OFFSET_MASK) + ((addr & 0xff) >> shift)
}
/// Leaf entries: 0 = no egress here, otherwise route + 1.
type LeafEntry = u16;
const LEAF_EMPTY: LeafEntry = 0;

#[inline]
fn leaf_entry(route: u32) -> Option<LeafEntry> {
    LeafEntry::try_from(route.checked_add(1)?).ok()
}

#[inline]
fn leaf_route(entry: LeafEntry) -> Option<u32> {
    u32::from(entry).checked_sub(1)
}

/// A lookup of [`PrefixMapV4`] after its first step ([`PrefixMapV4::probe`]): the answer, or
/// which entry holds it. Encoded like a block entry, except that a leaf reference names the
/// entry itself rather than the leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe(u32);

/// What a /24 holds in prefixes longer than /24, while building.
#[derive(Default)]
struct LongPrefixes {
    addresses: usize,
    /// Some route does not fit in a leaf entry.
    too_wide: bool,
    longest: u8,
}

/// IPv4 address → route index for non-overlapping prefixes.
#[derive(Debug, Clone)]
pub struct PrefixMapV4 {
    /// One entry per /16: a fixed-size array, so indexing it by the top 16 bits of an
    /// address needs no bounds check.
    directory: Box<[u32; 1 << 16]>,
    /// 256 entries per block, one per /24 of a /16.
    blocks: Vec<u32>,
    /// One leaf per dense /24, one entry per block of the /24's longest prefix: 256 entries
    /// (one an address) for a /24 of /32s, 16 for one of /28s.
    leaves: Vec<LeafEntry>,
    sparse: FlatMap,
}

impl PrefixMapV4 {
    /// Builds the map. Prefixes must not overlap; routes must be below 2^28.
    pub fn build(prefixes: impl IntoIterator<Item = (Ipv4Prefix, u32)> + Clone) -> Self {
        // Per /24: how many addresses of /25../32 prefixes it holds, whether all their routes
        // fit in a leaf entry (to choose leaf or hash), and its longest prefix (the leaf's
        // granularity).
        let mut long_per_24: hashbrown::HashMap<u32, LongPrefixes> = hashbrown::HashMap::new();
        for (p, route) in prefixes.clone() {
            if p.prefix_len() > 24 {
                let long = long_per_24.entry(p.first() >> 8).or_default();
                long.addresses += p.size() as usize;
                long.too_wide |= leaf_entry(route).is_none();
                long.longest = long.longest.max(p.prefix_len());
            }
        }
        let dense = |long: &LongPrefixes| !long.too_wide && long.addresses >= DENSE_LEAF_MIN;
        let sparse_entries: usize = long_per_24
            .values()
            .filter(|long| !dense(long))
            .map(|long| long.addresses)
            .sum();
        let mut map = Self {
            directory: Box::new([EMPTY; 1 << 16]),
            blocks: Vec::new(),
            leaves: Vec::new(),
            sparse: FlatMap::with_capacity(sparse_entries),
        };
        for (p, route) in prefixes {
            assert!(route <= INDEX_MASK, "route index too large");
            let first = p.first();
            if p.prefix_len() <= 16 {
                let (lo, hi) = ((first >> 16) as usize, (p.last() >> 16) as usize);
                map.directory[lo..=hi].fill(ROUTE | route);
                continue;
            }
            let block = map.block_of(first >> 16);
            if p.prefix_len() <= 24 {
                let lo = block + ((first >> 8) & 0xff) as usize;
                let hi = block + ((p.last() >> 8) & 0xff) as usize;
                map.blocks[lo..=hi].fill(ROUTE | route);
                continue;
            }
            let slot = block + ((first >> 8) & 0xff) as usize;
            let long = &long_per_24[&(first >> 8)];
            let shift = 32 - u32::from(long.longest);
            let entries = 256 >> shift;
            // Past 2^25 leaf entries (2^25 addresses in /32 leaves at least), further dense
            // /24s go to the hash table: a block entry has no more bits for the offset.
            let leaf_room = map.blocks[slot] & NEXT_LEAF != 0
                || (map.blocks[slot] == EMPTY
                    && map.leaves.len() + entries <= LEAF_OFFSET_MASK as usize + 1);
            let leaf = leaf_entry(route).filter(|_| leaf_room && dense(long));
            if let Some(entry) = leaf {
                if map.blocks[slot] == EMPTY {
                    map.blocks[slot] =
                        NEXT_LEAF | (shift << LEAF_OFFSET_BITS) | map.leaves.len() as u32;
                    map.leaves.resize(map.leaves.len() + entries, LEAF_EMPTY);
                }
                let (lo, hi) = (
                    leaf_slot(map.blocks[slot], first) as usize,
                    leaf_slot(map.blocks[slot], p.last()) as usize,
                );
                map.leaves[lo..=hi].fill(entry);
            } else {
                map.blocks[slot] = NEXT_HASH;
                for a in first..=p.last() {
                    map.sparse.insert(a, route);
                }
            }
        }
        map
    }

    /// The block of a /16, creating it.
    fn block_of(&mut self, top16: u32) -> usize {
        let entry = &mut self.directory[top16 as usize];
        if *entry == EMPTY {
            *entry = NEXT_BLOCK | (self.blocks.len() / 256) as u32;
            self.blocks.resize(self.blocks.len() + 256, EMPTY);
        }
        ((*entry & INDEX_MASK) * 256) as usize
    }

    #[inline]
    pub fn get(&self, addr: u32) -> Option<u32> {
        self.resolve(addr, self.probe(addr))
    }

    /// The first step of a lookup: reads the levels that stay in cache (the directory and
    /// the blocks) and starts loading the one entry that may not be (a leaf entry or a hash
    /// slot), without waiting for it. [`PrefixMapV4::resolve`] finishes the lookup; issued
    /// for a whole burst first, the cache misses of all its lookups overlap.
    #[inline]
    pub fn probe(&self, addr: u32) -> Probe {
        let entry = self.directory[(addr >> 16) as usize];
        if entry & NEXT_BLOCK == 0 {
            return Probe(entry);
        }
        let entry = self.blocks[((entry & INDEX_MASK) * 256 + ((addr >> 8) & 0xff)) as usize];
        if entry & NEXT_LEAF != 0 {
            let slot = leaf_slot(entry, addr);
            prefetch_index(&self.leaves, slot as usize);
            return Probe(NEXT_LEAF | slot);
        }
        if entry & NEXT_HASH != 0 {
            self.sparse.prefetch(addr);
        }
        Probe(entry)
    }

    /// The route of `addr`, from the [`Probe`] this map gave for it.
    #[inline]
    pub fn resolve(&self, addr: u32, probe: Probe) -> Option<u32> {
        let entry = probe.0;
        if entry & NEXT_LEAF != 0 {
            // A probe of another map finds nothing here rather than reading out of bounds.
            return self
                .leaves
                .get((entry & INDEX_MASK) as usize)
                .copied()
                .and_then(leaf_route);
        }
        if entry & NEXT_HASH != 0 {
            return self.sparse.get(addr);
        }
        route_of(entry)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.directory.len() + self.blocks.len()) * 4
            + std::mem::size_of_val(&self.leaves[..])
            + self.sparse.memory_bytes()
    }

    pub(crate) fn regions(&self) -> [MemoryRegion; 3] {
        [
            MemoryRegion::of("trie blocks", &self.blocks),
            MemoryRegion::of("trie leaves", &self.leaves),
            self.sparse.region(),
        ]
    }
}

#[inline]
fn route_of(entry: u32) -> Option<u32> {
    (entry & ROUTE != 0).then_some(entry & !ROUTE)
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

    /// Lookups as the data plane makes them: every probe of a burst, then every resolve.
    fn staged(map: &PrefixMapV4, addrs: &[u32]) -> Vec<Option<u32>> {
        let probes: Vec<Probe> = addrs.iter().map(|&a| map.probe(a)).collect();
        addrs
            .iter()
            .zip(probes)
            .map(|(&a, p)| map.resolve(a, p))
            .collect()
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
        assert_eq!(staged(&map, &addrs), vec![Some(1), None, Some(3), Some(5)]);
    }

    #[test]
    fn dense_and_sparse_slash24s_both_resolve() {
        // 200 /32s in one /24 (dense leaf) and 3 /32s in another (hash), side by side with a
        // /24 route in the same /16.
        let mut prefixes: Vec<(Ipv4Prefix, u32)> = (0..200)
            .map(|i| (v4(&format!("100.64.1.{i}")), i))
            .collect();
        prefixes.extend([
            (v4("100.64.2.7"), 500),
            (v4("100.64.2.9"), 501),
            (v4("100.64.2.200/30"), 502),
        ]);
        prefixes.push((v4("100.64.3.0/24"), 600));
        let map = PrefixMapV4::build(prefixes.clone());
        for (p, r) in &prefixes {
            assert_eq!(map.get(p.first()), Some(*r), "{p}");
            assert_eq!(map.get(p.last()), Some(*r), "{p}");
        }
        for miss in [
            "100.64.1.200",
            "100.64.1.255",
            "100.64.2.8",
            "100.64.2.199",
            "100.64.2.204",
            "100.64.4.0",
            "100.65.0.0",
        ] {
            assert_eq!(map.get(addr(miss)), None, "{miss}");
        }
        let addrs: Vec<u32> = (0..1024u32).map(|i| addr("100.64.0.0") + i).collect();
        for (a, b) in addrs.iter().zip(staged(&map, &addrs)) {
            assert_eq!(map.get(*a), b);
        }
    }

    #[test]
    fn leaves_are_as_fine_as_their_longest_prefix() {
        // 100.64.1.0/24 in /28s (16 entries), 100.64.2.0/24 in /28s and one /30 (64 entries),
        // 100.64.3.0/24 in /32s (256 entries).
        let mut prefixes: Vec<(Ipv4Prefix, u32)> = (0..16)
            .map(|i| (v4(&format!("100.64.1.{}/28", i * 16)), i))
            .collect();
        prefixes.extend((0..15).map(|i| (v4(&format!("100.64.2.{}/28", i * 16)), 100 + i)));
        prefixes.push((v4("100.64.2.244/30"), 200));
        prefixes.extend((0..20).map(|i| (v4(&format!("100.64.3.{i}")), 300 + i)));
        let map = PrefixMapV4::build(prefixes.clone());
        assert_eq!(map.leaves.len(), 16 + 64 + 256);
        for (p, r) in &prefixes {
            for a in [p.first(), p.last()] {
                assert_eq!(map.get(a), Some(*r), "{}", std::net::Ipv4Addr::from(a));
            }
        }
        for miss in [
            "100.64.2.240",
            "100.64.2.243",
            "100.64.2.248",
            "100.64.3.20",
        ] {
            assert_eq!(map.get(addr(miss)), None, "{miss}");
        }
    }

    #[test]
    fn regions_are_exactly_the_arrays_read_at_random() {
        let prefixes: Vec<(Ipv4Prefix, u32)> = (0..200)
            .map(|i| (v4(&format!("100.64.1.{i}")), i))
            .chain([(v4("100.64.2.7"), 500), (v4("100.64.3.0/24"), 600)])
            .collect();
        let map = PrefixMapV4::build(prefixes);
        let [blocks, leaves, sparse] = map.regions();
        assert_eq!(
            (blocks.start, blocks.bytes),
            (map.blocks.as_ptr().cast(), map.blocks.len() * 4)
        );
        assert_eq!(
            (leaves.start, leaves.bytes),
            (map.leaves.as_ptr().cast(), 256 * 2)
        );
        assert_eq!(sparse.bytes, map.sparse.memory_bytes());
        assert_eq!(
            blocks.bytes + leaves.bytes + sparse.bytes + map.directory.len() * 4,
            map.memory_bytes()
        );
    }

    #[test]
    fn a_dense_slash24_whose_routes_do_not_fit_a_leaf_goes_to_the_hash() {
        let wide = u32::from(LeafEntry::MAX);
        let prefixes: Vec<(Ipv4Prefix, u32)> = (0..100)
            .map(|i| (v4(&format!("100.64.1.{i}")), i))
            .chain([(v4("100.64.1.200/29"), wide)])
            .chain((0..100).map(|i| (v4(&format!("100.64.2.{i}")), i)))
            .collect();
        let map = PrefixMapV4::build(prefixes.clone());
        for (p, r) in &prefixes {
            assert_eq!(map.get(p.first()), Some(*r), "{p}");
            assert_eq!(map.get(p.last()), Some(*r), "{p}");
        }
        assert_eq!(map.get(addr("100.64.1.100")), None);
        // Only 100.64.2.0/24 has a leaf; the other /24 is in the hash.
        assert_eq!(map.leaves.len(), 256);
        assert_eq!(map.sparse.len(), 108);
    }

    proptest::proptest! {
        /// The trie against a linear search, on random non-overlapping prefixes of every
        /// length crowded into a few /16s (so that every level, dense and sparse /24s, and
        /// routes too wide for a leaf all meet), one address at a time and in bursts.
        #[test]
        fn trie_agrees_with_a_linear_search(
            candidates in proptest::collection::vec(
                (0u32..1 << 18, proptest::sample::select(vec![14u8, 16, 20, 24, 25, 27, 28, 30, 31, 32]),
                 proptest::prop_oneof![0u32..300, 65_530u32..65_540]),
                1..300,
            ),
            probes in proptest::collection::vec(0u32..1 << 18, 64),
        ) {
            let base = addr("100.64.0.0");
            let mut prefixes: Vec<(Ipv4Prefix, u32)> = Vec::new();
            for (offset, len, route) in candidates {
                let p = Ipv4Prefix::new((base + offset) & (u32::MAX << (32 - len)), len).unwrap();
                if prefixes.iter().all(|(q, _)| p.last() < q.first() || q.last() < p.first()) {
                    prefixes.push((p, route));
                }
            }
            let map = PrefixMapV4::build(prefixes.clone());
            let expected = |a: u32| prefixes.iter().find(|(p, _)| p.contains(a)).map(|&(_, r)| r);
            let mut addrs: Vec<u32> = probes.iter().map(|&o| base + o).collect();
            for (p, _) in &prefixes {
                addrs.extend([p.first(), p.last(), p.first().wrapping_sub(1), p.last().wrapping_add(1)]);
            }
            for (&a, b) in addrs.iter().zip(staged(&map, &addrs)) {
                proptest::prop_assert_eq!(map.get(a), expected(a), "{}", std::net::Ipv4Addr::from(a));
                proptest::prop_assert_eq!(b, expected(a));
            }
        }
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
