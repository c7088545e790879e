use super::*;

use topology::slices;

const X: u32 = 0xc633_6401;
const R: u32 = 0x5db8_d822;
const PEER: u32 = 0x0a0a_0102;

/// Slices of 64 ports, every other one this server's (index 1): ports 1088..=1151 are ours,
/// 1024..=1087 are not.
fn held() -> HeldSlices {
    let owners = (0..slices::count(64) as u16)
        .map(|s| if s % 2 == 1 { 1 } else { 0 })
        .collect();
    HeldSlices::new(owners, 1, 64)
}

fn udp(port: u16) -> Ends {
    Ends {
        proto: PROTO_UDP,
        local: X,
        local_port: port,
        remote: R,
        remote_port: 53,
    }
}

fn outbound(
    owner: &mut MappingOwner,
    table: &MappingTable,
    ends: &Ends,
    origin: Origin,
    flags: Option<u8>,
    now: u32,
) -> (Outbound, Created) {
    outbound_in(owner, table, &held(), ends, origin, flags, now)
}

fn outbound_in(
    owner: &mut MappingOwner,
    table: &MappingTable,
    held: &HeldSlices,
    ends: &Ends,
    origin: Origin,
    flags: Option<u8>,
    now: u32,
) -> (Outbound, Created) {
    let mut created = Created::default();
    let out = owner.outbound(table, held, ends, origin, flags, now, &mut created);
    (out, created)
}

#[test]
fn a_port_in_our_slices_is_kept_and_one_outside_is_translated_into_them() {
    let (table, mut owners) = MappingTable::new(2, 64, Timeouts::default(), 0);
    let held = held();
    let kept = udp(1100);
    assert_eq!(
        outbound(&mut owners[0], &table, &kept, Origin::Host, None, 0),
        (
            Outbound::Port(1100),
            Created {
                created: true,
                translated: false
            }
        )
    );
    // Its next packet finds it and creates nothing.
    assert_eq!(
        outbound(&mut owners[0], &table, &kept, Origin::Host, None, 1),
        (Outbound::Port(1100), Created::default())
    );
    let (Outbound::Port(port), created) =
        outbound(&mut owners[1], &table, &udp(1030), Origin::Host, None, 0)
    else {
        panic!("translated")
    };
    assert!(
        created.translated && held.is_mine(port) && port % 2 == 1,
        "{port}: worker 1's share"
    );
    assert_eq!(
        outbound(&mut owners[1], &table, &udp(1030), Origin::Host, None, 2).0,
        Outbound::Port(port),
        "the same translation again"
    );
    // Replies find both, with the port to restore.
    let reply = table.reply(&udp(port), None).unwrap();
    assert_eq!((reply.port, reply.origin), (1030, Origin::Host));
    assert_eq!(table.reply(&udp(1100), None).unwrap().port, 1100);
    assert_eq!(table.reply(&udp(1101), None), None);
    assert_eq!((owners[0].len(), owners[1].len()), (1, 2));
}

#[test]
fn one_port_and_remote_end_from_two_origins_gives_two_mappings() {
    let (table, mut owners) = MappingTable::new(1, 64, Timeouts::default(), 0);
    let ends = udp(1100);
    let host = outbound(&mut owners[0], &table, &ends, Origin::Host, None, 0).0;
    let peer = outbound(&mut owners[0], &table, &ends, Origin::Peer(PEER), None, 0).0;
    let other_peer = outbound(
        &mut owners[0],
        &table,
        &ends,
        Origin::Peer(PEER + 1),
        None,
        0,
    )
    .0;
    assert_eq!(host, Outbound::Port(1100));
    let (Outbound::Port(a), Outbound::Port(b)) = (peer, other_peer) else {
        panic!("{peer:?} {other_peer:?}")
    };
    assert!(a != 1100 && b != 1100 && a != b);
    assert_eq!(
        table.reply(&udp(a), None).unwrap().origin,
        Origin::Peer(PEER)
    );
    assert_eq!(
        table.reply(&udp(b), None).unwrap().origin,
        Origin::Peer(PEER + 1)
    );
    assert_eq!(table.reply(&udp(1100), None).unwrap().origin, Origin::Host);
}

#[test]
fn a_full_table_refuses_new_flows_and_keeps_every_live_one() {
    let (table, mut owners) = MappingTable::new(1, 3, Timeouts::default(), 0);
    for port in [1100, 1101, 1102] {
        assert_eq!(
            outbound(&mut owners[0], &table, &udp(port), Origin::Host, None, 0).0,
            Outbound::Port(port)
        );
    }
    assert_eq!(
        outbound(&mut owners[0], &table, &udp(1103), Origin::Host, None, 1).0,
        Outbound::Full
    );
    // A translation needs two entries.
    for port in [1100, 1101, 1102] {
        assert!(
            table.reply(&udp(port), None).is_some(),
            "{port} still mapped"
        );
    }
    // Established flows keep working.
    assert_eq!(
        outbound(&mut owners[0], &table, &udp(1101), Origin::Host, None, 2).0,
        Outbound::Port(1101)
    );
}

#[test]
fn mappings_expire_by_protocol_and_tcp_state() {
    let timeouts = Timeouts {
        tcp_established: 100,
        tcp_transitory: 5,
        udp: 10,
        icmp: 3,
    };
    let (table, mut owners) = MappingTable::new(1, 64, timeouts, 0);
    let owner = &mut owners[0];
    let tcp = |port| Ends {
        proto: PROTO_TCP,
        ..udp(port)
    };
    let syn = Some(tcp::FLAG_SYN);
    let ack = Some(tcp::FLAG_ACK);
    outbound(owner, &table, &udp(1100), Origin::Host, None, 0);
    // Opened, never answered: transitory.
    outbound(owner, &table, &tcp(1101), Origin::Host, syn, 0);
    // Opened and established: established time.
    outbound(owner, &table, &tcp(1102), Origin::Host, syn, 0);
    outbound(owner, &table, &tcp(1102), Origin::Host, ack, 1);
    // Established, then closed by our side.
    outbound(owner, &table, &tcp(1103), Origin::Host, ack, 0);
    outbound(
        owner,
        &table,
        &tcp(1103),
        Origin::Host,
        Some(tcp::FLAG_FIN | tcp::FLAG_ACK),
        2,
    );
    // Established, then reset by the origin (seen in a reply, on any worker).
    outbound(owner, &table, &tcp(1104), Origin::Host, ack, 0);
    outbound(owner, &table, &tcp(1104), Origin::Host, ack, 4);
    assert!(table.reply(&tcp(1104), Some(tcp::FLAG_RST)).is_some());

    let flows = [
        (udp(1100), 10, "UDP: 10 s"),
        (tcp(1101), 5, "a SYN never answered: transitory"),
        (tcp(1102), 101, "established at 1: 100 s"),
        (tcp(1103), 7, "FIN at 2: transitory"),
        (
            tcp(1104),
            9,
            "RST from the origin, last used at 4: transitory",
        ),
    ];
    let mut gone_at = [None; 5];
    let mut expired = 0;
    for now in 1..=200 {
        expired += owner.expire(&table, now, 64);
        for (i, (ends, _, _)) in flows.iter().enumerate() {
            if gone_at[i].is_none() && table.reply(ends, None).is_none() {
                gone_at[i] = Some(now);
            }
        }
    }
    for (i, (_, at, why)) in flows.iter().enumerate() {
        assert_eq!(gone_at[i], Some(*at), "{why}");
    }
    assert_eq!(expired, 5);
    assert!(owner.is_empty());
}

#[test]
fn workers_translate_to_disjoint_ports_until_their_share_is_used() {
    // Two workers translating 20,000 flows to distinct remote ends: each port a worker picks
    // is its own, and none is picked twice for one remote end.
    let (table, mut owners) = MappingTable::new(2, 1 << 17, Timeouts::default(), 0);
    let held = held();
    let mut seen = std::collections::HashSet::new();
    let mut refused = 0;
    for i in 0..20_000u16 {
        let w = usize::from(i % 2);
        let ends = Ends {
            remote_port: 443,
            ..udp(1024 + (i % 64))
        };
        let ends = Ends {
            local: X + u32::from(i / 64 % 2),
            ..ends
        };
        let mut created = Created::default();
        match owners[w].outbound(
            &table,
            &held,
            &Ends {
                remote: R + u32::from(i),
                ..ends
            },
            Origin::Host,
            None,
            0,
            &mut created,
        ) {
            Outbound::Port(p) => {
                assert!(held.is_mine(p) && usize::from(p % 2) == w);
                assert!(seen.insert((X + u32::from(i / 64 % 2), R + u32::from(i), p)));
            }
            Outbound::NoPort => refused += 1,
            Outbound::Full => panic!("room for all"),
        }
    }
    assert_eq!(refused, 0, "remote ends differ: ports are free for each");
}

#[test]
fn ports_run_out_for_one_remote_end_and_are_counted() {
    // One slice of ours (64 ports, 32 a worker) and one remote end: the share runs out.
    let owners_of_slices = (0..slices::count(64) as u16)
        .map(|s| if s == 1 { 1 } else { 0 })
        .collect();
    let one_slice = HeldSlices::new(owners_of_slices, 1, 64);
    let (table, mut owners) = MappingTable::new(2, 1 << 12, Timeouts::default(), 0);
    let mut ports = 0;
    let mut refused = 0;
    for i in 0..600u16 {
        let ends = udp(20000 + i);
        match outbound_in(
            &mut owners[0],
            &table,
            &one_slice,
            &ends,
            Origin::Host,
            None,
            0,
        )
        .0
        {
            Outbound::Port(_) => ports += 1,
            Outbound::NoPort => refused += 1,
            Outbound::Full => panic!("room"),
        }
    }
    assert!(
        ports > 16 && ports <= 32 && refused > 0,
        "{ports} {refused}"
    );
}
