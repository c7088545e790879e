//! IPv4 and IPv6 prefixes as the topology file writes them (`198.51.100.0/30`, `2001:db8::/48`;
//! a bare address means a single host).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: u128,
    len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl Ipv4Prefix {
    /// A prefix from its first address and length; `None` if the length is over 32 or host
    /// bits are set.
    pub fn new(addr: u32, len: u8) -> Option<Self> {
        (len <= 32 && addr & !mask_v4(len) == 0).then_some(Self { addr, len })
    }

    pub fn first(self) -> u32 {
        self.addr
    }

    pub fn last(self) -> u32 {
        self.addr | !mask_v4(self.len)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// Number of addresses in the prefix.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    pub fn contains(self, addr: u32) -> bool {
        addr & mask_v4(self.len) == self.addr
    }
}

/// IPv4 blocks that are never unicast-routable on the internet, so never an egress address
/// or an underlay: what a packet to or from them means is not forwarding.
const NOT_UNICAST_V4: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "0.0.0.0/8 (\"this network\")"),
    (0x7f00_0000, 8, "127.0.0.0/8 (loopback)"),
    (0xe000_0000, 4, "224.0.0.0/4 (multicast)"),
    (
        0xf000_0000,
        4,
        "240.0.0.0/4 (reserved, with the limited broadcast address)",
    ),
];

/// The same for IPv6.
const NOT_UNICAST_V6: &[(u128, u8, &str)] = &[
    (0, 128, "::/128 (unspecified)"),
    (1, 128, "::1/128 (loopback)"),
    (0xff << 120, 8, "ff00::/8 (multicast)"),
];

impl Ipv4Prefix {
    /// The block of addresses that are not unicast-routable that this prefix overlaps, if
    /// any, as text for an error message.
    pub fn not_unicast(self) -> Option<&'static str> {
        NOT_UNICAST_V4
            .iter()
            .find(|&&(addr, len, _)| {
                let block = Ipv4Prefix { addr, len };
                self.first() <= block.last() && block.first() <= self.last()
            })
            .map(|&(_, _, name)| name)
    }
}

impl Ipv6Prefix {
    /// As [`Ipv4Prefix::not_unicast`].
    pub fn not_unicast(self) -> Option<&'static str> {
        NOT_UNICAST_V6
            .iter()
            .find(|&&(addr, len, _)| {
                let block = Ipv6Prefix { addr, len };
                self.first() <= block.last() && block.first() <= self.last()
            })
            .map(|&(_, _, name)| name)
    }

    pub fn new(addr: u128, len: u8) -> Option<Self> {
        (len <= 128 && addr & !mask_v6(len) == 0).then_some(Self { addr, len })
    }

    pub fn first(self) -> u128 {
        self.addr
    }

    pub fn last(self) -> u128 {
        self.addr | !mask_v6(self.len)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    pub fn contains(self, addr: u128) -> bool {
        addr & mask_v6(self.len) == self.addr
    }
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    /// Parses `ADDRESS/LEN` or a bare `ADDRESS`; refuses host bits beyond the length, with
    /// the prefix that was probably meant.
    fn from_str(text: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("`{text}` is not an IPv4 or IPv6 prefix (expected ADDRESS/LENGTH)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len =
            match len_text {
                None => max,
                Some(l) => l.parse::<u8>().ok().filter(|&l| l <= max).ok_or_else(|| {
                    format!("prefix length `{l}` in `{text}` is not in 0..={max}")
                })?,
            };
        match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                Ipv4Prefix::new(a, len).map(Prefix::V4).ok_or_else(|| {
                    let meant = Ipv4Prefix {
                        addr: a & mask_v4(len),
                        len,
                    };
                    format!("`{text}` has host bits set beyond /{len} (did you mean `{meant}`?)")
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                Ipv6Prefix::new(a, len).map(Prefix::V6).ok_or_else(|| {
                    let meant = Ipv6Prefix {
                        addr: a & mask_v6(len),
                        len,
                    };
                    format!("`{text}` has host bits set beyond /{len} (did you mean `{meant}`?)")
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_bare_addresses() {
        let p: Prefix = "198.51.100.0/30".parse().unwrap();
        let Prefix::V4(v4) = p else { panic!() };
        assert_eq!(
            (v4.first(), v4.last(), v4.size()),
            (0xc633_6400, 0xc633_6403, 4)
        );
        assert!(v4.contains(0xc633_6402) && !v4.contains(0xc633_6404));
        assert_eq!(v4.to_string(), "198.51.100.0/30");
        assert_eq!(
            "10.0.0.1".parse::<Prefix>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Prefix>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        let Prefix::V6(v6) = "2001:db8:1::/48".parse().unwrap() else {
            panic!()
        };
        assert!(v6.contains(u128::from(
            "2001:db8:1:ffff::1".parse::<Ipv6Addr>().unwrap()
        )));
        assert!(!v6.contains(u128::from("2001:db8:2::1".parse::<Ipv6Addr>().unwrap())));
        assert_eq!("::/0".parse::<Prefix>().unwrap().to_string(), "::/0");
    }

    #[test]
    fn refuses_nonsense_with_a_useful_message() {
        let err = "198.51.100.1/30".parse::<Prefix>().unwrap_err();
        assert!(err.contains("did you mean `198.51.100.0/30`"), "{err}");
        assert!("10.0.0.0/33"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("0..=32"));
        assert!("2001:db8::/129"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("0..=128"));
        assert!("lhr"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("not an IPv4 or IPv6 prefix"));
        assert!("10.0.0.0/x".parse::<Prefix>().is_err());
        assert!("10.0.0.0/-1".parse::<Prefix>().is_err());
    }
}
