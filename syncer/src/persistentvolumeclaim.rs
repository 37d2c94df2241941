//! Pure translation of a virtual PersistentVolumeClaim into its host claim,
//! and of the bound host claim back into the virtual claim's status and
//! the virtual PersistentVolume the tenant sees.
//!
//! Virtual → host ([`translate`]): [`host_meta`] metadata, minus the
//! annotations the PV controller and provisioners own
//! ([`is_binder_annotation`]: a tenant's `pv.kubernetes.io/bind-completed`
//! would make the host's PV controller take a new claim as bound), plus the
//! record of the tenant's annotation keys; `accessModes`, `resources`,
//! `volumeMode`, `storageClassName` and `volumeAttributesClassName` kept
//! (StorageClasses are the host's, shown read-only in the tenant, so their
//! names are the same on both sides; the beta
//! `volume.beta.kubernetes.io/storage-class` annotation becomes
//! `storageClassName`). With the tenant's StorageClasses synced to the host
//! ([`HostStorage::classes_to_host`]) the class becomes its per-tenant host
//! name and the class rules below give way to one: a claim must name a
//! class.
//!
//! A claim may only get a volume provisioned for it. kube's PV controller
//! binds a claim to any Available volume that matches its class, size and
//! modes before it provisions, so these are refused
//! ([`TranslateError::Forbidden`]), each would let the tenant bind a host
//! volume that is not its own:
//! * `spec.selector`: it binds pre-provisioned host volumes by label;
//! * `storageClassName: ""`, a class whose provisioner is
//!   `kubernetes.io/no-provisioner` (static volumes only), and no class at
//!   all when the host is known to have no default class: each binds
//!   pre-provisioned volumes only;
//! * `spec.volumeName`, unless it is the volume the tenant's host claim is
//!   bound to already ([`HostStorage::bound_volume`]) or the tenant's own
//!   volume pre-bound to the claim ([`HostStorage::tenant_volume`], when
//!   the tenant's volumes are synced: the host claim then names that
//!   volume's host copy, whatever its class);
//! * a class named `vkube-…`: the prefix of tenants' own classes on the
//!   host (StorageClass sync to the host), which are theirs alone;
//! * a `dataSource`/`dataSourceRef` with a `namespace` other than the
//!   claim's; the others name the host copy of the tenant's object (its
//!   host name, [`host_name`]), never a host object.
//!
//! Available volumes the host's administrators leave in a provisioned class
//! can still be bound by any claim of that class, on a real cluster too.
//!
//! Host → virtual: [`reflect_status`] (the host claim's status as the
//! tenant's) and [`virtual_volume`] (a PersistentVolume for a bound claim,
//! vcluster's "fake persistent volume").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, FlexPersistentVolumeSource, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    PersistentVolumeSpec, PersistentVolumeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use vkube_core::quantity::Quantity;

use crate::cluster_scoped::host_cluster_name;
pub use crate::error::TranslateError;
use crate::names::{
    ANNOTATION_OBJECT_NAME, ANNOTATION_OBJECT_NAMESPACE, ANNOTATION_OBJECT_UID, LABEL_MANAGED_BY,
    Tenant, host_meta, host_name, keep_host_annotations, record_managed_annotations,
};
use crate::persistentvolume::host_volume_name;

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "PersistentVolumeClaim";

/// The annotation kube's PV controller sets on a claim it bound.
pub const ANNOTATION_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";

/// The annotation kube's PV controller sets when it chose the volume.
pub const ANNOTATION_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// The flexVolume driver of a virtual volume whose host volume is not CSI
/// (the tenant sees that a volume exists, not how the host attaches it).
pub const HOST_VOLUME_DRIVER: &str = "vkube.dev/host-volume";

/// Whether annotation `key` belongs to the PV controller or a provisioner
/// (`pv.kubernetes.io/*`, `volume.kubernetes.io/*`,
/// `volume.beta.kubernetes.io/*`): never copied from the tenant to the host.
pub fn is_binder_annotation(key: &str) -> bool {
    [
        "pv.kubernetes.io/",
        "volume.kubernetes.io/",
        "volume.beta.kubernetes.io/",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// What the syncer knows of the host's storage when it translates a claim.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStorage<'a> {
    /// The volume the tenant's host claim (ours, current) is bound to: its
    /// `spec.volumeName`.
    pub bound_volume: Option<&'a str>,
    /// The host's StorageClasses when the syncer may list them: (name,
    /// provisioner, is default); `None` when it may not.
    pub classes: Option<&'a [(String, String, bool)]>,
    /// The tenant's StorageClasses are synced to the host
    /// ([`crate::storageclass::host_storage_class`]): a claim's class
    /// becomes the host name of the tenant's class.
    pub classes_to_host: bool,
    /// The tenant's own PersistentVolume pre-bound to this claim (its
    /// `spec.claimRef` names the claim), when the tenant's volumes are
    /// synced to the host ([`crate::persistentvolume`]): the host claim is
    /// pinned to that volume's host copy.
    pub tenant_volume: Option<&'a str>,
}

/// The provisioner of StorageClasses that only bind pre-provisioned
/// volumes (local volumes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The prefix of the host names of tenants' own cluster-scoped objects
/// ([`host_cluster_name`]); a claim never names such a class by hand.
pub const TENANT_CLASS_PREFIX: &str = "vkube-";

/// The beta annotation naming a claim's StorageClass.
pub const ANNOTATION_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The StorageClass the host claim names: the tenant's (field, else the
/// beta annotation), else the host's default when the host's classes are
/// known. Errors as listed in the module docs.
fn host_class(
    tenant: &Tenant,
    claim: &PersistentVolumeClaim,
    storage: &HostStorage<'_>,
) -> Result<Option<String>, TranslateError> {
    let refuse = |why: String| Err(TranslateError::Forbidden(why));
    let named = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .or_else(|| {
            claim
                .metadata
                .annotations
                .as_ref()?
                .get(ANNOTATION_BETA_STORAGE_CLASS)
                .cloned()
        });
    if storage.tenant_volume.is_some() {
        // Pinned to the tenant's own volume: the class only has to match
        // the volume's, named the same way. No class is "" (written out, so
        // the host's DefaultStorageClass admission does not fill in its own
        // default, which the volume would not match).
        let c = named.unwrap_or_default();
        return Ok(Some(if storage.classes_to_host && !c.is_empty() {
            host_cluster_name(tenant, &c)
        } else {
            c
        }));
    }
    if storage.classes_to_host {
        // Per-tenant host classes bind only what was made for the tenant,
        // so any class the tenant names is safe; none (or "") would fall to
        // the host's default class or its class-less volumes.
        return match named.filter(|c| !c.is_empty()) {
            Some(c) => Ok(Some(host_cluster_name(tenant, &c))),
            None => refuse(
                "the claim names no StorageClass and this virtual cluster has no default one; name a StorageClass".into(),
            ),
        };
    }
    match (named, storage.classes) {
        (Some(c), _) if c.starts_with(TENANT_CLASS_PREFIX) => refuse(format!(
            "StorageClass {c:?}: names starting with {TENANT_CLASS_PREFIX:?} are virtual clusters' own classes on the host"
        )),
        (Some(c), _) if c.is_empty() => refuse(
            "storageClassName \"\" binds pre-provisioned host volumes, which this virtual cluster may not claim; name a StorageClass".into(),
        ),
        (Some(c), Some(classes)) => match classes.iter().find(|(n, _, _)| *n == c) {
            Some((_, p, _)) if p == NO_PROVISIONER => refuse(format!(
                "StorageClass {c:?} only binds pre-provisioned host volumes ({NO_PROVISIONER}), which this virtual cluster may not claim"
            )),
            _ => Ok(Some(c)),
        },
        (Some(c), None) => Ok(Some(c)),
        (None, Some(classes)) => match classes.iter().find(|(_, _, default)| *default) {
            Some((n, _, _)) => Ok(Some(n.clone())),
            None => refuse(
                "the claim names no StorageClass and the host has no default one, so it would bind pre-provisioned host volumes; name a StorageClass".into(),
            ),
        },
        (None, None) => Ok(None),
    }
}

/// The host claim for virtual claim `claim` of `tenant`, given what is
/// known of the host's storage (`storage`).
///
/// Errors: [`TranslateError::Identity`] without name, namespace or uid;
/// [`TranslateError::Forbidden`] as listed in the module docs.
pub fn translate(
    tenant: &Tenant,
    claim: &PersistentVolumeClaim,
    storage: &HostStorage<'_>,
) -> Result<PersistentVolumeClaim, TranslateError> {
    let mut metadata = host_meta(tenant, KIND, &claim.metadata)?;
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err(TranslateError::Forbidden(
            "spec.selector binds pre-provisioned host volumes, which this virtual cluster may not claim".into(),
        ));
    }
    let named_volume = spec.volume_name.filter(|v| !v.is_empty());
    let volume_name = match (&named_volume, storage.tenant_volume) {
        (Some(v), _) if storage.bound_volume == Some(v.as_str()) => named_volume.clone(),
        (Some(v), Some(t)) if v == t => Some(host_volume_name(tenant, t)),
        (None, Some(t)) => Some(host_volume_name(tenant, t)),
        (Some(v), _) => {
            return Err(TranslateError::Forbidden(format!(
                "spec.volumeName {v:?} names a volume this virtual cluster may not claim"
            )));
        }
        (None, None) => None,
    };
    let storage_class_name = host_class(tenant, claim, storage)?;
    let mut data_source = spec.data_source;
    if let Some(d) = data_source.as_mut() {
        d.name = host_name(tenant, &namespace, &d.name);
    }
    let mut data_source_ref = spec.data_source_ref;
    if let Some(d) = data_source_ref.as_mut() {
        if d.namespace.as_deref().is_some_and(|n| n != namespace) {
            return Err(TranslateError::Forbidden(format!(
                "spec.dataSourceRef names namespace {:?}; only objects of the claim's own namespace can be used",
                d.namespace.as_deref().unwrap_or_default()
            )));
        }
        d.namespace = None;
        d.name = host_name(tenant, &namespace, &d.name);
    }
    let markers: BTreeMap<String, String> = metadata.annotations.take().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = claim
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !crate::names::is_reserved_key(k) && !is_binder_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    record_managed_annotations(&mut annotations);
    annotations.extend(
        markers
            .into_iter()
            .filter(|(k, _)| crate::names::is_reserved_key(k)),
    );
    metadata.annotations = Some(annotations);
    Ok(PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: spec.access_modes,
            resources: spec.resources,
            volume_mode: spec.volume_mode,
            storage_class_name,
            volume_attributes_class_name: spec.volume_attributes_class_name,
            volume_name,
            data_source,
            data_source_ref,
            selector: None,
        }),
        status: None,
    })
}

fn storage(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Option<Quantity> {
    Quantity::parse(&list?.get("storage")?.0).ok()
}

/// The host claim to write over `host` (ours, current) so that it matches
/// `desired` (from [`translate`]), or `None` when nothing the syncer owns
/// differs. Only what may change on a claim is changed: labels, the
/// tenant's annotations ([`keep_host_annotations`] keeps the host's own,
/// e.g. the binder's), and once the claim is bound,
/// `resources.requests.storage` when the tenant's is larger (expansion;
/// claims never shrink) and `volumeAttributesClassName`. The rest of the spec (set
/// once, partly by the host's binder) and `finalizers` (the host's
/// `kubernetes.io/pvc-protection`) are the host's.
pub fn update(
    desired: &PersistentVolumeClaim,
    host: &PersistentVolumeClaim,
) -> Option<PersistentVolumeClaim> {
    let mut out = host.clone();
    out.metadata.labels.clone_from(&desired.metadata.labels);
    out.metadata.annotations = Some(keep_host_annotations(
        desired.metadata.annotations.clone().unwrap_or_default(),
        &host.metadata,
    ));
    // A claim's spec is immutable until it is bound; then the request may
    // grow and the volume attributes class change (ValidatePersistentVolumeClaimUpdate).
    if bound_volume(host).is_none() {
        return (out != *host).then_some(out);
    }
    let want = desired
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref());
    let have = host
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref());
    let out_spec = out.spec.get_or_insert_with(Default::default);
    if let (Some(w), Some(h)) = (storage(want), storage(have))
        && w > h
    {
        let requests = out_spec
            .resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default);
        requests.insert(
            "storage".into(),
            want.and_then(|r| r.get("storage"))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let attributes = desired
        .spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.clone());
    if attributes.is_some() {
        out_spec.volume_attributes_class_name = attributes;
    }
    (out != *host).then_some(out)
}

/// The status the virtual claim should have for host claim `host`: the
/// host's as is (phase, accessModes, capacity, conditions,
/// allocatedResources and their statuses, the volume attributes class
/// fields), which names nothing of the host but sizes and modes.
pub fn reflect_status(host: &PersistentVolumeClaim) -> PersistentVolumeClaimStatus {
    host.status.clone().unwrap_or_default()
}

/// The host volume a host claim is bound to: its `spec.volumeName` when its
/// phase is `Bound`.
pub fn bound_volume(host: &PersistentVolumeClaim) -> Option<&str> {
    let bound = host.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    host.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| bound && !v.is_empty())
}

/// The virtual PersistentVolume shown for virtual claim `claim` bound on
/// the host by `host` (see [`bound_volume`]), read from the host volume
/// `host_volume` when the syncer may read it, else from the host claim.
/// Same name as the host volume; labelled `vkube.dev/managed-by=VC` and
/// annotated with the claim's identity (`vkube.dev/object-*`), so the
/// syncer finds and removes it. Shown: capacity, access modes, volume
/// mode, reclaim policy (`Delete` when unknown), storage class, mount
/// options, claimRef (the virtual claim) and phase `Bound`; a CSI host
/// volume shows its driver, handle and fsType, anything else a
/// flexVolume of driver [`HOST_VOLUME_DRIVER`]. Not shown: secrets, node
/// affinity, CSI volume attributes (backend addresses, share paths), the
/// host source. `None` unless `host` is bound.
pub fn virtual_volume(
    tenant: &Tenant,
    claim: &PersistentVolumeClaim,
    host: &PersistentVolumeClaim,
    host_volume: Option<&PersistentVolume>,
) -> Option<PersistentVolume> {
    let name = bound_volume(host)?;
    let hs = host.spec.as_ref();
    let hv = host_volume
        .filter(|pv| pv.metadata.name.as_deref() == Some(name))
        .and_then(|pv| pv.spec.as_ref());
    let status = host.status.as_ref();
    let csi = hv
        .and_then(|s| s.csi.as_ref())
        .map(|c| CSIPersistentVolumeSource {
            driver: c.driver.clone(),
            volume_handle: c.volume_handle.clone(),
            fs_type: c.fs_type.clone(),
            read_only: c.read_only,
            ..Default::default()
        });
    let flex_volume = csi.is_none().then(|| FlexPersistentVolumeSource {
        driver: HOST_VOLUME_DRIVER.into(),
        ..Default::default()
    });
    let meta = &claim.metadata;
    Some(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED_BY.to_string(),
                tenant.name().to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    ANNOTATION_OBJECT_NAME.to_string(),
                    meta.name.clone().unwrap_or_default(),
                ),
                (
                    ANNOTATION_OBJECT_NAMESPACE.to_string(),
                    meta.namespace.clone().unwrap_or_default(),
                ),
                (
                    ANNOTATION_OBJECT_UID.to_string(),
                    meta.uid.clone().unwrap_or_default(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: hv
                .and_then(|s| s.capacity.clone())
                .or_else(|| status.and_then(|s| s.capacity.clone())),
            access_modes: hv
                .and_then(|s| s.access_modes.clone())
                .or_else(|| status.and_then(|s| s.access_modes.clone())),
            volume_mode: hv
                .and_then(|s| s.volume_mode.clone())
                .or_else(|| hs.and_then(|s| s.volume_mode.clone())),
            persistent_volume_reclaim_policy: Some(
                hv.and_then(|s| s.persistent_volume_reclaim_policy.clone())
                    .unwrap_or_else(|| "Delete".into()),
            ),
            // The tenant's name for the class (the host's may be a
            // per-tenant name).
            storage_class_name: claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.clone())
                .or_else(|| hv.and_then(|s| s.storage_class_name.clone()))
                .or_else(|| hs.and_then(|s| s.storage_class_name.clone())),
            mount_options: hv.and_then(|s| s.mount_options.clone()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some(KIND.into()),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                ..Default::default()
            }),
            csi,
            flex_volume,
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        }),
    })
}

/// Whether virtual volume `current` differs from `desired` (from
/// [`virtual_volume`]) in what the syncer shows: labels, annotations,
/// spec, phase.
pub fn volume_needs_update(desired: &PersistentVolume, current: &PersistentVolume) -> bool {
    desired.metadata.labels != current.metadata.labels
        || desired.metadata.annotations != current.metadata.annotations
        || desired.spec != current.spec
        || desired.status.as_ref().and_then(|s| s.phase.as_ref())
            != current.status.as_ref().and_then(|s| s.phase.as_ref())
}

/// The virtual claim (namespace, name, uid) a virtual volume made by
/// [`virtual_volume`] stands for, read from its annotations; `None` for a
/// volume the syncer did not make.
pub fn volume_claim(pv: &PersistentVolume, tenant: &Tenant) -> Option<(String, String, String)> {
    let m = &pv.metadata;
    if m.labels.as_ref()?.get(LABEL_MANAGED_BY)? != tenant.name() {
        return None;
    }
    let a = m.annotations.as_ref()?;
    Some((
        a.get(ANNOTATION_OBJECT_NAMESPACE)?.clone(),
        a.get(ANNOTATION_OBJECT_NAME)?.clone(),
        a.get(ANNOTATION_OBJECT_UID)?.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ANNOTATION_MANAGED_ANNOTATIONS;
    use serde_json::json;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn claim(spec: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "team", "uid": "u1",
                "annotations": {
                    "note": "x",
                    "pv.kubernetes.io/bind-completed": "yes",
                    "volume.kubernetes.io/selected-node": "n1",
                    "vkube.dev/object-uid": "forged",
                }},
            "spec": spec,
        }))
        .unwrap()
    }

    fn basic() -> serde_json::Value {
        json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
            "volumeMode": "Filesystem", "resources": {"requests": {"storage": "1Gi"}}})
    }

    #[test]
    fn translate_keeps_the_request_and_drops_binder_and_reserved_annotations() {
        let h = translate(&tenant(), &claim(basic()), &HostStorage::default()).unwrap();
        assert_eq!(h.metadata.name.as_deref(), Some("data-x-team-x-vc"));
        assert_eq!(h.metadata.namespace.as_deref(), Some("host-ns"));
        let ann = h.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["note"], "x");
        assert_eq!(
            ann[ANNOTATION_OBJECT_UID], "u1",
            "the marker, not the forgery"
        );
        assert_eq!(ann[ANNOTATION_MANAGED_ANNOTATIONS], "note");
        assert!(!ann.keys().any(|k| is_binder_annotation(k)));
        assert_eq!(
            serde_json::to_value(h.spec.unwrap()).unwrap(),
            basic(),
            "spec unchanged"
        );
    }

    #[test]
    fn hostile_claims_are_refused() {
        let cases = [
            (
                "selector",
                json!({"selector": {"matchLabels": {"tier": "gold"}}}),
            ),
            ("volumeName", json!({"volumeName": "pvc-of-another-tenant"})),
            (
                "dataSourceRef namespace",
                json!({"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "db", "namespace": "other"}}),
            ),
        ];
        for (what, extra) in cases {
            let mut spec = basic();
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            assert!(
                matches!(
                    translate(&tenant(), &claim(spec), &HostStorage::default()),
                    Err(TranslateError::Forbidden(_))
                ),
                "{what}"
            );
        }
        let mut own = basic();
        own["volumeName"] = json!("pvc-123");
        let h = translate(
            &tenant(),
            &claim(own),
            &HostStorage {
                bound_volume: Some("pvc-123"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(h.spec.unwrap().volume_name.as_deref(), Some("pvc-123"));
    }

    #[test]
    fn only_classes_that_provision_are_accepted() {
        let classes = [
            ("standard".to_string(), "ebs.csi.aws.com".to_string(), true),
            ("local".to_string(), NO_PROVISIONER.to_string(), false),
        ];
        let known = HostStorage {
            classes: Some(&classes),
            ..Default::default()
        };
        let class_of = |class: Option<&str>, storage: &HostStorage<'_>| {
            let mut spec = basic();
            spec["storageClassName"] = json!(class);
            translate(&tenant(), &claim(spec), storage).map(|h| h.spec.unwrap().storage_class_name)
        };
        assert_eq!(
            class_of(Some("standard"), &known),
            Ok(Some("standard".into()))
        );
        assert_eq!(
            class_of(None, &known),
            Ok(Some("standard".into())),
            "the host's default"
        );
        for refused in [Some(""), Some("local")] {
            assert!(
                matches!(class_of(refused, &known), Err(TranslateError::Forbidden(_))),
                "{refused:?}"
            );
        }
        let no_default = [classes[1].clone()];
        let without = HostStorage {
            classes: Some(&no_default),
            ..Default::default()
        };
        assert!(matches!(
            class_of(None, &without),
            Err(TranslateError::Forbidden(_))
        ));
        let unknown = HostStorage::default();
        assert_eq!(
            class_of(None, &unknown),
            Ok(None),
            "left to the host's admission"
        );
        assert!(matches!(
            class_of(Some(""), &unknown),
            Err(TranslateError::Forbidden(_))
        ));
        let mut beta = claim(json!({"resources": {"requests": {"storage": "1Gi"}}}));
        beta.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION_BETA_STORAGE_CLASS.into(), "standard".into());
        let h = translate(&tenant(), &beta, &known).unwrap();
        assert_eq!(
            h.spec.unwrap().storage_class_name.as_deref(),
            Some("standard")
        );
    }

    #[test]
    fn with_tenant_classes_on_the_host_claims_name_them_and_must_name_one() {
        let to_host = HostStorage {
            classes_to_host: true,
            ..Default::default()
        };
        let class_of = |class: Option<&str>| {
            let mut spec = basic();
            spec["storageClassName"] = json!(class);
            translate(&tenant(), &claim(spec), &to_host).map(|h| h.spec.unwrap().storage_class_name)
        };
        assert_eq!(
            class_of(Some("local")),
            Ok(Some("vkube-local-x-host-ns-x-vc".into())),
            "even a static class: only the tenant's volumes carry its host name"
        );
        for refused in [None, Some("")] {
            assert!(
                matches!(class_of(refused), Err(TranslateError::Forbidden(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_claim_pre_bound_by_the_tenants_own_volume_is_pinned_to_its_host_copy() {
        let pinned = |spec: serde_json::Value, to_host: bool| {
            let storage = HostStorage {
                tenant_volume: Some("share"),
                classes_to_host: to_host,
                ..Default::default()
            };
            translate(&tenant(), &claim(spec), &storage).map(|h| {
                let s = h.spec.unwrap();
                (s.volume_name, s.storage_class_name)
            })
        };
        let mut empty_class = basic();
        empty_class["storageClassName"] = json!("");
        assert_eq!(
            pinned(empty_class, false),
            Ok((
                Some("vkube-share-x-host-ns-x-vc".into()),
                Some(String::new())
            ))
        );
        let mut named = basic();
        named["storageClassName"] = json!("manual");
        named["volumeName"] = json!("share");
        assert_eq!(
            pinned(named.clone(), true),
            Ok((
                Some("vkube-share-x-host-ns-x-vc".into()),
                Some("vkube-manual-x-host-ns-x-vc".into())
            ))
        );
        let mut no_class = basic();
        no_class.as_object_mut().unwrap().remove("storageClassName");
        assert_eq!(
            pinned(no_class, false),
            Ok((
                Some("vkube-share-x-host-ns-x-vc".into()),
                Some(String::new())
            ))
        );
        let mut foreign = basic();
        foreign["storageClassName"] = json!("vkube-fast-x-other-ns-x-vc2");
        assert!(matches!(
            translate(&tenant(), &claim(foreign), &HostStorage::default()),
            Err(TranslateError::Forbidden(_))
        ));
        let mut other = named;
        other["volumeName"] = json!("someone-elses");
        assert!(matches!(
            pinned(other, false),
            Err(TranslateError::Forbidden(_))
        ));
    }

    #[test]
    fn data_sources_name_the_tenants_host_copies() {
        let mut spec = basic();
        spec["dataSource"] = json!({"kind": "PersistentVolumeClaim", "name": "db"});
        spec["dataSourceRef"] = json!({"apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot", "name": "snap", "namespace": "team"});
        let s = translate(&tenant(), &claim(spec), &HostStorage::default())
            .unwrap()
            .spec
            .unwrap();
        assert_eq!(s.data_source.unwrap().name, "db-x-team-x-vc");
        let r = s.data_source_ref.unwrap();
        assert_eq!((r.name.as_str(), r.namespace), ("snap-x-team-x-vc", None));
    }

    #[test]
    fn update_grows_the_request_and_keeps_the_hosts_fields() {
        let desired = translate(&tenant(), &claim(basic()), &HostStorage::default()).unwrap();
        let mut host = desired.clone();
        host.metadata.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
        host.metadata.resource_version = Some("7".into());
        host.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION_BIND_COMPLETED.into(), "yes".into());
        host.spec.as_mut().unwrap().volume_name = Some("pvc-9".into());
        assert_eq!(update(&desired, &host), None, "host fields are the host's");
        let mut bigger = claim(basic());
        bigger.spec.as_mut().unwrap().resources =
            serde_json::from_value(json!({"requests": {"storage": "2Gi"}})).unwrap();
        let pending = update(
            &translate(&tenant(), &bigger, &HostStorage::default()).unwrap(),
            &host,
        );
        assert_eq!(pending, None, "a claim is immutable until bound");
        host.status = serde_json::from_value(json!({"phase": "Bound"})).unwrap();
        let mut bigger = claim(basic());
        bigger.spec.as_mut().unwrap().resources =
            serde_json::from_value(json!({"requests": {"storage": "2Gi"}})).unwrap();
        let out = update(
            &translate(&tenant(), &bigger, &HostStorage::default()).unwrap(),
            &host,
        )
        .unwrap();
        let spec = out.spec.as_ref().unwrap();
        assert_eq!(
            spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "2Gi"
        );
        assert_eq!(spec.volume_name.as_deref(), Some("pvc-9"));
        assert_eq!(out.metadata.finalizers, host.metadata.finalizers);
        assert_eq!(out.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            out.metadata.annotations.as_ref().unwrap()[ANNOTATION_BIND_COMPLETED],
            "yes"
        );
        let mut smaller = bigger.clone();
        smaller.spec.as_mut().unwrap().resources =
            serde_json::from_value(json!({"requests": {"storage": "512Mi"}})).unwrap();
        assert_eq!(
            update(
                &translate(&tenant(), &smaller, &HostStorage::default()).unwrap(),
                &host
            ),
            None,
            "never shrinks"
        );
    }

    #[test]
    fn a_bound_claim_gets_a_virtual_volume_without_host_details() {
        let v = claim(basic());
        let mut host = translate(&tenant(), &v, &HostStorage::default()).unwrap();
        assert!(
            virtual_volume(&tenant(), &v, &host, None).is_none(),
            "unbound"
        );
        host.spec.as_mut().unwrap().volume_name = Some("pvc-h1".into());
        host.status = serde_json::from_value(json!({"phase": "Bound",
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}))
        .unwrap();
        let host_pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pvc-h1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1",
                    "volumeAttributes": {"server": "10.1.2.3", "share": "/exports/a"},
                    "nodePublishSecretRef": {"name": "s", "namespace": "kube-system"}},
                "nodeAffinity": {"required": {"nodeSelectorTerms": []}},
                "claimRef": {"namespace": "host-ns", "name": "data-x-team-x-vc"}},
        }))
        .unwrap();
        let pv = virtual_volume(&tenant(), &v, &host, Some(&host_pv)).unwrap();
        let spec = serde_json::to_value(pv.spec.as_ref().unwrap()).unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-h1"));
        assert_eq!(spec["claimRef"]["namespace"], "team");
        assert_eq!(spec["claimRef"]["name"], "data");
        assert_eq!(spec["claimRef"]["uid"], "u1");
        assert_eq!(spec["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(
            spec["csi"],
            json!({"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"})
        );
        assert!(spec.get("nodeAffinity").is_none());
        assert_eq!(
            volume_claim(&pv, &tenant()),
            Some(("team".into(), "data".into(), "u1".into()))
        );
        let without = virtual_volume(&tenant(), &v, &host, None).unwrap();
        let spec = serde_json::to_value(without.spec.as_ref().unwrap()).unwrap();
        assert_eq!(spec["capacity"]["storage"], "1Gi");
        assert_eq!(spec["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(spec["flexVolume"]["driver"], HOST_VOLUME_DRIVER);
        assert!(volume_needs_update(&pv, &without));
        assert!(
            volume_claim(&pv, &Tenant::new("other", "host-ns").unwrap()).is_none(),
            "another tenant's"
        );
    }
}
