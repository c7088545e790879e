//! Statistics as operators of DPDK appliances expect them: testpmd-style blocks on stdout
//! (periodic and final), and every counter as JSON.

use std::time::{Duration, Instant};

use dataplane::{DropReason, PortCounters, Published, StatsCell, WorkerStats};
use dpdk_sys::{LinkStatus, Mempool, Port, PortStats};
use serde_json::{json, Value};
use topology::{ForwardingTable, Tier};

use crate::metrics::Shared;

#[derive(Debug, Clone)]
pub struct PortTotals {
    pub name: String,
    pub device_args: String,
    pub mac: [u8; 6],
    /// Per queue (= per worker).
    pub queues: Vec<PortCounters>,
    pub total: PortCounters,
    /// The device's own counters.
    pub device: PortStats,
    pub link: LinkStatus,
}

/// Everything counted, summed over workers, at one moment.
#[derive(Debug, Clone)]
pub struct Totals {
    pub ports: Vec<PortTotals>,
    pub workers: Vec<WorkerStats>,
    pub sum: WorkerStats,
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_error: u64,
    pub reloads_refused: u64,
    pub last_reload_success_unix_seconds: f64,
    pub local_addresses: u64,
    pub mbufs_in_use: u32,
    pub mbufs_capacity: u32,
    pub retired_pending: u64,
    pub table: TableFigures,
    /// Cycles a second of the workers' busy and idle cycles.
    pub tsc_hz: u64,
}

/// The size of the table in use and what identifies it.
#[derive(Debug, Clone, Default)]
pub struct TableFigures {
    pub ipv4_egress_addresses: u64,
    pub ipv4_egress_prefixes: u64,
    pub ipv6_egress_prefixes: u64,
    pub pools: u64,
    pub servers: u64,
    pub server: String,
    pub datacenter: String,
    pub location: String,
    pub digest: String,
}

impl TableFigures {
    fn of(table: &ForwardingTable, digest: String) -> Self {
        let me = table.server(table.me());
        Self {
            ipv4_egress_addresses: table.egress_v4_addresses(),
            ipv4_egress_prefixes: table.egress_v4().len() as u64,
            ipv6_egress_prefixes: table.egress_v6().len() as u64,
            pools: table.routes().len() as u64,
            servers: table.server_count() as u64,
            server: me.name.clone(),
            datacenter: me.datacenter.clone(),
            location: me.location.clone(),
            digest,
        }
    }
}

impl Totals {
    pub fn gather(
        shared: &Shared,
        cells: &[StatsCell],
        tables: &Published<ForwardingTable>,
        ports: &[Port],
        pool: &Mempool,
    ) -> Self {
        let workers: Vec<WorkerStats> = cells.iter().map(StatsCell::snapshot).collect();
        let mut sum = WorkerStats::new(shared.port_names.len());
        for w in &workers {
            sum.add(w);
        }
        let ports = shared
            .port_names
            .iter()
            .enumerate()
            .map(|(i, name)| PortTotals {
                name: name.clone(),
                device_args: shared.port_devices[i].clone(),
                mac: shared.port_macs[i],
                queues: workers.iter().map(|w| w.ports[i]).collect(),
                total: sum.ports[i],
                device: ports.get(i).map(Port::stats).unwrap_or_default(),
                link: ports.get(i).map(Port::link).unwrap_or_default(),
            })
            .collect();
        Self {
            ports,
            workers,
            sum,
            generation: tables.generation(),
            reloads_ok: shared.reloads_ok(),
            reloads_error: shared.reloads_error(),
            reloads_refused: shared.reloads_refused(),
            last_reload_success_unix_seconds: shared.last_success_unix_seconds(),
            local_addresses: shared.local_addresses(),
            mbufs_in_use: pool.in_use(),
            mbufs_capacity: shared.mbufs_capacity,
            retired_pending: shared.retired_pending(),
            table: TableFigures::of(&tables.current(), shared.topology_digest()),
            tsc_hz: dpdk_sys::tsc_hz(),
        }
    }

    pub fn received(&self) -> u64 {
        self.sum.rx_packets()
    }

    pub fn transmitted(&self) -> u64 {
        self.sum.tx_packets()
    }

    pub fn dropped(&self) -> u64 {
        self.sum.pipeline.total_drops()
    }

    pub fn to_json(&self, elapsed: Duration) -> Value {
        let p = &self.sum.pipeline;
        let port_json = |pt: &PortTotals| {
            json!({
                "name": pt.name,
                "device": pt.device_args,
                "mac": pt.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
                "rx_packets": pt.total.rx_packets,
                "rx_bytes": pt.total.rx_bytes,
                "tx_packets": pt.total.tx_packets,
                "tx_bytes": pt.total.tx_bytes,
                "queues": pt.queues.iter().map(|q| json!({
                    "rx_packets": q.rx_packets, "rx_bytes": q.rx_bytes, "tx_packets": q.tx_packets, "tx_bytes": q.tx_bytes,
                })).collect::<Vec<_>>(),
                "device_stats": {
                    "rx_packets": pt.device.rx_packets, "tx_packets": pt.device.tx_packets,
                    "rx_bytes": pt.device.rx_bytes, "tx_bytes": pt.device.tx_bytes,
                    "rx_missed": pt.device.rx_missed, "rx_errors": pt.device.rx_errors,
                    "tx_errors": pt.device.tx_errors, "rx_nombuf": pt.device.rx_nombuf,
                },
                "link": {"up": pt.link.up, "speed_mbps": pt.link.speed_mbps},
            })
        };
        let mut json = json!({
            "duration_seconds": elapsed.as_secs_f64(),
            "ports": self.ports.iter().map(port_json).collect::<Vec<_>>(),
            "decisions": Tier::ALL.iter().map(|&t| (t.as_str().to_owned(), json!(p.tiers[dataplane::counters::tier_index(t)]))).collect::<serde_json::Map<_, _>>(),
            "drops": DropReason::ALL.iter().map(|&r| (r.as_str().to_owned(), json!(p.drops[r.index()]))).collect::<serde_json::Map<_, _>>(),
            "workers": self.workers.iter().enumerate().map(|(i, w)| json!({
                "worker": i, "rx_packets": w.rx_packets(), "tx_packets": w.tx_packets(),
                "dropped": w.pipeline.total_drops(), "bursts": w.bursts, "idle_sleeps": w.idle_sleeps,
                "busy_cycles": w.busy_cycles, "idle_cycles": w.idle_cycles,
            })).collect::<Vec<_>>(),
            "topology": {
                "generation": self.generation,
                "reloads_ok": self.reloads_ok,
                "reloads_error": self.reloads_error,
                "reloads_refused": self.reloads_refused,
                "last_reload_success_unix_seconds": self.last_reload_success_unix_seconds,
                "egress_addresses_local": self.local_addresses,
                "tables_retired_pending": self.retired_pending,
                "ipv4_egress_addresses": self.table.ipv4_egress_addresses,
                "ipv4_egress_prefixes": self.table.ipv4_egress_prefixes,
                "ipv6_egress_prefixes": self.table.ipv6_egress_prefixes,
                "pools": self.table.pools,
                "servers": self.table.servers,
                "sha256": self.table.digest,
            },
            "mbufs": {"in_use": self.mbufs_in_use, "capacity": self.mbufs_capacity},
            "tsc_hz": self.tsc_hz,
            "accounting": {
                "received": self.received(),
                "transmitted": self.transmitted(),
                "dropped": self.dropped(),
                "balanced": self.received() == self.transmitted() + self.dropped(),
            },
        });
        // The pipeline's plain counters, under their field names.
        for (info, value) in p.named() {
            json[info.field] = json!(value);
        }
        json
    }
}

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
