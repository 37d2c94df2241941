//! resource.k8s.io/v1 (dynamic resource allocation) objects with real
//! kubectl: stored, listed with kube's columns and field selectors, and
//! validated as kube-apiserver validates them.

use vkube_e2e::TestCluster;

const OBJECTS: &str = r#"
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.example.com}
spec:
  selectors: [{cel: {expression: 'device.driver == "gpu.example.com"'}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: n1-gpu}
spec:
  driver: gpu.example.com
  nodeName: n1
  pool: {name: n1, resourceSliceCount: 1}
  devices: [{name: gpu-0}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: n2-gpu}
spec:
  driver: gpu.example.com
  nodeName: n2
  pool: {name: n2, resourceSliceCount: 1}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: training}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: gpu.example.com}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: per-pod}
spec:
  spec:
    devices:
      requests: [{name: gpu, exactly: {deviceClassName: gpu.example.com}}]
"#;

#[tokio::test]
async fn device_classes_claims_and_slices_are_served_and_validated() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], OBJECTS)
        .await
        .expect_ok();
    let claims = c.kubectl(&["get", "resourceclaims"]).await.expect_ok();
    assert_eq!(
        claims.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATE", "AGE"]
    );
    assert!(claims.lines()[1].contains("pending"), "{}", claims.stdout);
    let slices = c
        .kubectl(&[
            "get",
            "resourceslices",
            "--field-selector",
            "spec.nodeName=n1",
        ])
        .await
        .expect_ok();
    assert_eq!(
        slices.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "NODE", "DRIVER", "POOL", "AGE"]
    );
    assert_eq!(slices.lines().len(), 2, "only n1's: {}", slices.stdout);
    // A claim's spec is set once.
    c.kubectl(&[
        "patch",
        "resourceclaim",
        "training",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/devices/requests/0/name", "value": "other"}]"#,
    ])
    .await
    .expect_err_contains("spec: Invalid value");
    // A slice names exactly one node selection.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: resource.k8s.io/v1\nkind: ResourceSlice\nmetadata: {name: bad}\nspec:\n  driver: gpu.example.com\n  nodeName: n1\n  allNodes: true\n  pool: {name: p, resourceSliceCount: 1}\n",
    )
    .await
    .expect_err_contains(
        "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set",
    );
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: bad}\nspec:\n  devices:\n    requests: [{name: gpu}]\n",
    )
    .await
    .expect_err_contains(
        "spec.devices.requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required",
    );
    c.shutdown().await;
}

/// The API priority and fairness objects a kube-apiserver creates at start
/// are there, with kube's columns.
#[tokio::test]
async fn flow_schemas_and_priority_levels_are_kubes_bootstrap_set() {
    let c = TestCluster::start().await;
    let schemas = c.kubectl(&["get", "flowschemas"]).await.expect_ok();
    assert_eq!(
        schemas.lines()[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "PRIORITYLEVEL",
            "MATCHINGPRECEDENCE",
            "DISTINGUISHERMETHOD",
            "AGE",
            "MISSINGPL"
        ]
    );
    assert_eq!(schemas.lines().len(), 12, "{}", schemas.stdout);
    let exempt = schemas
        .lines()
        .into_iter()
        .find(|l| l.starts_with("exempt "))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        (exempt[1], exempt[2], exempt[3], exempt[5]),
        ("exempt", "1", "<none>", "False")
    );
    let levels = c
        .kubectl(&["get", "prioritylevelconfigurations"])
        .await
        .expect_ok();
    assert_eq!(levels.lines().len(), 9, "{}", levels.stdout);
    let workload_low = levels
        .lines()
        .into_iter()
        .find(|l| l.starts_with("workload-low "))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(&workload_low[1..6], ["Limited", "100", "128", "6", "50"]);
    c.shutdown().await;
}
