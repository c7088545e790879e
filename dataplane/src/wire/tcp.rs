//! TCP, as far as the appliance touches it: the MSS option of a SYN, clamped so that the
//! segments of a tunnelled connection fit the tunnel.

use super::checksum;
use super::read_u16;

/// A TCP header without options.
pub const HEADER_LEN: usize = 20;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_ACK: u8 = 0x10;
/// Where the flags byte is.
pub const FLAGS: usize = 13;

mod field {
    use super::super::Field;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: Field = 16..18;
}

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_MSS: u8 = 2;
const OPTION_MSS_LEN: u8 = 4;

/// Lowers the MSS option of a SYN (with or without ACK) to `max` when it is larger, updating
/// the TCP checksum incrementally (RFC 1624). `segment` starts at the TCP header and holds
/// at least the whole header. Returns whether it rewrote the option.
///
/// Anything else is left alone: not a SYN, no MSS option, an MSS already small enough, and
/// malformed options (a header length beyond `segment`, an option running past the header),
/// which the endpoint will judge. Never panics.
pub fn clamp_mss(segment: &mut [u8], max: u16) -> bool {
    let (Some(&offset_byte), Some(&flags)) =
        (segment.get(field::DATA_OFFSET), segment.get(field::FLAGS))
    else {
        return false;
    };
    if flags & FLAG_SYN == 0 {
        return false;
    }
    let header_len = usize::from(offset_byte >> 4) * 4;
    if header_len <= HEADER_LEN || header_len > segment.len() {
        return false;
    }
    let mut at = HEADER_LEN;
    while at < header_len {
        match segment[at] {
            OPTION_END => return false,
            OPTION_NOP => at += 1,
            kind => {
                let Some(&len) = segment.get(at + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || at + len > header_len {
                    return false;
                }
                if kind == OPTION_MSS && len == usize::from(OPTION_MSS_LEN) {
                    return rewrite_mss(segment, at + 2, max);
                }
                at += len;
            }
        }
    }
    false
}

/// Writes `max` over the MSS value at byte `value_at` of the segment if it is larger.
fn rewrite_mss(segment: &mut [u8], value_at: usize, max: u16) -> bool {
    let old = read_u16(segment, value_at..value_at + 2);
    if old <= max {
        return false;
    }
    segment[value_at..value_at + 2].copy_from_slice(&max.to_be_bytes());
    // The checksum sums 16-bit words from the start of the header. A value at an odd offset
    // straddles two words, low byte of one and high byte of the next, so it adds to the sum
    // byte-swapped; one's-complement sums commute with swapping bytes.
    let (old, new) = if value_at.is_multiple_of(2) {
        (old, max)
    } else {
        (old.swap_bytes(), max.swap_bytes())
    };
    let before = read_u16(segment, field::CHECKSUM);
    let after = checksum::update(before, old, new);
    segment[field::CHECKSUM].copy_from_slice(&after.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCP checksum over a pseudo-header for 192.0.2.1 -> 198.51.100.7 and `segment`.
    fn full_checksum(segment: &[u8]) -> u16 {
        let mut pseudo = vec![192, 0, 2, 1, 198, 51, 100, 7, 0, 6];
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        let mut data = pseudo;
        data.extend_from_slice(segment);
        data[12 + 16] = 0;
        data[12 + 17] = 0;
        checksum::checksum(&data)
    }

    /// A SYN with `options` (padded to a multiple of 4 with END) and its checksum filled in.
    fn syn(options: &[u8], flags: u8) -> Vec<u8> {
        let mut s = vec![
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0, flags, 0xff, 0xff,
        ];
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(options);
        while s.len() % 4 != 0 {
            s.push(OPTION_END);
        }
        s[12] = ((s.len() / 4) as u8) << 4;
        s.extend_from_slice(b"payload");
        let c = full_checksum(&s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    #[test]
    fn clamps_an_aligned_mss_and_keeps_the_checksum_valid() {
        let mut s = syn(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2], FLAG_SYN);
        assert!(clamp_mss(&mut s, 1432));
        assert_eq!(&s[20..24], &[2, 4, 0x05, 0x98]);
        assert_eq!(read_u16(&s, 16..18), full_checksum(&s));
    }

    #[test]
    fn clamps_an_mss_at_an_odd_offset() {
        // NOP first: the MSS value sits at byte 23, across two checksum words.
        let mut s = syn(&[1, 2, 4, 0x23, 0x28, 1, 1, 1], FLAG_SYN | 0x10);
        assert!(clamp_mss(&mut s, 1432));
        assert_eq!(&s[21..25], &[2, 4, 0x05, 0x98]);
        assert_eq!(read_u16(&s, 16..18), full_checksum(&s));
    }

    #[test]
    fn leaves_everything_else_alone() {
        for (options, flags, max) in [
            (&[2u8, 4, 0x05, 0x00][..], FLAG_SYN, 1432), // already small enough
            (&[2, 4, 0x05, 0xb4], 0x10, 1432),           // not a SYN
            (&[1, 1, 4, 2], FLAG_SYN, 1432),             // no MSS option
            (&[0, 2, 4, 0x05, 0xb4], FLAG_SYN, 1432),    // after END
            (&[3, 9, 0, 0], FLAG_SYN, 1432),             // option past the header
            (&[5, 0, 2, 4], FLAG_SYN, 1432),             // zero-length option
        ] {
            let mut s = syn(options, flags);
            let before = s.clone();
            assert!(!clamp_mss(&mut s, max), "{options:?}");
            assert_eq!(s, before);
        }
        let mut no_options = syn(&[], FLAG_SYN);
        assert!(!clamp_mss(&mut no_options, 536));
        // Header length beyond the buffer, and buffers too short to hold the flags.
        let mut s = syn(&[2, 4, 0x05, 0xb4], FLAG_SYN);
        s[12] = 0xf0;
        assert!(!clamp_mss(&mut s[..24], 1000));
        for len in 0..14 {
            assert!(!clamp_mss(&mut vec![0x02; len], 1000));
        }
    }

    proptest::proptest! {
        /// Never panics, and whatever it rewrites keeps the checksum valid.
        #[test]
        fn arbitrary_options(options in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                             max in 0u16..2000) {
            let mut s = syn(&options, FLAG_SYN);
            s.truncate(s.len().min(60));
            let checksummed = read_u16(&s, 16..18) == full_checksum(&s);
            clamp_mss(&mut s, max);
            if checksummed {
                proptest::prop_assert_eq!(read_u16(&s, 16..18), full_checksum(&s));
            }
        }
    }
}
