use super::*;
use serde_json::json;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

/// A Running pod, ready and started an hour before `T0`, requesting
/// `cpu`/`memory` in its one container.
fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "d", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": "Running", "startTime": "2025-12-31T23:00:00Z",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": "2025-12-31T23:00:10Z"}]},
    }))
    .unwrap()
}

fn sample(name: &str, cpu: &str, memory: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "d"}, "timestamp": T0, "window": "30s",
           "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}]})
}

fn hpa(spec: Value) -> HorizontalPodAutoscaler {
    let mut doc = json!({
        "metadata": {"name": "web", "namespace": "d"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50}}}]},
    });
    for (k, v) in spec.as_object().unwrap() {
        doc["spec"][k] = v.clone();
    }
    serde_json::from_value(doc).unwrap()
}

fn condition<'a>(
    status: &'a HorizontalPodAutoscalerStatus,
    ty: &str,
) -> &'a HorizontalPodAutoscalerCondition {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("no {ty} condition in {status:?}"))
}

fn scale(replicas: i32) -> Result<ScaleView, String> {
    Ok(ScaleView {
        replicas,
        selector: "app=web".into(),
    })
}

#[test]
fn pod_metrics_sum_containers_or_read_one() {
    let items = vec![
        json!({"metadata": {"name": "a"}, "timestamp": T0, "window": "15s",
               "containers": [{"name": "app", "usage": {"cpu": "100m"}},
                              {"name": "side", "usage": {"cpu": "0.05"}}]}),
        json!({"metadata": {"name": "b"}, "timestamp": T0, "window": "15s",
               "containers": [{"name": "app", "usage": {"cpu": "1"}},
                              {"name": "side", "usage": {}}]}),
    ];
    let all = pod_metrics(&items, "cpu", None);
    assert_eq!(all["a"].value, 150);
    assert_eq!(all["a"].window, SignedDuration::from_secs(15));
    assert!(!all.contains_key("b"), "one container lacks cpu: no sample");
    let app = pod_metrics(&items, "cpu", Some("app"));
    assert_eq!(app["b"].value, 1000);
    assert_eq!(milli_value("1Mi"), Some(1_048_576_000));
    assert_eq!(milli_value("1n"), Some(1), "rounded up");
}

#[test]
fn utilization_above_target_scales_by_the_ratio() {
    let pods = [pod("a", "100m", "1Mi"), pod("b", "100m", "1Mi")];
    let metrics = pod_metrics(
        &[sample("a", "150m", "1Mi"), sample("b", "150m", "1Mi")],
        "cpu",
        None,
    );
    let requests = pod_requests(&pods, None, "cpu").unwrap();
    let p = calculate(
        2,
        Target::Utilization {
            percent: 50,
            requests: &requests,
        },
        &pods,
        metrics,
        true,
        TOLERANCE,
        at(T0),
    )
    .unwrap();
    assert_eq!(
        p,
        Proposal {
            replicas: 6,
            utilization: Some(150),
            average: 150
        }
    );
}

#[test]
fn within_tolerance_keeps_the_count_and_missing_pods_damp_a_scale_down() {
    let pods = [
        pod("a", "100m", "1Mi"),
        pod("b", "100m", "1Mi"),
        pod("c", "100m", "1Mi"),
    ];
    let requests = pod_requests(&pods, None, "cpu").unwrap();
    let target = Target::Utilization {
        percent: 50,
        requests: &requests,
    };
    let near = pod_metrics(
        &[
            sample("a", "52m", "1Mi"),
            sample("b", "52m", "1Mi"),
            sample("c", "52m", "1Mi"),
        ],
        "cpu",
        None,
    );
    let p = calculate(3, target, &pods, near, true, TOLERANCE, at(T0)).unwrap();
    assert_eq!(p.replicas, 3);
    // c has no sample: assumed at its full request while the others are
    // low, which brings the ratio back within the tolerance.
    let low = pod_metrics(
        &[sample("a", "20m", "1Mi"), sample("b", "20m", "1Mi")],
        "cpu",
        None,
    );
    let p = calculate(3, target, &pods, low, true, TOLERANCE, at(T0)).unwrap();
    assert_eq!(p.replicas, 3);
    assert_eq!(p.utilization, Some(20));
}

#[test]
fn a_cpu_sample_taken_before_readiness_counts_as_unready() {
    let mut fresh = pod("new", "100m", "1Mi");
    let st = fresh.status.as_mut().unwrap();
    st.start_time = Some(Time(at("2025-12-31T23:59:30Z")));
    st.conditions.as_mut().unwrap()[0].last_transition_time =
        Some(Time(at("2025-12-31T23:59:50Z")));
    let pods = [pod("old", "100m", "1Mi"), fresh];
    let metrics = pod_metrics(
        &[sample("old", "100m", "1Mi"), sample("new", "100m", "1Mi")],
        "cpu",
        None,
    );
    let g = group_pods(&pods, &metrics, true, at(T0));
    assert_eq!(g.ready, 1);
    assert!(g.unready.contains("new"));
    // Memory has no such rule.
    assert_eq!(group_pods(&pods, &metrics, false, at(T0)).ready, 2);
    let requests = pod_requests(&pods, None, "cpu").unwrap();
    // The ready pod alone is at twice the target; counting the unready one
    // as idle brings the ratio to 1.0, within the tolerance: the count
    // stays.
    let p = calculate(
        2,
        Target::Utilization {
            percent: 50,
            requests: &requests,
        },
        &pods,
        metrics,
        true,
        TOLERANCE,
        at(T0),
    )
    .unwrap();
    assert_eq!(p.replicas, 2);
}

#[test]
fn requests_are_required_and_errors_read_as_upstream() {
    let mut bare = pod("bare", "1", "1Mi");
    bare.spec.as_mut().unwrap().containers[0].resources = None;
    assert_eq!(
        pod_requests(&[bare], None, "cpu").unwrap_err(),
        "missing request for cpu in container app of Pod bare"
    );
    let e = calculate(
        1,
        Target::AverageValue(100),
        &[],
        PodMetrics::new(),
        false,
        TOLERANCE,
        at(T0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "no pods returned by selector while calculating replica count"
    );
    let e = calculate(
        1,
        Target::AverageValue(100),
        &[pod("a", "1", "1Mi")],
        PodMetrics::new(),
        false,
        TOLERANCE,
        at(T0),
    )
    .unwrap_err();
    assert!(
        e.contains("did not receive metrics for targeted pods"),
        "{e}"
    );
}

#[test]
fn without_a_metrics_api_nothing_scales_and_the_conditions_say_why() {
    let h = hpa(json!({}));
    let pods = [pod("a", "100m", "1Mi")];
    let metrics = Err("unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)".to_string());
    let mut history = History::default();
    let plan = plan(
        &Observed {
            hpa: &h,
            scale: scale(1),
            selector_error: None,
            pods: &pods,
            metrics: &metrics,
            now: at(T0),
        },
        &mut history,
    );
    assert!(plan.rescale.is_none());
    let st = &plan.status;
    assert_eq!(st.current_replicas, Some(1));
    assert_eq!(
        condition(st, "AbleToScale").reason.as_deref(),
        Some("SucceededGetScale")
    );
    let active = condition(st, "ScalingActive");
    assert_eq!(active.status, "False");
    assert_eq!(active.reason.as_deref(), Some("FailedGetResourceMetric"));
    assert_eq!(
        active.message.as_deref(),
        Some(
            "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)"
        )
    );
    // The failed metric keeps its place with an empty status, as upstream.
    assert_eq!(
        serde_json::to_value(&st.current_metrics).unwrap(),
        json!([{"type": ""}])
    );
    let reasons: Vec<&str> = plan.events.iter().map(|e| e.1).collect();
    assert_eq!(
        reasons,
        ["FailedGetResourceMetric", "FailedComputeMetricsReplicas"]
    );
}

#[test]
fn out_of_range_targets_come_back_without_metrics() {
    let h = hpa(json!({"minReplicas": 2, "maxReplicas": 4}));
    let none: Result<Vec<Value>, String> = Err("no metrics".into());
    for (current, want, reason) in [
        (1, 2, "Current number of replicas below Spec.MinReplicas"),
        (7, 4, "Current number of replicas above Spec.MaxReplicas"),
    ] {
        let mut p = plan(
            &Observed {
                hpa: &h,
                scale: scale(current),
                selector_error: None,
                pods: &[],
                metrics: &none,
                now: at(T0),
            },
            &mut History::default(),
        );
        assert_eq!(p.rescale, Some((want, reason.to_string())));
        assert_eq!(p.status.desired_replicas, want);
        p.rescaled(at(T0));
        assert_eq!(
            condition(&p.status, "AbleToScale").message.as_deref(),
            Some(
                format!("the HPA controller was able to update the target scale to {want}")
                    .as_str()
            )
        );
        assert_eq!(p.status.last_scale_time, Some(Time(at(T0))));
        assert_eq!(
            p.events.last().unwrap().2,
            format!("New size: {want}; reason: {reason}")
        );
    }
    let zero = plan(
        &Observed {
            hpa: &h,
            scale: scale(0),
            selector_error: None,
            pods: &[],
            metrics: &none,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert!(zero.rescale.is_none());
    assert_eq!(
        condition(&zero.status, "ScalingActive").reason.as_deref(),
        Some("ScalingDisabled")
    );
}

#[test]
fn scaling_up_is_capped_by_max_and_reported_as_limited() {
    let h = hpa(json!({"maxReplicas": 3}));
    let pods = [pod("a", "100m", "1Mi")];
    let metrics = Ok(vec![sample("a", "400m", "1Mi")]);
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(1),
            selector_error: None,
            pods: &pods,
            metrics: &metrics,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert_eq!(
        p.rescale,
        Some((
            3,
            "cpu resource utilization (percentage of request) above target".into()
        ))
    );
    let limited = condition(&p.status, "ScalingLimited");
    assert_eq!(limited.status, "True");
    assert_eq!(limited.reason.as_deref(), Some("TooManyReplicas"));
    assert_eq!(
        condition(&p.status, "ScalingActive").message.as_deref(),
        Some(
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
        )
    );
    let current = &p.status.current_metrics.as_ref().unwrap()[0];
    let r = current.resource.as_ref().unwrap();
    assert_eq!(r.current.average_utilization, Some(400));
    assert_eq!(r.current.average_value.as_ref().unwrap().0, "400m");
    // Without a max in the way, at most max(2 × current, 4).
    let h = hpa(json!({"maxReplicas": 100}));
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(1),
            selector_error: None,
            pods: &pods,
            metrics: &metrics,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert_eq!(p.rescale.unwrap().0, 4);
    assert_eq!(
        condition(&p.status, "ScalingLimited").reason.as_deref(),
        Some("ScaleUpLimit")
    );
}

#[test]
fn scale_down_waits_out_the_stabilization_window() {
    let h = hpa(json!({}));
    let pods = [
        pod("a", "100m", "1Mi"),
        pod("b", "100m", "1Mi"),
        pod("c", "100m", "1Mi"),
        pod("d", "100m", "1Mi"),
    ];
    let idle = Ok(pods
        .iter()
        .map(|p| sample(&p.name_any(), "10m", "1Mi"))
        .collect::<Vec<_>>());
    let mut history = History::default();
    let seen = |now: &str| Observed {
        hpa: &h,
        scale: scale(4),
        selector_error: None,
        pods: &pods,
        metrics: &idle,
        now: at(now),
    };
    // The first sight of 4 replicas is a recommendation of 4.
    let p = plan(&seen(T0), &mut history);
    assert!(p.rescale.is_none(), "{:?}", p.rescale);
    assert_eq!(
        condition(&p.status, "AbleToScale").reason.as_deref(),
        Some("ScaleDownStabilized")
    );
    let p = plan(&seen("2026-01-01T00:04:00Z"), &mut history);
    assert!(p.rescale.is_none());
    // Five minutes later the lower recommendations are all that is left.
    let p = plan(&seen("2026-01-01T00:09:30Z"), &mut history);
    assert_eq!(p.rescale, Some((1, "All metrics below target".into())));
}

#[test]
fn behavior_policies_limit_the_rate() {
    let h = hpa(
        json!({"behavior": {"scaleUp": {"stabilizationWindowSeconds": 0,
        "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}),
    );
    let rules = Rules::of(&h).unwrap();
    assert_eq!(rules.down.window, 300, "scaleDown defaulted");
    let pods = [pod("a", "100m", "1Mi"), pod("b", "100m", "1Mi")];
    let busy = Ok(pods
        .iter()
        .map(|p| sample(&p.name_any(), "200m", "1Mi"))
        .collect::<Vec<_>>());
    let mut history = History::default();
    let mut p = plan(
        &Observed {
            hpa: &h,
            scale: scale(2),
            selector_error: None,
            pods: &pods,
            metrics: &busy,
            now: at(T0),
        },
        &mut history,
    );
    assert_eq!(p.rescale.as_ref().unwrap().0, 3, "one pod per minute");
    assert_eq!(
        condition(&p.status, "ScalingLimited").reason.as_deref(),
        Some("ScaleUpLimit")
    );
    p.rescaled(at(T0));
    history.store_scale_event(Some(&rules), 2, 3, at(T0));
    // Thirty seconds later the minute's one pod is spent.
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(3),
            selector_error: None,
            pods: &pods,
            metrics: &busy,
            now: at("2026-01-01T00:00:30Z"),
        },
        &mut history,
    );
    assert!(p.rescale.is_none(), "{:?}", p.rescale);
}

#[test]
fn conditions_keep_their_transition_time_while_the_status_holds() {
    let mut conds = Vec::new();
    set_condition(&mut conds, "AbleToScale", "True", "A", "a".into(), at(T0));
    set_condition(
        &mut conds,
        "AbleToScale",
        "True",
        "B",
        "b".into(),
        at("2026-01-01T00:01:00Z"),
    );
    assert_eq!(conds[0].last_transition_time, Some(Time(at(T0))));
    assert_eq!(conds[0].reason.as_deref(), Some("B"));
    set_condition(
        &mut conds,
        "AbleToScale",
        "False",
        "C",
        "c".into(),
        at("2026-01-01T00:02:00Z"),
    );
    assert_eq!(
        conds[0].last_transition_time,
        Some(Time(at("2026-01-01T00:02:00Z")))
    );
}

#[test]
fn a_failed_scale_read_or_custom_metrics_say_so() {
    let h = hpa(
        json!({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "qps"},
        "target": {"type": "AverageValue", "averageValue": "10"}}}]}),
    );
    let ok: Result<Vec<Value>, String> = Ok(Vec::new());
    let p = plan(
        &Observed {
            hpa: &h,
            scale: Err("deployments.apps \"web\" not found".into()),
            selector_error: None,
            pods: &[],
            metrics: &ok,
            now: at(T0),
        },
        &mut History::default(),
    );
    let able = condition(&p.status, "AbleToScale");
    assert_eq!(
        (able.status.as_str(), able.reason.as_deref()),
        ("False", Some("FailedGetScale"))
    );
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(1),
            selector_error: None,
            pods: &[pod("a", "1", "1Mi")],
            metrics: &ok,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert_eq!(
        condition(&p.status, "ScalingActive").reason.as_deref(),
        Some("FailedGetPodsMetric")
    );
}

#[test]
fn the_tolerance_band_includes_its_edges_and_memory_reads_in_binary() {
    let pods = [pod("a", "100m", "100Mi")];
    let requests = pod_requests(&pods, None, "cpu").unwrap();
    // 55 % against 50 %: a ratio of exactly 1.1, inside the band.
    let metrics = pod_metrics(&[sample("a", "55m", "1Mi")], "cpu", None);
    let p = calculate(
        1,
        Target::Utilization {
            percent: 50,
            requests: &requests,
        },
        &pods,
        metrics,
        false,
        TOLERANCE,
        at(T0),
    )
    .unwrap();
    assert_eq!(p.replicas, 1);
    let h = hpa(
        json!({"metrics": [{"type": "Resource", "resource": {"name": "memory",
        "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]}),
    );
    let metrics = Ok(vec![sample("a", "1m", "100Mi")]);
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(1),
            selector_error: None,
            pods: &pods,
            metrics: &metrics,
            now: at(T0),
        },
        &mut History::default(),
    );
    let current = p.status.current_metrics.unwrap()[0]
        .resource
        .clone()
        .unwrap()
        .current;
    assert_eq!(current.average_value.unwrap().0, "100Mi");
}

#[test]
fn a_pod_with_an_unknown_readiness_counts_and_far_times_do_not_panic() {
    let mut unknown = pod("a", "100m", "1Mi");
    unknown
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "Unknown".into();
    let metrics = pod_metrics(&[sample("a", "100m", "1Mi")], "cpu", None);
    assert_eq!(
        group_pods(&[unknown.clone()], &metrics, true, at(T0)).ready,
        1
    );
    let st = unknown.status.as_mut().unwrap();
    st.start_time = Some(Time(Timestamp::MAX));
    st.conditions.as_mut().unwrap()[0].last_transition_time = Some(Time(Timestamp::MAX));
    let mut far = metrics.clone();
    far.get_mut("a").unwrap().window = SignedDuration::MAX;
    let g = group_pods(&[unknown], &far, true, at(T0));
    assert_eq!(g.ready + g.unready.len(), 1);
}

#[test]
fn scale_down_policies_and_min_selection() {
    let pods = [
        pod("a", "100m", "1Mi"),
        pod("b", "100m", "1Mi"),
        pod("c", "100m", "1Mi"),
        pod("d", "100m", "1Mi"),
    ];
    let idle = Ok(pods
        .iter()
        .map(|p| sample(&p.name_any(), "5m", "1Mi"))
        .collect::<Vec<_>>());
    let h = hpa(
        json!({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}}),
    );
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(4),
            selector_error: None,
            pods: &pods,
            metrics: &idle,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert_eq!(p.rescale.as_ref().unwrap().0, 2, "half per minute");
    assert_eq!(
        condition(&p.status, "ScalingLimited").reason.as_deref(),
        Some("ScaleDownLimit")
    );
    // `Min` picks the smallest change of the scale-up policies.
    let h = hpa(
        json!({"behavior": {"scaleUp": {"selectPolicy": "Min", "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 60},
        {"type": "Percent", "value": 100, "periodSeconds": 60}]}}}),
    );
    let busy = Ok(vec![sample("a", "400m", "1Mi"), sample("b", "400m", "1Mi")]);
    let p = plan(
        &Observed {
            hpa: &h,
            scale: scale(2),
            selector_error: None,
            pods: &pods[..2],
            metrics: &busy,
            now: at(T0),
        },
        &mut History::default(),
    );
    assert_eq!(p.rescale.unwrap().0, 3);
}
