//! `egressfwd explain`: decisions for flows, one JSON object a line, decided by the same
//! code the data plane runs.

use std::io::{BufRead, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use topology::explain::{explain_flows, parse_proto, FlowSpec};

use crate::Failure;

#[derive(clap::Args)]
pub struct ExplainArgs {
    #[arg(long)]
    topology: PathBuf,
    /// The server whose decisions to show.
    #[arg(long)]
    server: String,
    /// Flows, one `PROTO SRC SPORT DST DPORT` a line; `-` reads standard input.
    #[arg(long, conflicts_with_all = ["src", "dst"])]
    flows: Option<String>,
    #[arg(long, requires = "dst")]
    src: Option<IpAddr>,
    #[arg(long, requires = "src")]
    dst: Option<IpAddr>,
    /// tcp, udp, icmp or a protocol number.
    #[arg(long, default_value = "tcp")]
    proto: String,
    #[arg(long, default_value_t = 0)]
    sport: u16,
    #[arg(long, default_value_t = 0)]
    dport: u16,
    /// UDP port fleet packets arrive on (the config's `encap_port`).
    #[arg(long, default_value_t = 6080)]
    encap_port: u16,
}

/// Flows are explained in batches: the batched decision is what the data plane runs, and a
/// million flows never sit in memory at once.
const BATCH: usize = 4096;

pub fn run(args: &ExplainArgs) -> Result<(), Failure> {
    let topology = super::load_topology(&args.topology)?;
    let table = super::compile(&topology, &args.topology, &args.server)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut emit = |flows: &[FlowSpec]| -> Result<(), Failure> {
        for explanation in explain_flows(&table, flows, args.encap_port) {
            serde_json::to_writer(&mut out, &explanation)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    };

    let Some(source) = &args.flows else {
        let (Some(src), Some(dst)) = (args.src, args.dst) else {
            eprintln!("egressfwd explain: give --flows FILE|- or a flow with --src and --dst");
            return Err(Failure::Invalid);
        };
        let proto = parse_proto(&args.proto).map_err(|message| {
            eprintln!("egressfwd explain: --proto: {message}");
            Failure::Invalid
        })?;
        let flow = FlowSpec::new(proto, src, args.sport, dst, args.dport).map_err(|message| {
            eprintln!("egressfwd explain: {message}");
            Failure::Invalid
        })?;
        emit(&[flow])?;
        out.flush()?;
        return Ok(());
    };

    let (name, reader): (String, Box<dyn BufRead>) = if source == "-" {
        ("<stdin>".to_owned(), Box::new(std::io::stdin().lock()))
    } else {
        let file = std::fs::File::open(source)
            .map_err(|err| Failure::Other(format!("{source}: {err}")))?;
        (
            source.clone(),
            Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
        )
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut bad_lines = 0usize;
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|err| Failure::Other(format!("{name}: {err}")))?;
        match FlowSpec::parse_line(&line) {
            Ok(Some(flow)) => batch.push(flow),
            Ok(None) => {}
            Err(message) => {
                // Every bad line is reported; good lines are still explained.
                eprintln!("{name}:{}:1: {message}", number + 1);
                bad_lines += 1;
            }
        }
        if batch.len() == BATCH {
            emit(&batch)?;
            batch.clear();
        }
    }
    emit(&batch)?;
    out.flush()?;
    if bad_lines > 0 {
        return Err(Failure::Invalid);
    }
    Ok(())
}
