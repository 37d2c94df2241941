//! The pod garbage collector (kube-controller-manager's `podgc`): every
//! 20 s it force-deletes the pods nobody else will finish, as
//! pkg/controller/podgc of Kubernetes 1.34 does:
//!
//! * terminated pods (phase neither Pending, Running nor Unknown) beyond
//!   `--terminated-pod-gc-threshold` (12,500), evicted ones first, then the
//!   oldest;
//! * terminating pods on a node that is not Ready and carries the
//!   `node.kubernetes.io/out-of-service` taint;
//! * pods bound to a node that no longer exists: the node must have been
//!   missing for 40 s (a quarantine against watch lag) and a fresh GET must
//!   answer 404; these pods get the `DisruptionTarget` condition
//!   (`DeletionByPodGC`);
//! * terminating pods that were never scheduled.
//!
//! A pod not yet Succeeded or Failed is first marked Failed (its status
//! patched), then deleted with a zero grace period and its uid as
//! precondition, so a pod recreated under the same name is left alone.
//!
//! [`plan`] decides from the cached pods and nodes (pure); [`run`] keeps
//! those caches, the quarantine, and does the writes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use kube_runtime::WatchStreamExt;
use kube_runtime::reflector::{self, Store};
use kube_runtime::watcher;

/// How often the collector runs (upstream's `gcCheckPeriod`).
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);

/// How long a node must be missing before its pods count as orphaned
/// (upstream's `quarantineTime`).
pub const QUARANTINE_TIME: Duration = Duration::from_secs(40);

/// kube-controller-manager's default `--terminated-pod-gc-threshold`.
pub const DEFAULT_TERMINATED_POD_GC_THRESHOLD: usize = 12_500;

/// The taint that marks a node as out of service (non-graceful node
/// shutdown, KEP-2268).
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Why a pod is collected (the `reason` label of upstream's
/// `pod_gc_collector_force_delete_pods_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Terminated, beyond the threshold.
    Terminated,
    /// Terminating on an out-of-service node.
    TerminatingOutOfService,
    /// Bound to a node that was deleted.
    Orphaned,
    /// Terminating and never scheduled.
    TerminatingUnscheduled,
}

/// One pod to force-delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid (the delete's precondition).
    pub uid: String,
    /// Why.
    pub reason: Reason,
    /// Whether its status must first become `Failed` (it is neither
    /// Succeeded nor Failed).
    pub mark_failed: bool,
}

/// Whether `pod` has terminated: its phase is neither Pending, Running nor
/// Unknown (upstream's `isPodTerminated`; an empty phase counts too).
pub fn is_terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), "Pending" | "Running" | "Unknown")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Whether the kubelet evicted `pod` (phase Failed, reason `Evicted`).
fn is_evicted(pod: &Pod) -> bool {
    phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Whether `node` reports `Ready=True`.
pub fn is_node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_out_of_service(node: &Node) -> bool {
    !is_node_ready(node)
        && node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE))
}

/// The names of nodes that pods are bound to but `nodes` lacks (candidates
/// for the quarantine).
pub fn missing_nodes<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    nodes: &HashMap<String, Arc<Node>>,
) -> BTreeSet<String> {
    pods.into_iter()
        .map(node_name)
        .filter(|n| !n.is_empty() && !nodes.contains_key(*n))
        .map(str::to_string)
        .collect()
}

/// The pods to force-delete, in upstream's order (terminated, terminating
/// on out-of-service nodes, orphaned, unscheduled terminating), each pod
/// once: `pods` and `nodes` are the caches, `deleted_nodes` the nodes
/// confirmed gone after their quarantine, `threshold` the terminated pods
/// kept (0 keeps them all).
pub fn plan(
    pods: &[Arc<Pod>],
    nodes: &HashMap<String, Arc<Node>>,
    deleted_nodes: &BTreeSet<String>,
    threshold: usize,
) -> Vec<Deletion> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |pod: &Pod, reason: Reason| {
        let uid = pod.uid().unwrap_or_default();
        if seen.insert(uid.clone()) {
            out.push(Deletion {
                namespace: pod.namespace().unwrap_or_default(),
                name: pod.name_any(),
                uid,
                reason,
                mark_failed: !matches!(phase(pod), "Succeeded" | "Failed"),
            });
        }
    };
    if threshold > 0 {
        let mut terminated: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| is_terminated(p))
            .collect();
        if terminated.len() > threshold {
            // Evicted first, then by creation time, then by name.
            terminated.sort_by(|a, b| {
                is_evicted(b)
                    .cmp(&is_evicted(a))
                    .then_with(|| {
                        let at = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                        let bt = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                        at.cmp(&bt)
                    })
                    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
            });
            let excess = terminated.len() - threshold;
            for pod in &terminated[..excess] {
                add(pod, Reason::Terminated);
            }
        }
    }
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some()
            && nodes
                .get(node_name(pod))
                .is_some_and(|n| is_out_of_service(n))
        {
            add(pod, Reason::TerminatingOutOfService);
        }
    }
    for pod in pods {
        if deleted_nodes.contains(node_name(pod)) {
            add(pod, Reason::Orphaned);
        }
    }
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() && node_name(pod).is_empty() {
            add(pod, Reason::TerminatingUnscheduled);
        }
    }
    out
}

/// The nodes seen missing and since when, so that a node counts as deleted
/// only after [`QUARANTINE_TIME`].
#[derive(Debug, Default)]
pub struct Quarantine {
    since: HashMap<String, Instant>,
}

impl Quarantine {
    /// Records `missing` at `now` (forgetting nodes no longer missing) and
    /// returns those missing for at least [`QUARANTINE_TIME`]; they leave the
    /// quarantine (checked once, then quarantined afresh if still missing).
    pub fn observe(&mut self, missing: &BTreeSet<String>, now: Instant) -> BTreeSet<String> {
        self.since.retain(|n, _| missing.contains(n));
        for n in missing {
            self.since.entry(n.clone()).or_insert(now);
        }
        let due: BTreeSet<String> = self
            .since
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= QUARANTINE_TIME)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            self.since.remove(n);
        }
        due
    }
}

/// The status patch that marks a pod Failed (a strategic merge patch, so
/// the condition merges by type): with `DisruptionTarget` for an orphaned
/// pod, as upstream adds it.
pub fn failed_status_patch(reason: Reason, now: &str) -> serde_json::Value {
    let mut status = serde_json::json!({ "phase": "Failed" });
    if reason == Reason::Orphaned {
        status["conditions"] = serde_json::json!([{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": now,
        }]);
    }
    serde_json::json!({ "status": status })
}

/// What the pod cache keeps of a pod: the fields [`plan`] reads.
fn trim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.labels = None;
    pod.metadata.owner_references = None;
    pod.spec = Some(PodSpec {
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ..Default::default()
    });
    pod.status = pod.status.as_ref().map(|s| PodStatus {
        phase: s.phase.clone(),
        reason: s.reason.clone(),
        ..Default::default()
    });
}

/// What the node cache keeps of a node: its taints and conditions, all
/// [`plan`] reads (images and volumes alone can be kilobytes).
fn trim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    node.metadata.labels = None;
    node.spec = Some(NodeSpec {
        taints: node.spec.as_mut().and_then(|s| s.taints.take()),
        ..Default::default()
    });
    node.status = Some(NodeStatus {
        conditions: node.status.as_mut().and_then(|s| s.conditions.take()),
        ..Default::default()
    });
}

/// Runs the pod garbage collector until the process ends, with the
/// threshold of [`crate::options`].
pub async fn run(client: Client) {
    let threshold = crate::options().terminated_pod_gc_threshold;
    let (pods, pod_writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(pod_writer)
        .for_each(|_| futures::future::ready(()));
    let (nodes, node_writer) = reflector::store();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(trim_node)
        .reflect(node_writer)
        .for_each(|_| futures::future::ready(()));
    let collect = async {
        if pods.wait_until_ready().await.is_err() || nodes.wait_until_ready().await.is_err() {
            return;
        }
        let mut quarantine = Quarantine::default();
        let mut tick = tokio::time::interval(GC_CHECK_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            crate::measured_pass(gc(&client, &pods, &nodes, &mut quarantine, threshold)).await;
        }
    };
    tokio::select! {
        _ = pod_stream => {}
        _ = node_stream => {}
        _ = collect => {}
    }
}

/// One pass: plan from the caches, confirm deleted nodes, then delete.
async fn gc(
    client: &Client,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    quarantine: &mut Quarantine,
    threshold: usize,
) {
    let pods = pods.state();
    let nodes: HashMap<String, Arc<Node>> = nodes
        .state()
        .into_iter()
        .map(|n| (n.name_any(), n))
        .collect();
    let due = quarantine.observe(
        &missing_nodes(pods.iter().map(AsRef::as_ref), &nodes),
        Instant::now(),
    );
    let node_api = Api::<Node>::all(client.clone());
    let mut deleted_nodes = BTreeSet::new();
    for name in due {
        match node_api.get_opt(&name).await {
            Ok(None) => {
                deleted_nodes.insert(name);
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(node = %name, error = %e, "podgc: reading a node failed"),
        }
    }
    for d in plan(&pods, &nodes, &deleted_nodes, threshold) {
        if let Err(e) = force_delete(client, &d).await {
            tracing::warn!(pod = %d.name, namespace = %d.namespace, reason = ?d.reason, error = %e, "podgc: deleting a pod failed");
        } else {
            tracing::info!(pod = %d.name, namespace = %d.namespace, reason = ?d.reason, "podgc force-deleted a pod");
        }
    }
}

/// Marks the pod Failed when it has not ended, then deletes it at once
/// (grace period 0, its uid as precondition). A pod already gone is done.
async fn force_delete(client: &Client, d: &Deletion) -> Result<(), kube::Error> {
    let api = Api::<Pod>::namespaced(client.clone(), &d.namespace);
    if d.mark_failed {
        // A Time serializes as kube's RFC 3339 seconds.
        let now = serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or_default();
        let mut patch = failed_status_patch(d.reason, now.as_str().unwrap_or_default());
        // The uid in the patch is a precondition: a pod recreated under the
        // same name is not marked.
        patch["metadata"] = serde_json::json!({ "uid": d.uid });
        match api
            .patch_status(&d.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(d.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&d.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, phase: &str, node: &str, created: &str) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(created.parse().unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    fn terminating(p: Arc<Pod>) -> Arc<Pod> {
        let mut p = (*p).clone();
        p.metadata.deletion_timestamp = Some(Time("2024-01-01T12:00:00Z".parse().unwrap()));
        Arc::new(p)
    }

    fn node(name: &str, ready: bool, out_of_service: bool) -> (String, Arc<Node>) {
        let n = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: out_of_service.then(|| {
                    vec![Taint {
                        key: TAINT_OUT_OF_SERVICE.into(),
                        effect: "NoExecute".into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        (name.into(), Arc::new(n))
    }

    fn names(ds: &[Deletion]) -> Vec<(&str, Reason)> {
        ds.iter().map(|d| (d.name.as_str(), d.reason)).collect()
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_evicted_then_oldest_first() {
        let mut evicted = (*pod("evicted", "Failed", "n1", "2024-01-03T00:00:00Z")).clone();
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            pod("old", "Succeeded", "n1", "2024-01-01T00:00:00Z"),
            pod("newer", "Failed", "n1", "2024-01-02T00:00:00Z"),
            Arc::new(evicted),
            pod("running", "Running", "n1", "2023-01-01T00:00:00Z"),
            pod("pending", "Pending", "", "2023-01-01T00:00:00Z"),
        ];
        let nodes = HashMap::from([node("n1", true, false)]);
        let none = BTreeSet::new();
        let plan2 = plan(&pods, &nodes, &none, 1);
        assert_eq!(
            names(&plan2),
            [("evicted", Reason::Terminated), ("old", Reason::Terminated)]
        );
        assert!(plan2.iter().all(|d| !d.mark_failed));
        assert!(plan(&pods, &nodes, &none, 3).is_empty());
        // A threshold of 0 turns this collection off, as upstream.
        assert!(plan(&pods, &nodes, &none, 0).is_empty());
    }

    #[test]
    fn terminating_pods_on_out_of_service_nodes_are_marked_failed_and_go() {
        let pods = vec![
            terminating(pod("a", "Running", "down", "2024-01-01T00:00:00Z")),
            terminating(pod(
                "b",
                "Running",
                "tainted-but-ready",
                "2024-01-01T00:00:00Z",
            )),
            terminating(pod("c", "Running", "not-ready", "2024-01-01T00:00:00Z")),
            pod("d", "Running", "down", "2024-01-01T00:00:00Z"),
        ];
        let nodes = HashMap::from([
            node("down", false, true),
            node("tainted-but-ready", true, true),
            node("not-ready", false, false),
        ]);
        let plan = plan(
            &pods,
            &nodes,
            &BTreeSet::new(),
            DEFAULT_TERMINATED_POD_GC_THRESHOLD,
        );
        assert_eq!(names(&plan), [("a", Reason::TerminatingOutOfService)]);
        assert!(plan[0].mark_failed);
        assert_eq!(plan[0].uid, "uid-a");
    }

    #[test]
    fn pods_of_deleted_nodes_and_unscheduled_terminating_pods_go_once_each() {
        let pods = vec![
            pod("orphan", "Running", "gone", "2024-01-01T00:00:00Z"),
            pod("done-orphan", "Succeeded", "gone", "2024-01-01T00:00:00Z"),
            pod(
                "waiting",
                "Running",
                "missing-recently",
                "2024-01-01T00:00:00Z",
            ),
            terminating(pod(
                "never-scheduled",
                "Pending",
                "",
                "2024-01-01T00:00:00Z",
            )),
            pod("pending", "Pending", "", "2024-01-01T00:00:00Z"),
            pod("kept", "Succeeded", "", "2024-01-02T00:00:00Z"),
        ];
        let nodes = HashMap::new();
        let gone = BTreeSet::from(["gone".to_string()]);
        let plan = plan(&pods, &nodes, &gone, 1);
        // done-orphan is also over the threshold: it is collected once.
        assert_eq!(
            names(&plan),
            [
                ("done-orphan", Reason::Terminated),
                ("orphan", Reason::Orphaned),
                ("never-scheduled", Reason::TerminatingUnscheduled),
            ]
        );
        assert_eq!(
            missing_nodes(pods.iter().map(AsRef::as_ref), &nodes),
            BTreeSet::from(["gone".to_string(), "missing-recently".to_string()])
        );
    }

    #[test]
    fn a_node_counts_as_deleted_only_after_the_quarantine() {
        let mut q = Quarantine::default();
        let t0 = Instant::now();
        let missing = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert!(q.observe(&missing, t0).is_empty());
        assert!(q.observe(&missing, t0 + GC_CHECK_PERIOD).is_empty());
        // b came back: it leaves the quarantine and starts afresh later.
        let only_a = BTreeSet::from(["a".to_string()]);
        assert_eq!(
            q.observe(&only_a, t0 + QUARANTINE_TIME),
            BTreeSet::from(["a".to_string()])
        );
        assert!(q.observe(&missing, t0 + QUARANTINE_TIME).is_empty());
        assert_eq!(
            q.observe(&missing, t0 + QUARANTINE_TIME * 2),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn an_orphaned_pod_is_marked_with_the_disruption_target_condition() {
        let p = failed_status_patch(Reason::Orphaned, "2024-01-01T00:00:00Z");
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["conditions"][0]["type"], "DisruptionTarget");
        assert_eq!(p["status"]["conditions"][0]["reason"], "DeletionByPodGC");
        let p = failed_status_patch(Reason::TerminatingUnscheduled, "x");
        assert!(p["status"].get("conditions").is_none());
    }
}
