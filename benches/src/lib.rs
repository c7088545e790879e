//! Shared inputs for the benchmarks: large synthetic fleets, generated once by
//! `scripts/gen_fleet.py` (the one generator of the project) and cached under `target/`.

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

/// The server whose table the benchmarks compile (the generator's first server).
pub const BENCH_SERVER: &str = "l00d0s000";

/// Deterministic pseudo-random numbers (SplitMix64), identical on every run.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        topology::hash::mix64(self.0)
    }
}
