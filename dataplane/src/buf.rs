//! The one thing the pipeline needs from a packet buffer: its bytes, and room to grow or
//! shrink at either end. DPDK mbufs implement it in the worker; [`VecBuf`] in tests, the fuzz
//! target and benchmarks.

/// A packet in a buffer with headroom. Every method is bounds-checked: a failed resize
/// returns `false` and changes nothing.
pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `len` bytes at the front (taken from the headroom).
    fn prepend(&mut self, len: usize) -> bool;
    /// Removes `len` bytes from the front.
    fn adj(&mut self, len: usize) -> bool;
    /// Removes `len` bytes from the end.
    fn trim(&mut self, len: usize) -> bool;
}

/// Headroom a DPDK mbuf has by default; what [`VecBuf::new`] gives too.
pub const DEFAULT_HEADROOM: usize = 128;

/// A packet in a `Vec` with headroom in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    pub fn new(frame: &[u8]) -> Self {
        Self::with_headroom(frame, DEFAULT_HEADROOM)
    }

    pub fn with_headroom(frame: &[u8], headroom: usize) -> Self {
        let mut storage = vec![0u8; headroom + frame.len()];
        storage[headroom..].copy_from_slice(frame);
        Self {
            storage,
            start: headroom,
            end: headroom + frame.len(),
        }
    }

    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Replaces the contents with `frame` behind `headroom` bytes, reusing the allocation
    /// (what a driver does with a recycled buffer).
    pub fn refill(&mut self, frame: &[u8], headroom: usize) {
        let end = headroom + frame.len();
        if self.storage.len() < end {
            self.storage.resize(end, 0);
        }
        self.storage[headroom..end].copy_from_slice(frame);
        self.start = headroom;
        self.end = end;
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }

    fn prepend(&mut self, len: usize) -> bool {
        if len > self.start {
            return false;
        }
        self.start -= len;
        true
    }

    fn adj(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.start += len;
        true
    }

    fn trim(&mut self, len: usize) -> bool {
        if len > self.end - self.start {
            return false;
        }
        self.end -= len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizes_are_bounded() {
        let mut b = VecBuf::with_headroom(&[1, 2, 3], 2);
        assert!(!b.prepend(3));
        assert!(b.prepend(2));
        assert_eq!(b.data(), &[0, 0, 1, 2, 3]);
        assert!(!b.adj(6) && !b.trim(6));
        assert!(b.adj(3) && b.trim(1));
        assert_eq!(b.data(), &[2]);
        assert_eq!(b.headroom(), 3);
        b.refill(&[7, 8, 9, 10], 1);
        assert_eq!((b.data(), b.headroom()), (&[7, 8, 9, 10][..], 1));
    }
}
