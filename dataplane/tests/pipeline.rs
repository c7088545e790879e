//! The pipeline's drop reasons (one crafted packet each), and its properties: arbitrary bytes
//! never panic; encapsulate-then-decapsulate gives the original back; outer ports spread.

use dataplane::buf::PacketBuf;
use dataplane::wire::checksum;
use dataplane::{
    Context, DropReason, Encap, MappingTable, Pipeline, PipelineConfig, PortAddrs, Timeouts,
    VecBuf, Verdict,
};
use proptest::prelude::*;
use topology::ForwardingTable;

const UPLINK: PortAddrs = PortAddrs {
    mac: [2, 0, 0, 0, 0, 0x0a],
    next_hop: [2, 0, 0, 0, 0, 0xfe],
};
const HOST: PortAddrs = PortAddrs {
    mac: [2, 0, 0, 0, 0, 0x0b],
    next_hop: [2, 0, 0, 0, 0, 0x01],
};

fn fleet() -> topology::Topology {
    topology::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../topology/examples/fleet.toml"
    )))
    .unwrap()
}

fn config(encap: Encap) -> PipelineConfig {
    PipelineConfig {
        encap,
        encap_port: 6080,
        mtu: 1500,
        underlay_mtu: 1500,
        mss_clamp: None,
        uplink: UPLINK,
        host: HOST,
    }
}

/// The compiled table of a server of the example fleet, compiled once per test process.
fn table(server: &str) -> &'static ForwardingTable {
    static TABLES: std::sync::OnceLock<Vec<ForwardingTable>> = std::sync::OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let fleet = fleet();
        fleet
            .servers
            .iter()
            .map(|s| ForwardingTable::compile(&fleet, &s.name).unwrap())
            .collect()
    });
    tables
        .iter()
        .find(|t| t.server(t.me()).name == server)
        .expect("server of the example fleet")
}

struct Rig {
    table: &'static ForwardingTable,
    mappings: MappingTable,
    pipeline: Pipeline,
}

impl Rig {
    fn new(server: &str, encap: Encap) -> Self {
        Self::with(server, config(encap))
    }

    fn with(server: &str, config: PipelineConfig) -> Self {
        Self::with_timeouts(server, config, Timeouts::default())
    }

    fn with_timeouts(server: &str, config: PipelineConfig, timeouts: Timeouts) -> Self {
        let (mappings, mut owners) = MappingTable::new(1, 4096, timeouts, 0);
        Self {
            table: table(server),
            mappings,
            pipeline: Pipeline::new(config, owners.pop().expect("one worker")),
        }
    }

    fn run(&mut self, buf: &mut VecBuf) -> Verdict {
        let ctx = Context {
            table: self.table,
            mappings: &self.mappings,
            now: 0,
        };
        self.pipeline.process(&ctx, buf)
    }

    /// `frame` through the pipeline deciding by `table` (another compilation, as a reload
    /// would swap in) at `now`: its verdict and the frame as it left.
    fn run_on(&mut self, table: &ForwardingTable, frame: &[u8], now: u32) -> (Verdict, VecBuf) {
        let ctx = Context {
            table,
            mappings: &self.mappings,
            now,
        };
        self.pipeline.expire(&ctx, 64);
        let mut buf = VecBuf::new(frame);
        (self.pipeline.process(&ctx, &mut buf), buf)
    }

    fn verdict(&mut self, frame: &[u8]) -> Verdict {
        self.run(&mut VecBuf::new(frame))
    }
}

/// Ethernet + IPv4 (+ `l4`), valid checksum.
fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, flags: u16, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 0x77, 0x08, 0x00];
    let total = 20 + l4.len();
    let mut h = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        (flags >> 8) as u8,
        flags as u8,
        ttl,
        proto,
        0,
        0,
    ];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t.extend_from_slice(payload);
    t
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

const EGRESS_LOCAL: [u8; 4] = [198, 51, 100, 1];
const EGRESS_SAME_LOCATION: [u8; 4] = [203, 0, 113, 1];
const ORIGIN: [u8; 4] = [93, 184, 216, 34];
const ME: [u8; 4] = [10, 10, 1, 1];
const PEER: [u8; 4] = [10, 20, 1, 1];

fn fou_from(peer: [u8; 4], inner_ip: &[u8]) -> Vec<u8> {
    ipv4_frame(peer, ME, 17, 64, 0x4000, &udp(51000, 6080, inner_ip))
}

fn drop_of(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

#[test]
fn each_malformed_kind_is_dropped_with_its_reason() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let good = ipv4_frame(EGRESS_LOCAL, ORIGIN, 6, 64, 0x4000, &tcp(1, 443, b""));
    assert_eq!(rig.verdict(&good), Verdict::Uplink);

    assert_eq!(
        rig.verdict(&good[..13]),
        drop_of(DropReason::Truncated),
        "runt frame"
    );
    assert_eq!(
        rig.verdict(&good[..14 + 19]),
        drop_of(DropReason::Truncated),
        "IPv4 header cut"
    );
    let short_ports = ipv4_frame(EGRESS_LOCAL, ORIGIN, 6, 64, 0, &[0, 1, 2]);
    assert_eq!(
        rig.verdict(&short_ports),
        drop_of(DropReason::Truncated),
        "TCP without room for ports"
    );

    let mut v = good.clone();
    v[14] = 0x65;
    assert_eq!(rig.verdict(&v), drop_of(DropReason::BadVersion));
    let mut v = good.clone();
    v[12..14].copy_from_slice(&[0x86, 0xdd]);
    v.resize(14 + 40, 0);
    assert_eq!(
        rig.verdict(&v),
        drop_of(DropReason::BadVersion),
        "IPv4 bytes under the IPv6 ethertype"
    );

    let mut v = good.clone();
    v[14] = 0x44;
    assert_eq!(rig.verdict(&v), drop_of(DropReason::BadHeaderLength));

    let mut v = good.clone();
    v[17] = v[17].wrapping_add(1); // total length one byte beyond the frame
    assert_eq!(rig.verdict(&v), drop_of(DropReason::BadTotalLength));
    let mut v6 = vec![
        2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 0x77, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 9, 17, 64,
    ];
    v6.extend_from_slice(&[0; 32]);
    v6.extend_from_slice(&[0; 8]);
    assert_eq!(
        rig.verdict(&v6),
        drop_of(DropReason::BadTotalLength),
        "IPv6 payload beyond the frame"
    );

    let mut v = good.clone();
    v[24] ^= 0x01; // checksum byte
    assert_eq!(rig.verdict(&v), drop_of(DropReason::BadChecksum));

    let counted: u64 = rig.pipeline.counters.total_drops();
    assert_eq!(counted, 9, "every drop is counted");
    assert_eq!(
        rig.pipeline.counters.drops[DropReason::Truncated.index()],
        3
    );
}

#[test]
fn strangers_cannot_inject_and_peers_only_send_egress_traffic() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let inner = ipv4_frame(EGRESS_LOCAL, ORIGIN, 6, 64, 0, &tcp(1, 443, b"x"))[14..].to_vec();
    assert_eq!(rig.verdict(&fou_from(PEER, &inner)), Verdict::Uplink);
    assert_eq!(
        rig.verdict(&fou_from([192, 0, 2, 99], &inner)),
        drop_of(DropReason::UnknownPeer)
    );
    let ipip = ipv4_frame([192, 0, 2, 99], ME, 4, 64, 0, &inner);
    assert_eq!(rig.verdict(&ipip), drop_of(DropReason::UnknownPeer));

    let bad_inner = |rig: &mut Rig, inner: &[u8], why: &str| {
        assert_eq!(
            rig.verdict(&fou_from(PEER, inner)),
            drop_of(DropReason::BadInner),
            "{why}"
        );
    };
    let not_egress = ipv4_frame([1, 1, 1, 1], ORIGIN, 6, 64, 0, &tcp(1, 443, b""))[14..].to_vec();
    bad_inner(
        &mut rig,
        &not_egress,
        "inner neither from nor to an egress address",
    );
    let nested = ipv4_frame(PEER, ME, 17, 64, 0, &udp(1, 6080, &inner))[14..].to_vec();
    bad_inner(&mut rig, &nested, "inner itself encapsulated to us");
    let mut corrupt = inner.clone();
    corrupt[10] ^= 0xff;
    bad_inner(&mut rig, &corrupt, "inner checksum");
    bad_inner(&mut rig, &inner[..19], "inner truncated");
    bad_inner(&mut rig, &[0x60; 48], "IPv6 inside");
    let mut gue_control = vec![0x20, 4, 0, 0];
    gue_control.extend_from_slice(&inner);
    bad_inner(&mut rig, &gue_control, "GUE control message");
    let fragmented = ipv4_frame(PEER, ME, 17, 64, 0x2000, &udp(51000, 6080, &inner));
    assert_eq!(
        rig.verdict(&fragmented),
        Verdict::Pass,
        "a UDP fragment carries no port: not a fleet packet"
    );
    let ipip_fragment = ipv4_frame(PEER, ME, 4, 64, 0x2000, &inner);
    assert_eq!(
        rig.verdict(&ipip_fragment),
        drop_of(DropReason::BadInner),
        "tunnel fragments are not reassembled"
    );
    let udp_short = ipv4_frame(PEER, ME, 17, 64, 0, &[0xc3, 0x50, 0x17, 0xc0, 0, 20, 0, 0]);
    assert_eq!(
        rig.verdict(&udp_short),
        drop_of(DropReason::BadInner),
        "UDP length beyond the datagram"
    );
}

#[test]
fn ttl_exceeded_everywhere_a_packet_is_routed() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let ttl = DropReason::TtlExceeded;
    assert_eq!(
        rig.verdict(&ipv4_frame(EGRESS_LOCAL, ORIGIN, 6, 1, 0, &tcp(1, 2, b""))),
        drop_of(ttl),
        "local egress"
    );
    assert_eq!(
        rig.verdict(&ipv4_frame(
            EGRESS_SAME_LOCATION,
            ORIGIN,
            6,
            1,
            0,
            &tcp(1, 2, b"")
        )),
        drop_of(ttl),
        "forward"
    );
    assert_eq!(
        rig.verdict(&ipv4_frame(
            EGRESS_SAME_LOCATION,
            ORIGIN,
            6,
            0,
            0,
            &tcp(1, 2, b"")
        )),
        drop_of(ttl),
        "TTL 0"
    );
    assert_eq!(
        rig.verdict(&ipv4_frame(ORIGIN, EGRESS_LOCAL, 6, 1, 0, &tcp(2, 1, b""))),
        drop_of(ttl),
        "reply to host"
    );
    assert_eq!(
        rig.verdict(&ipv4_frame(
            EGRESS_SAME_LOCATION,
            ORIGIN,
            6,
            2,
            0,
            &tcp(1, 2, b"")
        )),
        Verdict::Uplink
    );
    let mut v6 = vec![
        2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 0x77, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 59, 1,
    ];
    v6.extend_from_slice(&0x2001_0db8_0001_0000_0000_0000_0000_0001u128.to_be_bytes());
    v6.extend_from_slice(&[0x26; 16]);
    assert_eq!(rig.verdict(&v6), drop_of(ttl), "IPv6 hop limit");
    // A loop between servers is bounded by the TTL: re-forwarding a decapsulated packet
    // whose TTL ran out drops it.
    let inner = ipv4_frame(EGRESS_SAME_LOCATION, ORIGIN, 6, 1, 0, &tcp(1, 2, b""))[14..].to_vec();
    assert_eq!(rig.verdict(&fou_from(PEER, &inner)), drop_of(ttl));
}

#[test]
fn too_big_without_df_and_no_headroom() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    // IPv4 20 + TCP 20 + payload, plus 28 bytes of FOU, against an MTU of 1500.
    let big = ipv4_frame(
        EGRESS_SAME_LOCATION,
        ORIGIN,
        6,
        64,
        0,
        &tcp(1, 2, &[0; 1433]),
    );
    assert_eq!(rig.verdict(&big), drop_of(DropReason::TooBig));
    let fits = ipv4_frame(
        EGRESS_SAME_LOCATION,
        ORIGIN,
        6,
        64,
        0,
        &tcp(1, 2, &[0; 1432]),
    );
    assert_eq!(rig.verdict(&fits), Verdict::Uplink);
    let mut cramped = VecBuf::with_headroom(&fits, 27);
    assert_eq!(rig.run(&mut cramped), drop_of(DropReason::NoHeadroom));
    let mut ipip_rig = Rig::new("lhr01-a", Encap::Ipip);
    let mut roomy_enough = VecBuf::with_headroom(&fits, 20);
    assert_eq!(
        ipip_rig.run(&mut roomy_enough),
        Verdict::Uplink,
        "IP-in-IP needs 20 bytes"
    );
}

#[test]
fn ten_flows_differing_in_one_port_use_several_outer_ports() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let mut ports = std::collections::BTreeSet::new();
    for sport in 40000..40010 {
        let mut buf = VecBuf::new(&ipv4_frame(
            EGRESS_SAME_LOCATION,
            ORIGIN,
            6,
            64,
            0,
            &tcp(sport, 443, b""),
        ));
        assert_eq!(rig.run(&mut buf), Verdict::Uplink);
        let d = buf.data();
        ports.insert(u16::from_be_bytes([d[34], d[35]]));
        // The same flow again gets the same port.
        let mut again = VecBuf::new(&ipv4_frame(
            EGRESS_SAME_LOCATION,
            ORIGIN,
            6,
            64,
            0,
            &tcp(sport, 443, b""),
        ));
        rig.run(&mut again);
        assert_eq!(&again.data()[34..36], &d[34..36]);
    }
    assert!(ports.len() >= 2, "{ports:?}");
    assert!(ports.iter().all(|&p| p >= 49152));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200), headroom in 0usize..64) {
        let mut rig = Rig::new("lhr01-a", Encap::Fou);
        let mut buf = VecBuf::with_headroom(&frame, headroom);
        let _ = rig.run(&mut buf);
    }

    #[test]
    fn arbitrary_ip_payloads_never_panic(
        src in prop::sample::select(vec![EGRESS_LOCAL, EGRESS_SAME_LOCATION, ORIGIN, PEER, ME]),
        dst in prop::sample::select(vec![EGRESS_LOCAL, EGRESS_SAME_LOCATION, ORIGIN, PEER, ME]),
        proto in prop::sample::select(vec![1u8, 4, 6, 17, 47]),
        flags in prop::sample::select(vec![0u16, 0x4000, 0x2000, 0x0001]),
        ttl in any::<u8>(),
        l4 in proptest::collection::vec(any::<u8>(), 0..120),
        encap in prop::sample::select(vec![Encap::Fou, Encap::Ipip]),
    ) {
        // Valid outer headers around arbitrary contents reach the deep paths (decapsulation
        // of garbage, GUE parsing, ICMP building) instead of stopping at the first check.
        let mut rig = Rig::new("lhr01-a", encap);
        let frame = ipv4_frame(src, dst, proto, ttl, flags, &l4);
        let mut buf = VecBuf::new(&frame);
        let verdict = rig.run(&mut buf);
        if verdict == Verdict::Pass {
            prop_assert_eq!(buf.data(), &frame[..], "passed packets are unchanged");
        }
    }

    #[test]
    fn encapsulate_then_decapsulate_gives_the_packet_back(
        host in 0u8..16,
        sport in any::<u16>(),
        dport in any::<u16>(),
        tos in any::<u8>(),
        ttl in 3u8..=255,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        use_udp in any::<bool>(),
        encap in prop::sample::select(vec![Encap::Fou, Encap::Ipip]),
    ) {
        // From lhr01-a, 203.0.113.0/29 goes to lhr02-a, which holds it.
        let src = [203, 0, 113, host % 8];
        let l4 = if use_udp { udp(sport, dport, &payload) } else { tcp(sport, dport, &payload) };
        let mut original = ipv4_frame(src, ORIGIN, if use_udp { 17 } else { 6 }, ttl, 0x4000, &l4);
        original[15] = tos;
        let c = { original[24] = 0; original[25] = 0; checksum::checksum(&original[14..34]) };
        original[24..26].copy_from_slice(&c.to_be_bytes());

        let mut sender = Rig::new("lhr01-a", encap);
        let mut buf = VecBuf::new(&original);
        prop_assert_eq!(sender.run(&mut buf), Verdict::Uplink);
        let mut receiver = Rig::new("lhr02-a", encap);
        prop_assert_eq!(receiver.run(&mut buf), Verdict::Uplink, "the holder egresses it");
        let out = buf.data();
        prop_assert_eq!(out.len(), original.len());
        // Identical but for the Ethernet addresses, the TTL (one hop each) and the checksum.
        prop_assert_eq!(&out[14..22], &original[14..22]);
        prop_assert_eq!(out[22], ttl - 2);
        prop_assert_eq!(&out[23..24], &original[23..24]);
        // The source port is kept if it is in the holder's slices, else translated into
        // them (contract 7.2), with the L4 checksum updated; nothing else changes.
        let held = receiver.table.held_slices(receiver.table.route_v4(u32::from_be_bytes(src)).unwrap().pool).unwrap();
        let port_out = u16::from_be_bytes([out[34], out[35]]);
        let sum_at = if use_udp { 40 } else { 50 };
        prop_assert_eq!(&out[26..34], &original[26..34]);
        prop_assert_eq!(&out[36..sum_at], &original[36..sum_at]);
        prop_assert_eq!(&out[sum_at + 2..], &original[sum_at + 2..]);
        if held.is_mine(sport) {
            prop_assert_eq!(port_out, sport);
            prop_assert_eq!(&out[sum_at..sum_at + 2], &original[sum_at..sum_at + 2]);
        } else {
            prop_assert!(held.is_mine(port_out), "translated into the holder's slices");
            prop_assert_eq!(receiver.pipeline.counters.mappings_translated, 1);
            let old_sum = u16::from_be_bytes([original[sum_at], original[sum_at + 1]]);
            let new_sum = u16::from_be_bytes([out[sum_at], out[sum_at + 1]]);
            if !(use_udp && old_sum == 0) {
                prop_assert_eq!(new_sum, checksum::update(old_sum, sport, port_out));
            }
        }
        prop_assert_eq!(checksum::sum(&out[14..34]), 0xffff);
        prop_assert_eq!(receiver.pipeline.counters.decapsulated, 1);
        prop_assert_eq!(receiver.pipeline.counters.mappings_created, 1);
    }
}

#[test]
fn a_holder_that_owns_no_slice_lets_its_flows_leave_unmapped() {
    // Sixteen slices of 4096 ports, weighed 1 against 1000: lhr01-a wins none of them.
    let text = include_str!("../../topology/examples/fleet.toml").replacen(
        "version = 1\n",
        "version = 1\nport_slice = 4096\n",
        1,
    ) + "\n[[pool]]\nname = \"tiny\"\nholders = [{ server = \"lhr01-a\", weight = 1 }, \
           { server = \"lhr01-b\", weight = 1000 }]\n\
           \n[[egress]]\nprefix = \"192.0.2.20/32\"\npool = \"tiny\"\n";
    let fleet = topology::parse("fleet.toml", &text).unwrap();
    let table = ForwardingTable::compile(&fleet, "lhr01-a").unwrap();
    let tiny = fleet.pools.iter().position(|p| p.name == "tiny").unwrap();
    let held = table
        .held_slices(topology::PoolId(tiny as u32))
        .expect("lhr01-a holds the pool");
    assert_eq!(held.count(), 0, "the light holder owns no slice");
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let frame = ipv4_frame(
        [192, 0, 2, 20],
        [93, 184, 216, 34],
        17,
        64,
        0,
        &udp(40000, 53, b"q"),
    );
    let (verdict, buf) = rig.run_on(&table, &frame, 0);
    assert_eq!(verdict, Verdict::Uplink);
    // Left with its own port, and no mapping made (there is no port to give it).
    assert_eq!(&buf.data()[34..36], &40000u16.to_be_bytes());
    assert_eq!(rig.pipeline.mappings_in_use(), 0);
    assert_eq!(rig.pipeline.counters.total_drops(), 0);
}

#[test]
fn a_reply_for_a_slice_that_moved_here_gets_one_second_chance_at_its_previous_owner() {
    // Before: acme held by lhr01-a and cdg01-b. After: by lhr01-a alone, which takes over
    // every slice of cdg01-b's.
    let before = fleet();
    let text = include_str!("../../topology/examples/fleet.toml").replace(
        "holders = [{ server = \"lhr01-a\", weight = 2 }, { server = \"cdg01-b\" }]",
        "holders = [{ server = \"lhr01-a\", weight = 2 }]",
    );
    assert_ne!(text, include_str!("../../topology/examples/fleet.toml"));
    let after = topology::parse("fleet.toml", &text).unwrap();
    let old = ForwardingTable::compile(&before, "lhr01-a").unwrap();
    let mut new = ForwardingTable::compile(&after, "lhr01-a").unwrap();
    new.remember_previous(&old, 0, 100);
    let acme = topology::PoolId(before.pools.iter().position(|p| p.name == "acme").unwrap() as u32);
    let cdg01_b = old.peer(u32::from_be_bytes([10, 20, 1, 2])).unwrap();
    let moved = (1024..=u16::MAX)
        .find(|&p| old.slice_owner(acme, p) == Some(cdg01_b))
        .unwrap();
    let stayed = (1024..=u16::MAX)
        .find(|&p| old.slice_owner(acme, p) == Some(old.me()))
        .unwrap();

    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let mut run = |from: [u8; 4], port: u16, now: u32| {
        let reply = ipv4_frame(
            [93, 184, 216, 34],
            [198, 51, 100, 1],
            6,
            50,
            0,
            &tcp(443, port, b"r"),
        );
        let (verdict, buf) = rig.run_on(&new, &fou_from(from, &reply[14..]), now);
        (verdict, buf.data()[30..34].to_vec())
    };
    // Steered here by lhr01-b: no mapping here, the slice was cdg01-b's, so on to cdg01-b.
    let (verdict, outer_dst) = run([10, 10, 1, 2], moved, 50);
    assert_eq!(verdict, Verdict::Uplink);
    assert_eq!(outer_dst, [10, 20, 1, 2]);
    // Not back to cdg01-b when it is the one that passed it here; not for a slice that did
    // not move; not after the grace period.
    assert_eq!(
        run([10, 20, 1, 2], moved, 50).0,
        drop_of(DropReason::MisroutedReply)
    );
    assert_eq!(
        run([10, 10, 1, 2], stayed, 50).0,
        drop_of(DropReason::MisroutedReply)
    );
    assert_eq!(
        run([10, 10, 1, 2], moved, 101).0,
        drop_of(DropReason::MisroutedReply)
    );
    assert_eq!(rig.pipeline.counters.replies_second_chance, 1);
    // The same reply landing here directly from the origin goes on to cdg01-b too (only
    // within the grace; a port that did not move goes to the host, 7.3.3).
    let mut direct = |port: u16, now: u32| {
        let (verdict, buf) = rig.run_on(
            &new,
            &ipv4_frame(
                [93, 184, 216, 34],
                [198, 51, 100, 1],
                6,
                50,
                0,
                &tcp(443, port, b"r"),
            ),
            now,
        );
        (verdict, buf.data()[30..34].to_vec())
    };
    assert_eq!(direct(moved, 50), (Verdict::Uplink, vec![10, 20, 1, 2]));
    assert_eq!(direct(stayed, 50).0, Verdict::Host);
    assert_eq!(direct(moved, 101).0, Verdict::Host);
    // A grace of 0 keeps nothing, not even for the second it was published in.
    let mut graceless = ForwardingTable::compile(&after, "lhr01-a").unwrap();
    graceless.remember_previous(&old, 50, 50);
    assert_eq!(graceless.previous_owner(acme, moved, 50), None);
    // A table that replaced one with the same holders keeps nothing.
    let mut same = ForwardingTable::compile(&before, "lhr01-a").unwrap();
    same.remember_previous(&old, 0, 100);
    assert_eq!(same.previous_owner(acme, moved, 50), None);
    assert_eq!(same.previous_memory_bytes(), 5 * before.pools.len());
}

/// `frame` (Ethernet + IPv4) with IP ID `ident`, its header checksum recomputed.
fn with_ident(mut frame: Vec<u8>, ident: u16) -> Vec<u8> {
    frame[18..20].copy_from_slice(&ident.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
    frame
}

#[test]
fn a_reply_in_fragments_follows_its_first_fragment() {
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let local = [198, 51, 100, 2];
    // A flow from the peer egresses here (port 40001 is in lhr01-a's slices: kept).
    let flow = ipv4_frame(local, ORIGIN, 17, 63, 0, &udp(40001, 53, b"query"));
    assert_eq!(rig.verdict(&fou_from(PEER, &flow[14..])), Verdict::Uplink);
    // The answer in two fragments: the first with the UDP header (MF set), then the rest at
    // offset 16 bytes (2 units of 8).
    let first = with_ident(
        ipv4_frame(ORIGIN, local, 17, 50, 0x2000, &udp(53, 40001, b"12345678")),
        77,
    );
    let later = with_ident(
        ipv4_frame(ORIGIN, local, 17, 50, 2, b"tail of the answer"),
        77,
    );
    let stranger = with_ident(
        ipv4_frame(ORIGIN, local, 17, 50, 2, b"no first fragment"),
        78,
    );
    let mut outer_dst = Vec::new();
    for frame in [&first, &later] {
        let mut buf = VecBuf::new(frame);
        assert_eq!(rig.run(&mut buf), Verdict::Uplink);
        outer_dst.push(buf.data()[30..34].to_vec());
        // The fragment itself inside, unchanged but for its TTL.
        assert_eq!(&buf.data()[14 + 28 + 20..], &frame[34..]);
    }
    assert_eq!(
        outer_dst,
        [PEER.to_vec(), PEER.to_vec()],
        "both back to the peer"
    );
    assert_eq!(rig.verdict(&stranger), drop_of(DropReason::FragmentOrphan));
    let c = &rig.pipeline.counters;
    assert_eq!((c.replies_to_peer, c.fragments_followed), (1, 1));

    // Outbound in fragments, from a port outside lhr01-a's slices: the first fragment is
    // translated (port and UDP checksum), the later one leaves as it came.
    let acme = fleet().pools.iter().position(|p| p.name == "acme").unwrap();
    let held = rig
        .table
        .held_slices(topology::PoolId(acme as u32))
        .expect("acme is held here");
    let outside = (1024..=u16::MAX).find(|&p| !held.is_mine(p)).unwrap();
    // The datagram's UDP checksum covers both fragments' payloads and the pseudo-header.
    let udp_sum_ok = |header: &[u8], payload: &[u8]| {
        let mut all = [local, ORIGIN].concat();
        all.extend_from_slice(&[0, 17, 0, 20]);
        all.extend_from_slice(header);
        all.extend_from_slice(payload);
        checksum::checksum(&all) == 0
    };
    let mut header = udp(outside, 53, b"")[..8].to_vec();
    header[4..6].copy_from_slice(&20u16.to_be_bytes());
    let mut all = [local, ORIGIN].concat();
    all.extend_from_slice(&[0, 17, 0, 20]);
    all.extend_from_slice(&header);
    all.extend_from_slice(b"12345678tail");
    let sum = checksum::checksum(&all);
    header[6..8].copy_from_slice(&sum.to_be_bytes());
    assert!(udp_sum_ok(&header, b"12345678tail"));
    let first_out = with_ident(
        ipv4_frame(
            local,
            ORIGIN,
            17,
            64,
            0x2000,
            &[&header[..], b"12345678"].concat(),
        ),
        90,
    );
    let later_out = with_ident(ipv4_frame(local, ORIGIN, 17, 64, 2, b"tail"), 90);
    let mut buf = VecBuf::new(&first_out);
    assert_eq!(rig.run(&mut buf), Verdict::Uplink);
    let port = u16::from_be_bytes([buf.data()[34], buf.data()[35]]);
    assert!(
        port != outside && held.is_mine(port),
        "translated into the slices"
    );
    assert!(
        udp_sum_ok(&buf.data()[34..42], b"12345678tail"),
        "the datagram's UDP checksum follows the port"
    );
    let mut buf = VecBuf::new(&later_out);
    assert_eq!(rig.run(&mut buf), Verdict::Uplink);
    assert_eq!(&buf.data()[34..], &later_out[34..]);
}

/// The holders of the example fleet's pool `globex` (198.51.100.64/26): lhr01-a forwards its
/// flows to lhr01-b or lhr01-c.
const GLOBEX_HOLDERS: &str = "holders = [{ server = \"lhr01-b\", weight = 2 }, { server = \"lhr01-c\" }, { server = \"fra01-a\" }]";

/// `server`'s table of the example fleet with `globex`'s holders replaced by `holders`, as a
/// reload would compile it.
fn globex_held_by(holders: &str, server: &str) -> ForwardingTable {
    let text = include_str!("../../topology/examples/fleet.toml");
    assert!(text.contains(GLOBEX_HOLDERS));
    let fleet = topology::parse("fleet.toml", &text.replace(GLOBEX_HOLDERS, holders)).unwrap();
    ForwardingTable::compile(&fleet, server).unwrap()
}

/// The target `table` forwards `key` to, if it forwards it.
fn forward_target(table: &ForwardingTable, key: &topology::FlowKey) -> Option<topology::ServerId> {
    match table.decide_v4(key, 6080) {
        topology::Classified::Decided(topology::Decision::Forward { target, .. }) => Some(target),
        _ => None,
    }
}

#[test]
fn a_pinned_flow_keeps_its_target_across_swaps_while_it_holds_the_address() {
    let compile = |holders: &str| globex_held_by(holders, "lhr01-a");
    let before = compile(GLOBEX_HOLDERS);
    let reweighed = compile(
        "holders = [{ server = \"lhr01-b\" }, { server = \"lhr01-c\", weight = 9 }, { server = \"fra01-a\" }]",
    );
    let drained = compile(
        "holders = [{ server = \"lhr01-b\", weight = 2, drain = true }, { server = \"lhr01-c\" }, { server = \"fra01-a\" }]",
    );
    let without_b = compile("holders = [{ server = \"lhr01-c\" }, { server = \"fra01-a\" }]");
    let b = before.peer(u32::from_be_bytes([10, 10, 1, 2])).unwrap();
    let source = [198, 51, 100, 64];
    let target_of = |table: &ForwardingTable, sport: u16| {
        let key = topology::FlowKey {
            src: u32::from_be_bytes(source),
            dst: u32::from_be_bytes(ORIGIN),
            proto: 6,
            sport,
            dport: 443,
        };
        forward_target(table, &key)
    };
    // A flow the first table sends to lhr01-b and the reweighed one would send to lhr01-c.
    let sport = (1024..u16::MAX)
        .find(|&p| target_of(&before, p) == Some(b) && target_of(&reweighed, p) != Some(b))
        .unwrap();
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let mut send = |table: &ForwardingTable, sport: u16, flags: u8| {
        let mut segment = tcp(sport, 443, b"x");
        segment[13] = flags;
        let mut frame = ipv4_frame(source, ORIGIN, 6, 64, 0x4000, &segment);
        frame[0..6].copy_from_slice(&HOST.mac);
        let (verdict, buf) = rig.run_on(table, &frame, 0);
        assert_eq!(verdict, Verdict::Uplink);
        buf.data()[30..34].to_vec()
    };
    let to_b = vec![10, 10, 1, 2];
    let to_c = vec![10, 10, 1, 3];
    assert_eq!(send(&before, sport, 0x02), to_b, "pinned to lhr01-b");
    // Reweighed, then lhr01-b drained: the flow stays; a new flow of the same kind moves.
    assert_eq!(send(&reweighed, sport, 0x10), to_b);
    assert_eq!(send(&drained, sport, 0x10), to_b);
    let fresh = (1024..u16::MAX)
        .find(|&p| p != sport && target_of(&before, p) == Some(b))
        .unwrap();
    assert_eq!(
        send(&drained, fresh, 0x02),
        to_c,
        "a drained holder takes no new flow"
    );
    // lhr01-b left the pool: decided again, and pinned to the new target from then on.
    assert_eq!(send(&without_b, sport, 0x10), to_c);
    assert_eq!(send(&before, sport, 0x10), to_c, "re-pinned to lhr01-c");
    let c = &rig.pipeline.counters;
    assert_eq!((c.pins_created, c.pins_redecided), (2, 1));
    assert_eq!(rig.pipeline.pins_in_use(), 2);
}

#[test]
fn an_icmp_echo_flow_is_pinned_by_its_identifier() {
    let before = globex_held_by(GLOBEX_HOLDERS, "lhr01-a");
    let reweighed = globex_held_by(
        "holders = [{ server = \"lhr01-b\" }, { server = \"lhr01-c\", weight = 9 }, { server = \"fra01-a\" }]",
        "lhr01-a",
    );
    let (b, source) = (u32::from_be_bytes([10, 10, 1, 2]), [198, 51, 100, 64]);
    // Echo flows hash without their identifier: an origin the first table sends to lhr01-b
    // and the reweighed one elsewhere.
    let target_of = |table: &ForwardingTable, origin: u32| {
        let key = topology::FlowKey::new(u32::from_be_bytes(source), origin, 1, None);
        forward_target(table, &key).map(|t| table.underlay_of(t))
    };
    let origin = (0x5db8_d800..0x5db8_dfff)
        .find(|&o| target_of(&before, o) == Some(b) && target_of(&reweighed, o) != Some(b))
        .unwrap();
    let moved = target_of(&reweighed, origin).unwrap();
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let mut ping = |table: &ForwardingTable, identifier: u16| {
        let mut echo = vec![8, 0, 0, 0];
        echo.extend_from_slice(&identifier.to_be_bytes());
        echo.extend_from_slice(&[0, 1, b'p', b'i', b'n', b'g']);
        let sum = checksum::checksum(&echo);
        echo[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut frame = ipv4_frame(source, origin.to_be_bytes(), 1, 64, 0, &echo);
        frame[0..6].copy_from_slice(&HOST.mac);
        let (verdict, buf) = rig.run_on(table, &frame, 0);
        assert_eq!(verdict, Verdict::Uplink);
        u32::from_be_bytes(buf.data()[30..34].try_into().unwrap())
    };
    assert_eq!(ping(&before, 7), b);
    assert_eq!(
        ping(&reweighed, 7),
        b,
        "the echo flow stays with its holder"
    );
    assert_eq!(
        ping(&reweighed, 8),
        moved,
        "another identifier is a new flow"
    );
    let c = &rig.pipeline.counters;
    assert_eq!((c.pins_created, c.pins_redecided), (2, 0));
}

#[test]
fn pins_expire_by_their_protocol_timeout_and_a_returning_flow_is_pinned_again() {
    let table = table("lhr01-a");
    let timeouts = Timeouts {
        udp: 5,
        ..Timeouts::default()
    };
    let mut rig = Rig::with_timeouts("lhr01-a", config(Encap::Fou), timeouts);
    let mut frame = ipv4_frame([198, 51, 100, 64], ORIGIN, 17, 64, 0, &udp(41000, 53, b"q"));
    frame[0..6].copy_from_slice(&HOST.mac);
    let mut at = |now: u32| {
        assert_eq!(rig.run_on(table, &frame, now).0, Verdict::Uplink);
        let c = &rig.pipeline.counters;
        (c.pins_created, c.pins_expired, rig.pipeline.pins_in_use())
    };
    assert_eq!(at(0), (1, 0, 1));
    assert_eq!(at(4), (1, 0, 1), "used at 4: due at 9");
    assert_eq!(at(8), (1, 0, 1), "used at 8: due at 13");
    assert_eq!(
        at(15),
        (2, 1, 1),
        "idle 7 s > 5: expired, then pinned again"
    );
}

#[test]
fn a_tcp_pin_lives_by_the_flags_its_packets_carry() {
    let table = table("lhr01-a");
    let timeouts = Timeouts {
        tcp_established: 100,
        tcp_transitory: 5,
        ..Timeouts::default()
    };
    let mut rig = Rig::with_timeouts("lhr01-a", config(Encap::Fou), timeouts);
    let mut send = |sport: u16, flags: u8, now: u32| {
        let mut segment = tcp(sport, 443, b"x");
        segment[13] = flags;
        let mut frame = ipv4_frame([198, 51, 100, 64], ORIGIN, 6, 64, 0x4000, &segment);
        frame[0..6].copy_from_slice(&HOST.mac);
        assert_eq!(rig.run_on(table, &frame, now).0, Verdict::Uplink);
        let c = &rig.pipeline.counters;
        (c.pins_created, c.pins_expired)
    };
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN_ACK: u8 = 0x11;
    // Opening (SYN): the transitory time; its ACK makes it established: 100 s idle.
    assert_eq!(send(41000, SYN, 0), (1, 0));
    assert_eq!(send(41000, ACK, 1), (1, 0));
    assert_eq!(send(41000, ACK, 50), (1, 0), "established: idle 49 s < 100");
    // A FIN: the transitory time from its last packet, whatever comes after.
    assert_eq!(send(41000, FIN_ACK, 51), (1, 0));
    assert_eq!(send(41000, ACK, 54), (1, 0), "closing: idle 3 s < 5");
    assert_eq!(
        send(41000, ACK, 60),
        (2, 1),
        "closing: idle 6 s > 5, pinned again"
    );
    // Another flow that saw no FIN is still established at the same idle time.
    assert_eq!(send(42000, SYN, 61), (3, 1));
    assert_eq!(send(42000, ACK, 62), (3, 1));
    assert_eq!(send(42000, ACK, 70), (3, 1), "established: idle 8 s < 100");
}

#[test]
fn a_flow_pinned_elsewhere_keeps_its_holder_when_this_server_takes_the_address_on() {
    let with_a = "holders = [{ server = \"lhr01-a\" }, { server = \"lhr01-b\", weight = 2 }, { server = \"lhr01-c\" }, { server = \"fra01-a\" }]";
    let before = table("lhr01-a");
    let mut after = globex_held_by(with_a, "lhr01-a");
    after.remember_previous(before, 0, 100);
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let from_host = |sport: u16| {
        let mut frame = ipv4_frame(
            [198, 51, 100, 64],
            ORIGIN,
            6,
            64,
            0x4000,
            &tcp(sport, 443, b"x"),
        );
        frame[0..6].copy_from_slice(&HOST.mac);
        frame
    };
    // The verdict, and where an uplink packet leaves for (origin or tunnel underlay).
    let mut run = |table: &ForwardingTable, frame: &[u8], now: u32| {
        let (verdict, buf) = rig.run_on(table, frame, now);
        (verdict, buf.data()[30..34].to_vec())
    };
    let (verdict, old) = run(before, &from_host(41000), 0);
    assert_eq!(verdict, Verdict::Uplink);
    assert!(
        old == [10, 10, 1, 2] || old == [10, 10, 1, 3],
        "forwarded: {old:?}"
    );
    let uplink = |to: &[u8]| (Verdict::Uplink, to.to_vec());
    // lhr01-a now holds globex: the old flow stays with its holder, a new one leaves here.
    assert_eq!(run(&after, &from_host(41000), 50), uplink(&old));
    assert_eq!(
        run(&after, &from_host(41001), 50),
        uplink(&ORIGIN),
        "local egress"
    );
    // Its replies, restored and returned by that holder, are still this host's (7.5.1),
    // though lhr01-a holds the address now and does not own the port's slice.
    let reply = ipv4_frame(
        ORIGIN,
        [198, 51, 100, 64],
        6,
        64,
        0x4000,
        &tcp(443, 41000, b"y"),
    );
    let holder: [u8; 4] = old.clone().try_into().unwrap();
    let returned = ipv4_frame(holder, ME, 17, 64, 0x4000, &udp(51000, 6080, &reply[14..]));
    assert_eq!(run(&after, &returned, 50).0, Verdict::Host);
    // Past the grace period, the old flow leaves here too.
    assert_eq!(run(&after, &from_host(41000), 101), uplink(&ORIGIN));
}

/// lhr01-a clamping the MSS of SYNs to 1432.
fn clamping_rig() -> Rig {
    Rig::with(
        "lhr01-a",
        PipelineConfig {
            mss_clamp: Some(1432),
            ..config(Encap::Fou)
        },
    )
}

/// A TCP segment from `source` to the origin under `flags`, its 24-byte header ending in an
/// MSS option of 1460.
fn with_mss_option(source: [u8; 4], flags: u8) -> Vec<u8> {
    let mut segment = tcp(40000, 443, b"");
    segment[12] = 0x60;
    segment[13] = flags;
    segment.truncate(20);
    segment.extend_from_slice(&[2, 4, 0x05, 0xb4]);
    ipv4_frame(source, ORIGIN, 6, 64, 0x4000, &segment)
}

#[test]
fn a_local_egress_syn_is_clamped_when_its_replies_may_be_steered_through_a_tunnel() {
    // acme is held by lhr01-a and cdg01-b: a reply may land on cdg01-b and come back here
    // encapsulated, so the SYN leaving here asks for segments that fit the tunnel.
    let mut rig = clamping_rig();
    let mut buf = VecBuf::new(&with_mss_option(EGRESS_LOCAL, 0x02));
    assert_eq!(rig.run(&mut buf), Verdict::Uplink);
    assert_eq!(&buf.data()[54..58], &[2, 4, 0x05, 0x98], "MSS 1432");
    assert_eq!(rig.pipeline.counters.mss_clamped, 1);
}

#[test]
fn a_forwarded_syn_is_clamped_and_a_later_segment_is_left_as_it_came() {
    let mut rig = clamping_rig();
    let segment = |flags: u8| with_mss_option(EGRESS_SAME_LOCATION, flags);
    // Encapsulated: the inner TCP header starts 28 bytes further than it came.
    let option = 14 + 28 + 20 + 20..14 + 28 + 20 + 24;
    let mut syn = VecBuf::new(&segment(0x02));
    assert_eq!(rig.run(&mut syn), Verdict::Uplink);
    assert_eq!(&syn.data()[option.clone()], &[2, 4, 0x05, 0x98], "MSS 1432");
    // Stage 1 read the flags: no SYN, so nothing to clamp (and nothing parsed for it).
    let mut ack = VecBuf::new(&segment(0x10));
    assert_eq!(rig.run(&mut ack), Verdict::Uplink);
    assert_eq!(&ack.data()[option], &[2, 4, 0x05, 0xb4]);
    assert_eq!(rig.pipeline.counters.mss_clamped, 1);
}

#[test]
fn a_flow_keeps_its_port_when_a_reload_moves_the_port_slice() {
    // acme before: lhr01-a (weight 2) and cdg01-b. After: lhr01-a alone (every slice its
    // own), or cdg01-b weighing 9 (most of lhr01-a's slices gone).
    let text = include_str!("../../topology/examples/fleet.toml");
    let holders = "holders = [{ server = \"lhr01-a\", weight = 2 }, { server = \"cdg01-b\" }]";
    let compile = |h: &str| {
        let fleet = topology::parse("fleet.toml", &text.replace(holders, h)).unwrap();
        ForwardingTable::compile(&fleet, "lhr01-a").unwrap()
    };
    let before = table("lhr01-a");
    let alone = compile("holders = [{ server = \"lhr01-a\", weight = 2 }]");
    let outweighed =
        compile("holders = [{ server = \"lhr01-a\" }, { server = \"cdg01-b\", weight = 9 }]");
    let acme =
        topology::PoolId(fleet().pools.iter().position(|p| p.name == "acme").unwrap() as u32);
    let mine = |t: &ForwardingTable, p: u16| t.held_slices(acme).unwrap().is_mine(p);
    let translated = (1024..u16::MAX).find(|&p| !mine(before, p)).unwrap();
    let kept = (1024..u16::MAX)
        .find(|&p| mine(before, p) && !mine(&outweighed, p))
        .unwrap();
    let mut rig = Rig::new("lhr01-a", Encap::Fou);
    let mut sent_from = |table: &ForwardingTable, sport: u16| {
        let mut frame = ipv4_frame(EGRESS_LOCAL, ORIGIN, 17, 64, 0, &udp(sport, 53, b"q"));
        frame[0..6].copy_from_slice(&HOST.mac);
        let (verdict, buf) = rig.run_on(table, &frame, 0);
        assert_eq!(verdict, Verdict::Uplink);
        u16::from_be_bytes([buf.data()[34], buf.data()[35]])
    };
    // Translated before; its own port's slice is this server's after: still translated.
    let wire = sent_from(before, translated);
    assert_ne!(wire, translated);
    assert_eq!(sent_from(&alone, translated), wire);
    // Kept before; its slice goes to cdg01-b: still kept (the origin knows it by that port).
    assert_eq!(sent_from(before, kept), kept);
    assert_eq!(sent_from(&outweighed, kept), kept);
    assert_eq!(rig.pipeline.counters.mappings_created, 2);
}

#[test]
fn a_drained_holder_carries_its_flows_and_what_peers_send_it_and_only_new_flows_move() {
    // globex is held by lhr01-b and lhr01-c (lhr01), and fra01-a; here lhr01-b drains, then
    // its drain is lifted.
    let compile = |h: &str| globex_held_by(h, "lhr01-b");
    let before = table("lhr01-b");
    let mut drained = compile(
        "holders = [{ server = \"lhr01-b\", weight = 2, drain = true }, { server = \"lhr01-c\" }, { server = \"fra01-a\" }]",
    );
    drained.remember_previous(before, 10, 100);
    let mut lifted = compile(GLOBEX_HOLDERS);
    lifted.remember_previous(&drained, 20, 100);
    let x = [198, 51, 100, 64];
    let mut rig = Rig::new("lhr01-b", Encap::Fou);
    // Where a packet leaves for: the origin (local egress), the underlay it is tunnelled to,
    // or the host.
    let mut sent = |table: &ForwardingTable, frame: &[u8], now: u32| {
        let (verdict, buf) = rig.run_on(table, frame, now);
        match verdict {
            Verdict::Uplink => buf.data()[30..34].to_vec(),
            other => format!("{other:?}").into_bytes(),
        }
    };
    let from_host = |sport: u16| {
        let mut frame = ipv4_frame(x, ORIGIN, 6, 64, 0x4000, &tcp(sport, 443, b"x"));
        frame[0..6].copy_from_slice(&HOST.mac);
        frame
    };
    // As lhr01-a encapsulates a flow of its host to lhr01-b.
    let from_peer = |sport: u16| {
        let inner = ipv4_frame(x, ORIGIN, 6, 64, 0x4000, &tcp(sport, 443, b"x"));
        ipv4_frame(
            ME,
            [10, 10, 1, 2],
            17,
            64,
            0x4000,
            &udp(51000, 6080, &inner[14..]),
        )
    };
    let (origin, to_c) = (ORIGIN.to_vec(), vec![10, 10, 1, 3]);
    assert_eq!(sent(before, &from_host(41000), 0), origin);
    assert_eq!(sent(before, &from_peer(42000), 0), origin);
    // Drained: both flows still leave here, and so does a new flow a peer sends (a peer
    // with an older table, or one that pinned it here); a new flow of the host moves.
    assert_eq!(
        sent(&drained, &from_host(41000), 11),
        origin,
        "the host's flow stays"
    );
    assert_eq!(
        sent(&drained, &from_peer(42000), 11),
        origin,
        "the peer's flow stays"
    );
    assert_eq!(
        sent(&drained, &from_peer(42001), 11),
        origin,
        "not sent on to lhr01-c"
    );
    assert_eq!(
        sent(&drained, &from_host(41001), 11),
        to_c,
        "a new flow follows the drain"
    );
    // Its replies, restored by lhr01-c and returned here, are this host's (7.5.1).
    let reply = ipv4_frame(ORIGIN, x, 6, 64, 0x4000, &tcp(443, 41001, b"y"));
    let returned = ipv4_frame(
        [10, 10, 1, 3],
        [10, 10, 1, 2],
        17,
        64,
        0x4000,
        &udp(51000, 6080, &reply[14..]),
    );
    assert_eq!(sent(&drained, &returned, 11), b"Host");
    // The drain is lifted: the flow that moved stays with lhr01-c; new flows leave here.
    assert_eq!(sent(&lifted, &from_host(41001), 21), to_c);
    assert_eq!(sent(&lifted, &from_host(41002), 21), origin);
    let c = &rig.pipeline.counters;
    assert_eq!(
        (c.mappings_created, c.pins_created, c.pins_elsewhere),
        (4, 1, 1)
    );
}
