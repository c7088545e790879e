//! Telling the service manager how the appliance is doing: ready once the ports are up and a
//! table is published, reloading, stopping, and alive (watchdog pings from the control
//! thread). This is sd_notify's protocol (datagrams to `$NOTIFY_SOCKET`), spoken directly so
//! that the binary does not link libsystemd. Outside systemd every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

pub struct ServiceManager {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half the watchdog timeout systemd gave (`WATCHDOG_USEC`), as sd_watchdog_enabled advises.
    watchdog_every: Option<Duration>,
    last_ping: Instant,
}

/// Whether this process runs as a systemd service (systemd sets `INVOCATION_ID` for every
/// unit it starts, and `NOTIFY_SOCKET` for `Type=notify`).
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

impl ServiceManager {
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let address = notify_address(&path)
                .map_err(|err| tracing::warn!(%err, path, "NOTIFY_SOCKET is not usable"))
                .ok()?;
            let socket = UnixDatagram::unbound()
                .map_err(|err| tracing::warn!(%err, "cannot open a socket to notify systemd"))
                .ok()?;
            Some((socket, address))
        });
        // WATCHDOG_PID names the process meant, when it is set.
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(|usec| Duration::from_micros(usec / 2));
        Self {
            socket,
            watchdog_every,
            last_ping: Instant::now(),
        }
    }

    fn notify(&self, state: &str) {
        if let Some((socket, address)) = &self.socket {
            if let Err(err) = socket.send_to_addr(state.as_bytes(), address) {
                tracing::warn!(%err, "cannot notify systemd");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn reloading(&self) {
        self.notify("RELOADING=1");
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// Pings the watchdog when one is due. Called every control tick: a control thread that
    /// stops ticking (deadlocked, or stuck on a reload) gets the service restarted.
    pub fn tick(&mut self) {
        if let Some(every) = self.watchdog_every {
            if self.last_ping.elapsed() >= every {
                self.notify("WATCHDOG=1");
                self.last_ping = Instant::now();
            }
        }
    }
}

/// A socket path, or an abstract address written with a leading `@`.
fn notify_address(path: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket_systemd_names() {
        let dir = std::env::temp_dir().join(format!("efw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let manager = ServiceManager {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                notify_address(path.to_str().unwrap()).unwrap(),
            )),
            watchdog_every: Some(Duration::ZERO),
            last_ping: Instant::now(),
        };
        manager.ready("1 table");
        let mut buffer = [0u8; 256];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=1 table");
        let mut manager = manager;
        manager.tick();
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_addresses_are_written_with_an_at() {
        use std::os::linux::net::SocketAddrExt;
        let address = notify_address("@egressfwd-test").unwrap();
        assert_eq!(address.as_abstract_name(), Some(&b"egressfwd-test"[..]));
    }
}
