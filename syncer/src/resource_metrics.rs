//! Resource metrics through the host (pure part): the host's `PodMetrics`
//! of a tenant's host pods told back as the virtual pods' (names,
//! namespaces and labels translated back), and which host `NodeMetrics`
//! the tenant sees.
//!
//! The virtual API server resolves which virtual pods or nodes a request is
//! about ([`vkube_core::metrics`]); [`crate::controller::resource_metrics::HostMetrics`]
//! reads the host's figures for exactly those: the host pods are found by
//! the host name computed from each virtual pod's identity, never by a name
//! from the request.

use crate::names::{Tenant, host_name};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The `PodMetrics` of `virtual_pods` (complete virtual Pods) from the
/// host's `PodMetricsList` items (`host_items`, the tenant's host pods'):
/// each named, namespaced and labelled as its virtual pod, with the host's
/// `timestamp`, `window` and `containers` (container names are the same on
/// both sides). Pods without host figures are left out.
pub fn pod_metrics(tenant: &Tenant, virtual_pods: &[Value], host_items: &[Value]) -> Vec<Value> {
    let by_name: HashMap<&str, &Value> = host_items
        .iter()
        .filter_map(|m| Some((m.pointer("/metadata/name")?.as_str()?, m)))
        .collect();
    let mut out = Vec::new();
    for pod in virtual_pods {
        let (Some(ns), Some(name)) = (
            pod.pointer("/metadata/namespace").and_then(Value::as_str),
            pod.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(host) = by_name.get(host_name(tenant, ns, name).as_str()) else {
            continue;
        };
        let mut metadata = json!({"name": name, "namespace": ns});
        if let Some(t) = host.pointer("/metadata/creationTimestamp") {
            metadata["creationTimestamp"] = t.clone();
        }
        if let Some(l) = pod.pointer("/metadata/labels") {
            metadata["labels"] = l.clone();
        }
        out.push(json!({
            "metadata": metadata,
            "timestamp": host.get("timestamp").cloned().unwrap_or(Value::Null),
            "window": host.get("window").cloned().unwrap_or(Value::Null),
            "containers": host.get("containers").cloned().unwrap_or_else(|| json!([])),
        }));
    }
    out
}

/// The host `NodeMetrics` items of the nodes named in `nodes` (the ones the
/// tenant sees), in that order, without the host's labels.
pub fn node_metrics(nodes: &[String], host_items: &[Value]) -> Vec<Value> {
    nodes
        .iter()
        .filter_map(|n| {
            let m = host_items
                .iter()
                .find(|m| m.pointer("/metadata/name").and_then(Value::as_str) == Some(n))?;
            let mut metadata = json!({"name": n});
            if let Some(t) = m.pointer("/metadata/creationTimestamp") {
                metadata["creationTimestamp"] = t.clone();
            }
            Some(json!({
                "metadata": metadata,
                "timestamp": m.get("timestamp").cloned().unwrap_or(Value::Null),
                "window": m.get("window").cloned().unwrap_or(Value::Null),
                "usage": m.get("usage").cloned().unwrap_or_else(|| json!({})),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_figures_come_back_under_virtual_names() {
        let t = Tenant::new("vc1", "team-a").unwrap();
        let pods = vec![
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}}}),
            json!({"metadata": {"name": "idle", "namespace": "shop"}}),
        ];
        let host = vec![
            json!({"metadata": {"name": "web-x-shop-x-vc1", "namespace": "team-a",
                                "labels": {"vkube.dev/managed-by": "vc1"}},
                   "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
                   "containers": [{"name": "app", "usage": {"cpu": "5m", "memory": "10Mi"}}]}),
            json!({"metadata": {"name": "other-x-shop-x-vc1"}, "containers": []}),
        ];
        let out = pod_metrics(&t, &pods, &host);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["metadata"]["name"], "web");
        assert_eq!(out[0]["metadata"]["namespace"], "shop");
        assert_eq!(out[0]["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out[0]["containers"][0]["usage"]["cpu"], "5m");
        let nodes = node_metrics(
            &["n1".to_string(), "n9".into()],
            &[
                json!({"metadata": {"name": "n1", "labels": {"secret": "x"}}, "usage": {"cpu": "1"}}),
            ],
        );
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0]["metadata"].get("labels").is_none());
    }
}
