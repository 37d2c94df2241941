//! The namespace, serviceaccount and root-ca-cert-publisher controllers
//! against a real server, driven by real kubectl and kube-rs, with a
//! simulated node running the pods.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams};
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

const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: held, namespace: shop, finalizers: [example.com/hold]}
"#;

#[tokio::test]
async fn deleting_a_namespace_empties_and_removes_it() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(&["apply", "-f", "-"], APP)
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "pods", "-n", "shop", "--no-headers"],
        |s| s.lines().filter(|l| l.contains("Running")).count() == 2,
        Duration::from_secs(20),
    )
    .await;

    let mut delete = c
        .kubectl_cmd(&["delete", "namespace", "shop", "--timeout=60s"])
        .spawn();
    delete
        .wait_for_stdout(r#"namespace "shop" deleted"#, Duration::from_secs(10))
        .await;

    // The finalizer holds one ConfigMap: everything else goes, the
    // namespace stays Terminating and says why.
    let client = c.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let ns = loop {
        let ns = namespaces.get("shop").await.expect("shop still exists");
        let conditions = ns
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let remaining = conditions
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining");
        if remaining.and_then(|c| c.message.as_deref())
            == Some("Some resources are remaining: configmaps. has 1 resource instances")
        {
            break ns;
        }
        assert!(Instant::now() < deadline, "conditions: {conditions:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = ns.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Terminating"));
    let finalizers = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "NamespaceFinalizersRemaining")
        .expect("NamespaceFinalizersRemaining");
    assert_eq!(
        (
            finalizers.status.as_str(),
            finalizers.reason.as_deref(),
            finalizers.message.as_deref()
        ),
        (
            "True",
            Some("SomeFinalizersRemain"),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            )
        )
    );
    let out = c
        .kubectl(&["get", "ns", "shop", "--no-headers"])
        .await
        .expect_ok();
    assert!(out.stdout.contains("Terminating"), "{out}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    let names: Vec<_> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    assert_eq!(names, ["held"]);

    // Releasing the finalizer lets the deletion finish; kubectl returns
    // once the namespace is gone.
    c.kubectl(&[
        "patch",
        "cm",
        "held",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await
    .expect_ok();
    delete.wait(Duration::from_secs(60)).await.expect_ok();
    c.kubectl(&["get", "ns", "shop"])
        .await
        .expect_err_contains(r#"namespaces "shop" not found"#);
    let out = c
        .kubectl(&[
            "get",
            "pods,cm,deploy,rs,sa",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ])
        .await
        .expect_ok();
    assert!(!out.stdout.contains("shop/"), "{out}");
    c.shutdown().await;
}

#[tokio::test]
async fn new_namespaces_get_default_service_account_and_root_ca() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["create", "namespace", "newns"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "sa", "default", "-n", "newns", "-o", "name"],
        |s| s.trim() == "serviceaccount/default",
        Duration::from_secs(10),
    )
    .await;
    let ca = c.server.pki.ca_cert.clone();
    let jsonpath = r"jsonpath={.data.ca\.crt}";
    let got = eventually(
        &c,
        &[
            "get",
            "cm",
            "kube-root-ca.crt",
            "-n",
            "newns",
            "-o",
            jsonpath,
        ],
        |s| !s.is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(got, ca);
    // Built-in namespaces get the ConfigMap too.
    eventually(
        &c,
        &[
            "get",
            "cm",
            "kube-root-ca.crt",
            "-n",
            "kube-system",
            "-o",
            "name",
        ],
        |s| s.trim() == "configmap/kube-root-ca.crt",
        Duration::from_secs(10),
    )
    .await;

    // Deleted: recreated. Edited: restored.
    c.kubectl(&["delete", "sa", "default", "-n", "newns"])
        .await
        .expect_ok();
    eventually(
        &c,
        &["get", "sa", "default", "-n", "newns", "-o", "name"],
        |s| s.trim() == "serviceaccount/default",
        Duration::from_secs(10),
    )
    .await;
    c.kubectl(&[
        "patch",
        "cm",
        "kube-root-ca.crt",
        "-n",
        "newns",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered","extra":"x"}}"#,
    ])
    .await
    .expect_ok();
    eventually(
        &c,
        &[
            "get",
            "cm",
            "kube-root-ca.crt",
            "-n",
            "newns",
            "-o",
            "jsonpath={.data}",
        ],
        |s| s.contains("BEGIN CERTIFICATE") && !s.contains("extra"),
        Duration::from_secs(10),
    )
    .await;
    c.kubectl(&["delete", "cm", "kube-root-ca.crt", "-n", "newns"])
        .await
        .expect_ok();
    let got = eventually(
        &c,
        &[
            "get",
            "cm",
            "kube-root-ca.crt",
            "-n",
            "newns",
            "-o",
            jsonpath,
        ],
        |s| !s.is_empty(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(got, ca);
    c.shutdown().await;
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
"#;

/// Sets the pod's Ready condition, as a kubelet's readiness probe would.
async fn set_ready(c: &TestCluster, pod: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch =
        format!(r#"{{"status":{{"conditions":[{{"type":"Ready","status":"{status}"}}]}}}}"#);
    c.kubectl(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .await
    .expect_ok();
}

#[tokio::test]
async fn endpoints_and_endpointslices_follow_pod_readiness() {
    // Pods stay Running but not Ready until the test says otherwise.
    let sim = NodeSimulator {
        ready_delay: Duration::from_secs(3600),
        ..NodeSimulator::default()
    };
    let c = TestCluster::start_with_controllers(sim).await;
    c.kubectl_stdin(&["apply", "-f", "-"], WEB)
        .await
        .expect_ok();
    let ips = eventually(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.podIP} {end}",
        ],
        |s| s.split_whitespace().filter(|p| !p.ends_with('=')).count() == 3,
        Duration::from_secs(20),
    )
    .await;
    let mut pods: Vec<(String, String)> = ips
        .split_whitespace()
        .map(|p| {
            let (n, ip) = p.split_once('=').unwrap();
            (n.to_string(), ip.to_string())
        })
        .collect();
    pods.sort_by(|a, b| a.1.cmp(&b.1));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.join(" ")
    };
    let all_ips = sorted(pods.iter().map(|p| p.1.clone()).collect());

    // Not ready: all three under notReadyAddresses, none under addresses.
    let addrs = "jsonpath={.subsets[*].addresses[*].ip}|{.subsets[*].notReadyAddresses[*].ip}|{.subsets[*].ports[*].port}";
    let expect = |ready: Vec<String>, not_ready: Vec<String>| {
        format!("{}|{}|8080", sorted(ready), sorted(not_ready))
    };
    let unready = expect(vec![], pods.iter().map(|p| p.1.clone()).collect());
    let got = eventually(
        &c,
        &["get", "endpoints", "web", "-o", addrs],
        |s| normalize(s) == unready,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(normalize(&got), unready, "{all_ips}");

    // Two become ready: `kubectl get endpoints` lists them as ip:port.
    set_ready(&c, &pods[0].0, true).await;
    set_ready(&c, &pods[1].0, true).await;
    let out = eventually(
        &c,
        &["get", "endpoints", "web", "--no-headers"],
        |s| s.contains(&format!("{}:8080,{}:8080", pods[0].1, pods[1].1)),
        Duration::from_secs(20),
    )
    .await;
    assert!(!out.contains(&pods[2].1), "{out}");
    let two_ready = expect(
        vec![pods[0].1.clone(), pods[1].1.clone()],
        vec![pods[2].1.clone()],
    );
    eventually(
        &c,
        &["get", "endpoints", "web", "-o", addrs],
        |s| normalize(s) == two_ready,
        Duration::from_secs(20),
    )
    .await;
    let json = c
        .kubectl(&["get", "endpoints", "web", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let address = &json["subsets"][0]["addresses"][0];
    assert_eq!(address["nodeName"], "vkube-sim-node", "{json}");
    assert_eq!(address["targetRef"]["kind"], "Pod", "{json}");
    assert_eq!(address["targetRef"]["name"], pods[0].0.as_str(), "{json}");
    assert_eq!(json["subsets"][0]["ports"][0]["name"], "web", "{json}");

    // One stops being ready: it moves to notReadyAddresses.
    set_ready(&c, &pods[0].0, false).await;
    let one_ready = expect(
        vec![pods[1].1.clone()],
        vec![pods[0].1.clone(), pods[2].1.clone()],
    );
    eventually(
        &c,
        &["get", "endpoints", "web", "-o", addrs],
        |s| normalize(s) == one_ready,
        Duration::from_secs(20),
    )
    .await;

    // The EndpointSlices say the same, with conditions per endpoint.
    let selector = "kubernetes.io/service-name=web";
    let conds = "jsonpath={range .items[*].endpoints[*]}{.addresses[0]}={.conditions.ready}/{.conditions.serving} {end}|{.items[*].ports[*].port}";
    let want = {
        let mut v: Vec<String> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let r = i == 1;
                format!("{}={r}/{r}", p.1)
            })
            .collect();
        v.sort();
        format!("{}|8080", v.join(" "))
    };
    eventually(
        &c,
        &["get", "endpointslices", "-l", selector, "-o", conds],
        |s| normalize(s) == want,
        Duration::from_secs(20),
    )
    .await;
    let out = c
        .kubectl(&["get", "endpointslices", "-l", selector, "--no-headers"])
        .await
        .expect_ok();
    let line = out.lines()[0].to_string();
    assert!(
        line.starts_with("web-") && line.contains("IPv4") && line.contains("8080"),
        "{out}"
    );
    let slice = &c
        .kubectl(&["get", "endpointslices", "-l", selector, "-o", "json"])
        .await
        .expect_ok()
        .json()["items"][0];
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io",
        "{slice}"
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["kind"], "Service",
        "{slice}"
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["name"], "web",
        "{slice}"
    );
    assert_eq!(slice["addressType"], "IPv4", "{slice}");
    assert_eq!(slice["ports"][0]["name"], "web", "{slice}");

    // Settled: neither object is rewritten while nothing changes.
    let rvs = [
        "get",
        "endpoints,endpointslices",
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ];
    let before = c.kubectl(&rvs).await.expect_ok().stdout;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.kubectl(&rvs).await.expect_ok().stdout, before);

    // The bootstrap's default/kubernetes Endpoints (no selector) stay.
    let out = c
        .kubectl(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "127.0.0.1", "{out}");

    // Losing the selector removes the slices (the Endpoints stay, as
    // upstream leaves a selectorless Service's Endpoints alone).
    c.kubectl(&[
        "patch",
        "service",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/selector"}]"#,
    ])
    .await
    .expect_ok();
    eventually(
        &c,
        &["get", "endpointslices", "-l", selector, "-o", "name"],
        |s| s.is_empty(),
        Duration::from_secs(20),
    )
    .await;
    c.kubectl(&["get", "endpoints", "web"]).await.expect_ok();

    // Deleting the Service deletes its Endpoints.
    c.kubectl(&["delete", "service", "web"]).await.expect_ok();
    eventually(
        &c,
        &["get", "endpoints", "-o", "name"],
        |s| !s.contains("endpoints/web"),
        Duration::from_secs(20),
    )
    .await;
    c.shutdown().await;
}

/// Sorts the space-separated words of each `|`-separated field.
fn normalize(s: &str) -> String {
    s.split('|')
        .map(|f| {
            let mut w: Vec<_> = f.split_whitespace().collect();
            w.sort();
            w.dedup();
            w.join(" ")
        })
        .collect::<Vec<_>>()
        .join("|")
}
