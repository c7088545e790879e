//! What a topology change would do to one server's decisions, before it is applied
//! (`egressfwd diff OLD NEW --server NAME`): the IPv4 egress addresses whose tier or targets
//! change, the share of new flows that would leave from elsewhere, and the port slices that
//! change owner.
//!
//! Everything is read from the two compiled tables with the code the data plane runs: a
//! flow's target is its bucket's ([`Route::targets`]), so the share that moves is exact for
//! the flows of each address, and weighting addresses equally gives the share of flows spread
//! evenly over the addresses.

use std::ops::RangeInclusive;

use hashbrown::HashMap;
use serde::Serialize;

use crate::prefix::Ipv4Prefix;
use crate::rendezvous::BUCKETS;
use crate::table::{ForwardingTable, Route, Tier};
use crate::{Holder, PoolId};

/// The change, seen from one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDiff {
    pub server: String,
    /// Address blocks whose route changes (a changed prefix, or the part of one that a
    /// split, merge, addition or removal touches), in address order.
    pub prefixes: Vec<PrefixChange>,
    /// IPv4 egress addresses in either file.
    pub addresses: u64,
    /// Of those, how many addresses' worth of flows would go elsewhere: each address counts
    /// the share of its flows whose target changes.
    pub moved_addresses: f64,
    /// Pools (in both files) whose slices change owner.
    pub slices: Vec<SliceChange>,
}

impl TableDiff {
    /// The share of new flows (spread evenly over the egress addresses) that would leave from
    /// another server than today, or stop or start being egress traffic.
    pub fn moved_share(&self) -> f64 {
        if self.addresses == 0 {
            0.0
        } else {
            self.moved_addresses / self.addresses as f64
        }
    }
}

/// A block of addresses whose route changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixChange {
    #[serde(serialize_with = "as_text")]
    pub prefix: Ipv4Prefix,
    /// `None`: not an egress address in that file.
    pub before: Option<RouteView>,
    pub after: Option<RouteView>,
    /// The share of the block's flows whose target changes (1 when it stops or starts being
    /// egress).
    pub moved: f64,
}

/// A route as `table` shows it: pool, tier, and each candidate with its share of the flows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteView {
    pub pool: String,
    pub tier: Tier,
    pub targets: Vec<(String, f64)>,
}

/// Slices of one pool that change owner, grouped by the old and new owner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceChange {
    pub pool: String,
    pub from: String,
    pub to: String,
    pub slices: usize,
    /// The slices' ports, adjacent ones merged.
    #[serde(serialize_with = "ranges_as_text")]
    pub ports: Vec<RangeInclusive<u16>>,
}

fn as_text<S: serde::Serializer>(prefix: &Ipv4Prefix, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(prefix)
}

fn ranges_as_text<S: serde::Serializer>(
    ranges: &[RangeInclusive<u16>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(ranges.iter().map(|r| format!("{}-{}", r.start(), r.end())))
}

/// What changes for the server of `before` (the same server, by name, in `after`).
pub fn diff(before: &ForwardingTable, after: &ForwardingTable) -> TableDiff {
    let mut views = Views::default();
    let mut prefixes = Vec::new();
    let (mut addresses, mut moved_addresses) = (0u64, 0.0);
    let mut moved_of: HashMap<(Option<PoolId>, Option<PoolId>), f64> = HashMap::new();
    for (first, last) in blocks(before, after) {
        let old = before.route_v4(first);
        let new = after.route_v4(first);
        if old.is_none() && new.is_none() {
            continue;
        }
        let size = u64::from(last - first) + 1;
        addresses += size;
        // Most routes do not change: told by their pool, tier and candidates, without the
        // shares (4,096 rendezvous each) that a changed one is shown with.
        if let (Some(o), Some(n)) = (old, new) {
            if signature(before, o) == signature(after, n) {
                continue;
            }
        }
        let key = (old.map(|r| r.pool), new.map(|r| r.pool));
        let moved = *moved_of
            .entry(key)
            .or_insert_with(|| moved_between(before, old, after, new));
        let old_view = old.map(|r| views.of(Side::Before, before, r).clone());
        let new_view = new.map(|r| views.of(Side::After, after, r).clone());
        if old_view == new_view {
            continue;
        }
        moved_addresses += moved * size as f64;
        for prefix in cidr_blocks(first, last) {
            prefixes.push(PrefixChange {
                prefix,
                before: old_view.clone(),
                after: new_view.clone(),
                moved,
            });
        }
    }
    TableDiff {
        server: before.server(before.me()).name.clone(),
        prefixes,
        addresses,
        moved_addresses,
        slices: slice_changes(before, after),
    }
}

/// What decides where a route's flows go: its pool's name, its tier, and its candidates'
/// names and weights (the rendezvous seeds come from the names).
fn signature<'t>(
    table: &'t ForwardingTable,
    route: &Route,
) -> (&'t str, Tier, Vec<(&'t str, u32)>) {
    let candidates = named(table, &route.candidates);
    (table.pool_name(route.pool), route.tier, candidates)
}

/// Servers by name with their weights: what compares across two tables, whose server
/// numbers may differ.
fn named<'t>(table: &'t ForwardingTable, holders: &[Holder]) -> Vec<(&'t str, u32)> {
    holders
        .iter()
        .map(|h| (table.server(h.server).name.as_str(), h.weight))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Before,
    After,
}

/// Each route's view, made once.
#[derive(Default)]
struct Views {
    made: HashMap<(Side, PoolId), RouteView>,
}

impl Views {
    fn of(&mut self, side: Side, table: &ForwardingTable, route: &Route) -> &RouteView {
        self.made.entry((side, route.pool)).or_insert_with(|| {
            let targets = route
                .candidates
                .iter()
                .zip(route.shares(table))
                .map(|(h, share)| (table.server(h.server).name.clone(), share))
                .collect();
            RouteView {
                pool: table.pool_name(route.pool).to_owned(),
                tier: route.tier,
                targets,
            }
        })
    }
}

/// The share of the flows of an address whose target differs between the two routes.
fn moved_between(
    before: &ForwardingTable,
    old: Option<&Route>,
    after: &ForwardingTable,
    new: Option<&Route>,
) -> f64 {
    let (Some(old), Some(new)) = (old, new) else {
        return 1.0;
    };
    // The same candidates (names and weights) spread flows the same way, whatever the tier:
    // no need to compare their 4,096 buckets.
    if named(before, &old.candidates) == named(after, &new.candidates) {
        return 0.0;
    }
    let names = |table: &'_ ForwardingTable, r: &Route| -> Vec<String> {
        r.targets(table)
            .into_iter()
            .map(|s| table.server(s).name.clone())
            .collect()
    };
    let (a, b) = (names(before, old), names(after, new));
    let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    differing as f64 / BUCKETS as f64
}

/// The address ranges of the union of both tables' IPv4 egress prefixes, cut wherever a
/// prefix of either begins or ends: within one, each table has one route (or none).
fn blocks(before: &ForwardingTable, after: &ForwardingTable) -> Vec<(u32, u32)> {
    let mut cuts: Vec<u64> = before
        .egress_v4()
        .iter()
        .chain(after.egress_v4())
        .flat_map(|(p, _)| [u64::from(p.first()), u64::from(p.last()) + 1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| (w[0] as u32, (w[1] - 1) as u32))
        .collect()
}

/// The fewest CIDR prefixes that cover `first..=last`.
fn cidr_blocks(first: u32, last: u32) -> Vec<Ipv4Prefix> {
    let mut out = Vec::new();
    let mut at = u64::from(first);
    let end = u64::from(last) + 1;
    while at < end {
        let mut len = 32u8;
        // Widen while the block stays aligned and inside the range.
        while len > 0 {
            let size = 1u64 << (33 - len);
            if at % size != 0 || at + size > end {
                break;
            }
            len -= 1;
        }
        out.push(Ipv4Prefix::new(at as u32, len).expect("an aligned block"));
        at += 1u64 << (32 - len);
    }
    out
}

/// For every pool of both files whose holders (names, weights) changed, the slices whose
/// owner changes.
fn slice_changes(before: &ForwardingTable, after: &ForwardingTable) -> Vec<SliceChange> {
    let port_slice = before.port_slice();
    let pools_after: HashMap<&str, &Route> = after
        .routes()
        .iter()
        .map(|r| (after.pool_name(r.pool), r))
        .collect();
    let mut out = Vec::new();
    for old in before.routes() {
        let name = before.pool_name(old.pool);
        let Some(new) = pools_after.get(name) else {
            continue;
        };
        if port_slice == after.port_slice()
            && named(before, &old.holders) == named(after, &new.holders)
        {
            continue;
        }
        let owners = |table: &ForwardingTable, r: &Route| -> Vec<String> {
            table
                .slice_map(r.pool)
                .into_iter()
                .map(|s| table.server(s).name.clone())
                .collect()
        };
        let (a, b) = (owners(before, old), owners(after, new));
        // (from, to) → slices, in the order first met.
        let mut groups: Vec<((String, String), Vec<u16>)> = Vec::new();
        for (slice, (from, to)) in a.iter().zip(&b).enumerate() {
            if from == to {
                continue;
            }
            let key = (from.clone(), to.clone());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, slices)) => slices.push(slice as u16),
                None => groups.push((key, vec![slice as u16])),
            }
        }
        for ((from, to), slices) in groups {
            out.push(SliceChange {
                pool: name.to_owned(),
                from,
                to,
                slices: slices.len(),
                ports: crate::slices::merged_ports(slices.iter().copied(), port_slice),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const EXAMPLE: &str = include_str!("../examples/fleet.toml");

    fn table(text: &str, server: &str) -> ForwardingTable {
        ForwardingTable::compile(&parse("t.toml", text).unwrap(), server).unwrap()
    }

    #[test]
    fn a_file_against_itself_changes_nothing() {
        let t = table(EXAMPLE, "lhr01-a");
        let d = diff(&t, &t);
        assert!(d.prefixes.is_empty() && d.slices.is_empty(), "{d:?}");
        assert_eq!(d.moved_share(), 0.0);
        assert_eq!(d.addresses, t.egress_v4_addresses());
    }

    #[test]
    fn blocks_are_covered_by_the_fewest_prefixes() {
        let p = |s: &str| match s.parse::<crate::Prefix>().unwrap() {
            crate::Prefix::V4(p) => p,
            crate::Prefix::V6(_) => unreachable!(),
        };
        assert_eq!(
            cidr_blocks(0x0a00_0000, 0x0a00_00ff),
            vec![p("10.0.0.0/24")]
        );
        assert_eq!(
            cidr_blocks(0x0a00_0001, 0x0a00_0004),
            vec![p("10.0.0.1/32"), p("10.0.0.2/31"), p("10.0.0.4/32")]
        );
        assert_eq!(cidr_blocks(0, u32::MAX), vec![p("0.0.0.0/0")]);
    }

    #[test]
    fn a_holder_removed_moves_only_its_own_flows_and_slices() {
        // globex: lhr01-b (weight 2) and lhr01-c, same_dc for lhr01-a.
        let before = table(EXAMPLE, "lhr01-a");
        let text = EXAMPLE.replace(
            "holders = [{ server = \"lhr01-b\", weight = 2 }, { server = \"lhr01-c\" }, { server = \"fra01-a\" }]",
            "holders = [{ server = \"lhr01-b\", weight = 2 }, { server = \"fra01-a\" }]",
        );
        assert_ne!(text, EXAMPLE);
        let after = table(&text, "lhr01-a");
        let d = diff(&before, &after);
        assert!(!d.prefixes.is_empty());
        for change in &d.prefixes {
            let before_c = &change.before.as_ref().unwrap().targets;
            let share_c = before_c
                .iter()
                .find(|(n, _)| n == "lhr01-c")
                .map_or(0.0, |t| t.1);
            assert!((change.moved - share_c).abs() < 1e-9, "{change:?}");
        }
        assert!(
            d.slices.iter().all(|s| s.from == "lhr01-c"),
            "{:?}",
            d.slices
        );
        assert!(!d.slices.is_empty());
    }
}
