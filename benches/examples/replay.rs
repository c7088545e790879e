//! The worker's pipeline without the driver: replays a pcap (what `scripts/bench.sh` feeds
//! net_pcap) through the pipeline in bursts of 32, each first copied into reused buffers as a
//! driver does, and prints nanoseconds per packet. For comparing changes to the per-packet
//! work on the benchmark's own input, with nothing else in the way:
//!
//!   cargo run --release -p egressfwd-benches --example replay -- FLEET SERVER PCAP [SECONDS]
//!
//! Under callgrind, `--collect-atstart=no --toggle-collect=egressfwd_benches::run_burst` counts the
//! pipeline's instructions per packet on that input, apart from the copy.
use std::time::{Duration, Instant};

use dataplane::pipeline::CHUNK;
use dataplane::{Context, MappingTable, Pipeline, Timeouts, VecBuf, Verdict};
use egressfwd_benches::{pipeline_config, run_burst};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [fleet, server, pcap, rest @ ..] = &args[..] else {
        eprintln!("usage: replay FLEET SERVER PCAP [SECONDS]");
        std::process::exit(2);
    };
    let seconds: f64 = rest.first().map_or(5.0, |s| s.parse().expect("seconds"));
    let topology = topology::load(std::path::Path::new(fleet.as_str())).expect("fleet");
    let table = topology::ForwardingTable::compile(&topology, server).expect("server");
    let frames = read_pcap(&std::fs::read(pcap.as_str()).expect("pcap"));
    let (mappings, mut mapping_owners) = MappingTable::new(1, 1 << 20, Timeouts::default(), 0);
    let ctx = Context {
        table: &table,
        mappings: &mappings,
        now: 0,
    };
    let mut pipeline = Pipeline::new(pipeline_config(), mapping_owners.pop().unwrap());
    let mut bufs: Vec<VecBuf> = (0..CHUNK).map(|_| VecBuf::new(&[0; 2048])).collect();
    let mut verdicts = [Verdict::Pass; CHUNK];
    let bursts = frames.len() / CHUNK;
    let (mut packets, mut uplink) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        for burst in frames.chunks_exact(CHUNK).take(bursts) {
            for (buf, frame) in bufs.iter_mut().zip(burst) {
                buf.refill(frame, dataplane::buf::DEFAULT_HEADROOM);
            }
            run_burst(&mut pipeline, &ctx, &mut bufs, &mut verdicts);
            uplink += verdicts.iter().filter(|v| **v == Verdict::Uplink).count() as u64;
            packets += CHUNK as u64;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{:.1} ns/packet ({:.2} Mpps), {packets} packets, {:.0}% to the uplink",
        elapsed.as_nanos() as f64 / packets as f64,
        packets as f64 / elapsed.as_secs_f64() / 1e6,
        100.0 * uplink as f64 / packets as f64,
    );
}

/// The frames of a classic pcap file (either byte order).
fn read_pcap(bytes: &[u8]) -> Vec<Vec<u8>> {
    let swapped = match bytes.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => false,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => true,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if swapped {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len = u32_at(at + 8) as usize;
        frames.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    frames
}
