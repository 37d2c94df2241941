//! Names and markers of the host copies of a tenant's cluster-scoped
//! objects (PriorityClasses, StorageClasses, PersistentVolumes when those
//! are synced to the host).
//!
//! A cluster-scoped host object has no host namespace to keep tenants
//! apart, so its name carries the tenant: [`host_cluster_name`] is `vkube-`
//! and the [`host_name`] of the virtual name with the host namespace in the
//! namespace's place (`vkube-NAME-x-HOSTNS-x-VC`). The prefix keeps every
//! name clear of prefixes the host reserves (`system-`), and being on every
//! name keeps the mapping injective. The copy is labelled
//! `vkube.dev/managed-by=VC` and annotated with the virtual name, uid, kind
//! and the host namespace ([`host_cluster_meta`]); [`is_ours`] checks all of
//! them before the syncer changes or deletes a host object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::{
    ANNOTATION_OBJECT_KIND, ANNOTATION_OBJECT_NAME, ANNOTATION_OBJECT_UID, LABEL_MANAGED_BY,
    NamesError, Tenant, host_name,
};

/// Annotation on a cluster-scoped host copy naming the tenant's host
/// namespace (with the name and the label it identifies the owning tenant).
pub const ANNOTATION_HOST_NAMESPACE: &str = "vkube.dev/host-namespace";

/// The host name of the tenant's cluster-scoped object `name`:
/// `vkube-` + [`host_name`]`(tenant, host namespace, name)`.
pub fn host_cluster_name(tenant: &Tenant, name: &str) -> String {
    format!("vkube-{}", host_name(tenant, tenant.host_namespace(), name))
}

/// Metadata of the host copy of virtual cluster-scoped object `meta` of
/// `kind`: name [`host_cluster_name`], the label `vkube.dev/managed-by=VC`
/// and the annotations `vkube.dev/object-name`, `-uid`, `-kind` and
/// [`ANNOTATION_HOST_NAMESPACE`]. Nothing of the tenant's own labels or
/// annotations is carried (they could carry meaning for host controllers).
///
/// Errors: [`NamesError::MissingField`] without name or uid.
pub fn host_cluster_meta(
    tenant: &Tenant,
    kind: &str,
    meta: &ObjectMeta,
) -> Result<ObjectMeta, NamesError> {
    let name = meta
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(NamesError::MissingField("name"))?;
    let uid = meta
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or(NamesError::MissingField("uid"))?;
    Ok(ObjectMeta {
        name: Some(host_cluster_name(tenant, &name)),
        labels: Some(BTreeMap::from([(
            LABEL_MANAGED_BY.to_string(),
            tenant.name().to_string(),
        )])),
        annotations: Some(BTreeMap::from([
            (ANNOTATION_OBJECT_NAME.to_string(), name),
            (ANNOTATION_OBJECT_UID.to_string(), uid),
            (ANNOTATION_OBJECT_KIND.to_string(), kind.to_string()),
            (
                ANNOTATION_HOST_NAMESPACE.to_string(),
                tenant.host_namespace().to_string(),
            ),
        ])),
        ..Default::default()
    })
}

/// Whether host object `host` is this tenant's copy of virtual object
/// `name` of `kind` (any incarnation): the name, the label and the
/// annotations agree.
pub fn is_ours(tenant: &Tenant, host: &ObjectMeta, kind: &str, name: &str) -> bool {
    let ann = |k: &str| {
        host.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    host.name.as_deref() == Some(host_cluster_name(tenant, name).as_str())
        && host
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .map(String::as_str)
            == Some(tenant.name())
        && ann(ANNOTATION_OBJECT_NAME) == Some(name)
        && ann(ANNOTATION_OBJECT_KIND) == Some(kind)
        && ann(ANNOTATION_HOST_NAMESPACE) == Some(tenant.host_namespace())
}

/// Whether host copy `host` was made for the current incarnation of the
/// virtual object `virt` (its `vkube.dev/object-uid` is the object's uid).
pub fn same_incarnation(host: &ObjectMeta, virt: &ObjectMeta) -> bool {
    host.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_OBJECT_UID))
        .is_some_and(|u| Some(u) == virt.uid.as_ref())
}

/// The metadata to write over host copy `host` so that its markers are
/// `desired`'s: labels and annotations outside `vkube.dev/` that the host
/// (its controllers and admins) set are kept, the syncer's own are
/// replaced; everything else of `host` is kept.
pub fn with_markers(desired: &ObjectMeta, host: &ObjectMeta) -> ObjectMeta {
    let merge = |d: &Option<BTreeMap<String, String>>, h: &Option<BTreeMap<String, String>>| {
        let mut out: BTreeMap<String, String> = h
            .iter()
            .flatten()
            .filter(|(k, _)| !k.starts_with(crate::names::DOMAIN_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.extend(d.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
        (!out.is_empty()).then_some(out)
    };
    ObjectMeta {
        labels: merge(&desired.labels, &host.labels),
        annotations: merge(&desired.annotations, &host.annotations),
        ..host.clone()
    }
}

/// The virtual name a host copy stands for, when it is a copy of `kind`
/// made for this tenant's host namespace (read from its annotations; the
/// full check is [`is_ours`]).
pub fn virtual_name<'a>(tenant: &Tenant, host: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    let a = host.annotations.as_ref()?;
    (a.get(ANNOTATION_HOST_NAMESPACE).map(String::as_str) == Some(tenant.host_namespace())
        && a.get(ANNOTATION_OBJECT_KIND).map(String::as_str) == Some(kind))
    .then(|| a.get(ANNOTATION_OBJECT_NAME).map(String::as_str))
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_named_per_tenant_and_recognised_only_by_it() {
        let tenant = Tenant::new("vc", "host-ns").unwrap();
        let meta = ObjectMeta {
            name: Some("fast".into()),
            uid: Some("u1".into()),
            labels: Some(BTreeMap::from([("team".into(), "a".into())])),
            ..Default::default()
        };
        let h = host_cluster_meta(&tenant, "StorageClass", &meta).unwrap();
        assert_eq!(h.name.as_deref(), Some("vkube-fast-x-host-ns-x-vc"));
        assert_eq!(h.labels.as_ref().unwrap().len(), 1, "tenant labels stay");
        assert!(is_ours(&tenant, &h, "StorageClass", "fast"));
        assert_eq!(virtual_name(&tenant, &h, "StorageClass"), Some("fast"));
        assert!(!is_ours(&tenant, &h, "PriorityClass", "fast"));
        let other = Tenant::new("vc", "other-ns").unwrap();
        assert!(!is_ours(&other, &h, "StorageClass", "fast"));
        assert_eq!(virtual_name(&other, &h, "StorageClass"), None);
        let no_uid = ObjectMeta {
            uid: None,
            ..meta.clone()
        };
        assert!(host_cluster_meta(&tenant, "StorageClass", &no_uid).is_err());
        assert!(same_incarnation(&h, &meta));
        let recreated = ObjectMeta {
            uid: Some("u2".into()),
            ..meta.clone()
        };
        assert!(!same_incarnation(&h, &recreated));
        let mut live = h.clone();
        live.annotations.as_mut().unwrap().insert(
            "pv.kubernetes.io/migrated-to".into(),
            "ebs.csi.aws.com".into(),
        );
        live.annotations
            .as_mut()
            .unwrap()
            .insert("vkube.dev/stale".into(), "x".into());
        let out = with_markers(&h, &live);
        let a = out.annotations.unwrap();
        assert_eq!(
            a["pv.kubernetes.io/migrated-to"], "ebs.csi.aws.com",
            "the host's stays"
        );
        assert!(
            !a.contains_key("vkube.dev/stale"),
            "the syncer's own are replaced"
        );
        assert_eq!(a[ANNOTATION_OBJECT_UID], "u1");
    }
}
