//! The port of a TCP or UDP header, or the identifier of an ICMP echo (which counts as its
//! port, contract 7.2), rewritten with the header's checksum updated incrementally (RFC 1624).
//! The addresses do not change, so the pseudo-header does not either.

use super::{checksum, icmp};
use topology::hash::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// The big-endian word at `at`, if `b` holds it.
#[inline]
fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..)?.first_chunk()?))
}

/// Which port of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Source,
    Destination,
}

/// The 16-bit words a rewrite changed, as `(offset, old, new)` from the start of the L4
/// header: a checksum that covers them (the ICMP checksum of an error quoting this header)
/// is updated from these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub words: [(u16, u16); 2],
    pub len: usize,
}

impl Changed {
    fn push(&mut self, old: u16, new: u16) {
        if self.len < self.words.len() {
            self.words[self.len] = (old, new);
            self.len += 1;
        }
    }

    /// `checksum` after these changes to data it covers.
    pub fn update(&self, mut checksum: u16) -> u16 {
        for &(old, new) in &self.words[..self.len] {
            checksum = checksum::update(checksum, old, new);
        }
        checksum
    }
}

/// Where the port and the checksum of `proto`'s header are: `(port, checksum)` offsets.
fn offsets(proto: u8, end: End) -> Option<(usize, usize)> {
    match (proto, end) {
        (PROTO_TCP, End::Source) => Some((0, 16)),
        (PROTO_TCP, End::Destination) => Some((2, 16)),
        (PROTO_UDP, End::Source) => Some((0, 6)),
        (PROTO_UDP, End::Destination) => Some((2, 6)),
        // An echo's identifier is both ends' "port".
        (PROTO_ICMP, _) => Some((icmp::ECHO_IDENTIFIER, 2)),
        _ => None,
    }
}

/// The port at `end` of the L4 header `l4` (an ICMP echo's identifier), if `l4` holds it.
pub fn get(proto: u8, l4: &[u8], end: End) -> Option<u16> {
    let (port, _) = offsets(proto, end)?;
    read_u16(l4, port)
}

/// Sets the port at `end` to `port` and updates the header's checksum if `l4` holds it (a
/// quote in an ICMP error may stop after 8 bytes, before a TCP checksum). A UDP checksum of
/// zero means none and stays zero; a computed zero is sent as `0xffff` (RFC 768). Returns
/// the words changed, or `None` (nothing written) when `l4` is too short for the port.
pub fn set(proto: u8, l4: &mut [u8], end: End, port: u16) -> Option<Changed> {
    let (at, sum_at) = offsets(proto, end)?;
    let old = read_u16(l4, at)?;
    let mut changed = Changed::default();
    if old == port {
        return Some(changed);
    }
    l4.get_mut(at..at + 2)?.copy_from_slice(&port.to_be_bytes());
    changed.push(old, port);
    if let Some(sum) = read_u16(l4, sum_at) {
        if !(proto == PROTO_UDP && sum == 0) {
            let mut new = checksum::update(sum, old, port);
            if proto == PROTO_UDP && new == 0 {
                new = 0xffff;
            }
            l4[sum_at..sum_at + 2].copy_from_slice(&new.to_be_bytes());
            changed.push(sum, new);
        }
    }
    Some(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum of `l4` over the pseudo-header of `src`, `dst` (the full computation).
    fn full_sum(proto: u8, src: u32, dst: u32, l4: &[u8]) -> u16 {
        let pseudo = [
            (src >> 16) as u16,
            src as u16,
            (dst >> 16) as u16,
            dst as u16,
            u16::from(proto),
            l4.len() as u16,
        ];
        let acc = checksum::add_words(u32::from(checksum::sum(l4)), &pseudo);
        checksum::finish(acc)
    }

    fn segment(proto: u8) -> Vec<u8> {
        let mut l4 = vec![0u8; 28];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&443u16.to_be_bytes());
        for (i, b) in l4.iter_mut().enumerate().skip(8) {
            *b = (i as u8).wrapping_mul(37);
        }
        if proto == PROTO_UDP {
            l4[4..6].copy_from_slice(&28u16.to_be_bytes());
        }
        l4
    }

    proptest::proptest! {
        /// After a rewrite the incremental checksum equals the one computed from scratch.
        #[test]
        fn incremental_checksums_match_full_ones(port in proptest::prelude::any::<u16>(), tcp in proptest::prelude::any::<bool>(), source in proptest::prelude::any::<bool>()) {
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            let sum_at = if tcp { 16 } else { 6 };
            let (src, dst) = (0xc633_6401, 0x5db8_d822);
            let mut l4 = segment(proto);
            l4[sum_at..sum_at + 2].copy_from_slice(&[0, 0]);
            let sum = full_sum(proto, src, dst, &l4);
            l4[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
            let end = if source { End::Source } else { End::Destination };
            set(proto, &mut l4, end, port).unwrap();
            proptest::prop_assert_eq!(get(proto, &l4, end), Some(port));
            let written = read_u16(&l4, sum_at).unwrap();
            l4[sum_at..sum_at + 2].copy_from_slice(&[0, 0]);
            let expected = full_sum(proto, src, dst, &l4);
            // 0x0000 and 0xffff are the same one's-complement value; UDP sends 0xffff.
            proptest::prop_assert!(written == expected || (written == 0xffff && expected == 0) || (written == 0 && expected == 0xffff));
        }
    }

    #[test]
    fn a_udp_datagram_without_checksum_keeps_none_and_short_quotes_change_only_the_port() {
        let mut l4 = segment(PROTO_UDP);
        let changed = set(PROTO_UDP, &mut l4, End::Source, 1111).unwrap();
        assert_eq!((changed.len, read_u16(&l4, 6)), (1, Some(0)));
        // A TCP header quoted in 8 bytes: no checksum to update.
        let mut quote = segment(PROTO_TCP)[..8].to_vec();
        let changed = set(PROTO_TCP, &mut quote, End::Source, 2222).unwrap();
        assert_eq!(changed.len, 1);
        assert_eq!(get(PROTO_TCP, &quote, End::Source), Some(2222));
        assert_eq!(set(PROTO_TCP, &mut [0u8; 1], End::Source, 1), None);
        assert_eq!(set(47, &mut [0u8; 8], End::Source, 1), None);
    }

    #[test]
    fn an_echo_identifier_is_its_port() {
        // Echo request, id 0x1234, seq 1, checksum over the message.
        let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xaa, 0xbb];
        let sum = checksum::checksum(&echo);
        echo[2..4].copy_from_slice(&sum.to_be_bytes());
        set(PROTO_ICMP, &mut echo, End::Source, 0x4321).unwrap();
        assert_eq!(get(PROTO_ICMP, &echo, End::Destination), Some(0x4321));
        assert_eq!(checksum::sum(&echo), 0xffff, "still valid");
    }
}
