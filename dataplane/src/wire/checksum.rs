//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero),
/// folded to 16 bits, not inverted.
///
/// Summed four bytes at a time in native byte order and swapped once at the end: the
/// one's-complement sum does not depend on byte order (RFC 1071 section 2(B)) nor on
/// grouping 16-bit words in pairs (2^16 = 1 modulo 2^16 - 1).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    // The common case, an IPv4 header without options, as five loads and no loop.
    if let Ok(header) = <&[u8; 20]>::try_from(data) {
        let word = |i: usize| {
            u64::from(u32::from_ne_bytes([
                header[i],
                header[i + 1],
                header[i + 2],
                header[i + 3],
            ]))
        };
        return u16::from_be(fold(word(0) + word(4) + word(8) + word(12) + word(16)));
    }
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let mut tail = chunks.remainder();
    if tail.len() >= 2 {
        acc += u64::from(u16::from_ne_bytes([tail[0], tail[1]]));
        tail = &tail[2..];
    }
    if let [last] = tail {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    u16::from_be(fold(acc))
}

/// Adds big-endian 16-bit words to a running sum (for headers built field by field).
#[inline]
pub fn add_words(acc: u32, words: &[u16]) -> u32 {
    words.iter().fold(acc, |a, &w| a + u32::from(w))
}

/// Folds a running sum to 16 bits and inverts it: the checksum field value.
#[inline]
pub fn finish(acc: u32) -> u16 {
    !fold32(acc)
}

/// End-around-carry fold of a sum of at most 2^63 to 16 bits, without a loop: after the
/// first step the sum fits in 33 bits, and each further step at least halves what is above
/// 16 bits, so four steps always suffice.
#[inline]
fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// [`fold`] for a sum that fits 32 bits: the first step leaves at most 0x1fffe, and the
/// second at most 0xffff, so two steps suffice.
#[inline]
fn fold32(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The checksum field value that makes `data` (with the field zeroed) sum to 0xffff.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word of the covered data changes from
/// `old` to `new`.
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    !fold32(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

/// [`update`] for an IPv4 header whose TTL dropped by one. The covered word holding the TTL
/// (TTL and protocol) goes from `m` to `m - 0x100`, so `~m + m'` is always `0xfeff`: the update
/// needs neither word, and one fold (the sum stays below `0x1fefe`).
#[inline]
pub fn after_ttl_decrement(checksum: u16) -> u16 {
    let acc = u32::from(!checksum) + 0xfeff;
    !(((acc & 0xffff) + (acc >> 16)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these bytes is 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(sum(&[0xff]), 0xff00);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn every_length_and_alignment_matches_the_plain_definition() {
        fn reference(data: &[u8]) -> u16 {
            let mut acc: u64 = data
                .chunks(2)
                .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let bytes: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
            .collect();
        for start in 0..4 {
            for len in 0..120 {
                let data = &bytes[start..start + len];
                assert_eq!(sum(data), reference(data), "start {start} len {len}");
            }
        }
        assert_eq!(
            finish(add_words(0, &[0x0001, 0xf203, 0xf4f5, 0xf6f7])),
            !0xddf2
        );
    }

    #[test]
    fn fold_handles_every_carry_chain() {
        fn reference(mut acc: u64) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        for acc in [
            0,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_ffff_fffe,
            0xffff_ffff_ffff,
            (1 << 63) - 1,
            1 << 62,
        ] {
            assert_eq!(fold(acc), reference(acc), "{acc:#x}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x = next(x);
            let acc = x >> 1;
            assert_eq!(fold(acc), reference(acc), "{acc:#x}");
            let small = (x >> 32) as u32;
            assert_eq!(fold32(small), reference(u64::from(small)), "{small:#x}");
        }
        for acc in [0, 0xffff, 0x1_0000, 0x1_fffe, 0xffff_0000, 0xffff_ffff] {
            assert_eq!(fold32(acc), reference(u64::from(acc)), "{acc:#x}");
        }
    }

    /// A 64-bit LCG (Knuth's MMIX constants): varied sums, no dependency.
    fn next(x: u64) -> u64 {
        x.wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
    }

    #[test]
    fn incremental_update_equals_recompute() {
        let mut data = [
            0x45u8, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0, 0, 10, 0, 0, 1, 10, 0,
            0, 2,
        ];
        let c = checksum(&data);
        let old = u16::from_be_bytes([data[8], data[9]]);
        data[8] -= 1;
        let new = u16::from_be_bytes([data[8], data[9]]);
        assert_eq!(update(c, old, new), checksum(&data));
    }

    proptest::proptest! {
        /// The TTL shortcut is RFC 1624's update (and so a full recompute) for every header
        /// and every TTL that can be decremented.
        #[test]
        fn ttl_decrement_shortcut_is_the_general_update(
            mut header in proptest::array::uniform20(proptest::prelude::any::<u8>()),
            ttl in 1u8..=255,
        ) {
            header[8] = ttl;
            header[10..12].fill(0);
            let c = checksum(&header);
            header[10..12].copy_from_slice(&c.to_be_bytes());
            let old = u16::from_be_bytes([header[8], header[9]]);
            header[8] -= 1;
            let new = u16::from_be_bytes([header[8], header[9]]);
            let updated = after_ttl_decrement(c);
            proptest::prop_assert_eq!(updated, update(c, old, new));
            header[10..12].copy_from_slice(&updated.to_be_bytes());
            proptest::prop_assert_eq!(sum(&header), 0xffff, "the updated header verifies");
        }
    }
}
