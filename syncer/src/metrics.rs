//! The syncer's Prometheus metrics, kept with `prometheus-client` in a
//! registry that a `/metrics` endpoint encodes (Prometheus text 0.0.4):
//! the syncer's own (`vkube_syncer_*`) and client-go's work queue series
//! for each kind's queue (`workqueue_*{name="syncer_<kind>"}`).
//!
//! Series (label `kind` is the synced kind, e.g. `Pod`):
//! * `vkube_syncer_reconciles_total{kind}`: reconciles run (counter);
//! * `vkube_syncer_reconcile_errors_total{kind}`: reconciles that failed and
//!   were retried with backoff (counter);
//! * `vkube_syncer_sync_latency_seconds{kind,direction}`: histogram of the
//!   time from a change being observed (watch event queued) to the write it
//!   caused, `direction="virtual_to_host"` (host write) or
//!   `"host_to_virtual"` (virtual write), in seconds;
//! * `workqueue_depth`, `workqueue_adds_total`,
//!   `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`,
//!   `workqueue_retries_total` per queue ([`crate::queue::Queue`]).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use vkube_core::monitoring::{SharedRegistry, WorkqueueMetrics};

use crate::queue::Queue;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which side a sync wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// A virtual change written to the host.
    VirtualToHost,
    /// A host change written to the virtual cluster.
    HostToVirtual,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::VirtualToHost => "virtual_to_host",
            Direction::HostToVirtual => "host_to_virtual",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    kind: &'static str,
    direction: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The syncer's metrics; shared as `Arc<Metrics>`, updated by every
/// controller, encoded by [`Metrics::render`].
pub struct Metrics {
    registry: SharedRegistry,
    workqueue: WorkqueueMetrics,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics in a registry of their own, with the work queue families
    /// (a stand-alone `vkube syncer`).
    pub fn new() -> Self {
        let registry = SharedRegistry::new();
        let workqueue = WorkqueueMetrics::register(&mut registry.lock());
        Self::register(&registry, workqueue)
    }

    /// Metrics registered in `registry`, whose work queue families
    /// `workqueue` already are (a syncer beside its virtual API server,
    /// sharing that server's `/metrics`).
    pub fn register(registry: &SharedRegistry, workqueue: WorkqueueMetrics) -> Self {
        let m = Self {
            registry: registry.clone(),
            workqueue,
            reconciles: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        let mut r = registry.lock();
        r.register(
            "vkube_syncer_reconciles",
            "Reconciles run, per synced kind",
            m.reconciles.clone(),
        );
        r.register(
            "vkube_syncer_reconcile_errors",
            "Reconciles that failed and were retried, per synced kind",
            m.errors.clone(),
        );
        r.register(
            "vkube_syncer_sync_latency_seconds",
            "Time from an observed change to the write it caused, in seconds",
            m.latency.clone(),
        );
        drop(r);
        m
    }

    /// The registry the metrics are encoded from.
    pub fn registry(&self) -> &SharedRegistry {
        &self.registry
    }

    /// Counts one reconcile of `kind`, and one error if `failed`.
    pub fn reconciled(&self, kind: &'static str, failed: bool) {
        let label = KindLabel { kind };
        self.reconciles.get_or_create(&label).inc();
        if failed {
            self.errors.get_or_create(&label).inc();
        }
    }

    /// Records a sync latency of `kind` in `direction`.
    pub fn observe_latency(&self, kind: &'static str, direction: Direction, latency: Duration) {
        self.latency
            .get_or_create(&LatencyLabels {
                kind,
                direction: direction.label(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Reports `queue` as the work queue `syncer_<kind in lower case>`
    /// from now on (`workqueue_*`), and shows `kind` in the reconcile
    /// counters at zero.
    pub fn register_queue<K>(&self, kind: &'static str, queue: &Arc<Queue<K>>)
    where
        K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    {
        let label = KindLabel { kind };
        drop(self.reconciles.get_or_create(&label));
        drop(self.errors.get_or_create(&label));
        queue.monitor(
            self.workqueue
                .queue(&format!("syncer_{}", kind.to_ascii_lowercase())),
        );
    }

    /// Reconciles of `kind` so far.
    pub fn reconciles(&self, kind: &'static str) -> u64 {
        self.reconciles
            .get(&KindLabel { kind })
            .map_or(0, |c| c.get())
    }

    /// Failed reconciles of `kind` so far.
    pub fn errors(&self, kind: &'static str) -> u64 {
        self.errors.get(&KindLabel { kind }).map_or(0, |c| c.get())
    }

    /// Everything in the registry in Prometheus text format 0.0.4
    /// (content type [`vkube_core::monitoring::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.registry.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::new();
        m.reconciled("Pod", false);
        m.reconciled("Pod", true);
        m.observe_latency("Pod", Direction::VirtualToHost, Duration::from_millis(3));
        m.observe_latency("Pod", Direction::VirtualToHost, Duration::from_secs(20));
        let q = Arc::new(Queue::new());
        q.add(1u8);
        m.register_queue("Pod", &q);
        let text = m.render();
        assert!(
            text.contains("vkube_syncer_reconciles_total{kind=\"Pod\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("vkube_syncer_reconcile_errors_total{kind=\"Pod\"} 1\n"));
        assert!(
            text.contains("workqueue_depth{name=\"syncer_pod\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("workqueue_adds_total{name=\"syncer_pod\"} 0\n"));
        let b =
            "vkube_syncer_sync_latency_seconds_bucket{kind=\"Pod\",direction=\"virtual_to_host\"";
        assert!(text.contains(&format!("{b},le=\"0.002\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{b},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("{b},le=\"10\"}} 1\n")));
        assert!(text.contains(&format!("{b},le=\"+Inf\"}} 2\n")));
        assert!(text.contains("_count{kind=\"Pod\",direction=\"virtual_to_host\"} 2\n"));
    }
}
