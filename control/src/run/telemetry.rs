//! The appliance's commands on DPDK's telemetry socket: `/egressfwd/stats` (the counters),
//! `/egressfwd/table` (the table in use) and `/egressfwd/connections` (the mappings of
//! contract 7.2: bound, in use, created, translated, expired, refused). `dpdk-telemetry.py -f egressfwd-SERVER` reads them
//! beside DPDK's own `/ethdev/...`.
//!
//! DPDK's telemetry thread answers from a snapshot that the control thread refreshes every
//! [`REFRESH_TICKS`] control ticks and after every reload, so a request never waits for, nor
//! races with, the figures being gathered.

use std::sync::{Arc, Mutex};

use dataplane::DropReason;
use dpdk_sys::{register_telemetry_command, TelemetryValue};
use topology::Tier;

use crate::totals::Totals;

/// Control ticks between refreshes of the snapshot (of 50 ms: twice a second).
pub const REFRESH_TICKS: u32 = 10;

type Answer = Arc<Mutex<Vec<(String, TelemetryValue)>>>;

pub struct Telemetry {
    stats: Answer,
    table: Answer,
    connections: Answer,
}

impl Telemetry {
    /// Registers the commands; one that cannot be registered is logged and left out.
    pub fn register() -> Self {
        let telemetry = Self {
            stats: Answer::default(),
            table: Answer::default(),
            connections: Answer::default(),
        };
        for (name, help, answer) in [
            (
                "/egressfwd/stats",
                "egressfwd's counters: packets, decisions by tier, drops by reason, workers. No parameters.",
                &telemetry.stats,
            ),
            (
                "/egressfwd/table",
                "egressfwd's table in use: generation, topology digest and size, reloads. No parameters.",
                &telemetry.table,
            ),
            (
                "/egressfwd/connections",
                "egressfwd's connection table (replies back to their peer): capacity, in use, recorded. No parameters.",
                &telemetry.connections,
            ),
        ] {
            let answer = answer.clone();
            let handler = Arc::new(move || {
                answer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            });
            if let Err(err) = register_telemetry_command(name, help, handler) {
                tracing::warn!(%err, "telemetry command left out");
            }
        }
        telemetry
    }

    /// `capacity` is the bound on mappings; in use is what the workers created and have not
    /// expired yet (each worker's counters, so nothing is walked).
    pub fn refresh(&self, totals: &Totals, capacity: u64) {
        let p = &totals.sum.pipeline;
        let connection_figures = vec![
            u64_of("capacity", capacity),
            u64_of(
                "in_use",
                p.mappings_created.saturating_sub(p.mappings_expired),
            ),
            u64_of("created", p.mappings_created),
            u64_of("translated", p.mappings_translated),
            u64_of("expired", p.mappings_expired),
            u64_of("refused_full", p.drops[DropReason::ConnectionsFull.index()]),
            u64_of("pins_in_use", p.pins_created.saturating_sub(p.pins_expired)),
            u64_of("pins_created", p.pins_created),
            u64_of("pins_redecided", p.pins_redecided),
            u64_of("pins_expired", p.pins_expired),
        ];
        for (answer, figures) in [
            (&self.stats, stats_of(totals)),
            (&self.table, table_of(totals)),
            (&self.connections, connection_figures),
        ] {
            *answer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = figures;
        }
    }
}

fn u64_of(name: impl Into<String>, value: u64) -> (String, TelemetryValue) {
    (name.into(), TelemetryValue::U64(value))
}

fn stats_of(t: &Totals) -> Vec<(String, TelemetryValue)> {
    let p = &t.sum.pipeline;
    let mut out = vec![
        u64_of("received", t.received()),
        u64_of("transmitted", t.transmitted()),
        u64_of("dropped", t.dropped()),
        u64_of("mbufs_in_use", u64::from(t.mbufs_in_use)),
        u64_of("mbufs_capacity", u64::from(t.mbufs_capacity)),
        u64_of("tsc_hz", t.tsc_hz),
    ];
    out.extend(p.named().map(|(info, value)| u64_of(info.field, value)));
    for tier in Tier::ALL {
        let count = p.tiers[dataplane::counters::tier_index(tier)];
        out.push(u64_of(format!("decisions_{}", tier.as_str()), count));
    }
    for reason in DropReason::ALL {
        out.push(u64_of(
            format!("drops_{}", reason.as_str()),
            p.drops[reason.index()],
        ));
    }
    for (w, s) in t.workers.iter().enumerate() {
        out.push(u64_of(format!("worker{w}_busy_cycles"), s.busy_cycles));
        out.push(u64_of(format!("worker{w}_idle_cycles"), s.idle_cycles));
    }
    out
}

fn table_of(t: &Totals) -> Vec<(String, TelemetryValue)> {
    let text = |name: &str, value: &str| (name.to_owned(), TelemetryValue::Text(value.to_owned()));
    vec![
        u64_of("generation", t.generation),
        text("server", &t.table.server),
        text("datacenter", &t.table.datacenter),
        text("location", &t.table.location),
        text("topology_sha256", &t.table.digest),
        u64_of("ipv4_egress_addresses", t.table.ipv4_egress_addresses),
        u64_of("ipv4_egress_prefixes", t.table.ipv4_egress_prefixes),
        u64_of("ipv6_egress_prefixes", t.table.ipv6_egress_prefixes),
        u64_of("pools", t.table.pools),
        u64_of("servers", t.table.servers),
        u64_of("egress_addresses_local", t.local_addresses),
        u64_of("reloads_ok", t.reloads_ok),
        u64_of("reloads_error", t.reloads_error),
        u64_of("reloads_refused", t.reloads_refused),
    ]
}
