//! Per-worker counters and how the control thread reads them.
//!
//! A worker counts in plain integers it alone owns. Now and then (every few dozen bursts,
//! when idle, and when stopping) it copies them into its own [`StatsCell`], one relaxed store
//! per counter into a cache line no other core writes; the control thread sums the cells. No
//! atomic read-modify-write and no lock is ever shared between cores.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::counters::PipelineCounters;

/// Traffic through one port, as seen by one worker (one queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl PortCounters {
    const VALUES: usize = 4;

    pub fn add(&mut self, other: &Self) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
    }
}

/// Everything one worker counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Indexed like the appliance's ports.
    pub ports: Vec<PortCounters>,
    pub pipeline: PipelineCounters,
    /// Rx bursts that returned packets.
    pub bursts: u64,
    /// Times the worker slept because every queue was idle.
    pub idle_sleeps: u64,
    /// Time-stamp counter cycles spent in loop rounds that received packets, and in rounds
    /// that found every queue empty (sleeps included): utilisation is busy / (busy + idle).
    pub busy_cycles: u64,
    pub idle_cycles: u64,
}

impl WorkerStats {
    pub fn new(ports: usize) -> Self {
        Self {
            ports: vec![PortCounters::default(); ports],
            ..Self::default()
        }
    }

    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_packets).sum()
    }

    pub fn tx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }

    pub fn add(&mut self, other: &Self) {
        if self.ports.len() < other.ports.len() {
            self.ports
                .resize(other.ports.len(), PortCounters::default());
        }
        for (a, b) in self.ports.iter_mut().zip(&other.ports) {
            a.add(b);
        }
        self.pipeline.add(&other.pipeline);
        self.bursts += other.bursts;
        self.idle_sleeps += other.idle_sleeps;
        self.busy_cycles += other.busy_cycles;
        self.idle_cycles += other.idle_cycles;
    }

    fn value_count(ports: usize) -> usize {
        ports * PortCounters::VALUES + PipelineCounters::VALUES + 4
    }

    fn to_values(&self, out: &mut Vec<u64>) {
        for p in &self.ports {
            out.extend_from_slice(&[p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes]);
        }
        self.pipeline.to_values(out);
        out.extend_from_slice(&[
            self.bursts,
            self.idle_sleeps,
            self.busy_cycles,
            self.idle_cycles,
        ]);
    }

    fn from_values(ports: usize, values: &[u64]) -> Self {
        let (port_values, rest) = values.split_at(ports * PortCounters::VALUES);
        let ports = port_values
            .chunks_exact(PortCounters::VALUES)
            .map(|c| PortCounters {
                rx_packets: c[0],
                rx_bytes: c[1],
                tx_packets: c[2],
                tx_bytes: c[3],
            })
            .collect();
        let (pipeline, rest) = rest.split_at(PipelineCounters::VALUES);
        Self {
            ports,
            pipeline: PipelineCounters::from_values(pipeline),
            bursts: rest[0],
            idle_sleeps: rest[1],
            busy_cycles: rest[2],
            idle_cycles: rest[3],
        }
    }
}

/// Where one worker publishes its counters for the control thread.
#[derive(Debug)]
pub struct StatsCell {
    ports: usize,
    values: crossbeam_utils::CachePadded<Box<[AtomicU64]>>,
}

impl StatsCell {
    pub fn new(ports: usize) -> Self {
        let values = (0..WorkerStats::value_count(ports))
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            ports,
            values: crossbeam_utils::CachePadded::new(values),
        }
    }

    /// Called by the owning worker only. `scratch` avoids an allocation per publication.
    pub fn publish(&self, stats: &WorkerStats, scratch: &mut Vec<u64>) {
        scratch.clear();
        stats.to_values(scratch);
        for (cell, &v) in self.values.iter().zip(scratch.iter()) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// A copy of what the worker last published.
    pub fn snapshot(&self) -> WorkerStats {
        let values: Vec<u64> = self
            .values
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        WorkerStats::from_values(self.ports, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DropReason;

    #[test]
    fn published_counters_come_back_and_sum() {
        let mut s = WorkerStats::new(2);
        s.ports[1] = PortCounters {
            rx_packets: 5,
            rx_bytes: 320,
            tx_packets: 4,
            tx_bytes: 300,
        };
        s.pipeline.drop(DropReason::BadInner);
        s.bursts = 3;
        s.idle_sleeps = 1;
        s.busy_cycles = 7;
        s.idle_cycles = 9;
        let cell = StatsCell::new(2);
        let mut scratch = Vec::new();
        cell.publish(&s, &mut scratch);
        assert_eq!(cell.snapshot(), s);
        let mut total = WorkerStats::new(2);
        total.add(&s);
        total.add(&s);
        assert_eq!(
            (
                total.rx_packets(),
                total.tx_packets(),
                total.pipeline.total_drops()
            ),
            (10, 8, 2)
        );
    }
}
