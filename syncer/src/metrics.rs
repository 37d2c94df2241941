//! The syncer's Prometheus metrics, rendered in the text exposition format
//! 0.0.4 (<https://prometheus.io/docs/instrumenting/exposition_formats/>)
//! for a `/metrics` endpoint.
//!
//! Series (label `kind` is the synced kind, e.g. `Pod`):
//! * `vkube_syncer_reconciles_total{kind}`: reconciles run (counter);
//! * `vkube_syncer_reconcile_errors_total{kind}`: reconciles that failed and
//!   were retried with backoff (counter);
//! * `vkube_syncer_queue_depth{kind}`: keys waiting in the kind's queue (gauge);
//! * `vkube_syncer_sync_latency_seconds{kind,direction}`: histogram of the
//!   time from a change being observed (watch event queued) to the write it
//!   caused, `direction="virtual_to_host"` (host write) or
//!   `"host_to_virtual"` (virtual write), in seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS`], plus +Inf.
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Inner {
    reconciles: BTreeMap<&'static str, u64>,
    errors: BTreeMap<&'static str, u64>,
    latency: BTreeMap<(&'static str, Direction), Histogram>,
}

/// Depth probe of one kind's queue.
type DepthFn = Box<dyn Fn() -> usize + Send + Sync>;

/// The syncer's metrics; shared as `Arc<Metrics>`, updated by every
/// controller, read by [`Metrics::render`].
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    queues: Mutex<BTreeMap<&'static str, DepthFn>>,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one reconcile of `kind`, and one error if `failed`.
    pub fn reconciled(&self, kind: &'static str, failed: bool) {
        let mut m = self.lock();
        *m.reconciles.entry(kind).or_default() += 1;
        if failed {
            *m.errors.entry(kind).or_default() += 1;
        }
    }

    /// Records a sync latency of `kind` in `direction`.
    pub fn observe_latency(&self, kind: &'static str, direction: Direction, latency: Duration) {
        self.lock()
            .latency
            .entry((kind, direction))
            .or_default()
            .observe(latency.as_secs_f64());
    }

    /// Reports `queue`'s depth as `kind`'s queue depth from now on.
    pub fn register_queue<K>(&self, kind: &'static str, queue: &Arc<Queue<K>>)
    where
        K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
    {
        let q = Arc::downgrade(queue);
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, Box::new(move || q.upgrade().map_or(0, |q| q.len())));
    }

    /// Reconciles of `kind` so far.
    pub fn reconciles(&self, kind: &str) -> u64 {
        self.lock().reconciles.get(kind).copied().unwrap_or(0)
    }

    /// Failed reconciles of `kind` so far.
    pub fn errors(&self, kind: &str) -> u64 {
        self.lock().errors.get(kind).copied().unwrap_or(0)
    }

    /// Everything in Prometheus text format 0.0.4 (content type
    /// `text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let m = self.lock();
        counter(
            &mut out,
            "vkube_syncer_reconciles_total",
            "Reconciles run, per synced kind.",
            &m.reconciles,
        );
        counter(
            &mut out,
            "vkube_syncer_reconcile_errors_total",
            "Reconciles that failed and were retried, per synced kind.",
            &m.errors,
        );
        let name = "vkube_syncer_queue_depth";
        let _ = writeln!(
            out,
            "# HELP {name} Keys waiting in a synced kind's work queue."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (kind, depth) in self.queues.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {}", depth());
        }
        let name = "vkube_syncer_sync_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an observed change to the write it caused, in seconds."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for ((kind, dir), h) in &m.latency {
            let labels = format!("kind=\"{kind}\",direction=\"{}\"", dir.label());
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, values: &BTreeMap<&'static str, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (kind, v) in values {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {v}");
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
        assert!(text.contains("vkube_syncer_queue_depth{kind=\"Pod\"} 1\n"));
        let b =
            "vkube_syncer_sync_latency_seconds_bucket{kind=\"Pod\",direction=\"virtual_to_host\"";
        assert!(text.contains(&format!("{b},le=\"0.002\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{b},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("{b},le=\"10\"}} 1\n")));
        assert!(text.contains(&format!("{b},le=\"+Inf\"}} 2\n")));
        assert!(text.contains("_count{kind=\"Pod\",direction=\"virtual_to_host\"} 2\n"));
    }
}
