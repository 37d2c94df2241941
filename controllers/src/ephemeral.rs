//! The ephemeral-volume controller: for each generic ephemeral volume of a
//! pod, the PersistentVolumeClaim named `POD-VOLUME` from the volume's
//! `volumeClaimTemplate`, owned by the pod (controller, blockOwnerDeletion),
//! so the garbage collector deletes it with the pod. As kube-controller-
//! manager's `ephemeral-volume` controller (pkg/controller/volume/ephemeral,
//! KEP-1698): a claim of that name that the pod does not own is never
//! adopted or changed (the pod then waits, as the kubelet refuses to start
//! it), and a pod being deleted gets no claims.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;

use crate::{Error, Result};

/// The claim name of ephemeral volume `volume` of pod `pod`.
pub fn claim_name(pod: &str, volume: &str) -> String {
    format!("{pod}-{volume}")
}

/// The claims pod `pod` needs for its ephemeral volumes (pure): one per
/// volume with a `volumeClaimTemplate`, named [`claim_name`], with the
/// template's labels, annotations and spec and the pod as controlling
/// owner. None for a pod being deleted or without a uid.
pub fn claims_for(pod: &Pod) -> Vec<PersistentVolumeClaim> {
    let (Some(uid), None) = (pod.uid(), pod.metadata.deletion_timestamp.as_ref()) else {
        return Vec::new();
    };
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            let t = v.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
            let meta = t.metadata.clone().unwrap_or_default();
            Some(PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&pod.name_any(), &v.name)),
                    namespace: pod.namespace(),
                    labels: meta.labels,
                    annotations: meta.annotations,
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                spec: Some(t.spec.clone()),
                status: None,
            })
        })
        .collect()
}

/// Whether existing claim `claim` is controlled by the pod with `uid`.
pub fn owned_by(claim: &PersistentVolumeClaim, uid: &str) -> bool {
    claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let ctx = Arc::new(client.clone());
    Controller::new(Api::<Pod>::all(client), watcher::Config::default())
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(pod: Arc<Pod>, client: Arc<Client>) -> Result<Action> {
    let wanted = claims_for(&pod);
    if wanted.is_empty() {
        return Ok(Action::await_change());
    }
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced((*client).clone(), &pod.namespace().unwrap_or_default());
    let uid = pod.uid().unwrap_or_default();
    let mut blocked = false;
    for claim in wanted {
        let name = claim.name_any();
        match api.get_opt(&name).await? {
            Some(existing) if !owned_by(&existing, &uid) => {
                tracing::warn!(pod = %pod.name_any(), claim = %name, "PVC is not owned by the pod");
                blocked = true;
            }
            Some(_) => {}
            None => match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    // Claims are not watched: look again until the foreign claim is gone
    // (kube-controller-manager requeues on the claim's deletion).
    Ok(if blocked {
        Action::requeue(Duration::from_secs(5))
    } else {
        Action::await_change()
    })
}

fn error_policy(pod: Arc<Pod>, err: &Error, _ctx: Arc<Client>) -> Action {
    tracing::debug!(pod = %pod.name_any(), error = %err, "ephemeral volume claims failed");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_ephemeral_volume_gets_a_claim_owned_by_the_pod() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "p1"},
            "spec": {"containers": [], "volumes": [
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"labels": {"type": "scratch"}},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}}},
                {"name": "cfg", "configMap": {"name": "c"}},
            ]},
        }))
        .unwrap();
        let claims = claims_for(&pod);
        assert_eq!(claims.len(), 1);
        let c = serde_json::to_value(&claims[0]).unwrap();
        assert_eq!(c["metadata"]["name"], "web-scratch");
        assert_eq!(c["metadata"]["namespace"], "ns");
        assert_eq!(c["metadata"]["labels"]["type"], "scratch");
        assert_eq!(
            c["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "p1",
                "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert!(owned_by(&claims[0], "p1") && !owned_by(&claims[0], "p2"));
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(claims_for(&pod).is_empty(), "a pod being deleted gets none");
    }
}
