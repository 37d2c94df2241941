//! [`FixedMetrics`]: test scaffolding that makes a test host serve
//! `metrics.k8s.io` as metrics-server would, with fixed figures: every
//! running pod's containers use [`POD_CPU`] and [`POD_MEMORY`], every node
//! [`NODE_CPU`] and [`NODE_MEMORY`]. Tests check that figures travel, not
//! what they are.

use apiserver_shim::ServerConfig;
use serde_json::{Value, json};
use vkube_core::metrics::{MetricsProvider, MetricsQuery};
use vkube_core::service::{BoxFuture, HostRefusal};

/// CPU of each container of a running pod.
pub const POD_CPU: &str = "7m";
/// Memory of each container of a running pod.
pub const POD_MEMORY: &str = "21Mi";
/// CPU of each node.
pub const NODE_CPU: &str = "250m";
/// Memory of each node.
pub const NODE_MEMORY: &str = "1Gi";

/// Fixed resource metrics (module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct FixedMetrics;

impl FixedMetrics {
    /// Makes `config`'s server serve `metrics.k8s.io` with fixed figures.
    pub fn install(config: &mut ServerConfig) {
        config.api.metrics = Some(std::sync::Arc::new(FixedMetrics));
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl MetricsProvider for FixedMetrics {
    fn available(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }

    fn metrics(&self, query: MetricsQuery) -> BoxFuture<'_, Result<Vec<Value>, HostRefusal>> {
        Box::pin(async move {
            Ok(match query {
                MetricsQuery::Pods(pods) => pods
                    .iter()
                    .filter(|p| p["status"]["phase"] == "Running")
                    .map(|p| {
                        let containers: Vec<Value> = p["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| {
                                json!({"name": c["name"],
                                       "usage": {"cpu": POD_CPU, "memory": POD_MEMORY}})
                            })
                            .collect();
                        json!({
                            "metadata": {"name": p["metadata"]["name"],
                                         "namespace": p["metadata"]["namespace"],
                                         "labels": p["metadata"]["labels"],
                                         "creationTimestamp": now()},
                            "timestamp": now(),
                            "window": "15s",
                            "containers": containers,
                        })
                    })
                    .collect(),
                MetricsQuery::Nodes(nodes) => nodes
                    .iter()
                    .map(|n| {
                        json!({
                            "metadata": {"name": n, "creationTimestamp": now()},
                            "timestamp": now(),
                            "window": "15s",
                            "usage": {"cpu": NODE_CPU, "memory": NODE_MEMORY},
                        })
                    })
                    .collect(),
            })
        })
    }
}
