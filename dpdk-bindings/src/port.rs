use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{strerror, DpdkError};
use crate::ffi;
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;

/// How to configure a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// IP MTU to set; devices that cannot change it keep theirs (logged, not an error).
    pub mtu: Option<u16>,
    /// Spread received flows over the rx queues with RSS on IPv4/IPv6 + TCP/UDP when the
    /// device supports it.
    pub rss: bool,
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: None,
            rss: true,
            promiscuous: true,
        }
    }
}

/// Link state as the driver reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
}

/// The device's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// An ethdev port. Configure and start it, take its queue handles (one pair per worker),
/// and stop and close it at the end.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    driver: String,
    started: bool,
    closed: bool,
    rss_enabled: bool,
    /// Which queues' handles have been handed out: each exactly once, since a handle's
    /// bursts assume no other thread uses its queue.
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
}

/// Marks queue `queue` taken; whether it was free (and exists).
fn take(taken: &[AtomicBool], queue: u16) -> bool {
    taken
        .get(usize::from(queue))
        .is_some_and(|t| !t.swap(true, Ordering::AcqRel))
}

fn port_err(port: &str, step: &'static str, rc: i32) -> DpdkError {
    DpdkError::Port {
        port: port.to_owned(),
        step,
        reason: strerror(rc),
    }
}

/// The DPDK name of the device a devargs string creates: everything before the first comma.
fn device_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or(devargs).trim()
}

impl Port {
    /// The port for a device string (`net_ring0`, `net_pcap0,rx_pcap=in.pcap`, a PCI address),
    /// creating the device first if EAL has not already done so.
    pub fn open(devargs: &str) -> Result<Self, DpdkError> {
        let name = device_name(devargs);
        if let Ok(port) = Self::by_name(name) {
            return Ok(port);
        }
        let c_args =
            CString::new(devargs).map_err(|_| DpdkError::NulInArgument(devargs.to_owned()))?;
        // SAFETY: EAL is initialised by the caller (no port can exist otherwise, and DPDK
        // reports an error rather than crashing when it is not); c_args outlives the call.
        let rc = unsafe { ffi::rte_dev_probe(c_args.as_ptr()) };
        if rc < 0 {
            return Err(DpdkError::Probe {
                device: devargs.to_owned(),
                reason: strerror(rc),
            });
        }
        Self::by_name(name).or_else(|err| {
            // PCI devices are named in their long form (0000:01:00.0) whatever was written.
            Self::by_name(&format!("0000:{name}")).map_err(|_| err)
        })
    }

    /// The existing port with this DPDK device name.
    pub fn by_name(name: &str) -> Result<Self, DpdkError> {
        let c_name = CString::new(name).map_err(|_| DpdkError::NulInArgument(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid string for the call; id is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(DpdkError::NoSuchPort {
                name: name.to_owned(),
                available: available_ports(),
            });
        }
        let info = device_info(id, name)?;
        // SAFETY: driver_name points to the driver's static name string (or is NULL).
        let driver = unsafe { cstr_or_empty(info.driver_name) };
        Ok(Self {
            id,
            name: name.to_owned(),
            driver,
            started: false,
            closed: false,
            rss_enabled: false,
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The largest IP MTU the device can carry: its `max_mtu`, and no more than its largest
    /// receivable frame allows, with the overhead DPDK's own MTU check assumes
    /// (`eth_dev_get_overhead_len`: the difference of the two when the driver gives both,
    /// else an Ethernet header and CRC).
    pub fn max_mtu(&self) -> Result<u16, DpdkError> {
        const ETHERNET_AND_CRC: u32 = 18;
        let info = device_info(self.id, &self.name)?;
        let max_mtu = u32::from(info.max_mtu);
        let overhead = if info.max_mtu != u16::MAX && info.max_rx_pktlen > max_mtu {
            info.max_rx_pktlen - max_mtu
        } else {
            ETHERNET_AND_CRC
        };
        let by_frame = info.max_rx_pktlen.saturating_sub(overhead);
        Ok(max_mtu.min(by_frame) as u16)
    }

    /// Whether [`Port::configure`] enabled RSS (multi-queue devices that support it).
    pub fn rss_enabled(&self) -> bool {
        self.rss_enabled
    }

    /// Configures queues (receiving into `pool`), MTU and RSS, then starts the port.
    pub fn configure(&mut self, config: &PortConfig, pool: &Mempool) -> Result<(), DpdkError> {
        let handed_out = |taken: &[AtomicBool]| taken.iter().any(|t| t.load(Ordering::Acquire));
        if handed_out(&self.rx_taken) || handed_out(&self.tx_taken) {
            // Handles do not borrow the port: new ones beside them would share queues.
            return Err(DpdkError::Port {
                port: self.name.clone(),
                step: "configure",
                reason: "its queue handles are in use".to_owned(),
            });
        }
        let info = device_info(self.id, &self.name)?;
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Port {
                port: self.name.clone(),
                step: "queue count",
                reason: format!(
                    "{} rx / {} tx queues requested, the device has at most {} / {}",
                    config.rx_queues, config.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            });
        }
        let mut conf = ffi::rte_eth_conf::default();
        // SAFETY: efw_rss_ip_tcp_udp is an immutable constant defined in the shim.
        let wanted_rss = unsafe { ffi::efw_rss_ip_tcp_udp };
        let rss_hf = wanted_rss & info.flow_type_rss_offloads;
        self.rss_enabled = config.rss && config.rx_queues > 1 && rss_hf != 0;
        if self.rss_enabled {
            conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: conf is a fully initialised rte_eth_conf; the port id is valid.
        let rc = unsafe {
            ffi::rte_eth_dev_configure(self.id, config.rx_queues, config.tx_queues, &conf)
        };
        if rc < 0 {
            return Err(port_err(&self.name, "configure", rc));
        }
        if let Some(mtu) = config.mtu {
            // SAFETY: valid port id; a plain setter.
            let rc = unsafe { ffi::rte_eth_dev_set_mtu(self.id, mtu) };
            if rc < 0 {
                tracing::warn!(port = %self.name, mtu, reason = %strerror(rc), "device keeps its own MTU");
            }
        }
        let (mut rxd, mut txd) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: valid port id and out-pointers.
        let rc = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rxd, &mut txd) };
        if rc < 0 {
            return Err(port_err(&self.name, "descriptor count", rc));
        }
        // SAFETY: valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) } as u32; // SOCKET_ID_ANY stays "any"
        for queue in 0..config.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; a NULL rxconf selects the
            // driver defaults; the pool outlives the port (the caller closes ports first).
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    self.id,
                    queue,
                    rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc < 0 {
                return Err(port_err(&self.name, "rx queue setup", rc));
            }
        }
        for queue in 0..config.tx_queues {
            // SAFETY: as above, for the tx side.
            let rc = unsafe {
                ffi::rte_eth_tx_queue_setup(self.id, queue, txd, socket, std::ptr::null())
            };
            if rc < 0 {
                return Err(port_err(&self.name, "tx queue setup", rc));
            }
        }
        if config.promiscuous {
            // SAFETY: valid port id. Some virtual devices have no such mode; that is fine.
            let _ = unsafe { ffi::rte_eth_promiscuous_enable(self.id) };
        }
        // SAFETY: the port is configured with all its queues set up.
        let rc = unsafe { ffi::rte_eth_dev_start(self.id) };
        if rc < 0 {
            return Err(port_err(&self.name, "start", rc));
        }
        self.started = true;
        self.rx_taken = (0..config.rx_queues)
            .map(|_| AtomicBool::new(false))
            .collect();
        self.tx_taken = (0..config.tx_queues)
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(())
    }

    /// The rx handle of queue `queue` of the started port, the first time it is asked for;
    /// `None` after, or for a queue the port does not have. The handle then belongs to one
    /// thread (it is `Send`, not `Sync`, and bursts through `&mut self`).
    pub fn rx_queue(&self, queue: u16) -> Option<RxQueue> {
        take(&self.rx_taken, queue).then_some(RxQueue {
            port: self.id,
            queue,
        })
    }

    /// The tx handle of queue `queue`, handed out once, as [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Option<TxQueue> {
        take(&self.tx_taken, queue).then_some(TxQueue {
            port: self.id,
            queue,
        })
    }

    /// Both handles of queue `queue` (a worker's pair), each handed out once.
    pub fn queue(&self, queue: u16) -> Option<(RxQueue, TxQueue)> {
        Some((self.rx_queue(queue)?, self.tx_queue(queue)?))
    }

    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut addr) };
        if rc < 0 {
            return Err(port_err(&self.name, "read MAC address", rc));
        }
        Ok(addr.addr_bytes)
    }

    pub fn mtu(&self) -> Option<u16> {
        let mut mtu = 0u16;
        // SAFETY: valid port id and out-pointer.
        (unsafe { ffi::rte_eth_dev_get_mtu(self.id, &mut mtu) } == 0).then_some(mtu)
    }

    pub fn link(&self) -> LinkStatus {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: valid port id and out-pointer; the call does not wait.
        unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut link) };
        LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut raw = ffi::rte_eth_stats::default();
        // SAFETY: valid port id and out-pointer.
        unsafe { ffi::rte_eth_stats_get(self.id, &mut raw) };
        PortStats {
            rx_packets: raw.ipackets,
            tx_packets: raw.opackets,
            rx_bytes: raw.ibytes,
            tx_bytes: raw.obytes,
            rx_missed: raw.imissed,
            rx_errors: raw.ierrors,
            tx_errors: raw.oerrors,
            rx_nombuf: raw.rx_nombuf,
        }
    }

    /// The driver's extended statistics, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: a NULL array with size 0 asks for the count only.
        let count = unsafe { ffi::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        let Ok(count) = usize::try_from(count) else {
            return Vec::new();
        };
        let mut names = vec![ffi::rte_eth_xstat_name::default(); count];
        let mut values = vec![ffi::rte_eth_xstat::default(); count];
        // SAFETY: both arrays have room for `count` entries, as passed.
        let got_names =
            unsafe { ffi::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), count as u32) };
        // SAFETY: as above.
        let got_values =
            unsafe { ffi::rte_eth_xstats_get(self.id, values.as_mut_ptr(), count as u32) };
        if got_names < 0 || got_values < 0 {
            return Vec::new();
        }
        let n = count.min(got_names as usize).min(got_values as usize);
        values[..n]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK writes NUL-terminated names within the fixed-size array.
                let text = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((text.to_string_lossy().into_owned(), v.value))
            })
            .collect()
    }

    /// Stops the port: no more packets are received or sent.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: valid, started port; no worker uses its queues any more (callers stop
        // workers first).
        let rc = unsafe { ffi::rte_eth_dev_stop(self.id) };
        if rc < 0 {
            return Err(port_err(&self.name, "stop", rc));
        }
        Ok(())
    }

    /// Stops and closes the port, releasing its queues and every buffer they held; a pcap
    /// output file is flushed and closed here.
    pub fn close(&mut self) -> Result<(), DpdkError> {
        if self.closed {
            return Ok(());
        }
        self.stop()?;
        self.closed = true;
        // SAFETY: the port is stopped and no queue handle is in use.
        let rc = unsafe { ffi::rte_eth_dev_close(self.id) };
        if rc < 0 {
            return Err(port_err(&self.name, "close", rc));
        }
        Ok(())
    }
}

fn device_info(id: u16, name: &str) -> Result<ffi::rte_eth_dev_info, DpdkError> {
    let mut info = MaybeUninit::<ffi::rte_eth_dev_info>::zeroed();
    // SAFETY: info is a writable rte_eth_dev_info; all-zero is a valid bit pattern for it.
    let rc = unsafe { ffi::rte_eth_dev_info_get(id, info.as_mut_ptr()) };
    if rc != 0 {
        return Err(port_err(name, "read device info", rc));
    }
    // SAFETY: zero-initialised and then filled by DPDK.
    Ok(unsafe { info.assume_init() })
}

/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string.
unsafe fn cstr_or_empty(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}

fn available_ports() -> String {
    let mut names = Vec::new();
    for id in 0..ffi::RTE_MAX_ETHPORTS as u16 {
        // SAFETY: any id may be asked about; invalid ones return 0.
        if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 0 {
            continue;
        }
        let mut name = [0 as std::os::raw::c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: the id is a valid port; the buffer has
        // the RTE_ETH_NAME_MAX_LEN bytes the function may write.
        if unsafe { ffi::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) } == 0 {
            // SAFETY: on success DPDK wrote a NUL-terminated name into the buffer.
            names.push(unsafe { cstr_or_empty(name.as_ptr()) });
        }
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Receive side of one queue of one port; owned by one worker.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

/// Transmit side of one queue of one port; owned by one worker.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to the burst's spare capacity (at most `max`) into the end of `burst`;
    /// returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst, max: usize) -> usize {
        let room = burst.spare_capacity().min(max) as u16;
        // SAFETY: the spare slots of `burst` have room for `room` pointers; the port/queue
        // pair is started and owned by this handle alone (&mut self).
        let n = unsafe { ffi::efw_rx_burst(self.port, self.queue, burst.spare_ptr(), room) };
        // SAFETY: the driver wrote n owned mbufs into those slots.
        unsafe { burst.assume_filled(usize::from(n)) };
        usize::from(n)
    }
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Offers every buffer of `burst` to the driver. The ones it accepts leave the burst (the
    /// driver owns them now); the ones it refused stay, in order, for the caller to retry or
    /// free. Returns how many were accepted.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        if burst.is_empty() {
            return 0;
        }
        let len = burst.len() as u16;
        // SAFETY: the first `len` slots hold owned mbufs; the driver takes ownership of the
        // first n it returns and leaves the rest untouched; this handle alone uses the queue.
        let n = unsafe { ffi::efw_tx_burst(self.port, self.queue, burst.filled_ptr(), len) };
        burst.forget_front(usize::from(n));
        usize::from(n)
    }
}
