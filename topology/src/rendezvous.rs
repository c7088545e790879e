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

/// Bucket of a flow in a rendezvous table: the low bits of its hash (the outer source port
/// takes bits independent of these, `crate::hash::outer_source_port`).
#[inline]
pub fn bucket_of(flow_hash: u64) -> usize {
    (flow_hash as usize) & (BUCKETS - 1)
}

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

/// What [`winner`] needs of a competitor: its seed, its weight, and the order of names that
/// breaks exact ties. The compiler's candidates carry their names; the data plane's compact
/// members carry each server's rank in name order instead, which orders the same.
pub trait Contender {
    fn seed(&self) -> u64;
    fn weight(&self) -> u32;
    /// `self`'s name compared with `other`'s: the smaller name wins an exact tie.
    fn name_order(&self, other: &Self) -> std::cmp::Ordering;
    /// `1 / weight`, which [`winner_quick`] multiplies by (a member stores it).
    #[inline]
    fn inverse_weight(&self) -> f64 {
        1.0 / f64::from(self.weight())
    }
}

impl Contender for Candidate<'_> {
    #[inline]
    fn seed(&self) -> u64 {
        self.seed
    }
    #[inline]
    fn weight(&self) -> u32 {
        self.weight
    }
    #[inline]
    fn name_order(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(other.name)
    }
}

/// The score of a candidate for a bucket (before weighting).
#[inline]
pub fn score(bucket_hash: u64, seed: u64) -> u64 {
    mix64(bucket_hash ^ seed)
}

/// `ln(u) / weight` for the score's uniform `u` in (0, 1): the larger, the better.
#[inline]
pub fn weighted_key(score: u64, weight: u32) -> f64 {
    uniform(score).ln() / f64::from(weight)
}

/// Whether every candidate has the same weight: then `ln(u)/w` orders exactly as the score
/// does (ln and u are monotonic, and equal keys fall through to the score), so [`winner`]
/// can skip the logarithm.
pub fn equal_weights<C: Contender>(candidates: &[C]) -> bool {
    candidates
        .iter()
        .all(|c| c.weight() == candidates[0].weight())
}

/// The candidate with the highest weighted score at `point`: the hash of a rendezvous bucket
/// (flows) or of a port slice. Score ties are broken by the score, then by name, so the
/// result never depends on the order of candidates. `equal_weights` is
/// [`equal_weights`]`(candidates)`, computed once per set by the caller.
#[inline]
pub fn winner<C: Contender>(candidates: &[C], point: u64, equal_weights: bool) -> &C {
    winner_of(candidates.iter(), point, equal_weights).expect("at least one candidate")
}

/// [`winner`] over candidates made on the way (the data plane's slice owners, from a pool's
/// holders, with nothing allocated); `None` when there are none.
#[inline]
pub fn winner_of<C: Contender>(
    candidates: impl IntoIterator<Item = C>,
    point: u64,
    equal_weights: bool,
) -> Option<C> {
    let key = |score: u64, weight: u32| {
        if equal_weights {
            0.0
        } else {
            weighted_key(score, weight)
        }
    };
    let mut candidates = candidates.into_iter();
    let mut best = candidates.next()?;
    let mut best_score = score(point, best.seed());
    let mut best_key = key(best_score, best.weight());
    for c in candidates {
        let s = score(point, c.seed());
        let k = key(s, c.weight());
        let order = k
            .total_cmp(&best_key)
            .then(s.cmp(&best_score))
            .then_with(|| best.name_order(&c));
        if order == std::cmp::Ordering::Greater {
            (best, best_score, best_key) = (c, s, k);
        }
    }
    Some(best)
}

impl<C: Contender> Contender for &C {
    #[inline]
    fn seed(&self) -> u64 {
        (*self).seed()
    }
    #[inline]
    fn weight(&self) -> u32 {
        (*self).weight()
    }
    #[inline]
    fn name_order(&self, other: &Self) -> std::cmp::Ordering {
        (*self).name_order(other)
    }
    #[inline]
    fn inverse_weight(&self) -> f64 {
        (*self).inverse_weight()
    }
}

/// The uniform `u` in (0, 1) of a score, as [`weighted_key`] takes it.
#[inline]
fn uniform(score: u64) -> f64 {
    ((score >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// `ln(u)` within [`QUICK_LN_ERROR`] for `u` in (0, 1): the exponent times ln 2, plus the
/// mantissa's logarithm from five terms of the atanh series (`t` is at most 1/3). About a
/// quarter of the cost of libm's `ln`.
#[inline]
pub fn quick_ln(u: f64) -> f64 {
    let bits = u.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let t = (mantissa - 1.0) / (mantissa + 1.0);
    let t2 = t * t;
    let series =
        t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    exponent as f64 * std::f64::consts::LN_2 + series
}

/// A bound on `|quick_ln(u) - ln(u)|`: the series' remainder is below `2 t^11 / 11 / (1 - t^2)`
/// = 1.3e-6 at t = 1/3; the rest covers rounding.
pub const QUICK_LN_ERROR: f64 = 2e-6;

/// [`winner`] for sets of unequal weights, with [`quick_ln`]: when the best approximate key
/// beats the second by more than both errors, the exact keys order the same way (each is
/// within `QUICK_LN_ERROR / weight` of its approximation), so the winner is exact; otherwise
/// (rarely) [`winner`] decides. Used per flow, where libm's logarithm per candidate would
/// cost more than the rest of the decision.
#[inline]
pub fn winner_quick<C: Contender>(candidates: &[C], point: u64) -> &C {
    let mut best = 0;
    let mut best_key = f64::NEG_INFINITY;
    let mut second_key = f64::NEG_INFINITY;
    for (i, c) in candidates.iter().enumerate() {
        let key = quick_ln(uniform(score(point, c.seed()))) * c.inverse_weight();
        if key > best_key {
            (second_key, best_key, best) = (best_key, key, i);
        } else if key > second_key {
            second_key = key;
        }
    }
    if best_key - second_key > 2.0 * QUICK_LN_ERROR {
        &candidates[best]
    } else {
        winner(candidates, point, false)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_ln_stays_within_its_error_bound() {
        let mut worst = 0f64;
        let extremes = [
            0u64,
            1,
            2047,
            2048,
            u64::MAX,
            u64::MAX - 2048,
            1 << 63,
            (1 << 63) - 1,
        ];
        for score in extremes.into_iter().chain((0..1_000_000u64).map(mix64)) {
            let u = uniform(score);
            worst = worst.max((quick_ln(u) - u.ln()).abs());
        }
        assert!(worst < QUICK_LN_ERROR, "worst error {worst:e}");
    }

    #[test]
    fn the_quick_winner_is_the_exact_winner() {
        let names: Vec<String> = (0..16).map(|i| format!("s{i}")).collect();
        for set in 0..400u64 {
            let len = 2 + (set % 15) as usize;
            let candidates: Vec<Candidate<'_>> = (0..len)
                .map(|i| Candidate {
                    index: i as u16,
                    seed: mix64(set * 100 + i as u64 + 1),
                    // Close weights as well as far ones: near ties must fall back.
                    weight: if set % 2 == 0 {
                        1 + (mix64(set ^ i as u64) % 1000) as u32
                    } else {
                        500 + i as u32 % 2
                    },
                    name: &names[i],
                })
                .collect();
            for bucket in 0..BUCKETS {
                let point = bucket_hash(bucket);
                assert_eq!(
                    winner_quick(&candidates, point).index,
                    winner(&candidates, point, false).index
                );
            }
        }
    }
}
