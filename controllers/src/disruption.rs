//! The disruption controller: PodDisruptionBudget status, as
//! kube-controller-manager's (pkg/controller/disruption) computes it, so
//! the API server's eviction subresource can decide (429 when a budget
//! forbids).
//!
//! For each budget ([`plan`]):
//! * the pods it selects (same namespace; a nil or empty selector selects
//!   none, as the eviction subresource treats it);
//! * `expectedPods`: the number of selected pods for an integer
//!   `minAvailable`; otherwise the scale of their controllers (the
//!   `spec.replicas` of each distinct ReplicaSet, Deployment, StatefulSet
//!   or ReplicationController, [`Scales`]), the number of selected pods
//!   for pods without one;
//! * `desiredHealthy`: `minAvailable` (a percentage rounded up), or
//!   `expectedPods - maxUnavailable` (a percentage rounded up), at least 0;
//! * `currentHealthy`: selected pods that are Ready, not being deleted and
//!   not in `disruptedPods`;
//! * `disruptionsAllowed = currentHealthy - desiredHealthy`, 0 when
//!   negative or nothing is expected;
//! * `disruptedPods` (written by evictions) keep pods that still exist for
//!   two minutes ([`DELETION_TIMEOUT`]);
//! * the `DisruptionAllowed` condition (`SufficientPods` /
//!   `InsufficientPods`) and `observedGeneration`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;

use crate::util::{controller_of, is_pod_ready, selector_matches};
use crate::{Error, Result};

/// How long an evicted pod stays in `disruptedPods` while it still exists
/// (kube's `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The `spec.replicas` of pod controllers, by controller uid.
pub type Scales = HashMap<String, i32>;

/// Whether budget `pdb` selects `pod` (same namespace, non-empty selector
/// that matches).
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    !empty
        && pdb.namespace() == pod.namespace()
        && selector_matches(sel, pod.metadata.labels.as_ref())
}

/// `value` of a count or percentage against `total`, rounded up
/// (`intstr.GetScaledValueFromIntOrPercent(.., true)`); `None` for a
/// malformed percentage.
fn scaled(value: &IntOrString, total: i32) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let v = (pct * i64::from(total) + 99) / 100;
            i32::try_from(v).ok()
        }
    }
}

/// The status budget `pdb` should have, given the pods it selects
/// (`pods`), their controllers' scales and the time (pure).
pub fn plan(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scales: &Scales,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    let pod_count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let controller_scale = || {
        let mut seen = BTreeMap::new();
        let mut loose = 0;
        for p in pods {
            match controller_of(&p.metadata).and_then(|o| scales.get(&o.uid).map(|s| (o, s))) {
                Some((o, s)) => {
                    seen.insert(o.uid.clone(), *s);
                }
                None => loose += 1,
            }
        }
        seen.values().sum::<i32>() + loose
    };
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (pod_count, *n),
        (Some(pct), _) => {
            let e = controller_scale();
            (e, scaled(pct, e).unwrap_or(e))
        }
        (None, Some(max)) => {
            let e = controller_scale();
            (e, e - scaled(max, e).unwrap_or(0))
        }
        (None, None) => (pod_count, 0),
    };
    let desired = desired.max(0);
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    for (name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let alive = pods
            .iter()
            .any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none());
        if alive && at.0 + timeout > now {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !disrupted.contains_key(&p.name_any())
                && is_pod_ready(p)
        })
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let transition = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        current_healthy: Some(healthy),
        desired_healthy: Some(desired),
        disruptions_allowed: Some(allowed),
        expected_pods: Some(expected),
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: pdb.metadata.generation,
            last_transition_time: transition,
        }]),
    }
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod: Pod| {
                budgets
                    .state()
                    .iter()
                    .filter(|b| b.namespace() == pod.namespace())
                    .map(|b| ObjectRef::from_obj(b.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            Arc::new(client),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The `spec.replicas` of the controllers of `pods` (a ReplicaSet owned
/// by a Deployment counts with the Deployment's).
async fn scales(client: &Client, ns: &str, pods: &[&Pod]) -> Result<Scales> {
    let mut out = Scales::new();
    for p in pods {
        let Some(owner) = controller_of(&p.metadata) else {
            continue;
        };
        if out.contains_key(&owner.uid) {
            continue;
        }
        let replicas = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                    .get_opt(&owner.name)
                    .await?;
                match rs.as_ref().and_then(|rs| controller_of(&rs.metadata)) {
                    Some(d) if d.kind == "Deployment" => {
                        Api::<Deployment>::namespaced(client.clone(), ns)
                            .get_opt(&d.name)
                            .await?
                            .and_then(|d| d.spec.replicas)
                    }
                    _ => rs.and_then(|rs| rs.spec.replicas),
                }
            }
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
                .and_then(|s| s.spec.replicas),
            "ReplicationController" => Api::<ReplicationController>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
                .and_then(|s| s.spec.and_then(|s| s.replicas)),
            _ => None,
        };
        if let Some(r) = replicas {
            out.insert(owner.uid.clone(), r);
        }
    }
    Ok(out)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, client: Arc<Client>) -> Result<Action> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let all = Api::<Pod>::namespaced((*client).clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let pods: Vec<&Pod> = all.items.iter().filter(|p| selects(&pdb, p)).collect();
    let scales = scales(&client, &ns, &pods).await?;
    let now = Timestamp::now();
    let status = plan(&pdb, &pods, &scales, now);
    if pdb.status.as_ref() != Some(&status) {
        // A whole-status write at the version read, as kube's controller
        // does: an eviction that took a disruption meanwhile (a status write
        // of its own) makes this one conflict and be computed again, and
        // entries leaving `disruptedPods` are really removed.
        let api = Api::<PodDisruptionBudget>::namespaced((*client).clone(), &ns);
        let updated = PodDisruptionBudget {
            status: Some(status.clone()),
            ..(*pdb).clone()
        };
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Disrupted pods leave the map when they time out.
    Ok(match status.disrupted_pods {
        Some(_) => Action::requeue(Duration::from_secs(15)),
        None => Action::await_change(),
    })
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, err: &Error, _ctx: Arc<Client>) -> Action {
    tracing::debug!(pdb = %pdb.name_any(), error = %err, "disruption budget status failed");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, ready: bool, owner: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"},
                "ownerReferences": owner.map(|uid| vec![json!({"apiVersion": "apps/v1",
                    "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true})])},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn min_available_and_max_unavailable_give_kubes_numbers() {
        let now = Timestamp::from_second(1_000).unwrap();
        let pods = [
            pod("a", true, Some("rs1")),
            pod("b", true, Some("rs1")),
            pod("c", false, Some("rs1")),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let scales = Scales::from([("rs1".to_string(), 4)]);
        let sel = json!({"matchLabels": {"app": "web"}});
        let cases = [
            (json!({"minAvailable": 2, "selector": sel}), (3, 2, 2, 0)),
            (json!({"minAvailable": 1, "selector": sel}), (3, 1, 2, 1)),
            (
                json!({"minAvailable": "50%", "selector": sel}),
                (4, 2, 2, 0),
            ),
            (json!({"maxUnavailable": 1, "selector": sel}), (4, 3, 2, 0)),
            (
                json!({"maxUnavailable": "50%", "selector": sel}),
                (4, 2, 2, 0),
            ),
            (json!({"maxUnavailable": 3, "selector": sel}), (4, 1, 2, 1)),
        ];
        for (spec, (expected, desired, healthy, allowed)) in cases {
            let s = plan(&pdb(spec.clone()), &refs, &scales, now);
            assert_eq!(
                (
                    s.expected_pods,
                    s.desired_healthy,
                    s.current_healthy,
                    s.disruptions_allowed
                ),
                (Some(expected), Some(desired), Some(healthy), Some(allowed)),
                "{spec}"
            );
            assert_eq!(s.observed_generation, Some(2));
            let c = &s.conditions.unwrap()[0];
            assert_eq!(
                c.reason,
                if allowed > 0 {
                    "SufficientPods"
                } else {
                    "InsufficientPods"
                }
            );
        }
    }

    #[test]
    fn evicted_pods_stay_unhealthy_for_the_deletion_timeout() {
        let now = Timestamp::from_second(1_000).unwrap();
        let pods = [pod("a", true, None), pod("b", true, None)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut budget =
            pdb(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}));
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                ("a".to_string(), Time(Timestamp::from_second(990).unwrap())),
                (
                    "gone".to_string(),
                    Time(Timestamp::from_second(990).unwrap()),
                ),
            ])),
            ..Default::default()
        });
        let s = plan(&budget, &refs, &Scales::new(), now);
        assert_eq!(
            (s.current_healthy, s.disruptions_allowed),
            (Some(1), Some(0))
        );
        assert_eq!(
            s.disrupted_pods.as_ref().unwrap().len(),
            1,
            "gone pods leave"
        );
        let later = Timestamp::from_second(1_200).unwrap();
        let s = plan(&budget, &refs, &Scales::new(), later);
        assert_eq!((s.current_healthy, s.disrupted_pods), (Some(2), None));
    }

    #[test]
    fn empty_selectors_select_nothing() {
        let p = pod("a", true, None);
        assert!(!selects(&pdb(json!({"selector": {}})), &p));
        assert!(!selects(&pdb(json!({})), &p));
        assert!(selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "web"}}})),
            &p
        ));
    }
}
