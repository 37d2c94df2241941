//! The horizontal pod autoscaler, as kube-controller-manager's
//! `horizontalpodautoscaling` controller (pkg/controller/podautoscaler)
//! runs it with default flags: every [`SYNC_PERIOD`] each
//! HorizontalPodAutoscaler (autoscaling/v2) is reconciled against its
//! target's `scale` subresource.
//!
//! * The target's scale is read (`AbleToScale` `FailedGetScale` when it
//!   cannot be); a target outside `[minReplicas, maxReplicas]` is brought
//!   back into it without metrics; a target at 0 replicas is left alone
//!   (`ScalingActive` `ScalingDisabled`).
//! * Each metric proposes a replica count ([`calculate`], the replica
//!   calculator): `Resource` and `ContainerResource` metrics read
//!   `metrics.k8s.io` PodMetrics of the pods the scale's selector selects,
//!   with upstream's handling of pending, unready (CPU only), missing and
//!   deleted pods and its tolerance of 10 %. `Pods`, `Object` and
//!   `External` metrics need custom or external metrics APIs, which a
//!   virtual cluster does not serve: they fail as upstream fails without
//!   those APIs. Without any metrics API, no metric proposes anything and
//!   nothing is scaled (`ScalingActive` `False`, `FailedGetResourceMetric`).
//! * The largest proposal is stabilised and limited ([`History`]): without
//!   `spec.behavior`, the highest recommendation of the last 5 minutes
//!   before scaling down and at most `max(2 × current, 4)` when scaling up;
//!   with `spec.behavior`, its stabilisation windows and scaling policies.
//!   `ScalingLimited` tells whether `minReplicas`/`maxReplicas` or a rate
//!   limit cut the proposal.
//! * The scale is written, `status` (`currentReplicas`, `desiredReplicas`,
//!   `currentMetrics`, `lastScaleTime`, conditions) updated and Events
//!   recorded (`SuccessfulRescale`, `FailedGetResourceMetric`, …).
//!
//! The decisions are pure ([`plan`], [`calculate`], [`History`]); [`run`]
//! does the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricTarget, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::events::{Event, EventType, Recorder, Reporter};
use kube_runtime::watcher;
use serde_json::Value;
use vkube_core::quantity::{Format, Quantity};

use crate::{Error, Result};

/// How often each autoscaler is reconciled
/// (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// The usage ratio band around 1.0 that does not rescale
/// (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// The scale-down stabilisation window of autoscalers without a behavior
/// (`--horizontal-pod-autoscaler-downscale-stabilization`).
pub const DOWNSCALE_STABILIZATION: SignedDuration = SignedDuration::from_secs(300);
/// After a pod starts, how long its CPU samples are checked against its
/// readiness (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_PERIOD: SignedDuration = SignedDuration::from_secs(300);
/// After a pod starts, how long a not-ready pod counts as not yet ready
/// rather than failing (`--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const INITIAL_READINESS_DELAY: SignedDuration = SignedDuration::from_secs(30);

/// One pod's usage of one resource from its PodMetrics: milli-units, when
/// sampled and over which window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodMetric {
    /// Usage in milli-units (millicores, millibytes).
    pub value: i64,
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// The sampling window.
    pub window: SignedDuration,
}

/// Pod name → usage of one resource.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// A quantity in milli-units, rounded up (`Quantity.MilliValue`).
pub fn milli_value(q: &str) -> Option<i64> {
    let q = Quantity::parse(q).ok()?;
    i64::try_from((q.nanos + 999_999).div_euclid(1_000_000)).ok()
}

/// A current value as `buildQuantity` makes it: `m` milli-units, memory in
/// binary form (`21Mi`, as metrics-server reports it), the rest decimal.
fn milli_quantity(resource: &str, m: i64) -> KubeQuantity {
    let format = if resource == "memory" {
        Format::BinarySI
    } else {
        Format::DecimalSI
    };
    KubeQuantity(
        Quantity {
            nanos: i128::from(m) * 1_000_000,
            format,
        }
        .to_string(),
    )
}

/// The usage of `resource` per pod from metrics.k8s.io PodMetrics items, as
/// the resource metrics client reads them: with `container`, that
/// container's usage (pods without it are left out); without, the sum over
/// the containers (pods where one container lacks the resource are left
/// out).
pub fn pod_metrics(items: &[Value], resource: &str, container: Option<&str>) -> PodMetrics {
    let mut out = PodMetrics::new();
    for m in items {
        let Some(name) = m.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let timestamp = m
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let window = m
            .get("window")
            .and_then(Value::as_str)
            .and_then(|w| w.parse().ok())
            .unwrap_or(SignedDuration::ZERO);
        let containers = m
            .get("containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let usage = |c: &Value| {
            c.pointer(&format!("/usage/{resource}"))
                .and_then(Value::as_str)
                .and_then(milli_value)
        };
        let value = match container {
            Some(want) => containers
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(want))
                .and_then(usage),
            None if containers.is_empty() => None,
            None => containers
                .iter()
                .map(usage)
                .try_fold(0i64, |sum, v| v.map(|v| sum.saturating_add(v))),
        };
        if let Some(value) = value {
            out.insert(
                name.to_string(),
                PodMetric {
                    value,
                    timestamp,
                    window,
                },
            );
        }
    }
    out
}

/// The pods behind a calculation, as `groupPods` sorts them.
#[derive(Debug, Default, PartialEq)]
pub struct PodGroups {
    /// Pods with a sample that count as ready.
    pub ready: usize,
    /// Pending pods, and for CPU pods whose sample may predate readiness.
    pub unready: BTreeSet<String>,
    /// Running pods without a sample.
    pub missing: BTreeSet<String>,
    /// Deleted or failed pods.
    pub ignored: BTreeSet<String>,
}

/// The pod's Ready condition: whether it is `False`, and since when.
fn ready_condition(pod: &Pod) -> Option<(bool, Timestamp)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        c.status == "False",
        c.last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    ))
}

/// Sorts `pods` for a calculation (`groupPods`): CPU samples of a pod that
/// started less than [`CPU_INITIALIZATION_PERIOD`] ago count only once the
/// pod is ready and the sample window began after it became ready.
pub fn group_pods(pods: &[Pod], metrics: &PodMetrics, cpu: bool, now: Timestamp) -> PodGroups {
    let mut g = PodGroups::default();
    for pod in pods {
        let name = pod.name_any();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if cpu {
            let start = pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            // Times are tenant input: a sum past the representable range
            // counts as the far future.
            let later =
                |t: Timestamp, d: SignedDuration| t.checked_add(d).unwrap_or(Timestamp::MAX);
            let unready = match (ready_condition(pod), start) {
                (None, _) | (_, None) => true,
                (Some((not_ready, since)), Some(start)) => {
                    if later(start, CPU_INITIALIZATION_PERIOD) > now {
                        not_ready || metric.timestamp < later(since, metric.window)
                    } else {
                        not_ready && later(start, INITIAL_READINESS_DELAY) > since
                    }
                }
            };
            if unready {
                g.unready.insert(name);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Each pod's request of `resource` in milli-units (`calculateRequests`):
/// the pod-level request when the pod sets one and no container is named,
/// else the sum over its containers and restartable init containers (only
/// `container` when named). Errors when a counted container has no request.
pub fn pod_requests(
    pods: &[Pod],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let pod_level = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))
            .and_then(|q| milli_value(&q.0));
        if let (None, Some(v)) = (container, pod_level) {
            out.insert(pod.name_any(), v);
            continue;
        }
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        for c in spec.containers.iter().chain(sidecars) {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| milli_value(&q.0));
            match request {
                Some(v) => sum = sum.saturating_add(v),
                None => {
                    return Err(format!(
                        "missing request for {resource} in container {} of Pod {}",
                        c.name,
                        pod.name_any()
                    ));
                }
            }
        }
        out.insert(pod.name_any(), sum);
    }
    Ok(out)
}

/// What a metric is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A percentage of the pods' requests (`averageUtilization`).
    Utilization {
        /// The target percentage.
        percent: i32,
        /// Each pod's request ([`pod_requests`]).
        requests: &'a BTreeMap<String, i64>,
    },
    /// An average usage per pod, milli-units (`averageValue`).
    AverageValue(i64),
}

/// A replica count a metric proposes, with the current value it saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The proposed replica count.
    pub replicas: i32,
    /// The current average utilization (utilization targets).
    pub utilization: Option<i32>,
    /// The current average usage per pod, milli-units.
    pub average: i64,
}

/// The usage ratio, and for utilization the current percentage and the
/// average usage (`GetResourceUtilizationRatio`, `GetMetricUsageRatio`).
fn usage_ratio(
    metrics: &PodMetrics,
    target: Target<'_>,
) -> Result<(f64, Option<i32>, i64), String> {
    match target {
        Target::Utilization { percent, requests } => {
            let (mut usage, mut requested, mut n) = (0i64, 0i64, 0i64);
            for (pod, m) in metrics {
                let Some(r) = requests.get(pod) else {
                    continue;
                };
                usage += m.value;
                requested += r;
                n += 1;
            }
            if requested == 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let current = i32::try_from(usage * 100 / requested).unwrap_or(i32::MAX);
            Ok((
                f64::from(current) / f64::from(percent),
                Some(current),
                usage / n,
            ))
        }
        Target::AverageValue(target) => {
            let total: i64 = metrics.values().map(|m| m.value).sum();
            let average = total / metrics.len().max(1) as i64;
            Ok((average as f64 / target as f64, None, average))
        }
    }
}

/// The replica calculator (`GetResourceReplicas`, `GetRawResourceReplicas`):
/// the ready pods' ratio to the target times their number, rounded up; when
/// pods lack samples or are not ready, the ratio is recomputed assuming
/// them at the target (or idle) in whichever way damps the change, and the
/// proposal is dropped when that flips its direction. Within `tolerance` of
/// the target, the current count.
///
/// Errors (upstream's texts): no pods, no sample of a counted pod.
pub fn calculate(
    current: i32,
    target: Target<'_>,
    pods: &[Pod],
    mut metrics: PodMetrics,
    cpu: bool,
    tolerance: f64,
    now: Timestamp,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, &metrics, cpu, now);
    for p in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(p);
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, utilization, average) = usage_ratio(&metrics, target)?;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    // Tolerances.isWithin.
    let within = |r: f64| (1.0 - tolerance) <= r && r <= (1.0 + tolerance);
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if within(ratio) {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * groups.ready as f64).ceil() as i32));
    }
    let filler = |pod: &str| match target {
        Target::Utilization { percent, requests } => {
            requests.get(pod).copied().unwrap_or(0) * i64::from(percent.max(100)) / 100
        }
        Target::AverageValue(v) => v,
    };
    let sample = |value| PodMetric {
        value,
        timestamp: now,
        window: SignedDuration::ZERO,
    };
    if ratio < 1.0 {
        for p in &groups.missing {
            metrics.insert(p.clone(), sample(filler(p)));
        }
    } else if ratio > 1.0 {
        for p in &groups.missing {
            metrics.insert(p.clone(), sample(0));
        }
    }
    if scale_up_with_unready {
        for p in &groups.unready {
            metrics.insert(p.clone(), sample(0));
        }
    }
    let (new_ratio, _, _) = usage_ratio(&metrics, target)?;
    if within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    change: i32,
    at: Timestamp,
    outdated: bool,
}

/// What an autoscaler remembers between reconciles (upstream keeps it in
/// the controller, not in the object): its recent recommendations and, with
/// a behavior, its recent scale events.
#[derive(Clone, Debug, Default)]
pub struct History {
    recommendations: Vec<(i32, Timestamp)>,
    scale_up: Vec<ScaleEvent>,
    scale_down: Vec<ScaleEvent>,
}

fn seconds(n: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(n))
}

impl History {
    /// `recordInitialRecommendation`: the current count, first seen.
    fn record_initial(&mut self, current: i32, now: Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push((current, now));
        }
    }

    /// Replaces one sample older than both windows, else appends.
    fn remember(&mut self, desired: i32, now: Timestamp, older: impl Fn(Timestamp) -> bool) {
        match self.recommendations.iter().position(|(_, at)| older(*at)) {
            Some(i) => self.recommendations[i] = (desired, now),
            None => self.recommendations.push((desired, now)),
        }
    }

    /// `stabilizeRecommendation`: the highest recommendation of the
    /// scale-down window, this one included.
    fn stabilize(&mut self, desired: i32, now: Timestamp) -> i32 {
        let cutoff = now - DOWNSCALE_STABILIZATION;
        let highest = self
            .recommendations
            .iter()
            .filter(|(_, at)| *at >= cutoff)
            .map(|(r, _)| *r)
            .fold(desired, i32::max);
        self.remember(desired, now, |at| at < cutoff);
        highest
    }

    /// `stabilizeRecommendationWithBehaviors`: the lowest recommendation of
    /// the scale-up window and the highest of the scale-down window bound
    /// the current count.
    fn stabilize_with_behavior(
        &mut self,
        current: i32,
        desired: i32,
        up_window: i32,
        down_window: i32,
        now: Timestamp,
    ) -> (i32, &'static str, &'static str) {
        let up_cutoff = now - seconds(up_window);
        let down_cutoff = now - seconds(down_window);
        let (mut up, mut down) = (desired, desired);
        for (r, at) in &self.recommendations {
            if *at > up_cutoff {
                up = up.min(*r);
            }
            if *at > down_cutoff {
                down = down.max(*r);
            }
        }
        let recommendation = current.max(up).min(down);
        self.remember(desired, now, |at| at < up_cutoff && at < down_cutoff);
        if desired >= current {
            (
                recommendation,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            (
                recommendation,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        }
    }

    /// The replicas added (`up`) or removed in the last `period` seconds.
    fn changed_within(&self, up: bool, period: i32, now: Timestamp) -> i32 {
        let cutoff = now - seconds(period);
        let events = if up { &self.scale_up } else { &self.scale_down };
        events
            .iter()
            .filter(|e| e.at > cutoff)
            .map(|e| e.change)
            .sum()
    }

    /// `storeScaleEvent`: with a behavior, the rescale is remembered for
    /// its direction's policies (one event past the longest period is
    /// reused).
    pub fn store_scale_event(
        &mut self,
        rules: Option<&Rules>,
        previous: i32,
        new: i32,
        now: Timestamp,
    ) {
        let Some(rules) = rules else {
            return;
        };
        let (events, longest, change) = if new > previous {
            (
                &mut self.scale_up,
                rules.up.longest_period(),
                new - previous,
            )
        } else {
            (
                &mut self.scale_down,
                rules.down.longest_period(),
                previous - new,
            )
        };
        let cutoff = now - seconds(longest);
        for e in events.iter_mut() {
            if e.at < cutoff {
                e.outdated = true;
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match events.iter().rposition(|e| e.outdated) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

/// One direction's scaling rules with the autoscaling/v2 defaults filled in
/// (`SetDefaults_HorizontalPodAutoscalerBehavior`).
#[derive(Clone, Debug, PartialEq)]
pub struct Direction {
    /// Stabilisation window, seconds.
    pub window: i32,
    /// `Max`, `Min` or `Disabled`.
    pub select: String,
    /// `(type, value, periodSeconds)`: `Pods` or `Percent`.
    pub policies: Vec<(String, i32, i32)>,
}

impl Direction {
    fn longest_period(&self) -> i32 {
        self.policies.iter().map(|p| p.2).max().unwrap_or(0)
    }
}

/// An autoscaler's behavior, defaulted.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Scaling up.
    pub up: Direction,
    /// Scaling down.
    pub down: Direction,
}

impl Rules {
    /// The behavior of `spec.behavior`, or `None` without one (the
    /// controller then applies its own defaults).
    pub fn of(hpa: &HorizontalPodAutoscaler) -> Option<Rules> {
        let b = hpa.spec.behavior.as_ref()?;
        let direction = |r: Option<&HPAScalingRules>, up: bool| {
            let policies = r
                .and_then(|r| r.policies.as_ref())
                .map(|ps| {
                    ps.iter()
                        .map(|p| (p.type_.clone(), p.value, p.period_seconds))
                        .collect()
                })
                .unwrap_or_else(|| {
                    if up {
                        vec![("Percent".into(), 100, 15), ("Pods".into(), 4, 15)]
                    } else {
                        vec![("Percent".into(), 100, 15)]
                    }
                });
            Direction {
                window: r
                    .and_then(|r| r.stabilization_window_seconds)
                    .unwrap_or(if up { 0 } else { 300 }),
                select: r
                    .and_then(|r| r.select_policy.clone())
                    .unwrap_or_else(|| "Max".into()),
                policies,
            }
        };
        Some(Rules {
            up: direction(b.scale_up.as_ref(), true),
            down: direction(b.scale_down.as_ref(), false),
        })
    }
}

/// Sets condition `type_` as `setConditionInList` does: the transition time
/// changes only with the status.
pub fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let i = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[i];
    if c.status != status {
        c.last_transition_time = Some(Time(now));
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

/// The target's `scale` subresource as the autoscaler reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleView {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.selector`, a label selector string.
    pub selector: String,
}

/// What one reconcile saw.
pub struct Observed<'a> {
    /// The autoscaler.
    pub hpa: &'a HorizontalPodAutoscaler,
    /// Its target's scale, or why it could not be read.
    pub scale: Result<ScaleView, String>,
    /// Why the scale's selector could not be used to list pods, if it
    /// could not.
    pub selector_error: Option<String>,
    /// The pods the scale's selector selects.
    pub pods: &'a [Pod],
    /// The PodMetrics of those pods (metrics.k8s.io items), or why they
    /// could not be read.
    pub metrics: &'a Result<Vec<Value>, String>,
    /// Now.
    pub now: Timestamp,
}

/// What a reconcile decided.
#[derive(Debug)]
pub struct Plan {
    /// The status to write when no rescale is attempted, or once it
    /// succeeded ([`Plan::rescaled`]) or failed ([`Plan::rescale_failed`]).
    pub status: HorizontalPodAutoscalerStatus,
    /// Scale the target to this many replicas, for this reason.
    pub rescale: Option<(i32, String)>,
    /// Events to record: (type, reason, note).
    pub events: Vec<(EventType, &'static str, String)>,
    current: i32,
}

impl Plan {
    /// The rescale was written: `AbleToScale` `SucceededRescale`,
    /// `lastScaleTime`, a `SuccessfulRescale` Event.
    pub fn rescaled(&mut self, now: Timestamp) {
        let Some((desired, reason)) = self.rescale.clone() else {
            return;
        };
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        set_condition(
            conds,
            "AbleToScale",
            "True",
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
            now,
        );
        self.status.last_scale_time = Some(Time(now));
        self.events.push((
            EventType::Normal,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        ));
    }

    /// The rescale failed: `AbleToScale` `FailedUpdateScale`, the desired
    /// count left as it was, a `FailedRescale` Event.
    pub fn rescale_failed(&mut self, previous_desired: i32, error: &str, now: Timestamp) {
        let Some((desired, reason)) = self.rescale.clone() else {
            return;
        };
        self.events.push((
            EventType::Warning,
            "FailedRescale",
            format!("New size: {desired}; reason: {reason}; error: {error}"),
        ));
        let conds = self.status.conditions.get_or_insert_with(Vec::new);
        set_condition(
            conds,
            "AbleToScale",
            "False",
            "FailedUpdateScale",
            format!("the HPA controller was unable to update the target scale: {error}"),
            now,
        );
        self.status.current_replicas = Some(self.current);
        self.status.desired_replicas = previous_desired;
    }
}

/// One metric's outcome: its proposal and status, or the condition and
/// error that explain why it has none.
type MetricOutcome = Result<(i32, String, MetricStatus), (&'static str, String)>;

fn compute_metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[Pod],
    metrics: &Result<Vec<Value>, String>,
    now: Timestamp,
) -> MetricOutcome {
    let resource = |name: &str, container: Option<&str>, target: &MetricTarget| {
        let wrap = |e: String| {
            if target.average_value.is_some() {
                format!("failed to get {name} usage: {e}")
            } else {
                format!("failed to get {name} utilization: {e}")
            }
        };
        let items = match metrics {
            Err(e) => {
                return Err(wrap(format!(
                    "unable to get metrics for resource {name}: {e}"
                )));
            }
            Ok(items) if items.is_empty() => {
                return Err(wrap(format!(
                    "unable to get metrics for resource {name}: no metrics returned from resource metrics API"
                )));
            }
            Ok(items) => items,
        };
        let usage = pod_metrics(items, name, container);
        let cpu = name == "cpu";
        let kind = if container.is_some() {
            "container resource"
        } else {
            "resource"
        };
        if let Some(v) = target.average_value.as_ref() {
            let target = milli_value(&v.0).unwrap_or(0).max(1);
            let p = calculate(
                current,
                Target::AverageValue(target),
                pods,
                usage,
                cpu,
                TOLERANCE,
                now,
            )
            .map_err(|e| format!("failed to get {name} usage: {e}"))?;
            let status = MetricValueStatus {
                average_value: Some(milli_quantity(name, p.average)),
                ..Default::default()
            };
            return Ok((p.replicas, format!("{name} {kind}"), status));
        }
        let Some(percent) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".to_string());
        };
        let requests = pod_requests(pods, container, name)
            .map_err(|e| format!("failed to get {name} utilization: {e}"))?;
        let p = calculate(
            current,
            Target::Utilization {
                percent: percent.max(1),
                requests: &requests,
            },
            pods,
            usage,
            cpu,
            TOLERANCE,
            now,
        )
        .map_err(|e| format!("failed to get {name} utilization: {e}"))?;
        let status = MetricValueStatus {
            average_utilization: p.utilization,
            average_value: Some(milli_quantity(name, p.average)),
            ..Default::default()
        };
        Ok((
            p.replicas,
            format!("{name} {kind} utilization (percentage of request)"),
            status,
        ))
    };
    match spec.type_.as_str() {
        "Resource" => {
            let Some(r) = spec.resource.as_ref() else {
                return Err((
                    "FailedGetResourceMetric",
                    "invalid metric source: resource is not set".into(),
                ));
            };
            let (replicas, name, current) =
                resource(&r.name, None, &r.target).map_err(|e| ("FailedGetResourceMetric", e))?;
            Ok((
                replicas,
                name,
                MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: r.name.clone(),
                        current,
                    }),
                    ..Default::default()
                },
            ))
        }
        "ContainerResource" => {
            let Some(r) = spec.container_resource.as_ref() else {
                return Err((
                    "FailedGetContainerResourceMetric",
                    "invalid metric source: containerResource is not set".into(),
                ));
            };
            let (replicas, name, current) = resource(&r.name, Some(&r.container), &r.target)
                .map_err(|e| ("FailedGetContainerResourceMetric", e))?;
            Ok((
                replicas,
                name,
                MetricStatus {
                    type_: "ContainerResource".into(),
                    container_resource: Some(ContainerResourceMetricStatus {
                        name: r.name.clone(),
                        container: r.container.clone(),
                        current,
                    }),
                    ..Default::default()
                },
            ))
        }
        // A virtual cluster serves no custom or external metrics API.
        "Pods" => Err((
            "FailedGetPodsMetric",
            format!(
                "unable to get metric {}: unable to fetch metrics from custom metrics API: the server could not find the requested resource",
                spec.pods.as_ref().map_or("", |p| p.metric.name.as_str())
            ),
        )),
        "Object" => Err((
            "FailedGetObjectMetric",
            format!(
                "unable to get metric {}: unable to fetch metrics from custom metrics API: the server could not find the requested resource",
                spec.object.as_ref().map_or("", |o| o.metric.name.as_str())
            ),
        )),
        "External" => Err((
            "FailedGetExternalMetric",
            format!(
                "unable to get external metric {}: unable to fetch metrics from external metrics API: the server could not find the requested resource",
                spec.external
                    .as_ref()
                    .map_or("", |e| e.metric.name.as_str())
            ),
        )),
        other => Err((
            "InvalidMetricSourceType",
            format!("unknown metric source type {other:?}"),
        )),
    }
}

/// How `computeReplicasForMetric` prefixes a metric's error in the
/// `FailedComputeMetricsReplicas` Event.
fn metric_error_prefix(spec: &MetricSpec) -> String {
    match spec.type_.as_str() {
        "Resource" => format!(
            "failed to get {} resource metric value",
            spec.resource.as_ref().map_or("", |r| r.name.as_str())
        ),
        "ContainerResource" => format!(
            "failed to get {} container metric value",
            spec.container_resource
                .as_ref()
                .map_or("", |r| r.container.as_str())
        ),
        "Pods" => "failed to get pods metric value".into(),
        "Object" => "failed to get object metric value".into(),
        "External" => format!(
            "failed to get {} external metric value",
            spec.external
                .as_ref()
                .map_or("", |e| e.metric.name.as_str())
        ),
        _ => "invalid metric source type".into(),
    }
}

/// One reconcile's decisions (`reconcileAutoscaler`), given what it saw and
/// the autoscaler's [`History`] (updated).
pub fn plan(seen: &Observed<'_>, history: &mut History) -> Plan {
    let hpa = seen.hpa;
    let now = seen.now;
    let old = hpa.status.clone().unwrap_or_default();
    let mut status = HorizontalPodAutoscalerStatus {
        conditions: old.conditions.clone(),
        current_metrics: old.current_metrics.clone(),
        current_replicas: old.current_replicas,
        desired_replicas: old.desired_replicas,
        last_scale_time: old.last_scale_time.clone(),
        observed_generation: old.observed_generation,
    };
    let mut conds = status.conditions.take().unwrap_or_default();
    let mut events = Vec::new();
    let scale = match &seen.scale {
        Ok(s) => s.clone(),
        Err(e) => {
            events.push((EventType::Warning, "FailedGetScale", e.clone()));
            set_condition(
                &mut conds,
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
                now,
            );
            status.conditions = Some(conds);
            return Plan {
                status,
                rescale: None,
                events,
                current: old.current_replicas.unwrap_or(0),
            };
        }
    };
    set_condition(
        &mut conds,
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        now,
    );
    let current = scale.replicas;
    history.record_initial(current, now);
    let min = hpa.spec.min_replicas.unwrap_or(1);
    let max = hpa.spec.max_replicas;
    let metric_specs = hpa.spec.metrics.clone().unwrap_or_default();
    let mut statuses: Vec<MetricStatus> = Vec::new();
    let mut desired;
    let mut rescale_reason = String::new();
    let rescale;
    if current == 0 && min != 0 {
        desired = 0;
        rescale = false;
        set_condition(
            &mut conds,
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
            now,
        );
    } else if current > max {
        rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
        rescale = desired != current;
    } else if current < min {
        rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
        rescale = desired != current;
    } else {
        // computeReplicasForMetrics.
        let mut proposal = 0;
        let mut metric_name = String::new();
        let mut first_failure: Option<(&'static str, String)> = None;
        let mut first_error = String::new();
        let mut failures = 0;
        let failed = |mut status: HorizontalPodAutoscalerStatus,
                      conds: Vec<HorizontalPodAutoscalerCondition>,
                      statuses: Vec<MetricStatus>,
                      events: Vec<(EventType, &'static str, String)>| {
            // setCurrentReplicasAndMetricsInStatus.
            status.current_replicas = Some(current);
            status.current_metrics = Some(statuses).filter(|s| !s.is_empty());
            status.observed_generation = None;
            status.conditions = Some(conds);
            Plan {
                status,
                rescale: None,
                events,
                current,
            }
        };
        if scale.selector.is_empty() {
            events.push((
                EventType::Warning,
                "SelectorRequired",
                "selector is required".into(),
            ));
            set_condition(
                &mut conds,
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
                now,
            );
            events.push((
                EventType::Warning,
                "FailedComputeMetricsReplicas",
                "selector is required".into(),
            ));
            return failed(status, conds, statuses, events);
        }
        if let Some(e) = &seen.selector_error {
            let why = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            events.push((EventType::Warning, "InvalidSelector", why.clone()));
            set_condition(
                &mut conds,
                "ScalingActive",
                "False",
                "InvalidSelector",
                why.clone(),
                now,
            );
            events.push((EventType::Warning, "FailedComputeMetricsReplicas", why));
            return failed(status, conds, statuses, events);
        }
        for spec in &metric_specs {
            match compute_metric(spec, current, seen.pods, seen.metrics, now) {
                Ok((replicas, name, st)) => {
                    statuses.push(st);
                    if proposal == 0 || replicas > proposal {
                        proposal = replicas;
                        metric_name = name;
                    }
                }
                Err((reason, e)) => {
                    // An empty status holds the failed metric's place.
                    statuses.push(MetricStatus::default());
                    events.push((EventType::Warning, reason, e.clone()));
                    if first_failure.is_none() {
                        first_failure = Some((reason, e.clone()));
                        first_error = format!("{}: {e}", metric_error_prefix(spec));
                    }
                    failures += 1;
                }
            }
        }
        if let Some((reason, e)) = first_failure
            && (failures >= metric_specs.len() || proposal < current)
        {
            set_condition(
                &mut conds,
                "ScalingActive",
                "False",
                reason,
                format!("the HPA was unable to compute the replica count: {e}"),
                now,
            );
            events.push((
                EventType::Warning,
                "FailedComputeMetricsReplicas",
                format!(
                    "invalid metrics ({failures} invalid out of {}), first error is: {first_error}",
                    metric_specs.len()
                ),
            ));
            return failed(status, conds, statuses, events);
        }
        set_condition(
            &mut conds,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {metric_name}"
            ),
            now,
        );
        desired = 0;
        let mut rescale_metric = String::new();
        if proposal > desired {
            desired = proposal;
            rescale_metric = metric_name;
        }
        if desired > current {
            rescale_reason = format!("{rescale_metric} above target");
        }
        if desired < current {
            rescale_reason = "All metrics below target".into();
        }
        // normalizeDesiredReplicas / normalizeDesiredReplicasWithBehaviors:
        // stabilise, then limit; both report through the same conditions.
        let rules = Rules::of(hpa);
        let (stabilized, stabilize_reason, stabilize_message) = match &rules {
            None => (
                history.stabilize(desired, now),
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            ),
            Some(r) => {
                history.stabilize_with_behavior(current, desired, r.up.window, r.down.window, now)
            }
        };
        let (reason, message) = if stabilized != desired {
            (stabilize_reason, stabilize_message)
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        set_condition(
            &mut conds,
            "AbleToScale",
            "True",
            reason,
            message.into(),
            now,
        );
        let (limited, reason, message) = match &rules {
            None => limit_with_rules(current, stabilized, min, max),
            Some(r) => limit_with_behavior(history, r, current, stabilized, min, max, now),
        };
        let status = if limited == stabilized {
            "False"
        } else {
            "True"
        };
        set_condition(
            &mut conds,
            "ScalingLimited",
            status,
            reason,
            message.into(),
            now,
        );
        desired = limited;
        rescale = desired != current;
    }
    if !rescale {
        desired = current;
    }
    // setStatus.
    status.current_replicas = Some(current);
    status.desired_replicas = desired;
    status.current_metrics = Some(statuses).filter(|s| !s.is_empty());
    status.observed_generation = None;
    status.conditions = Some(conds);
    Plan {
        status,
        rescale: rescale.then_some((desired, rescale_reason)),
        events,
        current,
    }
}

/// `convertDesiredReplicasWithRules`: within `[min, max]` and at most
/// `max(2 × current, 4)`.
fn limit_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, &'static str, &'static str) {
    let scale_up_limit = (2.0 * f64::from(current)).max(4.0) as i32;
    let (maximum, reason, message) = if max > scale_up_limit {
        (
            scale_up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min {
        return (
            min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        );
    }
    if desired > maximum {
        return (maximum, reason, message);
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// Where a direction's policies let the count go
/// (`calculateScaleUpLimitWithScalingRules`,
/// `calculateScaleDownLimitWithBehaviors`): each policy counted from the
/// replicas at the start of its period (`period_start`); `Max` takes the
/// largest change, `Min` the smallest; `Disabled` allows none.
fn policy_limit(d: &Direction, up: bool, current: i32, period_start: impl Fn(i32) -> i32) -> i32 {
    if d.select == "Disabled" {
        return current;
    }
    let proposals = d.policies.iter().map(|(ty, value, period)| {
        let start = period_start(*period);
        let pct = f64::from(*value) / 100.0;
        match (ty == "Pods", up) {
            (true, true) => start + value,
            (true, false) => start - value,
            (false, true) => (f64::from(start) * (1.0 + pct)).ceil() as i32,
            (false, false) => (f64::from(start) * (1.0 - pct)) as i32,
        }
    });
    // The largest change is the highest count up and the lowest down.
    if (d.select != "Min") == up {
        proposals.max().unwrap_or(i32::MIN)
    } else {
        proposals.min().unwrap_or(i32::MAX)
    }
}

/// `convertDesiredReplicasWithBehaviorRate`: the direction's policies,
/// counted from the replicas at the start of each policy's period.
fn limit_with_behavior(
    history: &History,
    rules: &Rules,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    now: Timestamp,
) -> (i32, &'static str, &'static str) {
    let period_start = |period: i32| {
        current - history.changed_within(true, period, now)
            + history.changed_within(false, period, now)
    };
    if desired > current {
        let limit = policy_limit(&rules.up, true, current, period_start).max(current);
        let (maximum, reason, message) = if max > limit {
            (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > maximum {
            return (maximum, reason, message);
        }
    } else if desired < current {
        let limit = policy_limit(&rules.down, false, current, period_start).min(current);
        let (minimum, reason, message) = if min < limit {
            (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < minimum {
            return (minimum, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

// ---------------------------------------------------------------------------
// The loop.

struct Ctx {
    client: Client,
    recorder: Recorder,
    /// Per autoscaler (`namespace/name/uid`): its history and when it was
    /// last reconciled.
    state: Mutex<HashMap<String, (History, Option<Timestamp>)>>,
    /// Scale targets' resources by (group, kind), from discovery.
    targets: Mutex<HashMap<(String, String), ApiResource>>,
    autoscalers: Store<HorizontalPodAutoscaler>,
}

/// Runs the controller until the process ends.
pub async fn run(client: Client) {
    let controller = Controller::new(
        Api::<HorizontalPodAutoscaler>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "horizontal-pod-autoscaler".into(),
                instance: None,
            },
        ),
        state: Mutex::new(HashMap::new()),
        targets: Mutex::new(HashMap::new()),
        autoscalers: controller.store(),
    });
    controller
        .run(
            crate::measured(reconcile),
            crate::counted(error_policy),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_: Arc<HorizontalPodAutoscaler>, e: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "horizontal pod autoscaler");
    Action::requeue(SYNC_PERIOD)
}

/// An API error as its `Status` message (what upstream's Events carry).
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// The scale subresource of the target, its kind resolved within its API
/// group whatever version `scaleTargetRef` names (as the REST mapper does).
async fn target_scale(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(Api<DynamicObject>, ScaleView), String> {
    let client = &ctx.client;
    let r = &hpa.spec.scale_target_ref;
    let api_version = r.api_version.clone().unwrap_or_default();
    let group = api_version
        .split_once('/')
        .map_or("", |(g, _)| g)
        .to_string();
    let unmapped = || {
        format!(
            "unable to determine resource for scale target reference: no matches for kind {:?} in group {group:?}",
            r.kind
        )
    };
    // Discovery once per group and kind, not at every sync of every
    // autoscaler (built-in kinds do not move between versions at run time).
    let cache_key = (group.clone(), r.kind.clone());
    let cached = ctx
        .targets
        .lock()
        .expect("target cache")
        .get(&cache_key)
        .cloned();
    let ar = match cached {
        Some(ar) => ar,
        None => {
            let found = kube::discovery::group(client, &group)
                .await
                .map_err(|_| unmapped())?;
            let (ar, _) = found.recommended_kind(&r.kind).ok_or_else(unmapped)?;
            ctx.targets
                .lock()
                .expect("target cache")
                .insert(cache_key, ar.clone());
            ar
        }
    };
    let api = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &hpa.namespace().unwrap_or_default(),
        &ar,
    );
    let scale = api.get_scale(&r.name).await.map_err(|e| api_message(&e))?;
    Ok((
        api,
        ScaleView {
            replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            selector: scale.status.and_then(|s| s.selector).unwrap_or_default(),
        },
    ))
}

/// The metrics.k8s.io PodMetrics of `selector`'s pods in `ns`.
async fn pod_metrics_items(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<Vec<Value>, String> {
    let ar = ApiResource {
        group: vkube_core::metrics::GROUP.into(),
        version: vkube_core::metrics::VERSION.into(),
        api_version: format!(
            "{}/{}",
            vkube_core::metrics::GROUP,
            vkube_core::metrics::VERSION
        ),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => {
                "unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)".to_string()
            }
            e => format!("unable to fetch metrics from resource metrics API: {}", api_message(&e)),
        })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

/// An autoscaler's key in the controller's state: the uid included, so a
/// recreated autoscaler starts afresh.
fn state_key(h: &HorizontalPodAutoscaler) -> String {
    format!(
        "{}/{}/{}",
        h.namespace().unwrap_or_default(),
        h.name_any(),
        h.uid().unwrap_or_default()
    )
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = hpa.namespace().unwrap_or_default();
    let key = state_key(&hpa);
    let now = Timestamp::now();
    {
        // Each autoscaler is reconciled once per sync period, whatever
        // events come (upstream queues every key with that delay); the
        // state of autoscalers that are gone is dropped.
        let mut state = ctx.state.lock().expect("autoscaler state");
        if let Some((_, Some(last))) = state.get(&key) {
            let next = last.checked_add(SignedDuration::try_from(SYNC_PERIOD).unwrap_or_default());
            if let Ok(next) = next
                && next > now
            {
                let wait = next.duration_since(now).unsigned_abs();
                return Ok(Action::requeue(wait));
            }
        }
        let live = ctx.autoscalers.state();
        if state.len() > live.len() {
            let keys: std::collections::HashSet<String> =
                live.iter().map(|h| state_key(h)).collect();
            state.retain(|k, _| k == &key || keys.contains(k));
        }
        state.entry(key.clone()).or_default().1 = Some(now);
    }
    let client = &ctx.client;
    let target = target_scale(&ctx, &hpa).await;
    let scale = target
        .as_ref()
        .map(|(_, s)| s.clone())
        .map_err(Clone::clone);
    let needs_metrics = hpa
        .spec
        .metrics
        .iter()
        .flatten()
        .any(|m| matches!(m.type_.as_str(), "Resource" | "ContainerResource"));
    let mut selector_error = None;
    let (pods, metrics) = match &scale {
        Ok(s) if !s.selector.is_empty() => {
            let listed = Api::<Pod>::namespaced(client.clone(), &ns)
                .list(&ListParams::default().labels(&s.selector))
                .await;
            match listed {
                Ok(list) => {
                    let metrics = if needs_metrics {
                        pod_metrics_items(client, &ns, &s.selector).await
                    } else {
                        Ok(Vec::new())
                    };
                    (list.items, metrics)
                }
                Err(kube::Error::Api(s)) if s.code == 400 => {
                    selector_error = Some(s.message.clone());
                    (Vec::new(), Ok(Vec::new()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => (Vec::new(), Ok(Vec::new())),
    };
    let mut plan = {
        let mut state = ctx.state.lock().expect("autoscaler state");
        let (history, _) = state.entry(key.clone()).or_default();
        plan(
            &Observed {
                hpa: &hpa,
                scale,
                selector_error,
                pods: &pods,
                metrics: &metrics,
                now,
            },
            history,
        )
    };
    if let (Some((desired, _)), Ok((api, _))) = (plan.rescale.clone(), &target) {
        let name = &hpa.spec.scale_target_ref.name;
        let body = serde_json::json!({"spec": {"replicas": desired}});
        let written = api
            .patch_scale(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(body),
            )
            .await;
        match written {
            Ok(_) => {
                plan.rescaled(now);
                let rules = Rules::of(&hpa);
                let mut state = ctx.state.lock().expect("autoscaler state");
                state.entry(key.clone()).or_default().0.store_scale_event(
                    rules.as_ref(),
                    plan.current,
                    desired,
                    now,
                );
            }
            Err(e) => {
                let previous = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
                plan.rescale_failed(previous, &api_message(&e), now);
            }
        }
    }
    let reference = hpa.object_ref(&());
    for (type_, reason, note) in &plan.events {
        let event = Event {
            type_: *type_,
            reason: (*reason).into(),
            note: Some(note.clone()),
            action: "Autoscale".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "recording an autoscaler event");
        }
    }
    if hpa.status.as_ref() != Some(&plan.status) {
        let mut updated = (*hpa).clone();
        updated.status = Some(plan.status);
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns)
            .replace_status(&hpa.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    Ok(Action::requeue(SYNC_PERIOD))
}

#[cfg(test)]
mod tests;
