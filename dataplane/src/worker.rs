//! The poll-mode worker: the thin loop between DPDK queues and the pipeline.
//!
//! Per round: take the newest table (the quiescent point), then for each port receive a
//! burst, run the pipeline over it, show it to the hook if there is one, sort the packets by
//! output port (unless the whole burst goes to one) and send each group in one burst, freeing
//! (and counting) whatever the driver refuses. No lock, allocation, system call or shared
//! atomic write per packet; the only system call is the sleep of an idle worker.

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

/// What a worker calls once per received burst, after the pipeline has rewritten its packets
/// and given their verdicts, before any is sent: the place for a capture tap or a trace. It
/// sees each packet as it will leave and where it goes, and may not keep them. A worker
/// without one pays a branch per burst.
pub trait BurstHook: Send {
    /// `port` is the index of the port the burst was received on.
    fn burst(&mut self, port: usize, packets: &[Mbuf], verdicts: &[Verdict]);
}

/// The clock and cadence of a worker's rounds: when to publish its counters and when an idle
/// worker sleeps.
struct Cadence {
    tsc_hz: u64,
    /// An idle worker publishes at least this often, so that its idle cycles keep growing
    /// and a worker whose counters stop is known to be stalled.
    publish_cycles: u64,
    round_start: u64,
    last_publish: u64,
    idle_rounds: u32,
    /// Rounds that received something since the last publication.
    since_publish: u64,
}

/// One poll-mode worker: its queue pairs, its pipeline and its counters. Its steps per round
/// (one `Worker::round`): take the newest table, expire some flow state, and for each port
/// receive, process, check the passes' MTU, show the burst to the hook, sort by output port
/// and send; then publish the counters or sleep.
pub struct Worker<'a> {
    ports: Vec<WorkerPort>,
    uplink: usize,
    host: usize,
    uplink_mtu: u16,
    burst: usize,
    idle_sleep: Duration,
    pipeline: Pipeline,
    mappings: &'a MappingTable,
    stats_cell: &'a StatsCell,
    stats: WorkerStats,
    /// The buffer [`StatsCell::publish`] flattens the counters into.
    publish_scratch: Vec<u64>,
    rx: MbufBurst,
    /// Whether every packet of `rx` is in one segment.
    rx_contiguous: bool,
    /// Per port: what this round sends out of it.
    out: Vec<MbufBurst>,
    verdicts: [Verdict; BURST_CAPACITY],
    hook: Option<Box<dyn BurstHook + 'a>>,
    cadence: Cadence,
}

impl<'a> Worker<'a> {
    pub fn new(
        config: WorkerConfig,
        pipeline: Pipeline,
        mappings: &'a MappingTable,
        stats_cell: &'a StatsCell,
    ) -> Self {
        let now = dpdk_sys::tsc();
        let ports = config.ports.len();
        Self {
            uplink: config.uplink,
            host: config.host,
            uplink_mtu: config.uplink_mtu,
            burst: config.burst.clamp(1, crate::pipeline::CHUNK),
            idle_sleep: config.idle_sleep,
            pipeline,
            mappings,
            stats_cell,
            stats: WorkerStats::new(ports),
            publish_scratch: Vec::new(),
            rx: MbufBurst::new(),
            rx_contiguous: true,
            out: (0..ports).map(|_| MbufBurst::new()).collect(),
            verdicts: [Verdict::Pass; BURST_CAPACITY],
            hook: None,
            cadence: Cadence {
                tsc_hz: dpdk_sys::tsc_hz().max(1),
                publish_cycles: dpdk_sys::tsc_hz() / IDLE_PUBLISHES_PER_SECOND,
                round_start: now,
                last_publish: now,
                idle_rounds: 0,
                since_publish: 0,
            },
            ports: config.ports,
        }
    }

    /// The worker, showing every burst it processes to `hook`.
    pub fn with_hook(mut self, hook: Box<dyn BurstHook + 'a>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs until `stop` is set, then publishes final counters. Every mbuf received is sent
    /// or freed before returning.
    pub fn run(mut self, tables: &Published<ForwardingTable>, stop: &AtomicBool) -> WorkerStats {
        let mut reader = tables.reader();
        while !stop.load(Ordering::Relaxed) {
            // The quiescent point: no reference into the previous table outlives this.
            let received_any = self.round(reader.refresh());
            self.end_round(received_any);
        }
        self.publish();
        self.stats
    }

    /// One poll of every port; says whether any received something.
    fn round(&mut self, table: &ForwardingTable) -> bool {
        let ctx = Context {
            table,
            mappings: self.mappings,
            now: (self.cadence.round_start / self.cadence.tsc_hz) as u32,
        };
        self.pipeline.expire(&ctx, EXPIRE_PER_ROUND);
        let mut received_any = false;
        for p in 0..self.ports.len() {
            let n = self.receive(p);
            if n == 0 {
                continue;
            }
            received_any = true;
            self.process(&ctx, n);
            if self.ports[p].pass_to == self.uplink {
                self.check_passes_fit_the_uplink(n);
            }
            if let Some(hook) = &mut self.hook {
                hook.burst(p, self.rx.as_slice(), &self.verdicts[..n]);
            }
            self.sort_by_output_port(p, n);
            self.flush_all();
        }
        received_any
    }

    /// Receives a burst from port `p` into `rx` and counts it; returns its size.
    fn receive(&mut self, p: usize) -> usize {
        let n = self.ports[p].rx.rx_burst(&mut self.rx, self.burst);
        if n == 0 {
            return 0;
        }
        self.stats.bursts += 1;
        let (mut bytes, mut contiguous) = (0u64, true);
        for m in self.rx.as_slice() {
            bytes += u64::from(m.pkt_len());
            contiguous &= m.is_contiguous();
        }
        self.rx_contiguous = contiguous;
        let port_stats = &mut self.stats.ports[p];
        port_stats.rx_packets += n as u64;
        port_stats.rx_bytes += bytes;
        n
    }

    /// Runs the pipeline over the received burst: whole when every packet is one segment
    /// (always, unless the port was configured for scattered receive), else packet by packet,
    /// dropping those in several segments.
    fn process(&mut self, ctx: &Context<'_>, n: usize) {
        let verdicts = &mut self.verdicts[..n];
        // The benchmark-only build (feature `bench-floor`) measures this loop and the driver
        // without the pipeline: what no pipeline in this worker can beat.
        if cfg!(feature = "bench-floor") {
            verdicts.fill(Verdict::Pass);
        } else if self.rx_contiguous {
            self.pipeline
                .process_burst(ctx, self.rx.as_mut_slice(), verdicts);
        } else {
            for (m, v) in self.rx.as_mut_slice().iter_mut().zip(verdicts.iter_mut()) {
                *v = if m.is_contiguous() {
                    self.pipeline.process(ctx, m)
                } else {
                    self.pipeline.counters.drop(DropReason::MultiSegment);
                    Verdict::Drop(DropReason::MultiSegment)
                };
            }
        }
    }

    /// The MTU rule for what is passed out of the uplink (see [`too_big_for`]).
    fn check_passes_fit_the_uplink(&mut self, n: usize) {
        let counters = &mut self.pipeline.counters;
        for (m, v) in self.rx.as_slice().iter().zip(&mut self.verdicts[..n]) {
            if *v == Verdict::Pass && too_big_for(m.data(), self.uplink_mtu) {
                *v = Verdict::Drop(DropReason::TooBig);
                // Counted as passed by the pipeline: now a drop instead.
                counters.passed -= 1;
                counters.drop(DropReason::TooBig);
            }
        }
    }

    /// Moves the burst received on port `p` to the output queues its verdicts name; the
    /// dropped packets are freed (the pipeline counted them).
    fn sort_by_output_port(&mut self, p: usize, n: usize) {
        let (uplink, host, pass_to) = (self.uplink, self.host, self.ports[p].pass_to);
        let port_of = |verdict: &Verdict| match verdict {
            Verdict::Uplink => Some(uplink),
            Verdict::Host => Some(host),
            Verdict::Pass => Some(pass_to),
            Verdict::Drop(_) => None,
        };
        let verdicts = &self.verdicts[..n];
        // Usually every packet of a burst gets the same verdict: then the burst is sent as
        // received, without sorting it packet by packet.
        let first = verdicts[0];
        let single_port = port_of(&first)
            .filter(|&target| self.out[target].is_empty() && verdicts.iter().all(|v| *v == first));
        if let Some(target) = single_port {
            std::mem::swap(&mut self.rx, &mut self.out[target]);
            return;
        }
        for (m, v) in self.rx.drain().zip(verdicts) {
            let Some(target) = port_of(v) else {
                continue;
            };
            if let Err(m) = self.out[target].push(m) {
                drop(m);
                self.pipeline.counters.drop(DropReason::TxFull);
            }
        }
    }

    fn flush_all(&mut self) {
        for (q, port) in self.ports.iter_mut().enumerate() {
            flush(
                &mut port.tx,
                &mut self.out[q],
                &mut self.stats.ports[q],
                &mut self.pipeline,
            );
        }
    }

    /// Publishes the counters every [`PUBLISH_EVERY`] busy rounds, or as an idle worker
    /// starts and goes on sleeping; sleeps when idle; counts the round's cycles as busy or
    /// idle.
    fn end_round(&mut self, received_any: bool) {
        let c = &mut self.cadence;
        let publish = if received_any {
            c.idle_rounds = 0;
            c.since_publish += 1;
            c.since_publish >= PUBLISH_EVERY
        } else {
            c.idle_rounds = c.idle_rounds.saturating_add(1);
            c.idle_rounds >= IDLE_ROUNDS_BEFORE_SLEEP
                && (c.since_publish > 0
                    || c.idle_rounds == IDLE_ROUNDS_BEFORE_SLEEP
                    || c.round_start.wrapping_sub(c.last_publish) >= c.publish_cycles)
        };
        if publish {
            c.since_publish = 0;
            c.last_publish = c.round_start;
            self.publish();
        }
        if !received_any
            && self.cadence.idle_rounds >= IDLE_ROUNDS_BEFORE_SLEEP
            && !self.idle_sleep.is_zero()
        {
            self.stats.idle_sleeps += 1;
            std::thread::sleep(self.idle_sleep);
        }
        // One counter read a round: the round's cycles, its sleep included, are busy if it
        // received packets and idle if not.
        let round_end = dpdk_sys::tsc();
        let spent = round_end.wrapping_sub(self.cadence.round_start);
        self.cadence.round_start = round_end;
        if received_any {
            self.stats.busy_cycles += spent;
        } else {
            self.stats.idle_cycles += spent;
        }
    }

    fn publish(&mut self) {
        self.stats.pipeline = self.pipeline.counters;
        self.stats_cell
            .publish(&self.stats, &mut self.publish_scratch);
    }
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
