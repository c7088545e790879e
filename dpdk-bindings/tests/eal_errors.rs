//! A bad EAL argument is an error value with EAL's reason, not a crash; and DPDK still lets
//! this process initialise afterwards. Its own test binary: EAL state is per process.
use dpdk_sys::{DpdkError, Eal};

#[test]
fn bad_argument_is_reported_then_a_good_init_still_works() {
    let err =
        Eal::init(&["dpdk-sys-test", "--no-huge", "--this-is-not-an-eal-option"]).unwrap_err();
    match &err {
        DpdkError::EalInit { args, reason } => {
            assert!(args.contains("--this-is-not-an-eal-option"), "{args}");
            assert!(!reason.is_empty());
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string().starts_with("EAL initialisation failed"),
        "{err}"
    );

    let eal = dpdk_sys::test_support::eal();
    assert_eq!(eal.args(), dpdk_sys::test_support::TEST_EAL_ARGS);
    let again = Eal::init(&["dpdk-sys-test", "--no-huge"]).unwrap_err();
    assert!(
        matches!(again, DpdkError::EalAlreadyInitialised { .. }),
        "{again:?}"
    );
}
