//! Arbitrary bytes as an appliance config file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = egressfwd::config::Config::parse(std::path::Path::new("/etc/egressfwd/fuzz.toml"), &text);
});
