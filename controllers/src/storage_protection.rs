//! The pvc-protection and pv-protection controllers
//! (pkg/controller/volume/pvcprotection, pvprotection): the API server's
//! StorageObjectInUseProtection admission puts `kubernetes.io/pvc-protection`
//! on every new PersistentVolumeClaim and `kubernetes.io/pv-protection` on
//! every new PersistentVolume; these controllers take the finalizer off a
//! deleted object once nothing uses it, so a claim a pod still mounts, or a
//! volume still bound to a claim, stays (Terminating) until then.
//!
//! * A claim is in use while a pod scheduled to a node ([`pod_uses_claim`])
//!   names it in a `persistentVolumeClaim` volume, or owns it as a generic
//!   ephemeral volume and has not finished.
//! * A volume is in use while its `status.phase` is `Bound` and the claim
//!   its `claimRef` names still exists. Upstream reads only the phase,
//!   which its PV controller turns to `Released` once the claim is gone;
//!   a virtual cluster runs no PV controller (phases come from the host), so
//!   the claim's existence is checked here instead.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ephemeral::claim_name;
use crate::{Error, Result};

/// The finalizer on PersistentVolumeClaims.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer on PersistentVolumes.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Whether `pod` uses claim `claim` (same namespace assumed), as
/// `podUsesPVC`: only scheduled pods count (the kubelet will not start a
/// pod on a claim being deleted); a `persistentVolumeClaim` volume naming
/// it, or a generic ephemeral volume whose claim it is while the pod has
/// not finished.
pub fn pod_uses_claim(pod: &Pod, claim: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.node_name.as_deref().unwrap_or("").is_empty() {
        return false;
    }
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    spec.volumes.iter().flatten().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == claim)
            || (!finished && v.ephemeral.is_some() && claim_name(&pod.name_any(), &v.name) == claim)
    })
}

/// Whether a deleted claim may lose its finalizer: being deleted, holding
/// the finalizer, and used by none of `pods` (its namespace's).
pub fn claim_releasable(pvc: &PersistentVolumeClaim, pods: &[Pod]) -> bool {
    pvc.metadata.deletion_timestamp.is_some()
        && pvc.finalizers().iter().any(|f| f == PVC_PROTECTION)
        && !pods.iter().any(|p| pod_uses_claim(p, &pvc.name_any()))
}

/// Whether a deleted volume may lose its finalizer: being deleted, holding
/// the finalizer, and not `Bound` to a claim that exists (`claim_exists`:
/// whether the claim its `claimRef` names, with that uid, is there).
pub fn volume_releasable(pv: &PersistentVolume, claim_exists: bool) -> bool {
    pv.metadata.deletion_timestamp.is_some()
        && pv.finalizers().iter().any(|f| f == PV_PROTECTION)
        && (pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") || !claim_exists)
}

/// Removes `finalizer` from the object, guarded by a JSON patch `test` of
/// the list read (a concurrent change makes the patch fail and the
/// reconcile run again).
async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let current = obj.meta().finalizers.clone().unwrap_or_default();
    let kept: Vec<&String> = current.iter().filter(|f| *f != finalizer).collect();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        {"op": "replace", "path": "/metadata/finalizers", "value": kept},
    ]))
    .map_err(|e| Error::Invalid(e.to_string()))?;
    api.patch(
        &obj.meta().name.clone().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}

fn error_policy<K>(_: Arc<K>, e: &Error, _: Arc<Client>) -> Action {
    tracing::debug!(error = %e, "storage protection");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the pvc-protection controller until the process ends.
pub async fn run_pvc_protection(client: Client) {
    let controller = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            |pod: Pod| {
                // A pod going away may release the claims it names.
                let ns = pod.namespace().unwrap_or_default();
                let mut refs = Vec::new();
                for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                    if let Some(c) = &v.persistent_volume_claim {
                        refs.push(ObjectRef::new(&c.claim_name).within(&ns));
                    }
                    if v.ephemeral.is_some() {
                        refs.push(
                            ObjectRef::new(&claim_name(&pod.name_any(), &v.name)).within(&ns),
                        );
                    }
                }
                refs
            },
        )
        .run(
            crate::measured(reconcile_claim),
            crate::counted(error_policy),
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile_claim(pvc: Arc<PersistentVolumeClaim>, client: Arc<Client>) -> Result<Action> {
    if pvc.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let ns = pvc.namespace().unwrap_or_default();
    let pods = Api::<Pod>::namespaced((*client).clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    if claim_releasable(&pvc, &pods) {
        let api = Api::<PersistentVolumeClaim>::namespaced((*client).clone(), &ns);
        remove_finalizer(&api, &pvc, PVC_PROTECTION).await?;
    }
    Ok(Action::await_change())
}

/// Runs the pv-protection controller until the process ends.
pub async fn run_pv_protection(client: Client) {
    Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        // A claim going away may release its volume.
        |pvc: PersistentVolumeClaim| {
            pvc.spec
                .and_then(|s| s.volume_name)
                .filter(|v| !v.is_empty())
                .map(|v| ObjectRef::new(&v))
        },
    )
    .run(
        crate::measured(reconcile_volume),
        crate::counted(error_policy),
        Arc::new(client),
    )
    .for_each(|_| futures::future::ready(()))
    .await;
}

async fn reconcile_volume(pv: Arc<PersistentVolume>, client: Arc<Client>) -> Result<Action> {
    if pv.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let claim_exists = match claim_ref {
        Some(r) => {
            let api = Api::<PersistentVolumeClaim>::namespaced(
                (*client).clone(),
                r.namespace.as_deref().unwrap_or_default(),
            );
            let found = api.get_opt(r.name.as_deref().unwrap_or_default()).await?;
            found.is_some_and(|c| r.uid.is_none() || c.metadata.uid == r.uid)
        }
        None => false,
    };
    if volume_releasable(&pv, claim_exists) {
        let api = Api::<PersistentVolume>::all((*client).clone());
        remove_finalizer(&api, &pv, PV_PROTECTION).await?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str, phase: &str, volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"nodeName": node, "containers": [{"name": "c"}], "volumes": volumes},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn claim(deleting: bool) -> PersistentVolumeClaim {
        let mut md = json!({"name": "data", "namespace": "d", "finalizers": [PVC_PROTECTION]});
        if deleting {
            md["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({"metadata": md})).unwrap()
    }

    #[test]
    fn a_claim_is_held_while_a_scheduled_pod_names_it() {
        let named = json!([{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]);
        assert!(pod_uses_claim(&pod("n1", "Running", named.clone()), "data"));
        // A finished pod still naming the claim holds it, as upstream.
        assert!(pod_uses_claim(
            &pod("n1", "Succeeded", named.clone()),
            "data"
        ));
        assert!(!pod_uses_claim(&pod("", "Pending", named.clone()), "data"));
        assert!(!pod_uses_claim(
            &pod("n1", "Running", named.clone()),
            "other"
        ));
        let ephemeral =
            json!([{"name": "data", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]);
        assert!(pod_uses_claim(
            &pod("n1", "Running", ephemeral.clone()),
            "p-data"
        ));
        assert!(!pod_uses_claim(&pod("n1", "Failed", ephemeral), "p-data"));

        let user = pod("n1", "Running", named);
        assert!(!claim_releasable(&claim(false), &[]), "not being deleted");
        assert!(!claim_releasable(&claim(true), &[user]));
        assert!(claim_releasable(&claim(true), &[]));
    }

    #[test]
    fn a_volume_is_held_while_bound() {
        let pv = |phase: &str| -> PersistentVolume {
            serde_json::from_value(json!({
                "metadata": {"name": "v", "finalizers": [PV_PROTECTION],
                             "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "status": {"phase": phase},
            }))
            .unwrap()
        };
        assert!(!volume_releasable(&pv("Bound"), true));
        assert!(volume_releasable(&pv("Bound"), false), "its claim is gone");
        assert!(volume_releasable(&pv("Released"), true));
        assert!(volume_releasable(&pv("Available"), false));
    }
}
