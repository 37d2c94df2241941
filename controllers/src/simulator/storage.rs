//! The simulated node's storage: a stand-in for a host's default
//! StorageClass, its dynamic provisioner and the PersistentVolume
//! controller, as a kind or minikube host has them.
//!
//! * On start, a StorageClass [`NodeSimulator::storage_class`] is registered
//!   (annotated `storageclass.kubernetes.io/is-default-class: "true"`,
//!   provisioner [`PROVISIONER`], `allowVolumeExpansion: true`, binding
//!   `Immediate`), unless one of that name exists.
//! * A claim of that class (or of none, as a claim created before the class
//!   was) that is `Pending` without `spec.volumeName` gets a PersistentVolume
//!   `pvc-<claim uid>` (the external-provisioner's name) of the requested
//!   size and access modes, bound both ways as the PV controller binds: the
//!   PV's `claimRef` and phase `Bound`, the claim's `spec.volumeName`, the
//!   annotations `pv.kubernetes.io/bind-completed` and
//!   `pv.kubernetes.io/bound-by-controller`, and its status (phase `Bound`,
//!   capacity, access modes).
//! * A `Pending` claim naming a volume (`spec.volumeName`) is bound to it
//!   when the volume is free or pre-bound to that claim and the classes
//!   agree ([`static_fits`]), as the PV controller binds pre-provisioned
//!   volumes; so is a claim a volume's claimRef names (before anything is
//!   provisioned for it); any class whose provisioner is [`PROVISIONER`] is provisioned
//!   like the simulator's own.
//! * A bound claim whose `resources.requests.storage` grew past its
//!   capacity is expanded: the PV's and the claim's capacity follow (what
//!   the external-resizer and kubelet do together).
//! * A provisioned PV whose claim is gone (or was recreated) is deleted, as
//!   reclaim policy `Delete` does.
//!
//! The volumes hold nothing (no container runs). Pods whose claims are not
//! Bound are not bound to the node ([`claims_bound`]), as kube-scheduler's
//! VolumeBinding plugin keeps them pending.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use serde_json::json;
use vkube_core::quantity::Quantity;

use super::NodeSimulator;
use crate::{Error, Result};

/// The provisioner name of the simulated StorageClass.
pub const PROVISIONER: &str = "sim.vkube.dev/hostpath";

/// Label on the PersistentVolumes the simulator provisions.
pub const LABEL_PROVISIONED: &str = "sim.vkube.dev/provisioned";

/// The StorageClass registered on start.
pub fn storage_class(name: &str) -> StorageClass {
    serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": name,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    }))
    .expect("a valid StorageClass")
}

/// The names of the claims `pod` mounts: `persistentVolumeClaim` volumes
/// and generic ephemeral volumes (whose claim is `POD-VOLUME`).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let pod_name = pod.name_any();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| format!("{pod_name}-{}", v.name))
            }
        })
        .collect()
}

/// Whether every claim `pod` mounts exists and is `Bound` (live reads).
pub async fn claims_bound(client: &Client, pod: &Pod) -> Result<bool> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(true);
    }
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    for n in names {
        let bound = api
            .get_opt(&n)
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.phase)
            .is_some_and(|p| p == "Bound");
        if !bound {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the simulated provisioner does next for one claim.
#[derive(Debug, PartialEq)]
pub enum ClaimStep {
    /// Nothing to do.
    None,
    /// Provision this PV and bind the claim to it.
    Provision(Box<PersistentVolume>),
    /// Bind the claim to the pre-provisioned volume it names.
    BindStatic(String),
    /// Expand the bound volume to this size.
    Expand(Quantity, String),
}

fn storage_of(
    list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<(Quantity, String)> {
    let q = list?.get("storage")?;
    Some((Quantity::parse(&q.0).ok()?, q.0.clone()))
}

/// Decides the next [`ClaimStep`] for `claim` with class `class` (pure).
pub fn claim_step(class: &str, claim: &PersistentVolumeClaim) -> ClaimStep {
    if claim.metadata.deletion_timestamp.is_some() {
        return ClaimStep::None;
    }
    let Some(spec) = &claim.spec else {
        return ClaimStep::None;
    };
    let requested = storage_of(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some("Bound") {
        let capacity = storage_of(claim.status.as_ref().and_then(|s| s.capacity.as_ref()));
        return match (requested, capacity) {
            (Some((want, text)), Some((have, _))) if want > have => ClaimStep::Expand(want, text),
            _ => ClaimStep::None,
        };
    }
    if let Some(v) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
        return ClaimStep::BindStatic(v.to_string());
    }
    let ours = match spec.storage_class_name.as_deref() {
        None => true,
        Some(c) => c == class,
    };
    if !ours {
        return ClaimStep::None;
    }
    let (Some(uid), Some((_, size))) = (claim.uid(), requested) else {
        return ClaimStep::None;
    };
    let name = format!("pvc-{uid}");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {LABEL_PROVISIONED: "true"},
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.clone().unwrap_or_default(),
            "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
            "storageClassName": class,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": format!("/var/lib/vkube-sim/{name}"), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace(), "name": claim.name_any(), "uid": uid,
            },
        },
    }))
    .expect("a valid PersistentVolume");
    ClaimStep::Provision(Box::new(pv))
}

/// Whether pre-provisioned volume `pv` may be bound to `claim`, which
/// names it, as kube's PV controller checks: the volume is not bound to
/// another claim (its claimRef, if any, names this one), and the classes
/// agree (no class and `""` alike).
pub fn static_fits(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let Some(spec) = pv.spec.as_ref() else {
        return false;
    };
    let ref_ok = spec.claim_ref.as_ref().is_none_or(|r| {
        r.namespace == claim.metadata.namespace
            && r.name == claim.metadata.name
            && r.uid
                .as_ref()
                .is_none_or(|u| Some(u) == claim.metadata.uid.as_ref())
    });
    let class = |c: Option<&String>| c.cloned().unwrap_or_default();
    ref_ok
        && class(spec.storage_class_name.as_ref())
            == class(
                claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.as_ref()),
            )
}

struct Ctx {
    client: Client,
    class: String,
}

/// Registers the StorageClass and runs the provisioner and the reclaimer
/// until the process ends.
pub async fn run(sim: &NodeSimulator, client: Client) -> Result<()> {
    let Some(class) = sim.storage_class.clone() else {
        return Ok(());
    };
    let classes: Api<StorageClass> = Api::all(client.clone());
    match classes
        .create(&PostParams::default(), &storage_class(&class))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let ctx = Arc::new(Ctx { client, class });
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .run(reconcile_claim, error_policy, Arc::clone(&ctx))
    .for_each(|_| futures::future::ready(()));
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(ctx.client.clone()),
        watcher::Config::default().labels(LABEL_PROVISIONED),
    )
    .watches(
        Api::<PersistentVolumeClaim>::all(ctx.client.clone()),
        watcher::Config::default(),
        |c| c.uid().map(|uid| ObjectRef::new(&format!("pvc-{uid}"))),
    )
    .run(reconcile_volume, error_policy, Arc::clone(&ctx))
    .for_each(|_| futures::future::ready(()));
    futures::join!(claims, volumes);
    Ok(())
}

async fn reconcile_claim(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pp = PatchParams::default();
    // Any class whose provisioner is the simulator's is provisioned, as an
    // external provisioner serves every class that names it.
    let mut class = ctx.class.clone();
    if let Some(c) = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        && c != class
        && Api::<StorageClass>::all(ctx.client.clone())
            .get_opt(&c)
            .await?
            .is_some_and(|sc| sc.provisioner == PROVISIONER)
    {
        class = c;
    }
    let mut step = claim_step(&class, &claim);
    // A volume pre-bound to the claim (its claimRef names it) is bound
    // before anything is provisioned, as the PV controller prefers it.
    if matches!(step, ClaimStep::None | ClaimStep::Provision(_))
        && claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound")
        && let Some(pv) = volumes
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| {
                        r.namespace.as_deref() == Some(ns.as_str())
                            && r.name.as_deref() == Some(name.as_str())
                    })
                    && static_fits(&claim, pv)
            })
    {
        step = ClaimStep::BindStatic(pv.name_any());
    }
    match step {
        // A pending claim nothing serves yet: a volume pre-bound to it may
        // come later (the volumes are not watched here).
        ClaimStep::None
            if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") =>
        {
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        ClaimStep::None => {}
        ClaimStep::BindStatic(pv_name) => {
            let Some(pv) = volumes.get_opt(&pv_name).await? else {
                return Ok(Action::requeue(Duration::from_secs(1)));
            };
            if !static_fits(&claim, &pv) {
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            let spec = pv.spec.clone().unwrap_or_default();
            let claim_ref = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": name, "uid": claim.uid()});
            volumes
                .patch(
                    &pv_name,
                    &pp,
                    &Patch::Merge(json!({"spec": {"claimRef": claim_ref}})),
                )
                .await?;
            volumes
                .patch_status(
                    &pv_name,
                    &pp,
                    &Patch::Merge(json!({"status": {"phase": "Bound"}})),
                )
                .await?;
            let annotations = json!({"pv.kubernetes.io/bind-completed": "yes"});
            bind_claim(&claims, &name, &pv_name, &spec, annotations).await?;
        }
        ClaimStep::Provision(pv) => {
            let pv_name = pv.name_any();
            match volumes.create(&PostParams::default(), &pv).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            volumes
                .patch_status(
                    &pv_name,
                    &pp,
                    &Patch::Merge(json!({"status": {"phase": "Bound"}})),
                )
                .await?;
            let spec = pv.spec.clone().unwrap_or_default();
            let annotations = json!({
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.kubernetes.io/storage-provisioner": PROVISIONER,
            });
            bind_claim(&claims, &name, &pv_name, &spec, annotations).await?;
        }
        ClaimStep::Expand(_, size) => {
            if let Some(pv) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) {
                let patch = json!({"spec": {"capacity": {"storage": size}}});
                match volumes.patch(&pv, &pp, &Patch::Merge(patch)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let status = json!({"status": {"capacity": {"storage": size}}});
            claims
                .patch_status(&name, &pp, &Patch::Merge(status))
                .await?;
        }
    }
    Ok(Action::await_change())
}

/// Binds claim `name` to volume `pv_name` (of spec `spec`) as the PV
/// controller does: `spec.volumeName`, the binder's `annotations`, then the
/// status (`Bound`, the volume's access modes and capacity).
async fn bind_claim(
    claims: &Api<PersistentVolumeClaim>,
    name: &str,
    pv_name: &str,
    spec: &k8s_openapi::api::core::v1::PersistentVolumeSpec,
    annotations: serde_json::Value,
) -> Result<()> {
    let pp = PatchParams::default();
    let claim = json!({"metadata": {"annotations": annotations}, "spec": {"volumeName": pv_name}});
    claims.patch(name, &pp, &Patch::Merge(claim)).await?;
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": spec.access_modes,
        "capacity": spec.capacity,
    }});
    claims
        .patch_status(name, &pp, &Patch::Merge(status))
        .await?;
    Ok(())
}

/// Deletes a provisioned PV whose claim (by uid) is gone.
async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(claim_ref) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(Action::await_change());
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        ctx.client.clone(),
        claim_ref.namespace.as_deref().unwrap_or_default(),
    );
    let name = claim_ref.name.clone().unwrap_or_default();
    let live = claims.get_opt(&name).await?;
    if live.is_some_and(|c| c.uid() == claim_ref.uid) {
        return Ok(Action::await_change());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pv.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .delete(&pv.name_any(), &dp)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

fn error_policy<K: ResourceExt>(obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(object = %obj.name_any(), error = %err, "simulated storage: step failed");
    Action::requeue(Duration::from_secs(1))
}

/// The JSON of `pv`'s spec, for tests.
#[cfg(test)]
fn spec_json(pv: &PersistentVolume) -> serde_json::Value {
    serde_json::to_value(pv.spec.as_ref().unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(class: Option<&str>, request: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data-db-0", "namespace": "ns", "uid": "u1"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": {"requests": {"storage": request}},
            },
            "status": {"phase": "Pending"},
        }))
        .unwrap()
    }

    #[test]
    fn a_pending_claim_of_the_class_gets_a_volume_bound_to_it() {
        let ClaimStep::Provision(pv) = claim_step("standard", &claim(Some("standard"), "1Gi"))
        else {
            panic!("expected a provision");
        };
        assert_eq!(pv.name_any(), "pvc-u1");
        let spec = spec_json(&pv);
        assert_eq!(spec["capacity"]["storage"], "1Gi");
        assert_eq!(spec["claimRef"]["name"], "data-db-0");
        assert_eq!(spec["claimRef"]["uid"], "u1");
        assert_eq!(spec["storageClassName"], "standard");
        assert!(matches!(
            claim_step("standard", &claim(None, "1Gi")),
            ClaimStep::Provision(_)
        ));
        assert_eq!(
            claim_step("standard", &claim(Some("fast"), "1Gi")),
            ClaimStep::None,
            "another class is another provisioner's"
        );
    }

    #[test]
    fn a_claim_naming_a_volume_binds_only_a_free_or_pre_bound_one_of_its_class() {
        let mut c = claim(Some("manual"), "1Gi");
        c.spec.as_mut().unwrap().volume_name = Some("share".into());
        assert_eq!(
            claim_step("standard", &c),
            ClaimStep::BindStatic("share".into())
        );
        let pv = |claim_ref: serde_json::Value, class: &str| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "share"},
                "spec": {"storageClassName": class, "claimRef": claim_ref,
                    "nfs": {"server": "s", "path": "/"}}}))
            .unwrap()
        };
        assert!(static_fits(&c, &pv(json!(null), "manual")));
        assert!(static_fits(
            &c,
            &pv(json!({"namespace": "ns", "name": "data-db-0"}), "manual")
        ));
        assert!(!static_fits(
            &c,
            &pv(json!({"namespace": "ns", "name": "other"}), "manual")
        ));
        assert!(!static_fits(
            &c,
            &pv(
                json!({"namespace": "ns", "name": "data-db-0", "uid": "old"}),
                "manual"
            )
        ));
        assert!(
            !static_fits(&c, &pv(json!(null), "fast")),
            "classes must agree"
        );
    }

    #[test]
    fn a_bound_claim_asking_for_more_is_expanded() {
        let mut c = claim(Some("standard"), "2Gi");
        c.status =
            serde_json::from_value(json!({"phase": "Bound", "capacity": {"storage": "1Gi"}}))
                .unwrap();
        assert_eq!(
            claim_step("standard", &c),
            ClaimStep::Expand(Quantity::parse("2Gi").unwrap(), "2Gi".into())
        );
        c.spec
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .requests = Some(
            [(
                "storage".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1024Mi".into()),
            )]
            .into(),
        );
        assert_eq!(claim_step("standard", &c), ClaimStep::None, "same size");
    }

    #[test]
    fn pods_mount_claims_and_ephemeral_volumes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [], "volumes": [
                {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "e", "emptyDir": {}},
            ]},
        }))
        .unwrap();
        assert_eq!(claim_names(&pod), ["data", "web-scratch"]);
    }
}
