//! Real packets through a real DPDK device: `net_ring` sends what is transmitted on queue i
//! back to receive queue i, so a burst must come back byte for byte, and every buffer must be
//! back in its pool afterwards.
use dpdk_sys::{DpdkError, Mbuf, MbufBurst, Mempool, Port, PortConfig, MBUF_DEFAULT_BUF_SIZE};

/// A distinct 64..=127-byte frame per (queue, index), so reordering or mixing shows.
fn frame(queue: u8, index: u8) -> Vec<u8> {
    let len = 64 + usize::from(index % 64);
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ index ^ (queue << 7))
        .collect()
}

fn send_and_receive(port: &Port, queue: u16, pool: &Mempool, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let (mut rx, mut tx) = port.queue(queue).expect("each queue is taken once");
    let mut burst = MbufBurst::new();
    for bytes in frames {
        burst
            .push(Mbuf::from_bytes(pool, bytes).expect("pool has room"))
            .expect("burst has room");
    }
    assert_eq!(
        tx.tx_burst(&mut burst),
        frames.len(),
        "net_ring accepts the whole burst"
    );
    assert!(burst.is_empty(), "accepted buffers leave the burst");

    let mut received = MbufBurst::new();
    // The ring is filled synchronously by tx, but poll a few times as a real driver needs.
    for _ in 0..100 {
        rx.rx_burst(&mut received, 64);
        if received.len() >= frames.len() {
            break;
        }
    }
    received.drain().map(|m| m.data().to_vec()).collect()
}

#[test]
fn one_queue_burst_comes_back_unchanged_and_no_mbuf_leaks() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("ring_one_q", 1023, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    let mut port = Port::open("net_ring0").unwrap();
    port.configure(
        &PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            ..PortConfig::default()
        },
        &pool,
    )
    .unwrap();
    let baseline = pool.in_use();

    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(0, i)).collect();
    let received = send_and_receive(&port, 0, &pool, &frames);
    assert_eq!(received, frames);
    assert_eq!(pool.in_use(), baseline, "every mbuf is back in the pool");

    let stats = port.stats();
    assert_eq!(stats.tx_packets, 32);
    assert_eq!(stats.rx_packets, 32);
    // The generic extended statistics agree with the basic counters.
    let xstats = port.xstats();
    let get = |name: &str| xstats.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(get("rx_good_packets"), Some(32), "{xstats:?}");
    assert_eq!(get("tx_good_packets"), Some(32), "{xstats:?}");
    assert!(port.link().up, "a started ring port reports its link up");
    assert_eq!(port.driver(), "net_ring");
    assert!(!port.rss_enabled(), "one queue: no RSS");
    port.close().unwrap();
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn two_queues_each_get_their_own_burst_back() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("ring_two_q", 1023, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    let mut port = Port::open("net_ring1").unwrap();
    port.configure(
        &PortConfig {
            rx_queues: 2,
            tx_queues: 2,
            ..PortConfig::default()
        },
        &pool,
    )
    .unwrap();
    let baseline = pool.in_use();

    let frames_q0: Vec<Vec<u8>> = (0..32).map(|i| frame(0, i)).collect();
    let frames_q1: Vec<Vec<u8>> = (0..32).map(|i| frame(1, i)).collect();
    assert_ne!(frames_q0, frames_q1);
    assert_eq!(send_and_receive(&port, 0, &pool, &frames_q0), frames_q0);
    assert_eq!(send_and_receive(&port, 1, &pool, &frames_q1), frames_q1);
    assert_eq!(pool.in_use(), baseline, "every mbuf is back in the pool");
    port.close().unwrap();
}

#[test]
fn refused_buffers_stay_in_the_burst_and_are_freed_once() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("ring_refuse", 1023, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    // A ring of 16 holds 15 packets, so a 32-packet burst is partly refused.
    let mut port = Port::open("net_ring2").unwrap();
    port.configure(
        &PortConfig {
            rx_descriptors: 16,
            tx_descriptors: 16,
            ..PortConfig::default()
        },
        &pool,
    )
    .unwrap();
    let (mut rx, mut tx) = port.queue(0).unwrap();
    // Handed out once: a second handle would share the queue with the first.
    assert!(port.queue(0).is_none() && port.rx_queue(0).is_none() && port.tx_queue(0).is_none());
    assert!(port.queue(1).is_none(), "a queue the port does not have");
    let mut burst = MbufBurst::new();
    for i in 0..64u8 {
        burst
            .push(Mbuf::from_bytes(&pool, &frame(0, i)).unwrap())
            .unwrap();
    }
    let accepted = tx.tx_burst(&mut burst);
    assert_eq!(accepted + burst.len(), 64);
    // Whatever the driver accepted is its to free; the rest is ours: free it once.
    assert_eq!(burst.clear(), 64 - accepted);
    let mut received = MbufBurst::new();
    while rx.rx_burst(&mut received, 64) > 0 {
        received.clear();
    }
    assert_eq!(pool.in_use(), 0, "no double free, no leak");
    port.close().unwrap();
}

#[test]
fn mbuf_headroom_operations_keep_the_bytes() {
    dpdk_sys::test_support::eal();
    let pool = Mempool::create("mbuf_ops", 63, 0, MBUF_DEFAULT_BUF_SIZE).unwrap();
    let mut m = Mbuf::from_bytes(&pool, &[1, 2, 3, 4]).unwrap();
    assert_eq!(m.headroom(), dpdk_sys::MBUF_HEADROOM);
    m.prepend(2).unwrap().copy_from_slice(&[9, 9, 1, 2, 3, 4]);
    assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
    assert!(
        m.prepend(10_000).is_none(),
        "too large a prepend is refused"
    );
    m.adj(3).unwrap();
    assert_eq!(m.data(), &[2, 3, 4]);
    m.trim(1).unwrap();
    assert_eq!(m.data(), &[2, 3]);
    assert_eq!(m.pkt_len(), 2);
    assert!(
        m.adj(3).is_none() && m.trim(3).is_none(),
        "cannot cut more than there is"
    );
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn missing_device_is_a_clear_error() {
    dpdk_sys::test_support::eal();
    let err = Port::by_name("net_ring_nonexistent9").unwrap_err();
    assert!(matches!(err, DpdkError::NoSuchPort { .. }), "{err:?}");
    assert!(err.to_string().contains("net_ring_nonexistent9"), "{err}");

    let err = Port::open("net_no_such_driver0").unwrap_err();
    assert!(matches!(err, DpdkError::Probe { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("net_no_such_driver0"), "{text}");
}
