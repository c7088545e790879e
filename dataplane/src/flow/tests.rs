use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;

use super::*;

fn hash_of(key: &Key) -> u64 {
    // Any mix will do for the tests; collisions of tags are exercised by `weak_hash`.
    let mut h = key[0].wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key[1].rotate_left(29);
    h ^= h >> 31;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

#[test]
fn entries_are_found_by_every_worker_and_expire_after_their_timeout() {
    let (table, mut owners) = FlowTable::new(2, 8, 100);
    let key = [1, 2, 3];
    let at = owners[0]
        .insert(
            &table,
            hash_of(&key),
            &key,
            &[7, 8],
            100,
            Lifetime::fixed(30),
        )
        .unwrap();
    assert_eq!(at.worker, 0);
    assert_eq!(
        table.lookup(table.probe(hash_of(&key)), &key),
        Some((at, [7, 8]))
    );
    // Another worker's insert of the same key gets the existing entry.
    assert_eq!(
        owners[1].insert(
            &table,
            hash_of(&key),
            &key,
            &[9, 9],
            101,
            Lifetime::fixed(30)
        ),
        Err(Refused::Exists(at, [7, 8]))
    );
    assert_eq!(
        owners[0].expire(&table, 129, 64),
        0,
        "not idle for 30 s yet"
    );
    owners[0].touch(&table, at.entry, 120);
    assert_eq!(
        owners[0].expire(&table, 130, 64),
        0,
        "used at 120: due at 150"
    );
    assert!(table.lookup(table.probe(hash_of(&key)), &key).is_some());
    assert_eq!(owners[0].expire(&table, 150, 64), 1);
    assert_eq!(table.lookup(table.probe(hash_of(&key)), &key), None);
    assert!(owners[0].is_empty());
}

#[test]
fn a_closing_flow_expires_after_the_transitory_time() {
    let (table, mut owners) = FlowTable::new(1, 4, 0);
    let key = [5, 5, 5];
    let at = owners[0]
        .insert(
            &table,
            hash_of(&key),
            &key,
            &[1, 1],
            0,
            Lifetime {
                idle: 7440,
                closing: 240,
            },
        )
        .unwrap();
    owners[0].set_closing(&table, at.entry, 10);
    assert_eq!(owners[0].expire(&table, 249, 64), 0);
    assert_eq!(owners[0].expire(&table, 250, 64), 1);
}

#[test]
fn a_full_table_refuses_new_flows_and_evicts_nothing() {
    let (table, mut owners) = FlowTable::new(1, 3, 0);
    for i in 0..3u64 {
        owners[0]
            .insert(
                &table,
                hash_of(&[i, 0, 0]),
                &[i, 0, 0],
                &[i, i],
                0,
                Lifetime::fixed(60),
            )
            .unwrap();
    }
    assert_eq!(
        owners[0].insert(
            &table,
            hash_of(&[9, 0, 0]),
            &[9, 0, 0],
            &[9, 9],
            1,
            Lifetime::fixed(60)
        ),
        Err(Refused::Full)
    );
    for i in 0..3u64 {
        assert!(
            table
                .lookup(table.probe(hash_of(&[i, 0, 0])), &[i, 0, 0])
                .is_some(),
            "no live entry evicted"
        );
    }
    // Once one expires, there is room again.
    owners[0].touch(&table, 0, 30);
    owners[0].touch(&table, 1, 30);
    assert_eq!(owners[0].expire(&table, 60, 64), 1);
    assert!(owners[0]
        .insert(
            &table,
            hash_of(&[9, 0, 0]),
            &[9, 0, 0],
            &[9, 9],
            60,
            Lifetime::fixed(60)
        )
        .is_ok());
}

#[test]
fn keys_that_share_a_tag_are_told_apart_by_the_key() {
    let (table, mut owners) = FlowTable::new(1, 16, 0);
    let weak_hash = 0xdead_beef_0000_0001u64; // every key the same hash
    for i in 0..6u64 {
        owners[0]
            .insert(
                &table,
                weak_hash,
                &[i, 1, 1],
                &[i, 2],
                0,
                Lifetime::fixed(60),
            )
            .unwrap();
    }
    for i in 0..6u64 {
        assert_eq!(
            table
                .lookup(table.probe(weak_hash), &[i, 1, 1])
                .map(|f| f.1),
            Some([i, 2])
        );
    }
    assert_eq!(table.lookup(table.probe(weak_hash), &[99, 1, 1]), None);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u8, u16),
    Touch(u8),
    Close(u8),
    Advance(u8),
    Lookup(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..32u8, 0..2u8, 1..20u16).prop_map(|(k, w, t)| Op::Insert(k, w, t)),
        (0..32u8).prop_map(Op::Touch),
        (0..32u8).prop_map(Op::Close),
        (0..10u8).prop_map(Op::Advance),
        (0..32u8).prop_map(Op::Lookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Against a map of key -> (value, owner, last use, timeout): every lookup agrees, every
    /// entry idle for its timeout is gone once expiry has run, and none before.
    #[test]
    fn behaves_as_a_map_with_idle_expiry(ops in proptest::collection::vec(op(), 1..200)) {
        let (table, mut owners) = FlowTable::new(2, 12, 0);
        let mut model: HashMap<u8, (Value, usize, u32, u32, EntryRef)> = HashMap::new();
        let mut now = 0u32;
        for op in ops {
            match op {
                Op::Insert(k, w, t) => {
                    let key = [u64::from(k), 77, 0];
                    let value = [u64::from(k) * 3, u64::from(now)];
                    let w = usize::from(w);
                    let got = owners[w].insert(&table, hash_of(&key), &key, &value, now, Lifetime { idle: u32::from(t), closing: 2 });
                    match (model.get(&k), got) {
                        (Some(&(v, _, _, _, at)), Err(Refused::Exists(found, fv))) => {
                            prop_assert_eq!((found, fv), (at, v));
                        }
                        (None, Ok(at)) => {
                            model.insert(k, (value, w, now, u32::from(t), at));
                        }
                        (None, Err(Refused::Full)) => {
                            let used = model.values().filter(|e| e.1 == w).count();
                            prop_assert_eq!(used, owners[w].capacity());
                        }
                        (m, g) => prop_assert!(false, "model {:?}, table {:?}", m, g),
                    }
                }
                Op::Touch(k) => {
                    if let Some(e) = model.get_mut(&k) {
                        owners[e.1].touch(&table, e.4.entry, now);
                        e.2 = now;
                    }
                }
                Op::Close(k) => {
                    if let Some(e) = model.get_mut(&k) {
                        owners[e.1].set_closing(&table, e.4.entry, now);
                        e.2 = now;
                        e.3 = 2;
                    }
                }
                Op::Advance(s) => {
                    now += u32::from(s);
                    for owner in owners.iter_mut() {
                        while owner.expire(&table, now, 64) > 0 {}
                    }
                    model.retain(|_, e| e.2 + e.3 > now);
                    let per_worker = |w: usize| model.values().filter(|e| e.1 == w).count();
                    prop_assert_eq!(owners[0].len(), per_worker(0));
                    prop_assert_eq!(owners[1].len(), per_worker(1));
                }
                Op::Lookup(k) => {
                    let key = [u64::from(k), 77, 0];
                    let got = table.lookup(table.probe(hash_of(&key)), &key).map(|f| f.1);
                    let alive = model.get(&k).map(|e| e.0);
                    prop_assert_eq!(got, alive);
                }
            }
        }
    }
}

/// Workers insert and expire their own keys while others look them up: a lookup finds the
/// value its key was inserted with, or nothing; never another key's value.
#[test]
fn concurrent_readers_never_see_another_keys_value() {
    let (table, owners) = FlowTable::new(3, 512, 0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for mut owner in owners {
            let (table, stop) = (&table, &stop);
            scope.spawn(move || {
                let w = u64::from(owner.worker());
                let mut now = 0u32;
                for round in 0..2000u64 {
                    for i in 0..200u64 {
                        let key = [w, round * 1000 + i, 0];
                        let value = [key[1] ^ 0x5555, w];
                        let _ = owner.insert(
                            table,
                            hash_of(&key),
                            &key,
                            &value,
                            now,
                            Lifetime::fixed(1),
                        );
                    }
                    now += 2;
                    while owner.expire(table, now, 64) > 0 {}
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            });
        }
        let (table, stop) = (&table, &stop);
        scope.spawn(move || {
            let mut hits = 0u64;
            for n in 0..2_000_000u64 {
                let key = [n % 3, (n / 3) % 2_000_000, 0];
                if let Some((_, value)) = table.lookup(table.probe(hash_of(&key)), &key) {
                    assert_eq!(value, [key[1] ^ 0x5555, key[0]], "the value of this key");
                    hits += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            println!("{hits} of 2M lookups found their key");
        });
    });
}

#[test]
fn a_partner_lives_and_dies_with_its_primary() {
    let (table, mut owners) = FlowTable::new(1, 4, 0);
    let (primary_key, partner_key) = ([1, 1, 1], [2, 2, 2]);
    let primary = owners[0]
        .insert(
            &table,
            hash_of(&primary_key),
            &primary_key,
            &[1, 0],
            0,
            Lifetime::fixed(10),
        )
        .unwrap();
    owners[0]
        .insert_partner(
            &table,
            primary.entry,
            hash_of(&partner_key),
            &partner_key,
            &[2, 0],
        )
        .unwrap();
    assert_eq!(owners[0].len(), 2);
    assert!(table
        .lookup(table.probe(hash_of(&partner_key)), &partner_key)
        .is_some());
    owners[0].touch(&table, primary.entry, 5);
    assert_eq!(owners[0].expire(&table, 10, 64), 0, "used at 5: due at 15");
    assert_eq!(owners[0].expire(&table, 15, 64), 1);
    assert!(owners[0].is_empty());
    assert_eq!(
        table.lookup(table.probe(hash_of(&partner_key)), &partner_key),
        None
    );
}

#[test]
fn a_closing_mark_from_another_worker_shortens_the_life() {
    let (table, mut owners) = FlowTable::new(2, 4, 0);
    let key = [3, 3, 3];
    let at = owners[0]
        .insert(
            &table,
            hash_of(&key),
            &key,
            &[0, 0],
            0,
            Lifetime {
                idle: 1200,
                closing: 30,
            },
        )
        .unwrap();
    // Checked every closing time while open.
    assert_eq!(owners[0].expire(&table, 30, 64), 0);
    owners[0].touch(&table, at.entry, 40);
    // Another worker sees the other side's FIN: the mark needs the key to match.
    table.mark_closing(at, &[9, 9, 9]);
    assert!(!owners[0].is_closing(&table, at.entry));
    table.mark_closing(at, &key);
    assert!(owners[0].is_closing(&table, at.entry));
    assert_eq!(owners[0].expire(&table, 69, 64), 0, "idle 29 s of 30");
    assert_eq!(owners[0].expire(&table, 70, 64), 1);
    // The recycled entry starts open again.
    let again = owners[0]
        .insert(
            &table,
            hash_of(&key),
            &key,
            &[0, 0],
            70,
            Lifetime {
                idle: 1200,
                closing: 30,
            },
        )
        .unwrap();
    assert!(!owners[0].is_closing(&table, again.entry));
}
