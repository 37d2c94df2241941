//! The StatefulSet controller (apps/v1), common path: pods with stable
//! names `<set>-<ordinal>` and their PersistentVolumeClaims, created in
//! order and removed in reverse order, and rolling updates by revision.
//!
//! Follows k8s.io/kubernetes/pkg/controller/statefulset
//! (stateful_set_control.go `updateStatefulSet`, stateful_set_utils.go):
//!
//! * pod `<set>-<i>` for every ordinal `0..replicas`, labelled
//!   `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`
//!   and `controller-revision-hash`, with `hostname` = its name and
//!   `subdomain` = `spec.serviceName`, and a controller ownerReference;
//! * each `volumeClaimTemplates[t]` gives the PVC `<t>-<set>-<i>` (labels:
//!   the template's plus the selector's matchLabels; kept when the pod or
//!   set goes, the default `Retain` policy) mounted as volume `<t>`;
//! * `OrderedReady` (default): one pod at a time, the next only once every
//!   lower ordinal is Running and Ready; scale down from the highest
//!   ordinal, one at a time, while the rest are healthy. `Parallel`: all at
//!   once;
//! * Failed or Succeeded pods are deleted and so recreated;
//! * `RollingUpdate` (default): once the set is settled, the highest ordinal
//!   at or above `partition` not at the update revision is deleted (and
//!   recreated from the new template), one at a time; `OnDelete` waits for
//!   users to delete pods;
//! * revisions: `<set>-<hash>` of the template (a ControllerRevision of that
//!   name holds the template), `currentRevision`/`updateRevision` and the
//!   counts of `status`.
//!
//! Not done: adoption/release by selector, `minReadySeconds`-based
//! availability beyond readiness, `maxUnavailable`, `ordinals.start`,
//! PVC retention policies other than Retain, revision history cleanup.
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::util::{compute_hash, controller_ref, is_controlled_by, is_pod_ready};
use crate::{Error, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Label with a StatefulSet pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label with the revision a pod was made from (apps.ControllerRevisionHashLabelKey).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What one sync of a StatefulSet should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Ordinals whose pods (and missing PVCs) to create.
    pub create: Vec<i32>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// The status to report.
    pub status: StatefulSetStatus,
}

/// The ordinal of `pod` if it is named `<set>-<n>`.
pub fn ordinal(set: &str, pod: &Pod) -> Option<i32> {
    let n = pod
        .metadata
        .name
        .as_deref()?
        .strip_prefix(set)?
        .strip_prefix('-')?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    n.parse().ok().filter(|i: &i32| *i >= 0)
}

/// The revision name of the set's current template: `<set>-<hash>`.
pub fn revision_name(sts: &StatefulSet) -> String {
    let template = sts.spec.template.clone();
    let collisions = sts.status.as_ref().and_then(|s| s.collision_count);
    format!("{}-{}", sts.name_any(), compute_hash(&template, collisions))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

fn healthy(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && phase(p) == "Running" && is_pod_ready(p)
}

/// Plans one sync of `sts` given the pods it controls and the revision of
/// its current template (`update_revision`, see [`revision_name`]).
/// `spec.replicas` absent means 1.
pub fn plan(sts: &StatefulSet, pods: &[&Pod], update_revision: &str) -> Plan {
    let spec = sts.spec.clone();
    let name = sts.name_any();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let old = sts.status.clone().unwrap_or_default();
    let current_revision = old
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.to_string());

    let mut by_ord: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        match ordinal(&name, p) {
            Some(i) if i < replicas => {
                by_ord.insert(i, p);
            }
            Some(i) => condemned.push((i, p)),
            None => condemned.push((i32::MAX, p)),
        }
    }
    condemned.sort_by_key(|(i, _)| std::cmp::Reverse(*i));

    let mut plan = Plan::default();
    let mut blocked = false;
    if sts.metadata.deletion_timestamp.is_none() {
        for i in 0..replicas {
            match by_ord.get(&i) {
                None => {
                    plan.create.push(i);
                    blocked |= monotonic;
                }
                Some(p) if matches!(phase(p), "Failed" | "Succeeded") => {
                    if p.metadata.deletion_timestamp.is_none() {
                        plan.delete.push(p.name_any());
                    }
                    blocked |= monotonic;
                }
                Some(p) if !healthy(p) => blocked |= monotonic,
                Some(_) => {}
            }
            if blocked {
                break;
            }
        }
        // Scale down: highest ordinal first, one at a time when ordered.
        for (_, p) in &condemned {
            if blocked {
                break;
            }
            if p.metadata.deletion_timestamp.is_some() {
                blocked |= monotonic;
                continue;
            }
            plan.delete.push(p.name_any());
            blocked |= monotonic;
        }
        // Rolling update once settled.
        let rolling = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        let settled = plan.create.is_empty()
            && plan.delete.is_empty()
            && condemned.is_empty()
            && by_ord.len() as i32 == replicas
            && by_ord.values().all(|p| healthy(p));
        if rolling && settled {
            let partition = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0);
            if let Some(p) = by_ord
                .range(partition.max(0)..)
                .rev()
                .map(|(_, p)| p)
                .find(|p| revision_of(p) != Some(update_revision))
            {
                plan.delete.push(p.name_any());
            }
        }
    }

    let (mut created, mut ready, mut current, mut updated) = (0, 0, 0, 0);
    for p in pods {
        created += 1;
        if healthy(p) {
            ready += 1;
        }
        match revision_of(p) {
            Some(r) if r == current_revision => current += 1,
            _ => {}
        }
        if revision_of(p) == Some(update_revision) {
            updated += 1;
        }
    }
    let mut status = StatefulSetStatus {
        replicas: created,
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update_revision.to_string()),
        observed_generation: sts.metadata.generation,
        collision_count: Some(old.collision_count.unwrap_or(0)),
        conditions: old.conditions.clone(),
    };
    // completeRollingUpdate: every replica updated and ready.
    if updated >= replicas && ready >= replicas && created == replicas {
        status.current_revision = status.update_revision.clone();
        status.current_replicas = Some(updated);
    }
    plan.status = status;
    plan
}

/// The PVCs of ordinal `i` (getPersistentVolumeClaims): one per
/// volumeClaimTemplate, named `<template>-<set>-<i>`.
pub fn claims_for(sts: &StatefulSet, i: i32) -> Vec<PersistentVolumeClaim> {
    let spec = sts.spec.clone();
    let set = sts.name_any();
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let tname = t.metadata.name.clone().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(format!("{tname}-{set}-{i}")),
                    namespace: sts.metadata.namespace.clone(),
                    labels: (!labels.is_empty()).then_some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec,
                status: None,
            }
        })
        .collect()
}

/// The pod of ordinal `i` at revision `revision` (newStatefulSetPod):
/// see the module docs for its name, labels, hostname and volumes.
pub fn pod_for(sts: &StatefulSet, i: i32, revision: &str) -> Pod {
    let spec = sts.spec.clone();
    let set = sts.name_any();
    let name = format!("{set}-{i}");
    let tmeta = spec.template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), i.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut pspec = spec.template.spec.clone().unwrap_or_default();
    pspec.hostname = Some(name.clone());
    if let Some(svc) = spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        pspec.subdomain = Some(svc.clone());
    }
    for t in spec.volume_claim_templates.iter().flatten() {
        let tname = t.metadata.name.clone().unwrap_or_default();
        let volumes = pspec.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{tname}-{set}-{i}"),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(
                "apps/v1",
                "StatefulSet",
                &sts.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pspec),
        status: None,
    }
}

/// Creates the ControllerRevision `revision` holding `template` for the
/// workload `owner` of `kind` (apps/v1) unless it exists, numbered one past
/// the owner's highest revision (history.NewControllerRevision). Shared
/// with the DaemonSet controller.
pub(crate) async fn ensure_revision(
    client: &Client,
    kind: &str,
    owner: &ObjectMeta,
    labels: Option<BTreeMap<String, String>>,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    revision: &str,
) -> Result<()> {
    let ns = owner.namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    if api.get_opt(revision).await?.is_some() {
        return Ok(());
    }
    let uid = owner.uid.clone().unwrap_or_default();
    let highest = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|r| is_controlled_by(&r.metadata, &uid))
        .filter_map(|r| r.revision)
        .max()
        .unwrap_or(0);
    let cr = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision.into()),
            namespace: Some(ns),
            labels,
            owner_references: Some(vec![controller_ref("apps/v1", kind, owner)]),
            ..Default::default()
        },
        data: RawExtension(serde_json::json!({
            "spec": {"template": serde_json::to_value(template).unwrap_or_default(), "$patch": "replace"}
        })),
        revision: Some(highest + 1),
    };
    match api.create(&PostParams::default(), &cr).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
}

async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let uid = sts.uid().unwrap_or_default();
    let owned = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&p.metadata, &uid)
    });
    let owned: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
    let revision = revision_name(&sts);
    if sts.metadata.deletion_timestamp.is_none() {
        ensure_revision(
            &ctx.client,
            "StatefulSet",
            &sts.metadata,
            sts.spec.selector.match_labels.clone(),
            &sts.spec.template,
            &revision,
        )
        .await?;
    }
    let plan = plan(&sts, &owned, &revision);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams::default();
    let mut first_error: Option<kube::Error> = None;
    for i in &plan.create {
        for claim in claims_for(&sts, *i) {
            match pvcs.create(&pp, &claim).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match pods.create(&pp, &pod_for(&sts, *i, &revision)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for n in &plan.delete {
        crate::util::keep_first_error(
            &mut first_error,
            pods.delete(n, &DeleteParams::default()).await,
        );
    }
    if sts.status.as_ref() != Some(&plan.status) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        crate::util::keep_first_error(
            &mut first_error,
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(crate::replicaset::status_patch(&plan.status, &["replicas"])),
            )
            .await,
        );
    }
    if let Some(e) = first_error {
        return Err(Error::Kube(e));
    }
    Ok(Action::await_change())
}

fn error_policy(sts: Arc<StatefulSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(statefulset = %sts.name_any(), error = %err, "statefulset sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the StatefulSet controller until the process ends: one watch on
/// StatefulSets, one on pods (shared by the store and the owner trigger).
pub async fn run(client: Client) {
    let (pods, writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods,
    });
    Controller::new(Api::<StatefulSet>::all(client), watcher::Config::default())
        .owns_stream(pod_stream)
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PodCondition, PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn sts(replicas: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("sts-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some("nginx".into()),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(Default::default()),
                },
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        ..Default::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec::default()),
                    status: None,
                }]),
                ..Default::default()
            },
            status: None,
        }
    }

    /// Pod `web-<i>` at revision `rev`; `state`: "ready", "running", "failed".
    fn pod(i: i32, rev: &str, state: &str) -> Pod {
        let mut p = pod_for(&sts(1), i, rev);
        p.status = Some(PodStatus {
            phase: Some(
                if state == "failed" {
                    "Failed"
                } else {
                    "Running"
                }
                .into(),
            ),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if state == "ready" { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_and_scales_down_from_the_top() {
        // (replicas, existing pods (ordinal, state)) -> (create, delete)
        type Case<'a> = (i32, &'a [(i32, &'a str)], &'a [i32], &'a [&'a str]);
        let cases: &[Case] = &[
            (3, &[], &[0], &[]),
            (3, &[(0, "running")], &[], &[]),
            (3, &[(0, "ready")], &[1], &[]),
            (3, &[(0, "ready"), (2, "ready")], &[1], &[]),
            (3, &[(0, "ready"), (1, "failed")], &[], &["web-1"]),
            (
                1,
                &[(0, "ready"), (1, "ready"), (2, "ready")],
                &[],
                &["web-2"],
            ),
            (1, &[(0, "running"), (1, "ready")], &[], &[]),
        ];
        for (replicas, existing, create, delete) in cases {
            let pods: Vec<Pod> = existing.iter().map(|(i, s)| pod(*i, "r1", s)).collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let p = plan(&sts(*replicas), &refs, "r1");
            let deleted: Vec<&str> = p.delete.iter().map(String::as_str).collect();
            assert_eq!(
                (p.create.as_slice(), deleted.as_slice()),
                (*create, *delete),
                "{replicas} {existing:?}"
            );
        }
        // Parallel creates every missing ordinal at once.
        let mut par = sts(3);
        par.spec.pod_management_policy = Some("Parallel".into());
        assert_eq!(plan(&par, &[], "r1").create, [0, 1, 2]);
    }

    #[test]
    fn rolling_update_replaces_the_highest_outdated_pod_once_settled() {
        let pods = [
            pod(0, "r1", "ready"),
            pod(1, "r1", "ready"),
            pod(2, "r2", "ready"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut s = sts(3);
        s.status = Some(StatefulSetStatus {
            current_revision: Some("r1".into()),
            ..Default::default()
        });
        let p = plan(&s, &refs, "r2");
        assert_eq!(p.delete, ["web-1"]);
        assert_eq!(
            (
                p.status.replicas,
                p.status.ready_replicas,
                p.status.current_replicas,
                p.status.updated_replicas
            ),
            (3, Some(3), Some(2), Some(1))
        );
        assert_eq!(p.status.current_revision.as_deref(), Some("r1"));
        assert_eq!(p.status.update_revision.as_deref(), Some("r2"));
        let done = [
            pod(0, "r2", "ready"),
            pod(1, "r2", "ready"),
            pod(2, "r2", "ready"),
        ];
        let refs: Vec<&Pod> = done.iter().collect();
        let p = plan(&s, &refs, "r2");
        assert!(p.delete.is_empty());
        assert_eq!(p.status.current_revision.as_deref(), Some("r2"));
    }

    #[test]
    fn pods_and_claims_have_stable_names() {
        let s = sts(2);
        let p = pod_for(&s, 1, "web-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-1");
        assert_eq!(labels[POD_INDEX_LABEL], "1");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        let spec = p.spec.unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("web-1"), Some("nginx"))
        );
        let vol = &spec.volumes.unwrap()[0];
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-web-1"
        );
        let claims = claims_for(&s, 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data-web-1"));
        assert_eq!(claims[0].metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(ordinal("web", &p_named("web-10")), Some(10));
        assert_eq!(ordinal("web", &p_named("web-01")), None);
        assert_eq!(ordinal("web", &p_named("webx-1")), None);
    }

    fn p_named(n: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(n.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}
