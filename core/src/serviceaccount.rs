//! What every namespace holds for service accounts, as pure functions: the
//! `default` ServiceAccount (k8s.io/kubernetes pkg/controller/serviceaccount,
//! `ServiceAccountsController` with `DefaultServiceAccountsControllerOptions`)
//! and the `kube-root-ca.crt` ConfigMap (pkg/controller/certificates/
//! rootcacertpublisher). A controller creates them when missing and, for the
//! ConfigMap, rewrites `data` when it differs; the API server's bootstrap
//! uses the same functions for the built-in namespaces.

use serde_json::{Value, json};

/// Name of the ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Name of the ConfigMap carrying the API server's CA bundle.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Key of the CA bundle in [`ROOT_CA_CONFIG_MAP`].
pub const ROOT_CA_KEY: &str = "ca.crt";

/// The description annotation the root CA publisher sets.
pub const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The `default` ServiceAccount of `namespace` (a bare object: the
/// controller sets nothing else).
pub fn default_service_account(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
    })
}

/// The `kube-root-ca.crt` ConfigMap of `namespace` with `ca_pem` under
/// `ca.crt`.
pub fn root_ca_config_map(namespace: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "namespace": namespace,
            "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
        },
        "data": {ROOT_CA_KEY: ca_pem},
    })
}

/// Whether an existing `kube-root-ca.crt` needs rewriting: its `data` is
/// not exactly `{ca.crt: ca_pem}` (the publisher also restores a ConfigMap
/// whose data was edited).
pub fn root_ca_needs_update(existing: &Value, ca_pem: &str) -> bool {
    existing.get("data") != Some(&json!({ROOT_CA_KEY: ca_pem}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_for_a_namespace() {
        let sa = default_service_account("ns1");
        assert_eq!(
            sa["metadata"],
            json!({"name": "default", "namespace": "ns1"})
        );
        let cm = root_ca_config_map("ns1", "PEM");
        assert_eq!(cm["metadata"]["name"], "kube-root-ca.crt");
        assert_eq!(cm["data"], json!({"ca.crt": "PEM"}));
        assert!(!root_ca_needs_update(&cm, "PEM"));
        assert!(root_ca_needs_update(&cm, "OTHER"));
        let mut edited = cm.clone();
        edited["data"]["extra"] = json!("x");
        assert!(root_ca_needs_update(&edited, "PEM"));
    }
}
