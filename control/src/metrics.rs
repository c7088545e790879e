//! Prometheus metrics (contract section 6), served as text on the configured address.
//!
//! Worker counters are summed from the per-worker cells at scrape time; the control-plane
//! figures live in [`Shared`]. One thread serves scrapes, concurrently (see [`MetricsServer`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dataplane::{DropReason, PipelineCounters, Published, StatsCell};
use dpdk_sys::{Mempool, Port};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use topology::{ForwardingTable, Tier};

use crate::totals::{Shared, Totals};

/// The registry and its metrics, updated from [`Totals`] at each scrape.
struct Exposition {
    registry: Registry,
    counters: Vec<(String, IntCounterVec)>,
    gauges: Vec<(String, IntGaugeVec)>,
    float_gauges: prometheus::GaugeVec,
    /// `egressfwd_info`: version, this server and the topology's digest, as labels.
    info: IntGaugeVec,
    /// Scrape connections closed at once because too many were open: counted by the
    /// listener itself, not summed from the workers.
    refused: IntCounter,
}

impl Exposition {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            (name.to_owned(), c)
        };
        let mut counters = vec![
            counter(
                "egressfwd_rx_packets_total",
                "Packets received, per port and queue.",
                &["port", "queue"],
            ),
            counter(
                "egressfwd_rx_bytes_total",
                "Bytes received, per port and queue.",
                &["port", "queue"],
            ),
            counter(
                "egressfwd_tx_packets_total",
                "Packets transmitted, per port and queue.",
                &["port", "queue"],
            ),
            counter(
                "egressfwd_tx_bytes_total",
                "Bytes transmitted, per port and queue.",
                &["port", "queue"],
            ),
            counter(
                "egressfwd_decisions_total",
                "Egress packets decided, per tier.",
                &["tier"],
            ),
            counter(
                "egressfwd_drops_total",
                "Packets dropped, per reason.",
                &["reason"],
            ),
            counter(
                "egressfwd_topology_reloads_total",
                "Topology reloads, by result.",
                &["result"],
            ),
            counter(
                "egressfwd_worker_idle_sleeps_total",
                "Idle sleeps, per worker.",
                &["worker"],
            ),
            counter(
                "egressfwd_device_rx_missed_total",
                "Packets the device dropped for lack of rx descriptors.",
                &["port"],
            ),
            counter(
                "egressfwd_device_rx_nombuf_total",
                "Receive failures for lack of mbufs.",
                &["port"],
            ),
            counter(
                "egressfwd_device_rx_errors_total",
                "Erroneous packets the device received (ierrors).",
                &["port"],
            ),
            counter(
                "egressfwd_device_tx_errors_total",
                "Packets the device failed to send (oerrors).",
                &["port"],
            ),
            counter(
                "egressfwd_worker_busy_cycles_total",
                "CPU cycles a worker spent in rounds that received packets.",
                &["worker"],
            ),
            counter(
                "egressfwd_worker_idle_cycles_total",
                "CPU cycles a worker spent in rounds that found every queue empty, sleeps included.",
                &["worker"],
            ),
        ];
        // The pipeline's plain counters, as their one declaration says (several share a
        // metric, told apart by a label).
        for info in PipelineCounters::INFO {
            if !counters.iter().any(|(name, _)| name == info.metric) {
                let labels: Vec<&str> = info.label.iter().map(|(label, _)| *label).collect();
                counters.push(counter(info.metric, info.help, &labels));
            }
        }
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            (name.to_owned(), g)
        };
        let gauges = vec![
            gauge(
                "egressfwd_topology_generation",
                "Generation of the table in use (1 = loaded at start).",
                &[],
            ),
            gauge(
                "egressfwd_egress_addresses_local",
                "IPv4 egress addresses this server holds.",
                &[],
            ),
            gauge(
                "egressfwd_topology_ipv4_egress_addresses",
                "IPv4 egress addresses of the fleet, in the table in use.",
                &[],
            ),
            gauge(
                "egressfwd_topology_ipv4_egress_prefixes",
                "IPv4 egress prefixes of the fleet, in the table in use.",
                &[],
            ),
            gauge(
                "egressfwd_topology_ipv6_egress_prefixes",
                "IPv6 egress prefixes of the fleet, in the table in use.",
                &[],
            ),
            gauge(
                "egressfwd_topology_pools",
                "Pools of the fleet, in the table in use.",
                &[],
            ),
            gauge(
                "egressfwd_topology_servers",
                "Servers of the fleet, in the table in use.",
                &[],
            ),
            gauge(
                "egressfwd_mbufs_in_use",
                "Packet buffers currently taken from the pool.",
                &[],
            ),
            gauge(
                "egressfwd_mappings_in_use",
                "Mappings in use (created and not yet expired), all workers.",
                &[],
            ),
            gauge(
                "egressfwd_pins_in_use",
                "Pinned flows in use (created and not yet expired), all workers.",
                &[],
            ),
            gauge(
                "egressfwd_mbufs_capacity",
                "Packet buffers in the pool.",
                &[],
            ),
            gauge(
                "egressfwd_port_link_up",
                "1 when the port's link is up, as its driver reports it.",
                &["port"],
            ),
            gauge(
                "egressfwd_port_link_speed_mbps",
                "The port's link speed in Mbit/s (0 when unknown or down).",
                &["port"],
            ),
            gauge(
                "egressfwd_tsc_hz",
                "Cycles a second of the counter the worker cycles are measured with.",
                &[],
            ),
            gauge(
                "egressfwd_tables_retired_pending",
                "Replaced tables still held by a worker.",
                &[],
            ),
        ];
        let float_gauges = prometheus::GaugeVec::new(
            Opts::new(
                "egressfwd_topology_last_reload_success_timestamp_seconds",
                "Unix time of the last successful topology load.",
            ),
            &[],
        )
        .expect("valid metric");
        registry
            .register(Box::new(float_gauges.clone()))
            .expect("unique metric");
        let info = IntGaugeVec::new(
            Opts::new(
                "egressfwd_info",
                "Always 1: the version, this server's place and the SHA-256 of the topology in use.",
            ),
            &["version", "server", "datacenter", "location", "topology_sha256"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(info.clone()))
            .expect("unique metric");
        let refused = IntCounter::new(
            "egressfwd_metrics_connections_refused_total",
            "Scrape connections closed at once because too many were open.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(refused.clone()))
            .expect("unique metric");
        Self {
            registry,
            counters,
            gauges,
            float_gauges,
            info,
            refused,
        }
    }

    fn counter(&self, name: &str, labels: &[&str], value: u64) {
        let (_, vec) = self
            .counters
            .iter()
            .find(|(n, _)| n == name)
            .expect("known counter");
        let c = vec.with_label_values(labels);
        // Counters only go up: advance to the summed value.
        let current = c.get();
        if value > current {
            c.inc_by(value - current);
        }
    }

    fn gauge(&self, name: &str, value: u64) {
        self.labeled_gauge(name, &[], value);
    }

    fn labeled_gauge(&self, name: &str, labels: &[&str], value: u64) {
        let (_, vec) = self
            .gauges
            .iter()
            .find(|(n, _)| n == name)
            .expect("known gauge");
        vec.with_label_values(labels).set(value as i64);
    }

    fn update(&self, t: &Totals) {
        for port in &t.ports {
            for (q, c) in port.queues.iter().enumerate() {
                let labels = [port.name.as_str(), &q.to_string()];
                self.counter("egressfwd_rx_packets_total", &labels, c.rx_packets);
                self.counter("egressfwd_rx_bytes_total", &labels, c.rx_bytes);
                self.counter("egressfwd_tx_packets_total", &labels, c.tx_packets);
                self.counter("egressfwd_tx_bytes_total", &labels, c.tx_bytes);
            }
            self.counter(
                "egressfwd_device_rx_missed_total",
                &[&port.name],
                port.device.rx_missed,
            );
            self.counter(
                "egressfwd_device_rx_nombuf_total",
                &[&port.name],
                port.device.rx_nombuf,
            );
            self.counter(
                "egressfwd_device_rx_errors_total",
                &[&port.name],
                port.device.rx_errors,
            );
            self.counter(
                "egressfwd_device_tx_errors_total",
                &[&port.name],
                port.device.tx_errors,
            );
            self.labeled_gauge(
                "egressfwd_port_link_up",
                &[&port.name],
                u64::from(port.link.up),
            );
            self.labeled_gauge(
                "egressfwd_port_link_speed_mbps",
                &[&port.name],
                u64::from(port.link.speed_mbps),
            );
        }
        let p = &t.sum.pipeline;
        for tier in Tier::ALL {
            self.counter(
                "egressfwd_decisions_total",
                &[tier.as_str()],
                p.tiers[dataplane::counters::tier_index(tier)],
            );
        }
        for reason in DropReason::ALL {
            self.counter(
                "egressfwd_drops_total",
                &[reason.as_str()],
                p.drops[reason.index()],
            );
        }
        for (info, value) in p.named() {
            let labels: Vec<&str> = info.label.iter().map(|(_, value)| *value).collect();
            self.counter(info.metric, &labels, value);
        }
        self.counter("egressfwd_topology_reloads_total", &["ok"], t.reloads_ok);
        self.counter(
            "egressfwd_topology_reloads_total",
            &["error"],
            t.reloads_error,
        );
        self.counter(
            "egressfwd_topology_reloads_total",
            &["refused"],
            t.reloads_refused,
        );
        for (w, s) in t.workers.iter().enumerate() {
            let worker = [w.to_string()];
            let worker = [worker[0].as_str()];
            self.counter("egressfwd_worker_idle_sleeps_total", &worker, s.idle_sleeps);
            self.counter("egressfwd_worker_busy_cycles_total", &worker, s.busy_cycles);
            self.counter("egressfwd_worker_idle_cycles_total", &worker, s.idle_cycles);
        }
        self.gauge("egressfwd_tsc_hz", t.tsc_hz);
        self.gauge("egressfwd_topology_generation", t.generation);
        self.gauge("egressfwd_egress_addresses_local", t.local_addresses);
        self.gauge(
            "egressfwd_topology_ipv4_egress_addresses",
            t.table.ipv4_egress_addresses,
        );
        self.gauge(
            "egressfwd_topology_ipv4_egress_prefixes",
            t.table.ipv4_egress_prefixes,
        );
        self.gauge(
            "egressfwd_topology_ipv6_egress_prefixes",
            t.table.ipv6_egress_prefixes,
        );
        self.gauge("egressfwd_topology_pools", t.table.pools);
        self.gauge("egressfwd_topology_servers", t.table.servers);
        // One sample, whose labels change with a reload: the old one goes.
        self.info.reset();
        self.info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &t.table.server,
                &t.table.datacenter,
                &t.table.location,
                &t.table.digest,
            ])
            .set(1);
        self.gauge("egressfwd_mbufs_in_use", u64::from(t.mbufs_in_use));
        let p = &t.sum.pipeline;
        self.gauge(
            "egressfwd_mappings_in_use",
            p.mappings_created.saturating_sub(p.mappings_expired),
        );
        self.gauge(
            "egressfwd_pins_in_use",
            p.pins_created.saturating_sub(p.pins_expired),
        );
        self.gauge("egressfwd_mbufs_capacity", u64::from(t.mbufs_capacity));
        self.gauge("egressfwd_tables_retired_pending", t.retired_pending);
        self.float_gauges
            .with_label_values::<&str>(&[])
            .set(t.last_reload_success_unix_seconds);
    }

    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

/// How many scrape connections may be open at once; more are closed at once (and counted).
const MAX_OPEN_CONNECTIONS: usize = 256;
/// The kernel's queue of connections not yet accepted.
const LISTEN_BACKLOG: i32 = 1024;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection may stay open in all, whatever it does.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the listener looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The metrics listener, bound before the workers start.
///
/// Connections are served concurrently by hyper on a single-threaded runtime of the metrics
/// thread. Each has a header timeout and an overall deadline, and at most
/// [`MAX_OPEN_CONNECTIONS`] are open. So idle or slow clients can neither block a scrape nor
/// exhaust the process. The reload path never waits on this thread: it reads the same
/// shared figures.
pub struct MetricsServer {
    listener: std::net::TcpListener,
}

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        // A backlog above the open-connection bound: a burst of clients is accepted and then
        // served or refused (and counted) by the listener, instead of the kernel dropping
        // handshakes it has no room to queue while the metrics thread waits for a core.
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            listener: socket.into(),
        })
    }

    pub fn serve(
        &self,
        shared: &Shared,
        cells: &[StatsCell],
        tables: &Published<ForwardingTable>,
        ports: &[Port],
        pool: &Mempool,
        stop: &AtomicBool,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(%err, "metrics: cannot start the listener's runtime");
                return;
            }
        };
        let exposition = Exposition::new();
        let scrape = || {
            let totals = Totals::gather(shared, cells, tables, ports, pool);
            exposition.update(&totals);
            exposition.render()
        };
        runtime.block_on(async {
            let listener = match self
                .listener
                .try_clone()
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::error!(%err, "metrics: cannot listen");
                    return;
                }
            };
            // Connections are futures polled here, not spawned tasks: they borrow the
            // workers' cells, which live only as long as this thread's scope.
            let mut open = FuturesUnordered::new();
            while !stop.load(Ordering::Relaxed) {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) if open.len() < MAX_OPEN_CONNECTIONS => {
                            open.push(serve_connection(stream, &scrape, shared));
                        }
                        Ok((stream, peer)) => {
                            exposition.refused.inc();
                            tracing::debug!(%peer, "metrics: too many open connections, closing");
                            drop(stream);
                        }
                        Err(err) => {
                            tracing::warn!(%err, "metrics accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(()) = open.next(), if !open.is_empty() => {}
                    () = tokio::time::sleep(STOP_POLL) => {}
                }
            }
        });
    }
}

/// One scrape connection, bounded in time. `scrape` renders the exposition text.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    scrape: &impl Fn() -> Vec<u8>,
    shared: &Shared,
) {
    let service = service_fn(|request: Request<hyper::body::Incoming>| {
        let response = respond(&request, scrape, shared);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(%err, "metrics request failed"),
        Err(_) => tracing::debug!("metrics connection timed out"),
    }
}

/// What a request is answered: the exposition at `/metrics`; at `/healthz`, 200 only while
/// packets can be forwarded (`ready`), for load balancers and orchestrators.
fn answer(
    method: &Method,
    path: &str,
    scrape: &impl Fn() -> Vec<u8>,
    ready: bool,
) -> (StatusCode, String, Vec<u8>) {
    let text = |status, body: &str| (status, "text/plain".to_owned(), body.as_bytes().to_vec());
    match (method, path) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            TextEncoder::new().format_type().to_owned(),
            scrape(),
        ),
        (&Method::GET, "/healthz") if ready => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/healthz") => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "egressfwd serves /metrics and /healthz\n",
        ),
    }
}

fn respond(
    request: &Request<hyper::body::Incoming>,
    scrape: &impl Fn() -> Vec<u8>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = answer(
        request.method(),
        request.uri().path(),
        scrape,
        shared.is_ready(),
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(&content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_is_ready_only_while_forwarding() {
        let scrape = || b"egressfwd_x 1\n".to_vec();
        let (status, _, body) = answer(&Method::GET, "/healthz", &scrape, true);
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ready\n"[..]));
        let (status, _, _) = answer(&Method::GET, "/healthz", &scrape, false);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, content_type, body) = answer(&Method::GET, "/metrics", &scrape, false);
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain") && body == scrape());
        assert_eq!(
            answer(&Method::POST, "/healthz", &scrape, true).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            answer(&Method::GET, "/", &scrape, true).0,
            StatusCode::NOT_FOUND
        );
    }
}
