//! INTERIM: minimal ConfigMap/Secret translation until the pure
//! `configmap`/`secret` modules of branch `syncer-pure` land; delete this
//! file then (no duplicates).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ObjectMeta;

use crate::names::{NamesError, Tenant, host_name, markers, translate_labels};

fn meta(tenant: &Tenant, kind: &str, v: &ObjectMeta) -> Result<ObjectMeta, NamesError> {
    let m = markers(tenant, kind, v)?;
    let mut labels = translate_labels(tenant, &v.labels.clone().unwrap_or_default());
    labels.extend(m.labels);
    let mut annotations = translate_labels(tenant, &v.annotations.clone().unwrap_or_default());
    annotations.extend(m.annotations);
    Ok(ObjectMeta {
        name: Some(host_name(
            tenant,
            v.namespace.as_deref().unwrap_or_default(),
            v.name.as_deref().unwrap_or_default(),
        )),
        namespace: Some(tenant.host_namespace().to_string()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..Default::default()
    })
}

pub(crate) fn translate_configmap(tenant: &Tenant, v: &ConfigMap) -> Result<ConfigMap, NamesError> {
    Ok(ConfigMap {
        metadata: meta(tenant, "ConfigMap", &v.metadata)?,
        data: v.data.clone(),
        binary_data: v.binary_data.clone(),
        immutable: v.immutable,
    })
}

pub(crate) fn configmap_needs_update(d: &ConfigMap, h: &ConfigMap) -> bool {
    d.data != h.data
        || d.binary_data != h.binary_data
        || d.metadata.labels != h.metadata.labels
        || d.metadata.annotations != h.metadata.annotations
}

pub(crate) fn translate_secret(tenant: &Tenant, v: &Secret) -> Result<Secret, NamesError> {
    let type_ = match v.type_.as_deref() {
        Some("kubernetes.io/service-account-token") => Some("Opaque".to_string()),
        t => t.map(str::to_string),
    };
    Ok(Secret {
        metadata: meta(tenant, "Secret", &v.metadata)?,
        data: v.data.clone(),
        string_data: None,
        type_,
        immutable: v.immutable,
    })
}

pub(crate) fn secret_needs_update(d: &Secret, h: &Secret) -> bool {
    d.data != h.data
        || d.type_ != h.type_
        || d.metadata.labels != h.metadata.labels
        || d.metadata.annotations != h.metadata.annotations
}

/// The virtual copy of host node `h`: name, labels, capacity/allocatable,
/// conditions, addresses, nodeInfo; no spec (taints, podCIDR stay host-side).
pub(crate) fn virtual_node(
    h: &k8s_openapi::api::core::v1::Node,
) -> k8s_openapi::api::core::v1::Node {
    let s = h.status.clone().unwrap_or_default();
    k8s_openapi::api::core::v1::Node {
        metadata: ObjectMeta {
            name: h.metadata.name.clone(),
            labels: h.metadata.labels.clone(),
            ..Default::default()
        },
        spec: None,
        status: Some(k8s_openapi::api::core::v1::NodeStatus {
            capacity: s.capacity,
            allocatable: s.allocatable,
            conditions: s.conditions,
            addresses: s.addresses,
            node_info: s.node_info,
            ..Default::default()
        }),
    }
}

/// A Ready node named `name` for hosts that forbid reading nodes.
pub(crate) fn placeholder_node(name: &str) -> k8s_openapi::api::core::v1::Node {
    k8s_openapi::api::core::v1::Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: None,
        status: Some(k8s_openapi::api::core::v1::NodeStatus {
            conditions: Some(vec![k8s_openapi::api::core::v1::NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("VkubePlaceholder".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Whether virtual node `cur` differs from `want` in labels or status.
pub(crate) fn node_needs_update(
    want: &k8s_openapi::api::core::v1::Node,
    cur: &k8s_openapi::api::core::v1::Node,
) -> bool {
    want.metadata.labels != cur.metadata.labels || want.status != cur.status
}
