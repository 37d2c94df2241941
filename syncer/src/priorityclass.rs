//! Pure translation of a virtual PriorityClass into the host
//! PriorityClass its pods use, and of a pod's `priorityClassName`.
//!
//! PriorityClasses are cluster-scoped on the host, so a tenant's class gets
//! a host name unique to the tenant ([`host_class_name`]: `vkube-NAME-x-HOSTNS-x-VC`
//! under the injective [`host_name`] rules, the host namespace standing in
//! for the virtual one). Its value is capped by
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

use std::collections::BTreeMap;

use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use crate::error::TranslateError;
use crate::names::{
    ANNOTATION_OBJECT_KIND, ANNOTATION_OBJECT_NAME, ANNOTATION_OBJECT_UID, LABEL_MANAGED_BY,
    Tenant, host_name,
};

/// The kind recorded in the `vkube.dev/object-kind` annotation.
pub const KIND: &str = "PriorityClass";

/// Annotation on a host class naming the tenant's host namespace (the
/// class is cluster-scoped; with the name and the label it identifies the
/// owning tenant).
pub const ANNOTATION_HOST_NAMESPACE: &str = "vkube.dev/host-namespace";

/// How PriorityClasses are synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityClassOptions {
    /// The highest value a tenant class gets on the host; higher values are
    /// lowered to it.
    pub max_value: i32,
}

/// The host name of the tenant's PriorityClass `name`: `vkube-` and the
/// [`host_name`] of `name` with the host namespace in the namespace's
/// place. The prefix keeps every name clear of the `system-` prefix the
/// host reserves (a tenant's `system-cluster-critical` too) and, being on
/// every name, keeps the mapping injective.
pub fn host_class_name(tenant: &Tenant, name: &str) -> String {
    format!("vkube-{}", host_name(tenant, tenant.host_namespace(), name))
}

/// The host class a tenant pod naming `class` runs with: the tenant class's
/// host name when classes are synced, else none.
pub fn host_priority_class_name(
    tenant: &Tenant,
    class: Option<&str>,
    synced: bool,
) -> Option<String> {
    class
        .filter(|c| synced && !c.is_empty())
        .map(|c| host_class_name(tenant, c))
}

/// The host PriorityClass for virtual class `pc` of `tenant`.
///
/// Errors: [`TranslateError::Identity`] without name or uid.
pub fn translate(
    tenant: &Tenant,
    pc: &PriorityClass,
    opts: &PriorityClassOptions,
) -> Result<PriorityClass, TranslateError> {
    let name = pc
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(crate::names::NamesError::MissingField("name"))?;
    let uid = pc
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or(crate::names::NamesError::MissingField("uid"))?;
    Ok(PriorityClass {
        metadata: ObjectMeta {
            name: Some(host_class_name(tenant, &name)),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED_BY.to_string(),
                tenant.name().to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_OBJECT_NAME.to_string(), name),
                (ANNOTATION_OBJECT_UID.to_string(), uid),
                (ANNOTATION_OBJECT_KIND.to_string(), KIND.to_string()),
                (
                    ANNOTATION_HOST_NAMESPACE.to_string(),
                    tenant.host_namespace().to_string(),
                ),
            ])),
            ..Default::default()
        },
        value: Some(pc.value.unwrap_or(0).min(opts.max_value)),
        global_default: None,
        preemption_policy: pc.preemption_policy.clone(),
        description: pc.description.clone(),
    })
}

/// Whether host class `host` is this tenant's copy of virtual class `name`
/// (any incarnation): the name, the label and the annotations agree.
pub fn is_ours(tenant: &Tenant, host: &PriorityClass, name: &str) -> bool {
    let m = &host.metadata;
    let ann = |k: &str| {
        m.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    m.name.as_deref() == Some(host_class_name(tenant, name).as_str())
        && m.labels
            .as_ref()
            .and_then(|l| l.get(LABEL_MANAGED_BY))
            .map(String::as_str)
            == Some(tenant.name())
        && ann(ANNOTATION_OBJECT_NAME) == Some(name)
        && ann(ANNOTATION_OBJECT_KIND) == Some(KIND)
        && ann(ANNOTATION_HOST_NAMESPACE) == Some(tenant.host_namespace())
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
        assert!(is_ours(&tenant(), &h, "system-cluster-critical"));
        assert!(!is_ours(
            &Tenant::new("vc", "other-ns").unwrap(),
            &h,
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
