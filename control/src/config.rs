//! The appliance config (contract section 3): one TOML file per server.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;
use topology::{Diagnostic, Diagnostics, SourceMap};

/// Which tunnel forwarded packets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    Fou,
    Ipip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Uplink,
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Spanned<String>,
    topology: Spanned<String>,
    #[serde(default)]
    dataplane: Option<Spanned<RawDataplane>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    reload: Option<RawReload>,
    #[serde(default)]
    connections: Option<RawConnections>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnections {
    max_entries: Option<Spanned<i64>>,
    tcp_established_seconds: Option<Spanned<i64>>,
    tcp_transitory_seconds: Option<Spanned<i64>>,
    udp_seconds: Option<Spanned<i64>>,
    icmp_seconds: Option<Spanned<i64>>,
    slice_grace_seconds: Option<Spanned<i64>>,
}

/// `[connections]` (contract 3 and 7.6): the bound on mappings and on pinned flows (each),
/// their idle timeouts, and how long a replaced slice map is kept for second chances.
/// Validated now; the mappings and pins of connections part 1 and 2 use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionsConfig {
    pub max_entries: u32,
    pub tcp_established_seconds: u32,
    pub tcp_transitory_seconds: u32,
    pub udp_seconds: u32,
    pub icmp_seconds: u32,
    pub slice_grace_seconds: u32,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max_entries: 1 << 20,
            tcp_established_seconds: 1200,
            tcp_transitory_seconds: 30,
            udp_seconds: 30,
            icmp_seconds: 30,
            // Contract 7.6: the TCP established timeout.
            slice_grace_seconds: 1200,
        }
    }
}

/// The largest `max_entries`: the flow-state table numbers a worker's entries in 26 bits.
const MAX_CONNECTION_ENTRIES: i64 = 1 << 26;
/// The longest timeout or grace: a week.
const MAX_CONNECTION_SECONDS: i64 = 7 * 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    max_loss: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    workers: Option<Spanned<i64>>,
    encap: Option<Encap>,
    encap_port: Option<Spanned<i64>>,
    mtu: Option<Spanned<i64>>,
    underlay_mtu: Option<Spanned<i64>>,
    mss_clamp: Option<bool>,
    burst: Option<Spanned<i64>>,
    idle_sleep_us: Option<Spanned<i64>>,
    mbufs: Option<Spanned<i64>>,
    cores: Option<Spanned<Vec<Spanned<i64>>>>,
    connection_table_entries: Option<Spanned<i64>>,
    rx_descriptors: Option<Spanned<i64>>,
    tx_descriptors: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    device: Spanned<String>,
    roles: Spanned<Vec<Role>>,
    next_hop_mac: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
    stats_interval_seconds: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub device: String,
    pub uplink: bool,
    pub host: bool,
    pub next_hop_mac: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub workers: u16,
    pub encap: Encap,
    pub encap_port: u16,
    pub mtu: u16,
    /// IP MTU of the fabric between fleet servers (encapsulated packets); by default `mtu`.
    pub underlay_mtu: u16,
    /// Lower the MSS of TCP SYNs and SYN-ACKs entering a tunnel so that full-size segments
    /// fit it (default on).
    pub mss_clamp: bool,
    /// Line and column of the `mtu` and `underlay_mtu` values when given, for errors found
    /// once the ports are open (an MTU a device cannot carry).
    pub mtu_position: Option<(usize, usize)>,
    pub underlay_mtu_position: Option<(usize, usize)>,
    /// Packets per rx burst.
    pub burst: u16,
    /// How long an idle worker sleeps between polls; 0 busy-polls.
    pub idle_sleep_us: u32,
    /// Mbufs in the pool; 0 sizes it from the ports and queues (replaying a pcap with
    /// `infinite_rx` needs one more per packet of the file).
    pub mbufs: u32,
    /// CPU core of each worker; empty picks cores after the control thread's.
    pub cores: Vec<usize>,
    pub connection_table_entries: u32,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            encap: Encap::Fou,
            encap_port: 6080,
            mtu: 1500,
            underlay_mtu: 1500,
            mss_clamp: true,
            mtu_position: None,
            underlay_mtu_position: None,
            burst: 32,
            idle_sleep_us: 100,
            mbufs: 0,
            cores: Vec::new(),
            connection_table_entries: 1 << 20,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub server: String,
    /// Line and column of the `server` value, for errors about it found later (a server that
    /// the topology does not have).
    pub server_position: (usize, usize),
    /// Resolved against the config file's directory.
    pub topology: PathBuf,
    pub dataplane: DataplaneConfig,
    pub ports: Vec<PortConfig>,
    pub metrics_listen: SocketAddr,
    /// `None` when the config does not say: every [`DEFAULT_STATS_INTERVAL_SECONDS`], or
    /// never under systemd, whose journal would fill with them.
    pub stats_interval_seconds: Option<u32>,
    /// The share (0 to 1) of the current table's egress addresses or servers a reload may
    /// lose before it is refused (a truncated file); 1 turns the guard off.
    pub reload_max_loss: f64,
    pub connections: ConnectionsConfig,
}

/// The default of `[reload] max_loss`.
/// How often `run` prints statistics when the config does not say (and not under systemd).
pub const DEFAULT_STATS_INTERVAL_SECONDS: u32 = 1;
pub const DEFAULT_RELOAD_MAX_LOSS: f64 = 0.25;

pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9750";

impl Config {
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            Diagnostics(vec![Diagnostic {
                file: file.clone(),
                line: 1,
                column: 1,
                message: format!("cannot read: {err}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, Diagnostics> {
        let file = path.display().to_string();
        let map = SourceMap::new(&file, text);
        let raw: RawConfig =
            toml::from_str(text).map_err(|err| Diagnostics(vec![toml_diagnostic(&map, &err)]))?;
        let mut errors = Vec::new();
        let config = validate(&map, path, raw, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            errors.sort_by_key(|d| (d.line, d.column));
            Err(Diagnostics(errors))
        }
    }

    /// The error for an MTU that the port `port` (device `device`) cannot carry: at the
    /// place of the key that asked for it (`mtu` or `underlay_mtu`), or of the file when the
    /// value is the default.
    pub fn mtu_too_large(&self, underlay: bool, port: &str, max: u16) -> Diagnostic {
        let dp = &self.dataplane;
        let (key, value, position) = if underlay {
            (
                "underlay_mtu",
                dp.underlay_mtu,
                dp.underlay_mtu_position.or(dp.mtu_position),
            )
        } else {
            ("mtu", dp.mtu, dp.mtu_position)
        };
        let (line, column) = position.unwrap_or((1, 1));
        Diagnostic {
            file: self.path.display().to_string(),
            line,
            column,
            message: format!(
                "{key} {value} is more than port `{port}` can carry (its device allows at most {max})"
            ),
        }
    }

    /// The error for a `server` that `topology` (the file at `topology_path`) does not have,
    /// at the place of the `server` key.
    /// The topology a config file names (resolved as [`Config::load`] does), read even from
    /// a config that is otherwise invalid, so that `check --config` reports both files' errors.
    pub fn topology_path_of(path: &Path) -> Option<PathBuf> {
        let text = std::fs::read_to_string(path).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        let topology = table.get("topology")?.as_str()?;
        Some(path.parent().unwrap_or(Path::new(".")).join(topology))
    }

    pub fn unknown_server(&self, topology_path: &Path) -> Diagnostic {
        let (line, column) = self.server_position;
        Diagnostic {
            file: self.path.display().to_string(),
            line,
            column,
            message: format!(
                "server `{}` is not in the topology {}",
                self.server,
                topology_path.display()
            ),
        }
    }

    pub fn uplink(&self) -> usize {
        self.ports
            .iter()
            .position(|p| p.uplink)
            .expect("validated: one uplink port")
    }

    pub fn host(&self) -> usize {
        self.ports
            .iter()
            .position(|p| p.host)
            .expect("validated: one host port")
    }
}

fn ranged<T: TryFrom<i64>>(
    map: &SourceMap<'_>,
    value: &Option<Spanned<i64>>,
    what: &str,
    range: Range<i64>,
    default: T,
    errors: &mut Vec<Diagnostic>,
) -> T {
    let Some(v) = value else { return default };
    let n = *v.get_ref();
    if range.contains(&n) {
        if let Ok(t) = T::try_from(n) {
            return t;
        }
    }
    errors.push(map.diagnostic(
        v.span(),
        format!(
            "{what} {n} is out of range {}..={}",
            range.start,
            range.end - 1
        ),
    ));
    default
}

pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// Why a MAC address cannot be a next hop: output addressed to it would flood the segment
/// (broadcast, multicast) or go nowhere (all zeros).
fn unicast_mac_problem(mac: [u8; 6]) -> Option<&'static str> {
    if mac == [0xff; 6] {
        Some("the broadcast address")
    } else if mac[0] & 1 == 1 {
        Some("a multicast address")
    } else if mac == [0; 6] {
        Some("all zeros")
    } else {
        None
    }
}

/// A deserialisation error of the toml crate at its place (the start of the file when it has
/// none), its message reduced to one line.
fn toml_diagnostic(map: &SourceMap<'_>, err: &toml::de::Error) -> Diagnostic {
    let message = err
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .to_owned();
    map.diagnostic(err.span().unwrap_or(0..0), message)
}

fn validate(
    map: &SourceMap<'_>,
    path: &Path,
    raw: RawConfig,
    errors: &mut Vec<Diagnostic>,
) -> Config {
    if raw.server.get_ref().is_empty() {
        errors.push(map.diagnostic(
            raw.server.span(),
            "`server` must name this server in the topology",
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let topology = base.join(raw.topology.get_ref());

    let defaults = DataplaneConfig::default();
    let dataplane = match &raw.dataplane {
        None => defaults,
        Some(dp) => {
            let dp = dp.get_ref();
            let cores = match &dp.cores {
                None => Vec::new(),
                Some(list) => list
                    .get_ref()
                    .iter()
                    .filter_map(|c| {
                        let ok = (0..4096).contains(c.get_ref());
                        if !ok {
                            errors.push(map.diagnostic(
                                c.span(),
                                format!("core {} is out of range 0..=4095", c.get_ref()),
                            ));
                        }
                        ok.then_some(*c.get_ref() as usize)
                    })
                    .collect(),
            };
            let mtu = ranged(map, &dp.mtu, "mtu", 576..9217, defaults.mtu, errors);
            let config = DataplaneConfig {
                workers: ranged(
                    map,
                    &dp.workers,
                    "workers",
                    1..129,
                    defaults.workers,
                    errors,
                ),
                encap: dp.encap.unwrap_or(defaults.encap),
                encap_port: ranged(
                    map,
                    &dp.encap_port,
                    "encap_port",
                    1..65536,
                    defaults.encap_port,
                    errors,
                ),
                mtu,
                underlay_mtu: ranged(
                    map,
                    &dp.underlay_mtu,
                    "underlay_mtu",
                    576..9217,
                    mtu,
                    errors,
                ),
                mss_clamp: dp.mss_clamp.unwrap_or(defaults.mss_clamp),
                mtu_position: dp.mtu.as_ref().map(|v| map.position(v.span().start)),
                underlay_mtu_position: dp
                    .underlay_mtu
                    .as_ref()
                    .map(|v| map.position(v.span().start)),
                burst: ranged(map, &dp.burst, "burst", 1..33, defaults.burst, errors),
                idle_sleep_us: ranged(
                    map,
                    &dp.idle_sleep_us,
                    "idle_sleep_us",
                    0..1_000_001,
                    defaults.idle_sleep_us,
                    errors,
                ),
                mbufs: ranged(
                    map,
                    &dp.mbufs,
                    "mbufs",
                    0..16_777_217,
                    defaults.mbufs,
                    errors,
                ),
                cores,
                connection_table_entries: ranged(
                    map,
                    &dp.connection_table_entries,
                    "connection_table_entries",
                    1024..(1 << 28) + 1,
                    defaults.connection_table_entries,
                    errors,
                ),
                rx_descriptors: ranged(
                    map,
                    &dp.rx_descriptors,
                    "rx_descriptors",
                    32..32769,
                    defaults.rx_descriptors,
                    errors,
                ),
                tx_descriptors: ranged(
                    map,
                    &dp.tx_descriptors,
                    "tx_descriptors",
                    32..32769,
                    defaults.tx_descriptors,
                    errors,
                ),
            };
            if let Some(list) = &dp.cores {
                if !config.cores.is_empty() && config.cores.len() != usize::from(config.workers) {
                    errors.push(map.diagnostic(
                        list.span(),
                        format!(
                            "`cores` lists {} cores for {} workers (one core per worker)",
                            config.cores.len(),
                            config.workers
                        ),
                    ));
                }
            }
            config
        }
    };

    let mut ports: Vec<PortConfig> = Vec::new();
    let (mut uplinks, mut hosts) = (Vec::new(), Vec::new());
    for p in &raw.port {
        let spec = p.get_ref();
        if ports.iter().any(|q| q.name == *spec.name.get_ref()) {
            errors.push(map.diagnostic(
                spec.name.span(),
                format!("duplicate port name `{}`", spec.name.get_ref()),
            ));
        }
        if spec.device.get_ref().trim().is_empty() {
            errors.push(map.diagnostic(spec.device.span(), "`device` must name a DPDK device"));
        }
        let roles = spec.roles.get_ref();
        if roles.is_empty() {
            errors.push(map.diagnostic(
                spec.roles.span(),
                "`roles` must contain \"uplink\", \"host\" or both",
            ));
        }
        let uplink = roles.contains(&Role::Uplink);
        let host = roles.contains(&Role::Host);
        if uplink {
            uplinks.push(spec.roles.span());
        }
        if host {
            hosts.push(spec.roles.span());
        }
        let next_hop_mac = match parse_mac(spec.next_hop_mac.get_ref()) {
            None => {
                errors.push(map.diagnostic(
                    spec.next_hop_mac.span(),
                    format!(
                        "`{}` is not a MAC address (expected xx:xx:xx:xx:xx:xx)",
                        spec.next_hop_mac.get_ref()
                    ),
                ));
                [0; 6]
            }
            Some(mac) => {
                if let Some(problem) = unicast_mac_problem(mac) {
                    errors.push(map.diagnostic(
                        spec.next_hop_mac.span(),
                        format!(
                            "next_hop_mac `{}` is {problem}: a next hop is one unicast neighbour",
                            spec.next_hop_mac.get_ref()
                        ),
                    ));
                }
                mac
            }
        };
        ports.push(PortConfig {
            name: spec.name.get_ref().clone(),
            device: spec.device.get_ref().clone(),
            uplink,
            host,
            next_hop_mac,
        });
    }
    for (role, spans) in [("uplink", &uplinks), ("host", &hosts)] {
        match spans.len() {
            0 => errors.push(map.diagnostic(
                0..0,
                format!("no port has the `{role}` role (one port must)"),
            )),
            1 => {}
            _ => errors.push(map.diagnostic(
                spans[1].clone(),
                format!("a second port has the `{role}` role (exactly one port may)"),
            )),
        }
    }

    let (listen_text, listen_span) = match raw.metrics.as_ref().and_then(|m| m.listen.as_ref()) {
        Some(l) => (l.get_ref().clone(), l.span()),
        None => (DEFAULT_METRICS_LISTEN.to_owned(), 0..0),
    };
    let metrics_listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        errors.push(map.diagnostic(
            listen_span,
            format!("`{listen_text}` is not an address:port to listen on"),
        ));
        DEFAULT_METRICS_LISTEN.parse().expect("valid default")
    });
    let stats_interval = raw
        .metrics
        .as_ref()
        .and_then(|m| m.stats_interval_seconds.clone());
    let stats_interval_seconds = stats_interval.is_some().then(|| {
        ranged(
            map,
            &stats_interval,
            "stats_interval_seconds",
            0..86_401,
            DEFAULT_STATS_INTERVAL_SECONDS,
            errors,
        )
    });
    let reload_max_loss = match raw.reload.as_ref().and_then(|r| r.max_loss.as_ref()) {
        None => DEFAULT_RELOAD_MAX_LOSS,
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            errors.push(map.diagnostic(
                v.span(),
                format!(
                    "max_loss {} is out of range 0..=1 (a share: 0.25 refuses a reload that loses more than a quarter)",
                    v.get_ref()
                ),
            ));
            DEFAULT_RELOAD_MAX_LOSS
        }
    };

    let connections = connections_config(map, raw.connections.as_ref(), errors);

    Config {
        path: path.to_owned(),
        server_position: map.position(raw.server.span().start),
        server: raw.server.into_inner(),
        topology,
        dataplane,
        ports,
        metrics_listen,
        stats_interval_seconds,
        reload_max_loss,
        connections,
    }
}

fn connections_config(
    map: &SourceMap<'_>,
    raw: Option<&RawConnections>,
    errors: &mut Vec<Diagnostic>,
) -> ConnectionsConfig {
    let defaults = ConnectionsConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let seconds =
        |value: &Option<Spanned<i64>>, what: &str, default: u32, errors: &mut Vec<Diagnostic>| {
            ranged(
                map,
                value,
                what,
                1..MAX_CONNECTION_SECONDS + 1,
                default,
                errors,
            )
        };
    let tcp_established_seconds = seconds(
        &raw.tcp_established_seconds,
        "tcp_established_seconds",
        defaults.tcp_established_seconds,
        errors,
    );
    ConnectionsConfig {
        max_entries: ranged(
            map,
            &raw.max_entries,
            "max_entries",
            1..MAX_CONNECTION_ENTRIES + 1,
            defaults.max_entries,
            errors,
        ),
        tcp_established_seconds,
        tcp_transitory_seconds: seconds(
            &raw.tcp_transitory_seconds,
            "tcp_transitory_seconds",
            defaults.tcp_transitory_seconds,
            errors,
        ),
        udp_seconds: seconds(
            &raw.udp_seconds,
            "udp_seconds",
            defaults.udp_seconds,
            errors,
        ),
        icmp_seconds: seconds(
            &raw.icmp_seconds,
            "icmp_seconds",
            defaults.icmp_seconds,
            errors,
        ),
        // 0 keeps no previous map: a moved slice's replies then have no second chance.
        slice_grace_seconds: ranged(
            map,
            &raw.slice_grace_seconds,
            "slice_grace_seconds",
            0..MAX_CONNECTION_SECONDS + 1,
            tcp_established_seconds,
            errors,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"server = "lhr01-a"
topology = "topology.toml"

[dataplane]
workers = 1
encap = "fou"
encap_port = 6080
mtu = 1500

[[port]]
name = "uplink"
device = "net_null0"
roles = ["uplink"]
next_hop_mac = "02:00:00:00:00:fe"

[[port]]
name = "host"
device = "net_tap0,iface=egress0"
roles = ["host"]
next_hop_mac = "02:00:00:00:00:01"

[connections]
max_entries = 1048576
tcp_established_seconds = 1200
tcp_transitory_seconds = 30
udp_seconds = 30
icmp_seconds = 30
slice_grace_seconds = 1200

[metrics]
listen = "127.0.0.1:9750"
"#;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(Path::new("/etc/egressfwd/lhr01-a.toml"), text) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn contract_example_parses_with_paths_relative_to_the_file() {
        let c = Config::parse(Path::new("/etc/egressfwd/lhr01-a.toml"), GOOD).unwrap();
        assert_eq!(c.server, "lhr01-a");
        assert_eq!(c.topology, Path::new("/etc/egressfwd/topology.toml"));
        let positions_aside = DataplaneConfig {
            mtu_position: None,
            ..c.dataplane.clone()
        };
        assert_eq!(positions_aside, DataplaneConfig::default());
        assert_eq!(c.dataplane.mtu_position, Some((8, 7)));
        assert_eq!(c.ports.len(), 2);
        assert_eq!((c.uplink(), c.host()), (0, 1));
        assert_eq!(c.ports[0].next_hop_mac, [2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(c.metrics_listen, "127.0.0.1:9750".parse().unwrap());
        assert_eq!(c.connections, ConnectionsConfig::default());
    }

    #[test]
    fn connections_keys_are_each_optional_and_bounded() {
        let without = GOOD.replace(
            "[connections]\nmax_entries = 1048576\ntcp_established_seconds = 1200\ntcp_transitory_seconds = 30\nudp_seconds = 30\nicmp_seconds = 30\nslice_grace_seconds = 1200\n",
            "",
        );
        assert_ne!(without, GOOD);
        let c = Config::parse(Path::new("c.toml"), &without).unwrap();
        assert_eq!(c.connections, ConnectionsConfig::default());
        // The grace defaults to the established timeout as configured.
        let some = GOOD
            .replace(
                "tcp_established_seconds = 1200",
                "tcp_established_seconds = 600",
            )
            .replace("slice_grace_seconds = 1200\n", "")
            .replace("udp_seconds = 30", "udp_seconds = 2");
        let c = Config::parse(Path::new("c.toml"), &some).unwrap();
        assert_eq!(
            (
                c.connections.tcp_established_seconds,
                c.connections.slice_grace_seconds,
                c.connections.udp_seconds
            ),
            (600, 600, 2)
        );
        for (bad, message) in [
            ("max_entries = 0", "max_entries 0 is out of range"),
            (
                "max_entries = 1048576000",
                "max_entries 1048576000 is out of range",
            ),
            ("udp_seconds = 0", "udp_seconds 0 is out of range"),
            ("icmp_seconds = -5", "icmp_seconds -5 is out of range"),
        ] {
            let key = bad.split(' ').next().unwrap();
            let line = GOOD.lines().position(|l| l.starts_with(key)).unwrap() + 1;
            let text = GOOD
                .lines()
                .map(|l| if l.starts_with(key) { bad } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            let errs = errors(&text);
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert!(
                errs[0].contains(&format!(":{line}:")) && errs[0].contains(message),
                "{bad}: {errs:?}"
            );
        }
        let errs = errors(&format!("{GOOD}\n[connections]\n"));
        assert!(!errs.is_empty(), "a table twice is a TOML error");
        let errs = errors(&GOOD.replace("udp_seconds = 30", "udp_seconds = 30\ntcp_seconds = 5"));
        assert!(errs.iter().any(|e| e.contains("tcp_seconds")), "{errs:?}");
    }

    #[test]
    fn reload_max_loss_is_a_share() {
        let c = Config::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(c.reload_max_loss, DEFAULT_RELOAD_MAX_LOSS);
        for (value, want) in [("0.5", 0.5), ("1", 1.0), ("0", 0.0)] {
            let text = format!("{GOOD}\n[reload]\nmax_loss = {value}\n");
            let c = Config::parse(Path::new("c.toml"), &text).unwrap();
            assert_eq!(c.reload_max_loss, want, "{value}");
        }
        let lines = GOOD.lines().count();
        for bad in ["1.5", "-0.1", "nan"] {
            let errs = errors(&format!("{GOOD}\n[reload]\nmax_loss = {bad}\n"));
            assert_eq!(errs.len(), 1, "{errs:?}");
            let place = format!(":{}:12: max_loss", lines + 3);
            assert!(errs[0].contains(&place), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn one_armed_port_holds_both_roles() {
        let text = GOOD
            .replace("roles = [\"uplink\"]", "roles = [\"uplink\", \"host\"]")
            .replace("[[port]]\nname = \"host\"\ndevice = \"net_tap0,iface=egress0\"\nroles = [\"host\"]\nnext_hop_mac = \"02:00:00:00:00:01\"\n", "");
        let c = Config::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!((c.uplink(), c.host()), (0, 0));
    }

    #[test]
    fn unknown_keys_and_impossible_values_name_their_place() {
        let file = "/etc/egressfwd/lhr01-a.toml";
        let errs = errors(&GOOD.replace("mtu = 1500", "mtu = 1500\nturbo = true"));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(&format!("{file}:9:1: unknown field `turbo`")),
            "{errs:?}"
        );
        assert_eq!(
            errors(&GOOD.replace("mtu = 1500", "mtu = 70000")),
            vec![format!("{file}:8:7: mtu 70000 is out of range 576..=9216")]
        );
        assert_eq!(
            errors(&GOOD.replace("workers = 1", "workers = 0")),
            vec![format!("{file}:5:11: workers 0 is out of range 1..=128")]
        );
        let errs = errors(&GOOD.replace("encap = \"fou\"", "encap = \"gre\""));
        assert!(
            errs[0].starts_with(&format!("{file}:6:9: unknown variant `gre`")),
            "{errs:?}"
        );
        assert_eq!(
            errors(&GOOD.replace("02:00:00:00:00:fe", "02:00:00:00:fe")),
            vec![format!(
                "{file}:14:16: `02:00:00:00:fe` is not a MAC address (expected xx:xx:xx:xx:xx:xx)"
            )]
        );
        assert_eq!(
            errors(&GOOD.replace("roles = [\"host\"]", "roles = [\"uplink\"]")),
            vec![
                format!("{file}:1:1: no port has the `host` role (one port must)"),
                format!("{file}:19:9: a second port has the `uplink` role (exactly one port may)"),
            ]
        );
        assert_eq!(
            errors(&GOOD.replace("127.0.0.1:9750", "localhost")),
            vec![format!(
                "{file}:31:10: `localhost` is not an address:port to listen on"
            )]
        );
        let errs = errors(&GOOD.replace("server = \"lhr01-a\"\n", ""));
        assert!(errs[0].contains("missing field `server`"), "{errs:?}");
        assert_eq!(
            errors(&GOOD.replace("workers = 1", "workers = 2\ncores = [1]")),
            vec![format!(
                "{file}:6:9: `cores` lists 1 cores for 2 workers (one core per worker)"
            )]
        );
    }

    #[test]
    fn the_underlay_mtu_follows_the_mtu_unless_given() {
        let c = Config::parse(
            Path::new("c.toml"),
            &GOOD.replace("mtu = 1500", "mtu = 9000"),
        )
        .unwrap();
        assert_eq!((c.dataplane.mtu, c.dataplane.underlay_mtu), (9000, 9000));
        assert!(c.dataplane.mss_clamp);
        let text = GOOD.replace(
            "mtu = 1500",
            "mtu = 1500\nunderlay_mtu = 9000\nmss_clamp = false",
        );
        let c = Config::parse(Path::new("c.toml"), &text).unwrap();
        assert_eq!((c.dataplane.mtu, c.dataplane.underlay_mtu), (1500, 9000));
        assert!(!c.dataplane.mss_clamp);
        assert_eq!(
            c.mtu_too_large(true, "uplink", 1500).to_string(),
            "c.toml:9:16: underlay_mtu 9000 is more than port `uplink` can carry (its device allows at most 1500)"
        );
        assert_eq!(
            errors(&GOOD.replace("mtu = 1500", "mtu = 1500\nunderlay_mtu = 100")),
            vec![
                "/etc/egressfwd/lhr01-a.toml:9:16: underlay_mtu 100 is out of range 576..=9216"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn next_hops_are_unicast_neighbours() {
        let file = "/etc/egressfwd/lhr01-a.toml";
        for (mac, problem) in [
            ("ff:ff:ff:ff:ff:ff", "the broadcast address"),
            ("01:00:5e:00:00:01", "a multicast address"),
            ("33:33:00:00:00:01", "a multicast address"),
            ("00:00:00:00:00:00", "all zeros"),
        ] {
            assert_eq!(
                errors(&GOOD.replace("02:00:00:00:00:fe", mac)),
                vec![format!(
                    "{file}:14:16: next_hop_mac `{mac}` is {problem}: a next hop is one unicast neighbour"
                )]
            );
        }
    }

    #[test]
    fn an_unknown_server_is_reported_at_the_server_key() {
        let text = format!("# egress server\n{GOOD}");
        let c = Config::parse(Path::new("/etc/egressfwd/x.toml"), &text).unwrap();
        assert_eq!(
            c.unknown_server(Path::new("/etc/egressfwd/topology.toml"))
                .to_string(),
            "/etc/egressfwd/x.toml:2:10: server `lhr01-a` is not in the topology /etc/egressfwd/topology.toml"
        );
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("02:00:00:00:00:FE"), Some([2, 0, 0, 0, 0, 0xfe]));
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:0:0:0:0:0",
            "zz:00:00:00:00:00",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
