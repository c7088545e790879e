//! The appliance's own commands on DPDK's telemetry socket (`/var/run/dpdk/PREFIX/
//! dpdk_telemetry.v2`), beside DPDK's (`/ethdev/stats,0` ...): what `dpdk-telemetry.py`
//! and the tools built on it read.
//!
//! A command answers with a flat dictionary of figures. The answer is built by a handler the
//! caller registers; DPDK's telemetry thread calls it, so it must be `Send + Sync` and quick.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Arc, Mutex};

use crate::error::DpdkError;
use crate::ffi;

/// One value of a command's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetryValue {
    U64(u64),
    Text(String),
}

pub type TelemetryHandler = Arc<dyn Fn() -> Vec<(String, TelemetryValue)> + Send + Sync>;

static COMMANDS: Mutex<Vec<(CString, TelemetryHandler)>> = Mutex::new(Vec::new());

/// Registers `name` (such as `/egressfwd/stats`) with DPDK's telemetry. EAL must be
/// initialised. Names are `/`, letters, digits and `_`, at most 63 bytes (DPDK's rule).
pub fn register_telemetry_command(
    name: &str,
    help: &str,
    handler: TelemetryHandler,
) -> Result<(), DpdkError> {
    let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
    let c_help = CString::new(help).map_err(|_| DpdkError::NulInArgument(help.to_owned()))?;
    COMMANDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((c_name.clone(), handler));
    // SAFETY: both strings are NUL-terminated; DPDK copies the name and the help text, and
    // `answer` stays valid for the life of the process.
    let rc =
        unsafe { ffi::rte_telemetry_register_cmd(c_name.as_ptr(), Some(answer), c_help.as_ptr()) };
    if rc != 0 {
        return Err(DpdkError::Telemetry {
            command: name.to_owned(),
            code: rc,
        });
    }
    Ok(())
}

/// DPDK's callback for every registered command: finds its handler and writes its answer.
unsafe extern "C" fn answer(
    command: *const c_char,
    _params: *const c_char,
    data: *mut ffi::rte_tel_data,
) -> c_int {
    if command.is_null() || data.is_null() {
        return -1;
    }
    // SAFETY: DPDK passes the NUL-terminated command it matched.
    let command = unsafe { CStr::from_ptr(command) };
    let handler = COMMANDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(name, _)| name.as_c_str() == command)
        .map(|(_, handler)| handler.clone());
    let Some(handler) = handler else {
        return -1;
    };
    // SAFETY: `data` is the answer DPDK is building for this call.
    unsafe { ffi::rte_tel_data_start_dict(data) };
    for (key, value) in handler() {
        let Ok(key) = CString::new(key) else { continue };
        // SAFETY: `data` was started as a dictionary; DPDK copies the key and the value (a
        // string too long for it is refused with an error code, which leaves the answer whole).
        unsafe {
            match value {
                TelemetryValue::U64(v) => {
                    ffi::rte_tel_data_add_dict_u64(data, key.as_ptr(), v);
                }
                TelemetryValue::Text(text) => {
                    if let Ok(text) = CString::new(text) {
                        ffi::rte_tel_data_add_dict_string(data, key.as_ptr(), text.as_ptr());
                    }
                }
            }
        }
    }
    0
}
