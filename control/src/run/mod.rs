//! `egressfwd run`: the appliance.
//!
//! The main thread is the control thread: it sets everything up, starts one pinned worker per
//! queue, then reloads the topology, collects retired tables and prints statistics until it
//! is told to stop; then it stops the workers, drains and closes the ports and reports.

pub mod eal;
mod reload;
pub mod report;
mod systemd;
mod telemetry;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::worker::{WorkerConfig, WorkerPort};
use dataplane::{MappingTable, Pipeline, PortAddrs, Published, StatsCell, Timeouts};
use dpdk_sys::{
    advise_huge_pages, Eal, Mempool, Port, PortConfig, BURST_CAPACITY, MBUF_DEFAULT_BUF_SIZE,
};

use crate::metrics::MetricsServer;
use crate::totals::{Shared, Totals};
use crate::Failure;
use egressfwd::config::{Config, DEFAULT_STATS_INTERVAL_SECONDS};
use topology::MemoryRegion;

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    config: PathBuf,
    /// Stop cleanly after this many seconds.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Write every counter as JSON here on stop.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Arguments for DPDK's EAL, after `--`.
    #[arg(last = true)]
    eal: Vec<String>,
}

/// The longest `--duration`: ten years. Beyond it, an `Instant` deadline could overflow.
const MAX_DURATION_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// `--duration SECONDS`: a finite, non-negative number of seconds, at most ten years. Anything
/// else (`inf`, `nan`, `-1`, `1e20`, a 20-digit integer) is bad usage, exit status 2.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=MAX_DURATION_SECONDS).contains(&seconds) {
        return Err(format!(
            "`{text}` is out of range: a duration is 0 to {MAX_DURATION_SECONDS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// How often the control thread wakes up to look at signals, the topology file and stats.
const CONTROL_TICK: Duration = Duration::from_millis(50);

/// Backs the tables workers read at random with huge pages where the kernel allows, sparing
/// those reads page-table walks.
pub(crate) fn place_on_huge_pages(regions: impl IntoIterator<Item = MemoryRegion>) {
    for region in regions {
        let advice = advise_huge_pages(region.start, region.bytes);
        tracing::debug!(
            table = region.name,
            bytes = region.bytes,
            ?advice,
            "huge pages"
        );
    }
}

pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let config = Config::load(&args.config).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        Failure::Invalid
    })?;
    // An invalid topology refuses to start, with every error and its place.
    let (topology, digest) =
        crate::load::read_topology(&config.topology).map_err(|diagnostics| {
            eprintln!("{diagnostics}");
            Failure::Invalid
        })?;
    if topology.server_by_name(&config.server).is_none() {
        eprintln!("{}", config.unknown_server(&config.topology));
        return Err(Failure::Invalid);
    }
    let table = crate::load::compile(&topology, &config.topology, &config.server)?;
    drop(topology);
    place_on_huge_pages(table.regions());
    dpdk_sys::release_free_heap();

    let signals = reload::Signals::register()?;
    let dp = &config.dataplane;
    let workers = usize::from(dp.workers);
    let cores = worker_cores(&config);
    let mbufs = mempool_size(&config);
    let data_room = mbuf_data_room(dp);
    // Each mbuf takes its data room plus about 200 bytes of headers and mempool overhead.
    let memory_mb = (mbufs as usize * (usize::from(data_room) + 256)) / (1 << 20) + 256;
    let devices: Vec<String> = config.ports.iter().map(|p| p.device.clone()).collect();
    let hugepages = eal::hugepages_available();
    let eal_args = eal::arguments(
        &args.eal,
        &devices,
        (cores.control, &cores.workers),
        memory_mb,
        hugepages,
        &config.server,
    );
    if !dpdk_sys::route_log_to_tracing() {
        tracing::warn!("DPDK's log stays on standard error: its stream could not be opened");
    }
    tracing::info!(args = %eal_args.join(" "), "initialising EAL");
    let eal = Eal::init(&eal_args).map_err(|err| Failure::Other(err.to_string()))?;
    // Declared before the ports, the pool and capture, so dropped after them, on every path.
    let _eal_cleanup = eal::Cleanup::new(eal, &eal_args);
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.len() < workers {
        return Err(Failure::Other(format!(
            "EAL has {} worker lcores (`-l`/`--lcores` in the EAL arguments) for {workers} workers",
            worker_lcores.len()
        )));
    }
    let capture = start_capture(eal, &eal_args);

    let pool = Mempool::create("egressfwd_mbufs", mbufs, 256.min(mbufs / 8), data_room)
        .map_err(|err| Failure::Other(err.to_string()))?;
    let mut ports = Vec::with_capacity(config.ports.len());
    for p in &config.ports {
        let mut port = Port::open(&p.device)
            .map_err(|err| Failure::Other(format!("port `{}`: {err}", p.name)))?;
        // The uplink carries both the internet's packets and the fabric's tunnels; the host
        // port only the internet's.
        let (needed, underlay) = if p.uplink && dp.underlay_mtu > dp.mtu {
            (dp.underlay_mtu, true)
        } else {
            (dp.mtu, false)
        };
        let max_mtu = port
            .max_mtu()
            .map_err(|err| Failure::Other(format!("port `{}`: {err}", p.name)))?;
        if needed > max_mtu {
            eprintln!("{}", config.mtu_too_large(underlay, &p.name, max_mtu));
            return Err(Failure::Invalid);
        }
        let port_config = PortConfig {
            rx_queues: dp.workers,
            tx_queues: dp.workers,
            rx_descriptors: dp.rx_descriptors,
            tx_descriptors: dp.tx_descriptors,
            mtu: Some(needed),
            ..PortConfig::default()
        };
        port.configure(&port_config, &pool)
            .map_err(|err| Failure::Other(format!("port `{}`: {err}", p.name)))?;
        tracing::info!(port = %p.name, device = %p.device, driver = port.driver(), rss = port.rss_enabled(), "port started");
        ports.push(port);
    }
    let macs: Vec<[u8; 6]> = ports
        .iter()
        .map(|p| p.mac())
        .collect::<Result<_, _>>()
        .map_err(|err| Failure::Other(err.to_string()))?;
    let (uplink, host) = (config.uplink(), config.host());
    let pipeline_config = crate::load::pipeline_config_of(
        dp,
        PortAddrs {
            mac: macs[uplink],
            next_hop: config.ports[uplink].next_hop_mac,
        },
        PortAddrs {
            mac: macs[host],
            next_hop: config.ports[host].next_hop_mac,
        },
    );

    let local_addresses = table.local_addresses();
    let tables = Published::new(Arc::new(table));
    let limits = config.connections;
    let timeouts = Timeouts {
        tcp_established: limits.tcp_established_seconds,
        tcp_transitory: limits.tcp_transitory_seconds,
        udp: limits.udp_seconds,
        icmp: limits.icmp_seconds,
    };
    let (mappings, mapping_owners) = MappingTable::new(
        workers,
        limits.max_entries as usize,
        timeouts,
        dataplane::worker::clock_seconds(),
    );
    tracing::info!(
        max_entries = limits.max_entries,
        mib = mappings.memory_bytes() >> 20,
        "mappings allocated"
    );
    place_on_huge_pages(mappings.regions());
    for owner in &mapping_owners {
        place_on_huge_pages(owner.regions());
    }
    let mut mapping_owners = mapping_owners.into_iter();
    let cells: Vec<StatsCell> = (0..workers).map(|_| StatsCell::new(ports.len())).collect();
    let stop = AtomicBool::new(false);
    let shared = Shared::new(&config, macs.clone(), local_addresses, mbufs);
    shared.set_topology_digest(digest);
    // Bind before starting workers: a taken address is a startup error, not a silent gap.
    let metrics = MetricsServer::bind(config.metrics_listen).map_err(|err| {
        Failure::Other(format!(
            "cannot listen for metrics on {}: {err}",
            config.metrics_listen
        ))
    })?;
    tracing::info!(listen = %config.metrics_listen, "metrics at http://{}/metrics", config.metrics_listen);

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let metrics_stop = AtomicBool::new(false);
    let workers_started = std::thread::scope(|scope| {
        scope.spawn(|| metrics.serve(&shared, &cells, &tables, &ports, &pool, &metrics_stop));
        let mut retired = dataplane::Retired::default();
        let started = dpdk_sys::lcore_scope(eal, |lcores| {
            for w in 0..workers {
                let worker_config = WorkerConfig {
                    ports: ports
                        .iter()
                        .enumerate()
                        .map(|(i, port)| {
                            // Every port has a queue pair per worker; worker w takes pair w.
                            let (rx, tx) = port.queue(w as u16).expect("queue pair of this worker");
                            let pass_to = match (config.ports[i].uplink, config.ports[i].host) {
                                (true, true) => i,
                                (true, false) => host,
                                _ => uplink,
                            };
                            WorkerPort { rx, tx, pass_to }
                        })
                        .collect(),
                    uplink,
                    host,
                    uplink_mtu: dp.mtu,
                    burst: usize::from(dp.burst).min(BURST_CAPACITY),
                    idle_sleep: Duration::from_micros(u64::from(dp.idle_sleep_us)),
                };
                let owner = mapping_owners.next().expect("an owner half per worker");
                let pipeline = Pipeline::new(pipeline_config.clone(), owner);
                let (tables, mappings, cell, stop) = (&tables, &mappings, &cells[w], &stop);
                let lcore = worker_lcores[w];
                let launched = lcores.launch(lcore, move || {
                    tracing::info!(worker = w, lcore, "worker polling queue {w} of every port");
                    // The worker's final counters are in its cell; the returned copy is not needed.
                    let _ = dataplane::worker::Worker::new(worker_config, pipeline, mappings, cell)
                        .run(tables, stop);
                });
                if let Err(err) = launched {
                    // The workers launched so far stop, and the appliance with them.
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("cannot start worker {w}: {err}"));
                }
            }

            if cfg!(feature = "bench-floor") {
                tracing::warn!("built with the bench-floor feature: every packet is passed unprocessed (a benchmark build, not for production)");
            }
            let mut watcher = reload::Watcher::new(&config.topology);
            // Under systemd the journal is the log: periodic statistics are there only if asked.
            let stats_interval = match config.stats_interval_seconds {
                None if systemd::under_systemd() => 0,
                interval => interval.unwrap_or(DEFAULT_STATS_INTERVAL_SECONDS),
            };
            let mut printer = report::Printer::new(stats_interval);
            let mut manager = systemd::ServiceManager::from_env();
            let telemetry = telemetry::Telemetry::register();
            let gather = || Totals::gather(&shared, &cells, &tables, &ports, &pool);
            telemetry.refresh(&gather(), u64::from(limits.max_entries));
            let mut ticks = 0u32;
            shared.set_ready(true);
            manager.ready(&format!(
                "forwarding with topology generation {}",
                tables.generation()
            ));
            loop {
                std::thread::sleep(CONTROL_TICK);
                manager.tick();
                if signals.stop_requested() || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let forced = signals.take_forced_reload();
                let retired_before = retired.len();
                let reloaded = signals.take_reload() || watcher.changed() || forced;
                if reloaded {
                    manager.reloading();
                    reload::reload(&config, &tables, &mut retired, &shared, forced);
                    manager.ready(&format!(
                        "forwarding with topology generation {}",
                        tables.generation()
                    ));
                }
                ticks = ticks.wrapping_add(1);
                if reloaded || ticks.is_multiple_of(telemetry::REFRESH_TICKS) {
                    telemetry.refresh(&gather(), u64::from(limits.max_entries));
                }
                let retired_now = retired.collect();
                shared.set_retired(retired_now);
                // What a load read and a replaced table held is freed now: give it back, so that
                // the next load's peak does not come on top of this one's.
                if reloaded || retired_now < retired_before {
                    dpdk_sys::release_free_heap();
                }
                printer.tick(&gather);
            }
            tracing::info!("stopping: workers finish their burst");
            shared.set_ready(false);
            manager.stopping();
            stop.store(true, Ordering::Relaxed);
            Ok(())
        });
        // lcore_scope has waited for every worker.
        metrics_stop.store(true, Ordering::Relaxed);
        retired.collect();
        started
    });

    // Workers are gone. The device counters are read while the ports still exist; then the
    // ports are drained and closed (a pcap output is complete after this), which returns the
    // buffers their rings held.
    let mut totals = Totals::gather(&shared, &cells, &tables, &ports, &pool);
    for port in &mut ports {
        port.close()
            .map_err(|err| Failure::Other(err.to_string()))?;
    }
    totals.mbufs_in_use = pool.in_use();
    report::print_final(&totals, started.elapsed());
    if let Some(path) = &args.stats_json {
        let json = serde_json::to_string_pretty(&totals.to_json(started.elapsed()))?;
        std::fs::write(path, json + "\n")
            .map_err(|err| Failure::Other(format!("{}: {err}", path.display())))?;
    }
    let leaked = pool.in_use();
    drop(tables);
    if leaked != 0 {
        return Err(Failure::Other(format!(
            "{leaked} mbufs were not returned to the pool"
        )));
    }
    drop(pool);
    drop(capture);
    // A worker that could not start fails the run, once everything is closed (EAL last, by
    // `_eal_cleanup`).
    workers_started.map_err(Failure::Other)
}

/// Serves `dpdk-dumpcap` when EAL shares its memory (hugepages and a shared config); says
/// how to capture, or why capture is unavailable.
fn start_capture(eal: &'static Eal, eal_args: &[String]) -> Option<dpdk_sys::Capture> {
    let prefix = eal::prefix_of(eal_args).unwrap_or_else(|| "rte".to_owned());
    if eal_args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory" || a == "--no-huge")
    {
        tracing::info!("live capture unavailable: it needs hugepages and EAL's shared config");
        return None;
    }
    match dpdk_sys::Capture::enable(eal) {
        Ok(capture) => {
            tracing::info!(
                "live capture: dpdk-dumpcap --file-prefix {prefix} -i PORT -w FILE.pcapng"
            );
            Some(capture)
        }
        Err(err) => {
            tracing::warn!(%err, "live capture unavailable");
            None
        }
    }
}

struct Cores {
    control: usize,
    workers: Vec<usize>,
}

/// The control thread's core and each worker's: as configured, or the control thread on the
/// first core and workers on the following ones (wrapping when there are fewer cores).
fn worker_cores(config: &Config) -> Cores {
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let available = if available.is_empty() {
        vec![0]
    } else {
        available
    };
    let control = available[0];
    let workers = if config.dataplane.cores.is_empty() {
        (0..usize::from(config.dataplane.workers))
            .map(|w| available[(1 + w) % available.len()])
            .collect()
    } else {
        config.dataplane.cores.clone()
    };
    Cores { control, workers }
}

/// Bytes of packet data each mbuf holds: DPDK's default (2 KiB and the headroom) unless the
/// largest frame the ports receive is larger, so that every frame is one segment: an
/// Ethernet header, a VLAN tag of a passed frame, and the larger of the two MTUs, behind
/// the headroom that encapsulation prepends into. Rounded up to a whole KiB.
fn mbuf_data_room(dp: &egressfwd::config::DataplaneConfig) -> u16 {
    const ETHERNET_AND_VLAN: u32 = 18;
    let frame = u32::from(dp.mtu.max(dp.underlay_mtu)) + ETHERNET_AND_VLAN;
    let needed = (dpdk_sys::MBUF_HEADROOM as u32 + frame).next_multiple_of(1024);
    needed.max(u32::from(MBUF_DEFAULT_BUF_SIZE)) as u16
}

/// The configured pool size, or by default enough mbufs for every descriptor of every queue,
/// a burst in flight per worker and port and the per-lcore caches. (A pcap replayed with
/// `infinite_rx` also holds one mbuf per packet of the file: configure `mbufs` for those.)
fn mempool_size(config: &Config) -> u32 {
    let dp = &config.dataplane;
    if dp.mbufs > 0 {
        return dp.mbufs;
    }
    let ports = config.ports.len() as u32;
    let queues = ports * u32::from(dp.workers);
    let needed = queues * (u32::from(dp.rx_descriptors) + u32::from(dp.tx_descriptors))
        + queues * 2 * BURST_CAPACITY as u32
        + u32::from(dp.workers) * 512;
    // Mempools are most efficient at 2^n - 1 elements.
    (needed.max(8191) + 1).next_power_of_two() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_finite_seconds_within_ten_years() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "inf",
            "-inf",
            "nan",
            "NaN",
            "-1",
            "1e20",
            "18446744073709551616",
            "",
            "ten",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }
}
