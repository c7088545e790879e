use std::collections::HashMap;

use proptest::prelude::*;
use topology::hash::PROTO_UDP;

use super::*;

fn table() -> ForwardingTable {
    crate::example_table()
}

/// A UDP flow of the host from one of a few addresses and ports: few enough that keys
/// collide in a small table and probes run into each other.
fn flow(i: u8) -> FlowKey {
    FlowKey {
        src: 0xcb00_7180 + u32::from(i % 5),
        dst: 0x5db8_d822,
        proto: PROTO_UDP,
        sport: 40000 + u16::from(i / 5),
        dport: 53,
    }
}

const UDP_SECONDS: u32 = 5;

/// A packet of `flow` as the pipeline passes it to `owner`: its pin probed by the flow's
/// hash, the table deciding `decided` if asked.
fn pin(
    owner: &mut PinOwner,
    pins: &PinTable,
    table: &ForwardingTable,
    flow: &FlowKey,
    decided: ServerId,
    tcp_flags: Option<u8>,
    now: u32,
) -> Pinned {
    let probe = pins.probe(owner.worker(), flow.hash());
    owner.target(pins, table, probe, flow, || decided, tcp_flags, now)
}

fn timeouts() -> Timeouts {
    Timeouts {
        udp: UDP_SECONDS,
        ..Timeouts::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A packet of flow `i`, `later` seconds after the previous operation.
    Packet { i: u8, later: u32 },
    /// A sweep of the whole table (32 slots: 64 steps, a removal taking one).
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..20, 0u32..3).prop_map(|(i, later)| Op::Packet { i, later }),
        1 => Just(Op::Sweep),
    ]
}

proptest! {
    /// The open-addressed table with its backward-shift removals behaves as a map: every
    /// packet finds the pin a model says is live, with the target it was given, creates one
    /// when there is none (or it expired), is refused exactly when the table is full; a
    /// sweep removes exactly the expired pins; other workers see exactly the live ones.
    #[test]
    fn pins_behave_as_a_map_with_lifetimes(ops in proptest::collection::vec(op(), 1..200)) {
        let table = table();
        let (pins, mut owners) = PinTable::new(1, 6, timeouts());
        let owner = &mut owners[0];
        // Present pins (live or expired, not yet removed): last seen, target.
        let mut model: HashMap<u8, (u32, ServerId)> = HashMap::new();
        let live = |last: u32, now: u32| now.wrapping_sub(last) < UDP_SECONDS || now == last;
        let mut now = 0u32;
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Packet { i, later } => {
                    now += later;
                    // The table's decision differs per step, so a kept pin shows by its target.
                    let decided = ServerId(1 + (step % 3) as u32);
                    let got = pin(owner, &pins, &table, &flow(i), decided, None, now);
                    let want = match model.get(&i).copied() {
                        Some((last, target)) if live(last, now) => {
                            model.insert(i, (now, target));
                            Pinned::Kept(target)
                        }
                        present => {
                            let replaced_expired = present.is_some();
                            if replaced_expired {
                                model.remove(&i);
                            }
                            if model.len() >= 6 {
                                Pinned::Full
                            } else {
                                model.insert(i, (now, decided));
                                Pinned::Created {
                                    target: decided,
                                    replaced_expired,
                                }
                            }
                        }
                    };
                    prop_assert_eq!(got, want, "packet of flow {} at {}", i, now);
                }
                Op::Sweep => {
                    let expired = model.values().filter(|(last, _)| !live(*last, now)).count();
                    prop_assert_eq!(owner.expire(&pins, now, 64), expired);
                    model.retain(|_, (last, _)| live(*last, now));
                }
            }
            prop_assert_eq!(owner.len(), model.len());
            for i in 0..20 {
                let want = model.get(&i).is_some_and(|(last, _)| live(*last, now));
                prop_assert_eq!(pins.contains(&flow(i), now), want, "contains flow {}", i);
            }
        }
    }
}

#[test]
fn a_pin_lives_its_protocol_timeout_from_its_last_packet() {
    let table = table();
    let (pins, mut owners) = PinTable::new(1, 16, timeouts());
    let owner = &mut owners[0];
    let f = flow(0);
    let to = |owner: &mut PinOwner, decided: u32, now: u32| {
        pin(owner, &pins, &table, &f, ServerId(decided), None, now)
    };
    assert_eq!(
        to(owner, 2, 0),
        Pinned::Created {
            target: ServerId(2),
            replaced_expired: false
        }
    );
    assert_eq!(to(owner, 3, 4), Pinned::Kept(ServerId(2)));
    assert_eq!(
        to(owner, 3, 8),
        Pinned::Kept(ServerId(2)),
        "seen at 4: due at 9"
    );
    assert_eq!(owner.expire(&pins, 12, 64), 0, "seen at 8: due at 13");
    assert_eq!(owner.expire(&pins, 13, 64), 1);
    assert!(owner.is_empty());
    assert_eq!(
        to(owner, 3, 14),
        Pinned::Created {
            target: ServerId(3),
            replaced_expired: false
        }
    );
}

#[test]
fn an_established_flow_pinned_under_the_table_in_use_does_not_ask_the_table() {
    let table = table();
    let (pins, mut owners) = PinTable::new(1, 16, timeouts());
    let owner = &mut owners[0];
    let f = flow(0);
    let probe = pins.probe(0, f.hash());
    let mut asked = 0;
    let mut packet = |owner: &mut PinOwner, now: u32| {
        owner.target(
            &pins,
            &table,
            probe,
            &f,
            || {
                asked += 1;
                ServerId(2)
            },
            None,
            now,
        )
    };
    assert!(matches!(
        packet(owner, 0),
        Pinned::Created {
            target: ServerId(2),
            ..
        }
    ));
    assert_eq!(packet(owner, 1), Pinned::Kept(ServerId(2)));
    assert_eq!(packet(owner, 2), Pinned::Kept(ServerId(2)));
    assert_eq!(asked, 1, "only the new flow read the table's target");
}

#[test]
fn a_reader_still_finds_the_pins_of_an_owner_stopped_mid_removal() {
    let table = table();
    let (pins, mut owners) = PinTable::new(2, 16, timeouts());
    pin(
        &mut owners[0],
        &pins,
        &table,
        &flow(0),
        ServerId(2),
        None,
        0,
    );
    // As an owner preempted between the two halves of a removal leaves it.
    pins.workers[0].moving.fetch_add(1, Ordering::Relaxed);
    assert!(
        pins.contains(&flow(0), 1),
        "the live pin is still on its path"
    );
    assert!(!pins.contains(&flow(1), 1));
}

#[test]
fn a_closed_tcp_pin_lives_the_transitory_time_for_its_owner_and_for_other_workers() {
    let table = table();
    let (pins, mut owners) = PinTable::new(2, 16, timeouts());
    let owner = &mut owners[0];
    let f = FlowKey {
        proto: topology::hash::PROTO_TCP,
        ..flow(0)
    };
    let (ack, fin) = (
        Some(crate::wire::tcp::FLAG_ACK),
        Some(crate::wire::tcp::FLAG_FIN),
    );
    let transitory = timeouts().tcp_transitory;
    assert!(matches!(
        pin(owner, &pins, &table, &f, ServerId(2), ack, 0),
        Pinned::Created { .. }
    ));
    assert_eq!(
        pin(owner, &pins, &table, &f, ServerId(3), fin, 10),
        Pinned::Kept(ServerId(2))
    );
    // An ACK after the FIN keeps it closing: it does not become established again.
    assert_eq!(
        pin(owner, &pins, &table, &f, ServerId(3), ack, 11),
        Pinned::Kept(ServerId(2))
    );
    assert!(pins.contains(&f, 11 + transitory - 1));
    assert!(
        !pins.contains(&f, 11 + transitory),
        "another worker sees the pin gone when its owner does"
    );
    assert_eq!(owner.expire(&pins, 11 + transitory - 1, 64), 0);
    assert_eq!(owner.expire(&pins, 11 + transitory, 64), 1);
}

#[test]
fn other_workers_see_a_workers_pins_and_the_table_refuses_when_full() {
    let table = table();
    let (pins, mut owners) = PinTable::new(2, 4, timeouts());
    let (first, second) = owners.split_at_mut(1);
    let (first, second) = (&mut first[0], &mut second[0]);
    for i in 0..2 {
        assert!(matches!(
            pin(first, &pins, &table, &flow(i), ServerId(2), None, 0),
            Pinned::Created { .. }
        ));
    }
    assert_eq!(
        pin(first, &pins, &table, &flow(2), ServerId(2), None, 0),
        Pinned::Full,
        "two pins a worker"
    );
    assert!(pins.contains(&flow(1), 0), "seen from any worker");
    assert!(!pins.contains(&flow(2), 0));
    // The second worker has its own room, and its own pins.
    assert!(matches!(
        pin(second, &pins, &table, &flow(2), ServerId(3), None, 0),
        Pinned::Created { .. }
    ));
    assert_eq!(first.len() + second.len(), 3);
    assert!(!pins.contains(&flow(1), UDP_SECONDS), "expired");
}

/// Another worker reading a worker's pins (7.5.1) never misses a live one, while the owner
/// creates and removes pins around it, shifting slots back over it: a small table, pins
/// that expire every round (UDP, 1 s), the kept ones among them.
#[test]
fn a_live_pin_is_never_missed_by_another_worker_while_the_owner_moves_slots() {
    use std::sync::atomic::{AtomicBool, AtomicU32};

    /// Stops the reader however the owner's loop ends, a failed assertion included.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    let table = table();
    // UDP pins live a second. Two groups of flows with one home slot take turns: each round
    // pins one group behind the other's expired pins, and the sweep removes those, moving
    // the live group's pins back while the reader looks for them.
    let short = Timeouts {
        udp: 1,
        ..timeouts()
    };
    let (pins, mut owners) = PinTable::new(1, 24, short);
    let owner = &mut owners[0];
    let home_of = |f: &FlowKey| pins.probe(0, f.hash()).home;
    let home = home_of(&flow(0));
    let colliding: Vec<FlowKey> = (1..u16::MAX)
        .map(|sport| FlowKey { sport, ..flow(0) })
        .filter(|f| home_of(f) == home)
        .take(8)
        .collect();
    assert_eq!(colliding.len(), 8, "flows enough share a home");
    let group = |round: u32| &colliding[(round % 2) as usize * 4..][..4];

    let round = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let (misses, reads) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut misses, mut reads) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let before = round.load(Ordering::Acquire);
                let found: Vec<bool> = group(before)
                    .iter()
                    .map(|f| pins.contains(f, before))
                    .collect();
                fence(Ordering::Acquire);
                // Only while the round lasts: the next one removes this group.
                if before > 0 && round.load(Ordering::Relaxed) == before {
                    reads += 4;
                    misses += found.iter().filter(|&&live| !live).count() as u64;
                }
            }
            (misses, reads)
        });
        let _stop = StopOnDrop(&stop);
        let mut moved = 0;
        for t in 1..200_000u32 {
            for f in group(t) {
                let pinned = pin(owner, &pins, &table, f, ServerId(2), None, t);
                assert!(matches!(pinned, Pinned::Created { .. }), "round {t}");
            }
            round.store(t, Ordering::Release);
            let own = owner.own(&pins);
            let at = |f: &FlowKey| own.find(PinKey::of(f), home as usize).ok();
            let before: Vec<_> = group(t).iter().map(at).collect();
            owner.expire(&pins, t, 128);
            let after: Vec<_> = group(t).iter().map(at).collect();
            assert!(
                after.iter().all(Option::is_some),
                "round {t}: a live pin kept"
            );
            moved += before.iter().zip(&after).filter(|(b, a)| b != a).count();
        }
        assert!(moved > 500_000, "the live pins moved all along: {moved}");
        drop(_stop);
        reader.join().unwrap()
    });
    assert!(reads > 10_000, "the reader ran alongside: {reads} reads");
    assert_eq!(
        misses, 0,
        "a live pin was missed by a reader during a removal ({reads} reads)"
    );
}
