//! The offline subcommands: everything but `run`.

pub mod explain;

use std::io::Write;
use std::path::Path;

use topology::{ForwardingTable, Topology};

use crate::Failure;

/// Loads a topology, printing every error as `FILE:LINE:COL: message` on failure.
pub fn load_topology(path: &Path) -> Result<Topology, Failure> {
    topology::load(path).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        Failure::Invalid
    })
}

/// Compiles the table of `server`; an unknown server is an invalid request (exit 2).
pub fn compile(topology: &Topology, path: &Path, server: &str) -> Result<ForwardingTable, Failure> {
    ForwardingTable::compile(topology, server).map_err(|err| {
        eprintln!("{}: {err}", path.display());
        Failure::Invalid
    })
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
    prefixes: Vec<TablePrefix<'t>>,
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
        prefixes,
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
    }
    out.flush()?;
    Ok(())
}
