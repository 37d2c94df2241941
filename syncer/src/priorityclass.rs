//! Pure translation of a virtual PriorityClass into the host
//! PriorityClass its pods use, and of a pod's `priorityClassName`.
//!
//! PriorityClasses are cluster-scoped on the host, so a tenant's class gets
//! a host name unique to the tenant
//! ([`crate::cluster_scoped::host_cluster_name`]: `vkube-NAME-x-HOSTNS-x-VC`). Its value is capped by
//! [`PriorityClassOptions::max_value`] (a tenant must not outrank the
//! host's or other tenants' workloads, nor preempt them), `globalDefault` is
//! never set on the host (the host's default is the host's), and
//! `preemptionPolicy` and `description` are kept. The tenant's built-in
//! `system-*` classes are synced like any other, so its critical pods keep
//! their relative order without the host's system priorities.
//!
//! Host pods name the host class of their virtual class
//! ([`host_priority_class_name`]) and carry no `priority` (the host's
//! Priority admission computes it); with class sync off they name no class
//! (the host's default applies), never a host class by the tenant's
//! choice.

use k8s_openapi::api::scheduling::v1::PriorityClass;

use crate::cluster_scoped::{host_cluster_meta, host_cluster_name};
pub use crate::error::TranslateError;
use crate::names::Tenant;

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "PriorityClass";

/// How PriorityClasses are synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityClassOptions {
    /// The highest value a tenant class gets on the host; higher values are
    /// lowered to it.
    pub max_value: i32,
}

/// The host class a tenant pod naming `class` runs with: the tenant class's
/// host name ([`host_cluster_name`]) when classes are synced, else none.
pub fn host_priority_class_name(
    tenant: &Tenant,
    class: Option<&str>,
    synced: bool,
) -> Option<String> {
    class
        .filter(|c| synced && !c.is_empty())
        .map(|c| host_cluster_name(tenant, c))
}

/// The host PriorityClass for virtual class `pc` of `tenant`
/// ([`host_cluster_meta`] metadata).
///
/// Errors: [`TranslateError::Identity`] without name or uid.
pub fn translate(
    tenant: &Tenant,
    pc: &PriorityClass,
    opts: &PriorityClassOptions,
) -> Result<PriorityClass, TranslateError> {
    Ok(PriorityClass {
        metadata: host_cluster_meta(tenant, KIND, &pc.metadata)?,
        value: Some(pc.value.unwrap_or(0).min(opts.max_value)),
        global_default: None,
        preemption_policy: pc.preemption_policy.clone(),
        description: pc.description.clone(),
    })
}

/// Whether host class `host` must be replaced by `desired`: the value and
/// preemption policy are immutable, so any difference there means delete
/// and create; the description and metadata are updated in place
/// ([`needs_update`]).
pub fn needs_replace(desired: &PriorityClass, host: &PriorityClass) -> bool {
    desired.value != host.value || desired.preemption_policy != host.preemption_policy
}

/// Whether host class `host` differs from `desired` in a mutable field.
pub fn needs_update(desired: &PriorityClass, host: &PriorityClass) -> bool {
    desired.description != host.description
        || desired.metadata.labels != host.metadata.labels
        || desired.metadata.annotations != host.metadata.annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> Tenant {
        Tenant::new("vc", "host-ns").unwrap()
    }

    #[test]
    fn classes_are_renamed_capped_and_never_the_hosts_default() {
        let pc: PriorityClass = serde_json::from_value(json!({
            "metadata": {"name": "system-cluster-critical", "uid": "u1"},
            "value": 2_000_000_000, "globalDefault": true,
            "preemptionPolicy": "PreemptLowerPriority", "description": "critical",
        }))
        .unwrap();
        let opts = PriorityClassOptions { max_value: 1000 };
        let h = translate(&tenant(), &pc, &opts).unwrap();
        assert_eq!(
            h.metadata.name.as_deref(),
            Some("vkube-system-cluster-critical-x-host-ns-x-vc")
        );
        assert_eq!((h.value, h.global_default), (Some(1000), None));
        assert_eq!(h.preemption_policy.as_deref(), Some("PreemptLowerPriority"));
        assert!(crate::cluster_scoped::is_ours(
            &tenant(),
            &h.metadata,
            KIND,
            "system-cluster-critical"
        ));
        let mut low = pc.clone();
        low.value = Some(-5);
        assert_eq!(translate(&tenant(), &low, &opts).unwrap().value, Some(-5));
        assert!(needs_replace(
            &translate(&tenant(), &low, &opts).unwrap(),
            &h
        ));
        assert!(!needs_update(&h, &h));
    }

    #[test]
    fn pods_name_the_tenants_host_class_or_none() {
        assert_eq!(
            host_priority_class_name(&tenant(), Some("high"), true).as_deref(),
            Some("vkube-high-x-host-ns-x-vc")
        );
        assert_eq!(
            host_priority_class_name(&tenant(), Some("high"), false),
            None
        );
        assert_eq!(host_priority_class_name(&tenant(), None, true), None);
    }
}
