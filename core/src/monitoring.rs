//! Prometheus metrics shared by vkube's components: the registry one
//! `/metrics` endpoint encodes, and client-go's work queue metrics.
//!
//! Metrics are kept with the `prometheus-client` crate and exposed in the
//! Prometheus text format 0.0.4, which is what kube-apiserver serves and
//! what `promtool check metrics` reads. Every series name and label here is
//! the one the Kubernetes component publishes, so existing dashboards and
//! alerts read vkube unchanged.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use prometheus_client;

/// The `Content-Type` of an encoded registry (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One process's (or one virtual cluster's) metrics registry, shared by the
/// parts that register into it and the `/metrics` handler that encodes it.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct SharedRegistry(Arc<Mutex<Registry>>);

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegistry").finish_non_exhaustive()
    }
}

impl SharedRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry, for registering metrics or collectors.
    pub fn lock(&self) -> MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every registered metric in the Prometheus text format 0.0.4
    /// ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; a collector's own error leaves
        // what was written so far.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.lock());
        out
    }
}

/// The `name` label of a work queue's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueName {
    /// The queue's name (a controller's name, e.g. `deployment`).
    pub name: String,
}

type DurationFamily = Family<QueueName, Histogram, fn() -> Histogram>;

/// client-go's work queue latency buckets: 10 ns to 1,000 s by powers of
/// ten (`prometheus.ExponentialBuckets(10e-9, 10, 10)` in
/// k8s.io/component-base/metrics/prometheus/workqueue).
fn queue_latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(10e-9, 10.0, 10))
}

/// client-go's work queue metrics (`workqueue_*{name}`, as
/// k8s.io/component-base/metrics/prometheus/workqueue registers them),
/// registered once per registry; [`WorkqueueMetrics::queue`] hands out one
/// queue's series. Cheap to clone.
#[derive(Clone)]
pub struct WorkqueueMetrics {
    depth: Family<QueueName, Gauge>,
    adds: Family<QueueName, Counter>,
    queue_duration: DurationFamily,
    work_duration: DurationFamily,
    retries: Family<QueueName, Counter>,
}

impl std::fmt::Debug for WorkqueueMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkqueueMetrics").finish_non_exhaustive()
    }
}

impl WorkqueueMetrics {
    /// Registers the work queue families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            depth: Family::default(),
            adds: Family::default(),
            queue_duration: Family::new_with_constructor(queue_latency_histogram),
            work_duration: Family::new_with_constructor(queue_latency_histogram),
            retries: Family::default(),
        };
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            m.depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            m.adds.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            m.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            m.work_duration.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            m.retries.clone(),
        );
        m
    }

    /// The series of the queue called `name` (created at zero, so a queue
    /// shows in a scrape before its first add).
    pub fn queue(&self, name: &str) -> QueueMetrics {
        let label = QueueName {
            name: name.to_string(),
        };
        QueueMetrics {
            depth: Some(self.depth.get_or_create_owned(&label)),
            queue_duration: Some(self.queue_duration.get_or_create_owned(&label)),
            ..self.controller(name)
        }
    }

    /// The series of a controller whose queue is kept out of sight (by
    /// kube-runtime's scheduler): adds, work duration and retries only,
    /// with no `workqueue_depth` or `workqueue_queue_duration_seconds`
    /// series rather than ones that would always read zero.
    pub fn controller(&self, name: &str) -> QueueMetrics {
        let label = QueueName {
            name: name.to_string(),
        };
        QueueMetrics {
            depth: None,
            adds: self.adds.get_or_create_owned(&label),
            queue_duration: None,
            work_duration: self.work_duration.get_or_create_owned(&label),
            retries: self.retries.get_or_create_owned(&label),
        }
    }
}

/// One work queue's series (see [`WorkqueueMetrics`]). Cheap to clone;
/// every clone updates the same series.
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    depth: Option<Gauge>,
    adds: Counter,
    queue_duration: Option<Histogram>,
    work_duration: Histogram,
    retries: Counter,
}

impl QueueMetrics {
    /// A key was queued (not one already waiting): `workqueue_adds_total`.
    pub fn added(&self) {
        self.adds.inc();
    }

    /// Keys waiting now: `workqueue_depth`.
    pub fn set_depth(&self, depth: usize) {
        if let Some(g) = &self.depth {
            g.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// A key was handed to a worker after waiting `waited`:
    /// `workqueue_queue_duration_seconds`.
    pub fn taken(&self, waited: Duration) {
        if let Some(h) = &self.queue_duration {
            h.observe(waited.as_secs_f64());
        }
    }

    /// A worker finished one key in `took`: `workqueue_work_duration_seconds`.
    pub fn worked(&self, took: Duration) {
        self.work_duration.observe(took.as_secs_f64());
    }

    /// A key failed and is retried with backoff: `workqueue_retries_total`.
    pub fn retried(&self) {
        self.retries.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_queue_series_have_client_go_names_and_buckets() {
        let registry = SharedRegistry::new();
        let m = WorkqueueMetrics::register(&mut registry.lock());
        let q = m.queue("deployment");
        m.queue("idle");
        m.controller("scheduler-kept");
        q.added();
        q.added();
        q.set_depth(1);
        q.taken(Duration::from_micros(5));
        q.worked(Duration::from_millis(2));
        q.retried();
        let text = registry.encode();
        for line in [
            "# TYPE workqueue_adds_total counter",
            "workqueue_adds_total{name=\"deployment\"} 2",
            "workqueue_adds_total{name=\"idle\"} 0",
            "workqueue_depth{name=\"deployment\"} 1",
            "workqueue_retries_total{name=\"deployment\"} 1",
            "workqueue_queue_duration_seconds_bucket{name=\"deployment\",le=\"1e-05\"} 1",
            "workqueue_queue_duration_seconds_bucket{name=\"deployment\",le=\"1e-06\"} 0",
            "workqueue_work_duration_seconds_bucket{name=\"deployment\",le=\"+Inf\"} 1",
            "workqueue_adds_total{name=\"scheduler-kept\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(!text.contains("workqueue_depth{name=\"scheduler-kept\"}"));
    }
}
