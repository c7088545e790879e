//! IPv4 headers.

use super::checksum;
use super::{read_u16, read_u32, write_u16, write_u32, Field, WireError};

pub const HEADER_LEN: usize = 20;
pub const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Where each field of the header lies (for headers written whole, as templates).
pub(crate) mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// An IPv4 packet: `buffer` starts at the IP header and may run past the packet's total
/// length (Ethernet padding).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version, header length and total length against the buffer. After this no
    /// accessor can read outside the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if header_len > b.len() {
            return Err(WireError::Truncated);
        }
        let total = usize::from(read_u16(b, field::TOTAL_LEN));
        if total < header_len || total > b.len() {
            return Err(WireError::BadTotalLength);
        }
        Ok(Self { buffer })
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The fixed part of the header, which reads every field below: one implementation of
    /// each field for this view and the fast path's.
    #[inline]
    fn fixed(&self) -> FixedHeader<&[u8; HEADER_LEN]> {
        FixedHeader::of(self.buffer.as_ref()).expect("new_checked accepted a full header")
    }

    /// DSCP and ECN bits.
    pub fn tos(&self) -> u8 {
        self.fixed().tos()
    }

    pub fn total_len(&self) -> usize {
        self.fixed().total_len()
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_fragment(&self) -> bool {
        self.fixed().dont_fragment()
    }

    /// True for every fragment of a fragmented packet (first included).
    pub fn is_fragment(&self) -> bool {
        self.fixed().is_fragment()
    }

    /// A fragment other than the first: it carries no transport header.
    pub fn is_later_fragment(&self) -> bool {
        self.fixed().is_later_fragment()
    }

    pub fn ttl(&self) -> u8 {
        self.fixed().ttl()
    }

    pub fn protocol(&self) -> u8 {
        self.fixed().protocol()
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src(&self) -> u32 {
        self.fixed().src()
    }

    pub fn dst(&self) -> u32 {
        self.fixed().dst()
    }

    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The bytes after the header, up to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Decrements the TTL, updating the header checksum incrementally (RFC 1624).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        if let Some(mut header) = FixedHeader::of_mut(self.buffer.as_mut()) {
            header.decrement_ttl();
        }
    }

    pub fn fill_checksum(&mut self) {
        let header_len = self.header_len();
        let b = self.buffer.as_mut();
        write_u16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..header_len]);
        write_u16(b, field::CHECKSUM, c);
    }
}

/// The fixed 20 bytes of an IPv4 header as an array: every field at a constant offset, so no
/// access needs a bounds check. For the fast path of the header nearly every packet has (no
/// options), and for rewriting packets [`Packet::new_checked`] has already accepted without
/// validating them a second time.
#[derive(Debug)]
pub struct FixedHeader<T>(T);

impl<'a> FixedHeader<&'a [u8; HEADER_LEN]> {
    /// The first 20 bytes of `ip`, if it has that many.
    #[inline]
    pub fn of(ip: &'a [u8]) -> Option<Self> {
        ip.first_chunk().map(Self)
    }
}

impl<'a> FixedHeader<&'a mut [u8; HEADER_LEN]> {
    /// The first 20 bytes of `ip`, writable, if it has that many.
    #[inline]
    pub fn of_mut(ip: &'a mut [u8]) -> Option<Self> {
        ip.first_chunk_mut().map(Self)
    }
}

impl<T: core::borrow::Borrow<[u8; HEADER_LEN]>> FixedHeader<T> {
    #[inline]
    fn bytes(&self) -> &[u8; HEADER_LEN] {
        self.0.borrow()
    }

    /// Version 4 and a header of 20 bytes: the header these fixed offsets describe whole.
    #[inline]
    pub fn is_plain(&self) -> bool {
        self.bytes()[field::VER_IHL] == 0x45
    }

    #[inline]
    pub fn tos(&self) -> u8 {
        self.bytes()[field::TOS]
    }

    /// The total length field: within the buffer only if [`Packet::new_checked`] said so.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.bytes(), field::TOTAL_LEN))
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        read_u16(self.bytes(), field::FLAGS_FRAG) & FLAG_DONT_FRAGMENT != 0
    }

    /// True for every fragment of a fragmented packet (first included).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.bytes(), field::FLAGS_FRAG) & (FLAG_MORE_FRAGMENTS | OFFSET_MASK) != 0
    }

    /// A fragment other than the first: it carries no transport header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        read_u16(self.bytes(), field::FLAGS_FRAG) & OFFSET_MASK != 0
    }

    /// The header length field, in bytes (valid only if [`Packet::new_checked`] accepted it).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.bytes()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.bytes()[field::PROTOCOL]
    }

    #[inline]
    pub fn src(&self) -> u32 {
        read_u32(self.bytes(), field::SRC)
    }

    #[inline]
    pub fn dst(&self) -> u32 {
        read_u32(self.bytes(), field::DST)
    }

    /// The checksum of a plain header ([`FixedHeader::is_plain`]) is valid.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.bytes()) == 0xffff
    }
}

impl<T: core::borrow::BorrowMut<[u8; HEADER_LEN]>> FixedHeader<T> {
    /// Decrements the TTL, updating the header checksum incrementally (RFC 1624).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.0.borrow_mut();
        let before = read_u16(b, field::CHECKSUM);
        let c = match b[field::TTL].checked_sub(1) {
            Some(ttl) => {
                b[field::TTL] = ttl;
                checksum::after_ttl_decrement(before)
            }
            // Wraps to 255 (never in the pipeline, which drops such packets first).
            None => {
                let old = u16::from_be_bytes([0, b[field::PROTOCOL]]);
                b[field::TTL] = u8::MAX;
                checksum::update(before, old, old | 0xff00)
            }
        };
        write_u16(b, field::CHECKSUM, c);
    }
}

/// A 20-byte IPv4 header to emit (no options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: u32,
    pub dst: u32,
    pub protocol: u8,
    pub tos: u8,
    pub ttl: u8,
    pub dont_fragment: bool,
    /// Payload length (the total length is this plus 20).
    pub payload_len: usize,
}

impl Repr {
    /// Writes the header, with identification 0 and a valid checksum, into the first 20 bytes
    /// of `buffer`. Never panics on a buffer of at least [`HEADER_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        write_u16(b, field::TOTAL_LEN, (HEADER_LEN + self.payload_len) as u16);
        write_u16(b, field::IDENT, 0);
        write_u16(
            b,
            field::FLAGS_FRAG,
            if self.dont_fragment {
                FLAG_DONT_FRAGMENT
            } else {
                0
            },
        );
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        write_u32(b, field::SRC, self.src);
        write_u32(b, field::DST, self.dst);
        write_u16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(b);
        write_u16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 -> 10.0.0.2, TCP, TTL 64, DF, id 0x1234, total 24 (4 payload bytes), plus 2
    /// bytes of Ethernet padding. Header checksum 0x14aa (computed independently).
    static PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x14, 0xaa, 10, 0, 0, 1, 10, 0,
        0, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(
            (p.header_len(), p.total_len(), p.tos(), p.ident()),
            (20, 24, 0, 0x1234)
        );
        assert!(p.dont_fragment() && !p.is_fragment());
        assert_eq!((p.ttl(), p.protocol()), (64, 6));
        assert_eq!((p.src(), p.dst()), (0x0a00_0001, 0x0a00_0002));
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum(), "checksum 0x{:04x}", p.checksum());
    }

    #[test]
    fn construct_matches_the_bytes() {
        let mut bytes = [0xa5u8; 24];
        Repr {
            src: 0x0a00_0001,
            dst: 0x0a00_0002,
            protocol: 6,
            tos: 0,
            ttl: 64,
            dont_fragment: true,
            payload_len: 4,
        }
        .emit(&mut bytes);
        // Identification is always 0 when we emit: patch the fixture's for the comparison.
        let mut expected = PACKET;
        expected[4..6].copy_from_slice(&[0, 0]);
        let mut p = Packet::new_checked(&mut expected[..]).unwrap();
        p.fill_checksum();
        assert_eq!(&bytes[..20], &expected[..20]);
        assert_eq!(&bytes[20..], &[0xa5; 4]);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut bytes = PACKET;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(
            p.checksum(),
            incremental,
            "incremental update equals a full recompute"
        );
        // Every starting TTL, the wrap from 0 included.
        for ttl in 0..=255u8 {
            let mut bytes = PACKET;
            bytes[8] = ttl;
            let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
            p.fill_checksum();
            p.decrement_ttl();
            assert_eq!(p.ttl(), ttl.wrapping_sub(1));
            assert!(p.verify_checksum(), "ttl {ttl}");
        }
    }

    #[test]
    fn fixed_header_reads_what_the_checked_view_reads() {
        let mut bytes = PACKET;
        let (tos, total, df, ttl) = {
            let p = Packet::new_checked(&bytes[..]).unwrap();
            (p.tos(), p.total_len(), p.dont_fragment(), p.ttl())
        };
        let (src, dst, proto, fragment) = {
            let p = Packet::new_checked(&bytes[..]).unwrap();
            (p.src(), p.dst(), p.protocol(), p.is_fragment())
        };
        let view = FixedHeader::of(&bytes[..]).unwrap();
        assert!(view.is_plain() && view.verify_checksum());
        assert_eq!(
            (view.src(), view.dst(), view.protocol(), view.is_fragment()),
            (src, dst, proto, fragment)
        );
        let mut h = FixedHeader::of_mut(&mut bytes[..]).unwrap();
        assert_eq!(
            (h.tos(), h.total_len(), h.dont_fragment(), h.ttl()),
            (tos, total, df, ttl)
        );
        h.decrement_ttl();
        assert_eq!(h.ttl(), 63);
        assert!(Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
        assert!(FixedHeader::of(&bytes[..19]).is_none());
        bytes[0] = 0x46;
        assert!(!FixedHeader::of(&bytes[..]).unwrap().is_plain());
    }

    #[test]
    fn rejects_impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&PACKET[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadVersion
        );
        b[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadHeaderLength
        );
        b[0] = 0x47; // 28-byte header in a 26-byte buffer
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
        b[0] = 0x45;
        b[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadTotalLength
        );
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadTotalLength
        );
    }

    #[test]
    fn fragments_are_recognised() {
        let mut b = PACKET;
        b[6] = 0x20; // MF
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        b[6] = 0x00;
        b[7] = 0x10; // offset
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
    }
}
