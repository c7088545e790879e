//! IPv6 fixed headers (extension headers are not looked into: IPv6 is never forwarded, only
//! its addresses and hop limit matter).

use super::{read_u16, Field, WireError};

pub const HEADER_LEN: usize = 40;

mod field {
    use super::Field;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + usize::from(read_u16(b, field::PAYLOAD_LEN)) > b.len() {
            return Err(WireError::BadTotalLength);
        }
        Ok(Self { buffer })
    }

    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN))
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> u128 {
        u128::from_be_bytes(
            self.buffer.as_ref()[field::SRC]
                .try_into()
                .expect("16 bytes"),
        )
    }

    pub fn dst(&self) -> u128 {
        u128::from_be_bytes(
            self.buffer.as_ref()[field::DST]
                .try_into()
                .expect("16 bytes"),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// IPv6 has no header checksum: the hop limit is just decremented.
    pub fn decrement_hop_limit(&mut self) {
        let b = self.buffer.as_mut();
        b[field::HOP_LIMIT] = b[field::HOP_LIMIT].wrapping_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8:1::1 -> 2606:4700::1, UDP, hop limit 64, 8-byte payload.
    static PACKET: [u8; 48] = [
        0x60, 0, 0, 0, 0, 8, 17, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 53, 0, 53, 0, 8, 0, 0,
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (8, 17, 64)
        );
        assert_eq!(p.src(), 0x2001_0db8_0001_0000_0000_0000_0000_0001);
        assert_eq!(p.dst(), 0x2606_4700_0000_0000_0000_0000_0000_0001);
    }

    #[test]
    fn hop_limit_decrements() {
        let mut b = PACKET;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 63);
    }

    #[test]
    fn rejects_impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..47]).unwrap_err(),
            WireError::BadTotalLength
        );
        let mut b = PACKET;
        b[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadVersion
        );
    }
}
