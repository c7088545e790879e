//! What a new table would lose against the one in use: the guard against publishing a
//! truncated topology (a file read while it was being written can stop at an entry boundary
//! and still be a valid topology, one without the pools that follow).

use std::collections::HashSet;

use crate::table::ForwardingTable;

/// Egress addresses and servers of the current table that the next one no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub v4_addresses_lost: u64,
    pub v4_addresses: u64,
    pub v6_prefixes_lost: u64,
    pub v6_prefixes: u64,
    pub servers_lost: u64,
    pub servers: u64,
}

impl Loss {
    /// Compares by identity, not by count: an address is lost when the next table does not
    /// take it for egress (it would leave as a pass, from a server that does not hold it),
    /// a server when no server of that name remains.
    pub fn between(current: &ForwardingTable, next: &ForwardingTable) -> Self {
        let mut loss = Self {
            v4_addresses_lost: 0,
            v4_addresses: current.egress_v4_addresses(),
            v6_prefixes_lost: 0,
            v6_prefixes: 0,
            servers_lost: 0,
            servers: current.server_count() as u64,
        };
        for (prefix, _) in current.egress_v4() {
            // A prefix is egress in both or split by a change; its two ends tell which part
            // stays closely enough for a guard, without a walk over every address.
            let kept = [prefix.first(), prefix.last()]
                .iter()
                .filter(|&&a| next.route_v4(a).is_some())
                .count() as u64;
            loss.v4_addresses_lost += prefix.size() * (2 - kept) / 2;
        }
        for prefix in current.egress_v6() {
            loss.v6_prefixes += 1;
            if !next.is_egress_v6(prefix.first()) {
                loss.v6_prefixes_lost += 1;
            }
        }
        let remaining: HashSet<&str> = (0..next.server_count())
            .map(|i| next.server(crate::ServerId(i as u32)).name.as_str())
            .collect();
        loss.servers_lost = (0..current.server_count())
            .filter(|&i| {
                !remaining.contains(current.server(crate::ServerId(i as u32)).name.as_str())
            })
            .count() as u64;
        loss
    }

    /// Why the next table should not be published when it loses more than `max_share` (0 to
    /// 1) of the current table's IPv4 egress addresses, IPv6 egress prefixes or servers.
    pub fn refusal(&self, max_share: f64) -> Option<String> {
        let parts = [
            (
                "IPv4 egress addresses",
                self.v4_addresses_lost,
                self.v4_addresses,
            ),
            (
                "IPv6 egress prefixes",
                self.v6_prefixes_lost,
                self.v6_prefixes,
            ),
            ("servers", self.servers_lost, self.servers),
        ];
        let over: Vec<String> = parts
            .iter()
            .filter(|(_, lost, of)| *of > 0 && *lost as f64 > max_share * *of as f64)
            .map(|(what, lost, of)| {
                format!(
                    "{lost} of {of} {what} ({:.0}%)",
                    100.0 * *lost as f64 / *of as f64
                )
            })
            .collect();
        (!over.is_empty()).then(|| {
            format!(
                "it would lose {} (more than {:.0}%)",
                over.join(", "),
                100.0 * max_share
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const FLEET: &str = r#"version = 1
[[location]]
name = "l"
latitude = 0
longitude = 0
[[datacenter]]
name = "d"
location = "l"
[[server]]
name = "a"
datacenter = "d"
underlay = "10.0.0.1"
[[server]]
name = "b"
datacenter = "d"
underlay = "10.0.0.2"
[[pool]]
name = "p"
holders = [{ server = "a" }]
[[pool]]
name = "q"
holders = [{ server = "b" }]
[[egress]]
prefix = "198.51.100.0/24"
pool = "p"
"#;
    const MORE: &str = r#"[[egress]]
prefix = "203.0.113.0/26"
pool = "q"
[[egress]]
prefix = "2001:db8::/48"
"#;

    fn table(text: &str) -> ForwardingTable {
        ForwardingTable::compile(&parse("t.toml", text).unwrap(), "a").unwrap()
    }

    #[test]
    fn a_truncated_file_loses_what_it_no_longer_lists() {
        let full = table(&format!("{FLEET}{MORE}"));
        let truncated = table(FLEET);
        let loss = Loss::between(&full, &truncated);
        assert_eq!((loss.v4_addresses_lost, loss.v4_addresses), (64, 320));
        assert_eq!((loss.v6_prefixes_lost, loss.v6_prefixes), (1, 1));
        assert_eq!((loss.servers_lost, loss.servers), (0, 2));
        let why = loss.refusal(0.25).unwrap();
        assert!(why.contains("1 of 1 IPv6 egress prefixes (100%)"), "{why}");
        assert!(
            !why.contains("IPv4"),
            "20% of the IPv4 addresses is within 25%: {why}"
        );
        assert!(Loss::between(&full, &truncated).refusal(1.0).is_none());
        // Growing loses nothing.
        assert_eq!(Loss::between(&truncated, &full).refusal(0.0), None);
    }

    #[test]
    fn servers_are_compared_by_name() {
        let without_b = FLEET
            .replace(
                "[[server]]\nname = \"b\"\ndatacenter = \"d\"\nunderlay = \"10.0.0.2\"\n",
                "",
            )
            .replace(
                "holders = [{ server = \"b\" }]",
                "holders = [{ server = \"a\" }]",
            );
        let loss = Loss::between(&table(FLEET), &table(&without_b));
        assert_eq!((loss.servers_lost, loss.servers), (1, 2));
        assert!(loss.refusal(0.25).unwrap().contains("1 of 2 servers (50%)"));
    }
}
