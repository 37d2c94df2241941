//! Pure translation of a host StorageClass into the read-only copy the
//! tenant sees, so `kubectl get storageclass` lists what its claims can ask
//! for and the virtual API server's DefaultStorageClass admission gives
//! claims without a class the host's default (claims keep class names
//! unchanged on the way to the host, [`crate::persistentvolumeclaim`]).
//!
//! Kept: name, provisioner, reclaimPolicy, volumeBindingMode,
//! allowVolumeExpansion, mountOptions, allowedTopologies, the
//! `storageclass.kubernetes.io/is-default-class` annotation (and its beta
//! form), and the parameters except those naming Secrets (the CSI
//! `csi.storage.k8s.io/*-secret-*` keys: host-only). Added: the label
//! `vkube.dev/managed-by=VC`, which marks the copy as the syncer's (a
//! StorageClass the tenant made itself is never touched:
//! [`crate::controller::host_class`]).
//!
//! With StorageClass sync to the host on ([`host_storage_class`]), the
//! direction turns: the tenant's own classes are created on the host under
//! per-tenant names ([`crate::cluster_scoped::host_cluster_name`]) and its
//! claims name those ([`crate::persistentvolumeclaim`]), so a tenant's
//! claims only ever reach its own classes and the volumes made for them.

use std::collections::BTreeMap;

use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, StorageClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster_scoped::host_cluster_meta;
use crate::error::TranslateError;
use crate::names::{LABEL_MANAGED_BY, Tenant};

/// The kind, as in metrics.
pub const KIND: &str = "StorageClass";

/// The annotations that mark the default class (GA and beta).
pub const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Whether host class `host` is a tenant's per-tenant copy (made by a
/// syncer with StorageClass sync to the host): never shown to another
/// tenant nor usable by its claims.
pub fn is_tenant_copy(host: &ObjectMeta) -> bool {
    host.labels
        .as_ref()
        .is_some_and(|l| l.contains_key(LABEL_MANAGED_BY))
        || host
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(crate::cluster_scoped::ANNOTATION_HOST_NAMESPACE))
}

/// The virtual copy of host StorageClass `host` for `tenant`.
pub fn virtual_storage_class(tenant: &Tenant, host: &StorageClass) -> StorageClass {
    let annotations: BTreeMap<String, String> = host
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| DEFAULT_CLASS_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let parameters = host.parameters.as_ref().map(|p| {
        p.iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("secret"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    StorageClass {
        metadata: ObjectMeta {
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..shown_meta(tenant, &host.metadata)
        },
        provisioner: host.provisioner.clone(),
        parameters,
        reclaim_policy: host.reclaim_policy.clone(),
        volume_binding_mode: host.volume_binding_mode.clone(),
        allow_volume_expansion: host.allow_volume_expansion,
        mount_options: host.mount_options.clone(),
        allowed_topologies: host.allowed_topologies.clone(),
    }
}

/// The metadata of a read-only virtual copy of host object `host`: its
/// name and the label `vkube.dev/managed-by=VC`, nothing else.
fn shown_meta(tenant: &Tenant, host: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: host.name.clone(),
        labels: Some(BTreeMap::from([(
            LABEL_MANAGED_BY.to_string(),
            tenant.name().to_string(),
        )])),
        ..Default::default()
    }
}

/// The read-only virtual copy of host CSIDriver `host` (so tools that
/// inspect drivers, and users asking what a class's provisioner does, see
/// the host's): name and spec, labelled `vkube.dev/managed-by=VC`.
pub fn virtual_csi_driver(tenant: &Tenant, host: &CSIDriver) -> CSIDriver {
    CSIDriver {
        metadata: shown_meta(tenant, &host.metadata),
        spec: host.spec.clone(),
    }
}

/// The host StorageClass for the tenant's class `v` (StorageClass sync to
/// the host): [`host_cluster_meta`] metadata; provisioner, parameters,
/// reclaimPolicy, volumeBindingMode, allowVolumeExpansion, mountOptions and
/// allowedTopologies kept. Never the host's default class (the
/// `is-default-class` annotations stay in the tenant, whose admission
/// applies them).
///
/// Errors: [`TranslateError::Identity`] without name or uid;
/// [`TranslateError::Forbidden`] for a provisioner not in `provisioners`
/// (the parameters are the provisioner's to read, and some provisioners'
/// name shared storage, such as an NFS share and directory), and for a
/// parameter naming a Secret (the CSI
/// `csi.storage.k8s.io/*-secret-name`/`-namespace` keys and any other key
/// containing `secret`): the host's provisioner would read that Secret
/// with its own rights, in any host namespace.
pub fn host_storage_class(
    tenant: &Tenant,
    v: &StorageClass,
    provisioners: &[String],
) -> Result<StorageClass, TranslateError> {
    if !provisioners.contains(&v.provisioner) {
        return Err(TranslateError::Forbidden(format!(
            "provisioner {:?} is not one this virtual cluster may use on the host (allowed: {})",
            v.provisioner,
            if provisioners.is_empty() {
                "none".to_string()
            } else {
                provisioners.join(", ")
            }
        )));
    }
    if let Some(key) = v
        .parameters
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| k.to_ascii_lowercase().contains("secret"))
    {
        return Err(TranslateError::Forbidden(format!(
            "parameter {key:?} names a Secret the host's provisioner would read; StorageClasses with secret parameters are not synced to the host"
        )));
    }
    Ok(StorageClass {
        metadata: host_cluster_meta(tenant, KIND, &v.metadata)?,
        provisioner: v.provisioner.clone(),
        parameters: v.parameters.clone(),
        reclaim_policy: v.reclaim_policy.clone(),
        volume_binding_mode: v.volume_binding_mode.clone(),
        allow_volume_expansion: v.allow_volume_expansion,
        mount_options: v.mount_options.clone(),
        allowed_topologies: v.allowed_topologies.clone(),
    })
}

/// The read-only virtual copy of host CSINode `host` (kubelet's record of
/// the CSI drivers of one node: name, node IDs, topology keys, volume
/// limits), labelled `vkube.dev/managed-by=VC`; shown only for the nodes
/// the tenant sees ([`crate::controller::host_class`]).
pub fn virtual_csi_node(tenant: &Tenant, host: &CSINode) -> CSINode {
    CSINode {
        metadata: shown_meta(tenant, &host.metadata),
        ..host.clone()
    }
}

/// Whether virtual copy `current` differs from `desired` in anything shown.
/// A class's provisioner, parameters, reclaim policy and binding mode are
/// immutable: [`needs_replace`] says when only a delete and create helps.
pub fn needs_update(desired: &StorageClass, current: &StorageClass) -> bool {
    desired.metadata.labels != current.metadata.labels
        || desired.metadata.annotations.clone().unwrap_or_default()
            != current.metadata.annotations.clone().unwrap_or_default()
        || desired.allow_volume_expansion != current.allow_volume_expansion
        || desired.mount_options != current.mount_options
        || desired.allowed_topologies != current.allowed_topologies
        || needs_replace(desired, current)
}

/// Whether an immutable field differs (kube's StorageClass validation
/// forbids changing provisioner, parameters, reclaimPolicy and
/// volumeBindingMode).
pub fn needs_replace(desired: &StorageClass, current: &StorageClass) -> bool {
    desired.provisioner != current.provisioner
        || desired.parameters.clone().unwrap_or_default()
            != current.parameters.clone().unwrap_or_default()
        || desired.reclaim_policy.as_deref().unwrap_or("Delete")
            != current.reclaim_policy.as_deref().unwrap_or("Delete")
        || desired
            .volume_binding_mode
            .as_deref()
            .unwrap_or("Immediate")
            != current
                .volume_binding_mode
                .as_deref()
                .unwrap_or("Immediate")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tenant_classes_reach_the_host_renamed_never_default_never_with_secrets() {
        let tenant = Tenant::new("vc", "host-ns").unwrap();
        let v: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "fast", "uid": "u1", "labels": {"team": "a"},
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"},
            "reclaimPolicy": "Retain", "allowVolumeExpansion": true,
        }))
        .unwrap();
        let allowed = ["ebs.csi.aws.com".to_string()];
        let h = host_storage_class(&tenant, &v, &allowed).unwrap();
        let got = serde_json::to_value(&h).unwrap();
        assert_eq!(got["metadata"]["name"], "vkube-fast-x-host-ns-x-vc");
        assert_eq!(
            got["metadata"]["labels"],
            json!({"vkube.dev/managed-by": "vc"})
        );
        assert!(
            got["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"].is_null()
        );
        assert_eq!(
            (
                &got["provisioner"],
                &got["parameters"],
                &got["reclaimPolicy"]
            ),
            (
                &json!("ebs.csi.aws.com"),
                &json!({"type": "gp3"}),
                &json!("Retain")
            )
        );
        let mut with_secret = v.clone();
        with_secret.parameters = Some(BTreeMap::from([(
            "csi.storage.k8s.io/node-stage-secret-namespace".into(),
            "kube-system".into(),
        )]));
        assert!(matches!(
            host_storage_class(&tenant, &with_secret, &allowed),
            Err(TranslateError::Forbidden(_))
        ));
        assert!(matches!(
            host_storage_class(&tenant, &v, &[]),
            Err(TranslateError::Forbidden(_))
        ));
    }

    #[test]
    fn csi_drivers_are_shown_with_their_spec() {
        let tenant = Tenant::new("vc", "host-ns").unwrap();
        let host: CSIDriver = serde_json::from_value(json!({
            "metadata": {"name": "ebs.csi.aws.com", "uid": "h",
                "annotations": {"meta.helm.sh/release-name": "ebs"}},
            "spec": {"attachRequired": true, "podInfoOnMount": false,
                "fsGroupPolicy": "File"},
        }))
        .unwrap();
        let v = serde_json::to_value(virtual_csi_driver(&tenant, &host)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                "metadata": {"name": "ebs.csi.aws.com", "labels": {"vkube.dev/managed-by": "vc"}},
                "spec": {"attachRequired": true, "podInfoOnMount": false, "fsGroupPolicy": "File"}})
        );
    }

    #[test]
    fn the_copy_keeps_the_class_and_leaves_out_host_secrets() {
        let tenant = Tenant::new("vc", "host-ns").unwrap();
        let host: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "fast", "uid": "h1", "resourceVersion": "5",
                "labels": {"team": "storage"},
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "provisioner": "ebs.csi.aws.com",
            "parameters": {"type": "gp3",
                "csi.storage.k8s.io/provisioner-secret-name": "creds",
                "csi.storage.k8s.io/provisioner-secret-namespace": "kube-system"},
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": true,
        }))
        .unwrap();
        let v = virtual_storage_class(&tenant, &host);
        let got = serde_json::to_value(&v).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "fast", "labels": {"vkube.dev/managed-by": "vc"},
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "ebs.csi.aws.com",
                "parameters": {"type": "gp3"},
                "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
                "allowVolumeExpansion": true,
            })
        );
        assert!(!needs_update(&v, &v));
        let mut changed = v.clone();
        changed.provisioner = "other".into();
        assert!(needs_replace(&changed, &v) && needs_update(&changed, &v));
        let mut not_default = v.clone();
        not_default.metadata.annotations = None;
        assert!(needs_update(&not_default, &v) && !needs_replace(&not_default, &v));
    }
}
