use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

use crate::ffi;
use crate::mempool::Mempool;

/// One owned packet buffer. Freed (returned to its pool) on drop.
///
/// `Send` so a buffer can move between threads with its ownership, not `Sync`: two threads
/// never look at the same buffer at once.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf is exclusively owned by whoever holds this handle; DPDK's free path is
// thread-safe (mempool ring ops), so the handle may move to another thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// A new empty buffer from `pool` (with the default headroom), or `None` if it is empty.
    pub fn alloc(pool: &Mempool) -> Option<Self> {
        // SAFETY: pool.as_ptr() is a live mempool; the result is either NULL or a buffer we
        // now own exclusively.
        NonNull::new(unsafe { ffi::efw_pktmbuf_alloc(pool.as_ptr()) }).map(Self)
    }

    /// A new buffer holding a copy of `bytes`, or `None` when the pool is empty or the bytes
    /// do not fit in one segment.
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Option<Self> {
        let mut mbuf = Self::alloc(pool)?;
        mbuf.append(bytes.len())?.copy_from_slice(bytes);
        Some(mbuf)
    }

    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: self.0 points to a live mbuf exclusively owned by self.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: as in `raw`, and &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    /// The packet bytes of the first (for the appliance: only) segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: DPDK keeps data_off + data_len within the segment's buf_len bytes at
        // buf_addr, and the buffer is owned by self for the lifetime of the borrow.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in `data`; &mut self makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// True when the whole packet is in one segment (what [`Mbuf::data`] covers).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// Grows the packet at the front by `len` bytes (taken from the headroom) and returns the
    /// whole packet; `None`, unchanged, when the headroom is too small. Single-segment only,
    /// as `rte_pktmbuf_prepend`, but without a function call per packet.
    #[inline]
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        let m = self.raw_mut();
        let grow = u16::try_from(len).ok().filter(|&n| n <= m.data_off)?;
        let new_len = m.data_len.checked_add(grow)?;
        m.data_off -= grow;
        m.data_len = new_len;
        m.pkt_len += u32::from(grow);
        Some(self.data_mut())
    }

    /// Removes `len` bytes from the front; `None`, unchanged, if the first segment is shorter.
    #[inline]
    pub fn adj(&mut self, len: usize) -> Option<&mut [u8]> {
        let m = self.raw_mut();
        let cut = u16::try_from(len).ok().filter(|&n| n <= m.data_len)?;
        m.data_off += cut;
        m.data_len -= cut;
        m.pkt_len -= u32::from(cut);
        Some(self.data_mut())
    }

    /// Removes `len` bytes from the end; `None`, unchanged, if the first segment is shorter
    /// (or the packet has more than one segment).
    #[inline]
    pub fn trim(&mut self, len: usize) -> Option<()> {
        if !self.is_contiguous() {
            return None;
        }
        let m = self.raw_mut();
        let cut = u16::try_from(len).ok().filter(|&n| n <= m.data_len)?;
        m.data_len -= cut;
        m.pkt_len -= u32::from(cut);
        Some(())
    }

    /// Grows the packet at the end by `len` bytes (from the tailroom) and returns the new
    /// bytes; `None`, unchanged, if there is no room.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: self owns the mbuf; rte_pktmbuf_append returns NULL (and changes nothing)
        // when the tailroom is too small, else a pointer to `len` writable bytes at the end.
        let tail = unsafe { ffi::efw_pktmbuf_append(self.0.as_ptr(), len16) };
        let tail = NonNull::new(tail.cast::<u8>())?;
        // SAFETY: the `len` bytes at `tail` are inside this mbuf, which self owns.
        Some(unsafe { std::slice::from_raw_parts_mut(tail.as_ptr(), len) })
    }

    /// Gives up ownership; the caller must hand the pointer to DPDK or back to
    /// [`Mbuf::from_raw`].
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        ManuallyDrop::new(self).0.as_ptr()
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else owns or will free.
    pub unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Self {
        Self(raw)
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf and is being dropped: nobody uses it afterwards.
        unsafe { ffi::efw_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// Largest burst one [`MbufBurst`] holds: room for a 32-packet rx burst plus packets a
/// worker holds back for a retry.
pub const BURST_CAPACITY: usize = 64;

/// A fixed-capacity array of owned mbufs for bursts, with no allocation. Whatever is still
/// inside when it is cleared or dropped is freed.
pub struct MbufBurst {
    slots: [MaybeUninit<Mbuf>; BURST_CAPACITY],
    len: usize,
}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst").field("len", &self.len).finish()
    }
}

impl MbufBurst {
    pub const fn new() -> Self {
        Self {
            slots: [const { MaybeUninit::uninit() }; BURST_CAPACITY],
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_CAPACITY
    }

    #[inline]
    pub fn spare_capacity(&self) -> usize {
        BURST_CAPACITY - self.len
    }

    /// Adds a buffer at the end; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(mbuf);
        }
        self.slots[self.len].write(mbuf);
        self.len += 1;
        Ok(())
    }

    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots[..len] are initialised (every path that raises len writes them first).
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Moves every buffer out, in order, leaving the burst empty. Buffers the iterator did
    /// not yield before it was dropped are freed.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = std::mem::replace(&mut self.len, 0);
        Drain {
            burst: self,
            next: 0,
            end: len,
        }
    }

    /// Frees every buffer still in the burst; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            self.len = 0;
            let ptr = self.slots.as_mut_ptr().cast::<*mut ffi::rte_mbuf>();
            // SAFETY: slots[..n] held n owned mbufs (Mbuf is a transparent pointer); len is
            // already 0, so none of them is reachable from self any more.
            unsafe { ffi::rte_pktmbuf_free_bulk(ptr, n as u32) };
        }
        n
    }

    /// Raw view for the rx/tx glue: pointer to the first slot after the filled part.
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut ffi::rte_mbuf {
        // SAFETY: len <= BURST_CAPACITY, so the offset stays within (or one past) the array.
        unsafe { self.slots.as_mut_ptr().add(self.len).cast() }
    }

    pub(crate) fn filled_ptr(&mut self) -> *mut *mut ffi::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Marks `n` more slots as filled by the driver.
    ///
    /// # Safety
    /// The `n` slots after the filled part must now hold owned mbufs.
    pub(crate) unsafe fn assume_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST_CAPACITY);
        self.len += n;
    }

    /// Forgets the first `n` buffers (the driver took them) and moves the rest to the front.
    pub(crate) fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        let base = self.slots.as_mut_ptr();
        // SAFETY: both ranges lie within the array (n + rest == len <= capacity); the first n
        // entries are no longer ours, the rest keep their ownership and their order (for a
        // retry). `copy` allows the overlap.
        unsafe { std::ptr::copy(base.add(n), base, rest) };
        self.len = rest;
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator of [`MbufBurst::drain`].
pub struct Drain<'a> {
    burst: &'a mut MbufBurst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: slots[next..end] still hold owned mbufs that drain has not yielded; each
        // is read exactly once because `next` advances past it.
        let mbuf = unsafe { self.burst.slots[self.next].assume_init_read() };
        self.next += 1;
        Some(mbuf)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}
