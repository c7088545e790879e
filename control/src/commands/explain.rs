//! `egressfwd explain`: decisions for flows, one JSON object a line, decided by the same
//! code the data plane runs. With `--trace`, each flow's packet also goes through the
//! pipeline itself (`dataplane::trace`), and the line says what it did.

use std::io::{BufRead, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use dataplane::trace::{self, Arrival, Packet, Trace};
use dataplane::{Context, MappingTable, Pipeline, PipelineConfig, PortAddrs, Timeouts, Verdict};
use egressfwd::config::{Config, DataplaneConfig};
use topology::explain::{explain_flows, parse_proto, FlowSpec};
use topology::ForwardingTable;

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
    /// Also run each flow's packet through the pipeline and say what it did: decapsulated,
    /// decided, rewritten, encapsulated to whom, dropped why (a `trace` object a line). The
    /// flows go through one pipeline in order, so a reply finds the mapping of a flow
    /// traced before it.
    #[arg(long)]
    trace: bool,
    /// With `--trace`: the appliance config whose `[dataplane]` (encapsulation, MTUs, MSS
    /// clamp) and next hops the pipeline uses; the defaults otherwise.
    #[arg(long, requires = "trace")]
    config: Option<PathBuf>,
    /// With `--trace`: where the packet arrives: `host`, `uplink`, or the name of the fleet
    /// server that encapsulated it. By default from the host when its source is an egress
    /// address, else from the uplink.
    #[arg(long = "from", requires = "trace")]
    arrives_from: Option<String>,
    /// With `--trace`: the packet's TTL (IPv6 hop limit).
    #[arg(long, default_value_t = 64, requires = "trace")]
    ttl: u8,
    /// With `--trace`: the packet's IP total length in bytes (at least its headers).
    #[arg(long, default_value_t = 0, requires = "trace")]
    size: u16,
    /// With `--trace`: TCP flags, letters of `SAFRP` (a SYN by default).
    #[arg(long, default_value = "S", requires = "trace")]
    tcp_flags: String,
}

/// One pipeline that every traced packet of a run goes through, as a worker's would.
struct Tracer<'a> {
    table: &'a ForwardingTable,
    mappings: MappingTable,
    pipeline: Pipeline,
    config: PipelineConfig,
    from: Option<Arrival>,
    ttl: u8,
    size: u16,
    tcp_flags: u8,
}

impl<'a> Tracer<'a> {
    fn new(args: &ExplainArgs, table: &'a ForwardingTable) -> Result<Self, Failure> {
        // The ports' own MACs are the NIC's, known only to a running appliance: the
        // example's placeholders stand in; next hops are the config's when given.
        let example = PipelineConfig::example();
        let (dataplane, next_hops) = match &args.config {
            Some(path) => {
                let config = Config::load(path).map_err(|diagnostics| {
                    eprintln!("{diagnostics}");
                    Failure::Invalid
                })?;
                let hops = (
                    config.ports[config.uplink()].next_hop_mac,
                    config.ports[config.host()].next_hop_mac,
                );
                (config.dataplane, hops)
            }
            None => (
                DataplaneConfig {
                    encap_port: args.encap_port,
                    ..DataplaneConfig::default()
                },
                (example.uplink.next_hop, example.host.next_hop),
            ),
        };
        let config = crate::load::pipeline_config_of(
            &dataplane,
            PortAddrs {
                mac: example.uplink.mac,
                next_hop: next_hops.0,
            },
            PortAddrs {
                mac: example.host.mac,
                next_hop: next_hops.1,
            },
        );
        let from = match args.arrives_from.as_deref() {
            None => None,
            Some("host") => Some(Arrival::Host),
            Some("uplink") => Some(Arrival::Uplink),
            Some(name) => {
                let found = (0..table.server_count())
                    .map(|i| table.server(topology::ServerId(i as u32)))
                    .find(|s| s.name == name);
                let Some(server) = found else {
                    eprintln!(
                        "egressfwd explain: --from: no server `{name}` in the topology (or host, uplink)"
                    );
                    return Err(Failure::Invalid);
                };
                Some(Arrival::Peer(server.underlay))
            }
        };
        let tcp_flags = args.tcp_flags.chars().try_fold(0u8, |flags, c| {
            let bit = match c.to_ascii_uppercase() {
                'F' => 0x01,
                'S' => 0x02,
                'R' => 0x04,
                'P' => 0x08,
                'A' => 0x10,
                _ => return Err(c),
            };
            Ok(flags | bit)
        });
        let tcp_flags = tcp_flags.map_err(|c| {
            eprintln!("egressfwd explain: --tcp-flags: `{c}` is not one of S, A, F, R, P");
            Failure::Invalid
        })?;
        let (mappings, mut owners) = MappingTable::new(1, 1 << 16, Timeouts::default(), 0);
        let owner = owners.pop().expect("one owner");
        Ok(Self {
            table,
            mappings,
            pipeline: Pipeline::new(config.clone(), owner),
            config,
            from,
            ttl: args.ttl,
            size: args.size,
            tcp_flags,
        })
    }

    fn trace(&mut self, flow: &FlowSpec) -> Trace {
        let packet = Packet {
            proto: flow.proto,
            src: flow.src,
            sport: flow.sport,
            dst: flow.dst,
            dport: flow.dport,
            ttl: self.ttl,
            size: self.size,
            tcp_flags: self.tcp_flags,
            dont_fragment: true,
        };
        let arrival = self.from.unwrap_or_else(|| {
            let egress = match flow.src {
                IpAddr::V4(a) => self.table.route_v4(u32::from(a)).is_some(),
                IpAddr::V6(a) => self.table.is_egress_v6(u128::from(a)),
            };
            if egress {
                Arrival::Host
            } else {
                Arrival::Uplink
            }
        });
        let me = Ipv4Addr::from(self.table.my_underlay());
        let frame = trace::frame(&packet, arrival, &self.config, me);
        let ctx = Context {
            table: self.table,
            mappings: &self.mappings,
            now: 0,
        };
        let mut traced = trace::trace(&mut self.pipeline, &ctx, &frame);
        traced
            .counted
            .insert(0, format!("arrived {}", arrival_name(self.table, arrival)));
        traced
    }
}

fn arrival_name(table: &ForwardingTable, arrival: Arrival) -> String {
    match arrival {
        Arrival::Host => "host".to_owned(),
        Arrival::Uplink => "uplink".to_owned(),
        Arrival::Peer(underlay) => table
            .peer(u32::from(underlay))
            .map(|s| format!("encapsulated from {}", table.server(s).name))
            .unwrap_or_else(|| format!("encapsulated from {underlay}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `trace` object of an explanation line.
fn trace_json(trace: &Trace) -> serde_json::Value {
    let verdict = match trace.verdict {
        Verdict::Uplink => "uplink".to_owned(),
        Verdict::Host => "host".to_owned(),
        Verdict::Pass => "pass".to_owned(),
        Verdict::Drop(reason) => format!("drop {}", reason.as_str()),
    };
    serde_json::json!({
        "verdict": verdict,
        "steps": trace.counted,
        "sent": trace.sent,
        "frame_in": hex(&trace.input),
        "frame_out": (!trace.output.is_empty()).then(|| hex(&trace.output)),
    })
}

/// Flows are explained in batches: the batched decision is what the data plane runs, and a
/// million flows never sit in memory at once.
const BATCH: usize = 4096;

pub fn run(args: &ExplainArgs) -> Result<(), Failure> {
    let topology = super::load_topology(&args.topology)?;
    let table = crate::load::compile(&topology, &args.topology, &args.server)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut tracer = if args.trace {
        Some(Tracer::new(args, &table)?)
    } else {
        None
    };
    let mut emit = |flows: &[FlowSpec]| -> Result<(), Failure> {
        for (flow, explanation) in flows
            .iter()
            .zip(explain_flows(&table, flows, args.encap_port))
        {
            match tracer.as_mut() {
                None => serde_json::to_writer(&mut out, &explanation)?,
                Some(tracer) => {
                    let mut line = serde_json::to_value(&explanation)?;
                    line["trace"] = trace_json(&tracer.trace(flow));
                    serde_json::to_writer(&mut out, &line)?;
                }
            }
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
