//! Generic UDP Encapsulation (draft-ietf-intarea-gue): what follows the UDP header of a
//! fleet packet.
//!
//! Variant 1 (first two bits `01`) is direct IP encapsulation: the UDP payload *is* the inner
//! IPv4 packet (its version nibble 4 supplies the bits). This is what Linux FOU with
//! `ipproto 4` sends, and what the appliance emits. Variant 0 carries a 4-byte header first;
//! Linux `encap gue` sends it with no optional fields and protocol 4.

use super::WireError;

/// Length of a variant 0 header without optional fields.
pub const V0_HEADER_LEN: usize = 4;

/// Where the inner packet starts in a GUE payload, or why there is no usable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// The inner IPv4 packet starts this many bytes into the UDP payload.
    Ipv4At(usize),
    /// Anything else: control messages, optional fields, other inner protocols, IPv6.
    Unsupported,
}

pub fn inner(payload: &[u8]) -> Result<Inner, WireError> {
    let first = *payload.first().ok_or(WireError::Truncated)?;
    Ok(match first >> 6 {
        0b01 if first >> 4 == 4 => Inner::Ipv4At(0),
        0b00 => {
            if payload.len() < V0_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            let control = first & 0x20 != 0;
            let hlen = first & 0x1f;
            let proto = payload[1];
            if control || hlen != 0 || proto != 4 {
                Inner::Unsupported
            } else {
                Inner::Ipv4At(V0_HEADER_LEN)
            }
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
            inner(&[0x01, 4, 0, 0]),
            Ok(Inner::Unsupported),
            "optional fields"
        );
        assert_eq!(inner(&[0x80]), Ok(Inner::Unsupported));
        assert_eq!(inner(&[0x00, 4]), Err(WireError::Truncated));
        assert_eq!(inner(&[]), Err(WireError::Truncated));
    }
}
