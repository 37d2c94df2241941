//! ClusterIP and NodePort allocation for Services, persisted in the store.
//!
//! Like kube-apiserver's IPAddress-based allocator (networking.k8s.io/v1
//! `IPAddress` objects, pkg/registry/core/service/ipallocator), every held
//! address is one key, created with [`Storage::create`] which fails if the
//! key exists: two concurrent creates can never get the same IP or port, and
//! allocations survive restarts. Keys live outside every resource prefix:
//! `/vkube.io/serviceips/<ip>` and `/vkube.io/servicenodeports/<port>`; the
//! value names the owning Service (`{"uid": …, "service": "ns/name"}`).
//!
//! A write first reserves what it newly needs ([`allocate`]); if the Service
//! is then not stored the caller calls [`Allocation::undo`], and after it is
//! stored [`Allocation::commit`] frees what the old object held and the new
//! one no longer does. A dry run checks and picks but reserves nothing.
//! [`repair`] reconciles keys and Services at startup (a crash between a
//! reservation and the Service write leaves a key without owner).

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::store::{ListOptions, Storage, StorageError};
use rand::Rng;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use vkube_core::field::{FieldError, render_value};
use vkube_core::service::{self as svc, ServiceCidr};

/// Key prefix of ClusterIP reservations.
pub const IP_PREFIX: &str = "/vkube.io/serviceips/";
/// Key prefix of NodePort reservations.
pub const NODE_PORT_PREFIX: &str = "/vkube.io/servicenodeports/";

/// Where Services get their addresses from.
#[derive(Debug, Clone, Copy)]
pub struct AllocConfig {
    /// The service CIDR (`--service-cidr`, default `10.96.0.0/12`).
    pub service_cidr: ServiceCidr,
    /// Inclusive NodePort range (kube-apiserver's `--service-node-port-range`, 30000-32767).
    pub node_ports: (u16, u16),
    /// An address `default/kubernetes` may hold even outside the CIDR (a
    /// virtual cluster's own address on its host, whose service range need
    /// not be this server's; [`crate::rest::ApiConfig::kubernetes_service_ip`]).
    pub kubernetes_service_ip: Option<std::net::IpAddr>,
}

impl Default for AllocConfig {
    fn default() -> Self {
        Self {
            service_cidr: ServiceCidr::parse("10.96.0.0/12").expect("valid default CIDR"),
            node_ports: (30000, 32767),
            kubernetes_service_ip: None,
        }
    }
}

fn ip_key(ip: &str) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(port: i64) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

/// The reservation keys a stored Service holds.
pub fn held_keys(service: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if svc::needs_cluster_ip(service)
        && let Some(ip) = svc::cluster_ip(service)
    {
        keys.push(ip_key(&ip));
    }
    let node_ports = if svc::needs_node_ports(service) {
        svc::node_ports(service)
    } else {
        Vec::new()
    };
    for p in node_ports
        .into_iter()
        .chain(svc::health_check_node_port(service))
    {
        let k = port_key(p);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// What one write reserved and what it frees once stored.
#[derive(Debug, Default)]
#[must_use = "an allocation must be committed or undone"]
pub struct Allocation {
    uid: String,
    reserved: Vec<String>,
    freed: Vec<String>,
    old_uid: String,
}

impl Allocation {
    /// The write did not land: releases what it reserved.
    pub async fn undo(self, store: &dyn Storage) {
        release(store, &self.reserved, &self.uid).await;
    }

    /// The write landed: releases what the old object held and the new one does not.
    pub async fn commit(self, store: &dyn Storage) {
        release(store, &self.freed, &self.old_uid).await;
    }
}

/// Releases reservation `keys` held by `uid` (keys held by someone else are
/// left alone). Failures are logged: a leaked key is reclaimed by [`repair`].
pub async fn release(store: &dyn Storage, keys: &[String], uid: &str) {
    for key in keys {
        for _ in 0..8 {
            match store.get(key).await {
                Ok(Some(kv)) => {
                    let owner: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
                    if owner.get("uid").and_then(Value::as_str) != Some(uid) {
                        break;
                    }
                    match store.delete(key, kv.mod_revision).await {
                        Err(StorageError::Conflict { .. }) => continue,
                        Err(e) => tracing::warn!(%key, %e, "releasing a service allocation"),
                        Ok(_) => {}
                    }
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%key, %e, "releasing a service allocation");
                    break;
                }
            }
        }
    }
}

fn invalid(name: &str, err: FieldError) -> ApiError {
    ApiError::invalid("Service", "", name, vec![Cause::from(err)])
}

/// Reserves `key` for the Service; `Ok(false)` if someone holds it. Under
/// dry run only checks.
async fn reserve(store: &dyn Storage, key: &str, owner: &Value, dry_run: bool) -> ApiResult<bool> {
    let r = if dry_run {
        store.get(key).await.map(|kv| kv.is_none())
    } else {
        match store.create(key, owner.to_string().into()).await {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    r.map_err(|e| ApiError::internal(format!("allocating {key}: {e}")))
}

/// Allocates what `new` needs given what `old` (on update) already holds:
/// a ClusterIP (the requested `spec.clusterIP`, else a free one from the
/// CIDR, preferring the upper band as upstream keeps the lower one for
/// static requests), node ports for NodePort/LoadBalancer Services, and a
/// `healthCheckNodePort` for a LoadBalancer with externalTrafficPolicy
/// `Local`. Fills `spec.clusterIP`, `spec.clusterIPs`,
/// `spec.ports[*].nodePort` and `spec.healthCheckNodePort`.
///
/// Errors: `422` with kube-apiserver's text for a taken or out-of-range
/// request (`spec.clusterIPs: Invalid value: ["10.96.0.5"]: failed to
/// allocate IP 10.96.0.5: provided IP is already allocated`,
/// `spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the
/// valid range. The range of valid ports is 30000-32767`); `500` when the
/// range is full (as upstream). Nothing stays reserved after an error.
pub async fn allocate(
    store: &dyn Storage,
    cfg: &AllocConfig,
    old: Option<&Value>,
    new: &mut Value,
    dry_run: bool,
) -> ApiResult<Allocation> {
    let mut a = Allocation {
        uid: meta::uid(new).to_string(),
        old_uid: old.map(|o| meta::uid(o).to_string()).unwrap_or_default(),
        ..Default::default()
    };
    match allocate_inner(store, cfg, old, new, dry_run, &mut a).await {
        Ok(()) => Ok(a),
        Err(e) => {
            a.undo(store).await;
            Err(e)
        }
    }
}

async fn allocate_inner(
    store: &dyn Storage,
    cfg: &AllocConfig,
    old: Option<&Value>,
    new: &mut Value,
    dry_run: bool,
    a: &mut Allocation,
) -> ApiResult<()> {
    let name = meta::name(new).to_string();
    let owner = json!({
        "uid": a.uid,
        "service": format!("{}/{}", meta::namespace(new), name),
    });
    let old_keys = old.map(held_keys).unwrap_or_default();
    let mut kept: Vec<String> = Vec::new();

    if svc::needs_cluster_ip(new) && new.get("spec").is_some_and(Value::is_object) {
        match svc::cluster_ip(new) {
            Some(ip) if old_keys.contains(&ip_key(&ip)) => kept.push(ip_key(&ip)),
            Some(ip) => {
                let shown = new
                    .pointer("/spec/clusterIPs")
                    .cloned()
                    .unwrap_or_else(|| json!([ip]));
                let fail = |why: String| {
                    invalid(
                        &name,
                        FieldError::invalid(
                            "spec.clusterIPs",
                            &shown,
                            &format!("failed to allocate IP {ip}: {why}"),
                        ),
                    )
                };
                let kubernetes = meta::namespace(new) == "default"
                    && name == "kubernetes"
                    && cfg.kubernetes_service_ip.map(|k| k.to_string()) == Some(ip.clone());
                let in_range = kubernetes
                    || ip
                        .parse::<Ipv4Addr>()
                        .is_ok_and(|v4| cfg.service_cidr.contains(v4));
                if !in_range {
                    return Err(fail(format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        cfg.service_cidr
                    )));
                }
                let key = ip_key(&ip);
                if !reserve(store, &key, &owner, dry_run).await? {
                    return Err(fail("provided IP is already allocated".into()));
                }
                if !dry_run {
                    a.reserved.push(key.clone());
                }
                kept.push(key);
            }
            None => {
                let ip = pick_ip(store, cfg, &owner, dry_run).await?;
                let key = ip_key(&ip);
                if !dry_run {
                    a.reserved.push(key.clone());
                }
                kept.push(key);
                let spec = meta::ensure_object(new, "spec");
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
    }

    if svc::needs_node_ports(new) {
        let count = new
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let requested = new
                .pointer(&format!("/spec/ports/{i}/nodePort"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !new
                .pointer(&format!("/spec/ports/{i}"))
                .is_some_and(Value::is_object)
            {
                continue;
            }
            if requested != 0 {
                let key = port_key(requested);
                if kept.contains(&key) || old_keys.contains(&key) {
                    kept.push(key);
                    continue;
                }
                let field = format!("spec.ports[{i}].nodePort");
                let (lo, hi) = cfg.node_ports;
                if requested < lo as i64 || requested > hi as i64 {
                    return Err(invalid(
                        &name,
                        FieldError::invalid(
                            field,
                            &json!(requested),
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                            ),
                        ),
                    ));
                }
                if !reserve(store, &key, &owner, dry_run).await? {
                    return Err(invalid(
                        &name,
                        FieldError::invalid(
                            field,
                            &json!(requested),
                            "provided port is already allocated",
                        ),
                    ));
                }
                if !dry_run {
                    a.reserved.push(key.clone());
                }
                kept.push(key);
            } else {
                let port = pick_port(store, cfg, &owner, dry_run, &kept).await?;
                let key = port_key(port);
                if !dry_run {
                    a.reserved.push(key.clone());
                }
                kept.push(key);
                new["spec"]["ports"][i]["nodePort"] = json!(port);
            }
        }
    }
    if svc::needs_health_check_node_port(new) {
        let requested = new
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if requested != 0 {
            let key = port_key(requested);
            if !(kept.contains(&key) || old_keys.contains(&key)) {
                let (lo, hi) = cfg.node_ports;
                let why = if requested < lo as i64 || requested > hi as i64 {
                    Some(format!(
                        "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                    ))
                } else if !reserve(store, &key, &owner, dry_run).await? {
                    Some("provided port is already allocated".to_string())
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(invalid(
                        &name,
                        FieldError::invalid("spec.healthCheckNodePort", &json!(requested), &why),
                    ));
                }
                if !dry_run {
                    a.reserved.push(key.clone());
                }
            }
            kept.push(key);
        } else {
            let port = pick_port(store, cfg, &owner, dry_run, &kept).await?;
            let key = port_key(port);
            if !dry_run {
                a.reserved.push(key.clone());
            }
            kept.push(key);
            meta::ensure_object(new, "spec").insert("healthCheckNodePort".into(), json!(port));
        }
    }
    a.freed = old_keys.into_iter().filter(|k| !kept.contains(k)).collect();
    Ok(())
}

/// A free ClusterIP: random probes in the upper band of the CIDR, then a
/// scan of the whole range for small CIDRs.
async fn pick_ip(
    store: &dyn Storage,
    cfg: &AllocConfig,
    owner: &Value,
    dry_run: bool,
) -> ApiResult<String> {
    let cidr = cfg.service_cidr;
    let size = cidr.size();
    // Upstream reserves the lower 1/16 (16..=256 addresses) for static IPs.
    let band = (size / 16).clamp(16, 256);
    let band = if band >= size { 0 } else { band };
    let dynamic = size - band;
    let start: u32 = rand::rng().random_range(0..dynamic);
    let probes = dynamic.min(512);
    for i in 0..probes {
        let n = if dynamic <= 512 {
            band + (start + i) % dynamic
        } else {
            band + rand::rng().random_range(0..dynamic)
        };
        let ip = cidr.nth(n).to_string();
        if reserve(store, &ip_key(&ip), owner, dry_run).await? {
            return Ok(ip);
        }
    }
    if size <= 4096 {
        for n in 0..band {
            let ip = cidr.nth(n).to_string();
            if reserve(store, &ip_key(&ip), owner, dry_run).await? {
                return Ok(ip);
            }
        }
    }
    Err(ApiError::internal(
        "failed to allocate a serviceIP: range is full",
    ))
}

/// A free node port: a scan of the range from a random start.
async fn pick_port(
    store: &dyn Storage,
    cfg: &AllocConfig,
    owner: &Value,
    dry_run: bool,
    taken_here: &[String],
) -> ApiResult<i64> {
    let (lo, hi) = (cfg.node_ports.0 as i64, cfg.node_ports.1 as i64);
    let span = hi - lo + 1;
    let start = rand::rng().random_range(0..span);
    for i in 0..span {
        let port = lo + (start + i) % span;
        let key = port_key(port);
        if taken_here.contains(&key) {
            continue;
        }
        if reserve(store, &key, owner, dry_run).await? {
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

/// The held ClusterIPs as networking.k8s.io/v1 IPAddress objects, as
/// kube-apiserver's IPAddress allocator writes them (named by the address,
/// the family and `managed-by: ipallocator.k8s.io` labels, the Service as
/// `spec.parentRef`); the Service's creationTimestamp stands for the
/// reservation's. Keys whose value does not parse are skipped.
pub async fn ip_addresses(
    store: &dyn Storage,
    services_prefix: &str,
) -> Result<Vec<Value>, StorageError> {
    let mut created = std::collections::HashMap::new();
    for kv in list_all(store, services_prefix).await? {
        if let Ok(s) = serde_json::from_slice::<Value>(&kv.value) {
            let when = s.pointer("/metadata/creationTimestamp").cloned();
            created.insert(meta::uid(&s).to_string(), when);
        }
    }
    let mut out = Vec::new();
    for kv in list_all(store, IP_PREFIX).await? {
        let Ok(owner) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let ip = kv.key.trim_start_matches(IP_PREFIX);
        let uid = owner.get("uid").and_then(Value::as_str).unwrap_or("");
        let when = created.get(uid).cloned().flatten();
        out.push(ip_address_object(ip, &owner, when));
    }
    Ok(out)
}

/// One reservation as an IPAddress object (see [`ip_addresses`]).
pub fn ip_address_object(ip: &str, owner: &Value, created: Option<Value>) -> Value {
    let service = owner.get("service").and_then(Value::as_str).unwrap_or("");
    let (namespace, name) = service.split_once('/').unwrap_or(("", service));
    let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
    let mut metadata = json!({
        "name": ip,
        "labels": {
            "ipaddress.kubernetes.io/ip-family": family,
            "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
        },
    });
    if let Some(t) = created {
        metadata["creationTimestamp"] = t;
    }
    json!({
        "kind": "IPAddress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": metadata,
        "spec": {"parentRef": {"group": "", "resource": "services",
                               "namespace": namespace, "name": name}},
    })
}

/// The allocator's range as the ServiceCIDR `kubernetes` kube-apiserver's
/// default-servicecidr controller keeps, Ready; `created` is the cluster's
/// creation time (the `default` namespace's creationTimestamp).
pub fn service_cidr_object(cfg: &AllocConfig, created: Option<Value>) -> Value {
    let mut metadata = json!({"name": "kubernetes"});
    let mut ready = json!({"type": "Ready", "status": "True", "reason": "",
                           "message": "Kubernetes default Service CIDR is ready"});
    if let Some(t) = created {
        metadata["creationTimestamp"] = t.clone();
        ready["lastTransitionTime"] = t;
    }
    json!({
        "kind": "ServiceCIDR",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": metadata,
        "spec": {"cidrs": [cfg.service_cidr.to_string()]},
        "status": {"conditions": [ready]},
    })
}

async fn list_all(
    store: &dyn Storage,
    prefix: &str,
) -> Result<Vec<crate::store::KeyValue>, StorageError> {
    let mut out = Vec::new();
    let mut start_after = None;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    revision: None,
                    start_after: start_after.clone(),
                    limit: Some(1000),
                },
            )
            .await?;
        start_after = page.items.last().map(|kv| kv.key.clone());
        let more = page.more;
        out.extend(page.items);
        if !more || start_after.is_none() {
            return Ok(out);
        }
    }
}

/// Reconciles reservations with stored Services, as upstream's repair
/// controllers do: a key whose owner no longer holds it is released, and a
/// Service address without a key (data from before allocation was
/// persisted) gets one. Run at startup, before serving.
pub async fn repair(store: &dyn Storage, services_prefix: &str) -> anyhow::Result<()> {
    let mut holders = std::collections::HashMap::new();
    for kv in list_all(store, services_prefix).await? {
        let Ok(s) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        for key in held_keys(&s) {
            holders.insert(key, s.clone());
        }
    }
    for prefix in [IP_PREFIX, NODE_PORT_PREFIX] {
        for kv in list_all(store, prefix).await? {
            let owner: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let uid = owner.get("uid").and_then(Value::as_str).unwrap_or("");
            let held = holders.get(&kv.key).is_some_and(|s| meta::uid(s) == uid);
            if held {
                holders.remove(&kv.key);
            } else {
                tracing::info!(key = %kv.key, value = %render_value(&owner), "releasing a leaked service allocation");
                let _ = store.delete(&kv.key, kv.mod_revision).await;
            }
        }
    }
    for (key, s) in holders {
        let owner = json!({
            "uid": meta::uid(&s),
            "service": format!("{}/{}", meta::namespace(&s), meta::name(&s)),
        });
        match store.create(&key, owner.to_string().into()).await {
            Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogStore, LogStoreConfig, MemoryBackend};

    fn store() -> LogStore {
        LogStore::open(Box::new(MemoryBackend::new()), LogStoreConfig::default()).unwrap()
    }

    fn svc(uid: &str, spec: Value) -> Value {
        json!({"metadata": {"name": "s", "namespace": "default", "uid": uid}, "spec": spec})
    }

    #[tokio::test]
    async fn allocate_undo_commit_and_foreign_keys() {
        let st = store();
        let cfg = AllocConfig::default();
        let mut a = svc("u1", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let alloc = allocate(&st, &cfg, None, &mut a, false).await.unwrap();
        let keys = held_keys(&a);
        assert_eq!(keys.len(), 2, "{a}");
        // Undo releases both reservations.
        alloc.undo(&st).await;
        for k in &keys {
            assert!(st.get(k).await.unwrap().is_none(), "{k}");
        }
        // A key owned by someone else is never released.
        let mut b = svc(
            "u2",
            json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
        );
        allocate(&st, &cfg, None, &mut b, false)
            .await
            .unwrap()
            .commit(&st)
            .await;
        release(&st, &held_keys(&b), "someone-else").await;
        assert!(st.get(&ip_key("10.96.0.20")).await.unwrap().is_some());
        // A LoadBalancer with externalTrafficPolicy Local gets a health check port.
        let mut lb = svc(
            "u3",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        );
        allocate(&st, &cfg, None, &mut lb, false)
            .await
            .unwrap()
            .commit(&st)
            .await;
        let hc = lb["spec"]["healthCheckNodePort"]
            .as_i64()
            .expect("allocated");
        assert!((30000..=32767).contains(&hc));
        assert_eq!(held_keys(&lb).len(), 3, "{lb}");
        // An update to ExternalName frees the IP on commit.
        let mut ext = b.clone();
        ext["spec"] = json!({"type": "ExternalName", "externalName": "x.example"});
        allocate(&st, &cfg, Some(&b), &mut ext, false)
            .await
            .unwrap()
            .commit(&st)
            .await;
        assert!(st.get(&ip_key("10.96.0.20")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn repair_releases_leaks_and_restores_missing_keys() {
        let st = store();
        let stored = svc(
            "live",
            json!({"clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30"]}),
        );
        st.create("/core/services/default/s", stored.to_string().into())
            .await
            .unwrap();
        let leaked = json!({"uid": "gone", "service": "default/gone"});
        st.create(&ip_key("10.96.0.31"), leaked.to_string().into())
            .await
            .unwrap();
        repair(&st, "/core/services/").await.unwrap();
        assert!(st.get(&ip_key("10.96.0.31")).await.unwrap().is_none());
        let kv = st
            .get(&ip_key("10.96.0.30"))
            .await
            .unwrap()
            .expect("restored");
        let owner: Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(owner["uid"], "live");
    }
}
