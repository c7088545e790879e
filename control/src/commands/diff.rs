//! `egressfwd diff OLD NEW --server NAME`: what a topology change would do to one server's
//! decisions, for review before the file is rolled out (`topology::diff` computes it).

use std::fmt::Write as _;
use std::path::PathBuf;

use topology::diff::{diff, PrefixChange, RouteView, TableDiff};

use crate::Failure;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The topology in use.
    old: PathBuf,
    /// The topology that would replace it.
    new: PathBuf,
    /// The server whose decisions to compare.
    #[arg(long)]
    server: String,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Lines of each list in the text output (the JSON has every one).
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

pub fn run(args: &DiffArgs) -> Result<(), Failure> {
    let old = super::load_topology(&args.old)?;
    let new = super::load_topology(&args.new)?;
    let before = crate::load::compile(&old, &args.old, &args.server)?;
    let after = crate::load::compile(&new, &args.new, &args.server)?;
    let change = diff(&before, &after);
    if args.json {
        let mut json = serde_json::to_value(&change)?;
        json["moved_share"] = serde_json::json!(change.moved_share());
        println!("{json}");
    } else {
        print!("{}", text(&change, args.limit));
    }
    Ok(())
}

/// Port ranges of one line of the text output.
const PORT_RANGES_SHOWN: usize = 6;

fn route(view: &Option<RouteView>) -> String {
    match view {
        None => "not egress".to_owned(),
        Some(v) => {
            let targets: Vec<String> = v
                .targets
                .iter()
                .map(|(name, share)| format!("{name} {:.1}%", share * 100.0))
                .collect();
            format!(
                "pool {} {} [{}]",
                v.pool,
                v.tier.as_str(),
                targets.join(", ")
            )
        }
    }
}

fn prefix_line(p: &PrefixChange) -> String {
    format!(
        "  {}: {} -> {}; {:.1}% of its flows move\n",
        p.prefix,
        route(&p.before),
        route(&p.after),
        p.moved * 100.0
    )
}

fn text(d: &TableDiff, limit: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server {}: {} address blocks change route; {:.2}% of new flows would move ({:.0} of {} egress addresses' worth)",
        d.server,
        d.prefixes.len(),
        d.moved_share() * 100.0,
        d.moved_addresses,
        d.addresses
    );
    for p in d.prefixes.iter().take(limit) {
        out.push_str(&prefix_line(p));
    }
    if d.prefixes.len() > limit {
        let _ = writeln!(
            out,
            "  ... and {} more (--json lists every one)",
            d.prefixes.len() - limit
        );
    }
    let slices: usize = d.slices.iter().map(|s| s.slices).sum();
    let _ = writeln!(out, "port slices changing owner: {slices}");
    for s in d.slices.iter().take(limit) {
        let mut ports: Vec<String> = s
            .ports
            .iter()
            .take(PORT_RANGES_SHOWN)
            .map(|r| format!("{}-{}", r.start(), r.end()))
            .collect();
        if s.ports.len() > PORT_RANGES_SHOWN {
            ports.push(format!(
                "and {} more ranges",
                s.ports.len() - PORT_RANGES_SHOWN
            ));
        }
        let _ = writeln!(
            out,
            "  pool {}: {} -> {}: {} slices, ports {}",
            s.pool,
            s.from,
            s.to,
            s.slices,
            ports.join(", ")
        );
    }
    if d.slices.len() > limit {
        let _ = writeln!(
            out,
            "  ... and {} more (--json lists every one)",
            d.slices.len() - limit
        );
    }
    out
}
