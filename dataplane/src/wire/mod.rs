//! Zero-copy views of the headers the appliance reads and writes.
//!
//! # The no-panic contract
//!
//! Every view is built from untrusted bytes with `new_checked`, which verifies that every
//! field the view's getters read lies within the buffer, and returns a typed [`WireError`]
//! otherwise. After that, no getter can panic or read out of bounds. Setters need
//! `AsMut<[u8]>` and write only inside the checked header. Nothing here allocates.
//!
//! Checks that are about meaning rather than bounds (a header checksum, a TTL) are separate
//! calls, so that the pipeline decides which failure counts as which drop reason.

pub mod checksum;
pub mod ethernet;
pub mod gue;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod ports;
pub mod tcp;
pub mod tunnel;
pub mod udp;

/// Why bytes are not a well-formed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("wrong IP version")]
    BadVersion,
    #[error("IPv4 header length below 5 words")]
    BadHeaderLength,
    #[error("total length beyond the frame or below the header")]
    BadTotalLength,
}

type Field = core::ops::Range<usize>;

#[inline]
fn read_u16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

#[inline]
fn write_u16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn read_u32(b: &[u8], f: Field) -> u32 {
    u32::from_be_bytes([b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3]])
}

#[inline]
fn write_u32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
