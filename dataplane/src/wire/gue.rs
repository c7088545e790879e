//! Generic UDP Encapsulation (draft-ietf-intarea-gue): what follows the UDP header of a
//! fleet packet.
//!
//! Variant 1 (first two bits `01`) is direct IP encapsulation: the UDP payload *is* the inner
//! IPv4 packet (its version nibble 4 supplies the bits). This is what Linux FOU with
//! `ipproto 4` sends, and what the appliance emits. Variant 0 carries a 4-byte header first
//! (version, control bit, header length `hlen` in 32-bit words, inner protocol, 16 flags),
//! then `hlen` words of optional fields, each present because a flag says so. Linux
//! `encap gue` sends it with no flags and protocol 4.
//!
//! The one flag we know is Linux's `GUE_FLAG_PRIV` (the 32-bit private-flags field). With
//! no private flag set, that field is skipped. Anything else we cannot interpret is
//! [`Inner::Unsupported`], and so is a header length that does not cover exactly the
//! fields its flags announce:
//! - unknown flags;
//! - a private flag (Linux's remote checksum offload leaves the inner checksum incomplete);
//! - a header length that is too short for the flags' fields, or longer than them.
//!
//! The same rule as Linux's `validate_gue_flags`, made strict on both ends.

use super::WireError;

/// Length of a variant 0 header without optional fields.
pub const V0_HEADER_LEN: usize = 4;
/// The flag of the private-flags field (Linux `GUE_FLAG_PRIV`), and that field's length.
const FLAG_PRIVATE: u16 = 0x0001;
const PRIVATE_LEN: usize = 4;

/// Where the inner packet starts in a GUE payload, or why there is no usable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// The inner IPv4 packet starts this many bytes into the UDP payload.
    Ipv4At(usize),
    /// Anything else: control messages, optional fields we cannot interpret, other inner
    /// protocols, IPv6.
    Unsupported,
}

pub fn inner(payload: &[u8]) -> Result<Inner, WireError> {
    let first = *payload.first().ok_or(WireError::Truncated)?;
    Ok(match first >> 6 {
        0b01 if first >> 4 == 4 => Inner::Ipv4At(0),
        0b00 => {
            let Some(header) = payload.first_chunk::<V0_HEADER_LEN>() else {
                return Err(WireError::Truncated);
            };
            let control = first & 0x20 != 0;
            let options_len = usize::from(first & 0x1f) * 4;
            let proto = header[1];
            let flags = u16::from_be_bytes([header[2], header[3]]);
            if control || proto != 4 || flags & !FLAG_PRIVATE != 0 {
                return Ok(Inner::Unsupported);
            }
            let fields_len = if flags & FLAG_PRIVATE != 0 {
                PRIVATE_LEN
            } else {
                0
            };
            if options_len != fields_len {
                return Ok(Inner::Unsupported);
            }
            let start = V0_HEADER_LEN + options_len;
            let Some(options) = payload.get(V0_HEADER_LEN..start) else {
                return Err(WireError::Truncated);
            };
            if options.iter().any(|&b| b != 0) {
                // Private flags set: nothing we know how to honour.
                return Ok(Inner::Unsupported);
            }
            Inner::Ipv4At(start)
        }
        _ => Inner::Unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        assert_eq!(inner(&[0x45, 0]), Ok(Inner::Ipv4At(0)));
        assert_eq!(
            inner(&[0x60, 0]),
            Ok(Inner::Unsupported),
            "IPv6 inside is not ours"
        );
        assert_eq!(inner(&[0x00, 4, 0, 0, 0x45]), Ok(Inner::Ipv4At(4)));
        assert_eq!(inner(&[0x00, 41, 0, 0]), Ok(Inner::Unsupported));
        assert_eq!(
            inner(&[0x20, 4, 0, 0]),
            Ok(Inner::Unsupported),
            "control message"
        );
        assert_eq!(
            inner(&[0x01, 4, 0, 0, 0, 0, 0, 0, 0x45]),
            Ok(Inner::Unsupported),
            "a header length covering fields no flag announces"
        );
        assert_eq!(inner(&[0x80]), Ok(Inner::Unsupported));
        // The private-flags field, announced and empty, is skipped.
        assert_eq!(
            inner(&[0x01, 4, 0x00, 0x01, 0, 0, 0, 0, 0x45]),
            Ok(Inner::Ipv4At(8))
        );
        // Private flags set (remote checksum offload): not ours to honour.
        assert_eq!(
            inner(&[0x01, 4, 0x00, 0x01, 0x80, 0, 0, 0, 0x45]),
            Ok(Inner::Unsupported)
        );
        // A flag whose field the header length does not cover.
        assert_eq!(inner(&[0x00, 4, 0x00, 0x01, 0x45]), Ok(Inner::Unsupported));
        // An unknown flag, with or without room for a field.
        assert_eq!(inner(&[0x00, 4, 0x80, 0x00, 0x45]), Ok(Inner::Unsupported));
        assert_eq!(
            inner(&[0x01, 4, 0x80, 0x00, 0, 0, 0, 0, 0x45]),
            Ok(Inner::Unsupported)
        );
        // The header length promises a field that is not there.
        assert_eq!(
            inner(&[0x01, 4, 0x00, 0x01, 0, 0]),
            Err(WireError::Truncated)
        );
        assert_eq!(inner(&[0x00, 4]), Err(WireError::Truncated));
        assert_eq!(inner(&[]), Err(WireError::Truncated));
    }
}
