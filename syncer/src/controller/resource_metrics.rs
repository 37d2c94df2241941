//! [`HostMetrics`]: the virtual API server's metrics provider in a virtual
//! cluster: the host's `metrics.k8s.io` (metrics-server) read for the
//! tenant's host pods and visible nodes (see [`crate::resource_metrics`]).
//!
//! The host needs to grant `get`/`list` on `pods.metrics.k8s.io` in the
//! host namespace, and on `nodes.metrics.k8s.io` for node figures.

use crate::engine::SyncerConfig;
use crate::names::{LABEL_MANAGED_BY, Tenant};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vkube_core::metrics::{GROUP, MetricsProvider, MetricsQuery, VERSION};
use vkube_core::service::{BoxFuture, HostRefusal};

/// How long the host's answer to "is metrics.k8s.io served" is reused.
const AVAILABILITY_TTL: Duration = Duration::from_secs(30);

/// Reads resource metrics from the host (module docs).
pub struct HostMetrics {
    client: kube::Client,
    tenant: Tenant,
    available: Mutex<Option<(Instant, bool)>>,
}

impl std::fmt::Debug for HostMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostMetrics")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// kube-aggregator's answer when an aggregated API cannot be reached.
fn unavailable(why: &str) -> HostRefusal {
    HostRefusal {
        code: 503,
        reason: "ServiceUnavailable".into(),
        message: format!("the server is currently unable to handle the request ({why})"),
        details: None,
    }
}

impl HostMetrics {
    /// Reads through `host` for `config`'s tenant.
    pub fn new(host: kube::Client, config: &SyncerConfig) -> Self {
        Self {
            client: host,
            tenant: config.tenant.clone(),
            available: Mutex::new(None),
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, kube::Error> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.client.request::<Value>(req).await
    }

    async fn check_available(&self) -> bool {
        if let Some((at, ok)) = *self.available.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < AVAILABILITY_TTL
        {
            return ok;
        }
        let ok = self
            .get_json(&format!("/apis/{GROUP}/{VERSION}"))
            .await
            .is_ok();
        *self.available.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), ok));
        ok
    }

    async fn query(&self, query: MetricsQuery) -> Result<Vec<Value>, HostRefusal> {
        match query {
            MetricsQuery::Pods(pods) => {
                if pods.is_empty() {
                    return Ok(Vec::new());
                }
                let path = format!(
                    "/apis/{GROUP}/{VERSION}/namespaces/{}/pods?labelSelector={}",
                    self.tenant.host_namespace(),
                    form_urlencoded::byte_serialize(
                        format!("{LABEL_MANAGED_BY}={}", self.tenant.name()).as_bytes()
                    )
                    .collect::<String>()
                );
                let list = self
                    .get_json(&path)
                    .await
                    .map_err(|e| unavailable(&e.to_string()))?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                Ok(crate::resource_metrics::pod_metrics(
                    &self.tenant,
                    &pods,
                    &items,
                ))
            }
            MetricsQuery::Nodes(nodes) => {
                if nodes.is_empty() {
                    return Ok(Vec::new());
                }
                let list = self
                    .get_json(&format!("/apis/{GROUP}/{VERSION}/nodes"))
                    .await
                    .map_err(|e| unavailable(&e.to_string()))?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                Ok(crate::resource_metrics::node_metrics(&nodes, &items))
            }
        }
    }
}

impl MetricsProvider for HostMetrics {
    fn available(&self) -> BoxFuture<'_, bool> {
        Box::pin(self.check_available())
    }

    fn metrics(&self, query: MetricsQuery) -> BoxFuture<'_, Result<Vec<Value>, HostRefusal>> {
        Box::pin(self.query(query))
    }
}
