//! Pure translation of a virtual Secret into its host Secret.
//!
//! The host copy gets [`host_meta`] metadata and the content unchanged
//! (`data`, `stringData`, `immutable`), with one security rewrite: the host
//! must never act on a tenant Secret.
//!
//! * `type: kubernetes.io/service-account-token` becomes `Opaque`: the
//!   host's token controller fills such Secrets with a token of the **host**
//!   service account named in the annotation, which would hand the tenant a
//!   host credential. `bootstrap.kubernetes.io/token` becomes `Opaque` too
//!   (the host's bootstrap signer acts on it).
//! * Annotation and label keys the host's controllers act on are dropped
//!   ([`is_host_acted_key`]): `kubernetes.io/service-account.*` (name and
//!   uid of the account to issue a token for) and the legacy-token tracking
//!   labels `kubernetes.io/legacy-token-*`.
//!
//! Every other type (`Opaque`, `kubernetes.io/tls`,
//! `kubernetes.io/dockerconfigjson`, ...) is kept so the host kubelet and
//! ingress controllers can use it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

pub use crate::error::TranslateError;
use crate::names::{Tenant, host_meta};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "Secret";

/// The Secret type the host's token controller fills with a host token.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

/// The Secret type the host's bootstrap signer acts on.
pub const BOOTSTRAP_TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";

/// The type service-account and bootstrap token Secrets get on the host.
pub const OPAQUE_TYPE: &str = "Opaque";

/// Whether a label/annotation key would make a host controller act on the
/// Secret: `kubernetes.io/service-account.*` (e.g.
/// `kubernetes.io/service-account.name`) and `kubernetes.io/legacy-token-*`.
pub fn is_host_acted_key(key: &str) -> bool {
    key.starts_with("kubernetes.io/service-account.")
        || key.starts_with("kubernetes.io/legacy-token-")
}

/// The host Secret for virtual Secret `secret` of `tenant` (see the module
/// docs for the type and key rewrites).
///
/// Errors: [`TranslateError::Identity`] when `secret` lacks name, namespace
/// or uid.
pub fn translate(tenant: &Tenant, secret: &Secret) -> Result<Secret, TranslateError> {
    let mut metadata = host_meta(tenant, KIND, &secret.metadata)?;
    let strip = |m: &mut Option<BTreeMap<String, String>>| {
        if let Some(m) = m {
            m.retain(|k, _| !is_host_acted_key(k));
        }
    };
    strip(&mut metadata.labels);
    strip(&mut metadata.annotations);
    let type_ = match secret.type_.as_deref() {
        Some(SERVICE_ACCOUNT_TOKEN_TYPE | BOOTSTRAP_TOKEN_TYPE) => Some(OPAQUE_TYPE.to_string()),
        other => other.map(str::to_string),
    };
    Ok(Secret {
        metadata,
        data: secret.data.clone(),
        string_data: secret.string_data.clone(),
        immutable: secret.immutable,
        type_,
    })
}

/// Whether the existing `host` Secret differs from `desired` (the output of
/// [`translate`]) in `data` (with `stringData` merged in, as the API server
/// does on write), `type`, labels or annotations. Absent and empty maps are
/// equal; server-set fields are ignored. A differing `type` cannot be
/// updated in place (the field is immutable): the engine replaces the Secret.
pub fn needs_update(desired: &Secret, host: &Secret) -> bool {
    fn data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        out
    }
    let ty = |s: &Secret| s.type_.clone().unwrap_or_else(|| OPAQUE_TYPE.to_string());
    data(desired) != data(host)
        || ty(desired) != ty(host)
        || desired.metadata.labels.clone().unwrap_or_default()
            != host.metadata.labels.clone().unwrap_or_default()
        || desired.metadata.annotations.clone().unwrap_or_default()
            != host.metadata.annotations.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ANNOTATION_OBJECT_NAME;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(type_: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("tok".into()),
                namespace: Some("team".into()),
                uid: Some("u-1".into()),
                annotations: Some(BTreeMap::from([
                    (
                        "kubernetes.io/service-account.name".into(),
                        "default".into(),
                    ),
                    ("kubernetes.io/service-account.uid".into(), "x".into()),
                    ("note".into(), "kept".into()),
                ])),
                labels: Some(BTreeMap::from([
                    (
                        "kubernetes.io/legacy-token-last-used".into(),
                        "2024-01-01".into(),
                    ),
                    ("app".into(), "web".into()),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("k".into(), ByteString(b"v".to_vec()))])),
            type_: Some(type_.into()),
            ..Default::default()
        }
    }

    #[test]
    fn service_account_token_secrets_become_opaque_without_host_acted_keys() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        for ty in [SERVICE_ACCOUNT_TOKEN_TYPE, BOOTSTRAP_TOKEN_TYPE] {
            let h = translate(&t, &secret(ty)).unwrap();
            assert_eq!(h.type_.as_deref(), Some(OPAQUE_TYPE), "{ty}");
            let ann = h.metadata.annotations.unwrap();
            assert!(
                ann.keys()
                    .all(|k| !k.starts_with("kubernetes.io/service-account")),
                "{ann:?}"
            );
            assert_eq!(ann["note"], "kept");
            assert_eq!(ann[ANNOTATION_OBJECT_NAME], "tok");
            let labels = h.metadata.labels.unwrap();
            assert!(!labels.contains_key("kubernetes.io/legacy-token-last-used"));
            assert_eq!(labels["app"], "web");
            assert_eq!(h.data, secret(ty).data);
        }
    }

    #[test]
    fn other_types_are_kept() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        for ty in [
            "Opaque",
            "kubernetes.io/tls",
            "kubernetes.io/dockerconfigjson",
        ] {
            let h = translate(&t, &secret(ty)).unwrap();
            assert_eq!(h.type_.as_deref(), Some(ty));
            assert_eq!(h.metadata.name.as_deref(), Some("tok-x-team-x-vc"));
        }
        let mut untyped = secret("Opaque");
        untyped.type_ = None;
        assert_eq!(translate(&t, &untyped).unwrap().type_, None);
    }

    #[test]
    fn needs_update_table() {
        let t = Tenant::new("vc", "host-ns").unwrap();
        let desired = translate(&t, &secret("Opaque")).unwrap();
        let mut host = desired.clone();
        host.metadata.resource_version = Some("3".into());
        assert!(!needs_update(&desired, &host));
        // stringData on the desired side equals the same bytes in data.
        let mut via_string = desired.clone();
        via_string.data = None;
        via_string.string_data = Some(BTreeMap::from([("k".into(), "v".into())]));
        assert!(!needs_update(&via_string, &host));
        let mut changed = host.clone();
        changed.data = Some(BTreeMap::from([("k".into(), ByteString(b"w".to_vec()))]));
        assert!(needs_update(&desired, &changed));
        let mut retyped = host.clone();
        retyped.type_ = Some("kubernetes.io/tls".into());
        assert!(needs_update(&desired, &retyped));
        let mut relabeled = host;
        relabeled.metadata.labels = None;
        assert!(needs_update(&desired, &relabeled));
    }
}
