//! Publishing a new decision table to running workers without stopping them.
//!
//! The control thread builds and validates a table off the fast path, then publishes it with
//! one pointer swap (and a generation bump). Each worker checks the generation once per poll
//! round, a plain load of a rarely written cache line, and takes the new table only when it
//! changed; between rounds it holds no reference it could be confused by, which is its
//! quiescent point. The control thread keeps every replaced table in a retired list and frees
//! it only once no worker holds it any more (its reference count is back to one), so a table
//! is never freed on a worker's core nor while in use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The current table, shared by the control thread and every worker.
#[derive(Debug)]
pub struct Published<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
}

impl<T> Published<T> {
    pub fn new(first: Arc<T>) -> Self {
        Self {
            current: ArcSwap::new(first),
            generation: AtomicU64::new(1),
        }
    }

    /// Makes `next` current; returns the table it replaced (to retire, not drop).
    pub fn publish(&self, next: Arc<T>) -> Arc<T> {
        let old = self.current.swap(next);
        self.generation.fetch_add(1, Ordering::Release);
        old
    }

    /// Number of tables published so far (the first one is generation 1).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A reader for one worker.
    pub fn reader(&self) -> Reader<'_, T> {
        let seen = self.generation();
        Reader {
            source: self,
            seen,
            current: self.current(),
        }
    }
}

/// One worker's view: the table it uses until the next quiescent point.
#[derive(Debug)]
pub struct Reader<'a, T> {
    source: &'a Published<T>,
    seen: u64,
    current: Arc<T>,
}

impl<T> Reader<'_, T> {
    /// Call between bursts: takes the newest table if one was published. No lock, no shared
    /// write unless the table changed.
    #[inline]
    pub fn refresh(&mut self) -> &T {
        let generation = self.source.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.current = self.source.current.load_full();
            self.seen = generation;
        }
        &self.current
    }

    pub fn get(&self) -> &T {
        &self.current
    }
}

/// Tables replaced but possibly still used by a worker.
#[derive(Debug)]
pub struct Retired<T> {
    tables: Vec<Arc<T>>,
}

impl<T> Default for Retired<T> {
    fn default() -> Self {
        Self { tables: Vec::new() }
    }
}

impl<T> Retired<T> {
    pub fn push(&mut self, table: Arc<T>) {
        self.tables.push(table);
    }

    /// Frees (here, on the calling thread) every retired table no worker holds any more.
    /// Returns how many are still held.
    pub fn collect(&mut self) -> usize {
        self.tables.retain(|t| Arc::strong_count(t) > 1);
        self.tables.len()
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_switch_at_their_quiescent_point_and_old_tables_are_freed_after() {
        let published = Published::new(Arc::new(1));
        let mut retired = Retired::default();
        let mut worker = published.reader();
        assert_eq!(*worker.refresh(), 1);

        retired.push(published.publish(Arc::new(2)));
        assert_eq!(published.generation(), 2);
        assert_eq!(
            *worker.get(),
            1,
            "a worker keeps its table until it refreshes"
        );
        assert_eq!(retired.collect(), 1, "still held by the worker: not freed");
        assert_eq!(*worker.refresh(), 2);
        assert_eq!(retired.collect(), 0, "freed once no worker holds it");

        // Several publications while a worker is busy: it skips straight to the newest.
        retired.push(published.publish(Arc::new(3)));
        retired.push(published.publish(Arc::new(4)));
        assert_eq!(
            retired.collect(),
            1,
            "table 2 is still the worker's; table 3 was never taken"
        );
        assert_eq!(*worker.refresh(), 4);
        assert_eq!(retired.collect(), 0);
    }

    #[test]
    fn concurrent_readers_always_see_a_whole_table() {
        let published = Arc::new(Published::new(Arc::new(vec![0u64; 64])));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Arc::new(std::sync::Barrier::new(3));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (published, stop, started) = (published.clone(), stop.clone(), started.clone());
                std::thread::spawn(move || {
                    let mut reader = published.reader();
                    started.wait();
                    let mut rounds = 0u64;
                    loop {
                        let table = reader.refresh();
                        assert!(
                            table.iter().all(|&v| v == table[0]),
                            "a table is never seen half-built"
                        );
                        rounds += 1;
                        if stop.load(Ordering::Relaxed) {
                            return rounds;
                        }
                    }
                })
            })
            .collect();
        started.wait();
        let mut retired = Retired::default();
        for i in 1..=500u64 {
            retired.push(published.publish(Arc::new(vec![i; 64])));
            retired.collect();
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            assert!(w.join().unwrap() > 0);
        }
        assert_eq!(
            retired.collect(),
            0,
            "every replaced table is freed once the workers are gone"
        );
    }
}
