//! The offline subcommands: everything but `run`.

pub mod diff;
pub mod explain;

use std::io::Write;
use std::path::Path;

use topology::{ForwardingTable, Topology};

use crate::load::compile;
use crate::Failure;
use egressfwd::config::Config;

/// Loads a topology, printing every error as `FILE:LINE:COL: message` on failure.
pub fn load_topology(path: &Path) -> Result<Topology, Failure> {
    topology::load(path).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        Failure::Invalid
    })
}

/// `check --config`: every error of the config, then every error of the topology it names
/// (found even when the config has errors of its own), then whether its server is in it.
pub fn check_config(path: &Path) -> Result<(), Failure> {
    let (config, topology_path) = match Config::load(path) {
        Ok(config) => {
            let topology = config.topology.clone();
            (Some(config), Some(topology))
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            (None, Config::topology_path_of(path))
        }
    };
    let topology = topology_path.map(|topology_path| load_topology(&topology_path));
    let (Some(config), Some(Ok(topology))) = (config, topology) else {
        return Err(Failure::Invalid);
    };
    if topology.server_by_name(&config.server).is_none() {
        eprintln!("{}", config.unknown_server(&config.topology));
        return Err(Failure::Invalid);
    }
    let table = compile(&topology, &config.topology, &config.server)?;
    println!(
        "{}: server {}, {} egress addresses held locally; {}",
        path.display(),
        config.server,
        table.local_addresses(),
        topology.summary()
    );
    Ok(())
}

pub fn check(path: &Path) -> Result<(), Failure> {
    let topology = load_topology(path)?;
    println!("{}", topology.summary());
    Ok(())
}

#[derive(serde::Serialize)]
struct TableCandidate<'t> {
    server: &'t str,
    underlay: std::net::Ipv4Addr,
    datacenter: &'t str,
    location: &'t str,
    weight: u32,
    /// Fraction of flows this candidate receives (of the rendezvous buckets).
    share: f64,
}

#[derive(serde::Serialize)]
struct TablePrefix<'t> {
    prefix: String,
    pool: Option<&'t str>,
    tier: topology::Tier,
    candidates: Vec<TableCandidate<'t>>,
}

#[derive(serde::Serialize)]
struct TableDocument<'t> {
    server: &'t str,
    underlay: std::net::Ipv4Addr,
    datacenter: &'t str,
    location: &'t str,
    ipv4_addresses_held_locally: u64,
    port_slice: u16,
    prefixes: Vec<TablePrefix<'t>>,
    /// Every IPv4 pool's port slices, by holder (contract 7.1).
    pools: Vec<TablePool<'t>>,
}

#[derive(serde::Serialize)]
struct TablePool<'t> {
    name: &'t str,
    holders: Vec<TableSliceHolder<'t>>,
}

#[derive(serde::Serialize)]
struct TableSliceHolder<'t> {
    server: &'t str,
    weight: u32,
    drain: bool,
    /// Number of slices owned.
    slices: usize,
    /// The ports of those slices, adjacent ones merged: `"1024-1087"`.
    ports: Vec<String>,
}

/// The slices of every pool of the table, by holder.
fn slice_pools(table: &ForwardingTable) -> Vec<TablePool<'_>> {
    table
        .routes()
        .iter()
        .map(|route| {
            let owners: Vec<u16> = table
                .slice_map(route.pool)
                .iter()
                .map(|s| s.0 as u16)
                .collect();
            let holders = route
                .holders
                .iter()
                .map(|h| {
                    let index = h.server.0 as u16;
                    TableSliceHolder {
                        server: &table.server(h.server).name,
                        weight: h.weight,
                        drain: h.drain,
                        slices: owners.iter().filter(|&&o| o == index).count(),
                        ports: topology::slices::ranges(&owners, table.port_slice(), index)
                            .into_iter()
                            .map(|r| format!("{}-{}", r.start(), r.end()))
                            .collect(),
                    }
                })
                .collect();
            TablePool {
                name: table.pool_name(route.pool),
                holders,
            }
        })
        .collect()
}

pub fn table(path: &Path, server: &str, json: bool) -> Result<(), Failure> {
    let topology = load_topology(path)?;
    let table = compile(&topology, path, server)?;
    let me = table.server(table.me());
    // Shares are per route, not per prefix: compute once per pool.
    let shares: Vec<Vec<f64>> = table.routes().iter().map(|r| r.shares(&table)).collect();
    let mut prefixes = Vec::with_capacity(table.egress_v4().len() + table.egress_v6().len());
    for &(prefix, pool) in table.egress_v4() {
        let route = &table.routes()[pool.index()];
        let candidates = route
            .candidates
            .iter()
            .zip(&shares[pool.index()])
            .map(|(h, &share)| {
                let s = table.server(h.server);
                TableCandidate {
                    server: &s.name,
                    underlay: s.underlay,
                    datacenter: &s.datacenter,
                    location: &s.location,
                    weight: h.weight,
                    share,
                }
            })
            .collect();
        prefixes.push(TablePrefix {
            prefix: prefix.to_string(),
            pool: Some(table.pool_name(pool)),
            tier: route.tier,
            candidates,
        });
    }
    for prefix in table.egress_v6() {
        prefixes.push(TablePrefix {
            prefix: prefix.to_string(),
            pool: None,
            tier: topology::Tier::Ipv6Local,
            candidates: Vec::new(),
        });
    }
    let document = TableDocument {
        server: &me.name,
        underlay: me.underlay,
        datacenter: &me.datacenter,
        location: &me.location,
        ipv4_addresses_held_locally: table.local_addresses(),
        port_slice: table.port_slice(),
        prefixes,
        pools: slice_pools(&table),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "# server {} ({} {}, underlay {}): {} IPv4 egress addresses held locally",
            document.server,
            document.datacenter,
            document.location,
            document.underlay,
            document.ipv4_addresses_held_locally
        )?;
        writeln!(
            out,
            "# prefix  pool  tier  candidates (server underlay weight share)"
        )?;
        for p in &document.prefixes {
            let candidates: Vec<String> = p
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "{} {} w={} {:.1}%",
                        c.server,
                        c.underlay,
                        c.weight,
                        c.share * 100.0
                    )
                })
                .collect();
            writeln!(
                out,
                "{}  {}  {}  {}",
                p.prefix,
                p.pool.unwrap_or("-"),
                p.tier.as_str(),
                if candidates.is_empty() {
                    "-".to_owned()
                } else {
                    candidates.join(", ")
                }
            )?;
        }
        writeln!(
            out,
            "# port slices of {} ports: pool  holder (weight, slices) ports",
            document.port_slice
        )?;
        for pool in &document.pools {
            for h in &pool.holders {
                writeln!(
                    out,
                    "{}  {} (w={}{}, {} slices) {}",
                    pool.name,
                    h.server,
                    h.weight,
                    if h.drain { ", drained" } else { "" },
                    h.slices,
                    if h.ports.is_empty() {
                        "-".to_owned()
                    } else {
                        h.ports.join(" ")
                    }
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
