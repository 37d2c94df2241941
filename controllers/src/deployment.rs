//! The Deployment controller: ReplicaSets per Deployment, rollouts,
//! revisions and rollout status.
//!
//! Follows k8s.io/kubernetes/pkg/controller/deployment (sync.go,
//! rolling.go, recreate.go, progress.go and util/deployment_util.go):
//!
//! * the new ReplicaSet is the owned one whose template equals the
//!   Deployment's ignoring `pod-template-hash` (EqualIgnoreHash); it is
//!   created as `<deployment>-<hash>` with the hash as label and selector
//!   term ([`crate::util::compute_hash`]), a controller ownerReference, and
//!   revision `max(old revisions) + 1` in `deployment.kubernetes.io/revision`
//!   (also set on the Deployment, which `kubectl rollout history/undo` read);
//!   a name taken by another template bumps `status.collisionCount`;
//! * RollingUpdate scales the new ReplicaSet up within `maxSurge`
//!   (NewRSNewReplicas), then old ones down within `maxUnavailable`,
//!   unhealthy replicas first (reconcileOldReplicaSets); Recreate scales all
//!   old ReplicaSets to 0, waits for their pods to go, then scales the new
//!   one up;
//! * `desired-replicas`/`max-replicas` annotations on scaled ReplicaSets and
//!   the Deployment's own annotations copied onto the new one;
//! * status as calculateStatus, with conditions Available
//!   (MinimumReplicasAvailable/MinimumReplicasUnavailable) and Progressing
//!   (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//!   NewReplicaSetAvailable, ProgressDeadlineExceeded);
//! * once complete, old ReplicaSets with no replicas beyond
//!   `revisionHistoryLimit` are deleted, oldest revision first.
//!
//! Absent fields take the apps/v1 defaults (replicas 1, RollingUpdate
//! 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600).
//! Not done: proportional scaling of several active ReplicaSets on a
//! mid-rollout scale (the rolling steps converge instead), adoption of
//! orphaned ReplicaSets by selector, the ReplicaFailure condition.
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::util::{
    POD_TEMPLATE_HASH, compute_hash, controller_ref, equal_ignore_hash, is_controlled_by,
};
use crate::{Error, Result};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Revision annotation on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Revisions a ReplicaSet held before being rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations never copied from a Deployment to its ReplicaSets
/// (deploymentutil.skipCopyAnnotation).
const SKIP_COPY: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// One write a sync makes, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create the new ReplicaSet.
    Create(Box<ReplicaSet>),
    /// Set `spec.replicas` (when `Some`) and add/replace annotations.
    Update {
        /// ReplicaSet name.
        name: String,
        /// New `spec.replicas`.
        replicas: Option<i32>,
        /// Annotations to set.
        annotations: BTreeMap<String, String>,
    },
    /// Delete an old ReplicaSet (history cleanup).
    Delete {
        /// ReplicaSet name.
        name: String,
        /// Its uid (a precondition).
        uid: String,
    },
    /// Set the Deployment's revision annotation.
    DeploymentRevision(String),
}

/// What one sync of a Deployment should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Writes to ReplicaSets and the Deployment, in order.
    pub writes: Vec<Write>,
    /// The new status, when it differs from the stored one.
    pub status: Option<DeploymentStatus>,
    /// Sync again after this long (progress deadline checks).
    pub requeue_after: Option<Duration>,
}

/// The strategy's parameters with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fenceposts {
    /// Whether the strategy is RollingUpdate (else Recreate).
    pub rolling: bool,
    /// Pods allowed above `replicas`.
    pub max_surge: i32,
    /// Pods allowed to be unavailable (capped at `replicas`).
    pub max_unavailable: i32,
}

fn scaled(v: &Option<IntOrString>, default_percent: i32, replicas: i32, round_up: bool) -> i32 {
    let pct = |p: i32| {
        let x = i64::from(p) * i64::from(replicas);
        (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
    };
    match v {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|n| n.parse::<i32>().ok())
            .map_or(pct(default_percent), pct),
        None => pct(default_percent),
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) resolved against
/// `spec.replicas` (deploymentutil.ResolveFenceposts, MaxSurge,
/// MaxUnavailable): both default to 25%; both zero makes maxUnavailable 1;
/// Recreate allows neither.
pub fn fenceposts(d: &Deployment) -> Fenceposts {
    let replicas = replicas(d);
    let strategy = d.spec.strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t != "Recreate");
    if !rolling {
        return Fenceposts {
            rolling,
            max_surge: 0,
            max_unavailable: 0,
        };
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(&ru.and_then(|r| r.max_surge.clone()), 25, replicas, true);
    let mut unavailable = scaled(
        &ru.and_then(|r| r.max_unavailable.clone()),
        25,
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Fenceposts {
        rolling,
        max_surge: surge.max(0),
        max_unavailable: if replicas == 0 {
            0
        } else {
            unavailable.clamp(0, replicas)
        },
    }
}

/// `spec.replicas`, 1 when absent.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// A ReplicaSet's revision (0 when absent or not a number).
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Working copy of a ReplicaSet during planning.
struct RsView<'a> {
    rs: &'a ReplicaSet,
    name: String,
    replicas: i32,
    available: i32,
    annotations: BTreeMap<String, String>,
    replicas_changed: bool,
}

impl RsView<'_> {
    fn status<T: Default>(
        &self,
        f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> T,
    ) -> T {
        self.rs.status.as_ref().map(f).unwrap_or_default()
    }
    fn scale(&mut self, to: i32, d: &Deployment, fp: Fenceposts) {
        if to == self.replicas {
            return;
        }
        self.replicas = to;
        self.available = self.available.min(to.max(0));
        self.replicas_changed = true;
        self.annotations
            .insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
        self.annotations.insert(
            MAX_REPLICAS.into(),
            (replicas(d) + fp.max_surge).to_string(),
        );
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// deploymentutil.SetDeploymentCondition: no change for the same status and
/// reason; the transition time is kept while the status stays the same.
fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, c.type_.as_deref().unwrap_or_default()) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = s.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_.as_deref() != Some(type_));
    }
}

/// The new ReplicaSet for `d` (getNewReplicaSet): the template plus the
/// hash label, the selector plus the hash, a controller ownerReference,
/// the revision, replica annotations and the Deployment's annotations.
pub fn new_replicaset(d: &Deployment, hash: &str, replicas_: i32, revision: i64) -> ReplicaSet {
    let mut template = d.spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta
        .labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut selector = d.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.into(), hash.into());
    let mut annotations = copied_annotations(d);
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (replicas(d) + fenceposts(d).max_surge).to_string(),
    );
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.metadata.namespace.clone(),
            labels: tmeta.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas_),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !SKIP_COPY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Plans one sync of `d` given the ReplicaSets it controls, at `now`.
/// A Deployment being deleted or paused gets no new ReplicaSet and no
/// rollout steps (paused ones are still scaled when one ReplicaSet is
/// active, as upstream's `sync`).
pub fn plan(d: &Deployment, owned: &[&ReplicaSet], now: Timestamp) -> Plan {
    let want = replicas(d);
    let fp = fenceposts(d);
    let paused = d.spec.paused == Some(true) || d.metadata.deletion_timestamp.is_some();
    let mut sorted: Vec<&ReplicaSet> = owned.to_vec();
    sorted.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref(),
            a.metadata.name.as_ref(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref(),
                b.metadata.name.as_ref(),
            ))
    });
    let new_idx = sorted.iter().position(|rs| {
        rs.spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template))
    });
    let mut views: Vec<RsView> = sorted
        .iter()
        .map(|rs| RsView {
            rs,
            name: rs.name_any(),
            replicas: rs.spec.replicas.unwrap_or(1),
            // A ReplicaSet never keeps more available pods than its spec asks
            // for: a status written before a scale-down still counts the pods
            // being deleted, and counting them would let the rolling update
            // scale old ReplicaSets below minAvailable.
            available: rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                .min(rs.spec.replicas.unwrap_or(1).max(0)),
            annotations: BTreeMap::new(),
            replicas_changed: false,
        })
        .collect();
    let max_old_revision = views
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, v)| revision(&v.rs.metadata))
        .max()
        .unwrap_or(0);
    let new_revision = max_old_revision + 1;
    let old_status = d.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut writes = Vec::new();
    let mut created: Option<ReplicaSet> = None;
    let dname = d.name_any();

    if !paused {
        match new_idx {
            Some(i) => {
                // SetNewReplicaSetAnnotations: a re-used (rolled back to)
                // ReplicaSet takes the next revision; deployment annotations
                // are copied.
                let v = &mut views[i];
                let cur = v.rs.metadata.annotations.clone().unwrap_or_default();
                let old_rev = revision(&v.rs.metadata);
                if old_rev < new_revision {
                    v.annotations
                        .insert(REVISION.into(), new_revision.to_string());
                    if old_rev > 0 {
                        let mut hist: Vec<String> = cur
                            .get(REVISION_HISTORY)
                            .map(|h| h.split(',').map(str::to_string).collect())
                            .unwrap_or_default();
                        hist.retain(|h| !h.is_empty());
                        hist.push(old_rev.to_string());
                        v.annotations
                            .insert(REVISION_HISTORY.into(), hist.join(","));
                    }
                }
                for (k, val) in copied_annotations(d) {
                    if cur.get(&k) != Some(&val) {
                        v.annotations.insert(k, val);
                    }
                }
                if get_condition(&status, "Progressing").is_none() {
                    set_condition(
                        &mut status,
                        condition(
                            "Progressing",
                            "True",
                            "FoundNewReplicaSet",
                            format!("Found new replica set {:?}", v.name),
                            now,
                        ),
                    );
                }
            }
            None => {
                let recreate_waiting = !fp.rolling
                    && views
                        .iter()
                        .any(|v| v.replicas > 0 || v.status(|s| s.replicas) > 0);
                if !recreate_waiting {
                    let hash = compute_hash(&d.spec.template, old_status.collision_count);
                    let name = format!("{dname}-{hash}");
                    if views.iter().any(|v| v.name == name) {
                        // A different template already has this name (hash
                        // collision): try another hash next sync.
                        status.collision_count = Some(old_status.collision_count.unwrap_or(0) + 1);
                    } else {
                        let start = if fp.rolling {
                            let current: i32 = views.iter().map(|v| v.replicas).sum();
                            let max_total = want + fp.max_surge;
                            (max_total - current).clamp(0, want)
                        } else {
                            want
                        };
                        let rs = new_replicaset(d, &hash, start, new_revision);
                        set_condition(
                            &mut status,
                            condition(
                                "Progressing",
                                "True",
                                "NewReplicaSetCreated",
                                format!("Created new replica set {name:?}"),
                                now,
                            ),
                        );
                        created = Some(rs);
                    }
                }
            }
        }
    }

    let new_name = new_idx
        .map(|i| views[i].name.clone())
        .or_else(|| created.as_ref().map(|c| c.name_any()));
    // Rollout steps over the existing ReplicaSets; a ReplicaSet created in
    // this sync already has its starting size.
    if !paused {
        if let Some(i) = new_idx {
            if fp.rolling {
                rolling_steps(d, fp, &mut views, i);
            } else {
                recreate_steps(d, fp, &mut views, Some(i));
            }
        } else if !fp.rolling {
            recreate_steps(d, fp, &mut views, None);
        }
    } else if d.metadata.deletion_timestamp.is_none() {
        // Paused: scale the only active (else the newest) ReplicaSet.
        let active: Vec<usize> = (0..views.len())
            .filter(|&i| views[i].replicas > 0)
            .collect();
        let target = match active.as_slice() {
            [one] => Some(*one),
            [] => new_idx.or(views.len().checked_sub(1)),
            _ => None,
        };
        if let Some(i) = target {
            views[i].scale(want, d, fp);
        }
    }

    // Status (calculateStatus) from the ReplicaSets' reported counts.
    let sum = |f: &dyn Fn(&RsView) -> i32| views.iter().map(f).sum::<i32>();
    let spec_total =
        sum(&|v| v.replicas) + created.as_ref().map_or(0, |c| c.spec.replicas.unwrap_or(0));
    let available = sum(&|v| v.available);
    let updated = new_idx.map_or(0, |i| views[i].status(|s| s.replicas));
    status.observed_generation = d.metadata.generation;
    status.replicas = Some(sum(&|v| v.status(|s| s.replicas)));
    status.updated_replicas = Some(updated);
    status.ready_replicas = Some(sum(&|v| v.status(|s| s.ready_replicas.unwrap_or(0))));
    status.available_replicas = Some(available);
    status.unavailable_replicas = Some((spec_total - available).max(0));
    if available >= want - fp.max_unavailable {
        set_condition(
            &mut status,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }

    // Progressing (syncRolloutStatus).
    let complete = updated == want
        && status.replicas == Some(want)
        && available == want
        && status.observed_generation >= d.metadata.generation;
    let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
    let mut requeue_after = None;
    let has_deadline = deadline != i32::MAX;
    if !has_deadline {
        remove_condition(&mut status, "Progressing");
    }
    let cur = get_condition(&status, "Progressing").cloned();
    let already_complete = status.replicas == status.updated_replicas
        && cur
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let rs_label = new_name.clone().unwrap_or_default();
    if has_deadline && !already_complete && !paused {
        let old_old = old_status.replicas.unwrap_or(0) - old_status.updated_replicas.unwrap_or(0);
        let new_old = status.replicas.unwrap_or(0) - updated;
        let progressing = updated > old_status.updated_replicas.unwrap_or(0)
            || status.ready_replicas > old_status.ready_replicas.or(Some(0))
            || available > old_status.available_replicas.unwrap_or(0)
            || old_old > new_old;
        if complete {
            set_condition(
                &mut status,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet {rs_label:?} has successfully progressed."),
                    now,
                ),
            );
        } else if progressing {
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet {rs_label:?} is progressing."),
                now,
            );
            if let Some(cur) = cur.as_ref().filter(|c| c.status.as_deref() == Some("True")) {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            remove_condition(&mut status, "Progressing");
            set_condition(&mut status, c);
        } else if let Some(cur) = cur.as_ref().filter(|c| c.status.as_deref() == Some("True")) {
            let from = cur
                .last_update_time
                .as_ref()
                .or(cur.last_transition_time.as_ref())
                .map_or(now, |t| t.0);
            let at = from + jiff::SignedDuration::from_secs(i64::from(deadline));
            if at <= now {
                set_condition(
                    &mut status,
                    condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet {rs_label:?} has timed out progressing."),
                        now,
                    ),
                );
            } else {
                requeue_after = Some(
                    Duration::try_from(at.duration_since(now)).unwrap_or_default()
                        + Duration::from_secs(1),
                );
            }
        }
    }

    // History cleanup (cleanupDeployment) once the rollout is complete.
    let mut deletes = Vec::new();
    if complete && !paused {
        let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut old: Vec<&RsView> = views
            .iter()
            .enumerate()
            .filter(|(i, v)| {
                Some(*i) != new_idx
                    && v.replicas == 0
                    && v.status(|s| s.replicas) == 0
                    && v.rs.metadata.deletion_timestamp.is_none()
            })
            .map(|(_, v)| v)
            .collect();
        if old.len() > limit {
            old.sort_by_key(|v| {
                (
                    revision(&v.rs.metadata),
                    v.rs.metadata.creation_timestamp.clone(),
                )
            });
            for v in &old[..old.len() - limit] {
                deletes.push(Write::Delete {
                    name: v.name.clone(),
                    uid: v.rs.metadata.uid.clone().unwrap_or_default(),
                });
            }
        }
    }

    if let Some(rs) = created {
        writes.push(Write::Create(Box::new(rs)));
    }
    for v in &views {
        if v.replicas_changed || !v.annotations.is_empty() {
            writes.push(Write::Update {
                name: v.name.clone(),
                replicas: v.replicas_changed.then_some(v.replicas),
                annotations: v.annotations.clone(),
            });
        }
    }
    writes.extend(deletes);
    let d_rev = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .cloned();
    if !paused && new_name.is_some() {
        let rev = match new_idx {
            Some(i) => views[i]
                .annotations
                .get(REVISION)
                .cloned()
                .unwrap_or_else(|| revision(&views[i].rs.metadata).to_string()),
            None => new_revision.to_string(),
        };
        if d_rev.as_deref() != Some(rev.as_str()) {
            writes.push(Write::DeploymentRevision(rev));
        }
    }
    Plan {
        writes,
        status: (Some(&status) != d.status.as_ref()).then_some(status),
        requeue_after,
    }
}

/// rolloutRolling's scaling steps on the working copies: scale the new
/// ReplicaSet (`views[new]`) within maxSurge; if it did not change, scale
/// old ones down within maxUnavailable.
fn rolling_steps(d: &Deployment, fp: Fenceposts, views: &mut [RsView], new: usize) {
    let want = replicas(d);
    // reconcileNewReplicaSet
    let new_replicas = views[new].replicas;
    if new_replicas > want {
        views[new].scale(want, d, fp);
        return;
    }
    if new_replicas < want {
        let current: i32 = views.iter().map(|v| v.replicas).sum();
        let max_total = want + fp.max_surge;
        if current < max_total {
            let up = (max_total - current).min(want - new_replicas);
            views[new].scale(new_replicas + up, d, fp);
            return;
        }
    }
    // reconcileOldReplicaSets
    let old_total: i32 = views
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != new)
        .map(|(_, v)| v.replicas)
        .sum();
    if old_total == 0 {
        return;
    }
    let all_total: i32 = views.iter().map(|v| v.replicas).sum();
    let min_available = want - fp.max_unavailable;
    let new_unavailable = views[new].replicas - views[new].available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // cleanupUnhealthyReplicas: old replicas that are not available go first.
    let mut cleaned = 0;
    for (i, v) in views.iter_mut().enumerate() {
        if i == new || cleaned >= max_scaled_down {
            continue;
        }
        if v.replicas == 0 || v.replicas <= v.available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(v.replicas - v.available);
        let to = v.replicas - n;
        v.scale(to, d, fp);
        cleaned += n;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: keep minAvailable available.
    let available: i32 = views.iter().map(|v| v.available).sum();
    if available <= min_available {
        return;
    }
    let total = available - min_available;
    let mut done = 0;
    for (i, v) in views.iter_mut().enumerate() {
        if i == new || done >= total || v.replicas == 0 {
            continue;
        }
        let n = v.replicas.min(total - done);
        let to = v.replicas - n;
        v.scale(to, d, fp);
        done += n;
    }
}

/// rolloutRecreate's steps: scale every old ReplicaSet to 0; once none has
/// pods left, scale the new one (if any) to `replicas`.
fn recreate_steps(d: &Deployment, fp: Fenceposts, views: &mut [RsView], new: Option<usize>) {
    let mut scaled_down = false;
    for (i, v) in views.iter_mut().enumerate() {
        if Some(i) != new && v.replicas > 0 {
            v.scale(0, d, fp);
            scaled_down = true;
        }
    }
    if scaled_down {
        return;
    }
    let old_running = views
        .iter()
        .enumerate()
        .any(|(i, v)| Some(i) != new && v.status(|s| s.replicas) > 0);
    if old_running {
        return;
    }
    if let Some(i) = new {
        views[i].scale(replicas(d), d, fp);
    }
}

/// Writes issued but not yet reflected in the ReplicaSet store, so that a
/// sync on a stale store does not act twice.
struct Pending {
    uid: String,
    /// ReplicaSet name → `spec.replicas` it must show (`None`: must exist).
    expect: Vec<(String, Option<i32>)>,
    at: Instant,
}

struct Ctx {
    client: Client,
    rs: Store<ReplicaSet>,
    pending: Mutex<HashMap<(String, String), Pending>>,
}

impl Ctx {
    fn caught_up(&self, ns: &str, name: &str, uid: &str) -> bool {
        let mut map = self.pending.lock().expect("pending lock");
        let key = (ns.to_string(), name.to_string());
        let Some(p) = map.get(&key) else { return true };
        let done = p.uid != uid
            || p.at.elapsed() > Duration::from_secs(30)
            || p.expect
                .iter()
                .all(|(n, r)| match self.rs.get(&ObjectRef::new(n).within(ns)) {
                    None => false,
                    Some(rs) => r.is_none_or(|r| rs.spec.replicas == Some(r)),
                });
        if done {
            map.remove(&key);
        }
        done
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    if d.spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && d.spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
    {
        // syncDeployment refuses a selector that selects everything.
        tracing::warn!(deployment = %name, "selector selects all pods; not syncing");
        return Ok(Action::await_change());
    }
    if !ctx.caught_up(&ns, &name, &uid) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let owned = ctx.rs.state_filter(|rs| {
        rs.metadata.namespace.as_deref() == Some(ns.as_str())
            && is_controlled_by(&rs.metadata, &uid)
    });
    let owned: Vec<&ReplicaSet> = owned.iter().map(Arc::as_ref).collect();
    let plan = plan(&d, &owned, Timestamp::now());
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let mut expect = Vec::new();
    let mut status = plan.status.clone();
    for w in &plan.writes {
        match w {
            Write::Create(rs) => match rs_api.create(&PostParams::default(), rs).await {
                Ok(_) => expect.push((rs.name_any(), None)),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // Ours but not yet in the store, or a hash collision.
                    let existing = rs_api.get(&rs.name_any()).await?;
                    let ours = is_controlled_by(&existing.metadata, &uid)
                        && existing
                            .spec
                            .template
                            .as_ref()
                            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template));
                    if ours {
                        expect.push((rs.name_any(), None));
                    } else {
                        let mut s = d.status.clone().unwrap_or_default();
                        s.collision_count = Some(s.collision_count.unwrap_or(0) + 1);
                        status = Some(s);
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            },
            Write::Update {
                name: rs_name,
                replicas,
                annotations,
            } => {
                let mut body = json!({"metadata": {"annotations": annotations}});
                if let Some(r) = replicas {
                    body["spec"] = json!({"replicas": r});
                }
                match rs_api
                    .patch(rs_name, &PatchParams::default(), &Patch::Merge(body))
                    .await
                {
                    Ok(_) => {
                        if replicas.is_some() {
                            expect.push((rs_name.clone(), *replicas));
                        }
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Write::Delete { name: rs_name, uid } => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match rs_api.delete(rs_name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Write::DeploymentRevision(rev) => {
                let body = json!({"metadata": {"annotations": {REVISION: rev}}});
                d_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(body))
                    .await?;
            }
        }
    }
    if !expect.is_empty() {
        ctx.pending.lock().expect("pending lock").insert(
            (ns.clone(), name.clone()),
            Pending {
                uid: uid.clone(),
                expect,
                at: Instant::now(),
            },
        );
    }
    if let Some(s) = status {
        let body = crate::replicaset::status_patch(&s, &[]);
        match d_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(plan
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(deployment = %d.name_any(), error = %err, "deployment sync failed");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the Deployment controller until the process ends: one watch on
/// Deployments, one on ReplicaSets (shared by the store and the owner
/// trigger).
pub async fn run(client: Client) {
    let (rs, writer) = reflector::store();
    let rs_stream = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        rs,
        pending: Mutex::new(HashMap::new()),
    });
    Controller::new(Api::<Deployment>::all(client), watcher::Config::default())
        .owns_stream(rs_stream)
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
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn now() -> Timestamp {
        Timestamp::from_second(10_000).unwrap()
    }

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn deploy(image: &str, replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("d-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                template: template(image),
                ..Default::default()
            },
            status: None,
        }
    }

    /// A ReplicaSet as the controller would have created it, with `replicas`
    /// and reported `(status replicas, available)`.
    fn rs(
        d: &Deployment,
        image: &str,
        rev: i64,
        replicas: i32,
        observed: (i32, i32),
    ) -> ReplicaSet {
        let mut dd = d.clone();
        dd.spec.template = template(image);
        let hash = compute_hash(&dd.spec.template, None);
        let mut r = new_replicaset(&dd, &hash, replicas, rev);
        r.metadata.uid = Some(format!("rs-{rev}"));
        r.metadata.creation_timestamp = Some(Time(Timestamp::from_second(rev * 10).unwrap()));
        r.status = Some(ReplicaSetStatus {
            replicas: observed.0,
            ready_replicas: Some(observed.1),
            available_replicas: Some(observed.1),
            ..Default::default()
        });
        r
    }

    fn scales(p: &Plan) -> Vec<(String, i32)> {
        p.writes
            .iter()
            .filter_map(|w| match w {
                Write::Update {
                    name,
                    replicas: Some(r),
                    ..
                } => Some((name.clone(), *r)),
                _ => None,
            })
            .collect()
    }

    fn cond(p: &Plan, t: &str) -> (String, String) {
        let c = get_condition(p.status.as_ref().unwrap(), t).unwrap();
        (c.status.clone().unwrap(), c.reason.clone().unwrap())
    }

    #[test]
    fn fenceposts_resolve_percentages_and_defaults() {
        let mut d = deploy("a", 3);
        assert_eq!(
            fenceposts(&d),
            Fenceposts {
                rolling: true,
                max_surge: 1,
                max_unavailable: 0
            }
        );
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(0)),
                max_unavailable: Some(IntOrString::String("0%".into())),
            }),
        });
        assert_eq!(fenceposts(&d).max_unavailable, 1);
        d.spec.replicas = Some(10);
        d.spec.strategy.as_mut().unwrap().rolling_update = Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("15%".into())),
            max_unavailable: Some(IntOrString::String("15%".into())),
        });
        let f = fenceposts(&d);
        assert_eq!((f.max_surge, f.max_unavailable), (2, 1));
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!(
            (fenceposts(&d).max_surge, fenceposts(&d).max_unavailable),
            (0, 0)
        );
    }

    #[test]
    fn a_new_deployment_gets_a_hashed_replicaset_at_revision_1() {
        let d = deploy("nginx", 3);
        let p = plan(&d, &[], now());
        let Write::Create(rs) = &p.writes[0] else {
            panic!("{:?}", p.writes)
        };
        let hash = compute_hash(&d.spec.template, None);
        assert_eq!(rs.name_any(), format!("web-{hash}"));
        assert_eq!(rs.spec.replicas, Some(3));
        assert_eq!(
            rs.spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
            hash
        );
        let labels = rs
            .spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap();
        assert_eq!(labels.labels.as_ref().unwrap()[POD_TEMPLATE_HASH], hash);
        let ann = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[REVISION], "1");
        assert_eq!(ann[DESIRED_REPLICAS], "3");
        assert_eq!(ann[MAX_REPLICAS], "4");
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Deployment", Some(true))
        );
        assert_eq!(p.writes[1], Write::DeploymentRevision("1".into()));
        assert_eq!(
            cond(&p, "Progressing"),
            ("True".into(), "NewReplicaSetCreated".into())
        );
        assert_eq!(
            cond(&p, "Available"),
            ("False".into(), "MinimumReplicasUnavailable".into())
        );
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down_within_max_unavailable() {
        let mut d = deploy("v2", 3);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: None,
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(1)),
            }),
        });
        let old = rs(&d, "v1", 1, 3, (3, 3));
        // Step 1: the new ReplicaSet starts at maxSurge.
        let p = plan(&d, &[&old], now());
        let Write::Create(new) = &p.writes[0] else {
            panic!("{:?}", p.writes)
        };
        assert_eq!(new.spec.replicas, Some(1));
        assert_eq!(new.metadata.annotations.as_ref().unwrap()[REVISION], "2");
        // Step 2: at 4 pods, one old replica may go (3 - 1 = 2 must stay available).
        let new = rs(&d, "v2", 2, 1, (1, 0));
        let p = plan(&d, &[&old, &new], now());
        assert_eq!(scales(&p), [(old.name_any(), 2)]);
        // Step 3: with the old at 2, the new may grow to 2.
        let old2 = rs(&d, "v1", 1, 2, (2, 2));
        let p = plan(&d, &[&old2, &new], now());
        assert_eq!(scales(&p), [(new.name_any(), 2)]);
        // Unavailable new pods do not let old ones go below minAvailable.
        let new2 = rs(&d, "v2", 2, 2, (2, 0));
        let p = plan(&d, &[&old2, &new2], now());
        assert!(scales(&p).is_empty(), "{:?}", p.writes);
    }

    #[test]
    fn a_stale_status_after_scale_down_does_not_overcount_available_pods() {
        let mut d = deploy("v2", 4);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: None,
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(1)),
            }),
        });
        // The old ReplicaSet was just scaled 4 -> 3; its status still counts
        // the pod being deleted. Really available: 3 old + 1 new = 4, so one
        // old replica may go (4 - 1 = 3 must stay), not two.
        let old = rs(&d, "v1", 1, 3, (4, 4));
        let new = rs(&d, "v2", 2, 2, (2, 1));
        let p = plan(&d, &[&old, &new], now());
        assert_eq!(scales(&p), [(old.name_any(), 2)]);
    }

    #[test]
    fn unhealthy_old_replicas_are_removed_first() {
        let d = deploy("v2", 3);
        let old = rs(&d, "v1", 1, 3, (3, 1));
        let new = rs(&d, "v2", 2, 1, (1, 1));
        // surge 1, unavailable 0: all 4 spec replicas exist; 2 old ones are unavailable.
        let p = plan(&d, &[&old, &new], now());
        assert_eq!(scales(&p), [(old.name_any(), 2)]);
    }

    #[test]
    fn a_complete_rollout_reports_available_and_cleans_history() {
        let mut d = deploy("v4", 2);
        d.spec.revision_history_limit = Some(1);
        let r1 = rs(&d, "v1", 1, 0, (0, 0));
        let r2 = rs(&d, "v2", 2, 0, (0, 0));
        let r3 = rs(&d, "v3", 3, 0, (0, 0));
        let r4 = rs(&d, "v4", 4, 2, (2, 2));
        d.metadata.annotations = Some([(REVISION.to_string(), "4".to_string())].into());
        let p = plan(&d, &[&r1, &r2, &r3, &r4], now());
        let deleted: Vec<_> = p
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(deleted, [r1.name_any(), r2.name_any()]);
        assert_eq!(
            cond(&p, "Progressing"),
            ("True".into(), "NewReplicaSetAvailable".into())
        );
        assert_eq!(
            cond(&p, "Available"),
            ("True".into(), "MinimumReplicasAvailable".into())
        );
        let s = p.status.clone().unwrap();
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.available_replicas,
                s.observed_generation
            ),
            (Some(2), Some(2), Some(2), Some(1))
        );
        // Once the status is stored, a resync changes nothing.
        d.status = p.status;
        let again = plan(&d, &[&r3, &r4], now());
        assert_eq!(again.status, None);
        assert!(again.writes.is_empty(), "{:?}", again.writes);
    }

    #[test]
    fn rolling_back_reuses_the_old_replicaset_with_the_next_revision() {
        let mut d = deploy("v1", 2);
        d.metadata.annotations = Some([(REVISION.to_string(), "2".to_string())].into());
        let r1 = rs(&d, "v1", 1, 0, (0, 0));
        let r2 = rs(&d, "v2", 2, 2, (2, 2));
        let p = plan(&d, &[&r1, &r2], now());
        let Write::Update {
            name, annotations, ..
        } = &p.writes[0]
        else {
            panic!("{:?}", p.writes)
        };
        assert_eq!(name, &r1.name_any());
        assert_eq!(annotations[REVISION], "3");
        assert_eq!(annotations[REVISION_HISTORY], "1");
        assert!(p.writes.contains(&Write::DeploymentRevision("3".into())));
        assert_eq!(
            scales(&p),
            [(r1.name_any(), 1)],
            "scaled up within maxSurge"
        );
    }

    #[test]
    fn recreate_scales_old_to_zero_and_waits_for_their_pods() {
        let mut d = deploy("v2", 2);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let old = rs(&d, "v1", 1, 2, (2, 2));
        let p = plan(&d, &[&old], now());
        assert_eq!(scales(&p), [(old.name_any(), 0)]);
        assert!(!p.writes.iter().any(|w| matches!(w, Write::Create(_))));
        let draining = rs(&d, "v1", 1, 0, (1, 0));
        let p = plan(&d, &[&draining], now());
        assert!(p.writes.is_empty(), "{:?}", p.writes);
        let gone = rs(&d, "v1", 1, 0, (0, 0));
        let p = plan(&d, &[&gone], now());
        let Write::Create(new) = &p.writes[0] else {
            panic!("{:?}", p.writes)
        };
        assert_eq!(new.spec.replicas, Some(2));
    }

    #[test]
    fn scaling_a_settled_deployment_scales_its_replicaset() {
        let d = deploy("v1", 5);
        let r1 = rs(&d, "v1", 1, 3, (3, 3));
        let p = plan(&d, &[&r1], now());
        assert_eq!(scales(&p), [(r1.name_any(), 5)]);
        let d = deploy("v1", 1);
        let p = plan(&d, &[&r1], now());
        assert_eq!(scales(&p), [(r1.name_any(), 1)]);
    }

    #[test]
    fn a_stalled_rollout_times_out_after_the_progress_deadline() {
        let mut d = deploy("v2", 1);
        d.spec.progress_deadline_seconds = Some(60);
        let new = rs(&d, "v2", 1, 1, (1, 0));
        let mut status = DeploymentStatus::default();
        let mut c = condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            String::new(),
            Timestamp::from_second(100).unwrap(),
        );
        c.last_update_time = Some(Time(Timestamp::from_second(100).unwrap()));
        status.conditions = Some(vec![c]);
        status.updated_replicas = Some(1);
        status.replicas = Some(1);
        d.status = Some(status);
        let p = plan(&d, &[&new], Timestamp::from_second(130).unwrap());
        assert!(p.requeue_after.is_some());
        let p = plan(&d, &[&new], Timestamp::from_second(200).unwrap());
        assert_eq!(
            cond(&p, "Progressing"),
            ("False".into(), "ProgressDeadlineExceeded".into())
        );
    }
}
