//! What the pipeline counts. Each worker owns its counters and writes them as plain integers;
//! the control thread sums snapshots (see [`crate::stats`]).

use topology::Tier;

/// Why a packet was dropped: one reason per failure, a value and not a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Frame or header shorter than it must be.
    Truncated,
    /// IP version field does not match the ethertype.
    BadVersion,
    /// IPv4 header length below 5 words.
    BadHeaderLength,
    /// IP total (or payload) length beyond the frame, or below the header.
    BadTotalLength,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// Encapsulated to us by an address that is no fleet server's underlay.
    UnknownPeer,
    /// Decapsulated packet is not an IPv4 egress packet we may handle.
    BadInner,
    /// TTL (hop limit) would reach zero.
    TtlExceeded,
    /// Larger than its path's MTU (the uplink's, or the underlay's for a tunnel), and not
    /// answered with an ICMP error: no DF (the appliance does not fragment), not our host's
    /// packet, or a packet RFC 1812 forbids answering.
    TooBig,
    /// No headroom to prepend the tunnel headers.
    NoHeadroom,
    /// The packet spans several buffers (never with the appliance's port setup).
    MultiSegment,
    /// The driver did not accept the packet for transmission.
    TxFull,
    /// A new flow found every mapping of its worker in use (contract 7.6): no live mapping
    /// is ever evicted for it.
    ConnectionsFull,
    /// A new flow to be translated found no free port in this server's slices for its
    /// remote end (or the server owns no slice of the pool).
    PortsExhausted,
    /// A reply another server passed to us that is neither ours nor mapped here (7.5.4).
    MisroutedReply,
    /// An ICMP error quoting a fragment: which flow it is about cannot be told.
    QuotedFragment,
    /// A later fragment of a reply whose first fragment is not on record (it came first, or
    /// its record expired or found no room): where it belongs cannot be told.
    FragmentOrphan,
}

impl DropReason {
    pub const ALL: [DropReason; 17] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeaderLength,
        DropReason::BadTotalLength,
        DropReason::BadChecksum,
        DropReason::UnknownPeer,
        DropReason::BadInner,
        DropReason::TtlExceeded,
        DropReason::TooBig,
        DropReason::NoHeadroom,
        DropReason::MultiSegment,
        DropReason::TxFull,
        DropReason::ConnectionsFull,
        DropReason::PortsExhausted,
        DropReason::MisroutedReply,
        DropReason::QuotedFragment,
        DropReason::FragmentOrphan,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::BadTotalLength => "bad_total_length",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::BadInner => "bad_inner",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::TooBig => "too_big",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::MultiSegment => "multi_segment",
            DropReason::TxFull => "tx_full",
            DropReason::ConnectionsFull => "connections_full",
            DropReason::PortsExhausted => "ports_exhausted",
            DropReason::MisroutedReply => "misrouted_reply",
            DropReason::QuotedFragment => "quoted_fragment",
            DropReason::FragmentOrphan => "fragment_orphan",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

pub fn tier_index(tier: Tier) -> usize {
    tier as usize
}

/// How a plain counter of [`PipelineCounters`] is exported: its field name (the stats JSON
/// and telemetry key), its Prometheus metric, the one label value that tells it apart from
/// the other counters of that metric (if it shares one), and the metric's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterInfo {
    pub field: &'static str,
    pub metric: &'static str,
    pub label: Option<(&'static str, &'static str)>,
    pub help: &'static str,
}

/// Declares [`PipelineCounters`]: the per-tier and per-reason arrays, then the plain
/// counters listed once here, from which the struct, [`PipelineCounters::add`], the flat
/// list of values and every output ([`PipelineCounters::INFO`], [`PipelineCounters::named`]:
/// Prometheus, the stats JSON, telemetry) are all derived. Adding a counter is one line in
/// the list below.
macro_rules! pipeline_counters {
    ($($(#[doc = $doc:literal])+ $name:ident => $metric:literal $({$label:ident = $value:literal})? $help:literal,)+) => {
        /// Pipeline counters of one worker.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct PipelineCounters {
            /// Egress decisions, by tier (indexed by [`tier_index`]).
            pub tiers: [u64; Tier::ALL.len()],
            /// Drops, by reason (indexed by [`DropReason::index`]).
            pub drops: [u64; DropReason::COUNT],
            $($(#[doc = $doc])+ pub $name: u64,)+
        }

        impl PipelineCounters {
            /// The plain counters' names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];

            /// How each plain counter is exported, in declaration order.
            pub const INFO: &'static [CounterInfo] = &[$(CounterInfo {
                field: stringify!($name),
                metric: $metric,
                label: pipeline_counters!(@label $($label = $value)?),
                help: $help,
            }),+];

            /// Number of values [`PipelineCounters::to_values`] writes.
            pub const VALUES: usize = Tier::ALL.len() + DropReason::COUNT + Self::NAMES.len();

            /// Each plain counter with how it is exported.
            pub fn named(&self) -> impl Iterator<Item = (&'static CounterInfo, u64)> {
                Self::INFO.iter().zip([$(self.$name),+])
            }

            pub fn add(&mut self, other: &Self) {
                for (a, b) in self.tiers.iter_mut().zip(&other.tiers) {
                    *a += b;
                }
                for (a, b) in self.drops.iter_mut().zip(&other.drops) {
                    *a += b;
                }
                $(self.$name += other.$name;)+
            }

            /// The counters as a flat list of values (for publishing across threads).
            pub fn to_values(&self, out: &mut Vec<u64>) {
                out.extend_from_slice(&self.tiers);
                out.extend_from_slice(&self.drops);
                out.extend_from_slice(&[$(self.$name),+]);
            }

            pub fn from_values(values: &[u64]) -> Self {
                let mut c = Self::default();
                let (tiers, rest) = values.split_at(c.tiers.len());
                c.tiers.copy_from_slice(tiers);
                let (drops, rest) = rest.split_at(c.drops.len());
                c.drops.copy_from_slice(drops);
                let mut rest = rest.iter();
                $(c.$name = rest.next().copied().unwrap_or_default();)+
                c
            }
        }
    };
    (@label $label:ident = $value:literal) => { Some((stringify!($label), $value)) };
    (@label) => { None };
}

pipeline_counters! {
    /// Passed unchanged to the other role (not egress traffic).
    passed => "egressfwd_passed_total" "Packets passed unchanged to the other role.",
    /// Fleet packets decapsulated.
    decapsulated => "egressfwd_decapsulated_total" "Fleet packets decapsulated.",
    /// Replies (and ICMP errors about our flows) sent back to the fleet server that
    /// forwarded their flow.
    replies_to_peer => "egressfwd_replies_total" {to = "peer"} "Replies from origins, by where they went.",
    /// Replies delivered to the host port (mapped here, or no mapping and no other owner).
    replies_to_host => "egressfwd_replies_total" {to = "host"} "Replies from origins, by where they went.",
    /// Replies without a mapping here, encapsulated unchanged to their slice's owner (7.3.2).
    replies_steered => "egressfwd_replies_total" {to = "steered"} "Replies from origins, by where they went.",
    /// Replies passed to this server for a slice it took over in the last reload, passed on
    /// once to the slice's previous owner (7.5.3).
    replies_second_chance => "egressfwd_replies_total" {to = "second_chance"} "Replies from origins, by where they went.",
    /// Flows from the host pinned to their first target (7.6).
    pins_created => "egressfwd_pins_created_total" "Pinned flows created.",
    /// Pinned flows whose target left the pool, decided again by the current table.
    pins_redecided => "egressfwd_pins_redecided_total" "Pinned flows whose target left the pool, decided again.",
    /// Packets of flows pinned to another holder before this server took their address on,
    /// sent there instead of out (7.6).
    pins_elsewhere => "egressfwd_pins_elsewhere_total" "Packets of flows pinned to another holder before this server took their address on.",
    /// Pinned flows removed after their idle time.
    pins_expired => "egressfwd_pins_expired_total" "Pinned flows removed after their idle time.",
    /// Later fragments of replies sent where their first fragment went.
    fragments_followed => "egressfwd_reply_fragments_followed_total" "Later fragments of replies sent where their first fragment went.",
    /// First fragments of replies whose route could not be recorded (no room): their later
    /// fragments are orphans.
    fragments_untracked => "egressfwd_reply_fragments_untracked_total" "First fragments of replies whose route found no room.",
    /// ICMP "fragmentation needed" messages sent to the host port.
    icmp_frag_needed => "egressfwd_icmp_frag_needed_total" "ICMP fragmentation-needed messages sent.",
    /// Mappings created (contract 7.2).
    mappings_created => "egressfwd_mappings_created_total" "Mappings created.",
    /// Mappings created with a translated port.
    mappings_translated => "egressfwd_mappings_translated_total" "Mappings created with a translated port.",
    /// Mappings removed after their idle time.
    mappings_expired => "egressfwd_mappings_expired_total" "Mappings removed after their idle time.",
    /// TCP SYNs and SYN-ACKs whose MSS was lowered to fit the tunnel.
    mss_clamped => "egressfwd_mss_clamped_total" "TCP SYNs and SYN-ACKs whose MSS was lowered to fit the tunnel.",
}

impl PipelineCounters {
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_sum() {
        let mut a = PipelineCounters::default();
        a.tiers[tier_index(Tier::SameDc)] = 3;
        a.drop(DropReason::TooBig);
        a.passed = 7;
        a.mappings_created = 9;
        let mut values = Vec::new();
        a.to_values(&mut values);
        assert_eq!(values.len(), PipelineCounters::VALUES);
        assert_eq!(PipelineCounters::from_values(&values), a);
        let mut b = a;
        b.add(&a);
        assert_eq!((b.passed, b.total_drops(), b.tiers[1]), (14, 2, 6));
        // Every plain counter is exported, under its field name.
        let named: Vec<(&str, u64)> = b.named().map(|(info, v)| (info.field, v)).collect();
        assert_eq!(named.len(), PipelineCounters::NAMES.len());
        assert!(named.contains(&("passed", 14)) && named.contains(&("mappings_created", 18)));
        let replies: Vec<_> = PipelineCounters::INFO
            .iter()
            .filter(|i| i.metric == "egressfwd_replies_total")
            .map(|i| i.label)
            .collect();
        assert_eq!(
            replies,
            vec![
                Some(("to", "peer")),
                Some(("to", "host")),
                Some(("to", "steered")),
                Some(("to", "second_chance"))
            ]
        );
        assert_eq!(
            DropReason::ALL
                .iter()
                .map(|r| r.index())
                .collect::<Vec<_>>(),
            (0..DropReason::COUNT).collect::<Vec<_>>()
        );
        assert_eq!(
            Tier::ALL.iter().map(|&t| tier_index(t)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }
}
