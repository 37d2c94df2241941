//! Compact per-pod summaries the Pod controller caches instead of full
//! objects (issue 4: syncer memory per synced pod). Pure projections, no
//! I/O: each takes an object from a watch event and keeps only what the
//! controller reads between reconciles — identity, `resourceVersion` (which
//! changes on every write, so it stands in for a fingerprint of the whole
//! object), the node a host pod runs on, and the few token inputs. The full
//! object a reconcile needs comes from the watch event itself (held until
//! the key settles) or a GET.
//!
//! Strings are `Box<str>` (16 bytes, no spare capacity) rather than
//! `String`; an empty/absent value is `None`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
#[cfg(test)]
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use crate::engine::Key;
use crate::names::{ANNOTATION_OBJECT_UID, VirtualIdentity};

/// Label on token Secrets, so the token cache watches only those.
pub const LABEL_TOKEN: &str = "vkube.dev/service-account-token";

/// Annotation on token Secrets: when the token must be refreshed (RFC 3339).
pub const ANNOTATION_REFRESH_AT: &str = "vkube.dev/refresh-at";

/// Annotation on host pods carrying their virtual service-account token
/// (delivered by a downwardAPI volume, `pod::inject_token_projection`).
pub const ANNOTATION_SA_TOKEN: &str = "vkube.dev/sa-token";

/// Annotation on host pods carrying the virtual cluster's CA (`ca.crt`).
pub const ANNOTATION_SA_CA: &str = "vkube.dev/sa-ca.crt";

/// Annotation on host pods: when their token must be refreshed (RFC 3339).
pub const ANNOTATION_SA_REFRESH_AT: &str = "vkube.dev/sa-token-refresh-at";

fn boxed(s: Option<&str>) -> Option<Box<str>> {
    s.filter(|s| !s.is_empty()).map(Box::from)
}

/// What the Pod controller keeps of a virtual pod between reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualSummary {
    /// `metadata.uid`.
    pub uid: Option<Box<str>>,
    /// `metadata.resourceVersion` (changes on every write to the pod).
    pub resource_version: Option<Box<str>>,
    /// `spec.serviceAccountName` (else `spec.serviceAccount`); `None`
    /// means `default` ([`crate::pod::service_account_of`]).
    pub service_account: Option<Box<str>>,
    /// `spec.automountServiceAccountToken`.
    pub automount: Option<bool>,
    /// [`settled_mark`] of the (virtual, host) resourceVersions at the last
    /// reconcile that ended well, if this summary's version was the one
    /// reconciled, and whether that reconcile looked after a token: the
    /// same pair again means nothing to do but (then) the token's refresh.
    pub settled: Option<(u64, bool)>,
    /// `spec.nodeName`, shared as [`HostSummary::node_name`] is.
    pub node_name: Option<Arc<str>>,
}

impl VirtualSummary {
    /// The summary of virtual pod `pod` (not yet settled); `node` interns
    /// its node name.
    pub fn of(pod: &Pod, node: impl FnOnce(&str) -> Arc<str>) -> Self {
        let sa = Some(crate::pod::service_account_of(pod)).filter(|s| *s != "default");
        Self {
            uid: boxed(pod.metadata.uid.as_deref()),
            resource_version: boxed(pod.metadata.resource_version.as_deref()),
            service_account: boxed(sa),
            automount: pod
                .spec
                .as_ref()
                .and_then(|s| s.automount_service_account_token),
            settled: None,
            node_name: bound_node(pod, node),
        }
    }

    /// The virtual service account the pod runs as (`default` if unset).
    pub fn service_account(&self) -> &str {
        self.service_account.as_deref().unwrap_or("default")
    }
}

/// `pod`'s `spec.nodeName` when set, interned by `node`.
fn bound_node(pod: &Pod, node: impl FnOnce(&str) -> Arc<str>) -> Option<Arc<str>> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
        .map(node)
}

/// What the Pod controller keeps of a host pod between reconciles (keyed by
/// its host name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSummary {
    /// The virtual key its `vkube.dev/object-*` markers name (kind `Pod`).
    pub key: Option<Key>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<Box<str>>,
    /// `spec.nodeName`, shared between the pods of one node.
    pub node_name: Option<Arc<str>>,
    /// When the token in the pod's annotations must be refreshed
    /// ([`ANNOTATION_SA_REFRESH_AT`]), if it carries one.
    pub token_refresh_at: Option<jiff::Timestamp>,
}

impl HostSummary {
    /// The summary of host pod `pod`; `node` turns a node name into a
    /// shared string (interning, so 1,000 pods on a node hold it once).
    pub fn of(pod: &Pod, kind: &str, node: impl FnOnce(&str) -> Arc<str>) -> Self {
        Self {
            key: virtual_key(&pod.metadata, kind),
            resource_version: boxed(pod.metadata.resource_version.as_deref()),
            node_name: bound_node(pod, node),
            token_refresh_at: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_SA_REFRESH_AT))
                .and_then(|t| t.parse().ok()),
        }
    }
}

/// What the Pod controller keeps of a token Secret (keyed by its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    /// The virtual key its markers name (kind `ServiceAccountToken`).
    pub key: Option<Key>,
    /// `metadata.uid`, for a delete precondition.
    pub uid: Option<Box<str>>,
    /// `metadata.resourceVersion`, for a replace.
    pub resource_version: Option<Box<str>>,
    /// The `vkube.dev/object-uid` annotation: the virtual pod it was
    /// issued for.
    pub object_uid: Option<Box<str>>,
    /// The [`ANNOTATION_REFRESH_AT`] annotation, parsed; `None` if absent or
    /// malformed (then the token is refreshed).
    pub refresh_at: Option<jiff::Timestamp>,
}

impl TokenSummary {
    /// The summary of a token Secret from its metadata (the token Secrets
    /// are watched as metadata only), of marker kind `kind`.
    pub fn of(meta: &ObjectMeta, kind: &str) -> Self {
        let a = meta.annotations.as_ref();
        Self {
            key: virtual_key(meta, kind),
            uid: boxed(meta.uid.as_deref()),
            resource_version: boxed(meta.resource_version.as_deref()),
            object_uid: boxed(
                a.and_then(|a| a.get(ANNOTATION_OBJECT_UID))
                    .map(String::as_str),
            ),
            refresh_at: a
                .and_then(|a| a.get(ANNOTATION_REFRESH_AT))
                .and_then(|t| t.parse().ok()),
        }
    }

    /// How long until the token issued for virtual pod `uid` must be
    /// refreshed (at least 1 s); `None` if it was issued for another
    /// incarnation, has no refresh time, or is due at `now`.
    pub fn fresh_for(&self, uid: &str, now: jiff::Timestamp) -> Option<std::time::Duration> {
        if self.object_uid.as_deref() != Some(uid) {
            return None;
        }
        wait_until(self.refresh_at?, now)
    }
}

/// How long from `now` until `at` (at least 1 s), or `None` once `at` has
/// come.
pub fn wait_until(at: jiff::Timestamp, now: jiff::Timestamp) -> Option<std::time::Duration> {
    if at <= now {
        return None;
    }
    let wait = (at - now).total(jiff::Unit::Second).unwrap_or(60.0);
    Some(std::time::Duration::from_secs_f64(wait.max(1.0)))
}

/// Virtual key of host object metadata `h` if it mirrors an object of
/// `kind` (its `vkube.dev/object-*` annotations).
pub fn virtual_key(h: &ObjectMeta, kind: &str) -> Option<Key> {
    VirtualIdentity::from_host(h)
        .filter(|id| id.kind == kind)
        .map(|id| (id.namespace, id.name))
}

/// A pod held between its watch event and the reconcile that settles its
/// key, as its JSON encoding: a few KiB, where the k8s-openapi structs of a
/// running pod take 10+ KiB (`Pod` alone is 2,464 B inline, each
/// `Container` 2,336 B), and while 1,000 pods start they are all held at
/// once. [`FrozenPod::thaw`] decodes it again for the reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenPod {
    name: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    json: Box<[u8]>,
}

impl FrozenPod {
    /// Encodes `pod`; `None` if it cannot be serialized (never for a pod
    /// that was deserialized).
    pub fn freeze(pod: &Pod) -> Option<Self> {
        Some(Self {
            name: boxed(pod.metadata.name.as_deref()),
            resource_version: boxed(pod.metadata.resource_version.as_deref()),
            json: serde_json::to_vec(pod).ok()?.into_boxed_slice(),
        })
    }

    /// Whether this is pod `name` (when given) at `resource_version`.
    pub fn is(&self, name: Option<&str>, resource_version: Option<&str>) -> bool {
        name.is_none_or(|n| self.name.as_deref() == Some(n))
            && self.resource_version.as_deref() == resource_version
    }

    /// The pod again; `None` if the encoding does not decode (never for one
    /// [`FrozenPod::freeze`] made).
    pub fn thaw(&self) -> Option<Pod> {
        serde_json::from_slice(&self.json).ok()
    }
}

/// A 64-bit mark of one (virtual, host) pair of resourceVersions, either
/// side possibly absent: equal marks mean (up to a 2⁻⁶⁴ collision) that
/// neither side was written since.
pub fn settled_mark(virtual_rv: Option<&str>, host_rv: Option<&str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (virtual_rv, host_rv).hash(&mut h);
    h.finish()
}

/// Whether a virtual pod wants a service account token, from its own
/// `automountServiceAccountToken` and (when unset) its service account's:
/// the pod's setting wins ([`crate::pod::wants_token`]'s rule).
pub fn wants_token(pod_automount: Option<bool>, service_account_automount: Option<bool>) -> bool {
    match pod_automount {
        Some(v) => v,
        None => service_account_automount != Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_virtual_summary_keeps_identity_version_and_token_inputs() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "u1", "resourceVersion": "7",
                         "labels": {"a": "b"}},
            "spec": {"serviceAccount": "old", "automountServiceAccountToken": false,
                     "nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"},
        }));
        let s = VirtualSummary::of(&p, |n: &str| Arc::from(n));
        // The node the virtual pod is bound to keeps its virtual Node shown.
        assert_eq!(s.node_name.as_deref(), Some("n1"));
        assert_eq!(s.uid.as_deref(), Some("u1"));
        assert_eq!(s.resource_version.as_deref(), Some("7"));
        assert_eq!(s.service_account(), "old");
        assert_eq!(s.automount, Some(false));
        assert_eq!(s.settled, None);
        assert_eq!(
            s.service_account(),
            crate::pod::service_account_of(&p),
            "same rule as the full-object helper"
        );
        let named = pod(
            json!({"spec": {"serviceAccountName": "", "serviceAccount": "x", "containers": []}}),
        );
        assert_eq!(
            VirtualSummary::of(&named, |n: &str| Arc::from(n)).service_account(),
            crate::pod::service_account_of(&named)
        );
        let bare = pod(json!({"spec": {"containers": []}}));
        assert_eq!(
            VirtualSummary::of(&bare, |n: &str| Arc::from(n)).service_account(),
            "default"
        );
        assert_eq!(
            VirtualSummary::of(&bare, |n: &str| Arc::from(n)).service_account,
            None
        );
    }

    #[test]
    fn a_host_summary_names_its_virtual_key_and_shares_node_names() {
        let p = pod(json!({
            "metadata": {"name": "web-x-team-vc", "resourceVersion": "9", "annotations": {
                "vkube.dev/object-kind": "Pod", "vkube.dev/object-namespace": "team",
                "vkube.dev/object-name": "web", "vkube.dev/object-uid": "u1"}},
            "spec": {"nodeName": "n1", "containers": []},
        }));
        let shared: Arc<str> = Arc::from("n1");
        let s = HostSummary::of(&p, "Pod", |_| Arc::clone(&shared));
        assert_eq!(s.key, Some(("team".into(), "web".into())));
        assert_eq!(s.resource_version.as_deref(), Some("9"));
        assert!(Arc::ptr_eq(s.node_name.as_ref().unwrap(), &shared));
        assert_eq!(HostSummary::of(&p, "Secret", |n| Arc::from(n)).key, None);
        let unscheduled = pod(json!({"metadata": {"name": "x"}, "spec": {"containers": []}}));
        let s = HostSummary::of(&unscheduled, "Pod", |n| Arc::from(n));
        assert_eq!((s.key, s.node_name), (None, None));
    }

    #[test]
    fn a_token_is_fresh_only_for_its_pod_until_its_refresh_time() {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "t", "uid": "s1", "resourceVersion": "3", "annotations": {
                "vkube.dev/object-uid": "u1", "vkube.dev/refresh-at": "2030-01-01T00:00:00Z"}},
        }))
        .unwrap();
        let t = TokenSummary::of(&secret.metadata, "ServiceAccountToken");
        assert_eq!(t.uid.as_deref(), Some("s1"));
        assert_eq!(t.resource_version.as_deref(), Some("3"));
        let before: jiff::Timestamp = "2029-12-31T23:00:00Z".parse().unwrap();
        let after: jiff::Timestamp = "2030-01-01T00:00:01Z".parse().unwrap();
        assert_eq!(
            t.fresh_for("u1", before),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(t.fresh_for("u2", before), None, "another incarnation");
        assert_eq!(t.fresh_for("u1", after), None, "due");
        let mut bad = secret;
        bad.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION_REFRESH_AT.into(), "soon".into());
        assert_eq!(
            TokenSummary::of(&bad.metadata, "ServiceAccountToken").fresh_for("u1", before),
            None
        );
    }

    #[test]
    fn a_frozen_pod_thaws_to_the_same_pod_and_knows_its_version() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "u1", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }));
        let f = FrozenPod::freeze(&p).unwrap();
        assert_eq!(f.thaw(), Some(p));
        assert!(f.is(Some("web"), Some("7")));
        assert!(f.is(None, Some("7")));
        assert!(!f.is(Some("web"), Some("8")));
        assert!(!f.is(Some("other"), Some("7")));
    }

    #[test]
    fn settled_marks_tell_versions_and_sides_apart() {
        assert_eq!(
            settled_mark(Some("1"), Some("2")),
            settled_mark(Some("1"), Some("2"))
        );
        assert_ne!(
            settled_mark(Some("1"), Some("2")),
            settled_mark(Some("1"), Some("3"))
        );
        assert_ne!(settled_mark(Some("1"), None), settled_mark(None, Some("1")));
    }

    #[test]
    fn the_pods_own_automount_setting_wins() {
        assert!(wants_token(None, None));
        assert!(!wants_token(None, Some(false)));
        assert!(wants_token(Some(true), Some(false)));
        assert!(!wants_token(Some(false), Some(true)));
    }
}
