//! ICMPv4 "destination unreachable / fragmentation needed" (RFC 792, RFC 1191).

use super::checksum;
use super::write_u16;

pub const HEADER_LEN: usize = 8;
/// The ICMP error types (RFC 1812 4.3.2.7: no error is ever sent about one of these):
/// destination unreachable, source quench, redirect, time exceeded, parameter problem.
pub const ERROR_TYPES: [u8; 5] = [3, 4, 5, 11, 12];
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
pub const TYPE_ECHO_REPLY: u8 = 0;
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// The errors that quote a flow of ours and are steered with it (contract 7.4): destination
/// unreachable (fragmentation needed included), time exceeded, parameter problem.
pub const STEERED_ERROR_TYPES: [u8; 3] = [3, 11, 12];
/// Where an echo's identifier is, from the start of the ICMP header.
pub const ECHO_IDENTIFIER: usize = 4;
/// Where the checksum is.
pub const CHECKSUM: usize = 2;
/// RFC 1812 4.3.2.3: an ICMP error quotes as much of the original as fits in 576 bytes.
pub const MAX_ERROR_DATAGRAM: usize = 576;

/// Writes a fragmentation-needed message with next-hop MTU `mtu` into `buffer`: the 8-byte
/// header followed by `quoted_len` bytes that the caller has already placed after it, and
/// fills the checksum over both. Never panics when `buffer` has `HEADER_LEN + quoted_len`
/// bytes; returns `false` (writing nothing) otherwise.
pub fn emit_frag_needed(buffer: &mut [u8], mtu: u16, quoted_len: usize) -> bool {
    let Some(message) = buffer.get_mut(..HEADER_LEN + quoted_len) else {
        return false;
    };
    message[0] = TYPE_DEST_UNREACHABLE;
    message[1] = CODE_FRAG_NEEDED;
    write_u16(message, 2..4, 0);
    write_u16(message, 4..6, 0);
    write_u16(message, 6..8, mtu);
    let c = checksum::checksum(message);
    write_u16(message, 2..4, c);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construct() {
        let mut b = [0xa5u8; 12];
        b[8..].copy_from_slice(&[0x45, 0, 0, 20]);
        assert!(emit_frag_needed(&mut b, 1472, 4));
        assert_eq!(&b[..8], &[3, 4, 0xb2, 0x27, 0, 0, 0x05, 0xc0]);
        assert_eq!(checksum::sum(&b), 0xffff);
        assert!(!emit_frag_needed(&mut b, 1472, 5));
    }
}
