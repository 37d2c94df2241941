//! Pure translation of a virtual PodDisruptionBudget into its host budget,
//! so the host's node drains (and the tenant's evictions, forwarded to the
//! host) respect it, and of an eviction for the host.
//!
//! [`translate`]: [`host_meta`] metadata; the selector becomes the host
//! selector of this tenant's pods in the budget's namespace
//! ([`crate::networkpolicy::pod_selector`]: the tenant's terms plus
//! `vkube.dev/managed-by=VC` and `vkube.dev/namespace=NS`), so a budget
//! never covers another tenant's or the host's pods; `minAvailable`,
//! `maxUnavailable` and `unhealthyPodEvictionPolicy` kept. Refused
//! ([`TranslateError::Forbidden`]): a nil or empty selector (it selects no
//! pod for evictions; translated, it would start covering all of the
//! namespace's pods) and terms on reserved `vkube.dev` keys.
//!
//! The status a tenant sees is its own disruption controller's, computed
//! from the virtual pods (which mirror the host pods' readiness); the host
//! budget decides the host's evictions.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use serde_json::Value;

pub use crate::error::TranslateError;
use crate::names::{Tenant, VirtualIdentity, host_meta};
use crate::networkpolicy::{check_keys, pod_selector};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "PodDisruptionBudget";

/// The host budget for virtual budget `pdb` of `tenant`.
///
/// Errors: [`TranslateError::Identity`] without name, namespace or uid;
/// [`TranslateError::Forbidden`] as listed in the module docs.
pub fn translate(
    tenant: &Tenant,
    pdb: &PodDisruptionBudget,
) -> Result<PodDisruptionBudget, TranslateError> {
    let id = VirtualIdentity::from_meta(KIND, &pdb.metadata)?;
    let metadata = host_meta(tenant, KIND, &pdb.metadata)?;
    let spec = pdb.spec.clone().unwrap_or_default();
    let selector = spec.selector.as_ref().filter(|s| {
        !(s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty))
    });
    let Some(selector) = selector else {
        return Err(TranslateError::Forbidden(
            "spec.selector is empty: the budget protects no pod".into(),
        ));
    };
    check_keys(selector, "spec.selector")?;
    let own = std::collections::BTreeSet::from([id.namespace.clone()]);
    Ok(PodDisruptionBudget {
        metadata,
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(pod_selector(tenant, Some(selector), Some(&own))),
            min_available: spec.min_available,
            max_unavailable: spec.max_unavailable,
            unhealthy_pod_eviction_policy: spec.unhealthy_pod_eviction_policy,
        }),
        status: None,
    })
}

/// Whether host budget `host` differs from `desired` in what the syncer
/// owns: spec, labels, annotations.
pub fn needs_update(desired: &PodDisruptionBudget, host: &PodDisruptionBudget) -> bool {
    fn or_empty(m: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
        m.clone().unwrap_or_default()
    }
    desired.spec != host.spec
        || or_empty(&desired.metadata.labels) != or_empty(&host.metadata.labels)
        || or_empty(&desired.metadata.annotations) != or_empty(&host.metadata.annotations)
}

/// The `deleteOptions` of the host eviction for the tenant's `eviction`:
/// its grace period, propagation policy and dry run kept, its
/// preconditions (about the virtual pod) replaced by the host pod's uid,
/// so a host pod recreated meanwhile is never evicted in its place.
pub fn host_delete_options(eviction: &Value, host_uid: &str) -> Value {
    let mut opts = eviction
        .get("deleteOptions")
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let o = opts.as_object_mut().expect("an object");
    for k in ["apiVersion", "kind"] {
        o.remove(k);
    }
    o.insert("preconditions".into(), serde_json::json!({"uid": host_uid}));
    opts
}

/// The budget a host refusal's cause names (`The disruption budget NAME
/// ...`), for translating it back to the tenant's name.
pub fn budget_named(message: &str) -> Option<&str> {
    message
        .strip_prefix("The disruption budget ")?
        .split_whitespace()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    fn pdb(spec: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_selector_covers_this_tenants_pods_of_the_namespace_only() {
        let h = translate(
            &tenant(),
            &pdb(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}})),
        )
        .unwrap();
        assert_eq!(h.metadata.name.as_deref(), Some("web-x-team-x-vc"));
        assert_eq!(
            serde_json::to_value(h.spec.unwrap()).unwrap(),
            json!({"minAvailable": 2, "selector": {"matchLabels": {
                "app": "web", "vkube.dev/managed-by": "vc", "vkube.dev/namespace": "team"}}})
        );
        for bad in [
            json!({"minAvailable": 1}),
            json!({"minAvailable": 1, "selector": {}}),
            json!({"maxUnavailable": 0, "selector": {"matchLabels": {"vkube.dev/namespace": "x"}}}),
        ] {
            assert!(
                matches!(
                    translate(&tenant(), &pdb(bad.clone())),
                    Err(TranslateError::Forbidden(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_evictions_guard_the_host_pods_uid() {
        let ev = json!({"deleteOptions": {"gracePeriodSeconds": 5,
            "preconditions": {"uid": "virtual", "resourceVersion": "9"}}});
        assert_eq!(
            host_delete_options(&ev, "host-uid"),
            json!({"gracePeriodSeconds": 5, "preconditions": {"uid": "host-uid"}})
        );
        assert_eq!(
            host_delete_options(&json!({}), "h"),
            json!({"preconditions": {"uid": "h"}})
        );
        assert_eq!(
            budget_named(
                "The disruption budget web-x-team-x-vc needs 2 healthy pods and has 2 currently"
            ),
            Some("web-x-team-x-vc")
        );
    }
}
