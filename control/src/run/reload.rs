//! Topology reloads: on SIGHUP, and when a write of the file completes (closed after writing
//! in place, or renamed into place). A file that does not parse, validate or compile keeps the old table; so
//! does one that would lose more than `[reload] max_loss` of the table's egress addresses or
//! servers (a file read half-written is still a valid topology), unless SIGUSR1 forces it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dataplane::{Published, Retired};
use topology::change::Loss;
use topology::ForwardingTable;

use crate::totals::Shared;
use crate::Failure;
use egressfwd::config::Config;

/// Flags set by signal handlers (the handlers only store to an atomic).
pub struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    force: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> Result<Self, Failure> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;
        let force = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, force.clone())?;
        Ok(Self {
            stop,
            reload,
            force,
        })
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::Relaxed)
    }

    /// SIGUSR1: reload now, publishing the table whatever it loses.
    pub fn take_forced_reload(&self) -> bool {
        self.force.swap(false, Ordering::Relaxed)
    }
}

/// What identifies a version of the file: an atomic rename changes the inode, an in-place
/// write the modification time or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    inode: u64,
    device: u64,
    modified_ns: i128,
    changed_ns: i128,
    len: u64,
}

fn version(path: &Path) -> Option<Version> {
    let m = std::fs::metadata(path).ok()?;
    Some(Version {
        inode: m.ino(),
        device: m.dev(),
        modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        changed_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        len: m.len(),
    })
}

/// Tells when the topology file has a new complete version.
///
/// With inotify (the normal case), a version is complete when a writer closes the file
/// (`cp`, a shell's `>` redirect, a slow writer) or renames a file onto its name (editors,
/// configuration managers), and no further such event follows for [`SETTLE`]. A write in
/// progress is never read: a file read half-written can be a valid topology that lacks its
/// last entries. Where inotify is unavailable, the file's metadata is polled every control
/// tick instead (which can read a write in progress; the loss guard then stands between it
/// and the data plane).
pub struct Watcher {
    path: PathBuf,
    seen: Option<Version>,
    events: Option<Events>,
}

/// How long a completed write must stand alone before it is read: a tool that writes a
/// file and then renames another over it, or closes it twice, causes one reload.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

struct Events {
    inotify: inotify::Inotify,
    name: std::ffi::OsString,
    pending_since: Option<std::time::Instant>,
}

impl Events {
    fn watch(path: &Path) -> std::io::Result<Self> {
        use inotify::{Inotify, WatchMask};
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the topology path names no file"))?
            .to_owned();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // A symlinked file (a Kubernetes ConfigMap, say) changes when a link elsewhere is
        // renamed: events on this name would never come. Its metadata is polled instead.
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(std::io::Error::other(
                "the topology path is a symbolic link",
            ));
        }
        let inotify = Inotify::init()?;
        // The directory, not the file: a rename onto the name replaces the watched inode.
        inotify
            .watches()
            .add(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO)?;
        Ok(Self {
            inotify,
            name,
            pending_since: None,
        })
    }

    /// Whether a completed write has settled. Never blocks.
    fn settled(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match self.inotify.read_events(&mut buffer) {
                Ok(events) => {
                    let mut any = false;
                    for event in events {
                        if event.name == Some(self.name.as_os_str()) {
                            self.pending_since = Some(std::time::Instant::now());
                        }
                        any = true;
                    }
                    if !any {
                        break;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    tracing::warn!(%err, "reading topology file events failed");
                    break;
                }
            }
        }
        match self.pending_since {
            Some(since) if since.elapsed() >= SETTLE => {
                self.pending_since = None;
                true
            }
            _ => false,
        }
    }
}

impl Watcher {
    pub fn new(path: &Path) -> Self {
        let events = match Events::watch(path) {
            Ok(events) => Some(events),
            Err(err) => {
                tracing::warn!(
                    %err,
                    "cannot watch the topology file with inotify; polling its metadata instead"
                );
                None
            }
        };
        Self {
            path: path.to_owned(),
            seen: version(path),
            events,
        }
    }

    pub fn changed(&mut self) -> bool {
        if let Some(events) = &mut self.events {
            if !events.settled() {
                return false;
            }
            self.seen = version(&self.path);
            // A file renamed away and not back is not a new version.
            return self.seen.is_some();
        }
        let now = version(&self.path);
        if now != self.seen {
            self.seen = now;
            // A vanished file is not a new version: wait for it to come back.
            return now.is_some();
        }
        false
    }
}

/// Loads, validates and compiles the topology; publishes it on success, keeps the old table
/// and logs every error on failure. Unless `forced`, a table that loses more than the
/// configured share of the current one is refused.
pub fn reload(
    config: &Config,
    tables: &Published<ForwardingTable>,
    retired: &mut Retired<ForwardingTable>,
    shared: &Shared,
    forced: bool,
) {
    let started = std::time::Instant::now();
    let compiled = crate::load::read_topology(&config.topology)
        .map_err(|d| d.to_string())
        .and_then(|(topology, digest)| {
            ForwardingTable::compile(&topology, &config.server)
                .map(|table| (table, digest))
                .map_err(|e| format!("{}: {e}", config.topology.display()))
        });
    let refusal = match &compiled {
        Ok((next, _)) if !forced => {
            Loss::between(&tables.current(), next).refusal(config.reload_max_loss)
        }
        _ => None,
    };
    if let Some(why) = refusal {
        shared.reload_refused();
        tracing::error!(
            generation = tables.generation(),
            "topology reload refused: {} {why}; keeping the current table. If the change is \
             intended, send SIGUSR1 (kill -USR1 {}) to publish it anyway, or raise \
             [reload] max_loss in {}",
            config.topology.display(),
            std::process::id(),
            config.path.display(),
        );
        return;
    }
    match compiled {
        Ok((mut table, digest)) => {
            // 7.5.3: the slices that move here are passed on to their previous owner for the
            // grace period, on the workers' clock.
            let now = dataplane::worker::clock_seconds();
            let until = now.saturating_add(config.connections.slice_grace_seconds);
            table.remember_previous(&tables.current(), now, until);
            let local = table.local_addresses();
            shared.set_topology_digest(digest);
            super::place_on_huge_pages(table.regions());
            retired.push(tables.publish(Arc::new(table)));
            shared.reload_succeeded(local);
            tracing::info!(
                generation = tables.generation(),
                local_addresses = local,
                second_chance_bytes = tables.current().previous_memory_bytes(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "topology reloaded"
            );
        }
        Err(errors) => {
            shared.reload_failed();
            for line in errors.lines() {
                tracing::error!("{line}");
            }
            tracing::error!(
                generation = tables.generation(),
                "topology reload failed; keeping the current table"
            );
        }
    }
}
