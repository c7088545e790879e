//! Shared inputs for the benchmarks: large synthetic fleets, generated once by
//! `scripts/gen_fleet.py` (the one generator of the project) and cached under `target/`.

// Only dpdk-sys may hold `unsafe` (docs/architecture.md).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of a generated fleet, creating it on first use. `args` go to the generator.
pub fn fleet(name: &str, args: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned();
    let dir = root.join("target").join("bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let path = dir.join(name);
    if !path.exists() {
        let tmp = dir.join(format!("{name}.partial"));
        let status = Command::new("python3")
            .arg(root.join("scripts/gen_fleet.py"))
            .arg("--out")
            .arg(&tmp)
            .args(args)
            .status()
            .expect("run scripts/gen_fleet.py");
        assert!(status.success(), "fleet generator failed");
        std::fs::rename(&tmp, &path).expect("publish generated fleet");
    }
    path
}

/// The benchmark fleet: 1M IPv4 egress addresses (mixed prefix lengths), 10k servers.
pub fn fleet_1m() -> PathBuf {
    fleet("fleet-1m.toml", &[])
}

/// Issue 22's fleet at customer scale: 100k pools of 1 to 16 holders over 1 to 4 locations,
/// weights 1 to 1000, 1M addresses, 10k servers in 400 data centers.
pub fn fleet_customer_scale() -> PathBuf {
    fleet("fleet-100k-pools.toml", &["--customer-scale"])
}

/// The same size with every address its own /32: the worst case for file size and lookup.
pub fn fleet_1m_slash32() -> PathBuf {
    fleet("fleet-1m-slash32.toml", &["--slash32"])
}

/// A fleet of `addresses` /32 egress addresses (for the lookup-cost sweep).
pub fn fleet_slash32(addresses: usize) -> PathBuf {
    let count = addresses.to_string();
    fleet(
        &format!("fleet-{addresses}-slash32.toml"),
        &[
            "--slash32",
            "--addresses",
            &count,
            "--servers",
            "1000",
            "--pools",
            "500",
        ],
    )
}

/// The pipeline configuration every benchmark runs with: FOU on port 6080, a 1500-byte MTU.
pub fn pipeline_config() -> dataplane::PipelineConfig {
    dataplane::PipelineConfig::example()
}

/// One burst through the pipeline, out of line: under callgrind
/// (`--collect-atstart=no --toggle-collect=egressfwd_benches::run_burst`, or the inclusive
/// cost of this function) it separates the pipeline's instructions from the harness's.
#[inline(never)]
pub fn run_burst(
    pipeline: &mut dataplane::Pipeline,
    ctx: &dataplane::Context<'_>,
    bufs: &mut [dataplane::VecBuf],
    verdicts: &mut [dataplane::Verdict],
) {
    pipeline.process_burst(ctx, bufs, verdicts);
}

/// The server whose table the benchmarks compile (the generator's first server).
pub const BENCH_SERVER: &str = "l00d0s000";

/// `count` random addresses (deterministic for `seed`) from the table's IPv4 egress
/// prefixes whose tier satisfies `want`, prefixes chosen uniformly.
pub fn egress_addresses(
    table: &topology::ForwardingTable,
    count: usize,
    seed: u64,
    want: impl Fn(topology::Tier) -> bool,
) -> Vec<u32> {
    let prefixes: Vec<_> = table
        .egress_v4()
        .iter()
        .filter(|(_, pool)| want(table.routes()[pool.index()].tier))
        .collect();
    assert!(!prefixes.is_empty(), "no egress prefix of the wanted tier");
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let r = rng.next();
            let (p, _) = prefixes[(r % prefixes.len() as u64) as usize];
            p.first() + ((r >> 32) % p.size()) as u32
        })
        .collect()
}

/// Deterministic pseudo-random numbers (SplitMix64), identical on every run.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        topology::hash::mix64(self.0)
    }
}

/// Frames for the pipeline benchmarks, built with the data plane's own header emitters
/// (their correctness is the golden fixtures' business, not the benchmark's).
pub mod frames {
    use dataplane::wire::{ethernet, ipv4, udp};

    /// Ethernet / IPv4 (TTL 64, DF) / TCP ports / `payload` bytes of zeros.
    pub fn tcp(src: u32, dst: u32, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
        let l4 = 20 + payload;
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + l4];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x0a]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
        f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        ipv4::Repr {
            src,
            dst,
            protocol: 6,
            tos: 0,
            ttl: 64,
            dont_fragment: true,
            payload_len: l4,
        }
        .emit(&mut f[14..]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f
    }

    /// `inner` (an Ethernet frame) encapsulated in FOU from `peer` to `me`.
    pub fn fou(peer: u32, me: u32, inner: &[u8]) -> Vec<u8> {
        let ip = &inner[ethernet::HEADER_LEN..];
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN];
        f[..14].copy_from_slice(&inner[..14]);
        let payload_len = udp::HEADER_LEN + ip.len();
        ipv4::Repr {
            src: peer,
            dst: me,
            protocol: 17,
            tos: 0,
            ttl: 64,
            dont_fragment: true,
            payload_len,
        }
        .emit(&mut f[14..]);
        udp::Repr {
            src_port: 51000,
            dst_port: 6080,
            payload_len: ip.len(),
        }
        .emit(&mut f[34..]);
        f.extend_from_slice(ip);
        f
    }
}
