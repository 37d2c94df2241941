//! `kubectl top` in a virtual cluster: figures come from the host's
//! `metrics.k8s.io` (here the test host serves fixed figures,
//! `vkube_e2e::metrics::FixedMetrics`) for the tenant's own pods and the
//! nodes it sees, under virtual names; without a host metrics API the
//! group is absent, as on a cluster without metrics-server.

use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::SyncedCluster;
use vkube_e2e::metrics::{FixedMetrics, NODE_CPU, POD_CPU, POD_MEMORY};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: app, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: job, labels: {app: job}}
spec:
  containers: [{name: work, image: busybox, command: [sleep, infinity]}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_top_shows_the_hosts_figures_for_the_tenants_pods() {
    let c = SyncedCluster::start_with_host(NodeSimulator::default(), FixedMetrics::install, |_| {})
        .await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], PODS)
        .await
        .expect_ok();
    c.wait_running("web").await;
    c.wait_running("job").await;
    // A host pod that is not the tenant's: never shown.
    c.host
        .kubectl(&["run", "stranger", "--image=nginx", "-n", "default"])
        .await
        .expect_ok();

    let out = c.virt.kubectl(&["top", "pod"]).await.expect_ok();
    assert!(out.stdout.contains("web"), "{out}");
    assert!(out.stdout.contains("job"), "{out}");
    assert!(out.stdout.contains(POD_CPU), "{out}");
    assert!(out.stdout.contains(POD_MEMORY), "{out}");
    assert!(!out.stdout.contains("-x-"), "a host name leaked: {out}");
    assert!(!out.stdout.contains("stranger"), "{out}");

    let out = c
        .virt
        .kubectl(&["top", "pod", "-l", "app=web", "--containers"])
        .await
        .expect_ok();
    assert!(
        out.stdout.contains("web") && out.stdout.contains("app"),
        "{out}"
    );
    assert!(!out.stdout.contains("job"), "{out}");

    let one = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
        ])
        .await
        .expect_ok()
        .json();
    assert_eq!(one["kind"], "PodMetrics");
    assert_eq!(one["metadata"]["name"], "web");
    assert_eq!(one["metadata"]["namespace"], "default");
    assert_eq!(one["metadata"]["labels"]["app"], "web");
    // A name field selector narrows a list (authorization reads it as the
    // object's name); a watch is not served.
    let named = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?fieldSelector=metadata.name%3Djob",
        ])
        .await
        .expect_ok()
        .json();
    let items = named["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{named}");
    assert_eq!(items[0]["metadata"]["name"], "job");
    c.virt
        .kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?watch=true",
        ])
        .await
        .expect_err_contains("MethodNotAllowed");
    let out = c
        .virt
        .kubectl(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
        ])
        .await;
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{out}"
    );

    // Nodes: the ones the tenant sees.
    let nodes = c
        .virt
        .kubectl(&["get", "nodes", "-o", "name"])
        .await
        .expect_ok();
    let node = nodes.stdout.trim().trim_start_matches("node/").to_string();
    assert!(!node.is_empty(), "the tenant sees a node: {nodes}");
    let out = c.virt.kubectl(&["top", "node"]).await.expect_ok();
    assert!(
        out.stdout.contains(&node) && out.stdout.contains(NODE_CPU),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_host_metrics_api_the_group_is_absent() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], PODS)
        .await
        .expect_ok();
    c.wait_running("web").await;
    let out = c.virt.kubectl(&["top", "pod"]).await;
    assert!(!out.success());
    assert!(out.stderr.contains("Metrics API not available"), "{out}");
    let groups = c.virt.kubectl(&["api-versions"]).await.expect_ok();
    assert!(!groups.stdout.contains("metrics.k8s.io"), "{groups}");
}
