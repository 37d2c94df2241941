//! Objects every cluster has from its first start: the namespaces `default`,
//! `kube-system`, `kube-public`, `kube-node-lease`, and the `default/kubernetes`
//! Service with its Endpoints pointing at this server (as kube-apiserver's
//! bootstrap controller maintains them), and the PriorityClasses
//! `system-node-critical` and `system-cluster-critical`, and a local
//! APIService per served group version. Each of those namespaces also gets
//! its `default` ServiceAccount ([`ensure_default_service_accounts`]).

use crate::error::{ApiError, ApiResult};
use crate::registry::{self, ResourceDef};
use crate::request::{Query, Target};
use crate::rest::Api;
use http::Method;
use serde_json::{Value, json};
use std::sync::Arc;

/// The ClusterIP of the `default/kubernetes` Service with the default
/// service CIDR 10.96.0.0/12: its first address, as kube-apiserver picks
/// (see [`kubernetes_service_ip`] for the configured CIDR).
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// The ClusterIP of the `default/kubernetes` Service: the configured one
/// ([`crate::rest::ApiConfig::kubernetes_service_ip`], a virtual cluster's
/// address on its host), else the first address of the service CIDR.
pub fn kubernetes_service_ip(api: &Api) -> String {
    match api.config.kubernetes_service_ip {
        Some(ip) => ip.to_string(),
        None => api.config.allocation.service_cidr.nth(0).to_string(),
    }
}

/// The `default/kubernetes` Service with ClusterIP `ip`.
fn kubernetes_service(ip: &str) -> Value {
    let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    })
}

/// Makes `default/kubernetes` hold `ip`: created if missing, recreated when
/// it holds another address (a ClusterIP is immutable), as kube-apiserver's
/// kubernetes-service controller keeps it pointing at the API server. A
/// configured address the allocator refuses (outside the service CIDR)
/// falls back to the CIDR's first address, with a warning.
async fn ensure_kubernetes_service(api: &Arc<Api>, ip: &str) -> ApiResult<()> {
    let services = target(def("", "services"), Some("default"));
    let mut named = services.clone();
    named.name = Some("kubernetes".into());
    let headers = crate::server::json_headers();
    if let Ok(resp) = api
        .handle(
            &Method::GET,
            named.clone(),
            Query::default(),
            &headers,
            bytes::Bytes::new(),
        )
        .await
    {
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let live: Value = serde_json::from_slice(&body).unwrap_or_default();
        if live["spec"]["clusterIP"].as_str() == Some(ip) {
            return Ok(());
        }
        api.handle(
            &Method::DELETE,
            named,
            Query::default(),
            &headers,
            bytes::Bytes::new(),
        )
        .await?;
    }
    match create_if_absent(api, services.clone(), kubernetes_service(ip)).await {
        Err(e) if e.code == 422 && api.config.kubernetes_service_ip.is_some() => {
            let fallback = api.config.allocation.service_cidr.nth(0).to_string();
            tracing::warn!(%ip, %fallback, error = %e.message,
                "the configured kubernetes Service address was refused; using the service CIDR's first address");
            create_if_absent(api, services, kubernetes_service(&fallback)).await
        }
        r => r,
    }
}

fn def(group: &str, resource: &str) -> &'static ResourceDef {
    registry::lookup(group, "v1", resource).expect("built-in resource")
}

/// kube-apiserver's `apiVersionPriorities` (group, version,
/// groupPriorityMinimum, versionPriority) for the group versions it serves
/// itself; kubectl orders its discovery by them.
const API_VERSION_PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v1", 17500, 15),
    ("autoscaling", "v2", 17500, 30),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("resource.k8s.io", "v1", 16200, 21),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
];

/// The local APIService (`v1.apps`, `v1.` for core) of every group version
/// this server serves that kube-apiserver lists one for, as its
/// autoregister controller creates them: no `service`, the priorities of
/// [`API_VERSION_PRIORITIES`], label `kube-aggregator.kubernetes.io/automanaged:
/// onstart`, and the condition the aggregator's local availability
/// controller sets (`Available=True`, reason `Local`).
async fn ensure_local_api_services(api: &Arc<Api>) -> ApiResult<()> {
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    for (group, version, group_min, version_priority) in API_VERSION_PRIORITIES {
        if !registry::is_served(group, version) {
            continue;
        }
        let mut spec = json!({"version": version, "groupPriorityMinimum": group_min,
                              "versionPriority": version_priority});
        if !group.is_empty() {
            spec["group"] = json!(group);
        }
        create_if_absent(
            api,
            target(def("apiregistration.k8s.io", "apiservices"), None),
            json!({
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": format!("{version}.{group}"),
                             "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                "spec": spec,
                "status": {"conditions": [{"type": "Available", "status": "True",
                    "lastTransitionTime": now.to_string(), "reason": "Local",
                    "message": "Local APIServices are always available"}]},
            }),
        )
        .await?;
    }
    Ok(())
}

/// The mandatory and suggested API priority and fairness objects
/// ([`crate::flowcontrol`]), created if missing; a new FlowSchema then gets
/// its `Dangling` condition through the status subresource, as kube's
/// controller writes it.
async fn ensure_flow_control(api: &Arc<Api>) -> ApiResult<()> {
    const GROUP: &str = "flowcontrol.apiserver.k8s.io";
    for level in crate::flowcontrol::priority_levels() {
        create_if_absent(
            api,
            target(def(GROUP, "prioritylevelconfigurations"), None),
            level,
        )
        .await?;
    }
    for schema in crate::flowcontrol::flow_schemas() {
        let t = target(def(GROUP, "flowschemas"), None);
        // Only a schema created now needs its condition: later starts read
        // nothing more.
        if !create_if_missing(api, t.clone(), schema.clone()).await? {
            continue;
        }
        let mut status = t;
        status.name = Some(crate::meta::name(&schema).to_string());
        status.subresource = Some("status".into());
        api.handle(
            &Method::PUT,
            status,
            Query::default(),
            &crate::server::json_headers(),
            bytes::Bytes::from(schema.to_string()),
        )
        .await?;
    }
    Ok(())
}

fn target(def: &'static ResourceDef, namespace: Option<&str>) -> Target {
    Target {
        def: registry::Def::Builtin(def),
        namespace: namespace.map(str::to_string),
        name: None,
        subresource: None,
        watch_prefix: false,
    }
}

/// Creates `obj` under `t` unless an object of that name exists (an
/// existing one is left as it is, possibly edited by an admin).
pub(crate) async fn create_if_absent(api: &Arc<Api>, t: Target, obj: Value) -> ApiResult<()> {
    create_if_missing(api, t, obj).await.map(|_| ())
}

/// [`create_if_absent`], saying whether this call created the object.
async fn create_if_missing(api: &Arc<Api>, t: Target, obj: Value) -> ApiResult<bool> {
    // Look first: creating an existing Service would fail on its ClusterIP
    // (422, already allocated) before the 409 of the existing name.
    let mut get = t.clone();
    get.name = Some(crate::meta::name(&obj).to_string());
    let headers = crate::server::json_headers();
    let empty = bytes::Bytes::new();
    if api
        .handle(&Method::GET, get, Query::default(), &headers, empty)
        .await
        .is_ok()
    {
        return Ok(false);
    }
    let body = bytes::Bytes::from(obj.to_string());
    match api
        .handle(
            &Method::POST,
            t,
            Query::default(),
            &crate::server::json_headers(),
            body,
        )
        .await
    {
        Err(e) if e.code != 409 => Err(e),
        Err(_) => Ok(false),
        Ok(_) => Ok(true),
    }
}

/// The built-in namespaces, created at every start.
pub const BUILTIN_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates, if missing, the `default` ServiceAccount in each built-in
/// namespace ([`vkube_core::serviceaccount::default_service_account`]), so
/// `kubectl create token default` works from the first start. Namespaces
/// created later, and the `kube-root-ca.crt` ConfigMaps
/// ([`vkube_core::serviceaccount::root_ca_config_map`]), are the
/// serviceaccount and root-ca-cert-publisher controllers' work.
pub async fn ensure_default_service_accounts(api: &Arc<Api>) -> ApiResult<()> {
    for ns in BUILTIN_NAMESPACES {
        create_if_absent(
            api,
            target(def("", "serviceaccounts"), Some(ns)),
            vkube_core::serviceaccount::default_service_account(ns),
        )
        .await?;
    }
    Ok(())
}

/// Store prefix where events.k8s.io/v1 Events were kept apart from core/v1
/// Events before both versions shared one storage.
const SEPARATE_EVENTS_PREFIX: &str = "/events.k8s.io/events/";

/// Deletes the events.k8s.io Events a store written before the two Event
/// versions shared one storage still holds: they are reachable through no
/// URL any more, and Events are short-lived records nothing depends on.
async fn drop_separate_event_storage(api: &Arc<Api>) -> ApiResult<()> {
    let gr = crate::error::GroupResource::new("events.k8s.io", "events");
    let page = api
        .store
        .list(SEPARATE_EVENTS_PREFIX, Default::default())
        .await
        .map_err(|e| ApiError::internal(format!("{gr}: {e}")))?;
    for kv in page.items {
        // A concurrent change is impossible (no URL reaches these keys);
        // a failure leaves the key for the next start.
        let _ = api.store.delete(&kv.key, kv.mod_revision).await;
    }
    Ok(())
}

/// Creates the built-in objects if missing and points the `kubernetes`
/// Endpoints at `port` on loopback.
pub async fn ensure_builtin_objects(api: &Arc<Api>, port: u16) -> ApiResult<()> {
    for ns in BUILTIN_NAMESPACES {
        create_if_absent(
            api,
            target(def("", "namespaces"), None),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    // The system PriorityClasses kube-apiserver's scheduling storage creates.
    for (name, value, description) in vkube_core::apivalidation::SYSTEM_PRIORITY_CLASSES {
        create_if_absent(
            api,
            target(def("scheduling.k8s.io", "priorityclasses"), None),
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                   "metadata": {"name": name}, "value": value, "description": description,
                   "preemptionPolicy": "PreemptLowerPriority"}),
        )
        .await?;
    }
    ensure_local_api_services(api).await?;
    ensure_flow_control(api).await?;
    drop_separate_event_storage(api).await?;
    ensure_kubernetes_service(api, &kubernetes_service_ip(api)).await?;
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let mut t = target(def("", "endpoints"), Some("default"));
    t.name = Some("kubernetes".into());
    api.guaranteed_update(&t, "kubernetes", true, false, |old| {
        let mut new = endpoints.clone();
        if let Some(old) = old {
            new["metadata"] = old["metadata"].clone();
        }
        Ok(new)
    })
    .await?;
    Ok(())
}
