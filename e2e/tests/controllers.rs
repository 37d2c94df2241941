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
    c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], RS)
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
