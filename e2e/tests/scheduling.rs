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
    let host_class = format!("high-x-{HOST_NAMESPACE}-x-{TENANT}");
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

#[tokio::test]
async fn without_class_sync_host_pods_name_no_class() {
    let c = SyncedCluster::start().await;
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
    let pod = c
        .host_get("pod", &c.host_name("default", "critical"))
        .await
        .unwrap();
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
