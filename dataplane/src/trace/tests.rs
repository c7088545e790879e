use super::*;
use crate::{MappingTable, Timeouts};

fn config() -> PipelineConfig {
    PipelineConfig::example()
}

fn table() -> ForwardingTable {
    crate::example_table()
}

fn packet(src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
    Packet {
        proto: PROTO_TCP,
        src: src.parse().unwrap(),
        sport,
        dst: dst.parse().unwrap(),
        dport,
        ttl: 64,
        size: 40,
        tcp_flags: 0x02,
        dont_fragment: true,
    }
}

/// Traces each packet in turn through one pipeline (mappings kept between them), and checks
/// that each trace's output is what the pipeline itself sends for that frame.
fn traced(cases: &[(Packet, Arrival)]) -> Vec<Trace> {
    let table = table();
    let config = config();
    let me = Ipv4Addr::from(table.my_underlay());
    let run = || {
        let (mappings, mut owners) = MappingTable::new(1, 1024, Timeouts::default(), 0);
        (
            mappings,
            Pipeline::new(config.clone(), owners.pop().unwrap()),
        )
    };
    let ((mappings, mut pipeline), (other_mappings, mut other)) = (run(), run());
    let ctx = Context {
        table: &table,
        mappings: &mappings,
        now: 0,
    };
    let other_ctx = Context {
        mappings: &other_mappings,
        ..ctx
    };
    cases
        .iter()
        .map(|(packet, arrival)| {
            let frame = frame(packet, *arrival, &config, me);
            let trace = trace(&mut pipeline, &ctx, &frame);
            let mut buf = VecBuf::new(&frame);
            assert_eq!(other.process(&other_ctx, &mut buf), trace.verdict);
            if !matches!(trace.verdict, Verdict::Drop(_)) {
                assert_eq!(buf.data(), &trace.output[..], "the pipeline's own output");
            }
            trace
        })
        .collect()
}

#[test]
fn a_forwarded_flow_shows_its_tunnel_and_the_inner_packet_one_hop_older() {
    let [t] = &traced(&[(
        packet("198.51.100.64", 40000, "93.184.216.34", 443),
        Arrival::Host,
    )])[..] else {
        unreachable!()
    };
    assert_eq!(t.verdict, Verdict::Uplink);
    assert!(
        t.counted.contains(&"tier same_dc".to_owned()),
        "{:?}",
        t.counted
    );
    assert!(t.counted.contains(&"pins_created".to_owned()));
    assert!(t.counted.contains(&"mss_clamped".to_owned()));
    // The tunnel goes to the holder `explain` names.
    let flows = [topology::explain::FlowSpec::new(
        PROTO_TCP,
        "198.51.100.64".parse().unwrap(),
        40000,
        "93.184.216.34".parse().unwrap(),
        443,
    )
    .unwrap()];
    let table = table();
    let explained = topology::explain::explain_flows(&table, &flows, 6080);
    let holder = explained[0].target_server.unwrap();
    let sent = t.sent.as_deref().unwrap();
    assert!(
        sent.starts_with(&format!(
            "encapsulated (fou) 10.10.1.1 -> {} ({holder}): tcp 198.51.100.64:40000 -> 93.184.216.34:443 [S] ttl 63;",
            explained[0].target_underlay.unwrap()
        )),
        "{sent}"
    );
}

#[test]
fn a_fleet_packet_is_decapsulated_then_egresses_here() {
    let [t] = &traced(&[(
        packet("198.51.100.1", 40000, "93.184.216.34", 443),
        Arrival::Peer(Ipv4Addr::new(10, 20, 1, 2)),
    )])[..] else {
        unreachable!()
    };
    assert_eq!(t.verdict, Verdict::Uplink);
    for counter in ["decapsulated", "tier local", "mappings_created"] {
        assert!(
            t.counted.contains(&counter.to_owned()),
            "{counter}: {:?}",
            t.counted
        );
    }
    let sent = t.sent.as_deref().unwrap();
    assert!(sent.starts_with("tcp 198.51.100.1:"), "{sent}");
    assert!(sent.ends_with("-> 93.184.216.34:443 [S] ttl 63"), "{sent}");
}

#[test]
fn replies_show_where_they_went() {
    let table = table();
    let acme = table
        .route_v4(u32::from(Ipv4Addr::new(198, 51, 100, 1)))
        .unwrap()
        .pool;
    let owner = |port: u16| {
        table
            .slice_owner(acme, port)
            .map(|s| table.server(s).name.clone())
    };
    let theirs = (1024..u16::MAX)
        .find(|&p| owner(p).as_deref() == Some("cdg01-b"))
        .unwrap();
    let mut reply = packet("93.184.216.34", 443, "198.51.100.1", theirs);
    reply.tcp_flags = 0x12;
    let traces = traced(&[(reply, Arrival::Uplink)]);
    let t = &traces[0];
    assert_eq!(t.verdict, Verdict::Uplink);
    // A SYN-ACK entering a tunnel is clamped too.
    assert_eq!(
        t.counted,
        vec!["replies_steered".to_owned(), "mss_clamped".to_owned()]
    );
    assert!(
        t.sent.as_deref().unwrap().starts_with(&format!(
            "encapsulated (fou) 10.10.1.1 -> 10.20.1.2 (cdg01-b): tcp 93.184.216.34:443 -> 198.51.100.1:{theirs} [SA] ttl 63"
        )),
        "{:?}",
        t.sent
    );
}

#[test]
fn ttl_and_mtu_cases_show_the_drop_or_the_icmp_error() {
    let mut expiring = packet("198.51.100.64", 40001, "93.184.216.34", 443);
    expiring.ttl = 1;
    let mut big = packet("198.51.100.64", 40002, "93.184.216.34", 443);
    big.size = 1500;
    big.tcp_flags = 0x10;
    let mut expiring_here = packet("198.51.100.1", 40003, "93.184.216.34", 443);
    expiring_here.ttl = 1;
    let traces = traced(&[
        (expiring, Arrival::Host),
        (big, Arrival::Host),
        (expiring_here, Arrival::Host),
    ]);
    assert_eq!(
        traces[2].counted,
        vec!["drop ttl_exceeded".to_owned()],
        "no mapping either"
    );
    assert_eq!(traces[0].verdict, Verdict::Drop(DropReason::TtlExceeded));
    assert!(
        traces[0].counted.contains(&"drop ttl_exceeded".to_owned()),
        "{:?}",
        traces[0].counted
    );
    assert!(traces[0].output.is_empty() && traces[0].sent.is_none());
    assert!(
        !traces[0]
            .counted
            .iter()
            .any(|c| c.starts_with("pins") || c.starts_with("tier")),
        "a packet that dies here leaves no state: {:?}",
        traces[0].counted
    );
    // 1500 bytes and the tunnel's 28 exceed the fabric's 1500: the host hears why.
    assert_eq!(traces[1].verdict, Verdict::Host);
    assert!(
        traces[1].counted.contains(&"icmp_frag_needed".to_owned()),
        "{:?}",
        traces[1].counted
    );
    let sent = traces[1].sent.as_deref().unwrap();
    assert!(
        sent.contains("-> 198.51.100.64 type 3 code 4 (fragmentation needed, mtu 1472)"),
        "{sent}"
    );
}

#[test]
fn frames_carry_valid_checksums_in_every_layer() {
    let config = config();
    for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP] {
        let mut p = packet("198.51.100.64", 40000, "93.184.216.34", 443);
        p.proto = proto;
        p.size = 100;
        let f = frame(
            &p,
            Arrival::Peer(Ipv4Addr::new(10, 10, 1, 2)),
            &config,
            Ipv4Addr::new(10, 10, 1, 1),
        );
        let outer = &f[14..34];
        assert_eq!(checksum::sum(outer), 0xffff);
        let inner = &f[14 + 28..];
        assert_eq!(inner.len(), 100);
        assert_eq!(checksum::sum(&inner[..20]), 0xffff);
        let l4 = &inner[20..];
        let mut pseudo = Vec::new();
        if proto != PROTO_ICMP {
            pseudo.extend_from_slice(&inner[12..20]);
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        }
        pseudo.extend_from_slice(l4);
        assert_eq!(checksum::sum(&pseudo), 0xffff, "protocol {proto}");
    }
}

proptest::proptest! {
    #[test]
    fn describing_arbitrary_bytes_never_panics(frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
        let table = table();
        let _ = describe(&table, &frame, 6080);
    }
}

#[test]
fn ipv6_frames_carry_a_valid_l4_checksum() {
    let mut p = packet("2001:db8:1::5", 40000, "2001:db8:ff::1", 443);
    p.size = 100;
    let f = frame(&p, Arrival::Host, &config(), Ipv4Addr::new(10, 10, 1, 1));
    let ip = &f[14..];
    assert_eq!((ip[0] >> 4, ip.len()), (6, 100));
    let l4 = &ip[40..];
    let mut pseudo = ip[8..40].to_vec();
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, PROTO_TCP]);
    pseudo.extend_from_slice(l4);
    assert_eq!(checksum::sum(&pseudo), 0xffff);
}
