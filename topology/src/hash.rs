//! The hashes every decision depends on. They are part of the fleet's behaviour (which flow
//! goes to which server, which outer UDP port it gets), so they are fixed, seedless and
//! simple enough to reimplement elsewhere: `scripts/golden_model.py` does, to check them.

/// The SplitMix64 finaliser: a fast bijective mixer with good avalanche.
#[inline]
pub const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const FLOW_SALT: u64 = 0x6567_7265_7373_6677; // "egressfw"
const BUCKET_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
const SLICE_SALT: u64 = 0x736c_6963_6573_7631; // "slicesv1"

/// A server's identity in rendezvous hashing: derived from its name only, so adding or
/// removing other servers never changes it.
pub fn name_seed(name: &str) -> u64 {
    // FNV-1a, then mixed: FNV alone is weak in its high bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// What identifies an IPv4 flow for every per-flow choice: the target server, the outer UDP
/// source port and the connection table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl FlowKey {
    /// The key of a packet. Ports count only for TCP and UDP, and only when the packet
    /// carries them (`None` for fragments: a non-first fragment has no ports, so every
    /// fragment of a flow must hash the same way without them).
    #[inline]
    pub fn new(src: u32, dst: u32, proto: u8, ports: Option<(u16, u16)>) -> Self {
        let (sport, dport) = match (proto, ports) {
            (PROTO_TCP | PROTO_UDP, Some(ports)) => ports,
            _ => (0, 0),
        };
        Self {
            src,
            dst,
            proto,
            sport,
            dport,
        }
    }

    /// The key of the other direction of the flow.
    #[inline]
    pub fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            sport: self.dport,
            dport: self.sport,
        }
    }

    #[inline]
    pub fn hash(&self) -> u64 {
        let addresses = (u64::from(self.src) << 32) | u64::from(self.dst);
        let rest =
            (u64::from(self.proto) << 32) | (u64::from(self.sport) << 16) | u64::from(self.dport);
        mix64(mix64(addresses ^ FLOW_SALT) ^ rest)
    }
}

/// Lowest outer UDP source port: the dynamic range, as Linux FOU uses.
pub const OUTER_SPORT_MIN: u16 = 49152;

/// The outer UDP source port of an encapsulated flow: from the flow hash (bits independent of
/// the bucket bits), so that a receiver's RSS spreads flows while each flow keeps one port.
#[inline]
pub fn outer_source_port(flow_hash: u64) -> u16 {
    OUTER_SPORT_MIN | ((flow_hash >> 32) as u16 & 0x3fff)
}

/// The per-bucket half of a rendezvous score.
#[inline]
pub fn bucket_hash(bucket: usize) -> u64 {
    mix64(bucket as u64 ^ BUCKET_SALT)
}

/// The per-slice half of a rendezvous score for port slices: independent of the flow
/// buckets, so that which server owns a slice says nothing about which one a flow goes to.
#[inline]
pub fn slice_hash(slice: u16) -> u64 {
    mix64(u64::from(slice) ^ SLICE_SALT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_pin_the_fleet_wide_behaviour() {
        // These values are fleet behaviour: changing them re-shuffles every flow of every
        // server at once during a rolling upgrade. The golden model checks the same numbers.
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
        assert_eq!(name_seed("lhr01-a"), 0xe2a0_f583_cb76_0264);
        assert_ne!(name_seed("lhr01-a"), name_seed("lhr01-b"));
        let flow = FlowKey::new(0xc633_6401, 0x5db8_d822, PROTO_TCP, Some((40000, 443)));
        assert_eq!(flow.hash(), 0xf97c_4d3c_1d3a_eb9e);
        assert_ne!(flow.hash(), flow.reversed().hash());
        assert_eq!(flow.reversed().reversed(), flow);
    }

    #[test]
    fn ports_count_only_for_tcp_and_udp_with_ports() {
        let icmp = FlowKey::new(1, 2, PROTO_ICMP, Some((7, 9)));
        assert_eq!((icmp.sport, icmp.dport), (0, 0));
        let fragment = FlowKey::new(1, 2, PROTO_UDP, None);
        assert_eq!((fragment.sport, fragment.dport), (0, 0));
        let udp = FlowKey::new(1, 2, PROTO_UDP, Some((7, 9)));
        assert_eq!((udp.sport, udp.dport), (7, 9));
    }

    #[test]
    fn outer_ports_stay_in_the_dynamic_range() {
        for h in [0u64, u64::MAX, 0x1234_5678_9abc_def0, 1 << 46] {
            assert!(outer_source_port(h) >= OUTER_SPORT_MIN);
        }
        assert_eq!(outer_source_port(u64::MAX), u16::MAX);
    }
}
