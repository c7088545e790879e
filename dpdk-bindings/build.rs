//! Finds the system DPDK with pkg-config, generates bindings with bindgen (allowlisted to what
//! the project uses) and compiles the C shim for DPDK's `static inline` fast path.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_DPDK: &str = "22.11";
const APT_HINT: &str =
    "install it with: apt-get install libdpdk-dev pkg-config clang libclang-dev \
                        (or run scripts/setup.sh as root)";

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let output = Command::new("pkg-config")
        .args(args)
        .output()
        .map_err(|err| format!("cannot run pkg-config ({err})"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn fail(message: &str) -> ! {
    // A panic in a build script prints its message in a box of backtrace noise; an explicit
    // error line followed by exit(1) reads better in `cargo build` output.
    eprintln!("error: {message}");
    println!("cargo:warning={message}");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion", "libdpdk"]).unwrap_or_else(|err| {
        fail(&format!(
            "DPDK (libdpdk) was not found by pkg-config: {err}. {APT_HINT}"
        ))
    });
    if pkg_config(&["--atleast-version", MIN_DPDK, "libdpdk"]).is_err() {
        fail(&format!(
            "DPDK {version} is too old: egressfwd needs {MIN_DPDK} or newer. {APT_HINT}"
        ));
    }
    let cflags: Vec<String> = pkg_config(&["--cflags", "libdpdk"])
        .unwrap_or_else(|err| fail(&err))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let libs = pkg_config(&["--libs", "libdpdk"]).unwrap_or_else(|err| fail(&err));

    let mut shim = cc::Build::new();
    shim.file("shim.c").include(".").opt_level(3).warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("egressfwd_dpdk_shim");

    for token in libs.split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = token.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }

    // bindgen loads libclang at run time and panics when it is missing; turn that into the
    // same actionable message as a missing DPDK.
    let generated = std::panic::catch_unwind(|| {
        bindgen::Builder::default()
            .header("wrapper.h")
            .clang_args(cflags.iter().filter(|f| !f.starts_with("-march")))
            .clang_arg("-I.")
            .allowlist_function("rte_eal_init|rte_eal_cleanup|rte_strerror|rte_socket_id|rte_get_tsc_hz")
            .allowlist_function("rte_lcore_count")
            .allowlist_function("rte_dev_probe")
            .allowlist_function("rte_eth_dev_(configure|start|stop|close|info_get|get_port_by_name|get_name_by_port|count_avail|socket_id|set_mtu|get_mtu|is_valid_port)")
            .allowlist_function("rte_eth_(rx|tx)_queue_setup|rte_eth_macaddr_get|rte_eth_promiscuous_enable")
            .allowlist_function("rte_eth_link_get_nowait|rte_eth_stats_get|rte_eth_stats_reset|rte_eth_xstats_get(_names)?")
            .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc|rte_eth_find_next_owned_by")
            .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_(free|in_use_count|avail_count|lookup)")
            .allowlist_function("rte_pktmbuf_free_bulk")
            .allowlist_function("rte_eal_remote_launch|rte_eal_wait_lcore|rte_eal_get_runtime_dir|rte_get_next_lcore|rte_pdump_init|rte_pdump_uninit")
            .allowlist_function("rte_telemetry_register_cmd|rte_tel_data_start_dict|rte_tel_data_add_dict_(u64|string)")
            .allowlist_function("efw_.*")
            .allowlist_var("efw_.*|RTE_MAX_LCORE|RTE_ETH_NAME_MAX_LEN|RTE_MAX_ETHPORTS|RTE_ETHER_ADDR_LEN|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_BUF_SIZE|SOCKET_ID_ANY|RTE_ETH_XSTATS_NAME_SIZE")
            .allowlist_type("rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_ether_addr|rte_eth_stats|rte_eth_link|rte_eth_xstat|rte_eth_xstat_name|rte_eth_rxconf|rte_eth_txconf")
            .constified_enum_module("rte_eth_rx_mq_mode|rte_eth_tx_mq_mode")
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            .generate()
    });
    let bindings = match generated {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(err)) => fail(&format!(
            "bindgen failed on the DPDK headers: {err}. {APT_HINT}"
        )),
        Err(_) => fail(&format!("bindgen could not load libclang. {APT_HINT}")),
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|err| fail(&format!("cannot write bindings: {err}")));
}
