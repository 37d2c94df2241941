//! Workload controllers and quota admission against a real server, driven
//! by real kubectl and kube-rs, with a simulated node running (and
//! finishing) the pods.

use std::time::{Duration, Instant};
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

/// Polls `kubectl ARGS` until its stdout satisfies `done`; panics with the
/// last output after `timeout`.
async fn eventually(
    c: &TestCluster,
    args: &[&str],
    done: impl Fn(&str) -> bool,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = c.kubectl(args).await;
        if out.success() && done(&out.stdout) {
            return out.stdout;
        }
        if Instant::now() > deadline {
            panic!("condition not met within {timeout:?}: {out}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn job_runs_to_complete_and_kubectl_wait_sees_it() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&[
        "create",
        "job",
        "pi",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 0",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=60s",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["job.batch/pi condition met"]);
    let out = c
        .kubectl(&[
            "get",
            "job",
            "pi",
            "-o",
            "jsonpath={.status.succeeded}/{.status.active}/{.status.startTime}/{.status.completionTime}",
        ])
        .await
        .expect_ok();
    let parts: Vec<&str> = out.stdout.split('/').collect();
    // `active` is omitempty in JobStatus: a finished Job shows none, as on
    // a real cluster.
    assert_eq!(&parts[..2], ["1", ""], "{out}");
    assert!(!parts[2].is_empty() && !parts[3].is_empty(), "{out}");
    // The pod carries the job labels and a controller reference.
    let pods = c
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=pi",
            "-o",
            "json",
        ])
        .await
        .expect_ok()
        .json();
    let pod = &pods["items"][0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert!(pod["metadata"]["name"].as_str().unwrap().starts_with("pi-"));
    c.kubectl(&["get", "jobs"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["pi", "Complete", "1/1"]);
    c.shutdown().await;
}

const FAILING: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 1
  ttlSecondsAfterFinished: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 1"]}]
"#;

#[tokio::test]
async fn failing_job_reaches_backoff_limit_exceeded_then_its_ttl_deletes_it() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::Api;
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], FAILING)
        .await
        .expect_ok();
    // The second pod waits out the 10 s pod failure backoff.
    c.kubectl(&["wait", "--for=condition=failed", "job/bad", "--timeout=60s"])
        .await
        .expect_ok();
    let jobs: Api<Job> = Api::default_namespaced(c.client().await);
    let job = jobs.get("bad").await.expect("job");
    let status = job.status.unwrap();
    assert_eq!(status.failed, Some(2));
    let failed = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    // ttlSecondsAfterFinished: the job and (through the garbage collector)
    // its pods go away.
    eventually(
        &c,
        &["get", "jobs,pods", "-o", "name"],
        |s| s.trim().is_empty(),
        Duration::from_secs(30),
    )
    .await;
    c.shutdown().await;
}

#[tokio::test]
async fn resource_quota_of_two_pods_rejects_the_third_like_kube_apiserver() {
    use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
    use kube::api::{Api, PostParams};
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["create", "quota", "q", "--hard=pods=2,configmaps=5"])
        .await
        .expect_ok();
    for name in ["a", "b"] {
        c.kubectl(&["run", name, "--image=nginx"]).await.expect_ok();
    }
    c.kubectl(&["run", "third", "--image=nginx"])
        .await
        .expect_err_contains(
            "Error from server (Forbidden): pods \"third\" is forbidden: exceeded quota: q, \
             requested: pods=1, used: pods=2, limited: pods=2",
        );
    // kube-rs sees the same 403 Status.
    let pods: Api<Pod> = Api::default_namespaced(c.client().await);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "fourth"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    match pods.create(&PostParams::default(), &pod).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert!(s.message.contains("exceeded quota: q"), "{}", s.message);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // The controller reports usage (configmaps: kube-root-ca.crt may exist).
    let quotas: Api<ResourceQuota> = Api::default_namespaced(c.client().await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = quotas.get("q").await.unwrap();
        let used = q.status.and_then(|s| s.used).unwrap_or_default();
        if used.get("pods").map(|q| q.0.as_str()) == Some("2") && used.contains_key("configmaps") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status.used not reported: {used:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.kubectl(&["describe", "quota", "q"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["pods", "2     2"]);
    // Deleting a pod frees room again.
    c.kubectl(&["delete", "pod", "a", "--wait=true"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "quota", "q", "-o", "jsonpath={.status.used.pods}"],
        |s| s == "1",
        Duration::from_secs(20),
    )
    .await;
    c.kubectl(&["run", "third", "--image=nginx"])
        .await
        .expect_ok();
    c.shutdown().await;
}

const LIMITS: &str = r#"
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m}
"#;

#[tokio::test]
async fn limit_range_defaults_apply_to_new_pods_and_count_against_quota() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], LIMITS)
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "quota",
        "compute",
        "--hard=requests.cpu=250m,limits.memory=1Gi",
    ])
    .await
    .expect_ok();
    c.kubectl(&["run", "web", "--image=nginx"])
        .await
        .expect_ok();
    let pod = c
        .kubectl(&["get", "pod", "web", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let res = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(res["requests"]["cpu"], "100m", "{res}");
    // defaultRequest defaults from default (LimitRange defaulting).
    assert_eq!(res["requests"]["memory"], "256Mi", "{res}");
    assert_eq!(res["limits"]["cpu"], "500m", "{res}");
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
    );
    // Without a LimitRange default, a compute quota requires the values.
    c.kubectl(&["create", "namespace", "bare"])
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "quota",
        "cpu",
        "-n",
        "bare",
        "--hard=requests.cpu=1",
    ])
    .await
    .expect_ok();
    c.kubectl(&["run", "naked", "-n", "bare", "--image=nginx"])
        .await
        .expect_err_contains(
            "pods \"naked\" is forbidden: failed quota: cpu: must specify requests.cpu",
        );
    c.kubectl(&["run", "web2", "--image=nginx"])
        .await
        .expect_ok();
    c.kubectl(&["run", "web3", "--image=nginx"])
        .await
        .expect_err_contains(
            "pods \"web3\" is forbidden: exceeded quota: compute, requested: requests.cpu=100m, \
             used: requests.cpu=200m, limited: requests.cpu=250m",
        );
    c.shutdown().await;
}

const STS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: "nginx:1.27"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

#[tokio::test]
async fn statefulset_creates_ordered_pods_with_claims_scales_down_and_rolls_out() {
    let sim = NodeSimulator {
        ready_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let c = TestCluster::start_with_controllers(sim).await;
    c.kubectl_stdin(&["create", "-f", "-"], STS)
        .await
        .expect_ok();
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"])
        .await
        .expect_ok();
    let pods = c
        .kubectl(&["get", "pods", "-l", "app=web", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let mut names: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    let p0 = &pods["items"][0];
    assert_eq!(p0["spec"]["hostname"], p0["metadata"]["name"]);
    assert_eq!(p0["spec"]["subdomain"], "nginx");
    // Ordered: each pod started only after the previous one was ready.
    let start = |i: usize| {
        let p = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["name"] == format!("web-{i}"))
            .unwrap();
        p["status"]["startTime"].as_str().unwrap().to_string()
    };
    assert!(start(0) <= start(1) && start(1) <= start(2));
    c.kubectl(&["get", "pvc", "-o", "name"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "persistentvolumeclaim/data-web-0",
            "persistentvolumeclaim/data-web-1",
            "persistentvolumeclaim/data-web-2",
        ]);
    c.kubectl(&["scale", "statefulset", "web", "--replicas=1"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=web", "-o", "name"],
        |s| s.trim() == "pod/web-0",
        Duration::from_secs(30),
    )
    .await;
    // Claims are retained.
    c.kubectl(&["get", "pvc", "data-web-2"]).await.expect_ok();
    c.kubectl(&["set", "image", "statefulset/web", "nginx=nginx:1.28"])
        .await
        .expect_ok();
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"])
        .await
        .expect_ok();
    eventually(
        &c,
        &[
            "get",
            "pod",
            "web-0",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
        |s| s == "nginx:1.28",
        Duration::from_secs(30),
    )
    .await;
    let sts = c
        .kubectl(&["get", "sts", "web", "-o", "json"])
        .await
        .expect_ok()
        .json();
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    c.kubectl(&["rollout", "history", "statefulset/web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["REVISION", "1", "2"]);
    c.shutdown().await;
}

const DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "busybox:1.36"}]}
"#;

const EXTRA_NODES: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: second, labels: {kubernetes.io/hostname: second}}
- apiVersion: v1
  kind: Node
  metadata: {name: gpu}
  spec:
    taints: [{key: gpu, effect: NoSchedule}]
"#;

#[tokio::test]
async fn daemonset_runs_one_pod_per_eligible_node_and_rolls_out() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], DS)
        .await
        .expect_ok();
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await
        .expect_ok();
    let pods = c
        .kubectl(&["get", "pods", "-l", "app=agent", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["spec"]["nodeName"], "vkube-sim-node");
    assert_eq!(items[0]["status"]["phase"], "Running");
    // Update the template: the pod is replaced by one at the new revision.
    c.kubectl(&["set", "image", "daemonset/agent", "agent=busybox:1.37"])
        .await
        .expect_ok();
    eventually(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase}{'\\n'}{end}",
        ],
        |s| s.trim() == "busybox:1.37 Running",
        Duration::from_secs(30),
    )
    .await;
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await
        .expect_ok();
    // Another node gets a pod; a tainted one does not. A `kind: List`
    // manifest is validated by kubectl against /openapi/v2, which the
    // server does not serve yet.
    c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], EXTRA_NODES)
        .await
        .expect_ok();
    eventually(
        &c,
        &[
            "get",
            "ds",
            "agent",
            "-o",
            "jsonpath={.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}",
        ],
        |s| s == "2/2/1/2",
        Duration::from_secs(30),
    )
    .await;
    c.kubectl(&["get", "pods", "-l", "app=agent", "-o", "wide"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["second", "vkube-sim-node"])
        .expect_stdout_lacks(&[" gpu "]);
    // Removing the node deletes its pod (which stays Terminating: no kubelet
    // finishes it, and pod garbage collection is not this controller's job).
    c.kubectl(&["delete", "node", "second"]).await.expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=agent", "--no-headers"],
        |s| s.lines().filter(|l| !l.contains("Terminating")).count() == 1,
        Duration::from_secs(30),
    )
    .await;
    c.shutdown().await;
}

/// Waits for the next minute boundary at most: the schedule is every minute.
#[tokio::test]
async fn cronjob_creates_a_job_on_schedule_that_completes() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=* * * * *",
        "--",
        "sh",
        "-c",
        "exit 0",
    ])
    .await
    .expect_ok();
    let out = eventually(
        &c,
        &[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastScheduleTime}/{.status.lastSuccessfulTime}",
        ],
        |s| s.split('/').all(|t| !t.is_empty()),
        Duration::from_secs(90),
    )
    .await;
    let (scheduled, _) = out.split_once('/').unwrap();
    assert!(scheduled.ends_with(":00Z"), "{out}");
    let jobs = c
        .kubectl(&["get", "jobs", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let job = &jobs["items"][0];
    assert!(
        job["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tick-")
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        scheduled
    );
    c.kubectl(&["get", "cronjobs"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["tick", "* * * * *"]);
    c.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_cannot_overshoot_a_quota_and_object_counts_are_limited() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&[
        "create",
        "quota",
        "q",
        "--hard=count/configmaps=3,count/deployments.apps=1",
    ])
    .await
    .expect_ok();
    // The root CA publisher writes kube-root-ca.crt (the quota counts it):
    // wait for it, then count what is there.
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client().await);
    vkube_e2e::synced::eventually(
        "kube-root-ca.crt",
        std::time::Duration::from_secs(30),
        || {
            let cms = cms.clone();
            async move {
                match cms.get_opt("kube-root-ca.crt").await {
                    Ok(Some(_)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let before = cms.list(&Default::default()).await.unwrap().items.len();
    let results = futures::future::join_all((0..8).map(|i| {
        let cms = cms.clone();
        async move {
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("cm-{i}")},
            }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await
        }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3 - before, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        match r {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 403, "{s:?}");
                assert!(
                    s.message.contains("exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=3, limited: count/configmaps=3"),
                    "{}",
                    s.message
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    c.kubectl(&["create", "deployment", "one", "--image=nginx"])
        .await
        .expect_ok();
    c.kubectl(&["create", "deployment", "two", "--image=nginx"])
        .await
        .expect_err_contains(
            "deployments.apps \"two\" is forbidden: exceeded quota: q, requested: \
             count/deployments.apps=1, used: count/deployments.apps=1, limited: \
             count/deployments.apps=1",
        );
    c.shutdown().await;
}

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 2
  template:
    metadata:
      annotations: {sim.vkube.dev/exit-code: "0", sim.vkube.dev/run-seconds: "0.3"}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"#;

#[tokio::test]
async fn indexed_job_completes_every_index() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], INDEXED)
        .await
        .expect_ok();
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "get",
        "job",
        "idx",
        "-o",
        "jsonpath={.status.completedIndexes}/{.status.succeeded}",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["0-2/3"]);
    let pods = c
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "batch.kubernetes.io/job-name=idx",
            "-o",
            "jsonpath={range .items[*]}{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {end}",
        ])
        .await
        .expect_ok();
    let mut idx: Vec<&str> = pods.stdout.split_whitespace().collect();
    idx.sort();
    assert_eq!(idx, ["0", "1", "2"]);
    c.shutdown().await;
}

/// A ReplicationController as the guestbook-go example ships one (the
/// selector defaulted from the template's labels).
const RC: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: guestbook}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: guestbook}}
    spec:
      containers: [{name: guestbook, image: registry.k8s.io/guestbook:v3, ports: [{containerPort: 3000}]}]
"#;

#[tokio::test]
async fn a_replication_controller_keeps_its_pods_scales_and_cleans_up() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], RC)
        .await
        .expect_ok();
    let rc = c.get_json(&["rc", "guestbook"]).await.unwrap();
    assert_eq!(
        rc["spec"]["selector"]["app"], "guestbook",
        "defaulted: {rc}"
    );
    assert_eq!(
        rc["metadata"]["labels"]["app"], "guestbook",
        "defaulted: {rc}"
    );
    let count_running = |want: usize| {
        move |out: &str| out.lines().filter(|l| l.contains("Running")).count() == want
    };
    eventually(
        &c,
        &["get", "pods", "-l", "app=guestbook", "--no-headers"],
        count_running(3),
        Duration::from_secs(60),
    )
    .await;
    let pods = c.get_json(&["pods", "-l", "app=guestbook"]).await.unwrap();
    for p in pods["items"].as_array().unwrap() {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController", "{p}");
        assert_eq!(owner["controller"], true);
    }
    eventually(
        &c,
        &["get", "rc", "guestbook", "--no-headers"],
        |out| {
            out.split_whitespace()
                .take(4)
                .eq(["guestbook", "3", "3", "3"])
        },
        Duration::from_secs(60),
    )
    .await;
    c.kubectl(&["scale", "rc", "guestbook", "--replicas=1"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=guestbook", "--no-headers"],
        |out| out.lines().count() == 1,
        Duration::from_secs(60),
    )
    .await;
    c.kubectl(&["delete", "rc", "guestbook"]).await.expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=guestbook", "-o", "name"],
        |out| out.trim().is_empty(),
        Duration::from_secs(60),
    )
    .await;
    c.shutdown().await;
}

/// `kubectl drain` and a raw eviction under a PodDisruptionBudget: 429
/// with kube-apiserver's message while the budget forbids, the pod evicted
/// (and replaced) once it allows.
#[tokio::test]
async fn evictions_honour_pod_disruption_budgets() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["apply", "-f", "-"], vkube_e2e::GUARDED)
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pdb", "guarded", "--no-headers"],
        // NAME MIN-AVAILABLE MAX-UNAVAILABLE ALLOWED-DISRUPTIONS AGE
        |out: &str| out.split_whitespace().nth(3) == Some("0"),
        Duration::from_secs(60),
    )
    .await;
    let status = c.get_json(&["pdb", "guarded"]).await.unwrap()["status"].clone();
    assert_eq!(
        (
            &status["currentHealthy"],
            &status["desiredHealthy"],
            &status["expectedPods"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(2),
            &serde_json::json!(2)
        ),
        "{status}"
    );
    let pods = c.get_json(&["pods", "-l", "app=guarded"]).await.unwrap();
    let victim = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = c.evict(&victim, &[]).await;
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{}",
        refused.stderr
    );
    let drain = c
        .kubectl(&[
            "drain",
            "vkube-sim-node",
            "--pod-selector=app=guarded",
            "--timeout=3s",
        ])
        .await;
    assert!(!drain.success());
    assert!(
        drain.stderr.contains("disruption budget"),
        "{}",
        drain.stderr
    );
    c.kubectl(&["uncordon", "vkube-sim-node"]).await.expect_ok();

    // Once the budget allows one disruption, the eviction goes through.
    c.kubectl(&[
        "patch",
        "pdb",
        "guarded",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ])
    .await
    .expect_ok();
    eventually(
        &c,
        &["get", "pdb", "guarded", "--no-headers"],
        |out: &str| out.split_whitespace().nth(3) == Some("1"),
        Duration::from_secs(60),
    )
    .await;
    c.evict(&victim, &[]).await.expect_ok();
    let gone = c.get_json(&["pod", &victim]).await;
    assert!(
        gone.as_ref().is_err()
            || gone.as_ref().unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "{gone:?}"
    );
    c.shutdown().await;
}
