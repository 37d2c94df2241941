//! Pure translation of a virtual Ingress into its host Ingress, and of the
//! host's status back.
//!
//! [`translate`]: [`host_meta`] metadata; `ingressClassName` kept (classes
//! are the host's, shown read-only in the tenant); every backend Service
//! (`defaultBackend`, each rule path) renamed to the Service's host name in
//! the Ingress's own namespace, and every TLS `secretName` to the Secret's
//! host name (those Secrets are then synced: [`Translated::secrets`]); rules,
//! hosts, paths and path types kept. Refused ([`TranslateError::Forbidden`]):
//! a backend `resource` (a typed reference the ingress controller would
//! resolve in the host namespace, i.e. possibly a host object).
//! Annotations are copied except those matching
//! [`IngressOptions::denied_annotations`] (dropped, and reported in
//! [`Translated::dropped_annotations`] for a Warning Event): by default the
//! ingress-nginx snippet annotations (arbitrary controller configuration,
//! CVE-2021-25742) and those naming Secrets or ConfigMaps, which the
//! controller would read from the host namespace (another object than the
//! tenant's) or from any namespace, and traffic mirroring to any address.
//! A Service named in an annotation ([`SERVICE_ANNOTATIONS`]) is renamed to
//! the tenant's host copy. Host names (`rules[].host`) are the tenant's to
//! choose; which tenant may serve which hostname is the host ingress
//! controller's and the platform's policy.
//!
//! Back ([`reflect_status`]): `status.loadBalancer` as is.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass, IngressStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use crate::error::TranslateError;
use crate::names::{LABEL_MANAGED_BY, Tenant, VirtualIdentity, host_meta, host_name};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "Ingress";

/// The annotation patterns denied by default (`*` matches any run of
/// characters).
pub const DEFAULT_DENIED_ANNOTATIONS: &[&str] = &[
    "nginx.ingress.kubernetes.io/*-snippet",
    "nginx.ingress.kubernetes.io/*snippets*",
    "nginx.ingress.kubernetes.io/*secret*",
    "nginx.ingress.kubernetes.io/*configmap*",
    "nginx.ingress.kubernetes.io/auth-proxy-set-headers",
    "nginx.ingress.kubernetes.io/custom-headers",
    "nginx.ingress.kubernetes.io/global-auth-*",
    "nginx.ingress.kubernetes.io/mirror-target",
    "nginx.ingress.kubernetes.io/mirror-host",
];

/// Annotations whose value names a Service of the Ingress's namespace: the
/// name is translated like a backend's (ingress-nginx's custom default
/// backend), so it can only name the tenant's own Service.
pub const SERVICE_ANNOTATIONS: &[&str] = &["nginx.ingress.kubernetes.io/default-backend"];

/// How Ingresses are translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressOptions {
    /// Annotation key patterns that are never copied to the host (`*`
    /// matches any run of characters, whole key matched).
    pub denied_annotations: Vec<String>,
}

impl Default for IngressOptions {
    fn default() -> Self {
        Self {
            denied_annotations: DEFAULT_DENIED_ANNOTATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// The output of [`translate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The host Ingress.
    pub ingress: Ingress,
    /// The virtual Secrets (names, in the Ingress's namespace) its TLS
    /// entries use, deduplicated and sorted.
    pub secrets: Vec<String>,
    /// Annotation keys left out because an option denies them.
    pub dropped_annotations: Vec<String>,
}

/// Whether `key` matches glob `pattern` (`*` = any run of characters).
pub fn glob_matches(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == key;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !key.starts_with(first) || key.len() < first.len() + last.len() || !key.ends_with(last) {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The host Ingress for virtual Ingress `ing` of `tenant`.
///
/// Errors: [`TranslateError::Identity`] without name, namespace or uid;
/// [`TranslateError::Forbidden`] for a backend `resource`.
pub fn translate(
    tenant: &Tenant,
    ing: &Ingress,
    opts: &IngressOptions,
) -> Result<Translated, TranslateError> {
    let id = VirtualIdentity::from_meta(KIND, &ing.metadata)?;
    let mut metadata = host_meta(tenant, KIND, &ing.metadata)?;
    let mut dropped = Vec::new();
    if let Some(a) = metadata.annotations.as_mut() {
        a.retain(|k, _| {
            let deny = opts.denied_annotations.iter().any(|p| glob_matches(p, k));
            if deny {
                dropped.push(k.clone());
            }
            !deny
        });
    }
    if let Some(a) = metadata.annotations.as_mut() {
        for key in SERVICE_ANNOTATIONS {
            if let Some(v) = a.get_mut(*key) {
                *v = host_name(tenant, &id.namespace, v.trim());
            }
        }
    }
    let mut spec = ing.spec.clone().unwrap_or_default();
    let rename = |b: &mut IngressBackend| -> Result<(), TranslateError> {
        if b.resource.is_some() {
            return Err(TranslateError::Forbidden(
                "a backend resource reference is not allowed (it would name an object in the host namespace); use a Service backend".into(),
            ));
        }
        if let Some(s) = b.service.as_mut() {
            s.name = host_name(tenant, &id.namespace, &s.name);
        }
        Ok(())
    };
    if let Some(b) = spec.default_backend.as_mut() {
        rename(b)?;
    }
    for rule in spec.rules.iter_mut().flatten() {
        for path in rule.http.iter_mut().flat_map(|h| h.paths.iter_mut()) {
            rename(&mut path.backend)?;
        }
    }
    let mut secrets = std::collections::BTreeSet::new();
    for tls in spec.tls.iter_mut().flatten() {
        if let Some(name) = tls.secret_name.as_mut().filter(|n| !n.is_empty()) {
            secrets.insert(name.clone());
            *name = host_name(tenant, &id.namespace, name);
        }
    }
    Ok(Translated {
        ingress: Ingress {
            metadata,
            spec: Some(spec),
            status: None,
        },
        secrets: secrets.into_iter().collect(),
        dropped_annotations: dropped,
    })
}

/// Whether host Ingress `host` differs from `desired` in what the syncer
/// owns: spec, labels, annotations (ingress controllers keep their state
/// in status, not in annotations).
pub fn needs_update(desired: &Ingress, host: &Ingress) -> bool {
    fn or_empty(m: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
        m.clone().unwrap_or_default()
    }
    desired.spec != host.spec
        || or_empty(&desired.metadata.labels) != or_empty(&host.metadata.labels)
        || or_empty(&desired.metadata.annotations) != or_empty(&host.metadata.annotations)
}

/// The status the virtual Ingress should have for host Ingress `host`: its
/// `status.loadBalancer` (the addresses the host's controller publishes).
pub fn reflect_status(host: &Ingress) -> IngressStatus {
    IngressStatus {
        load_balancer: host.status.as_ref().and_then(|s| s.load_balancer.clone()),
    }
}

/// The annotation that marks the default IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// The read-only virtual copy of host IngressClass `host` (shown by
/// [`crate::controller::host_class`]): name, `spec.controller`, the
/// default-class annotation, and `spec.parameters` without a namespace
/// (a host namespace means nothing in the tenant); labelled
/// `vkube.dev/managed-by=VC`. So `kubectl get ingressclass` lists what the
/// host serves and DefaultIngressClass admission picks the host's default.
pub fn virtual_ingress_class(tenant: &Tenant, host: &IngressClass) -> IngressClass {
    let annotations: BTreeMap<String, String> = host
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() == DEFAULT_CLASS_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut spec = host.spec.clone().unwrap_or_default();
    if let Some(p) = spec.parameters.as_mut()
        && p.scope.as_deref() == Some("Namespace")
    {
        p.namespace = None;
        p.scope = None;
    }
    IngressClass {
        metadata: ObjectMeta {
            name: host.metadata.name.clone(),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED_BY.to_string(),
                tenant.name().to_string(),
            )])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn ingress(spec: serde_json::Value, annotations: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "u1",
                "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn backends_and_tls_secrets_name_the_host_copies() {
        let spec = json!({
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"},
                    {"hosts": ["b.example.com"], "secretName": "a-tls"}],
            "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}],
        });
        let t = translate(
            &tenant(),
            &ingress(spec, json!({"cert-manager.io/cluster-issuer": "le"})),
            &IngressOptions::default(),
        )
        .unwrap();
        let got = serde_json::to_value(t.ingress.spec.as_ref().unwrap()).unwrap();
        assert_eq!(got["ingressClassName"], "nginx");
        assert_eq!(
            got["defaultBackend"]["service"]["name"],
            "fallback-x-team-x-vc"
        );
        assert_eq!(
            got["rules"][0]["http"]["paths"][0]["backend"]["service"],
            json!({"name": "web-x-team-x-vc", "port": {"name": "http"}})
        );
        assert_eq!(got["tls"][0]["secretName"], "a-tls-x-team-x-vc");
        assert_eq!(got["tls"][0]["hosts"], json!(["a.example.com"]));
        assert_eq!(t.secrets, ["a-tls"]);
        assert_eq!(t.ingress.metadata.name.as_deref(), Some("web-x-team-x-vc"));
        assert_eq!(
            t.ingress.metadata.annotations.unwrap()["cert-manager.io/cluster-issuer"],
            "le"
        );
        assert!(t.dropped_annotations.is_empty());
    }

    #[test]
    fn resource_backends_are_refused_and_denied_annotations_dropped() {
        let resource = json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"resource": {"apiGroup": "", "kind": "Secret", "name": "x"}}}]}}]});
        assert!(matches!(
            translate(
                &tenant(),
                &ingress(resource, json!({})),
                &IngressOptions::default()
            ),
            Err(TranslateError::Forbidden(_))
        ));
        let annotations = json!({
            "nginx.ingress.kubernetes.io/default-backend": "vkube-vc",
            "nginx.ingress.kubernetes.io/fastcgi-params-configmap": "kube-system/cfg",
            "nginx.ingress.kubernetes.io/server-snippet": "location / { root /etc; }",
            "nginx.ingress.kubernetes.io/configuration-snippet": "x",
            "nginx.ingress.kubernetes.io/auth-tls-secret": "kube-system/ca",
            "nginx.ingress.kubernetes.io/auth-secret": "vkube-vc-kubeconfig",
            "nginx.ingress.kubernetes.io/rewrite-target": "/",
        });
        let t = translate(
            &tenant(),
            &ingress(json!({}), annotations),
            &IngressOptions::default(),
        )
        .unwrap();
        let kept = t.ingress.metadata.annotations.unwrap();
        assert_eq!(kept["nginx.ingress.kubernetes.io/rewrite-target"], "/");
        assert_eq!(
            kept["nginx.ingress.kubernetes.io/default-backend"], "vkube-vc-x-team-x-vc",
            "only the tenant's own Service"
        );
        assert_eq!(
            t.dropped_annotations.len(),
            5,
            "{:?}",
            t.dropped_annotations
        );
        assert!(!kept.keys().any(|k| t.dropped_annotations.contains(k)));
        let open = IngressOptions {
            denied_annotations: vec![],
        };
        let t = translate(
            &tenant(),
            &ingress(
                json!({}),
                json!({"nginx.ingress.kubernetes.io/server-snippet": "x"}),
            ),
            &open,
        )
        .unwrap();
        assert!(t.dropped_annotations.is_empty());
    }

    #[test]
    fn host_ingress_classes_are_shown_without_host_namespaces() {
        let host: IngressClass = serde_json::from_value(json!({
            "metadata": {"name": "nginx", "annotations": {
                DEFAULT_CLASS_ANNOTATION: "true", "meta.helm.sh/release-name": "ingress"}},
            "spec": {"controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "Params",
                    "name": "p", "scope": "Namespace", "namespace": "ingress-nginx"}},
        }))
        .unwrap();
        let v = serde_json::to_value(virtual_ingress_class(&tenant(), &host)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx", "labels": {"vkube.dev/managed-by": "vc"},
                    "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                "spec": {"controller": "k8s.io/ingress-nginx",
                    "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}}})
        );
    }

    #[test]
    fn globs_match_whole_keys() {
        for (p, k, want) in [
            ("a/*-snippet", "a/server-snippet", true),
            ("a/*-snippet", "a/server-snippet-x", false),
            ("a/*secret*", "a/auth-tls-secret", true),
            ("a/*secret*", "a/secret", true),
            ("a/x", "a/x", true),
            ("a/x", "a/xy", false),
            ("a/*b*c", "a/bc", true),
            ("a/*b*c", "a/cb", false),
        ] {
            assert_eq!(glob_matches(p, k), want, "{p} {k}");
        }
    }
}
