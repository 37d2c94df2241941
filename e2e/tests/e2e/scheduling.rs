//! PriorityClasses through the syncer, end to end with real kubectl.

use std::time::Duration;

use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::{HOST_NAMESPACE, TENANT, eventually};
use vkube_syncer::priorityclass::PriorityClassOptions;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn priority_classes_reach_the_host_renamed_and_capped() {
    let c = SyncedCluster::start_with(|s| {
        s.priority_classes = Some(PriorityClassOptions { max_value: 1000 })
    })
    .await;
    c.virt
        .kubectl(&[
            "create",
            "priorityclass",
            "high",
            "--value=50000",
            "--global-default",
        ])
        .await
        .expect_ok();
    c.virt
        .kubectl(&[
            "run",
            "urgent",
            "--image=busybox",
            "--overrides={\"spec\":{\"priorityClassName\":\"high\"}}",
        ])
        .await
        .expect_ok();
    c.wait_running("urgent").await;
    let host_class = format!("vkube-high-x-{HOST_NAMESPACE}-x-{TENANT}");
    let pod = c
        .host_get("pod", &c.host_name("default", "urgent"))
        .await
        .unwrap();
    assert_eq!(
        pod["spec"]["priorityClassName"],
        host_class.as_str(),
        "{}",
        pod["spec"]
    );
    let class = c
        .host
        .get_json(&["priorityclass", &host_class])
        .await
        .unwrap();
    assert_eq!(class["value"], 1000, "capped: {class}");
    assert!(
        class["globalDefault"].is_null() || class["globalDefault"] == false,
        "never the host's default: {class}"
    );
    // The tenant's own system classes are synced under a host name clear of
    // the host's reserved `system-` prefix.
    let critical = run_critical(&c).await;
    let system = format!("vkube-system-cluster-critical-x-{HOST_NAMESPACE}-x-{TENANT}");
    assert_eq!(critical["spec"]["priorityClassName"], system.as_str());
    assert_eq!(
        c.host.get_json(&["priorityclass", &system]).await.unwrap()["value"],
        1000
    );
    // The value is immutable: a recreated class is replaced on the host.
    c.virt
        .kubectl(&["delete", "pod", "urgent", "--wait=false"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["delete", "priorityclass", "high"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["create", "priorityclass", "high", "--value=-10"])
        .await
        .expect_ok();
    eventually("the host class replaced", WAIT, || async {
        let class = c.host.get_json(&["priorityclass", &host_class]).await?;
        (class["value"] == -10)
            .then_some(())
            .ok_or(class.to_string())
    })
    .await;
    c.virt
        .kubectl(&["delete", "priorityclass", "high"])
        .await
        .expect_ok();
    eventually("the host class gone", WAIT, || async {
        match c.host.get_json(&["priorityclass", &host_class]).await {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.shutdown().await;
}

/// Runs pod `critical` of class `system-cluster-critical` in the tenant
/// and returns its host copy once it runs.
async fn run_critical(c: &SyncedCluster) -> serde_json::Value {
    c.virt
        .kubectl(&[
            "run",
            "critical",
            "--image=busybox",
            "--overrides={\"spec\":{\"priorityClassName\":\"system-cluster-critical\"}}",
        ])
        .await
        .expect_ok();
    c.wait_running("critical").await;
    c.host_get("pod", &c.host_name("default", "critical"))
        .await
        .unwrap()
}

#[tokio::test]
async fn without_class_sync_host_pods_name_no_class() {
    let c = SyncedCluster::start().await;
    let pod = run_critical(&c).await;
    assert!(
        pod["spec"]["priorityClassName"].is_null(),
        "a tenant pod named a host class: {}",
        pod["spec"]
    );
    assert!(
        pod["spec"]["priority"].as_i64().unwrap_or(0) < 1_000_000_000,
        "{}",
        pod["spec"]
    );
    c.shutdown().await;
}

/// A tenant's PodDisruptionBudget reaches the host, and the tenant's
/// evictions are the host's to decide: 429 naming the tenant's budget
/// while it forbids, the pod evicted on both sides once it allows.
#[tokio::test]
async fn a_budget_blocks_evictions_through_the_virtual_cluster() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], vkube_e2e::GUARDED)
        .await
        .expect_ok();
    let host_pdb = c.host_name("default", "guarded");
    let host = eventually("the host budget counting both pods", WAIT, || async {
        let b = c.host_get("pdb", &host_pdb).await?;
        (b["status"]["currentHealthy"] == 2)
            .then_some(b.clone())
            .ok_or(b.to_string())
    })
    .await;
    assert_eq!(
        host["spec"]["selector"],
        serde_json::json!({"matchLabels": {"app": "guarded",
            "vkube.dev/managed-by": TENANT, "vkube.dev/namespace": "default"}})
    );
    let pods = c
        .virt
        .get_json(&["pods", "-l", "app=guarded"])
        .await
        .unwrap();
    let victim = pods["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.wait_running(&victim).await;
    let refused = c.virt.evict(&victim, &[]).await;
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{}",
        refused.stderr
    );
    let status = c.virt.evict(&victim, &["-v=8"]).await;
    assert!(
        status
            .stderr
            .contains("The disruption budget guarded needs 2 healthy pods")
            && !status.stderr.contains(&host_pdb),
        "the tenant's budget is named: {}",
        status.stderr
    );
    // `kubectl drain` of the virtual node meets the same refusal.
    let drain = c
        .virt
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
    c.virt
        .kubectl(&["uncordon", "vkube-sim-node"])
        .await
        .expect_ok();
    // Once the budget allows it, the eviction goes through on both sides.
    c.virt
        .kubectl(&[
            "patch",
            "pdb",
            "guarded",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":1}}"#,
        ])
        .await
        .expect_ok();
    eventually("the host budget allows one", WAIT, || async {
        let b = c.host_get("pdb", &host_pdb).await?;
        (b["status"]["disruptionsAllowed"] == 1)
            .then_some(())
            .ok_or(b["status"].to_string())
    })
    .await;
    c.virt.evict(&victim, &[]).await.expect_ok();
    let host_pod = c.host_name("default", &victim);
    eventually("the pod evicted on both sides", WAIT, || async {
        let v = c.virt_get("pod", &victim).await;
        let h = c.host_get("pod", &host_pod).await;
        let gone = |r: &Result<serde_json::Value, String>| match r {
            Err(e) => e.contains("NotFound"),
            Ok(p) => p["metadata"]["deletionTimestamp"].is_string(),
        };
        (gone(&v) && gone(&h))
            .then_some(())
            .ok_or(format!("{v:?} {h:?}"))
    })
    .await;
    c.shutdown().await;
}

/// A tenant budget the host does not hold (the syncer refused it: its
/// selector uses a reserved key) still guards the tenant's evictions: the
/// virtual API server checks the tenant's budgets before asking the host.
#[tokio::test]
async fn a_budget_the_host_does_not_hold_still_guards_evictions() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl_stdin(
            &["apply", "-f", "-"],
            r#"
apiVersion: v1
kind: Pod
metadata: {name: held, labels: {app: held, vkube.dev/tier: gold}}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: held}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: held, vkube.dev/tier: gold}}
"#,
        )
        .await
        .expect_ok();
    c.wait_running("held").await;
    eventually("the tenant's budget computed", WAIT, || async {
        let b = c.virt_get("pdb", "held").await?;
        (b["status"]["currentHealthy"] == 1)
            .then_some(())
            .ok_or(b["status"].to_string())
    })
    .await;
    assert!(
        c.host_get("pdb", &c.host_name("default", "held"))
            .await
            .is_err(),
        "the syncer refuses a budget on a reserved key"
    );
    let refused = c.virt.evict("held", &[]).await;
    assert!(
        refused
            .stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{}",
        refused.stderr
    );
    assert!(
        c.host_get("pod", &c.host_name("default", "held"))
            .await
            .is_ok()
    );
    c.shutdown().await;
}
