//! The poll-mode worker: the thin loop between DPDK queues and the pipeline.
//!
//! Per round: take the newest table (the quiescent point), then for each port receive a
//! burst, run the pipeline over it, sort the packets by output port (unless the whole burst
//! goes to one) and send each group in one burst, freeing (and counting) whatever the driver
//! refuses. No lock, allocation, system call
//! or shared atomic write per packet; the only system call is the sleep of an idle worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dpdk_sys::{Mbuf, MbufBurst, RxQueue, TxQueue, BURST_CAPACITY};
use topology::ForwardingTable;

use crate::buf::PacketBuf;
use crate::counters::DropReason;
use crate::mappings::MappingTable;
use crate::pipeline::{Context, Pipeline, Verdict};
use crate::publish::Published;
use crate::stats::{StatsCell, WorkerStats};

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> bool {
        Mbuf::prepend(self, len).is_some()
    }

    #[inline]
    fn adj(&mut self, len: usize) -> bool {
        Mbuf::adj(self, len).is_some()
    }

    #[inline]
    fn trim(&mut self, len: usize) -> bool {
        Mbuf::trim(self, len).is_some()
    }
}

/// One port as one worker sees it: its queue pair, and where passed packets go.
#[derive(Debug)]
pub struct WorkerPort {
    pub rx: RxQueue,
    pub tx: TxQueue,
    /// Index of the port that `Pass` packets received here leave from: the port of the other
    /// role (this port itself when it holds both roles).
    pub pass_to: usize,
}

#[derive(Debug)]
pub struct WorkerConfig {
    /// Ports in the appliance's order.
    pub ports: Vec<WorkerPort>,
    pub uplink: usize,
    pub host: usize,
    /// IP MTU of the uplink: the largest untagged IP packet a pass may send out of it.
    pub uplink_mtu: u16,
    /// Packets per rx burst (at most 32).
    pub burst: usize,
    /// How long to sleep when every queue was empty for a while; zero busy-polls.
    pub idle_sleep: Duration,
}

/// Empty poll rounds before an idle worker starts sleeping: under load a round is never
/// empty for long, so the sleep costs nothing then.
const IDLE_ROUNDS_BEFORE_SLEEP: u32 = 256;
/// Bursts between two publications of the counters.
const PUBLISH_EVERY: u64 = 64;
/// How often an idle worker publishes its counters, at least.
const IDLE_PUBLISHES_PER_SECOND: u64 = 10;
/// Mappings a worker visits for expiry per poll round, at most: the work is bounded per
/// round, and a backlog drains over the following rounds.
const EXPIRE_PER_ROUND: usize = 64;

/// The workers' clock in seconds, the one mappings are created and expired by: the TSC, which
/// every core reads alike.
pub fn clock_seconds() -> u32 {
    (dpdk_sys::tsc() / dpdk_sys::tsc_hz().max(1)) as u32
}

/// Runs until `stop` is set, then publishes final counters. Every mbuf received is sent or
/// freed before returning.
pub fn run(
    config: WorkerConfig,
    mut pipeline: Pipeline,
    tables: &Published<ForwardingTable>,
    mappings: &MappingTable,
    stats_cell: &StatsCell,
    stop: &AtomicBool,
) -> WorkerStats {
    let mut ports = config.ports;
    let mut stats = WorkerStats::new(ports.len());
    let mut scratch = Vec::new();
    let mut reader = tables.reader();
    let mut rx = MbufBurst::new();
    let mut out: Vec<MbufBurst> = (0..ports.len()).map(|_| MbufBurst::new()).collect();
    let mut verdicts = [Verdict::Pass; BURST_CAPACITY];
    let burst = config.burst.clamp(1, crate::pipeline::CHUNK);
    let mut idle_rounds = 0u32;
    let mut since_publish = 0u64;
    // An idle worker publishes at least this often, so that its idle cycles keep growing and
    // a worker whose counters stop is known to be stalled.
    let publish_cycles = dpdk_sys::tsc_hz() / IDLE_PUBLISHES_PER_SECOND;
    let mut round_start = dpdk_sys::tsc();
    let mut last_publish = round_start;
    let tsc_hz = dpdk_sys::tsc_hz().max(1);

    while !stop.load(Ordering::Relaxed) {
        let table = reader.refresh();
        let ctx = Context {
            table,
            mappings,
            now: (round_start / tsc_hz) as u32,
        };
        pipeline.expire(&ctx, EXPIRE_PER_ROUND);
        let mut received_any = false;
        for p in 0..ports.len() {
            let n = ports[p].rx.rx_burst(&mut rx, burst);
            if n == 0 {
                continue;
            }
            received_any = true;
            stats.bursts += 1;
            let port_stats = &mut stats.ports[p];
            let (mut rx_bytes, mut contiguous) = (0u64, true);
            for m in rx.as_slice() {
                rx_bytes += u64::from(m.pkt_len());
                contiguous &= m.is_contiguous();
            }
            port_stats.rx_packets += n as u64;
            port_stats.rx_bytes += rx_bytes;

            let verdicts = &mut verdicts[..n];
            // The benchmark-only build (feature `bench-floor`) measures this loop and the
            // driver without the pipeline: what no pipeline in this worker can beat.
            if cfg!(feature = "bench-floor") {
                verdicts.fill(Verdict::Pass);
            } else if contiguous {
                pipeline.process_burst(&ctx, rx.as_mut_slice(), verdicts);
            } else {
                for (m, v) in rx.as_mut_slice().iter_mut().zip(verdicts.iter_mut()) {
                    *v = if m.is_contiguous() {
                        pipeline.process(&ctx, m)
                    } else {
                        Verdict::Drop(DropReason::MultiSegment)
                    };
                    if *v == Verdict::Drop(DropReason::MultiSegment) {
                        pipeline.counters.drop(DropReason::MultiSegment);
                    }
                }
            }
            if ports[p].pass_to == config.uplink {
                for (m, v) in rx.as_slice().iter().zip(verdicts.iter_mut()) {
                    if *v == Verdict::Pass && too_big_for(m.data(), config.uplink_mtu) {
                        *v = Verdict::Drop(DropReason::TooBig);
                        // Counted as passed by the pipeline: now a drop instead.
                        pipeline.counters.passed -= 1;
                        pipeline.counters.drop(DropReason::TooBig);
                    }
                }
            }
            let port_of = |verdict: &Verdict| match verdict {
                Verdict::Uplink => Some(config.uplink),
                Verdict::Host => Some(config.host),
                Verdict::Pass => Some(ports[p].pass_to),
                Verdict::Drop(_) => None, // counted by the pipeline; freed here
            };
            // Usually every packet of a burst gets the same verdict: then the burst is sent as
            // received, without sorting it packet by packet.
            let first = verdicts[0];
            let single_port = port_of(&first)
                .filter(|&target| out[target].is_empty() && verdicts.iter().all(|v| *v == first));
            if let Some(target) = single_port {
                std::mem::swap(&mut rx, &mut out[target]);
            } else {
                for (m, v) in rx.drain().zip(verdicts.iter()) {
                    let Some(target) = port_of(v) else {
                        continue;
                    };
                    if let Err(m) = out[target].push(m) {
                        drop(m);
                        pipeline.counters.drop(DropReason::TxFull);
                    }
                }
            }
            for (q, port) in ports.iter_mut().enumerate() {
                flush(
                    &mut port.tx,
                    &mut out[q],
                    &mut stats.ports[q],
                    &mut pipeline,
                );
            }
        }
        if received_any {
            idle_rounds = 0;
            since_publish += 1;
            if since_publish >= PUBLISH_EVERY {
                since_publish = 0;
                last_publish = round_start;
                stats.pipeline = pipeline.counters;
                stats_cell.publish(&stats, &mut scratch);
            }
        } else {
            idle_rounds = idle_rounds.saturating_add(1);
            if idle_rounds >= IDLE_ROUNDS_BEFORE_SLEEP {
                if since_publish > 0
                    || idle_rounds == IDLE_ROUNDS_BEFORE_SLEEP
                    || round_start.wrapping_sub(last_publish) >= publish_cycles
                {
                    since_publish = 0;
                    last_publish = round_start;
                    stats.pipeline = pipeline.counters;
                    stats_cell.publish(&stats, &mut scratch);
                }
                if !config.idle_sleep.is_zero() {
                    stats.idle_sleeps += 1;
                    std::thread::sleep(config.idle_sleep);
                }
            }
        }
        // One counter read a round: the round's cycles, its sleep included, are busy if it
        // received packets and idle if not.
        let round_end = dpdk_sys::tsc();
        let spent = round_end.wrapping_sub(round_start);
        round_start = round_end;
        if received_any {
            stats.busy_cycles += spent;
        } else {
            stats.idle_cycles += spent;
        }
    }
    stats.pipeline = pipeline.counters;
    stats_cell.publish(&stats, &mut scratch);
    stats
}

/// Whether a frame passed unchanged out of the uplink is an untagged IP packet larger than
/// the uplink's MTU: the MTU rule holds for every packet the uplink sends (contract 5.4), and
/// only the worker knows where a pass goes. Tagged and non-IP frames are the network's own.
#[inline]
fn too_big_for(frame: &[u8], mtu: u16) -> bool {
    let ip = matches!(frame.get(12..14), Some([0x08, 0x00]) | Some([0x86, 0xdd]));
    ip && frame.len() > crate::wire::ethernet::HEADER_LEN + usize::from(mtu)
}

/// Sends a port's pending packets: what the driver refuses gets one more try, then is freed
/// and counted.
#[inline]
fn flush(
    tx: &mut TxQueue,
    pending: &mut MbufBurst,
    counters: &mut crate::stats::PortCounters,
    pipeline: &mut Pipeline,
) {
    if pending.is_empty() {
        return;
    }
    let bytes_before: u64 = pending
        .as_slice()
        .iter()
        .map(|m| u64::from(m.pkt_len()))
        .sum();
    let count_before = pending.len();
    tx.tx_burst(pending);
    if !pending.is_empty() {
        tx.tx_burst(pending);
    }
    let bytes_left: u64 = pending
        .as_slice()
        .iter()
        .map(|m| u64::from(m.pkt_len()))
        .sum();
    counters.tx_packets += (count_before - pending.len()) as u64;
    counters.tx_bytes += bytes_before - bytes_left;
    for _ in 0..pending.clear() {
        pipeline.counters.drop(DropReason::TxFull);
    }
}
