//! UDP headers, and the port pair of TCP (the same first four bytes).

use super::{read_u16, write_u16, Field, WireError};

pub const HEADER_LEN: usize = 8;
/// Bytes needed to read the ports of a TCP or UDP header.
pub const PORTS_LEN: usize = 4;

/// Where each field of the header lies (for headers written whole, as templates).
pub(crate) mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Source and destination port of a TCP or UDP header, if the bytes hold them.
#[inline]
pub fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    (l4.len() >= PORTS_LEN).then(|| (read_u16(l4, field::SRC_PORT), read_u16(l4, field::DST_PORT)))
}

#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the header fits and the length field covers the header and fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(read_u16(b, field::LENGTH));
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::BadTotalLength);
        }
        Ok(Self { buffer })
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }
}

/// A UDP header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Writes the 8-byte header with checksum 0 (no checksum: what FOU sends over IPv4, and the
    /// inner packet carries its own). Never panics on a buffer of at least 8 bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..HEADER_LEN];
        write_u16(b, field::SRC_PORT, self.src_port);
        write_u16(b, field::DST_PORT, self.dst_port);
        write_u16(b, field::LENGTH, (HEADER_LEN + self.payload_len) as u16);
        write_u16(b, field::CHECKSUM, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static HEADER: [u8; 10] = [0xc3, 0x50, 0x17, 0xc0, 0x00, 0x0a, 0x00, 0x00, 0xaa, 0xbb];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.len(), p.checksum()),
            (50000, 6080, 10, 0)
        );
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        assert_eq!(ports(&HEADER), Some((50000, 6080)));
        assert_eq!(ports(&HEADER[..3]), None);
    }

    #[test]
    fn construct() {
        let mut b = [0xa5u8; 10];
        Repr {
            src_port: 50000,
            dst_port: 6080,
            payload_len: 2,
        }
        .emit(&mut b);
        assert_eq!(&b[..8], &HEADER[..8]);
        assert_eq!(&b[8..], &[0xa5, 0xa5]);
    }

    #[test]
    fn rejects_impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&HEADER[..7]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = HEADER;
        b[5] = 11;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadTotalLength
        );
        b[5] = 7;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadTotalLength
        );
    }
}
