//! A worker's timer wheel: when each of its entries is next due, in 1-second slots. The owner
//! links an entry at creation, relinks it when its timeout changes, and visits the slots that
//! have come due a bounded number of entries at a time: expiry never scans the table.
//!
//! Lists are doubly linked through per-entry arrays allocated at start, so linking and
//! unlinking allocate nothing. A deadline further than [`SLOTS`] seconds away lands in the
//! slot it wraps to and is found not yet due when visited, then relinked.

pub const SLOTS: usize = 4096;
const NONE: u32 = u32::MAX;

pub struct Wheel {
    heads: Box<[u32]>,
    next: Box<[u32]>,
    prev: Box<[u32]>,
    /// The slot each linked entry is in, NONE when not linked.
    slot: Box<[u32]>,
    /// The next second to visit.
    cursor: u32,
}

impl Wheel {
    pub fn new(entries: usize, now: u32) -> Self {
        Self {
            heads: vec![NONE; SLOTS].into_boxed_slice(),
            next: vec![NONE; entries].into_boxed_slice(),
            prev: vec![NONE; entries].into_boxed_slice(),
            slot: vec![NONE; entries].into_boxed_slice(),
            cursor: now,
        }
    }

    /// The per-entry arrays, for placing on huge pages.
    pub fn regions(&self) -> [topology::MemoryRegion; 3] {
        [
            topology::MemoryRegion::of("flow wheel next", &self.next),
            topology::MemoryRegion::of("flow wheel previous", &self.prev),
            topology::MemoryRegion::of("flow wheel slot", &self.slot),
        ]
    }

    pub fn link(&mut self, entry: u32, deadline: u32) {
        debug_assert_eq!(self.slot[entry as usize], NONE, "linked once");
        // A deadline already past is visited at the cursor's slot, the next one visited.
        let at = deadline.max(self.cursor) as usize % SLOTS;
        let head = self.heads[at];
        self.next[entry as usize] = head;
        self.prev[entry as usize] = NONE;
        if head != NONE {
            self.prev[head as usize] = entry;
        }
        self.heads[at] = entry;
        self.slot[entry as usize] = at as u32;
    }

    pub fn unlink(&mut self, entry: u32) {
        let e = entry as usize;
        let at = self.slot[e];
        if at == NONE {
            return;
        }
        let (next, prev) = (self.next[e], self.prev[e]);
        if prev == NONE {
            self.heads[at as usize] = next;
        } else {
            self.next[prev as usize] = next;
        }
        if next != NONE {
            self.prev[next as usize] = prev;
        }
        self.slot[e] = NONE;
    }

    /// Visits the entries of the slots due by `now`, at most `budget` of them, in slot order:
    /// `visit` returns the entry's deadline if it is still live (it is relinked there), or
    /// `None` once it has been removed. Returns how many were visited.
    pub fn advance(
        &mut self,
        now: u32,
        budget: usize,
        mut visit: impl FnMut(u32) -> Option<u32>,
    ) -> usize {
        let mut visited = 0;
        let mut slots = 0;
        while self.cursor <= now && slots < SLOTS {
            let at = self.cursor as usize % SLOTS;
            while self.heads[at] != NONE {
                if visited == budget {
                    return visited;
                }
                let entry = self.heads[at];
                self.unlink(entry);
                visited += 1;
                if let Some(deadline) = visit(entry) {
                    // Still live: due later. Never into the slot being emptied (a deadline a
                    // whole turn away would land there): a second later is rechecked anyway.
                    let mut later = deadline.max(self.cursor + 1);
                    if later as usize % SLOTS == at {
                        later += 1;
                    }
                    self.link(entry, later);
                }
            }
            self.cursor += 1;
            slots += 1;
        }
        if self.cursor <= now {
            // More than a wheel's turn behind: every slot was visited once.
            self.cursor = now + 1;
        }
        visited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_due_at_their_deadline_and_not_before() {
        let mut w = Wheel::new(8, 100);
        let deadlines = [0, 105, 103, 103 + SLOTS as u32];
        w.link(1, deadlines[1]);
        w.link(2, deadlines[2]);
        w.link(3, deadlines[3]); // wraps into 103's slot
                                 // As the table does: an entry not yet due is relinked at its deadline.
        let expire = |w: &mut Wheel, now: u32| {
            let mut removed = Vec::new();
            w.advance(now, 10, |e| {
                let deadline = deadlines[e as usize];
                if deadline > now {
                    Some(deadline)
                } else {
                    removed.push(e);
                    None
                }
            });
            removed
        };
        assert_eq!(expire(&mut w, 102), Vec::<u32>::new());
        assert_eq!(expire(&mut w, 104), vec![2]);
        assert_eq!(expire(&mut w, 105), vec![1]);
        assert_eq!(expire(&mut w, 103 + SLOTS as u32 - 1), Vec::<u32>::new());
        assert_eq!(expire(&mut w, 103 + SLOTS as u32), vec![3]);
    }

    #[test]
    fn the_budget_bounds_each_visit_and_the_rest_waits() {
        let mut w = Wheel::new(100, 0);
        for e in 0..100 {
            w.link(e, 1);
        }
        let mut freed = 0;
        while freed < 100 {
            let n = w.advance(1, 64, |_| None);
            assert!(n <= 64 && n > 0);
            freed += n;
        }
        assert_eq!(w.advance(1, 64, |_| None), 0);
    }

    #[test]
    fn unlinked_entries_are_not_visited() {
        let mut w = Wheel::new(4, 0);
        w.link(0, 2);
        w.link(1, 2);
        w.unlink(0);
        let mut seen = Vec::new();
        w.advance(5, 10, |e| {
            seen.push(e);
            None
        });
        assert_eq!(seen, vec![1]);
    }
}
