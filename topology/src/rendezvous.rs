//! Weighted rendezvous (highest-random-weight) hashing, precomputed into buckets.
//!
//! Each flow falls into one of [`BUCKETS`] buckets by its hash; each bucket goes to the
//! candidate with the highest weighted score `ln(u) / weight`, where `u` in (0, 1) comes from
//! hashing the bucket with the candidate's name. This gives the properties the fleet needs:
//! the same flow always goes to the same server; buckets (hence flows) split in proportion to
//! the weights; removing a candidate moves only the buckets it had; adding one takes only the
//! buckets where it now scores highest, its fair share. The data plane then chooses a target
//! with one array index.

use crate::hash::{bucket_hash, mix64};

/// Buckets per candidate set. 4096 keeps every share within about 2 percentage points of its
/// weight (binomial error at 4096 draws) for 8 KiB per distinct candidate set.
pub const BUCKETS: usize = 4096;

/// One server competing for buckets.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// What the bucket stores (an index into the table's server list).
    pub index: u16,
    pub seed: u64,
    pub weight: u32,
    /// Breaks exact score ties, so the result never depends on the order of candidates.
    pub name: &'a str,
}

/// The score of a candidate for a bucket (before weighting).
#[inline]
pub fn score(bucket_hash: u64, seed: u64) -> u64 {
    mix64(bucket_hash ^ seed)
}

/// `ln(u) / weight` for the score's uniform `u` in (0, 1): the larger, the better.
#[inline]
pub fn weighted_key(score: u64, weight: u32) -> f64 {
    let u = ((score >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    u.ln() / f64::from(weight)
}

/// Whether every candidate has the same weight: then `ln(u)/w` orders exactly as the score
/// does (ln and u are monotonic, and equal keys fall through to the score), so [`winner`]
/// can skip the logarithm.
pub fn equal_weights(candidates: &[Candidate<'_>]) -> bool {
    candidates.iter().all(|c| c.weight == candidates[0].weight)
}

/// The candidate with the highest weighted score at `point`: the hash of a rendezvous bucket
/// (flows) or of a port slice. Score ties are broken by the score, then by name, so the
/// result never depends on the order of candidates. `equal_weights` is
/// [`equal_weights`]`(candidates)`, computed once per set by the caller.
#[inline]
pub fn winner<'c, 'a>(
    candidates: &'c [Candidate<'a>],
    point: u64,
    equal_weights: bool,
) -> &'c Candidate<'a> {
    let key = |score: u64, weight: u32| {
        if equal_weights {
            0.0
        } else {
            weighted_key(score, weight)
        }
    };
    let mut best = &candidates[0];
    let mut best_score = score(point, best.seed);
    let mut best_key = key(best_score, best.weight);
    for c in &candidates[1..] {
        let s = score(point, c.seed);
        let k = key(s, c.weight);
        let order = k
            .total_cmp(&best_key)
            .then(s.cmp(&best_score))
            .then_with(|| best.name.cmp(c.name));
        if order == std::cmp::Ordering::Greater {
            (best, best_score, best_key) = (c, s, k);
        }
    }
    best
}

/// Fills `out` (one entry per bucket) with the winning candidate's index.
pub fn fill_buckets(candidates: &[Candidate<'_>], out: &mut [u16]) {
    assert!(!candidates.is_empty(), "a candidate set is never empty");
    assert_eq!(out.len(), BUCKETS);
    if let [only] = candidates {
        out.fill(only.index);
        return;
    }
    let equal = equal_weights(candidates);
    for (bucket, slot) in out.iter_mut().enumerate() {
        *slot = winner(candidates, bucket_hash(bucket), equal).index;
    }
}
