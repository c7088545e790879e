//! Statistics as operators of DPDK appliances expect them: testpmd-style blocks on stdout
//! (periodic and final), and every counter as JSON.

use std::time::{Duration, Instant};

use dataplane::{DropReason, PortCounters};
use topology::Tier;

use crate::totals::Totals;

fn nonzero_drops(t: &Totals) -> String {
    let p = &t.sum.pipeline;
    let parts: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| p.drops[r.index()] > 0)
        .map(|r| format!("{}={}", r.as_str(), p.drops[r.index()]))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" ")
    }
}

fn decisions(t: &Totals) -> String {
    let p = &t.sum.pipeline;
    Tier::ALL
        .iter()
        .map(|&tier| {
            format!(
                "{}={}",
                tier.as_str(),
                p.tiers[dataplane::counters::tier_index(tier)]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Periodic statistics, with rates since the previous block.
pub struct Printer {
    interval: Option<Duration>,
    last: Option<(Instant, Vec<PortCounters>)>,
}

impl Printer {
    pub fn new(interval_seconds: u32) -> Self {
        Self {
            interval: (interval_seconds > 0)
                .then(|| Duration::from_secs(u64::from(interval_seconds))),
            last: None,
        }
    }

    /// Prints a block when the interval has passed; `gather` is only called then.
    pub fn tick(&mut self, gather: &dyn Fn() -> Totals) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let Some((then, before)) = &self.last else {
            self.last = Some((now, gather().ports.iter().map(|p| p.total).collect()));
            return;
        };
        if now.duration_since(*then) < interval {
            return;
        }
        let t = gather();
        let seconds = now.duration_since(*then).as_secs_f64();
        let mut out = String::new();
        for (i, port) in t.ports.iter().enumerate() {
            let prev = before.get(i).copied().unwrap_or_default();
            let rate = |now: u64, then: u64| ((now.saturating_sub(then)) as f64 / seconds) as u64;
            out += &format!(
                "\n  ######################## statistics for port {} ({}) ########################\n\
                 \x20 RX-packets: {:<14} RX-bytes:  {:<14} RX-missed: {}\n\
                 \x20 TX-packets: {:<14} TX-bytes:  {:<14} RX-nombuf: {}\n\
                 \x20 Throughput (since last show)\n\
                 \x20 Rx-pps: {:>14}          Rx-bps: {:>14}\n\
                 \x20 Tx-pps: {:>14}          Tx-bps: {:>14}\n",
                i,
                port.name,
                port.total.rx_packets,
                port.total.rx_bytes,
                port.device.rx_missed,
                port.total.tx_packets,
                port.total.tx_bytes,
                port.device.rx_nombuf,
                rate(port.total.rx_packets, prev.rx_packets),
                rate(port.total.rx_bytes, prev.rx_bytes) * 8,
                rate(port.total.tx_packets, prev.tx_packets),
                rate(port.total.tx_bytes, prev.tx_bytes) * 8,
            );
        }
        out += &format!(
            "  Decisions: {}\n  Drops: {}\n  Passed: {}  Decapsulated: {}  Replies to peers: {}  to host: {}  ICMP frag-needed: {}\n  Topology generation {} (reloads ok {}, failed {}, refused {}), mbufs in use {}/{}\n  ############################################################################\n",
            decisions(&t),
            nonzero_drops(&t),
            t.sum.pipeline.passed,
            t.sum.pipeline.decapsulated,
            t.sum.pipeline.replies_to_peer,
            t.sum.pipeline.replies_to_host,
            t.sum.pipeline.icmp_frag_needed,
            t.generation,
            t.reloads_ok,
            t.reloads_error,
            t.reloads_refused,
            t.mbufs_in_use,
            t.mbufs_capacity,
        );
        print!("{out}");
        self.last = Some((now, t.ports.iter().map(|p| p.total).collect()));
    }
}

/// The summary printed on every clean stop.
pub fn print_final(t: &Totals, elapsed: Duration) {
    let mut out = String::new();
    for (i, port) in t.ports.iter().enumerate() {
        out += &format!(
            "\n  ---------------------- Forward statistics for port {} ({})  ----------------------\n\
             \x20 RX-packets: {:<14} RX-bytes: {:<14}\n\
             \x20 TX-packets: {:<14} TX-bytes: {:<14}\n",
            i, port.name, port.total.rx_packets, port.total.rx_bytes, port.total.tx_packets, port.total.tx_bytes
        );
        for (q, c) in port.queues.iter().enumerate() {
            out += &format!("    queue {q}: RX {} TX {}\n", c.rx_packets, c.tx_packets);
        }
    }
    let seconds = elapsed.as_secs_f64().max(1e-9);
    out += &format!(
        "\n  +++++++++++++++ Accumulated forward statistics for all ports +++++++++++++++\n\
         \x20 RX-packets: {:<14} TX-packets: {:<14} Dropped: {}\n\
         \x20 Decisions: {}\n\
         \x20 Drops: {}\n\
         \x20 Passed: {}  Decapsulated: {}  Replies to peers: {}  to host: {}  ICMP frag-needed: {}\n\
         \x20 Accounting: received {} = transmitted {} + dropped {}: {}\n\
         \x20 Average: {:.3} Mpps received over {:.1} s\n\
         \x20 ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n",
        t.received(),
        t.transmitted(),
        t.dropped(),
        decisions(t),
        nonzero_drops(t),
        t.sum.pipeline.passed,
        t.sum.pipeline.decapsulated,
        t.sum.pipeline.replies_to_peer,
        t.sum.pipeline.replies_to_host,
        t.sum.pipeline.icmp_frag_needed,
        t.received(),
        t.transmitted(),
        t.dropped(),
        if t.received() == t.transmitted() + t.dropped() { "balanced" } else { "NOT BALANCED" },
        t.received() as f64 / seconds / 1e6,
        seconds,
    );
    print!("{out}");
}
