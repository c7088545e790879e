//! EAL for tests: initialised once per test process, without hugepages so that it runs on
//! any machine, and with no shared config files so test processes cannot collide.
use dpdk_sys::Eal;

pub const TEST_EAL_ARGS: &[&str] = &[
    "dpdk-sys-test",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "--no-pci",
    "--log-level=lib.eal:warning",
];

pub fn eal() -> &'static Eal {
    Eal::init(TEST_EAL_ARGS).expect("EAL initialises with the test arguments")
}
