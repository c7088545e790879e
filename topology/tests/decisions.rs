//! Contract section 1 on the bundled example fleet: every tier, every decision kind, from
//! several servers' points of view.

use std::net::Ipv4Addr;

use topology::explain::{explain_flows, FlowSpec};
use topology::hash::{PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP};
use topology::{
    parse, Classified, Decision, DecisionV6, FleetPacket, FlowKey, ForwardingTable, Tier, Topology,
};

fn example() -> Topology {
    topology::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/fleet.toml"
    )))
    .unwrap()
}

fn ip(text: &str) -> u32 {
    u32::from(text.parse::<Ipv4Addr>().unwrap())
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
    FlowKey::new(ip(src), ip(dst), PROTO_TCP, Some((sport, dport)))
}

fn tier_of_pool(table: &ForwardingTable, pool: &str) -> (Tier, Vec<String>) {
    let route = table
        .routes()
        .iter()
        .find(|r| table.pool_name(r.pool) == pool)
        .unwrap();
    (
        route.tier,
        route
            .candidates
            .iter()
            .map(|h| table.server(h.server).name.clone())
            .collect(),
    )
}

#[test]
fn every_tier_from_lhr01_a() {
    let table = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    assert_eq!(
        tier_of_pool(&table, "acme"),
        (Tier::Local, vec!["lhr01-a".to_owned()])
    );
    assert_eq!(
        tier_of_pool(&table, "globex"),
        (
            Tier::SameDc,
            vec!["lhr01-b".to_owned(), "lhr01-c".to_owned()]
        )
    );
    assert_eq!(
        tier_of_pool(&table, "initech"),
        (Tier::SameLocation, vec!["lhr02-a".to_owned()])
    );
    assert_eq!(
        tier_of_pool(&table, "umbrella"),
        (
            Tier::NearestLocation,
            vec!["cdg01-a".to_owned(), "cdg01-b".to_owned()]
        )
    );
    assert_eq!(
        tier_of_pool(&table, "hooli"),
        (Tier::NearestLocation, vec!["fra01-a".to_owned()])
    );
    assert_eq!(table.local_addresses(), 4);
}

#[test]
fn the_first_tier_that_applies_wins_from_other_servers() {
    let topology = example();
    // cdg01-b holds acme itself; cdg01-a shares its data center with cdg01-b.
    let cdg_b = ForwardingTable::compile(&topology, "cdg01-b").unwrap();
    assert_eq!(tier_of_pool(&cdg_b, "acme").0, Tier::Local);
    let cdg_a = ForwardingTable::compile(&topology, "cdg01-a").unwrap();
    assert_eq!(
        tier_of_pool(&cdg_a, "acme"),
        (Tier::SameDc, vec!["cdg01-b".to_owned()])
    );
    // lhr02-a: globex is held in lhr01 (same location, other data center) and in fra:
    // same_location wins over a nearer-by-distance location.
    let lhr_2 = ForwardingTable::compile(&topology, "lhr02-a").unwrap();
    assert_eq!(
        tier_of_pool(&lhr_2, "globex"),
        (
            Tier::SameLocation,
            vec!["lhr01-b".to_owned(), "lhr01-c".to_owned()]
        )
    );
    assert_eq!(tier_of_pool(&lhr_2, "initech").0, Tier::Local);
    // From Singapore, Frankfurt (~10,270 km) is nearer than London (~10,880 km).
    let sin = ForwardingTable::compile(&topology, "sin01-a").unwrap();
    assert_eq!(
        tier_of_pool(&sin, "globex"),
        (Tier::NearestLocation, vec!["fra01-a".to_owned()])
    );
    assert_eq!(tier_of_pool(&sin, "umbrella").0, Tier::Local);
}

#[test]
fn distance_ties_are_broken_by_location_name() {
    // Two locations at exactly the same distance (mirror images across the meridian).
    let text = r#"version = 1
[[location]]
name = "home"
latitude = 0.0
longitude = 0.0
[[location]]
name = "west"
latitude = 0.0
longitude = -10.0
[[location]]
name = "east"
latitude = 0.0
longitude = 10.0
[[datacenter]]
name = "home1"
location = "home"
[[datacenter]]
name = "west1"
location = "west"
[[datacenter]]
name = "east1"
location = "east"
[[server]]
name = "h"
datacenter = "home1"
underlay = "10.0.0.1"
[[server]]
name = "w"
datacenter = "west1"
underlay = "10.0.0.2"
[[server]]
name = "e"
datacenter = "east1"
underlay = "10.0.0.3"
[[pool]]
name = "p"
holders = [{ server = "w" }, { server = "e" }]
[[egress]]
prefix = "192.0.2.0/24"
pool = "p"
"#;
    let table = ForwardingTable::compile(&parse("t.toml", text).unwrap(), "h").unwrap();
    assert_eq!(
        tier_of_pool(&table, "p"),
        (Tier::NearestLocation, vec!["e".to_owned()]),
        "`east` < `west`"
    );
    assert!((topology::table::distance_km(0.0, 0.0, 0.0, 10.0) - 1111.95).abs() < 0.1);
}

#[test]
fn decisions_for_each_kind_of_packet() {
    let table = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    let classified = |f: FlowKey| table.decide_v4(&f, 6080);
    let d = |f: FlowKey| match classified(f) {
        Classified::Decided(decision) => decision,
        fleet => panic!("{fleet:?} is not decided"),
    };

    let acme = table.route_v4(ip("198.51.100.1")).unwrap().pool;
    assert_eq!(
        d(tcp("198.51.100.1", 40000, "93.184.216.34", 443)),
        Decision::LocalEgress { pool: acme }
    );
    match d(tcp("198.51.100.70", 40000, "93.184.216.34", 443)) {
        Decision::Forward {
            tier: Tier::SameDc,
            target,
            ..
        } => {
            assert!(["lhr01-b", "lhr01-c"].contains(&table.server(target).name.as_str()))
        }
        other => panic!("{other:?}"),
    }
    match d(tcp("203.0.113.3", 1, "93.184.216.34", 80)) {
        Decision::Forward {
            tier: Tier::SameLocation,
            target,
            ..
        } => assert_eq!(table.server(target).name, "lhr02-a"),
        other => panic!("{other:?}"),
    }
    match d(tcp("192.0.2.10", 1, "93.184.216.34", 80)) {
        Decision::Forward {
            tier: Tier::NearestLocation,
            target,
            ..
        } => assert_eq!(table.server(target).name, "fra01-a"),
        other => panic!("{other:?}"),
    }
    // A reply from an origin to an egress address.
    assert_eq!(
        d(tcp("93.184.216.34", 443, "198.51.100.70", 40000)),
        Decision::Reply {
            pool: table.route_v4(ip("198.51.100.70")).unwrap().pool
        }
    );
    // Fleet packets: FOU on the encap port, or IP-in-IP, to our underlay, from a fleet server.
    let fou = FlowKey::new(
        ip("10.20.1.1"),
        ip("10.10.1.1"),
        PROTO_UDP,
        Some((50000, 6080)),
    );
    assert_eq!(
        classified(fou),
        Classified::Fleet(FleetPacket::From(table.peer(ip("10.20.1.1")).unwrap()))
    );
    let ipip = FlowKey::new(ip("10.10.1.2"), ip("10.10.1.1"), PROTO_IPIP, None);
    assert!(matches!(
        classified(ipip),
        Classified::Fleet(FleetPacket::From(_))
    ));
    let stranger = FlowKey::new(
        ip("192.0.2.99"),
        ip("10.10.1.1"),
        PROTO_UDP,
        Some((50000, 6080)),
    );
    assert_eq!(
        classified(stranger),
        Classified::Fleet(FleetPacket::UnknownPeer)
    );
    // Our own underlay as the outer source is no peer either (hardening).
    let from_ourselves = FlowKey::new(ip("10.10.1.1"), ip("10.10.1.1"), PROTO_IPIP, None);
    assert_eq!(
        classified(from_ourselves),
        Classified::Fleet(FleetPacket::UnknownPeer)
    );
    // Other traffic to our underlay (SSH, another UDP port) is not a fleet packet.
    assert_eq!(d(tcp("10.20.1.1", 50000, "10.10.1.1", 22)), Decision::Pass);
    assert_eq!(
        d(FlowKey::new(
            ip("10.20.1.1"),
            ip("10.10.1.1"),
            PROTO_UDP,
            Some((1, 53))
        )),
        Decision::Pass
    );
    assert_eq!(
        table.decide_v4(&fou, 7777),
        Classified::Decided(Decision::Pass),
        "the encap port is configurable"
    );
    assert_eq!(
        d(FlowKey::new(ip("8.8.8.8"), ip("1.1.1.1"), PROTO_ICMP, None)),
        Decision::Pass
    );

    let v6 = |t: &str| u128::from(t.parse::<std::net::Ipv6Addr>().unwrap());
    assert_eq!(
        table.decide_v6(v6("2001:db8:1::5"), v6("2606:4700::1")),
        DecisionV6::LocalEgress
    );
    assert_eq!(
        table.decide_v6(v6("2606:4700::1"), v6("2001:db8:2::5")),
        DecisionV6::Reply
    );
    assert_eq!(
        table.decide_v6(v6("2606:4700::1"), v6("2606:4700::2")),
        DecisionV6::Pass
    );
}

#[test]
fn burst_and_single_decisions_agree() {
    let table = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    let mut state = 1u64;
    let flows: Vec<FlowKey> = (0..1000)
        .map(|_| {
            state = topology::hash::mix64(state + 1);
            let egress = [
                ip("198.51.100.1"),
                ip("198.51.100.70"),
                ip("203.0.113.200"),
                ip("192.0.2.10"),
                ip("8.8.8.8"),
            ];
            let src = egress[(state % 5) as usize];
            FlowKey::new(
                src,
                (state >> 32) as u32,
                PROTO_TCP,
                Some(((state >> 8) as u16, 443)),
            )
        })
        .collect();
    let mut burst = vec![Classified::Decided(Decision::Pass); flows.len()];
    table.decide_v4_burst(&flows, 6080, &mut burst);
    for (f, b) in flows.iter().zip(&burst) {
        assert_eq!(table.decide_v4(f, 6080), *b);
    }
}

#[test]
fn explain_reports_every_field_of_the_contract() {
    let table = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    let flows: Vec<FlowSpec> = [
        "tcp 198.51.100.1 40000 93.184.216.34 443",
        "tcp 203.0.113.1 40000 93.184.216.34 443",
        "udp 2001:db8:1::1 5353 2606:4700::1 53",
        "icmp 8.8.8.8 0 1.1.1.1 0",
        "udp 192.0.2.200 50000 10.10.1.1 6080",
        "tcp 93.184.216.34 443 198.51.100.2 40000",
    ]
    .iter()
    .map(|l| FlowSpec::parse_line(l).unwrap().unwrap())
    .collect();
    let lines: Vec<serde_json::Value> = explain_flows(&table, &flows, 6080)
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();

    assert_eq!(lines[0]["action"], "local");
    assert_eq!(lines[0]["tier"], "local");
    assert_eq!(lines[0]["target_server"], serde_json::Value::Null);

    let fwd = &lines[1];
    assert_eq!(fwd["src"], "203.0.113.1");
    assert_eq!(fwd["dst"], "93.184.216.34");
    assert_eq!(fwd["proto"], "tcp");
    assert_eq!(
        (fwd["sport"].as_u64(), fwd["dport"].as_u64()),
        (Some(40000), Some(443))
    );
    assert_eq!(fwd["action"], "forward");
    assert_eq!(fwd["tier"], "same_location");
    assert_eq!(fwd["target_server"], "lhr02-a");
    assert_eq!(fwd["target_underlay"], "10.10.2.1");
    assert_eq!(fwd["target_datacenter"], "lhr02");
    assert_eq!(fwd["target_location"], "lhr");
    assert!(fwd["outer_sport"].as_u64().unwrap() >= 49152);

    assert_eq!(
        (lines[2]["action"].as_str(), lines[2]["tier"].as_str()),
        (Some("local"), Some("ipv6_local"))
    );
    assert_eq!(
        (lines[3]["action"].as_str(), lines[3]["tier"].clone()),
        (Some("pass"), serde_json::Value::Null)
    );
    assert_eq!(
        (lines[4]["action"].as_str(), lines[4]["reason"].as_str()),
        (Some("drop"), Some("unknown_peer"))
    );
    assert_eq!(
        (lines[5]["action"].as_str(), lines[5]["reason"].as_str()),
        (Some("local"), Some("reply"))
    );
}

/// The example fleet with some holders drained.
fn drained(edits: &[(&str, &str)]) -> Topology {
    let mut text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml"))
            .unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    parse("fleet.toml", &text).unwrap()
}

#[test]
fn a_drained_holder_takes_no_new_flows_and_keeps_its_slices() {
    // lhr01-b drained: globex's same-DC flows all go to lhr01-c.
    let topology = drained(&[(
        "{ server = \"lhr01-b\", weight = 2 }",
        "{ server = \"lhr01-b\", weight = 2, drain = true }",
    )]);
    let table = ForwardingTable::compile(&topology, "lhr01-a").unwrap();
    assert_eq!(
        tier_of_pool(&table, "globex"),
        (Tier::SameDc, vec!["lhr01-c".to_owned()])
    );
    // Its slices do not move: the same owners as with lhr01-b undrained.
    let before = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    let globex = table
        .routes()
        .iter()
        .find(|r| table.pool_name(r.pool) == "globex")
        .unwrap()
        .pool;
    assert_eq!(table.slice_map(globex), before.slice_map(globex));
    let lhr01_b = topology.server_by_name("lhr01-b").unwrap();
    assert!(table.slice_map(globex).contains(&lhr01_b));

    // Both same-DC holders drained: the cascade goes on to the next tier that has one.
    let topology = drained(&[
        (
            "{ server = \"lhr01-b\", weight = 2 }",
            "{ server = \"lhr01-b\", weight = 2, drain = true }",
        ),
        (
            "{ server = \"lhr01-c\" }",
            "{ server = \"lhr01-c\", drain = true }",
        ),
    ]);
    let table = ForwardingTable::compile(&topology, "lhr01-a").unwrap();
    assert_eq!(
        tier_of_pool(&table, "globex"),
        (Tier::NearestLocation, vec!["fra01-a".to_owned()])
    );
}

#[test]
fn a_drained_server_does_not_egress_its_own_new_flows() {
    let topology = drained(&[(
        "{ server = \"lhr01-a\", weight = 2 }",
        "{ server = \"lhr01-a\", weight = 2, drain = true }",
    )]);
    let table = ForwardingTable::compile(&topology, "lhr01-a").unwrap();
    assert_eq!(
        tier_of_pool(&table, "acme"),
        (Tier::NearestLocation, vec!["cdg01-b".to_owned()])
    );
    assert_eq!(
        table.decide_v4(&tcp("198.51.100.1", 40000, "93.184.216.34", 443), 6080),
        Classified::Decided(Decision::Forward {
            tier: Tier::NearestLocation,
            target: topology.server_by_name("cdg01-b").unwrap(),
            flow_hash: tcp("198.51.100.1", 40000, "93.184.216.34", 443).hash(),
        })
    );
}

#[test]
fn explain_names_the_slice_owner_of_a_reply() {
    let table = ForwardingTable::compile(&example(), "lhr01-a").unwrap();
    let acme = table.route_v4(ip("198.51.100.1")).unwrap().pool;
    let flows: Vec<FlowSpec> = [1023u16, 1024, 30000, 65535]
        .iter()
        .map(|&port| {
            FlowSpec::parse_line(&format!("tcp 93.184.216.34 443 198.51.100.1 {port}"))
                .unwrap()
                .unwrap()
        })
        .collect();
    let out = explain_flows(&table, &flows, 6080);
    assert_eq!(out[0].slice_owner, None, "no slice below 1024");
    for (e, port) in out.iter().zip([1023u16, 1024, 30000, 65535]).skip(1) {
        let owner = table.slice_owner(acme, port).unwrap();
        assert_eq!(e.slice_owner, Some(table.server(owner).name.as_str()));
        assert_eq!(e.reason, "reply");
    }
    // Not a reply, no owner.
    let egress = FlowSpec::parse_line("tcp 198.51.100.1 40000 93.184.216.34 443")
        .unwrap()
        .unwrap();
    assert_eq!(explain_flows(&table, &[egress], 6080)[0].slice_owner, None);
}
