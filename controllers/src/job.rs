//! The Job controller (batch/v1): runs pods until `spec.completions` of them
//! succeed or the Job fails, and reports progress in `status`.
//!
//! Follows k8s.io/kubernetes/pkg/controller/job/job_controller.go (v1.34)
//! for the common path:
//!
//! * pods are created from the template (labels `batch.kubernetes.io/job-name`
//!   and `batch.kubernetes.io/controller-uid` come from the selector the API
//!   server generated), named `generateName: <job>-` (Indexed:
//!   `<job>-<index>-`, with the `batch.kubernetes.io/job-completion-index`
//!   annotation and label, `JOB_COMPLETION_INDEX` env and hostname
//!   `<job>-<index>`), with a controller ownerReference;
//! * `manageJob`: at most `parallelism` active pods, and no more than the
//!   completions still missing; excess pods are deleted;
//! * success: `succeeded >= completions` (or, without completions, a pod
//!   succeeded and none is active) sets `SuccessCriteriaMet`, deletes the
//!   remaining active pods, then `Complete` with `completionTime`;
//! * failure: more failed pods than `backoffLimit` (reason
//!   `BackoffLimitExceeded`) or longer than `activeDeadlineSeconds` (reason
//!   `DeadlineExceeded`) sets `FailureTarget`, deletes the active pods, then
//!   `Failed`;
//! * after failures, new pods wait [`POD_FAILURE_BACKOFF`] × 2^(n−1)
//!   (at most [`MAX_POD_FAILURE_BACKOFF`]) from the last failure, n being
//!   the failures since the last success (`getRemainingBackoff`);
//! * `spec.suspend` deletes active pods and creates none;
//! * a finished Job with `ttlSecondsAfterFinished` is deleted with background
//!   propagation once the TTL passed (the ttlafterfinished controller).
//!
//! Simplified, documented differences: no `batch.kubernetes.io/job-tracking`
//! finalizer and so no `uncountedTerminatedPods` protocol — `succeeded` and
//! `failed` are counted from the pods present and never decrease (a finished
//! pod deleted by hand and then replaced by another finished pod is counted
//! once); a pod being deleted before it succeeded counts as failed while it
//! is visible; the pod failure backoff counts the failed pods present; no
//! `podFailurePolicy`,
//! `successPolicy`, `backoffLimitPerIndex` or `podReplacementPolicy`;
//! restart counts of `OnFailure` pods are not added to failures.
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::util::{controller_ref, is_controlled_by, is_pod_ready};
use crate::{Error, Result};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, ObjectRef, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Annotation (and label) carrying an Indexed Job pod's completion index
/// (`batch.kubernetes.io/job-completion-index`).
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Most pods created or deleted in one sync (job controller
/// `MaxPodCreateDeletePerSync`).
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

/// Delay before replacing the first failed pod (DefaultJobPodFailureBackOff).
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// Longest pod failure backoff (MaxJobPodFailureBackOff).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);

/// When a terminated pod finished (getFinishedTime): the latest container
/// `finishedAt`, else the Ready condition's transition, else its creation.
fn finished_time(p: &Pod) -> Option<Timestamp> {
    let st = p.status.as_ref();
    let containers = st
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    containers
        .or_else(|| {
            st?.conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
        })
        .or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How long new pods must still wait after failures at `now` (zero when
/// none): see the module docs.
pub fn remaining_backoff(pods: &[&Pod], now: Timestamp) -> Duration {
    let last_success = pods
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finished_time(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finished_time(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else {
        return Duration::ZERO;
    };
    let exp = (failures.len() as u32 - 1).min(16);
    let delay = (POD_FAILURE_BACKOFF * 2u32.pow(exp)).min(MAX_POD_FAILURE_BACKOFF);
    let at = *last + SignedDuration::try_from(delay).unwrap_or_default();
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// How long unobserved creations hold back the next sync (see the
/// ReplicaSet controller's expectations).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(60);

/// What one sync of a Job should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Pods to create: `None` entries for NonIndexed Jobs, `Some(index)` for
    /// Indexed ones.
    pub create: Vec<Option<i32>>,
    /// Names of active pods to delete (excess, or the Job finished).
    pub delete: Vec<String>,
    /// The status to write (after this plan's writes are issued).
    pub status: JobStatus,
    /// Delete the Job itself (its `ttlSecondsAfterFinished` passed).
    pub delete_job: bool,
    /// Sync again after this long (deadline or TTL).
    pub requeue_after: Option<Duration>,
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn condition<'a>(status: Option<&'a JobStatus>, type_: &str) -> Option<&'a JobCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has a `Complete` or `Failed` condition that is `True`
/// (jobutil.IsJobFinished), and when it got it.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let st = job.status.as_ref();
    let c = condition(st, "Complete").or_else(|| condition(st, "Failed"))?;
    Some(
        st.and_then(|s| s.completion_time.as_ref())
            .or(c.last_transition_time.as_ref())
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

fn pod_index(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// Renders a set of indexes as upstream's `completedIndexes`: ascending,
/// runs of consecutive numbers as `a-b`, separated by commas ("1,3-5,7").
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

fn set_condition(conds: &mut Vec<JobCondition>, type_: &str, reason: &str, msg: &str, now: Time) {
    if conds.iter().any(|c| c.type_ == type_ && c.status == "True") {
        return;
    }
    conds.retain(|c| c.type_ != type_);
    conds.push(JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(msg.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
}

/// Plans one sync of `job` given the pods it controls (any phase). `manage`
/// is false while earlier creations are not yet observed: then no pods are
/// created. Defaults when absent: parallelism 1, backoffLimit 6,
/// completionMode NonIndexed.
pub fn plan(job: &Job, pods: &[&Pod], manage: bool, now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let now_t = Time(now);
    let mut plan = Plan::default();
    if job.metadata.deletion_timestamp.is_some() {
        plan.status = old;
        return plan;
    }
    if let Some(done) = finished_at(job) {
        plan.status = old;
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let at = done + SignedDuration::from_secs(i64::from(ttl.max(0)));
            if at <= now {
                plan.delete_job = true;
            } else {
                plan.requeue_after = Some(
                    Duration::try_from(at.duration_since(now)).unwrap_or_default()
                        + Duration::from_millis(100),
                );
            }
        }
        return plan;
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0);
    let suspended = spec.suspend == Some(true);

    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .count() as i32;
    let succeeded_pods: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| phase(p) == "Succeeded")
        .collect();
    let observed_failed = pods.len() as i32 - active.len() as i32 - succeeded_pods.len() as i32;
    let succeeded = (succeeded_pods.len() as i32).max(old.succeeded.unwrap_or(0));
    let failed = observed_failed.max(old.failed.unwrap_or(0));
    let completed: BTreeSet<i32> = succeeded_pods.iter().filter_map(|p| pod_index(p)).collect();
    let ready = active.iter().filter(|p| is_pod_ready(p)).count() as i32;

    let mut conds = old.conditions.clone().unwrap_or_default();
    let start_time = if suspended {
        old.start_time.clone()
    } else {
        old.start_time.clone().or(Some(now_t.clone()))
    };

    // Terminal criteria, first met first (syncJob).
    let mut failure: Option<(&str, &str)> = condition(Some(&old), "FailureTarget").map(|c| {
        (
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or(""),
        )
    });
    let mut success = condition(Some(&old), "SuccessCriteriaMet").is_some();
    if failure.is_none() && !success {
        if failed > backoff_limit {
            failure = Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if let (Some(ads), Some(st), false) =
            (spec.active_deadline_seconds, start_time.as_ref(), suspended)
        {
            let at = st.0 + SignedDuration::from_secs(ads.max(0));
            if at <= now {
                failure = Some((
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ));
            } else {
                plan.requeue_after =
                    Some(Duration::try_from(at.duration_since(now)).unwrap_or_default());
            }
        }
        if failure.is_none() {
            success = match spec.completions {
                Some(c) if indexed => completed.len() as i32 >= c,
                Some(c) => succeeded >= c,
                None => succeeded > 0 && active.is_empty(),
            };
        }
    }

    let mut delete_all_active = suspended;
    if let Some((reason, msg)) = failure {
        set_condition(&mut conds, "FailureTarget", reason, msg, now_t.clone());
        delete_all_active = true;
        if active.is_empty() && terminating == 0 {
            set_condition(&mut conds, "Failed", reason, msg, now_t.clone());
        }
    } else if success {
        set_condition(
            &mut conds,
            "SuccessCriteriaMet",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now_t.clone(),
        );
        delete_all_active = true;
        if active.is_empty() && terminating == 0 {
            set_condition(
                &mut conds,
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now_t.clone(),
            );
        }
    }

    let mut still_active = active.len() as i32;
    if delete_all_active {
        plan.delete = active
            .iter()
            .take(MAX_POD_CREATE_DELETE_PER_SYNC)
            .map(|p| p.name_any())
            .collect();
        still_active -= plan.delete.len() as i32;
    } else if indexed {
        let completions = spec.completions.unwrap_or(0).max(0);
        let mut seen: BTreeSet<i32> = BTreeSet::new();
        let mut excess = Vec::new();
        for p in &active {
            match pod_index(p) {
                Some(i) if (0..completions).contains(&i) && !completed.contains(&i) => {
                    if !seen.insert(i) {
                        excess.push(p.name_any());
                    }
                }
                _ => excess.push(p.name_any()),
            }
        }
        let keep = seen.len() as i32;
        if keep > parallelism {
            // Delete the highest indexes beyond parallelism.
            let drop_n = (keep - parallelism) as usize;
            let drop: Vec<i32> = seen.iter().rev().take(drop_n).copied().collect();
            for p in &active {
                if pod_index(p).is_some_and(|i| drop.contains(&i)) {
                    excess.push(p.name_any());
                }
            }
        } else if manage {
            let room = (parallelism - keep) as usize;
            plan.create = (0..completions)
                .filter(|i| !completed.contains(i) && !seen.contains(i))
                .take(room.min(MAX_POD_CREATE_DELETE_PER_SYNC))
                .map(Some)
                .collect();
        }
        excess.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        still_active -= excess.len() as i32;
        plan.delete = excess;
        still_active += plan.create.len() as i32;
    } else {
        let want = match spec.completions {
            Some(c) => parallelism.min((c - succeeded).max(0)),
            None if succeeded > 0 => active.len() as i32,
            None => parallelism,
        };
        let have = active.len() as i32;
        if have > want {
            let mut ranked = active.clone();
            ranked.sort_by_key(|p| {
                (
                    is_pod_ready(p),
                    std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
                )
            });
            plan.delete = ranked
                .iter()
                .take(((have - want) as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC))
                .map(|p| p.name_any())
                .collect();
            still_active -= plan.delete.len() as i32;
        } else if have < want && manage {
            let n = ((want - have) as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC);
            plan.create = vec![None; n];
            still_active += n as i32;
        }
    }

    if !plan.create.is_empty() {
        let wait = remaining_backoff(pods, now);
        if !wait.is_zero() {
            still_active -= plan.create.len() as i32;
            plan.create.clear();
            let wait = wait + Duration::from_millis(100);
            plan.requeue_after = Some(plan.requeue_after.map_or(wait, |r| r.min(wait)));
        }
    }

    let finished = conds
        .iter()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    let completion_time = if conds
        .iter()
        .any(|c| c.type_ == "Complete" && c.status == "True")
    {
        old.completion_time.clone().or(Some(now_t.clone()))
    } else {
        old.completion_time.clone()
    };
    plan.status = JobStatus {
        active: Some(still_active.max(0)),
        ready: Some(ready),
        terminating: Some(terminating + (active.len() as i32 - still_active).max(0)),
        succeeded: Some(succeeded),
        failed: Some(failed),
        start_time,
        completion_time,
        completed_indexes: indexed.then(|| format_indexes(&completed)),
        failed_indexes: old.failed_indexes.clone(),
        conditions: (!conds.is_empty()).then_some(conds),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
    };
    if finished {
        plan.status.active = Some(0);
        plan.status.ready = Some(0);
        // A freshly finished Job with a TTL needs a later look.
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            plan.requeue_after =
                Some(Duration::from_secs(ttl.max(0) as u64) + Duration::from_millis(100));
        }
    }
    plan
}

/// The pod a Job creates (job controller `podTemplate` +
/// controller.GetPodFromTemplate): the template's metadata and spec,
/// `generateName: <job>-` (Indexed: `<job>-<index>-`, plus the completion
/// index annotation/label, `JOB_COMPLETION_INDEX` env and hostname
/// `<job>-<index>`), and a controller ownerReference to the Job.
pub fn pod_from_template(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = job.name_any();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut spec = template.spec;
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if let Some(s) = spec.as_mut() {
                if s.hostname.is_none() {
                    s.hostname = Some(format!("{name}-{i}"));
                }
                for c in s
                    .containers
                    .iter_mut()
                    .chain(s.init_containers.iter_mut().flatten())
                {
                    c.env.get_or_insert_with(Vec::new).push(EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value_from: Some(serde_json::from_value(serde_json::json!({
                            "fieldRef": {"fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}
                        })).unwrap_or_default()),
                        value: None,
                    });
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref("batch/v1", "Job", &job.metadata)]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// A Job status as a merge-patch body (absent fields become `null`, so
/// conditions and counters are replaced as a whole).
fn status_patch(status: &JobStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        for k in [
            "completionTime",
            "completedIndexes",
            "conditions",
            "startTime",
        ] {
            m.entry(k).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": v })
}

/// Pods created but not yet seen: the Job's uid, the pod names, when.
type Expectation = (String, Vec<String>, Instant);

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    /// By (namespace, job name).
    expectations: Mutex<HashMap<(String, String), Expectation>>,
}

impl Ctx {
    fn satisfied(&self, ns: &str, name: &str, uid: &str) -> bool {
        let mut map = self.expectations.lock().expect("expectations lock");
        let key = (ns.to_string(), name.to_string());
        let Some((euid, created, at)) = map.get(&key) else {
            return true;
        };
        let done = euid != uid
            || at.elapsed() > EXPECTATIONS_TIMEOUT
            || created
                .iter()
                .all(|n| self.pods.get(&ObjectRef::new(n).within(ns)).is_some());
        if done {
            map.remove(&key);
        }
        done
    }
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let owned = ctx.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&p.metadata, &uid)
    });
    let owned: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
    let manage = ctx.satisfied(&ns, &name, &uid);
    let plan = plan(&job, &owned, manage, Timestamp::now());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    if plan.delete_job {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        return match jobs.delete(&name, &dp).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                Ok(Action::await_change())
            }
            Err(e) => Err(e.into()),
        };
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut first_error = None;
    let mut created = Vec::new();
    let pp = PostParams::default();
    let templates: Vec<Pod> = plan
        .create
        .iter()
        .map(|i| pod_from_template(&job, *i))
        .collect();
    let results = futures::future::join_all(templates.iter().map(|t| pods.create(&pp, t))).await;
    for r in results {
        match r {
            Ok(p) => created.push(p.name_any()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if !created.is_empty() {
        ctx.expectations.lock().expect("expectations lock").insert(
            (ns.clone(), name.clone()),
            (uid.clone(), created, Instant::now()),
        );
    }
    let dp = DeleteParams::default();
    for r in futures::future::join_all(plan.delete.iter().map(|n| pods.delete(n, &dp))).await {
        crate::util::keep_first_error(&mut first_error, r);
    }
    if job.status.as_ref() != Some(&plan.status) {
        crate::util::keep_first_error(
            &mut first_error,
            jobs.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_patch(&plan.status)),
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

fn error_policy(job: Arc<Job>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(job = %job.name_any(), error = %err, "job sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the Job controller (with the TTL-after-finished behaviour) until the
/// process ends: one watch on Jobs, one on pods (shared by the store and the
/// owner trigger).
pub async fn run(client: Client) {
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
    Controller::new(Api::<Job>::all(client), watcher::Config::default())
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
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, PodTemplateSpec};

    fn job(completions: Option<i32>, parallelism: i32, backoff: i32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(backoff),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [("batch.kubernetes.io/job-name".to_string(), "pi".to_string())].into(),
                        ),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000).unwrap()
    }

    fn has(p: &Plan, t: &str) -> Option<String> {
        condition(Some(&p.status), t).map(|c| c.reason.clone().unwrap_or_default())
    }

    #[test]
    fn creation_follows_parallelism_and_missing_completions() {
        // (completions, parallelism, pods) -> pods to create
        let cases: &[(Option<i32>, i32, &[&str], usize)] = &[
            (Some(1), 1, &[], 1),
            (Some(5), 2, &[], 2),
            (Some(5), 2, &["Running"], 1),
            (Some(3), 5, &["Succeeded"], 2),
            (Some(3), 2, &["Succeeded", "Succeeded", "Running"], 0),
            (None, 3, &[], 3),
            (None, 3, &["Failed"], 3),
        ];
        for (completions, parallelism, phases, want) in cases {
            let pods: Vec<Pod> = phases
                .iter()
                .enumerate()
                .map(|(i, ph)| pod(&format!("p{i}"), ph))
                .collect();
            let refs: Vec<&Pod> = pods.iter().collect();
            let p = plan(&job(*completions, *parallelism, 6), &refs, true, now());
            assert_eq!(
                p.create.len(),
                *want,
                "{completions:?} {parallelism} {phases:?}"
            );
            assert_eq!(p.status.start_time, Some(Time(now())));
        }
        assert!(
            plan(&job(Some(1), 1, 6), &[], false, now())
                .create
                .is_empty()
        );
    }

    #[test]
    fn succeeded_pods_complete_the_job() {
        let a = pod("a", "Succeeded");
        let p = plan(&job(Some(1), 1, 6), &[&a], true, now());
        assert_eq!(
            has(&p, "SuccessCriteriaMet").as_deref(),
            Some("CompletionsReached")
        );
        assert_eq!(has(&p, "Complete").as_deref(), Some("CompletionsReached"));
        assert_eq!(p.status.completion_time, Some(Time(now())));
        assert_eq!((p.status.succeeded, p.status.active), (Some(1), Some(0)));
        // Without completions: the first success ends the job once no pod runs.
        let b = pod("b", "Running");
        let p = plan(&job(None, 2, 6), &[&a, &b], true, now());
        assert!(p.create.is_empty() && has(&p, "Complete").is_none());
    }

    #[test]
    fn failures_beyond_the_backoff_limit_fail_the_job() {
        let (f1, f2, r) = (
            pod("f1", "Failed"),
            pod("f2", "Failed"),
            pod("r", "Running"),
        );
        let p = plan(&job(Some(1), 1, 1), &[&f1, &r], true, now());
        assert!(has(&p, "FailureTarget").is_none());
        let p = plan(&job(Some(1), 1, 1), &[&f1, &f2, &r], true, now());
        assert_eq!(
            has(&p, "FailureTarget").as_deref(),
            Some("BackoffLimitExceeded")
        );
        assert!(has(&p, "Failed").is_none(), "a pod is still active");
        assert_eq!(p.delete, ["r"]);
        let p = plan(&job(Some(1), 1, 0), &[&f1], true, now());
        assert_eq!(has(&p, "Failed").as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(p.status.failed, Some(1));
        assert!(p.create.is_empty() && p.status.completion_time.is_none());
    }

    #[test]
    fn counters_never_decrease_and_deadline_fails() {
        let mut j = job(Some(3), 1, 6);
        j.status = Some(JobStatus {
            succeeded: Some(2),
            start_time: Some(Time(Timestamp::from_second(900).unwrap())),
            ..Default::default()
        });
        let p = plan(&j, &[], true, now());
        assert_eq!((p.status.succeeded, p.create.len()), (Some(2), 1));
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(100);
        let p = plan(&j, &[], true, now());
        assert_eq!(has(&p, "Failed").as_deref(), Some("DeadlineExceeded"));
        j.spec.as_mut().unwrap().active_deadline_seconds = Some(150);
        let p = plan(&j, &[], true, now());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(50)));
    }

    #[test]
    fn replacements_of_failed_pods_back_off_exponentially() {
        let failed_at = |name: &str, t: i64| {
            let mut p = pod(name, "Failed");
            p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(t).unwrap()));
            p
        };
        let (f1, f2) = (failed_at("f1", 995), failed_at("f2", 990));
        // One failure at 995: the next pod waits until 1005.
        let p = plan(&job(Some(1), 1, 6), &[&f1], true, now());
        assert!(p.create.is_empty());
        assert_eq!(p.requeue_after, Some(Duration::from_millis(5100)));
        // Two failures: 20 s from the last (995) → 1015.
        assert_eq!(
            remaining_backoff(&[&f1, &f2], now()),
            Duration::from_secs(15)
        );
        // Long enough ago: no wait.
        let later = Timestamp::from_second(1_100).unwrap();
        assert_eq!(
            plan(&job(Some(1), 1, 6), &[&f1], true, later).create.len(),
            1
        );
        // A success after the failures resets the count.
        let mut ok = pod("ok", "Succeeded");
        ok.metadata.creation_timestamp = Some(Time(Timestamp::from_second(999).unwrap()));
        assert_eq!(remaining_backoff(&[&f1, &f2, &ok], now()), Duration::ZERO);
    }

    #[test]
    fn finished_jobs_are_deleted_after_their_ttl() {
        let mut j = job(Some(1), 1, 6);
        j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(10);
        j.status = Some(JobStatus {
            completion_time: Some(Time(Timestamp::from_second(995).unwrap())),
            conditions: Some(vec![JobCondition {
                type_: "Complete".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let p = plan(&j, &[], true, now());
        assert!(!p.delete_job);
        assert_eq!(p.requeue_after, Some(Duration::from_millis(5100)));
        let p = plan(&j, &[], true, Timestamp::from_second(1_005).unwrap());
        assert!(p.delete_job);
    }

    #[test]
    fn indexed_jobs_create_missing_indexes_and_report_completed_ones() {
        let mut j = job(Some(5), 2, 6);
        j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
        let mut done = pod("d", "Succeeded");
        done.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), "0".to_string())].into());
        let mut running = pod("r", "Running");
        running.metadata.annotations =
            Some([(COMPLETION_INDEX.to_string(), "2".to_string())].into());
        let p = plan(&j, &[&done, &running], true, now());
        assert_eq!(p.create, [Some(1)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
        let pod = pod_from_template(&j, Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(pod.metadata.annotations.unwrap()[COMPLETION_INDEX], "3");
        assert_eq!(pod.spec.unwrap().hostname.as_deref(), Some("pi-3"));
        let set: BTreeSet<i32> = [1, 3, 4, 5, 7].into();
        assert_eq!(format_indexes(&set), "1,3-5,7");
    }

    #[test]
    fn pods_are_owned_by_the_job() {
        let p = pod_from_template(&job(Some(1), 1, 6), None);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.api_version.as_str(),
                owner.controller
            ),
            ("Job", "batch/v1", Some(true))
        );
        assert_eq!(
            p.metadata.labels.unwrap()["batch.kubernetes.io/job-name"],
            "pi"
        );
    }
}
