//! `egressfwd explain`: the decision for flows given as text, through the same decision code
//! the data plane runs ([`ForwardingTable::decide_v4_burst`], whose steps the pipeline calls, and
//! [`ForwardingTable::decide_v6`]).

use std::net::{IpAddr, Ipv4Addr};

use crate::hash::{outer_source_port, FlowKey, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::table::{Classified, Decision, DecisionV6, FleetPacket, ForwardingTable, Tier};

/// One flow as `explain` reads it: `PROTO SRC SPORT DST DPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

pub fn parse_proto(text: &str) -> Result<u8, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(PROTO_TCP),
        "udp" => Ok(PROTO_UDP),
        "icmp" => Ok(PROTO_ICMP),
        other => other.parse::<u8>().map_err(|_| {
            format!("unknown protocol `{text}` (expected tcp, udp, icmp or a number 0..=255)")
        }),
    }
}

pub fn proto_name(proto: u8) -> String {
    match proto {
        PROTO_TCP => "tcp".to_owned(),
        PROTO_UDP => "udp".to_owned(),
        PROTO_ICMP => "icmp".to_owned(),
        n => n.to_string(),
    }
}

impl FlowSpec {
    pub fn new(
        proto: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> Result<Self, String> {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(format!(
                "source {src} and destination {dst} are not of the same IP version"
            ));
        }
        Ok(Self {
            proto,
            src,
            sport,
            dst,
            dport,
        })
    }

    /// Parses one line of a flows file. Blank lines and `#` comments give `None`.
    pub fn parse_line(line: &str) -> Result<Option<Self>, String> {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            return Ok(None);
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [proto, src, sport, dst, dport] = fields[..] else {
            return Err(format!(
                "expected `PROTO SRC SPORT DST DPORT`, found {} fields",
                fields.len()
            ));
        };
        let addr = |t: &str| {
            t.parse::<IpAddr>()
                .map_err(|_| format!("`{t}` is not an IP address"))
        };
        let port = |t: &str| {
            t.parse::<u16>()
                .map_err(|_| format!("`{t}` is not a port (0..=65535)"))
        };
        Self::new(
            parse_proto(proto)?,
            addr(src)?,
            port(sport)?,
            addr(dst)?,
            port(dport)?,
        )
        .map(Some)
    }

    fn key_v4(&self) -> Option<FlowKey> {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::new(
                u32::from(s),
                u32::from(d),
                self.proto,
                Some((self.sport, self.dport)),
            )),
            _ => None,
        }
    }
}

/// The decision for one flow, as `explain` prints it (one JSON object a line).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation<'t> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: String,
    pub sport: u16,
    pub dport: u16,
    /// `local` | `forward` | `pass` | `drop`.
    pub action: &'static str,
    pub tier: Option<Tier>,
    /// Why: `egress`, `reply`, `decapsulate`, `not_egress` or a drop reason.
    pub reason: &'static str,
    pub target_server: Option<&'t str>,
    pub target_underlay: Option<Ipv4Addr>,
    pub target_datacenter: Option<&'t str>,
    pub target_location: Option<&'t str>,
    /// Outer UDP source port of the encapsulated packet (`fou`).
    pub outer_sport: Option<u16>,
    /// For a TCP or UDP reply to an IPv4 egress address: the server owning the slice of its
    /// destination port (contract 7.1), whose connection it is.
    pub slice_owner: Option<&'t str>,
}

impl<'t> Explanation<'t> {
    fn base(
        flow: &FlowSpec,
        action: &'static str,
        tier: Option<Tier>,
        reason: &'static str,
    ) -> Self {
        Self {
            src: flow.src,
            dst: flow.dst,
            proto: proto_name(flow.proto),
            sport: flow.sport,
            dport: flow.dport,
            action,
            tier,
            reason,
            target_server: None,
            target_underlay: None,
            target_datacenter: None,
            target_location: None,
            outer_sport: None,
            slice_owner: None,
        }
    }
}

/// Explains a batch of flows (any size), in order.
pub fn explain_flows<'t>(
    table: &'t ForwardingTable,
    flows: &[FlowSpec],
    encap_port: u16,
) -> Vec<Explanation<'t>> {
    let keys: Vec<FlowKey> = flows
        .iter()
        .map(|f| f.key_v4().unwrap_or_default())
        .collect();
    let mut decisions = vec![Classified::Decided(Decision::Pass); flows.len()];
    table.decide_v4_burst(&keys, encap_port, &mut decisions);
    flows
        .iter()
        .zip(decisions)
        .map(|(flow, decision)| explain_one(table, flow, decision))
        .collect()
}

fn explain_one<'t>(
    table: &'t ForwardingTable,
    flow: &FlowSpec,
    classified: Classified,
) -> Explanation<'t> {
    if let (IpAddr::V6(src), IpAddr::V6(dst)) = (flow.src, flow.dst) {
        return match table.decide_v6(u128::from(src), u128::from(dst)) {
            DecisionV6::LocalEgress => {
                Explanation::base(flow, "local", Some(Tier::Ipv6Local), "egress")
            }
            DecisionV6::Reply => Explanation::base(flow, "local", None, "reply"),
            DecisionV6::Pass => Explanation::base(flow, "pass", None, "not_egress"),
        };
    }
    let decision = match classified {
        Classified::Fleet(FleetPacket::From(_)) => {
            return Explanation::base(flow, "local", None, "decapsulate")
        }
        Classified::Fleet(FleetPacket::UnknownPeer) => {
            return Explanation::base(flow, "drop", None, "unknown_peer")
        }
        Classified::Decided(decision) => decision,
    };
    match decision {
        Decision::LocalEgress { .. } => {
            Explanation::base(flow, "local", Some(Tier::Local), "egress")
        }
        Decision::Reply { .. } => Explanation {
            slice_owner: reply_slice_owner(table, flow),
            ..Explanation::base(flow, "local", None, "reply")
        },
        Decision::Pass => Explanation::base(flow, "pass", None, "not_egress"),
        Decision::Forward {
            tier,
            target,
            flow_hash,
        } => {
            let server = table.server(target);
            Explanation {
                target_server: Some(&server.name),
                target_underlay: Some(server.underlay),
                target_datacenter: Some(&server.datacenter),
                target_location: Some(&server.location),
                outer_sport: Some(outer_source_port(flow_hash)),
                ..Explanation::base(flow, "forward", Some(tier), "egress")
            }
        }
    }
}

/// The owner of the slice a TCP or UDP reply's destination port is in.
fn reply_slice_owner<'t>(table: &'t ForwardingTable, flow: &FlowSpec) -> Option<&'t str> {
    let IpAddr::V4(dst) = flow.dst else {
        return None;
    };
    if !matches!(flow.proto, PROTO_TCP | PROTO_UDP) {
        return None;
    }
    let pool = table.route_v4(u32::from(dst))?.pool;
    let owner = table.slice_owner(pool, flow.dport)?;
    Some(&table.server(owner).name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_lines_parse_or_say_why_not() {
        let f = FlowSpec::parse_line("tcp 198.51.100.1 40000 93.184.216.34 443")
            .unwrap()
            .unwrap();
        assert_eq!((f.proto, f.sport, f.dport), (6, 40000, 443));
        assert_eq!(FlowSpec::parse_line("  # comment").unwrap(), None);
        assert_eq!(FlowSpec::parse_line("").unwrap(), None);
        assert_eq!(
            FlowSpec::parse_line("47 10.0.0.1 0 10.0.0.2 0")
                .unwrap()
                .unwrap()
                .proto,
            47
        );
        assert!(FlowSpec::parse_line("tcp 1.2.3.4 1 5.6.7.8")
            .unwrap_err()
            .contains("found 4 fields"));
        assert!(FlowSpec::parse_line("sctpx 1.2.3.4 1 5.6.7.8 2")
            .unwrap_err()
            .contains("unknown protocol"));
        assert!(FlowSpec::parse_line("tcp 1.2.3.4 70000 5.6.7.8 2")
            .unwrap_err()
            .contains("not a port"));
        assert!(FlowSpec::parse_line("tcp 1.2.3.4 1 ::1 2")
            .unwrap_err()
            .contains("same IP version"));
        assert!(FlowSpec::parse_line("tcp 1.2.3 1 5.6.7.8 2")
            .unwrap_err()
            .contains("not an IP address"));
    }
}
