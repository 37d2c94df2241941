//! Pure translation of a virtual ConfigMap into its host ConfigMap.
//!
//! The host copy gets [`host_meta`] metadata (host name, host namespace,
//! tenant labels and annotations minus the reserved `vkube.dev` domain, plus
//! the markers) and the content unchanged: `data`, `binaryData`,
//! `immutable`. Server-set fields (uid, resourceVersion, ownerReferences,
//! managedFields, finalizers, creationTimestamp) are not carried over.

use k8s_openapi::api::core::v1::ConfigMap;

pub use crate::error::TranslateError;
use crate::names::{Tenant, host_meta};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "ConfigMap";

/// The host ConfigMap for virtual ConfigMap `cm` of `tenant`.
///
/// Errors: [`TranslateError::Identity`] when `cm` lacks name, namespace or
/// uid.
pub fn translate(tenant: &Tenant, cm: &ConfigMap) -> Result<ConfigMap, TranslateError> {
    Ok(ConfigMap {
        metadata: host_meta(tenant, KIND, &cm.metadata)?,
        data: cm.data.clone(),
        binary_data: cm.binary_data.clone(),
        immutable: cm.immutable,
    })
}

/// Whether the existing `host` ConfigMap differs from `desired` (the output
/// of [`translate`]) in anything the syncer owns: `data`, `binaryData`,
/// labels, annotations. An absent map and an empty one are equal; fields
/// the host server sets are ignored. `immutable` is not compared (it cannot
/// be unset on the host; an immutable host copy is replaced, not updated).
pub fn needs_update(desired: &ConfigMap, host: &ConfigMap) -> bool {
    fn or_empty<T: Clone + Default>(v: &Option<T>) -> T {
        v.clone().unwrap_or_default()
    }
    or_empty(&desired.data) != or_empty(&host.data)
        || or_empty(&desired.binary_data) != or_empty(&host.binary_data)
        || or_empty(&desired.metadata.labels) != or_empty(&host.metadata.labels)
        || or_empty(&desired.metadata.annotations) != or_empty(&host.metadata.annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{ANNOTATION_OBJECT_KIND, LABEL_MANAGED_BY, NamesError};
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use std::collections::BTreeMap;

    fn cm() -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("settings.v1".into()),
                namespace: Some("team".into()),
                uid: Some("u-1".into()),
                resource_version: Some("42".into()),
                finalizers: Some(vec!["x/y".into()]),
                owner_references: Some(vec![OwnerReference::default()]),
                labels: Some(BTreeMap::from([
                    ("app".into(), "web".into()),
                    ("vkube.dev/managed-by".into(), "victim".into()),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            binary_data: Some(BTreeMap::from([("b".into(), ByteString(vec![0, 1]))])),
            immutable: Some(true),
        }
    }

    #[test]
    fn translate_copies_content_and_rebuilds_metadata() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let h = translate(&t, &cm()).unwrap();
        assert_eq!(h.metadata.name.as_deref(), Some("settings.v1-x-team-x-vc"));
        assert_eq!(h.metadata.namespace.as_deref(), Some("host-ns"));
        let labels = h.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], "vc");
        assert_eq!(
            h.metadata.annotations.as_ref().unwrap()[ANNOTATION_OBJECT_KIND],
            KIND
        );
        assert_eq!(
            (h.data, h.binary_data, h.immutable),
            (cm().data, cm().binary_data, Some(true))
        );
        let m = h.metadata;
        assert_eq!(
            (m.uid, m.resource_version, m.finalizers, m.owner_references),
            (None, None, None, None)
        );
    }

    #[test]
    fn translate_requires_identity() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let mut c = cm();
        c.metadata.uid = None;
        assert_eq!(
            translate(&t, &c),
            Err(TranslateError::Identity(NamesError::MissingField("uid")))
        );
    }

    #[test]
    fn needs_update_compares_owned_fields_only() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let desired = translate(&t, &cm()).unwrap();
        let mut host = desired.clone();
        host.metadata.resource_version = Some("9".into());
        host.metadata.uid = Some("host-uid".into());
        assert!(!needs_update(&desired, &host), "server-set fields ignored");
        type Change = Box<dyn Fn(&mut ConfigMap)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "data",
                Box::new(|c| c.data = Some(BTreeMap::from([("k".into(), "v2".into())]))),
            ),
            ("binaryData", Box::new(|c| c.binary_data = None)),
            (
                "labels",
                Box::new(|c| {
                    c.metadata
                        .labels
                        .as_mut()
                        .unwrap()
                        .insert("new".into(), "1".into());
                }),
            ),
            ("annotations", Box::new(|c| c.metadata.annotations = None)),
        ];
        for (what, change) in cases {
            let mut h = desired.clone();
            change(&mut h);
            assert!(needs_update(&desired, &h), "{what}");
        }
        let empty = ConfigMap {
            data: Some(BTreeMap::new()),
            ..Default::default()
        };
        assert!(
            !needs_update(&empty, &ConfigMap::default()),
            "empty == absent"
        );
    }
}
