//! Pure helpers shared by the controllers: pod readiness and availability,
//! controller ownerReferences, selectors and template hashing.
//!
//! Each follows the named upstream helper (k8s.io/kubernetes/pkg/api/v1/pod,
//! pkg/controller/controller_utils.go, apimachinery's metav1 helpers).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// The label carrying a ReplicaSet's pod-template hash
/// (`apps/v1.DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Whether a pod counts towards its controller's replicas: not being deleted
/// and not `Succeeded`/`Failed` (controller.IsPodActive).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's `Ready` condition last became `True`, or `None` when the
/// pod is not ready (podutil.IsPodReady / GetPodReadyCondition). A ready
/// condition without a transition time counts as ready since the epoch.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| {
        cond.last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    })
}

/// Whether the pod is ready.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`
/// (podutil.IsPodAvailable).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(t) => t + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

/// The ownerReference with `controller: true`, if any (metav1.GetControllerOf).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller ownerReference to an owner (metav1.NewControllerRef):
/// `controller: true`, `blockOwnerDeletion: true`.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `labels` match a metav1.LabelSelector. A selector that does not
/// parse matches nothing, as metav1.LabelSelectorAsSelector errors do in the
/// upstream controllers.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Ok(json) = serde_json::to_value(selector) else {
        return false;
    };
    let Ok(sel) = vkube_core::labels::LabelSelector::from_label_selector_json(&json) else {
        return false;
    };
    let empty = BTreeMap::new();
    sel.matches(labels.unwrap_or(&empty))
}

/// The pod-template hash of a template and the deployment's
/// `status.collisionCount`, rendered as upstream's
/// `controller.ComputeHash`: FNV-1a (32 bit) over a deterministic
/// serialisation of the template (here its JSON; upstream uses a spew dump,
/// so the value differs but is likewise stable), with the collision count
/// appended, printed in decimal and mapped onto the label-safe alphabet of
/// `rand.SafeEncodeString` (no vowels, no confusable digits).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// A template without the `pod-template-hash` label, for comparing a
/// ReplicaSet's template with its Deployment's (EqualIgnoreHash).
pub fn template_without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(md) = t.metadata.as_mut()
        && let Some(labels) = md.labels.as_mut()
    {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            md.labels = None;
        }
    }
    t
}

/// Whether two templates are equal ignoring `pod-template-hash`
/// (deploymentutil.EqualIgnoreHash).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_without_hash(a) == template_without_hash(b)
}

/// Records the first failure of a write that must not stop the other writes
/// of one sync (they are retried with the next one); `404 NotFound` means the
/// object is already gone, which is what a delete or a status write of a
/// vanished object wanted anyway.
pub(crate) fn keep_first_error<T>(first: &mut Option<kube::Error>, result: Result<T, kube::Error>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            first.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod_ready_at(t: Option<Timestamp>) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: t.map(Time),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let now = Timestamp::from_second(1_000).unwrap();
        let p = pod_ready_at(Some(Timestamp::from_second(995).unwrap()));
        assert!(is_pod_available(&p, 0, now));
        assert!(is_pod_available(&p, 5, now));
        assert!(!is_pod_available(&p, 6, now));
        assert!(!is_pod_available(&Pod::default(), 0, now));
    }

    #[test]
    fn hash_is_stable_label_safe_and_sensitive_to_template_and_collisions() {
        let mut t = PodTemplateSpec::default();
        let a = compute_hash(&t, None);
        assert_eq!(a, compute_hash(&t, None));
        assert!(
            a.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert!(!a.is_empty() && a.len() <= 10);
        assert_ne!(a, compute_hash(&t, Some(1)));
        t.metadata = Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        });
        assert_ne!(a, compute_hash(&t, None));
    }

    #[test]
    fn equal_ignore_hash_drops_only_the_hash_label() {
        let with = |labels: &[(&str, &str)]| PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            spec: None,
        };
        assert!(equal_ignore_hash(
            &with(&[("app", "web"), (POD_TEMPLATE_HASH, "abc")]),
            &with(&[("app", "web")])
        ));
        assert!(!equal_ignore_hash(
            &with(&[("app", "x")]),
            &with(&[("app", "web")])
        ));
    }
}
