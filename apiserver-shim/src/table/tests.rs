use super::*;
use crate::registry::RESOURCES;

/// The rendering time of every test: objects are created an hour earlier.
fn now() -> Timestamp {
    "2024-01-01T12:00:00Z".parse().unwrap()
}

const CREATED: &str = "2024-01-01T11:00:00Z";

fn def(group: &str, resource: &str) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|d| d.group == group && d.resource == resource)
        .unwrap()
}

/// The cells of `obj`'s row.
fn cells(group: &str, resource: &str, obj: Value) -> Value {
    let t = render(def(group, resource), &[obj], Some("None"), None, now());
    t["rows"][0]["cells"].clone()
}

/// The cell of `obj` under the column `header`.
fn cell(group: &str, resource: &str, obj: Value, header: &str) -> Value {
    let i = columns(def(group, resource))
        .iter()
        .position(|c| c.name == header)
        .unwrap_or_else(|| panic!("no column {header}"));
    cells(group, resource, obj)[i].clone()
}

/// Headers as kubectl prints them: upper-cased, the wide ones only if `wide`.
fn headers(group: &str, resource: &str, wide: bool) -> Vec<String> {
    columns(def(group, resource))
        .iter()
        .filter(|c| wide || c.priority == 0)
        .map(|c| c.name.to_uppercase())
        .collect()
}

fn named(name: &str, rest: Value) -> Value {
    let mut obj = json!({"metadata": {"name": name, "creationTimestamp": CREATED}});
    for (k, v) in rest.as_object().unwrap() {
        obj[k] = v.clone();
    }
    obj
}

#[test]
fn human_durations_match_apimachinery() {
    for (secs, want) in [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400 + 20 * 86400, "3y20d"),
        (10 * 365 * 86400, "10y"),
    ] {
        assert_eq!(human_duration(secs), want, "{secs}");
    }
    assert_eq!(human_signed(-1), "0s");
    assert_eq!(human_signed(-5), "<invalid>");
}

#[test]
fn include_object_modes() {
    let def = def("", "configmaps");
    let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"k": "v"}});
    let t = table(
        &crate::registry::Def::Builtin(def),
        std::slice::from_ref(&obj),
        None,
        None,
    );
    assert_eq!(t["rows"][0]["cells"][0], "a");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let t = table(
        &crate::registry::Def::Builtin(def),
        std::slice::from_ref(&obj),
        Some("Object"),
        None,
    );
    assert_eq!(t["rows"][0]["object"]["data"]["k"], "v");
    let t = table(
        &crate::registry::Def::Builtin(def),
        std::slice::from_ref(&obj),
        Some("None"),
        None,
    );
    assert!(t["rows"][0].get("object").is_none());
}

#[test]
fn every_resource_has_a_printer_with_a_cell_per_column() {
    for d in RESOURCES {
        let printer = printer_for(d).unwrap_or_else(|| panic!("{}", d.resource));
        let t = render(d, &[json!({})], None, None, now());
        let defs = t["columnDefinitions"].as_array().unwrap();
        assert_eq!(defs.len(), printer.columns.len(), "{}", d.resource);
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap().len(),
            defs.len(),
            "{}",
            d.resource
        );
        // VolumeAttachment's Attacher column has the name format too.
        let names = if d.resource == "volumeattachments" {
            2
        } else {
            1
        };
        assert_eq!(
            defs.iter().filter(|c| c["format"] == "name").count(),
            names,
            "{}",
            d.resource
        );
        for c in defs {
            assert!(
                ["string", "integer", "boolean", "date"].contains(&c["type"].as_str().unwrap())
            );
            // RuntimeClass's Handler column has none upstream (its
            // description is looked up in ObjectMeta's documentation).
            let exempt = d.resource == "runtimeclasses" && c["name"] == "Handler";
            assert!(
                exempt || !c["description"].as_str().unwrap().is_empty(),
                "{} {}",
                d.resource,
                c["name"]
            );
        }
    }
}

#[test]
fn headers_match_kubectl_against_kube_apiserver() {
    let h = |g, r| headers(g, r, false).join(" ");
    let w = |g, r| headers(g, r, true).join(" ");
    assert_eq!(h("", "pods"), "NAME READY STATUS RESTARTS AGE");
    assert_eq!(
        w("", "pods"),
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    );
    assert_eq!(
        h("", "services"),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"
    );
    assert_eq!(
        h("apps", "deployments"),
        "NAME READY UP-TO-DATE AVAILABLE AGE"
    );
    assert_eq!(
        w("apps", "deployments"),
        "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"
    );
    assert_eq!(h("apps", "replicasets"), "NAME DESIRED CURRENT READY AGE");
    assert_eq!(h("apps", "statefulsets"), "NAME READY AGE");
    assert_eq!(
        h("apps", "daemonsets"),
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert_eq!(h("batch", "jobs"), "NAME STATUS COMPLETIONS DURATION AGE");
    assert_eq!(
        h("batch", "cronjobs"),
        "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE"
    );
    assert_eq!(h("", "configmaps"), "NAME DATA AGE");
    assert_eq!(h("", "secrets"), "NAME TYPE DATA AGE");
    assert_eq!(h("", "serviceaccounts"), "NAME SECRETS AGE");
    assert_eq!(h("", "namespaces"), "NAME STATUS AGE");
    assert_eq!(h("", "nodes"), "NAME STATUS ROLES AGE VERSION");
    assert_eq!(
        w("", "nodes"),
        "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"
    );
    for group in ["", "events.k8s.io"] {
        assert_eq!(h(group, "events"), "LAST SEEN TYPE REASON OBJECT MESSAGE");
    }
    assert_eq!(h("", "endpoints"), "NAME ENDPOINTS AGE");
    assert_eq!(
        h("", "persistentvolumeclaims"),
        "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE"
    );
    for r in ["roles", "clusterroles"] {
        assert_eq!(h(RBAC, r), "NAME CREATED AT");
    }
    assert_eq!(h("", "limitranges"), "NAME CREATED AT");
    for r in ["rolebindings", "clusterrolebindings"] {
        assert_eq!(h(RBAC, r), "NAME ROLE AGE");
        assert_eq!(w(RBAC, r), "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS");
    }
    assert_eq!(h("coordination.k8s.io", "leases"), "NAME HOLDER AGE");
    assert_eq!(
        h("policy", "poddisruptionbudgets"),
        "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"
    );
    assert_eq!(
        h("discovery.k8s.io", "endpointslices"),
        "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"
    );
    assert_eq!(
        h("apps", "controllerrevisions"),
        "NAME CONTROLLER REVISION AGE"
    );
    assert_eq!(h("", "resourcequotas"), "NAME REQUEST LIMIT AGE");
}

// ---------------------------------------------------------------------------
// Pods.

fn pod(spec: Value, status: Value) -> Value {
    named("p", json!({"spec": spec, "status": status}))
}

fn pod_cell(spec: Value, status: Value, header: &str) -> Value {
    cell("", "pods", pod(spec, status), header)
}

fn one_container() -> Value {
    json!({"containers": [{"name": "a", "image": "nginx"}]})
}

fn two_containers() -> Value {
    json!({"containers": [{"name": "a"}, {"name": "b"}]})
}

#[test]
fn pending_pod_row() {
    assert_eq!(
        cells(
            "",
            "pods",
            pod(one_container(), json!({"phase": "Pending"}))
        ),
        json!([
            "p", "0/1", "Pending", "0", "60m", "<none>", "<none>", "<none>", "<none>"
        ])
    );
}

#[test]
fn running_pod_row_with_restarts_and_wide_cells() {
    let mut spec = two_containers();
    spec["nodeName"] = json!("n1");
    spec["readinessGates"] = json!([{"conditionType": "g1"}, {"conditionType": "g2"}]);
    let status = json!({
        "phase": "Running",
        "podIP": "10.0.0.5",
        "nominatedNodeName": "n2",
        "conditions": [
            {"type": "g1", "status": "True"},
            {"type": "g2", "status": "False"},
        ],
        "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T11:55:00Z"}}},
            {"name": "b", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T11:30:00Z"}}},
        ],
    });
    assert_eq!(
        cells("", "pods", pod(spec, status)),
        json!([
            "p",
            "2/2",
            "Running",
            "3 (5m ago)",
            "60m",
            "10.0.0.5",
            "n1",
            "n2",
            "1/2"
        ])
    );
}

#[test]
fn pod_status_follows_container_states() {
    let waiting = json!({"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
    ]});
    assert_eq!(
        pod_cell(one_container(), waiting.clone(), "Status"),
        "CrashLoopBackOff"
    );
    assert_eq!(pod_cell(one_container(), waiting.clone(), "Ready"), "0/1");
    // A restart count without a last termination time has no "(ago)".
    assert_eq!(pod_cell(one_container(), waiting, "Restarts"), "4");

    for (terminated, want) in [
        (json!({"reason": "OOMKilled", "exitCode": 137}), "OOMKilled"),
        (json!({"exitCode": 2}), "ExitCode:2"),
        (json!({"exitCode": 137, "signal": 9}), "Signal:9"),
    ] {
        let status = json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "state": {"terminated": terminated}},
        ]});
        assert_eq!(pod_cell(one_container(), status, "Status"), want);
    }

    // One container completed while the other still runs.
    let mixed = |ready: bool| {
        json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        "containerStatuses": [
            {"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
            {"name": "b", "ready": true, "state": {"running": {}}},
        ]})
    };
    assert_eq!(
        pod_cell(two_containers(), mixed(false), "Status"),
        "NotReady"
    );
    assert_eq!(pod_cell(two_containers(), mixed(true), "Status"), "Running");
    assert_eq!(pod_cell(two_containers(), mixed(true), "Ready"), "1/2");

    let done = json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
    ]});
    assert_eq!(pod_cell(one_container(), done, "Status"), "Completed");

    let gated = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
    ]});
    assert_eq!(
        pod_cell(one_container(), gated, "Status"),
        "SchedulingGated"
    );

    let evicted = json!({"phase": "Failed", "reason": "Evicted"});
    assert_eq!(pod_cell(one_container(), evicted, "Status"), "Evicted");
}

#[test]
fn pod_status_during_init() {
    let spec = json!({
        "initContainers": [{"name": "i1"}, {"name": "i2"}],
        "containers": [{"name": "a"}],
    });
    let with_i2 = |state: Value| {
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "restartCount": 3, "state": state},
        ], "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}},
        ]})
    };
    for (state, want) in [
        (json!({"running": {}}), "Init:1/2"),
        (
            json!({"waiting": {"reason": "PodInitializing"}}),
            "Init:1/2",
        ),
        (
            json!({"waiting": {"reason": "ImagePullBackOff"}}),
            "Init:ImagePullBackOff",
        ),
        (
            json!({"terminated": {"reason": "Error", "exitCode": 1}}),
            "Init:Error",
        ),
        (json!({"terminated": {"exitCode": 3}}), "Init:ExitCode:3"),
    ] {
        assert_eq!(
            pod_cell(spec.clone(), with_i2(state.clone()), "Status"),
            want,
            "{state}"
        );
    }
    let s = with_i2(json!({"running": {}}));
    assert_eq!(pod_cell(spec.clone(), s.clone(), "Restarts"), "3");
    assert_eq!(pod_cell(spec, s, "Ready"), "0/1");

    // A started sidecar (restartPolicy Always) counts as a pod container.
    let spec = json!({
        "initContainers": [{"name": "s", "restartPolicy": "Always"}],
        "containers": [{"name": "a"}],
    });
    let status = json!({"phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [
            {"name": "s", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}},
        ],
        "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}],
    });
    assert_eq!(pod_cell(spec.clone(), status.clone(), "Ready"), "2/2");
    assert_eq!(pod_cell(spec.clone(), status.clone(), "Status"), "Running");
    assert_eq!(pod_cell(spec, status, "Restarts"), "1");
}

#[test]
fn deleting_pods_show_terminating_or_unknown() {
    let mut p = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}},
        ]}),
    );
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T11:59:00Z");
    assert_eq!(cell("", "pods", p.clone(), "Status"), "Terminating");
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(cell("", "pods", p.clone(), "Status"), "Unknown");
    p["status"] = json!({"phase": "Succeeded"});
    assert_eq!(cell("", "pods", p, "Status"), "Succeeded");
}

#[test]
fn finished_pods_carry_a_completed_row_condition() {
    let p = pod(one_container(), json!({"phase": "Succeeded"}));
    let t = render(def("", "pods"), &[p], None, None, now());
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}])
    );
    let running = pod(one_container(), json!({"phase": "Running"}));
    let t = render(def("", "pods"), &[running], None, None, now());
    assert!(t["rows"][0].get("conditions").is_none());
}

// ---------------------------------------------------------------------------
// Services.

fn svc(spec: Value, status: Value) -> Value {
    cells(
        "",
        "services",
        named("s", json!({"spec": spec, "status": status})),
    )
}

#[test]
fn service_rows() {
    assert_eq!(
        svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"tier": "fe", "app": "web"}}),
            json!({})
        ),
        json!([
            "s",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP,53/UDP",
            "60m",
            "app=web,tier=fe"
        ])
    );
    // Unset type, protocol and cluster IP: the defaults and placeholders.
    assert_eq!(
        svc(json!({"ports": [{"port": 80}]}), json!({})),
        json!([
            "s",
            "ClusterIP",
            "<none>",
            "<none>",
            "80/TCP",
            "60m",
            "<none>"
        ])
    );
    assert_eq!(
        svc(
            json!({"type": "NodePort", "externalIPs": ["1.2.3.4", "1.2.3.5"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
            json!({})
        )
        .as_array()
        .unwrap()[3..5],
        [json!("1.2.3.4,1.2.3.5"), json!("80:30080/TCP")]
    );
}

#[test]
fn service_external_ip_by_type() {
    let external = |spec: Value, status: Value| svc(spec, status)[3].clone();
    assert_eq!(
        external(json!({"type": "LoadBalancer"}), json!({})),
        "<pending>"
    );
    assert_eq!(
        external(
            json!({"type": "LoadBalancer"}),
            json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "5.6.7.8"}]}})
        ),
        "5.6.7.8,lb.example.com"
    );
    assert_eq!(
        external(
            json!({"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}})
        ),
        "5.6.7.8,1.2.3.4"
    );
    assert_eq!(
        external(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({})
        ),
        "db.example.com"
    );
    assert_eq!(external(json!({"type": "Bogus"}), json!({})), "<unknown>");
}

// ---------------------------------------------------------------------------
// Workloads.

#[test]
fn deployment_rows() {
    let d = named(
        "web",
        json!({
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [
                        {"key": "tier", "operator": "In", "values": ["b", "a"]},
                        {"key": "canary", "operator": "DoesNotExist"},
                    ],
                },
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1.27"},
                    {"name": "log", "image": "busybox"},
                ]}},
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        }),
    );
    assert_eq!(
        cells("apps", "deployments", d),
        json!([
            "web",
            "2/3",
            3,
            2,
            "60m",
            "web,log",
            "nginx:1.27,busybox",
            "app=web,!canary,tier in (a,b)"
        ])
    );
    // Replicas default to 1; a stored deployment without status is 0/1.
    assert_eq!(
        cells("apps", "deployments", named("d", json!({"spec": {}}))),
        json!(["d", "0/1", 0, 0, "60m", "", "", ""])
    );
}

#[test]
fn replicaset_statefulset_daemonset_rows() {
    let template = json!({"spec": {"containers": [{"name": "c", "image": "i"}],
        "nodeSelector": {"disk": "ssd"}}});
    let spec =
        json!({"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template});
    let status = json!({"replicas": 2, "readyReplicas": 1});
    let obj = named("x", json!({"spec": spec, "status": status}));
    assert_eq!(
        cells("apps", "replicasets", obj.clone()),
        json!(["x", 2, 2, 1, "60m", "c", "i", "app=x"])
    );
    assert_eq!(
        cells("apps", "statefulsets", obj.clone()),
        json!(["x", "1/2", "60m", "c", "i"])
    );
    let mut ds = obj;
    ds["status"] = json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
        "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2});
    assert_eq!(
        cells("apps", "daemonsets", ds),
        json!(["x", 3, 3, 2, 1, 2, "disk=ssd", "60m", "c", "i", "app=x"])
    );
    assert_eq!(
        cell("apps", "replicasets", named("y", json!({})), "Selector"),
        "<none>"
    );
}

fn job(spec: Value, status: Value) -> Value {
    named("j", json!({"spec": spec, "status": status}))
}

#[test]
fn job_completions_duration_and_status() {
    let running = job(
        json!({"completions": 3}),
        json!({"succeeded": 1, "startTime": "2024-01-01T11:50:00Z"}),
    );
    assert_eq!(
        cells("batch", "jobs", running),
        json!(["j", "Running", "1/3", "10m", "60m", "", "", "<none>"])
    );
    let completions = |spec: Value| cell("batch", "jobs", job(spec, json!({})), "Completions");
    assert_eq!(completions(json!({})), "0/1");
    assert_eq!(completions(json!({"parallelism": 2})), "0/1 of 2");
    assert_eq!(completions(json!({"parallelism": 1})), "0/1");

    let complete = job(
        json!({"completions": 1}),
        json!({"succeeded": 1, "startTime": "2024-01-01T11:00:00Z",
            "completionTime": "2024-01-01T11:02:30Z",
            "conditions": [{"type": "Complete", "status": "True"}]}),
    );
    assert_eq!(
        cell("batch", "jobs", complete.clone(), "Status"),
        "Complete"
    );
    assert_eq!(
        cell("batch", "jobs", complete.clone(), "Completions"),
        "1/1"
    );
    assert_eq!(cell("batch", "jobs", complete, "Duration"), "2m30s");

    let status = |conditions: Value| {
        cell(
            "batch",
            "jobs",
            job(json!({}), json!({"conditions": conditions})),
            "Status",
        )
    };
    assert_eq!(
        status(json!([{"type": "Failed", "status": "True"}])),
        "Failed"
    );
    assert_eq!(
        status(json!([{"type": "Suspended", "status": "True"}])),
        "Suspended"
    );
    assert_eq!(
        status(json!([{"type": "FailureTarget", "status": "True"}])),
        "FailureTarget"
    );
    assert_eq!(
        status(json!([{"type": "Complete", "status": "False"}])),
        "Running"
    );
    let mut deleting = job(json!({}), json!({}));
    deleting["metadata"]["deletionTimestamp"] = json!(CREATED);
    assert_eq!(cell("batch", "jobs", deleting, "Status"), "Terminating");
}

#[test]
fn cronjob_row() {
    let cj = named(
        "cj",
        json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "cj-1"}], "lastScheduleTime": "2024-01-01T11:55:00Z"}}),
    );
    assert_eq!(
        cells("batch", "cronjobs", cj),
        json!([
            "cj",
            "*/5 * * * *",
            "<none>",
            "False",
            1,
            "5m",
            "60m",
            "c",
            "busybox",
            "<none>"
        ])
    );
    let suspended = named(
        "s",
        json!({"spec": {"schedule": "@daily", "timeZone": "Etc/UTC", "suspend": true}}),
    );
    assert_eq!(
        cells("batch", "cronjobs", suspended).as_array().unwrap()[..6],
        json!(["s", "@daily", "Etc/UTC", "True", 0, "<none>"])
            .as_array()
            .unwrap()[..]
    );
}

// ---------------------------------------------------------------------------
// Events.

#[test]
fn core_event_row() {
    let ev = named(
        "x.17a",
        json!({
            "involvedObject": {"kind": "Pod", "name": "x", "fieldPath": "spec.containers{a}"},
            "type": "Normal",
            "reason": "Scheduled",
            "message": " Successfully assigned default/x to n1\n",
            "firstTimestamp": "2024-01-01T11:50:00Z",
            "lastTimestamp": "2024-01-01T11:58:00Z",
            "count": 3,
            "source": {"component": "default-scheduler"},
        }),
    );
    assert_eq!(
        cells("", "events", ev),
        json!([
            "2m",
            "Normal",
            "Scheduled",
            "pod/x",
            "spec.containers{a}",
            "default-scheduler",
            "Successfully assigned default/x to n1",
            "10m",
            3,
            "x.17a"
        ])
    );
    // No name: only the kind; no count: 1; no timestamps: <unknown>.
    let bare = named("y", json!({"involvedObject": {"kind": "Node"}}));
    let c = cells("", "events", bare);
    assert_eq!(c[3], "node");
    assert_eq!(c[8], 1);
    assert_eq!(c[0], "<unknown>");
}

#[test]
fn events_k8s_io_event_row() {
    let ev = named(
        "web.17b",
        json!({
            "regarding": {"kind": "Deployment", "name": "web"},
            "type": "Normal",
            "reason": "ScalingReplicaSet",
            "note": "Scaled up replica set web-1 to 3",
            "eventTime": "2024-01-01T11:59:00.000000Z",
            "reportingController": "deployment-controller",
            "reportingInstance": "cp-1",
        }),
    );
    assert_eq!(
        cells("events.k8s.io", "events", ev.clone()),
        json!([
            "60s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller, cp-1",
            "Scaled up replica set web-1 to 3",
            "60s",
            1,
            "web.17b"
        ])
    );
    let mut series = ev;
    series["series"] = json!({"count": 5, "lastObservedTime": "2024-01-01T11:59:30.500000Z"});
    let c = cells("events.k8s.io", "events", series);
    assert_eq!(c[0], "29s");
    assert_eq!(c[8], 5);
}

// ---------------------------------------------------------------------------
// Everything else.

#[test]
fn configmap_secret_serviceaccount_namespace_rows() {
    let cm = named(
        "c",
        json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
    );
    assert_eq!(cells("", "configmaps", cm), json!(["c", 3, "60m"]));
    let secret = named(
        "s",
        json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
    );
    assert_eq!(
        cells("", "secrets", secret),
        json!(["s", "kubernetes.io/tls", 2, "60m"])
    );
    let sa = named("sa", json!({"secrets": [{"name": "t"}]}));
    assert_eq!(cells("", "serviceaccounts", sa), json!(["sa", 1, "60m"]));
    let ns = named("n", json!({"status": {"phase": "Terminating"}}));
    assert_eq!(
        cells("", "namespaces", ns),
        json!(["n", "Terminating", "60m"])
    );
    let no_age = json!({"metadata": {"name": "old"}});
    assert_eq!(
        cells("", "configmaps", no_age),
        json!(["old", 0, "<unknown>"])
    );
}

#[test]
fn node_row() {
    let node = json!({
        "metadata": {"name": "n1", "creationTimestamp": CREATED, "labels": {
            "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/": "",
            "kubernetes.io/role": "worker",
        }},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1.34.0", "osImage": "Debian", "containerRuntimeVersion": "containerd://2.0"},
        },
    });
    assert_eq!(
        cells("", "nodes", node),
        json!([
            "n1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "60m",
            "v1.34.0",
            "10.0.0.1",
            "<none>",
            "Debian",
            "<unknown>",
            "containerd://2.0"
        ])
    );
    let not_ready = named(
        "n2",
        json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    assert_eq!(cell("", "nodes", not_ready, "Status"), "NotReady");
    assert_eq!(
        cell("", "nodes", named("n3", json!({})), "Status"),
        "Unknown"
    );
}

#[test]
fn endpoints_and_endpointslices() {
    let ep = named(
        "e",
        json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}],
            "ports": [{"port": 80}, {"port": 443}]}]}),
    );
    assert_eq!(
        cell("", "endpoints", ep, "Endpoints"),
        "10.0.0.1:80,[fd00::2]:80,10.0.0.1:443 + 1 more..."
    );
    let headless = named(
        "h",
        json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}),
    );
    assert_eq!(cell("", "endpoints", headless, "Endpoints"), "10.0.0.1");
    assert_eq!(
        cell("", "endpoints", named("n", json!({})), "Endpoints"),
        "<none>"
    );

    let slice = named(
        "s",
        json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "http"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3", "10.0.0.4"]}]}),
    );
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", slice),
        json!([
            "s",
            "IPv4",
            "80,http,*",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "60m"
        ])
    );
    let empty = named("t", json!({"addressType": "IPv6"}));
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", empty),
        json!(["t", "IPv6", "<unset>", "<unset>", "60m"])
    );
}

#[test]
fn pvc_row() {
    let pending = named("c", json!({"spec": {"storageClassName": "standard"}}));
    assert_eq!(
        cells("", "persistentvolumeclaims", pending),
        json!([
            "c",
            "Pending",
            "",
            "",
            "",
            "standard",
            "<unset>",
            "60m",
            "Filesystem"
        ])
    );
    let bound = named(
        "c",
        json!({"metadata": {"name": "c", "creationTimestamp": CREATED,
                "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
            "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Block"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"]}}),
    );
    assert_eq!(
        cells("", "persistentvolumeclaims", bound),
        json!([
            "c", "Bound", "pv-1", "1Gi", "RWO,RWX", "beta", "<unset>", "60m", "Block"
        ])
    );
}

#[test]
fn rbac_rows() {
    let rb = named(
        "rb",
        json!({"roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"},
            {"kind": "User", "name": "bob"},
        ]}),
    );
    assert_eq!(
        cells(RBAC, "rolebindings", rb.clone()),
        json!([
            "rb",
            "ClusterRole/view",
            "60m",
            "alice, bob",
            "devs",
            "ns/sa"
        ])
    );
    assert_eq!(
        cells(RBAC, "clusterrolebindings", rb),
        json!([
            "rb",
            "ClusterRole/view",
            "60m",
            "alice, bob",
            "devs",
            "ns/sa"
        ])
    );
    let role = named("r", json!({"rules": []}));
    assert_eq!(
        cells(RBAC, "roles", role),
        json!(["r", "2024-01-01T11:00:00Z"])
    );
    let t = render(def(RBAC, "clusterroles"), &[json!({})], None, None, now());
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
}

#[test]
fn quota_pdb_lease_revision_rows() {
    let quota = named(
        "q",
        json!({"status": {
            "hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1", "requests.nvidia.com/gpu": 4},
            "used": {"pods": "3", "requests.cpu": "500m"},
        }}),
    );
    assert_eq!(
        cells("", "resourcequotas", quota),
        json!([
            "q",
            "pods: 3/10, requests.cpu: 500m/1, requests.nvidia.com/gpu: 0/4",
            "limits.cpu: 0/2",
            "60m"
        ])
    );
    let pdb = named(
        "p",
        json!({"spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}}),
    );
    assert_eq!(
        cells("policy", "poddisruptionbudgets", pdb),
        json!(["p", "2", "N/A", 1, "60m"])
    );
    let pdb = named("p", json!({"spec": {"maxUnavailable": "50%"}}));
    assert_eq!(
        cells("policy", "poddisruptionbudgets", pdb),
        json!(["p", "N/A", "50%", 0, "60m"])
    );
    let lease = named("l", json!({"spec": {"holderIdentity": "node-1"}}));
    assert_eq!(
        cells("coordination.k8s.io", "leases", lease),
        json!(["l", "node-1", "60m"])
    );
    let cr = named(
        "web-7d",
        json!({"metadata": {"name": "web-7d", "creationTimestamp": CREATED, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "other"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true},
        ]}, "revision": 2}),
    );
    assert_eq!(
        cells("apps", "controllerrevisions", cr),
        json!(["web-7d", "statefulset.apps/web", 2, "60m"])
    );
    let orphan = named("o", json!({"revision": 1}));
    assert_eq!(
        cell("apps", "controllerrevisions", orphan, "Controller"),
        "<none>"
    );
}

#[test]
fn networking_scheduling_storage_and_node_kinds_print_as_kubectl_shows_them() {
    let h = |g, r| headers(g, r, false).join(" ");
    assert_eq!(
        h("networking.k8s.io", "ingresses"),
        "NAME CLASS HOSTS ADDRESS PORTS AGE"
    );
    assert_eq!(
        h("networking.k8s.io", "ingressclasses"),
        "NAME CONTROLLER PARAMETERS AGE"
    );
    assert_eq!(
        h("networking.k8s.io", "networkpolicies"),
        "NAME POD-SELECTOR AGE"
    );
    assert_eq!(
        h("scheduling.k8s.io", "priorityclasses"),
        "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY"
    );
    assert_eq!(
        h("storage.k8s.io", "storageclasses"),
        "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"
    );
    assert_eq!(
        h("storage.k8s.io", "csidrivers"),
        "NAME ATTACHREQUIRED PODINFOONMOUNT STORAGECAPACITY TOKENREQUESTS REQUIRESREPUBLISH MODES AGE"
    );
    assert_eq!(h("node.k8s.io", "runtimeclasses"), "NAME HANDLER AGE");
    assert_eq!(h("", "podtemplates"), "NAME CONTAINERS IMAGES POD LABELS");
    assert_eq!(
        h("", "persistentvolumes"),
        "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE"
    );

    let ing = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                 "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {},
                           {"host": "c.example.com"}, {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "192.0.2.7"}, {"ip": "192.0.2.7"}]}}});
    assert_eq!(
        cells("networking.k8s.io", "ingresses", ing),
        json!([
            "web",
            "nginx",
            "a.example.com,b.example.com,c.example.com + 2 more...",
            "192.0.2.7,lb.example.com",
            "80, 443",
            "60m"
        ])
    );
    let bare =
        json!({"metadata": {"name": "x", "creationTimestamp": CREATED}, "spec": {"rules": [{}]}});
    assert_eq!(
        cells("networking.k8s.io", "ingresses", bare),
        json!(["x", "<none>", "*", "", "80", "60m"])
    );
    let ic = json!({"metadata": {"name": "ext", "creationTimestamp": CREATED},
        "spec": {"controller": "example.com/lb", "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    assert_eq!(
        cells("networking.k8s.io", "ingressclasses", ic),
        json!([
            "ext",
            "example.com/lb",
            "IngressParameters.k8s.example.com/external-lb",
            "60m"
        ])
    );
    let np = json!({"metadata": {"name": "db", "creationTimestamp": CREATED},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}}});
    assert_eq!(
        cells("networking.k8s.io", "networkpolicies", np),
        json!(["db", "app=db,tier", "60m"])
    );
    let pc = json!({"metadata": {"name": "high", "creationTimestamp": CREATED},
        "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"});
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", pc),
        json!(["high", 1000, true, "60m", "Never"])
    );
    let sc = json!({"metadata": {"name": "fast", "creationTimestamp": CREATED,
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "example.com/disk"});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", sc),
        json!([
            "fast (default)",
            "example.com/disk",
            "Delete",
            "Immediate",
            false,
            "60m"
        ])
    );
    let csi = json!({"metadata": {"name": "d", "creationTimestamp": CREATED}, "spec": {}});
    assert_eq!(
        cells("storage.k8s.io", "csidrivers", csi),
        json!(["d", true, false, false, "<unset>", false, "<none>", "60m"])
    );
    let pt = json!({"metadata": {"name": "t", "creationTimestamp": CREATED},
        "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
                     "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}}});
    assert_eq!(
        cells("", "podtemplates", pt),
        json!(["t", "c1,c2", "i1,i2", "a=1,b=2"])
    );
    let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": CREATED},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                 "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}});
    assert_eq!(
        cells("", "persistentvolumes", pv),
        json!([
            "pv1",
            "10Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "fast",
            "<unset>",
            "",
            "60m",
            "Filesystem"
        ])
    );
}

#[test]
fn autoscalers_and_storage_kinds_print_as_kubectl_shows_them() {
    let h = |g, r| headers(g, r, false).join(" ");
    assert_eq!(
        h("autoscaling", "horizontalpodautoscalers"),
        "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"
    );
    assert_eq!(
        h("storage.k8s.io", "volumeattachments"),
        "NAME ATTACHER PV NODE ATTACHED AGE"
    );
    assert_eq!(h("storage.k8s.io", "csinodes"), "NAME DRIVERS AGE");
    assert_eq!(
        h("storage.k8s.io", "csistoragecapacities"),
        "NAME STORAGECLASSNAME CAPACITY"
    );
    assert_eq!(
        h("storage.k8s.io", "volumeattributesclasses"),
        "NAME DRIVERNAME AGE"
    );
    let hpa = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [
                     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                     {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                     {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 50, "averageValue": "100m"}}}]}});
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", hpa),
        json!([
            "web",
            "Deployment/web",
            "cpu: 50%/80%, memory: <unknown>/500Mi + 1 more...",
            "1",
            5,
            2,
            "60m"
        ])
    );
    let bare = json!({"metadata": {"name": "x", "creationTimestamp": CREATED},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3}});
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", bare),
        json!(["x", "Deployment/x", "<none>", "<unset>", 3, 0, "60m"])
    );
    let va = json!({"metadata": {"name": "va", "creationTimestamp": CREATED},
        "spec": {"attacher": "example.com/disk", "nodeName": "n1", "source": {"persistentVolumeName": "pv1"}},
        "status": {"attached": true}});
    assert_eq!(
        cells("storage.k8s.io", "volumeattachments", va),
        json!(["va", "example.com/disk", "pv1", "n1", true, "60m"])
    );
    let csc = json!({"metadata": {"name": "c", "creationTimestamp": CREATED}, "storageClassName": "fast"});
    assert_eq!(
        cells("storage.k8s.io", "csistoragecapacities", csc),
        json!(["c", "fast", "<unset>"])
    );
}

#[test]
fn admission_configuration_prints_as_kubectl_shows_it() {
    let h = |r| headers("admissionregistration.k8s.io", r, false).join(" ");
    assert_eq!(h("mutatingwebhookconfigurations"), "NAME WEBHOOKS AGE");
    assert_eq!(h("validatingwebhookconfigurations"), "NAME WEBHOOKS AGE");
    assert_eq!(
        h("validatingadmissionpolicies"),
        "NAME VALIDATIONS PARAMKIND AGE"
    );
    assert_eq!(
        h("validatingadmissionpolicybindings"),
        "NAME POLICYNAME PARAMREF AGE"
    );
    let g = "admissionregistration.k8s.io";
    let hooks =
        json!({"metadata": {"name": "w", "creationTimestamp": CREATED}, "webhooks": [{}, {}]});
    assert_eq!(
        cells(g, "validatingwebhookconfigurations", hooks),
        json!(["w", 2, "60m"])
    );
    let vap = json!({"metadata": {"name": "p", "creationTimestamp": CREATED},
        "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "validations": [{}]}});
    assert_eq!(
        cells(g, "validatingadmissionpolicies", vap),
        json!(["p", 1, "v1/ConfigMap", "60m"])
    );
    let b = |param: Value| {
        json!({"metadata": {"name": "b", "creationTimestamp": CREATED},
        "spec": {"policyName": "p", "paramRef": param}})
    };
    assert_eq!(
        cells(
            g,
            "validatingadmissionpolicybindings",
            b(json!({"name": "cfg", "namespace": "ns"}))
        ),
        json!(["b", "p", "ns/cfg", "60m"])
    );
    assert_eq!(
        cells(
            g,
            "validatingadmissionpolicybindings",
            b(json!({"name": "cfg"}))
        ),
        json!(["b", "p", "*/cfg", "60m"])
    );
    assert_eq!(
        cells(
            g,
            "validatingadmissionpolicybindings",
            b(json!({"selector": {"matchLabels": {"a": "b"}}}))
        ),
        json!([
            "b",
            "p",
            "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}",
            "60m"
        ])
    );
    assert_eq!(
        cells(g, "validatingadmissionpolicybindings", b(Value::Null)),
        json!(["b", "p", "<unset>", "60m"])
    );
}
