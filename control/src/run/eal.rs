//! The EAL command line: the operator's arguments win; we only add what they left out.

use std::path::{Path, PathBuf};

/// Whether a device string names a PCI device (`0000:01:00.0` or `01:00.0`) rather than a
/// virtual device (`net_ring0`, `net_pcap0,rx_pcap=...`).
pub fn is_pci(device: &str) -> bool {
    let name = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = name.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts[..] {
        [bus, devfn] | [_, bus, devfn] => {
            hex(bus, 2)
                && devfn
                    .split_once('.')
                    .is_some_and(|(d, f)| hex(d, 2) && f.len() == 1)
        }
        _ => false,
    }
}

fn has(args: &[String], names: &[&str]) -> bool {
    args.iter().any(|a| {
        names
            .iter()
            .any(|n| a == n || a.starts_with(&format!("{n}=")))
    })
}

/// Whether hugepages are reserved and mounted, so EAL can use them.
pub fn hugepages_available() -> bool {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" hugetlbfs ")));
    free > 0 && mounted
}

/// The full EAL argument list for `run`.
///
/// - PCI devices are allowed explicitly (`-a`), so EAL never takes a NIC it was not given;
///   with only virtual devices, the PCI bus is not scanned at all.
/// - Memory: hugepages when reserved, with a shared config, so that `dpdk-dumpcap` and
///   `dpdk-proc-info` can attach as secondary processes (the files are removed at exit,
///   [`remove_leftovers`]); else `--no-huge` with enough memory for the mbuf pool and
///   `--no-shconf` (no capture then: memory that is not in hugepages cannot be shared).
/// - Lcores: the main lcore (0) is the control thread, on the control core; lcores 1 to N
///   are the workers, each on its core (`--lcores=0@C,1@W1,...`).
/// - The runtime directory (`/var/run/dpdk/PREFIX`: the telemetry socket, which
///   `dpdk-telemetry.py -f PREFIX` reads) is named after the server (`egressfwd-SERVER`), so
///   that appliances on one machine are told apart.
pub fn arguments(
    user: &[String],
    devices: &[String],
    cores: (usize, &[usize]),
    memory_mb: usize,
    hugepages: bool,
    server: &str,
) -> Vec<String> {
    let mut args = vec!["egressfwd".to_owned()];
    if !has(user, &["--file-prefix"]) {
        args.push(format!("--file-prefix={}", file_prefix(server)));
    }
    if !has(user, &["-l", "--lcores", "-c"]) {
        let (control, workers) = cores;
        let lcores: Vec<String> = std::iter::once(control)
            .chain(workers.iter().copied())
            .enumerate()
            .map(|(lcore, core)| format!("{lcore}@{core}"))
            .collect();
        args.push(format!("--lcores={}", lcores.join(",")));
    }
    let pci: Vec<&String> = devices.iter().filter(|d| is_pci(d)).collect();
    if pci.is_empty() {
        if !has(user, &["-a", "--allow", "-b", "--block", "--no-pci"]) {
            args.push("--no-pci".to_owned());
        }
    } else {
        for device in pci {
            args.push(format!("-a{device}"));
        }
    }
    let memory_chosen = has(
        user,
        &[
            "--no-huge",
            "--in-memory",
            "-m",
            "--socket-mem",
            "--file-prefix",
            "--huge-dir",
        ],
    );
    if !memory_chosen && !hugepages {
        args.extend([
            "--no-huge".to_owned(),
            "--no-shconf".to_owned(),
            format!("-m{memory_mb}"),
        ]);
    }
    if !has(user, &["--log-level"]) {
        args.push("--log-level=lib.eal:notice".to_owned());
    }
    args.extend(user.iter().cloned());
    args
}

/// The file prefix EAL was given.
pub fn prefix_of(args: &[String]) -> Option<String> {
    args.iter().enumerate().find_map(|(i, arg)| {
        if let Some(prefix) = arg.strip_prefix("--file-prefix=") {
            Some(prefix.to_owned())
        } else if arg == "--file-prefix" {
            args.get(i + 1).cloned()
        } else {
            None
        }
    })
}

/// Removes what EAL leaves of a primary process with a shared config once it has cleaned
/// up: its hugepage files (`PREFIXmap_N` on every hugetlbfs mount) and its runtime
/// directory, so that runs leave nothing behind. Only files of `prefix` are touched.
pub fn remove_leftovers(prefix: &str, runtime_dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let huge_dirs = mounts.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, kind) = (fields.next(), fields.next()?, fields.next()?);
        (kind == "hugetlbfs").then(|| PathBuf::from(dir))
    });
    let map_prefix = format!("{prefix}map_");
    for dir in huge_dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&map_prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if runtime_dir.file_name().is_some_and(|name| name == prefix) {
        let _ = std::fs::remove_dir_all(runtime_dir);
    }
}

/// Releases EAL when dropped, then removes its leftovers ([`remove_leftovers`]): on the way
/// out of `run`, whether it ends normally or with an error after EAL started.
pub struct Cleanup {
    eal: &'static dpdk_sys::Eal,
    prefix: Option<String>,
    runtime_dir: PathBuf,
}

impl Cleanup {
    pub fn new(eal: &'static dpdk_sys::Eal, args: &[String]) -> Self {
        Self {
            eal,
            prefix: prefix_of(args),
            runtime_dir: eal.runtime_dir(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.eal.cleanup();
        if let Some(prefix) = &self.prefix {
            remove_leftovers(prefix, &self.runtime_dir);
        }
    }
}

/// `egressfwd-SERVER`, with any character of the server's name that has no place in a file
/// name as `_`.
pub fn file_prefix(server: &str) -> String {
    let name: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("egressfwd-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_prefix_is_named_after_the_server() {
        assert_eq!(file_prefix("lhr01-a"), "egressfwd-lhr01-a");
        assert_eq!(file_prefix("a/b c"), "egressfwd-a_b_c");
        let args = arguments(&[], &s(&["net_null0"]), (0, &[1]), 512, true, "lhr01-a");
        assert!(args.contains(&"--file-prefix=egressfwd-lhr01-a".to_owned()));
        let own = arguments(
            &s(&["--file-prefix", "x"]),
            &s(&["net_null0"]),
            (0, &[1]),
            512,
            true,
            "s",
        );
        assert!(!own.iter().any(|a| a.starts_with("--file-prefix=")));
        assert_eq!(prefix_of(&own).as_deref(), Some("x"));
        assert_eq!(prefix_of(&args).as_deref(), Some("egressfwd-lhr01-a"));
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn recognises_pci_addresses() {
        assert!(is_pci("0000:01:00.0"));
        assert!(is_pci("01:00.1"));
        assert!(is_pci("0000:af:00.0,rxq_cqe_comp_en=1"));
        assert!(!is_pci("net_ring0"));
        assert!(!is_pci("net_pcap0,rx_pcap=/tmp/a:b.pcap"));
        assert!(!is_pci("net_tap0,iface=egress0"));
    }

    #[test]
    fn adds_only_what_the_operator_left_out() {
        let vdev_only = arguments(&[], &s(&["net_null0"]), (0, &[1, 1]), 512, false, "s1");
        assert_eq!(
            vdev_only,
            s(&[
                "egressfwd",
                "--file-prefix=egressfwd-s1",
                "--lcores=0@0,1@1,2@1",
                "--no-pci",
                "--no-huge",
                "--no-shconf",
                "-m512",
                "--log-level=lib.eal:notice"
            ])
        );
        let huge = arguments(&[], &s(&["net_null0"]), (1, &[0]), 512, true, "s1");
        assert!(huge.contains(&"--lcores=0@1,1@0".to_owned()), "{huge:?}");
        // Hugepages with a shared config, so that secondary processes can attach.
        assert!(
            !huge
                .iter()
                .any(|a| a == "--in-memory" || a == "--no-shconf"),
            "{huge:?}"
        );
        let nic = arguments(
            &s(&["-l", "2-3", "--file-prefix", "a"]),
            &s(&["0000:01:00.0", "net_tap0"]),
            (0, &[]),
            512,
            true,
            "s1",
        );
        assert_eq!(
            nic,
            s(&[
                "egressfwd",
                "-a0000:01:00.0",
                "--log-level=lib.eal:notice",
                "-l",
                "2-3",
                "--file-prefix",
                "a"
            ])
        );
    }
}
