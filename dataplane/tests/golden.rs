//! Golden fixtures: every action of the pipeline on frames built by scapy, compared byte for
//! byte with outputs written independently of this code (scripts/gen_fixtures.py, from the
//! contract and the Python golden model), and every checksum of every output recomputed.

use std::path::{Path, PathBuf};

use dataplane::buf::PacketBuf;
use dataplane::wire::{checksum, ethernet, ipv4};
use dataplane::{
    Context, Encap, MappingTable, Pipeline, PipelineConfig, PortAddrs, Timeouts, VecBuf, Verdict,
};
use serde_json::Value;
use topology::ForwardingTable;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn mac(v: &Value) -> [u8; 6] {
    let parts: Vec<u8> = v
        .as_str()
        .unwrap()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap())
        .collect();
    parts.try_into().unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::Uplink => "uplink".into(),
        Verdict::Host => "host".into(),
        Verdict::Pass => "pass".into(),
        Verdict::Drop(r) => format!("drop:{}", r.as_str()),
    }
}

/// Every IPv4 header checksum in the frame (outer and, through tunnels, inner) and every ICMP
/// checksum is valid.
fn assert_checksums(frame: &[u8], name: &str) {
    if frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != ethernet::ETHERTYPE_IPV4 {
        return;
    }
    let mut ip = &frame[14..];
    loop {
        let p = ipv4::Packet::new_checked(ip)
            .unwrap_or_else(|e| panic!("{name}: bad IPv4 in output: {e}"));
        assert!(p.verify_checksum(), "{name}: IPv4 header checksum");
        let (protocol, payload) = (p.protocol(), &ip[p.header_len()..p.total_len()]);
        match protocol {
            1 => {
                assert_eq!(checksum::sum(payload), 0xffff, "{name}: ICMP checksum");
                return;
            }
            4 => ip = payload,
            17 if u16::from_be_bytes([payload[2], payload[3]]) == 6080 => {
                assert_eq!(
                    &payload[6..8],
                    &[0, 0],
                    "{name}: FOU carries UDP checksum 0"
                );
                ip = &payload[8..];
            }
            _ => return,
        }
    }
}

#[test]
fn every_action_matches_its_golden_fixture() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("dataplane/tests/fixtures/golden.json")).unwrap(),
    )
    .unwrap();
    let topology = topology::load(&root().join(doc["topology"].as_str().unwrap())).unwrap();
    let table = ForwardingTable::compile(&topology, doc["server"].as_str().unwrap()).unwrap();
    let uplink = PortAddrs {
        mac: mac(&doc["uplink"]["mac"]),
        next_hop: mac(&doc["uplink"]["next_hop"]),
    };
    let host = PortAddrs {
        mac: mac(&doc["host"]["mac"]),
        next_hop: mac(&doc["host"]["next_hop"]),
    };
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let encap = if case["encap"] == "ipip" {
            Encap::Ipip
        } else {
            Encap::Fou
        };
        let config = PipelineConfig {
            encap,
            encap_port: doc["encap_port"].as_u64().unwrap() as u16,
            mtu: doc["mtu"].as_u64().unwrap() as u16,
            underlay_mtu: doc["mtu"].as_u64().unwrap() as u16,
            mss_clamp: None,
            uplink,
            host,
        };
        let (mappings, mut mapping_owners) = MappingTable::new(1, 1024, Timeouts::default(), 0);
        let mut pipeline = Pipeline::new(config, mapping_owners.pop().unwrap());
        let ctx = Context {
            table: &table,
            mappings: &mappings,
            now: 0,
        };
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let mut buf = VecBuf::new(&hex(&step["in"]));
            let verdict = pipeline.process(&ctx, &mut buf);
            assert_eq!(
                verdict_name(verdict),
                step["verdict"].as_str().unwrap(),
                "{name} step {i}"
            );
            if let Some(expected) = step.get("out") {
                let expected = hex(expected);
                assert_eq!(
                    buf.data(),
                    &expected[..],
                    "{name} step {i}: output bytes differ"
                );
                assert_checksums(buf.data(), name);
            }
        }
    }
}
