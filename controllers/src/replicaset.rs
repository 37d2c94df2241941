//! The ReplicaSet controller: keeps `spec.replicas` active pods per
//! ReplicaSet and reports their counts in `status`.
//!
//! Follows k8s.io/kubernetes/pkg/controller/replicaset/replica_set.go:
//! `syncReplicaSet` (manage only when expectations are satisfied and the
//! ReplicaSet is not being deleted), `manageReplicas` (at most
//! [`BURST_REPLICAS`] creations or deletions per sync, creations in slow-start
//! batches, pods named by `generateName: <rs>-` with a controller
//! ownerReference), `getPodsToDelete` (the least useful pods first) and
//! `calculateStatus`. Adoption and release of pods by selector are not done:
//! only pods whose controller ownerReference names the ReplicaSet count.
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.
//! ReplicationControllers are kept by the same code through their
//! ReplicaSet view ([`replica_set_view`], [`run_replication_controllers`]).

use crate::util::{self, controller_ref, is_controlled_by, is_pod_active, is_pod_available};
use crate::{Error, Result};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most pods created or deleted in one sync (replicaset.BurstReplicas).
pub const BURST_REPLICAS: usize = 500;

/// How long unobserved creations/deletions hold back the next sync
/// (controller.ExpectationsTimeout is 5 minutes; a shorter wait bounds the
/// stall when a created pod is deleted before the watch reports it).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

/// What one sync of a ReplicaSet should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pods to create from the template.
    pub create: usize,
    /// Names of the pods to delete, least useful first.
    pub delete: Vec<String>,
    /// The status to report (before this plan's writes, as upstream).
    pub status: ReplicaSetStatus,
    /// Sync again after this long (a ready pod becomes available once
    /// `minReadySeconds` have passed).
    pub requeue_after: Option<Duration>,
}

/// Plans one sync of `rs` given the pods it controls (any state; inactive
/// ones are ignored). `manage` is false while expectations are pending or
/// the ReplicaSet is being deleted: then only the status is computed.
/// `spec.replicas` absent means 1 (the apps/v1 default).
pub fn plan(rs: &ReplicaSet, pods: &[&Pod], manage: bool, now: Timestamp) -> Plan {
    let spec = &rs.spec;
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_pod_active(p)).collect();
    let (mut create, mut delete) = (0, Vec::new());
    if manage && rs.metadata.deletion_timestamp.is_none() {
        if active.len() < want {
            create = (want - active.len()).min(BURST_REPLICAS);
        } else if active.len() > want {
            let n = (active.len() - want).min(BURST_REPLICAS);
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| deletion_rank(p));
            delete = ranked.into_iter().take(n).map(|p| p.name_any()).collect();
        }
    }
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    let mut requeue_after: Option<Duration> = None;
    for p in &active {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            labeled += 1;
        }
        if let Some(since) = util::ready_since(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            } else {
                let at = since + jiff::SignedDuration::from_secs(i64::from(min_ready));
                let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default()
                    + Duration::from_millis(100);
                requeue_after = Some(requeue_after.map_or(wait, |w| w.min(wait)));
            }
        }
    }
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(labeled),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    Plan {
        create,
        delete,
        status,
        requeue_after,
    }
}

/// Sort key putting the pods to delete first (controller.ActivePods ordering
/// as used by getPodsToDelete): unassigned before assigned; Pending, then
/// Unknown, then Running; not ready before ready; ready for less time before
/// longer; more container restarts before fewer; newer before older.
fn deletion_rank(p: &Pod) -> impl Ord {
    use std::cmp::Reverse;
    let assigned = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let ready = util::ready_since(p);
    let restarts: i32 = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        assigned,
        phase,
        ready.is_some(),
        Reverse(ready),
        Reverse(restarts),
        Reverse(created),
    )
}

/// The pod a ReplicaSet creates (controller.GetPodFromTemplate): the
/// template's labels, annotations, finalizers and spec, `generateName:
/// <rs>-`, and a controller ownerReference to the ReplicaSet.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    pod_from_template_of(rs, "apps/v1", "ReplicaSet")
}

/// [`pod_from_template`] for the object of `api_version`/`kind` whose
/// ReplicaSet view `rs` is (a ReplicationController's pods name it as their
/// controller).
pub fn pod_from_template_of(rs: &ReplicaSet, api_version: &str, kind: &str) -> Pod {
    let template = rs.spec.template.clone();
    let tmeta = template
        .as_ref()
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(api_version, kind, &rs.metadata)]),
            ..Default::default()
        },
        spec: template.and_then(|t| t.spec),
        status: None,
    }
}

/// A status as a merge-patch body: counts of zero other than `keep` become
/// `null` so that they are dropped, as upstream's `omitempty` fields are.
pub(crate) fn status_patch(status: impl serde::Serialize, keep: &[&str]) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for (k, x) in m.iter_mut() {
            if x.as_i64() == Some(0) && !keep.contains(&k.as_str()) {
                *x = serde_json::Value::Null;
            }
        }
    }
    serde_json::json!({ "status": v })
}

/// Creations and deletions issued but not yet seen in the pod store
/// (controller.ControllerExpectations, tracked by pod name).
#[derive(Debug)]
struct Expectation {
    uid: String,
    created: Vec<String>,
    deleted: Vec<String>,
    at: Instant,
}

/// State shared by the ReplicaSet reconciler.
struct Ctx {
    client: Client,
    pods: Store<Pod>,
    expectations: Mutex<HashMap<(String, String), Expectation>>,
}

impl Ctx {
    fn satisfied(&self, ns: &str, name: &str, uid: &str) -> bool {
        let mut map = self.expectations.lock().expect("expectations lock");
        let key = (ns.to_string(), name.to_string());
        let Some(e) = map.get(&key) else { return true };
        let seen = |n: &String| self.pods.get(&ObjectRef::new(n).within(ns));
        let done = e.uid != uid
            || e.at.elapsed() > EXPECTATIONS_TIMEOUT
            || (e.created.iter().all(|n| seen(n).is_some())
                && e.deleted
                    .iter()
                    .all(|n| seen(n).is_none_or(|p| p.metadata.deletion_timestamp.is_some())));
        if done {
            map.remove(&key);
        }
        done
    }

    fn expect(&self, ns: &str, name: &str, uid: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        self.expectations.lock().expect("expectations lock").insert(
            (ns.to_string(), name.to_string()),
            Expectation {
                uid: uid.to_string(),
                created,
                deleted,
                at: Instant::now(),
            },
        );
    }
}

/// A kind this controller keeps replicas of: ReplicaSets, and
/// ReplicationControllers through their ReplicaSet view (as upstream runs
/// the ReplicaSet controller on converted ReplicationControllers).
pub trait Replicated:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// `apiVersion` of the kind, for the pods' controller reference.
    const API_VERSION: &'static str;
    /// `kind`, likewise.
    const KIND: &'static str;
    /// Which status counts are written even when zero.
    const KEEP: &'static [&'static str];
    /// The object as a ReplicaSet (metadata, spec and status carried over).
    fn as_replica_set(&self) -> ReplicaSet;
}

impl Replicated for ReplicaSet {
    const API_VERSION: &'static str = "apps/v1";
    const KIND: &'static str = "ReplicaSet";
    const KEEP: &'static [&'static str] = &["replicas"];
    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }
}

impl Replicated for ReplicationController {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "ReplicationController";
    const KEEP: &'static [&'static str] = &["replicas"];
    fn as_replica_set(&self) -> ReplicaSet {
        replica_set_view(self)
    }
}

/// A ReplicationController as the ReplicaSet the controller manages
/// (`Convert_v1_ReplicationController_To_apps_ReplicaSet`): its selector
/// map becomes `matchLabels`; replicas, minReadySeconds, template and the
/// status counts and conditions carry over.
pub fn replica_set_view(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.as_ref().map(|s| ReplicaSetStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.as_ref().map(|cs| {
            cs.iter()
                .map(|c| ReplicaSetCondition {
                    type_: Some(c.type_.clone()),
                    status: Some(c.status.clone()),
                    last_transition_time: c.last_transition_time.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect()
        }),
        terminating_replicas: None,
    });
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: spec.selector,
                match_expressions: None,
            },
            template: spec.template,
        },
        status,
    }
}

async fn reconcile<K: Replicated>(obj: Arc<K>, ctx: Arc<Ctx>) -> Result<Action> {
    let rs = obj.as_replica_set();
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.uid().unwrap_or_default();
    let owned = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&p.metadata, &uid)
    });
    let owned: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
    let manage = ctx.satisfied(&ns, &name, &uid);
    let plan = plan(&rs, &owned, manage, Timestamp::now());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut created = Vec::new();
    let mut first_error = None;
    if plan.create > 0 {
        let template = pod_from_template_of(&rs, K::API_VERSION, K::KIND);
        // Slow start (controller.slowStartBatch): 1, 2, 4, … at a time,
        // stopping at the first batch with a failure.
        let mut remaining = plan.create;
        let mut batch = 1;
        while remaining > 0 {
            let n = batch.min(remaining);
            let pp = PostParams::default();
            let results =
                futures::future::join_all((0..n).map(|_| pods.create(&pp, &template))).await;
            let mut failed = false;
            for r in results {
                match r {
                    Ok(p) => created.push(p.name_any()),
                    Err(e) => {
                        failed = true;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if failed {
                break;
            }
            remaining -= n;
            batch *= 2;
        }
    }
    let mut deleted = Vec::new();
    if !plan.delete.is_empty() {
        let dp = DeleteParams::default();
        let results =
            futures::future::join_all(plan.delete.iter().map(|n| pods.delete(n, &dp))).await;
        for (n, r) in plan.delete.iter().zip(results) {
            match r {
                Ok(_) => deleted.push(n.clone()),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    ctx.expect(&ns, &name, &uid, created, deleted);
    if rs.status.as_ref() != Some(&plan.status) {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        crate::util::keep_first_error(
            &mut first_error,
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_patch(&plan.status, K::KEEP)),
            )
            .await,
        );
    }
    if let Some(e) = first_error {
        return Err(Error::Kube(e));
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None if !manage => Action::requeue(Duration::from_secs(5)),
        None => Action::await_change(),
    })
}

fn error_policy<K: Replicated>(obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(kind = K::KIND, name = %obj.name_any(), error = %err, "replica sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the ReplicaSet controller until the process ends: one watch on
/// ReplicaSets, one on pods (shared by the reconciler's store and the
/// owner trigger).
pub async fn run(client: Client) {
    run_for::<ReplicaSet>(client).await
}

/// Runs the ReplicationController controller (kube-controller-manager's
/// `replicationcontroller`): the ReplicaSet controller over
/// ReplicationControllers.
pub async fn run_replication_controllers(client: Client) {
    run_for::<ReplicationController>(client).await
}

async fn run_for<K: Replicated>(client: Client) {
    let (pods, writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods,
        expectations: Mutex::new(HashMap::new()),
    });
    Controller::new(Api::<K>::all(client), watcher::Config::default())
        .owns_stream(pod_stream)
        .run(
            crate::measured(reconcile::<K>),
            crate::counted(error_policy::<K>),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_replication_controller_is_managed_through_its_replica_set_view() {
        let rc: ReplicationController = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid"},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1,
                       "conditions": [{"type": "ReplicaFailure", "status": "False"}]}
        }))
        .unwrap();
        let rs = replica_set_view(&rc);
        assert_eq!(rs.spec.replicas, Some(2));
        assert_eq!(
            rs.spec.selector.match_labels,
            Some([("app".to_string(), "web".to_string())].into())
        );
        let status = rs.status.clone().unwrap();
        assert_eq!((status.replicas, status.ready_replicas), (1, Some(1)));
        let p = plan(&rs, &[], true, Timestamp::now());
        assert_eq!(p.create, 2);
        let pod = pod_from_template_of(&rs, "v1", "ReplicationController");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.uid.as_str()
            ),
            ("v1", "ReplicationController", "rc-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
    }

    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            },
            status: None,
        }
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(t).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap()
    }

    #[test]
    fn creates_the_missing_pods_up_to_the_burst() {
        let p = plan(&rs(3), &[], true, now());
        assert_eq!(p.create, 3);
        assert_eq!(p.status.replicas, 0);
        assert_eq!(p.status.observed_generation, Some(3));
        assert_eq!(plan(&rs(2000), &[], true, now()).create, BURST_REPLICAS);
    }

    #[test]
    fn pending_expectations_or_deletion_only_compute_status() {
        assert_eq!(plan(&rs(3), &[], false, now()).create, 0);
        let mut deleting = rs(3);
        deleting.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(plan(&deleting, &[], true, now()).create, 0);
    }

    #[test]
    fn deletes_unassigned_then_not_ready_then_newest_ready_first() {
        let a = pod("running-old", Some("n"), "Running", Some(100));
        let b = pod("running-new", Some("n"), "Running", Some(900));
        let c = pod("unassigned", None, "Pending", None);
        let d = pod("not-ready", Some("n"), "Running", None);
        let p = plan(&rs(1), &[&a, &b, &c, &d], true, now());
        assert_eq!(p.delete, ["unassigned", "not-ready", "running-new"]);
    }

    #[test]
    fn status_counts_active_ready_available_and_labeled_pods() {
        let mut r = rs(4);
        r.spec.min_ready_seconds = Some(50);
        let ready_long = pod("a", Some("n"), "Running", Some(100));
        let ready_recent = pod("b", Some("n"), "Running", Some(990));
        let mut unlabeled = pod("c", Some("n"), "Running", None);
        unlabeled.metadata.labels = None;
        let mut done = pod("d", Some("n"), "Succeeded", None);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut terminating = pod("e", Some("n"), "Running", Some(100));
        terminating.metadata.deletion_timestamp = Some(Time(now()));
        let p = plan(
            &r,
            &[&ready_long, &ready_recent, &unlabeled, &done, &terminating],
            true,
            now(),
        );
        assert_eq!(p.status.replicas, 3);
        assert_eq!(p.status.fully_labeled_replicas, Some(2));
        assert_eq!(p.status.ready_replicas, Some(2));
        assert_eq!(p.status.available_replicas, Some(1));
        // b becomes available at 1040, 40 s from now.
        let wait = p.requeue_after.unwrap();
        assert!(wait >= Duration::from_secs(40) && wait < Duration::from_secs(41));
        assert_eq!(
            p.create, 1,
            "the terminating and succeeded pods are replaced"
        );
    }

    #[test]
    fn pods_from_the_template_are_owned_and_generate_named() {
        let p = pod_from_template(&rs(1));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ReplicaSet", "rs-uid", Some(true))
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(p.metadata.labels.unwrap()["app"], "web");
    }

    #[test]
    fn zero_counts_are_dropped_from_status_patches() {
        let v = status_patch(
            ReplicaSetStatus {
                replicas: 0,
                ready_replicas: Some(2),
                available_replicas: Some(0),
                ..Default::default()
            },
            &["replicas"],
        );
        assert_eq!(v["status"]["replicas"], 0);
        assert!(v["status"]["availableReplicas"].is_null());
        assert_eq!(v["status"]["readyReplicas"], 2);
    }
}
