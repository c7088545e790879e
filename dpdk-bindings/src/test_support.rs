//! EAL for tests, in any crate of the workspace: initialised once per test process (DPDK
//! allows one initialisation per process), without hugepages so that it runs on any machine,
//! and without shared config files so that test processes cannot collide.

use crate::Eal;

pub const TEST_EAL_ARGS: &[&str] = &[
    "egressfwd-test",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "--no-pci",
    "--log-level=lib.eal:warning",
];

/// The process's EAL, initialised with [`TEST_EAL_ARGS`] on first use.
pub fn eal() -> &'static Eal {
    Eal::init(TEST_EAL_ARGS).expect("EAL initialises with the test arguments")
}
