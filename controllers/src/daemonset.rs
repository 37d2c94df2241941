//! The DaemonSet controller (apps/v1), common path: one pod per eligible
//! node, status counts, and rolling updates by template hash.
//!
//! Follows k8s.io/kubernetes/pkg/controller/daemon (daemon_controller.go
//! `manage`/`podsShouldBeOnNode`/`updateDaemonSetStatus`, update.go
//! `rollingUpdate`, util `AddOrUpdateDaemonPodTolerations`):
//!
//! * a node is eligible when the template's `nodeSelector` matches its
//!   labels and every `NoSchedule`/`NoExecute` taint is tolerated by the
//!   template's tolerations plus the daemon tolerations (`not-ready`,
//!   `unreachable`, `disk-pressure`, `memory-pressure`, `pid-pressure`,
//!   `unschedulable`, and `network-unavailable` with hostNetwork) — so
//!   cordoned nodes keep their daemon pods, as upstream;
//! * an eligible node without an active pod gets one: `generateName:
//!   <ds>-`, the template plus labels `controller-revision-hash` and
//!   `pod-template-generation`, the daemon tolerations, `spec.nodeName`
//!   set to the node (upstream binds through a node-affinity term and the
//!   scheduler; setting nodeName is the documented simplification), and a
//!   controller ownerReference;
//! * failed pods are deleted (and replaced next sync); extra pods on a node
//!   are deleted keeping the oldest; pods on nodes that are not eligible (or
//!   gone) are deleted;
//! * `RollingUpdate` (default, `maxUnavailable` default 1, no surge):
//!   outdated pods are deleted while fewer than `maxUnavailable` desired
//!   nodes lack an available pod; `OnDelete` waits for users;
//! * status: desired/current/misscheduled/ready/updated/available/
//!   unavailable numbers and observedGeneration.
//!
//! Not done: `requiredDuringScheduling` node affinity evaluation,
//! `maxSurge`, revision history cleanup, adoption by selector.
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::util::{self, compute_hash, controller_ref, is_controlled_by, is_pod_available};
use crate::{Error, Result};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Label with the DaemonSet template generation a pod was made from
/// (`pod-template-generation`, deprecated upstream but still set).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// What one sync of a DaemonSet should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Nodes to create a daemon pod on.
    pub create_on: Vec<String>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// The status to report.
    pub status: DaemonSetStatus,
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// The tolerations every daemon pod gets (AddOrUpdateDaemonPodTolerations).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let mut v = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    v
}

fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == effect);
    let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
    let exists = t.operator.as_deref() == Some("Exists");
    let value_ok = exists || t.value.as_deref().unwrap_or("") == value;
    // An empty key with Exists tolerates everything.
    effect_ok && key_ok && value_ok && (t.key.as_deref().is_some_and(|k| !k.is_empty()) || exists)
}

/// Whether a daemon pod of `ds` should run on `node` (nodeShouldRunDaemonPod,
/// without node affinity): nodeSelector and taints, see the module docs.
pub fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let pspec = ds.spec.template.spec.clone().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(sel) = &pspec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let mut tols = pspec.tolerations.clone().unwrap_or_default();
    tols.extend(daemon_tolerations(pspec.host_network == Some(true)));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| {
            tols.iter()
                .any(|tol| tolerates(tol, &t.key, t.value.as_deref().unwrap_or(""), &t.effect))
        })
}

fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn hash_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(crate::statefulset::REVISION_LABEL)
        .map(String::as_str)
}

/// Plans one sync of `ds` given every node and the pods it controls, with
/// `hash` the current template's hash.
pub fn plan(ds: &DaemonSet, nodes: &[&Node], pods: &[&Pod], hash: &str, now: Timestamp) -> Plan {
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        by_node.entry(node_of(p)).or_default().push(p);
    }
    let eligible: BTreeMap<&str, bool> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_deref().unwrap_or(""), should_run(ds, n)))
        .collect();
    let mut plan = Plan::default();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut updated, mut available) = (0, 0);
    let mut outdated: Vec<&Pod> = Vec::new();
    let deleting = ds.metadata.deletion_timestamp.is_some();
    for (node, run) in &eligible {
        let on_node = by_node.remove(node).unwrap_or_default();
        let mut active: Vec<&Pod> = Vec::new();
        for p in on_node {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if *run && phase == Some("Failed") {
                plan.delete.push(p.name_any());
                continue;
            }
            active.push(p);
        }
        if *run {
            status.desired_number_scheduled += 1;
            if active.is_empty() {
                plan.create_on.push(node.to_string());
                continue;
            }
            status.current_number_scheduled += 1;
            active.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
            for extra in &active[1..] {
                plan.delete.push(extra.name_any());
            }
            let p = active[0];
            if util::is_pod_ready(p) {
                status.number_ready += 1;
            }
            if is_pod_available(p, min_ready, now) {
                available += 1;
            }
            if hash_of(p) == Some(hash) {
                updated += 1;
            } else {
                outdated.push(p);
            }
        } else if !active.is_empty() {
            status.number_misscheduled += 1;
            plan.delete.extend(active.iter().map(|p| p.name_any()));
        }
    }
    // Pods on nodes that no longer exist.
    for p in by_node.into_values().flatten() {
        if p.metadata.deletion_timestamp.is_none() {
            plan.delete.push(p.name_any());
        }
    }
    let desired = status.desired_number_scheduled;
    status.updated_number_scheduled = Some(updated);
    status.number_available = Some(available);
    status.number_unavailable = Some(desired - available);
    let rolling = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling && !deleting {
        let max_unavailable = ds
            .spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .map_or(1, |v| match v {
                IntOrString::Int(n) => *n,
                IntOrString::String(s) => s
                    .strip_suffix('%')
                    .and_then(|n| n.parse::<i64>().ok())
                    .map_or(1, |pct| ((pct * i64::from(desired) + 99) / 100) as i32),
            })
            .max(1);
        // Unavailable = desired nodes without an available pod (missing
        // ones included); outdated unavailable pods go first, for free.
        let mut budget = max_unavailable - (desired - available);
        outdated.sort_by_key(|p| is_pod_available(p, min_ready, now));
        for p in outdated {
            if !is_pod_available(p, min_ready, now) {
                plan.delete.push(p.name_any());
            } else if budget > 0 {
                plan.delete.push(p.name_any());
                budget -= 1;
            }
        }
    }
    if deleting {
        plan.create_on.clear();
    }
    plan.status = status;
    plan
}

/// The template hash of the DaemonSet (label value of
/// `controller-revision-hash`; its ControllerRevision is `<ds>-<hash>`).
pub fn template_hash(ds: &DaemonSet) -> String {
    compute_hash(
        &ds.spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    )
}

/// The daemon pod for `node` (NewPod + AddOrUpdateDaemonPodTolerations).
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(crate::statefulset::REVISION_LABEL.into(), hash.into());
    labels.insert(
        TEMPLATE_GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node.into());
    let tols = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations(spec.host_network == Some(true)) {
        if !tols.iter().any(|x| x.key == t.key && x.effect == t.effect) {
            tols.push(t);
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref("apps/v1", "DaemonSet", &ds.metadata)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().unwrap_or_default();
    let owned = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&p.metadata, &uid)
    });
    let owned: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
    let nodes = ctx.nodes.state();
    let nodes: Vec<&Node> = nodes.iter().map(Arc::as_ref).collect();
    let hash = template_hash(&ds);
    if ds.metadata.deletion_timestamp.is_none() {
        crate::statefulset::ensure_revision(
            &ctx.client,
            "DaemonSet",
            &ds.metadata,
            ds.spec.selector.match_labels.clone(),
            &ds.spec.template,
            &format!("{name}-{hash}"),
        )
        .await?;
    }
    let plan = plan(&ds, &nodes, &owned, &hash, Timestamp::now());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut first_error: Option<kube::Error> = None;
    for node in &plan.create_on {
        if let Err(e) = pods
            .create(&PostParams::default(), &pod_for(&ds, node, &hash))
            .await
        {
            first_error.get_or_insert(e);
        }
    }
    for n in &plan.delete {
        crate::util::keep_first_error(
            &mut first_error,
            pods.delete(n, &DeleteParams::default()).await,
        );
    }
    if ds.status.as_ref() != Some(&plan.status) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        let keep = [
            "currentNumberScheduled",
            "desiredNumberScheduled",
            "numberMisscheduled",
            "numberReady",
        ];
        crate::util::keep_first_error(
            &mut first_error,
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(crate::replicaset::status_patch(&plan.status, &keep)),
            )
            .await,
        );
    }
    if let Some(e) = first_error {
        return Err(Error::Kube(e));
    }
    // Pods created above show up through the pod watch; minReadySeconds
    // availability needs a later look.
    Ok(match ds.spec.min_ready_seconds {
        Some(s) if s > 0 => Action::requeue(Duration::from_secs(s as u64)),
        _ => Action::await_change(),
    })
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(daemonset = %ds.name_any(), error = %err, "daemonset sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the DaemonSet controller until the process ends: watches on
/// DaemonSets, their pods, and nodes (a node change resyncs every
/// DaemonSet).
pub async fn run(client: Client) {
    let (pods, pod_writer) = reflector::store();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();
    let (nodes, node_writer) = reflector::store();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods,
        nodes,
    });
    let controller = Controller::new(Api::<DaemonSet>::all(client), watcher::Config::default());
    let sets = controller.store();
    controller
        .owns_stream(pod_stream)
        .watches_stream(node_stream, move |_node: Node| {
            sets.state()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        })
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
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{
        NodeSpec, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Taint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ds() -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("kube-system".into()),
                uid: Some("ds-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                ..Default::default()
            },
            status: None,
        }
    }

    fn node(name: &str, taint: Option<(&str, &str)>, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: taint.map(|(k, e)| {
                    vec![Taint {
                        key: k.into(),
                        effect: e.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool, created: i64) -> Pod {
        let mut p = pod_for(&ds(), node, hash);
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap()
    }

    #[test]
    fn eligibility_follows_node_selector_and_taints() {
        let mut d = ds();
        // (node, eligible)
        let cases = [
            (node("plain", None, &[]), true),
            (
                node(
                    "cordoned",
                    Some(("node.kubernetes.io/unschedulable", "NoSchedule")),
                    &[],
                ),
                true,
            ),
            (node("gpu-only", Some(("gpu", "NoSchedule")), &[]), false),
            (node("soft", Some(("gpu", "PreferNoSchedule")), &[]), true),
        ];
        for (n, want) in &cases {
            assert_eq!(should_run(&d, n), *want, "{:?}", n.metadata.name);
        }
        let spec = d.spec.template.spec.as_mut().unwrap();
        spec.tolerations = Some(vec![Toleration {
            key: Some("gpu".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        assert!(!should_run(
            &d,
            &node("gpu-only", Some(("gpu", "NoSchedule")), &[])
        ));
        assert!(should_run(
            &d,
            &node("gpu-ssd", Some(("gpu", "NoSchedule")), &[("disk", "ssd")])
        ));
    }

    #[test]
    fn one_pod_per_eligible_node_and_none_elsewhere() {
        let nodes = [
            node("a", None, &[]),
            node("b", None, &[]),
            node("tainted", Some(("x", "NoExecute")), &[]),
        ];
        let nrefs: Vec<&Node> = nodes.iter().collect();
        let pods = [
            pod("agent-1", "a", "h1", true, 10),
            pod("agent-2", "a", "h1", true, 20),
            pod("agent-3", "tainted", "h1", true, 10),
            pod("agent-4", "gone", "h1", true, 10),
        ];
        let prefs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&ds(), &nrefs, &prefs, "h1", now());
        assert_eq!(p.create_on, ["b"]);
        assert_eq!(p.delete, ["agent-2", "agent-3", "agent-4"]);
        let s = &p.status;
        assert_eq!(
            (
                s.desired_number_scheduled,
                s.current_number_scheduled,
                s.number_misscheduled,
                s.number_ready
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(
            (
                s.updated_number_scheduled,
                s.number_available,
                s.number_unavailable
            ),
            (Some(1), Some(1), Some(1))
        );
        let pod = pod_for(&ds(), "b", "h1");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("b"));
        assert_eq!(spec.tolerations.unwrap().len(), 6);
        assert_eq!(pod.metadata.labels.unwrap()[TEMPLATE_GENERATION_LABEL], "1");
    }

    #[test]
    fn rolling_update_replaces_within_max_unavailable() {
        let nodes = [
            node("a", None, &[]),
            node("b", None, &[]),
            node("c", None, &[]),
        ];
        let nrefs: Vec<&Node> = nodes.iter().collect();
        let pods = [
            pod("pa", "a", "old", true, 10),
            pod("pb", "b", "old", true, 10),
            pod("pc", "c", "new", true, 10),
        ];
        let prefs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&ds(), &nrefs, &prefs, "new", now());
        assert_eq!(p.delete.len(), 1, "maxUnavailable 1: {:?}", p.delete);
        // One node already lacks its pod: no budget left.
        let p = plan(&ds(), &nrefs, &prefs[..2], "new", now());
        assert_eq!(p.create_on, ["c"]);
        assert!(p.delete.is_empty());
    }
}
