//! Gauges read from the node at each scrape of `/metrics`: build info, the process
//! (resident memory, open file descriptors, start time, log lines dropped), the store
//! (operations and their time, active sessions, outbox depth and age, revocation notices
//! waiting) and peer link states.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::domain::Services;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Debug, Default)]
pub struct NodeGauges {
    build: Family<BuildLabels, Gauge>,
    resident: Gauge,
    open_fds: Gauge,
    start_time: Gauge,
    store_ops: Family<KindLabels, Gauge>,
    store_seconds: Family<KindLabels, FloatGauge>,
    active_sessions: Gauge,
    outbox_depth: Gauge,
    outbox_oldest_age: FloatGauge,
    notices_waiting: Gauge,
    peers: Family<StateLabels, Gauge>,
}

/// `hearth_log_lines_dropped_total`, read from the log's writer at each scrape (the writer
/// counts; a copy here would have to be kept in step).
#[derive(Debug)]
struct LogLinesDropped;

impl prometheus_client::collector::Collector for LogLinesDropped {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let dropped =
            prometheus_client::metrics::counter::ConstCounter::new(crate::logging::dropped_lines());
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because stderr did not keep up (the queue to it was full)",
            None,
            dropped.metric_type(),
        )?;
        dropped.encode(metric)
    }
}

impl NodeGauges {
    /// Registers every gauge in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        g.start_time.set(started);
        g.build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("BUILD_GIT_COMMIT"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Version and commit of this build",
            g.build.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            g.resident.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            g.open_fds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "When the process started (unix seconds)",
            g.start_time.clone(),
        );
        registry.register(
            "store_operations",
            "Store operations since start, by kind (read, write)",
            g.store_ops.clone(),
        );
        registry.register(
            "store_busy_seconds",
            "Time spent in store operations since start, queueing included, by kind",
            g.store_seconds.clone(),
        );
        registry.register(
            "active_sessions",
            "Sessions not yet expired",
            g.active_sessions.clone(),
        );
        registry.register(
            "outbox_depth",
            "Mails waiting to be delivered",
            g.outbox_depth.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest mail waiting to be delivered (0 when none)",
            g.outbox_oldest_age.clone(),
        );
        registry.register(
            "revocation_notices_waiting",
            "Revocation notices waiting to be delivered to other nodes",
            g.notices_waiting.clone(),
        );
        registry.register("peers", "Known peers by link state", g.peers.clone());
        registry.register_collector(Box::new(LogLinesDropped));
        g
    }

    /// Reads the current values from the process, the store and the peers.
    pub async fn refresh(&self, services: &Services) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.resident.set(rss_kib * 1024);
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64);
        self.open_fds.set(fds);
        let t = services.store().timings();
        for (kind, ops, micros) in [
            ("read", t.reads, t.read_micros),
            ("write", t.writes, t.write_micros),
        ] {
            self.store_ops
                .get_or_create(&KindLabels { kind })
                .set(ops as i64);
            self.store_seconds
                .get_or_create(&KindLabels { kind })
                .set(micros as f64 / 1e6);
        }
        let now = services.clock().now_ms();
        if let Ok(g) = services.store().read(move |tx| tx.gauges(now)).await {
            self.active_sessions.set(g.active_sessions as i64);
            self.outbox_depth.set(g.outbox_depth as i64);
            let age = g
                .outbox_oldest
                .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0);
            self.outbox_oldest_age.set(age);
        }
        if let Ok(n) = services.notices.waiting().await {
            self.notices_waiting.set(n as i64);
        }
        if let Ok(peers) = services.peers.list().await {
            self.peers.clear();
            for p in peers {
                self.peers
                    .get_or_create(&StateLabels { state: p.state })
                    .inc();
            }
        }
    }
}
