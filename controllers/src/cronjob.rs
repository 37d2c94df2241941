//! The CronJob controller (batch/v1): creates a Job at each scheduled
//! time, and keeps the CronJob's status and finished-Job history.
//!
//! Follows k8s.io/kubernetes/pkg/controller/cronjob (cronjob_controllerv2.go
//! `syncCronJob`, utils.go `mostRecentScheduleTime`, `getJobFromTemplate2`):
//!
//! * the most recent scheduled time after `status.lastScheduleTime` (or the
//!   CronJob's creation) and not after now is run, unless it is older than
//!   `startingDeadlineSeconds`; earlier missed times are skipped;
//! * the Job is `<cronjob>-<scheduled unix time in minutes>` with the job
//!   template's metadata, the annotation
//!   `batch.kubernetes.io/cronjob-scheduled-timestamp` (RFC 3339) and a
//!   controller ownerReference; an existing Job of that name means the time
//!   was already handled;
//! * `concurrencyPolicy`: `Allow` (default), `Forbid` (skip while a Job is
//!   active), `Replace` (delete the active Jobs, background propagation);
//! * `suspend` creates nothing; `status.active` lists unfinished owned Jobs,
//!   `lastScheduleTime` the last run, `lastSuccessfulTime` the latest
//!   completion;
//! * finished Jobs beyond `successfulJobsHistoryLimit` (3) and
//!   `failedJobsHistoryLimit` (1) are deleted, oldest first;
//! * the next sync is scheduled for the next scheduled time.
//!
//! Schedules are [`crate::cron`]; `spec.timeZone` names an IANA zone
//! (UTC when absent).
//!
//! [`plan`] is the pure decision; [`run`] is the kube-runtime controller.

use crate::cron::Schedule;
use crate::job::finished_at;
use crate::util::{controller_ref, is_controlled_by};
use crate::{Error, Result};
use futures::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::reflector::{self, Store};
use kube_runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use std::time::Duration;

/// Annotation with the scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What one sync of a CronJob should do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Create the Job for this scheduled time.
    pub create: Option<Timestamp>,
    /// Jobs to delete (replaced active ones, then history beyond the limits).
    pub delete: Vec<String>,
    /// The status to report (lastScheduleTime includes `create`).
    pub status: CronJobStatus,
    /// Sync again at the next scheduled time.
    pub requeue_after: Option<Duration>,
}

/// The name of the Job for `scheduled` (getJobName).
pub fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!("{}-{}", cj.name_any(), scheduled.as_second().div_euclid(60))
}

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn succeeded(j: &Job) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// The time zone of `spec.timeZone` (UTC when absent).
///
/// Errors name an unknown zone.
pub fn time_zone(cj: &CronJob) -> Result<TimeZone, String> {
    match cj.spec.time_zone.as_deref() {
        None | Some("") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone {name}: {e}")),
    }
}

/// Plans one sync of `cj` given the Jobs it controls.
///
/// Errors when the schedule or time zone does not parse (reported, not
/// retried quickly).
pub fn plan(cj: &CronJob, jobs: &[&Job], now: Timestamp) -> Result<Plan, String> {
    let spec = &cj.spec;
    let schedule = Schedule::parse(&spec.schedule).map_err(|e| e.to_string())?;
    let tz = time_zone(cj)?;
    let old = cj.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let mut active: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished_at(j).is_none())
        .collect();
    active.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let last_success = jobs
        .iter()
        .filter(|j| succeeded(j))
        .filter_map(|j| finished_at(j))
        .max()
        .map(Time)
        .or(old.last_successful_time.clone());
    let mut last_schedule = old.last_schedule_time.clone();

    // The most recent missed time (mostRecentScheduleTime).
    let earliest = old
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or(cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let earliest = match spec.starting_deadline_seconds {
        Some(d) => earliest.max(now - jiff::SignedDuration::from_secs(d)),
        None => earliest,
    };
    let mut recent = None;
    let mut t = earliest;
    for _ in 0..600_000 {
        match schedule.next(t, &tz) {
            Some(n) if n <= now => {
                recent = Some(n);
                t = n;
            }
            _ => break,
        }
    }
    let mut kept_active = active.clone();
    if let (Some(at), false) = (recent, spec.suspend == Some(true)) {
        let too_late = spec
            .starting_deadline_seconds
            .is_some_and(|d| at + jiff::SignedDuration::from_secs(d) < now);
        let name = job_name(cj, at);
        let exists = jobs
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(name.as_str()));
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if exists {
            last_schedule = Some(Time(at));
        } else if !too_late {
            match policy {
                "Forbid" if !active.is_empty() => {}
                "Replace" => {
                    plan.delete.extend(active.iter().map(|j| j.name_any()));
                    kept_active.clear();
                    plan.create = Some(at);
                }
                _ => plan.create = Some(at),
            }
            if plan.create.is_some() {
                last_schedule = Some(Time(at));
            }
        }
    }

    // History limits, oldest first.
    let mut finished: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished_at(j).is_some())
        .collect();
    finished.sort_by_key(|j| finished_at(j));
    for (want_success, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let of_kind: Vec<&&Job> = finished
            .iter()
            .filter(|j| succeeded(j) == want_success)
            .collect();
        let excess = of_kind.len().saturating_sub(limit.max(0) as usize);
        plan.delete
            .extend(of_kind.iter().take(excess).map(|j| j.name_any()));
    }

    plan.status = CronJobStatus {
        active: (!kept_active.is_empty()).then(|| kept_active.iter().map(|j| job_ref(j)).collect()),
        last_schedule_time: last_schedule,
        last_successful_time: last_success,
    };
    if let Some(next) = schedule.next(now, &tz) {
        plan.requeue_after = Some(
            Duration::try_from(next.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100),
        );
    }
    Ok(plan)
}

/// The Job a CronJob creates for `scheduled` (getJobFromTemplate2).
pub fn job_for(cj: &CronJob, scheduled: Timestamp) -> Job {
    let template = cj.spec.job_template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let uid = cj.uid().unwrap_or_default();
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let owned = ctx.jobs.state_filter(|j| {
        j.metadata.namespace.as_deref() == Some(ns.as_str()) && is_controlled_by(&j.metadata, &uid)
    });
    let owned: Vec<&Job> = owned.iter().map(Arc::as_ref).collect();
    let plan = match plan(&cj, &owned, Timestamp::now()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(cronjob = %name, error = %e, "unparseable cronjob");
            return Ok(Action::await_change());
        }
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut first_error: Option<kube::Error> = None;
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    for n in &plan.delete {
        crate::util::keep_first_error(&mut first_error, jobs.delete(n, &dp).await);
    }
    let mut status = plan.status.clone();
    if let Some(at) = plan.create {
        match jobs.create(&PostParams::default(), &job_for(&cj, at)).await {
            Ok(j) => status.active.get_or_insert_with(Vec::new).push(job_ref(&j)),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                // Not run: keep the old lastScheduleTime so it is retried.
                status.last_schedule_time = cj
                    .status
                    .as_ref()
                    .and_then(|s| s.last_schedule_time.clone());
                first_error.get_or_insert(e);
            }
        }
    }
    if cj.status.as_ref() != Some(&status) {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        if let Some(m) = body.as_object_mut() {
            m.entry("active").or_insert(serde_json::Value::Null);
        }
        let patch = Patch::Merge(serde_json::json!({ "status": body }));
        crate::util::keep_first_error(
            &mut first_error,
            api.patch_status(&name, &PatchParams::default(), &patch)
                .await,
        );
    }
    if let Some(e) = first_error {
        return Err(Error::Kube(e));
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn error_policy(cj: Arc<CronJob>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(cronjob = %cj.name_any(), error = %err, "cronjob sync failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the CronJob controller until the process ends: one watch on
/// CronJobs, one on Jobs (shared by the store and the owner trigger).
pub async fn run(client: Client) {
    let (jobs, writer) = reflector::store();
    let job_stream = watcher(Api::<Job>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs,
    });
    Controller::new(Api::<CronJob>::all(client), watcher::Config::default())
        .owns_stream(job_stream)
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
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobStatus};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cj(schedule: &str, policy: Option<&str>) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("tick".into()),
                namespace: Some("default".into()),
                uid: Some("cj-uid".into()),
                creation_timestamp: Some(Time(ts("2024-01-01T10:00:10Z"))),
                ..Default::default()
            },
            spec: CronJobSpec {
                schedule: schedule.into(),
                concurrency_policy: policy.map(str::to_string),
                ..Default::default()
            },
            status: None,
        }
    }

    fn job(name: &str, state: Option<&str>, created: &str) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: None,
            status: state.map(|t| JobStatus {
                completion_time: (t == "Complete").then(|| Time(ts(created))),
                conditions: Some(vec![JobCondition {
                    type_: t.into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(created))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn runs_the_most_recent_missed_time_once() {
        let c = cj("*/5 * * * *", None);
        let p = plan(&c, &[], ts("2024-01-01T10:12:00Z")).unwrap();
        assert_eq!(p.create, Some(ts("2024-01-01T10:10:00Z")));
        assert_eq!(
            p.status.last_schedule_time,
            Some(Time(ts("2024-01-01T10:10:00Z")))
        );
        assert_eq!(p.requeue_after, Some(Duration::from_millis(180_100)));
        assert_eq!(job_name(&c, ts("2024-01-01T10:10:00Z")), "tick-28401730");
        // Already created: nothing more.
        let j = job("tick-28401730", None, "2024-01-01T10:10:01Z");
        let p = plan(&c, &[&j], ts("2024-01-01T10:12:00Z")).unwrap();
        assert_eq!(p.create, None);
        assert_eq!(p.status.active.unwrap().len(), 1);
        // Nothing scheduled since creation yet.
        assert_eq!(
            plan(&c, &[], ts("2024-01-01T10:04:00Z")).unwrap().create,
            None
        );
    }

    #[test]
    fn concurrency_policy_deadline_and_suspend() {
        let running = job("tick-1", None, "2024-01-01T10:05:00Z");
        let now = ts("2024-01-01T10:12:00Z");
        // (policy, create?, deleted)
        let cases = [
            (None, true, vec![]),
            (Some("Forbid"), false, vec![]),
            (Some("Replace"), true, vec!["tick-1".to_string()]),
        ];
        for (policy, create, deleted) in cases {
            let p = plan(&cj("*/5 * * * *", policy), &[&running], now).unwrap();
            assert_eq!(p.create.is_some(), create, "{policy:?}");
            assert_eq!(p.delete, deleted, "{policy:?}");
        }
        let mut late = cj("*/5 * * * *", None);
        late.spec.starting_deadline_seconds = Some(60);
        assert_eq!(plan(&late, &[], now).unwrap().create, None);
        let mut suspended = cj("*/5 * * * *", None);
        suspended.spec.suspend = Some(true);
        assert_eq!(plan(&suspended, &[], now).unwrap().create, None);
        assert!(plan(&cj("bogus", None), &[], now).is_err());
    }

    #[test]
    fn history_limits_delete_the_oldest_finished_jobs() {
        let jobs = [
            job("s1", Some("Complete"), "2024-01-01T09:00:00Z"),
            job("s2", Some("Complete"), "2024-01-01T09:05:00Z"),
            job("s3", Some("Complete"), "2024-01-01T09:10:00Z"),
            job("s4", Some("Complete"), "2024-01-01T09:15:00Z"),
            job("f1", Some("Failed"), "2024-01-01T09:20:00Z"),
            job("f2", Some("Failed"), "2024-01-01T09:25:00Z"),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let p = plan(&cj("0 0 1 1 *", None), &refs, ts("2024-01-01T10:12:00Z")).unwrap();
        assert_eq!(p.delete, ["s1", "f1"]);
        assert_eq!(
            p.status.last_successful_time,
            Some(Time(ts("2024-01-01T09:15:00Z")))
        );
        let j = job_for(&cj("* * * * *", None), ts("2024-01-01T10:10:00Z"));
        assert_eq!(
            j.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2024-01-01T10:10:00Z"
        );
        assert_eq!(j.metadata.owner_references.unwrap()[0].kind, "CronJob");
    }
}
