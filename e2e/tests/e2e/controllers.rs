//! The built-in controllers against a real server, driven by real kubectl:
//! ReplicaSets, Deployments (rollouts, history, undo, scale) and garbage
//! collection, with a simulated node running the pods.

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

fn running_pods(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.contains("Running")).count()
}

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 3
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: nginx}]}
"#;

#[tokio::test]
async fn replicaset_runs_and_scales_its_pods() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["create", "-f", "-"], RS)
        .await
        .expect_ok();
    let pods = eventually(
        &c,
        &["get", "pods", "-l", "app=front", "--no-headers"],
        |s| running_pods(s) == 3,
        Duration::from_secs(20),
    )
    .await;
    assert!(pods.lines().all(|l| l.starts_with("front-")), "{pods}");
    eventually(
        &c,
        &[
            "get",
            "rs",
            "front",
            "-o",
            "jsonpath={.status.readyReplicas}/{.status.availableReplicas}",
        ],
        |s| s == "3/3",
        Duration::from_secs(20),
    )
    .await;
    c.kubectl(&["scale", "rs", "front", "--replicas=1"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=front", "--no-headers"],
        |s| s.lines().count() == 1,
        Duration::from_secs(20),
    )
    .await;
    c.shutdown().await;
}

/// Images of the deployment's pods that are not being deleted.
async fn live_pod_images(c: &TestCluster, app: &str) -> Vec<String> {
    let out = c
        .kubectl(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])
        .await
        .expect_ok();
    out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn deployment_create_rollout_history_undo_and_scale_with_kubectl() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.0",
        "--replicas=3",
    ])
    .await
    .expect_ok();
    let pods = eventually(
        &c,
        &["get", "pods", "-l", "app=web", "--no-headers"],
        |s| running_pods(s) == 3,
        Duration::from_secs(30),
    )
    .await;
    assert!(pods.lines().all(|l| l.starts_with("web-")), "{pods}");
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment \"web\" successfully rolled out"]);
    let rs = c
        .kubectl(&["get", "rs", "-l", "app=web", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let rs0 = &rs["items"][0];
    let hash = rs0["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs0["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs0["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    c.kubectl(&["set", "image", "deployment/web", "nginx=nginx:2.0"])
        .await
        .expect_ok();
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["successfully rolled out"]);
    eventually(
        &c,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}",
        ],
        |s| s == "3/3/3",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(live_pod_images(&c, "web").await, ["nginx:2.0"; 3]);
    c.kubectl(&["rollout", "history", "deployment/web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["REVISION", "1 ", "2 "]);

    c.kubectl(&["rollout", "undo", "deployment/web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["rolled back"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.spec.template.spec.containers[0].image}"],
        |s| s == "3 nginx:1.0",
        Duration::from_secs(30),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_pod_images(&c, "web").await != ["nginx:1.0"; 3] {
        assert!(
            Instant::now() < deadline,
            "pods never went back to nginx:1.0"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.kubectl(&["rollout", "history", "deployment/web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["2 ", "3 "]);

    c.kubectl(&["scale", "deployment/web", "--replicas=5"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pods", "-l", "app=web", "--no-headers"],
        |s| running_pods(s) == 5,
        Duration::from_secs(30),
    )
    .await;
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await
        .expect_ok();
    c.shutdown().await;
}

const ROLLING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 4
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  selector: {matchLabels: {app: roll}}
  template:
    metadata: {labels: {app: roll}}
    spec: {containers: [{name: c, image: "img:1"}]}
"#;

#[tokio::test]
async fn set_image_rolls_out_within_max_unavailable_and_max_surge() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let sim = NodeSimulator {
        ready_delay: Duration::from_millis(300),
        ..Default::default()
    };
    let c = TestCluster::start_with_controllers(sim).await;
    c.kubectl_stdin(&["create", "-f", "-"], ROLLING)
        .await
        .expect_ok();
    c.kubectl(&["rollout", "status", "deployment/roll", "--timeout=30s"])
        .await
        .expect_ok();
    let client = c.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut status = c.kubectl_cmd(&["rollout", "status", "deployment/roll", "--timeout=60s"]);
    status = status.timeout(Duration::from_secs(70));
    c.kubectl(&["set", "image", "deployment/roll", "c=img:2"])
        .await
        .expect_ok();
    let waiter = status.spawn();
    let (mut min_ready, mut max_live, mut samples) = (usize::MAX, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods
            .list(&ListParams::default().labels("app=roll"))
            .await
            .unwrap();
        let live: Vec<&Pod> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let ready = live
            .iter()
            .filter(|p| vkube_controllers::util::is_pod_ready(p))
            .count();
        min_ready = min_ready.min(ready);
        max_live = max_live.max(live.len());
        samples += 1;
        let img2 = live
            .iter()
            .filter(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("img:2")
                    && vkube_controllers::util::is_pod_ready(p)
            })
            .count();
        if img2 == 4 && live.len() == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "rollout did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = waiter.wait(Duration::from_secs(60)).await.expect_ok();
    assert!(out.stdout.contains("successfully rolled out"), "{out}");
    assert!(samples > 10, "the rollout was observed ({samples} samples)");
    assert!(
        min_ready >= 3,
        "ready pods fell to {min_ready}, below replicas - maxUnavailable = 3"
    );
    assert!(
        max_live <= 5,
        "{max_live} pods existed, above replicas + maxSurge = 5"
    );
    let rs = c
        .kubectl(&[
            "get",
            "rs",
            "-l",
            "app=roll",
            "-o",
            "jsonpath={.items[*].spec.replicas}",
        ])
        .await
        .expect_ok();
    let mut counts: Vec<&str> = rs.stdout.split_whitespace().collect();
    counts.sort();
    assert_eq!(counts, ["0", "4"]);
    c.shutdown().await;
}

async fn deployment_with_pods(c: &TestCluster, name: &str) {
    c.kubectl(&[
        "create",
        "deployment",
        name,
        "--image=nginx",
        "--replicas=2",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=30s",
    ])
    .await
    .expect_ok();
}

async fn count(c: &TestCluster, kind: &str, app: &str) -> usize {
    c.kubectl(&["get", kind, "-l", &format!("app={app}"), "--no-headers"])
        .await
        .expect_ok()
        .lines()
        .len()
}

#[tokio::test]
async fn deleting_deployments_cascades_in_background_foreground_and_orphan_mode() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    for name in ["bg", "fg", "or"] {
        deployment_with_pods(&c, name).await;
    }

    // Background (kubectl's default): the deployment goes at once, then its
    // ReplicaSets and pods.
    c.kubectl(&["delete", "deployment", "bg"]).await.expect_ok();
    eventually(
        &c,
        &["get", "rs,pods", "-l", "app=bg", "-o", "name"],
        |s| s.trim().is_empty(),
        Duration::from_secs(30),
    )
    .await;

    // Foreground: kubectl waits for the deployment, which goes only after
    // its ReplicaSet and pods.
    let mut watch = c
        .kubectl_cmd(&[
            "get",
            "deployment",
            "fg",
            "-w",
            "-o",
            "jsonpath={.metadata.finalizers}{\"\\n\"}",
        ])
        .spawn();
    watch.wait_for_stdout("\n", Duration::from_secs(10)).await;
    c.kubectl(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=30s",
    ])
    .await
    .expect_ok();
    assert_eq!(count(&c, "rs", "fg").await, 0);
    assert_eq!(count(&c, "pods", "fg").await, 0);
    let seen = watch.kill().await;
    assert!(
        seen.stdout.contains("foregroundDeletion"),
        "the deployment waited with the foregroundDeletion finalizer: {seen}"
    );

    // Orphan: the ReplicaSet and pods stay, without an owner.
    c.kubectl(&[
        "delete",
        "deployment",
        "or",
        "--cascade=orphan",
        "--timeout=30s",
    ])
    .await
    .expect_ok();
    c.kubectl(&["get", "deployment", "or"])
        .await
        .expect_err_contains("NotFound");
    let rs = c
        .kubectl(&["get", "rs", "-l", "app=or", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let items = rs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0]["metadata"]["ownerReferences"].is_null(),
        "{}",
        items[0]["metadata"]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&c, "pods", "or").await, 2);
    c.shutdown().await;
}

const AUTOSCALED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx
        resources: {requests: {memory: 30Mi}}
"#;

/// `kubectl autoscale` against a cluster whose metrics API reports each
/// container at 21Mi of memory: at 70 % of a 30Mi request against a 50 %
/// target the autoscaler scales the Deployment from 1 to its maximum of 2,
/// and `kubectl get hpa` shows the utilization, the replicas and the
/// limiting condition as on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_scales_a_deployment_on_its_memory_utilization() {
    let c = TestCluster::start_configured_with_controllers(
        NodeSimulator::default(),
        vkube_e2e::metrics::FixedMetrics::install,
    )
    .await;
    c.kubectl_stdin(&["apply", "-f", "-"], AUTOSCALED)
        .await
        .expect_ok();
    c.kubectl(&[
        "autoscale",
        "deployment",
        "web",
        "--min=1",
        "--max=2",
        "--memory=50%",
    ])
    .await
    .expect_ok();
    eventually(
        &c,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        |out| out == "2",
        Duration::from_secs(90),
    )
    .await;
    let row = eventually(
        &c,
        &["get", "hpa", "web", "--no-headers"],
        |out| out.contains("memory: 70%/50%") && out.split_whitespace().nth(5) == Some("2"),
        Duration::from_secs(60),
    )
    .await;
    assert!(row.contains("Deployment/web"), "{row}");
    // At 2 replicas the next sync proposes 3: the maximum limits it.
    eventually(
        &c,
        &[
            "get",
            "hpa",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"ScalingLimited\")].reason}",
        ],
        |out| out == "TooManyReplicas",
        Duration::from_secs(60),
    )
    .await;
    let events = c.kubectl(&["events", "--for", "hpa/web"]).await.expect_ok();
    assert!(
        events.stdout.contains("SuccessfulRescale") && events.stdout.contains("New size: 2"),
        "{events}"
    );
    // The same object through autoscaling/v1: the memory metric rides in
    // the annotation, as kube-apiserver converts it.
    let v1 = c
        .kubectl(&[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.autoscaling\\.alpha\\.kubernetes\\.io/metrics}",
        ])
        .await
        .expect_ok();
    assert!(
        v1.stdout.contains("\"targetAverageUtilization\":50"),
        "{v1}"
    );
    c.shutdown().await;
}

const CLAIM_IN_USE: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  containers: [{name: app, image: nginx, volumeMounts: [{name: d, mountPath: /data}]}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
"#;

/// StorageObjectInUseProtection with the pvc-protection controller: a
/// claim a running pod mounts stays Terminating when deleted, and goes
/// once the pod is gone, as on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_in_use_is_deleted_only_after_its_pod() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["apply", "-f", "-"], CLAIM_IN_USE)
        .await
        .expect_ok();
    let finalizers = c
        .kubectl(&[
            "get",
            "pvc",
            "data",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ])
        .await
        .expect_ok();
    assert_eq!(finalizers.stdout, r#"["kubernetes.io/pvc-protection"]"#);
    eventually(
        &c,
        &["get", "pod", "user", "-o", "jsonpath={.spec.nodeName}"],
        |out| !out.is_empty(),
        Duration::from_secs(30),
    )
    .await;
    c.kubectl(&["delete", "pvc", "data", "--wait=false"])
        .await
        .expect_ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kubectl(&["get", "pvc", "data", "--no-headers"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["Terminating"]);
    c.kubectl(&["delete", "pod", "user", "--grace-period=0", "--force"])
        .await;
    eventually(
        &c,
        &["get", "pvc", "-o", "name"],
        |out| !out.contains("persistentvolumeclaim/data"),
        Duration::from_secs(30),
    )
    .await;
    c.shutdown().await;
}

/// podgc force-deletes a pod that is terminating on a node that is not
/// Ready and carries the `node.kubernetes.io/out-of-service` taint (a node
/// shut down for good, whose kubelet will never confirm the deletion),
/// and leaves a terminating pod on a healthy node to its kubelet.
#[tokio::test]
async fn podgc_deletes_terminating_pods_of_out_of_service_nodes() {
    let mut c = TestCluster::start().await;
    c.run_controllers("podgc");
    let nodes = r#"
apiVersion: v1
kind: Node
metadata: {name: down}
spec:
  taints: [{key: node.kubernetes.io/out-of-service, value: nodeshutdown, effect: NoExecute}]
---
apiVersion: v1
kind: Node
metadata: {name: up}
"#;
    c.kubectl_stdin(&["create", "-f", "-"], nodes)
        .await
        .expect_ok();
    c.kubectl(&[
        "patch",
        "node",
        "up",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#,
    ])
    .await
    .expect_ok();
    for (pod, node) in [("stranded", "down"), ("healthy", "up")] {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: app, image: busybox}}]\n"
        );
        c.kubectl_stdin(&["create", "-f", "-"], &yaml)
            .await
            .expect_ok();
        // A bound pod is deleted gracefully: it stays, terminating, until
        // its kubelet (or podgc) finishes.
        c.kubectl(&["delete", "pod", pod, "--wait=false"])
            .await
            .expect_ok();
    }
    // podgc runs every 20 s.
    eventually(
        &c,
        &["get", "pods", "-o", "name"],
        |out| !out.contains("pod/stranded"),
        Duration::from_secs(45),
    )
    .await;
    let healthy = c.get_json(&["pod", "healthy"]).await.unwrap();
    assert!(
        healthy["metadata"]["deletionTimestamp"].is_string(),
        "{healthy}"
    );
    c.shutdown().await;
}
