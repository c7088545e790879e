//! The appliance's figures at one moment, as every output reads them (the periodic and
//! final reports, `/metrics`, DPDK telemetry, the JSON stats): the workers' counters summed
//! ([`Totals`]) and the control thread's own ([`Shared`]). Here rather than beside one of
//! those outputs, so that none of them depends on another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataplane::{DropReason, PortCounters, Published, StatsCell, WorkerStats};
use dpdk_sys::{LinkStatus, Mempool, Port, PortStats};
use egressfwd::config::Config;
use serde_json::{json, Value};
use topology::{ForwardingTable, Tier};

/// Control-plane figures, written by the control thread, read by scrapes and reports.
#[derive(Debug)]
pub struct Shared {
    pub port_names: Vec<String>,
    pub port_devices: Vec<String>,
    pub port_macs: Vec<[u8; 6]>,
    pub mbufs_capacity: u32,
    reloads_ok: AtomicU64,
    reloads_error: AtomicU64,
    reloads_refused: AtomicU64,
    last_success_unix_ms: AtomicU64,
    local_addresses: AtomicU64,
    retired_pending: AtomicU64,
    /// SHA-256 of the published topology file, hex; written on start and reload only.
    topology_digest: std::sync::Mutex<String>,
    /// Ports started, a table published and workers polling: what `/healthz` answers.
    ready: std::sync::atomic::AtomicBool,
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Shared {
    pub fn new(
        config: &Config,
        port_macs: Vec<[u8; 6]>,
        local_addresses: u64,
        mbufs_capacity: u32,
    ) -> Self {
        Self {
            port_names: config.ports.iter().map(|p| p.name.clone()).collect(),
            port_devices: config.ports.iter().map(|p| p.device.clone()).collect(),
            port_macs,
            mbufs_capacity,
            reloads_ok: AtomicU64::new(0),
            reloads_error: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            // The table loaded at start counts as the first successful load.
            last_success_unix_ms: AtomicU64::new(now_unix_ms()),
            local_addresses: AtomicU64::new(local_addresses),
            retired_pending: AtomicU64::new(0),
            topology_digest: std::sync::Mutex::new(String::new()),
            ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Set once the workers poll started ports with a published table; cleared on stopping.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_topology_digest(&self, digest: String) {
        *self
            .topology_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = digest;
    }

    pub fn topology_digest(&self) -> String {
        self.topology_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn reload_succeeded(&self, local_addresses: u64) {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.last_success_unix_ms
            .store(now_unix_ms(), Ordering::Relaxed);
        self.local_addresses
            .store(local_addresses, Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.reloads_error.fetch_add(1, Ordering::Relaxed);
    }

    /// A reload that would have lost too much of the table (see `topology::change`).
    pub fn reload_refused(&self) {
        self.reloads_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reloads_refused(&self) -> u64 {
        self.reloads_refused.load(Ordering::Relaxed)
    }

    pub fn set_retired(&self, pending: usize) {
        self.retired_pending
            .store(pending as u64, Ordering::Relaxed);
    }

    pub fn reloads_ok(&self) -> u64 {
        self.reloads_ok.load(Ordering::Relaxed)
    }

    pub fn reloads_error(&self) -> u64 {
        self.reloads_error.load(Ordering::Relaxed)
    }

    pub fn last_success_unix_seconds(&self) -> f64 {
        self.last_success_unix_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn local_addresses(&self) -> u64 {
        self.local_addresses.load(Ordering::Relaxed)
    }

    pub fn retired_pending(&self) -> u64 {
        self.retired_pending.load(Ordering::Relaxed)
    }
}

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
