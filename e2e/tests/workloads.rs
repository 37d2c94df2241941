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
    assert_eq!(&parts[..2], ["1", "0"], "{out}");
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
    c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], FAILING)
        .await
        .expect_ok();
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
