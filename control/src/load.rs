//! What the appliance and the commands read alike: a topology (with the digest of its
//! bytes), a server's table, and the pipeline's configuration from a config's `[dataplane]`.

use std::path::Path;

use dataplane::{PipelineConfig, PortAddrs};
use egressfwd::config::{DataplaneConfig, Encap};
use topology::{ForwardingTable, Topology};

use crate::Failure;

/// Reads and validates a topology, with the SHA-256 of the bytes it was read from (the
/// `topology_sha256` of the info metric: `sha256sum` of the file gives the same).
pub fn read_topology(path: &Path) -> Result<(Topology, String), topology::Diagnostics> {
    use sha2::Digest;
    let bytes = topology::read(path)?;
    let digest = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((topology::parse_bytes(path, &bytes)?, digest))
}

/// Compiles the table of `server`; an unknown server is an invalid request (exit 2).
pub fn compile(topology: &Topology, path: &Path, server: &str) -> Result<ForwardingTable, Failure> {
    ForwardingTable::compile(topology, server).map_err(|err| {
        eprintln!("{}: {err}", path.display());
        Failure::Invalid
    })
}

/// The pipeline's configuration from the config's `[dataplane]` and the two ports' addresses
/// (the running appliance's, and `explain --trace`'s).
pub(crate) fn pipeline_config_of(
    dp: &DataplaneConfig,
    uplink: PortAddrs,
    host: PortAddrs,
) -> PipelineConfig {
    PipelineConfig {
        encap: pipeline_encap(dp.encap),
        encap_port: dp.encap_port,
        mtu: dp.mtu,
        underlay_mtu: dp.underlay_mtu,
        mss_clamp: dp.mss_clamp.then(|| {
            PipelineConfig::derived_mss_clamp(dp.mtu, dp.underlay_mtu, pipeline_encap(dp.encap))
        }),
        uplink,
        host,
    }
}

fn pipeline_encap(encap: Encap) -> dataplane::Encap {
    match encap {
        Encap::Fou => dataplane::Encap::Fou,
        Encap::Ipip => dataplane::Encap::Ipip,
    }
}
