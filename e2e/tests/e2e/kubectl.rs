//! The real kubectl against a real vkube server over verified TLS.
//!
//! Every test starts its own [`TestCluster`] and asserts on what kubectl
//! prints. Objects are created from YAML (`create -f`), with kubectl's
//! default `--validate=strict` (the server validates fields): kubectl's typed
//! generators (`create namespace`, `create configmap`, `run`, `expose`, ...)
//! send protobuf bodies.

use std::time::Duration;
use vkube_e2e::TestCluster;

/// One multi-document manifest with a namespace and six kinds in it.
const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: demo
  labels:
    app: web
    tier: config
data:
  color: blue
  size: "3"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-secret
  namespace: demo
  labels:
    app: web
type: Opaque
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: demo
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
  namespace: demo
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
"#;

/// A ConfigMap manifest in `default`.
fn configmap(name: &str, labels: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\ndata: {{{data}}}\n"
    )
}

async fn create_app(c: &TestCluster) {
    let path = c.write_file("app.yaml", APP);
    let out = c
        .kubectl(&["create", "-f", path.to_str().unwrap()])
        .await
        .expect_ok();
    assert_eq!(
        out.lines(),
        [
            "namespace/demo created",
            "configmap/app-config created",
            "secret/app-secret created",
            "service/web created",
            "deployment.apps/web created",
            "serviceaccount/builder created",
            "role.rbac.authorization.k8s.io/reader created",
        ],
        "{out}"
    );
}

async fn create_stdin(c: &TestCluster, yaml: &str) {
    c.kubectl_stdin(&["create", "-f", "-"], yaml)
        .await
        .expect_ok();
}

/// How long a background `kubectl get -w` may take to print an event.
const WATCH_WAIT: Duration = Duration::from_secs(20);

/// Whether some line of a table starts with the cells `first` (columns are
/// padded, so compare whitespace-separated words).
fn has_cells(stdout: &str, first: &[&str]) -> bool {
    stdout.lines().any(|l| {
        l.split_whitespace()
            .take(first.len())
            .eq(first.iter().copied())
    })
}

/// Whether a table line starts with `name` as its first column.
fn has_row(stdout: &str, name: &str) -> bool {
    stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[tokio::test]
async fn version_api_resources_and_builtin_namespaces() {
    let c = TestCluster::start().await;

    let out = c.kubectl(&["version"]).await.expect_ok();
    let server_line = out
        .lines()
        .into_iter()
        .find(|l| l.starts_with("Server Version: "))
        .unwrap_or_else(|| panic!("no Server Version line: {out}"))
        .to_string();
    assert!(
        server_line
            .trim_start_matches("Server Version: ")
            .starts_with("v1."),
        "{server_line}"
    );
    let out = c.kubectl(&["version", "-o", "json"]).await.expect_ok();
    let v = out.json();
    assert_eq!(v["serverVersion"]["major"], "1", "{out}");
    assert_eq!(
        v["serverVersion"]["gitVersion"]
            .as_str()
            .map(|s| s.starts_with("v1.")),
        Some(true),
        "{out}"
    );

    let out = c.kubectl(&["api-resources"]).await.expect_ok();
    let row = |name: &str, api_version: &str| {
        out.lines().into_iter().any(|l| {
            let cols: Vec<_> = l.split_whitespace().collect();
            cols.first() == Some(&name) && cols.contains(&api_version)
        })
    };
    for (name, api_version) in [
        ("pods", "v1"),
        ("deployments", "apps/v1"),
        ("leases", "coordination.k8s.io/v1"),
        ("clusterroles", "rbac.authorization.k8s.io/v1"),
        ("namespaces", "v1"),
    ] {
        assert!(
            row(name, api_version),
            "{name} {api_version} missing: {out}"
        );
    }
    let out = c
        .kubectl(&["api-resources", "--namespaced=false", "-o", "name"])
        .await
        .expect_ok();
    assert!(out.lines().contains(&"namespaces"), "{out}");
    assert!(
        out.lines()
            .contains(&"clusterroles.rbac.authorization.k8s.io"),
        "{out}"
    );
    assert!(!out.lines().contains(&"pods"), "{out}");
    let out = c
        .kubectl(&["api-resources", "--api-group=apps", "-o", "name"])
        .await
        .expect_ok();
    assert!(out.lines().contains(&"deployments.apps"), "{out}");
    assert!(!out.lines().contains(&"pods"), "{out}");

    let out = c.kubectl(&["get", "ns"]).await.expect_ok();
    assert!(out.lines()[0].starts_with("NAME"), "{out}");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(has_row(&out.stdout, ns), "namespace {ns} missing: {out}");
    }
    let out = c.kubectl(&["get", "ns", "-o", "name"]).await.expect_ok();
    assert_eq!(
        out.lines(),
        [
            "namespace/default",
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system"
        ],
        "{out}"
    );
    let out = c
        .kubectl(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.ports[0].name}",
        ])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "https", "{out}");
    c.shutdown().await;
}

/// The bootstrap RBAC policy is there from the first start, as on a real
/// cluster: the user-facing roles, aggregated, and cluster-admin bound to
/// system:masters.
#[tokio::test]
async fn bootstrap_rbac_policy_is_served() {
    let c = TestCluster::start().await;
    let out = c
        .kubectl(&[
            "get",
            "clusterroles",
            "-l",
            "kubernetes.io/bootstrapping=rbac-defaults",
        ])
        .await
        .expect_ok();
    for role in ["cluster-admin", "admin", "edit", "view", "system:discovery"] {
        assert!(
            has_row(&out.stdout, role),
            "clusterrole {role} missing: {out}"
        );
    }
    let out = c
        .kubectl(&["get", "clusterrolebinding", "cluster-admin", "-o", "wide"])
        .await
        .expect_ok();
    assert!(
        has_cells(&out.stdout, &["cluster-admin", "ClusterRole/cluster-admin"]),
        "{out}"
    );
    assert!(out.stdout.contains("system:masters"), "{out}");
    let out = c
        .kubectl(&["describe", "clusterrole", "view"])
        .await
        .expect_ok();
    assert!(out.stdout.contains("deployments.apps"), "{out}");
    assert!(
        !out.stdout.contains("secrets "),
        "view must not grant secrets: {out}"
    );
    let out = c
        .kubectl(&[
            "get",
            "clusterrole",
            "admin",
            "-o",
            "jsonpath={.aggregationRule.clusterRoleSelectors[0].matchLabels}",
        ])
        .await
        .expect_ok();
    assert!(
        out.stdout
            .contains("rbac.authorization.k8s.io/aggregate-to-admin"),
        "{out}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn create_multi_document_then_get_in_every_format() {
    let c = TestCluster::start().await;
    create_app(&c).await;
    create_stdin(&c, &configmap("other", "app: db", "k: v")).await;

    // Plain table reads of every created object.
    for (kind, name) in [
        ("configmap", "app-config"),
        ("secret", "app-secret"),
        ("service", "web"),
        ("deployment", "web"),
        ("serviceaccount", "builder"),
        ("role", "reader"),
    ] {
        let out = c
            .kubectl(&["get", kind, name, "-n", "demo"])
            .await
            .expect_ok();
        assert!(out.lines()[0].starts_with("NAME "), "{out}");
        assert!(has_row(&out.stdout, name), "{kind}/{name}: {out}");
        assert_eq!(out.lines().len(), 2, "{out}");
    }
    let out = c
        .kubectl(&[
            "get",
            "cm,secret,svc,deploy,sa,role",
            "-n",
            "demo",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(
        out.lines(),
        [
            "configmap/app-config",
            "secret/app-secret",
            "service/web",
            "deployment.apps/web",
            "serviceaccount/builder",
            "role.rbac.authorization.k8s.io/reader",
        ],
        "{out}"
    );

    // -o yaml / -o json.
    let out = c
        .kubectl(&["get", "cm", "app-config", "-n", "demo", "-o", "yaml"])
        .await
        .expect_ok();
    let y: serde_json::Value = serde_saphyr::from_str(&out.stdout).expect("yaml");
    assert_eq!(y["kind"].as_str(), Some("ConfigMap"), "{out}");
    assert_eq!(y["metadata"]["namespace"].as_str(), Some("demo"), "{out}");
    assert_eq!(y["data"]["color"].as_str(), Some("blue"), "{out}");
    assert!(
        y["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "{out}"
    );
    let out = c
        .kubectl(&["get", "secret", "app-secret", "-n", "demo", "-o", "json"])
        .await
        .expect_ok();
    let v = out.json();
    // stringData is folded into base64 data by the server.
    assert_eq!(v["data"]["password"], "aHVudGVyMg==", "{out}");
    assert!(v.get("stringData").is_none(), "{out}");
    let out = c
        .kubectl(&["get", "deploy", "-n", "demo", "-o", "json"])
        .await
        .expect_ok();
    let v = out.json();
    assert_eq!(v["kind"], "List", "{out}");
    assert_eq!(v["items"][0]["spec"]["replicas"], 2, "{out}");
    assert_eq!(v["items"][0]["metadata"]["generation"], 1, "{out}");

    // -o jsonpath.
    let out = c
        .kubectl(&[
            "get",
            "svc",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}",
        ])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "80/8080", "{out}");
    let out = c
        .kubectl(&[
            "get",
            "cm",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        ])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["default/other", "demo/app-config"], "{out}");

    // Paginated lists (limit + continue) return every item once.
    let out = c
        .kubectl(&["get", "cm,secret", "-A", "--chunk-size=1", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(
        out.lines(),
        [
            "configmap/other",
            "configmap/app-config",
            "secret/app-secret"
        ],
        "{out}"
    );

    // -A prints a NAMESPACE column.
    let out = c.kubectl(&["get", "configmaps", "-A"]).await.expect_ok();
    assert!(out.lines()[0].starts_with("NAMESPACE"), "{out}");
    let rows: Vec<Vec<&str>> = out.lines()[1..]
        .iter()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["default", "other"], vec!["demo", "app-config"]],
        "{out}"
    );

    // --show-labels, -l and --field-selector.
    let out = c
        .kubectl(&["get", "cm", "app-config", "-n", "demo", "--show-labels"])
        .await
        .expect_ok();
    assert!(out.lines()[0].ends_with("LABELS"), "{out}");
    assert!(out.lines()[1].ends_with("app=web,tier=config"), "{out}");
    let out = c
        .kubectl(&[
            "get",
            "cm,secret,svc,deploy",
            "-A",
            "-l",
            "app=web",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(
        out.lines(),
        [
            "configmap/app-config",
            "secret/app-secret",
            "service/web",
            "deployment.apps/web"
        ],
        "{out}"
    );
    let out = c
        .kubectl(&["get", "cm", "-A", "-l", "app in (db)", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/other"], "{out}");
    let out = c
        .kubectl(&["get", "cm", "-A", "-l", "app,tier!=config", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/other"], "{out}");
    let out = c
        .kubectl(&["get", "cm", "-n", "demo", "-l", "app=nothing"])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains("No resources found in demo namespace."),
        "{out}"
    );
    let out = c
        .kubectl(&[
            "get",
            "cm",
            "-A",
            "--field-selector",
            "metadata.name=app-config",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/app-config"], "{out}");
    let out = c
        .kubectl(&[
            "get",
            "cm",
            "-A",
            "--field-selector",
            "metadata.namespace!=demo",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/other"], "{out}");
    c.kubectl(&["get", "cm", "-A", "--field-selector", "data.color=blue"])
        .await
        .expect_err_contains("field label not supported: data.color");

    // Creating the same objects again is AlreadyExists for each.
    let out = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &configmap("other", "app: db", "k: v"),
        )
        .await
        .expect_err_contains(
            r#"Error from server (AlreadyExists): error when creating "STDIN": configmaps "other" already exists"#,
        );
    assert_eq!(out.status.code(), Some(1), "{out}");
    c.shutdown().await;
}

#[tokio::test]
async fn replace_label_annotate_patch_and_scale() {
    let c = TestCluster::start().await;
    create_app(&c).await;
    let ns = ["-n", "demo"];
    let get = |args: &'static [&'static str]| {
        let mut v: Vec<&str> = vec!["get"];
        v.extend_from_slice(args);
        v.extend_from_slice(&ns);
        v
    };

    // replace -f with changed data.
    let changed = APP.replace("color: blue", "color: green");
    let path = c.write_file("changed.yaml", &changed);
    let replaced = c
        .kubectl(&["replace", "-n", "demo", "-f", path.to_str().unwrap()])
        .await;
    // The Namespace replace succeeds too; every object prints "replaced".
    let replaced = replaced.expect_ok();
    assert!(
        replaced.lines().contains(&"configmap/app-config replaced"),
        "{replaced}"
    );
    assert!(
        replaced.lines().contains(&"deployment.apps/web replaced"),
        "{replaced}"
    );
    let out = c
        .kubectl(&get(&["cm", "app-config", "-o", "jsonpath={.data.color}"]))
        .await
        .expect_ok();
    assert_eq!(out.stdout, "green", "{out}");

    // label: add, refuse to overwrite, overwrite, remove.
    let out = c
        .kubectl(&["label", "cm", "app-config", "-n", "demo", "env=prod"])
        .await
        .expect_ok();
    assert_eq!(out.stdout.trim(), "configmap/app-config labeled", "{out}");
    c.kubectl(&["label", "cm", "app-config", "-n", "demo", "env=dev"])
        .await
        .expect_err_contains("'env' already has a value (prod), and --overwrite is false");
    c.kubectl(&[
        "label",
        "cm",
        "app-config",
        "-n",
        "demo",
        "--overwrite",
        "env=dev",
    ])
    .await
    .expect_ok();
    let out = c
        .kubectl(&get(&["cm", "-l", "env=dev", "-o", "name"]))
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/app-config"], "{out}");
    c.kubectl(&["label", "cm", "app-config", "-n", "demo", "tier-"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/app-config unlabeled"]);
    let out = c
        .kubectl(&get(&["cm", "app-config", "-o", "json"]))
        .await
        .expect_ok();
    assert_eq!(
        out.json()["metadata"]["labels"],
        serde_json::json!({"app": "web", "env": "dev"}),
        "{out}"
    );

    // annotate: add, overwrite, remove.
    c.kubectl(&["annotate", "deploy", "web", "-n", "demo", "owner=team-a"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web annotated"]);
    c.kubectl(&["annotate", "deploy", "web", "-n", "demo", "owner=team-b"])
        .await
        .expect_err_contains("--overwrite is false");
    c.kubectl(&[
        "annotate",
        "deploy",
        "web",
        "-n",
        "demo",
        "--overwrite",
        "owner=team-b",
    ])
    .await
    .expect_ok();
    let out = c
        .kubectl(&get(&[
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.owner}",
        ]))
        .await
        .expect_ok();
    assert_eq!(out.stdout, "team-b", "{out}");
    c.kubectl(&["annotate", "deploy", "web", "-n", "demo", "owner-"])
        .await
        .expect_ok();
    let out = c
        .kubectl(&get(&["deploy", "web", "-o", "json"]))
        .await
        .expect_ok();
    assert!(
        out.json()["metadata"]["annotations"].get("owner").is_none(),
        "{out}"
    );
    // Metadata-only edits leave the generation alone.
    assert_eq!(out.json()["metadata"]["generation"], 1, "{out}");

    // patch --type=merge and --type=json.
    c.kubectl(&[
        "patch",
        "cm",
        "app-config",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"color":"red","size":null,"extra":"x"}}"#,
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["configmap/app-config patched"]);
    let out = c
        .kubectl(&get(&["cm", "app-config", "-o", "json"]))
        .await
        .expect_ok();
    assert_eq!(
        out.json()["data"],
        serde_json::json!({"color": "red", "extra": "x"}),
        "{out}"
    );
    c.kubectl(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"},{"op":"add","path":"/metadata/labels/patched","value":"yes"}]"#,
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["deployment.apps/web patched"]);
    let out = c
        .kubectl(&get(&[
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.labels.patched} {.metadata.generation}",
        ]))
        .await
        .expect_ok();
    // replace -f bumped nothing in the spec; the image patch did.
    assert_eq!(out.stdout, "nginx:1.28 yes 2", "{out}");
    c.kubectl(&[
        "patch",
        "cm",
        "app-config",
        "-n",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/color","value":"purple"}]"#,
    ])
    .await
    .expect_err_contains("The request is invalid: ");
    c.kubectl(&[
        "patch",
        "cm",
        "missing",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"b"}}"#,
    ])
    .await
    .expect_err_contains(r#"Error from server (NotFound): configmaps "missing" not found"#);

    // scale through the scale subresource.
    c.kubectl(&["scale", "deployment", "web", "-n", "demo", "--replicas=5"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web scaled"]);
    let out = c
        .kubectl(&get(&["deploy", "web", "-o", "jsonpath={.spec.replicas}"]))
        .await
        .expect_ok();
    assert_eq!(out.stdout, "5", "{out}");
    c.kubectl(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "demo",
        "--current-replicas=5",
        "--replicas=0",
    ])
    .await
    .expect_ok();
    let out = c
        .kubectl(&get(&["deploy", "web", "-o", "jsonpath={.spec.replicas}"]))
        .await
        .expect_ok();
    assert_eq!(out.stdout, "0", "{out}");
    c.kubectl(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "demo",
        "--current-replicas=3",
        "--replicas=1",
    ])
    .await
    .expect_err_contains("Expected replicas to be 3, was 0");
    c.shutdown().await;
}

#[tokio::test]
async fn delete_by_name_file_selector_and_all() {
    let c = TestCluster::start().await;
    for (name, labels) in [
        ("a", "tier: web"),
        ("b", "tier: web"),
        ("c", "tier: db"),
        ("x", "tier: db"),
        ("cache", "tier: cache"),
    ] {
        create_stdin(&c, &configmap(name, labels, "k: v")).await;
    }

    // By name.
    let out = c.kubectl(&["delete", "configmap", "x"]).await.expect_ok();
    assert_eq!(
        out.stdout.trim(),
        r#"configmap "x" deleted from default namespace"#,
        "{out}"
    );
    c.kubectl(&["get", "configmap", "x"])
        .await
        .expect_err_contains(r#"Error from server (NotFound): configmaps "x" not found"#);
    c.kubectl(&["delete", "configmap", "x"])
        .await
        .expect_err_contains(r#"Error from server (NotFound): configmaps "x" not found"#);
    c.kubectl(&["delete", "configmap", "x", "--ignore-not-found"])
        .await
        .expect_ok();

    // By -f.
    let path = c.write_file("cache.yaml", &configmap("cache", "tier: cache", "k: v"));
    c.kubectl(&["delete", "-f", path.to_str().unwrap()])
        .await
        .expect_ok()
        .expect_stdout_contains(&[r#"configmap "cache" deleted"#]);

    // By -l.
    let out = c
        .kubectl(&["delete", "configmap", "-l", "tier=web"])
        .await
        .expect_ok();
    assert_eq!(out.lines().len(), 2, "{out}");
    assert!(out.stdout.contains(r#"configmap "a" deleted"#), "{out}");
    assert!(out.stdout.contains(r#"configmap "b" deleted"#), "{out}");
    let out = c.kubectl(&["get", "cm", "-o", "name"]).await.expect_ok();
    assert_eq!(out.lines(), ["configmap/c"], "{out}");

    // --all (in one namespace only).
    create_app(&c).await;
    c.kubectl(&["delete", "configmap", "--all"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[r#"configmap "c" deleted"#]);
    let out = c.kubectl(&["get", "cm"]).await.expect_ok();
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr
            .contains("No resources found in default namespace."),
        "{out}"
    );
    let out = c
        .kubectl(&["get", "cm", "-A", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.lines(), ["configmap/app-config"], "{out}");
    c.kubectl(&["delete", "all", "--all", "-n", "demo"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            r#"service "web" deleted"#,
            r#"deployment.apps "web" deleted"#,
        ]);
    let out = c
        .kubectl(&["get", "svc,deploy", "-n", "demo"])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "", "{out}");
    c.shutdown().await;
}

#[tokio::test]
async fn get_watch_sees_later_create_and_delete() {
    let c = TestCluster::start().await;
    create_stdin(&c, &configmap("before", "", "k: v")).await;
    let mut watch = c
        .kubectl_cmd(&["get", "configmaps", "-w", "--output-watch-events"])
        .spawn();
    // The initial list comes first.
    watch.wait_for_stdout("before", WATCH_WAIT).await;
    create_stdin(&c, &configmap("watched", "", "k: v")).await;
    watch
        .wait_until(
            "ADDED watched",
            |s| has_cells(s, &["ADDED", "watched"]),
            WATCH_WAIT,
        )
        .await;
    c.kubectl(&["delete", "cm", "watched"]).await.expect_ok();
    let seen = watch
        .wait_until(
            "DELETED watched",
            |s| has_cells(s, &["DELETED", "watched"]),
            WATCH_WAIT,
        )
        .await;
    let out = watch.kill().await;
    let events: Vec<Vec<&str>> = seen
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        events,
        [
            vec!["EVENT", "NAME"],
            vec!["ADDED", "before"],
            vec!["ADDED", "watched"],
            vec!["DELETED", "watched"],
        ],
        "{out}"
    );

    // Plain -w on one object, with -o name.
    let mut watch = c
        .kubectl_cmd(&["get", "configmap", "before", "-w", "-o", "name"])
        .spawn();
    watch
        .wait_for_stdout("configmap/before\n", WATCH_WAIT)
        .await;
    c.kubectl(&["label", "cm", "before", "seen=yes"])
        .await
        .expect_ok();
    c.kubectl(&["delete", "cm", "before"]).await.expect_ok();
    let seen = watch
        .wait_for_stdout(
            "configmap/before\nconfigmap/before\nconfigmap/before\n",
            WATCH_WAIT,
        )
        .await;
    watch.kill().await;
    assert_eq!(seen.lines().count(), 3, "{seen}");
    c.shutdown().await;
}

#[tokio::test]
async fn namespace_deletion_finalizes_and_missing_namespace_is_rejected() {
    let mut c = TestCluster::start().await;
    c.run_controllers("namespace");
    create_app(&c).await;
    let out = c
        .kubectl(&["delete", "namespace", "demo", "--timeout=30s"])
        .await
        .expect_ok();
    assert_eq!(out.stdout.trim(), r#"namespace "demo" deleted"#, "{out}");
    c.kubectl(&["get", "ns", "demo"])
        .await
        .expect_err_contains(r#"Error from server (NotFound): namespaces "demo" not found"#);
    let out = c
        .kubectl(&["get", "cm,deploy", "-A", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "", "{out}");

    // Writes into a namespace that does not exist.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: nope\n";
    c.kubectl_stdin(&["create", "-f", "-"], yaml)
        .await
        .expect_err_contains(r#"namespaces "nope" not found"#);
    c.kubectl_stdin(
        &["create", "-n", "nope", "-f", "-"],
        &configmap("lost", "", "k: v"),
    )
    .await
    .expect_err_contains(r#"namespaces "nope" not found"#);

    // Built-in namespaces cannot be deleted.
    c.kubectl(&["delete", "namespace", "kube-system"])
        .await
        .expect_err_contains("this namespace may not be deleted");
    c.shutdown().await;
}

#[tokio::test]
async fn wait_for_delete_returns_when_another_command_deletes() {
    let c = TestCluster::start().await;
    create_stdin(&c, &configmap("doomed", "", "k: v")).await;
    let mut waiter = c
        .kubectl_cmd(&[
            "wait",
            "--for=delete",
            "configmap/doomed",
            "--timeout=30s",
            "-v=6",
        ])
        .spawn();
    // Delete only once the waiter is watching (it logs each request at -v=6),
    // so it must see the deletion happen rather than find nothing.
    waiter
        .wait_for_stderr("watch=true", Duration::from_secs(20))
        .await;
    c.kubectl(&["delete", "configmap", "doomed", "--wait=false"])
        .await
        .expect_ok();
    let out = waiter.wait(Duration::from_secs(30)).await;
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "configmap/doomed condition met", "{out}");

    // A wait on something that is not deleted times out (non-zero exit).
    create_stdin(&c, &configmap("kept", "", "k: v")).await;
    c.kubectl(&["wait", "--for=delete", "configmap/kept", "--timeout=1s"])
        .await
        .expect_err_contains("timed out waiting for the condition on configmaps/kept");
    c.shutdown().await;
}

/// `name=image` of each container of Deployment `name`, space separated.
async fn container_images(c: &TestCluster, name: &str) -> vkube_e2e::Output {
    c.kubectl(&[
        "get",
        "deployment",
        name,
        "-o",
        "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image} {end}",
    ])
    .await
    .expect_ok()
}

/// `kubectl patch` without `--type` sends a strategic merge patch: patching
/// one container by name keeps the others, and `kubectl set image` works.
#[tokio::test]
async fn default_patch_is_strategic_and_set_image_works() {
    let c = TestCluster::start().await;
    create_stdin(
        &c,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: two
spec:
  replicas: 1
  selector: {matchLabels: {app: two}}
  template:
    metadata: {labels: {app: two}}
    spec:
      containers:
      - {name: app, image: "app:1"}
      - {name: sidecar, image: "sidecar:1"}
"#,
    )
    .await;
    c.kubectl(&[
        "patch",
        "deployment",
        "two",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}"#,
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["deployment.apps/two patched"]);
    let images = container_images(&c, "two").await;
    assert_eq!(
        images.stdout.trim(),
        "app=app:2 sidecar=sidecar:1",
        "{images}"
    );
    c.kubectl(&["set", "image", "deployment/two", "sidecar=sidecar:2"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/two image updated"]);
    let images = container_images(&c, "two").await;
    assert_eq!(
        images.stdout.trim(),
        "app=app:2 sidecar=sidecar:2",
        "{images}"
    );
}

/// kubectl's default `--validate=strict` leaves validation to the server
/// once `/openapi/v3` advertises `fieldValidation`: an unknown field fails
/// `create` with kube-apiserver's message, `--validate=warn` prints the
/// server's warning, `--validate=ignore` is silent, and the field is never stored.
#[tokio::test]
async fn create_validates_fields_on_the_server() {
    let c = TestCluster::start().await;
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  labells: {a: b}\ndata: {k: v}\nspec: {x: 1}\n";
    let out = c
        .kubectl_stdin(&["create", "-f", "-"], bad)
        .await
        .expect_err_contains(
            r#"Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.labells", unknown field "spec""#,
        );
    assert_eq!(out.status.code(), Some(1), "{out}");
    c.kubectl(&["get", "cm", "typo"])
        .await
        .expect_err_contains("NotFound");
    let out = c
        .kubectl_stdin(&["create", "--validate=warn", "-f", "-"], bad)
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/typo created"]);
    assert!(
        out.stderr
            .contains(r#"Warning: unknown field "metadata.labells""#)
            && out.stderr.contains(r#"Warning: unknown field "spec""#),
        "{out}"
    );
    let stored = c
        .kubectl(&["get", "cm", "typo", "-o", "json"])
        .await
        .expect_ok()
        .json();
    assert!(stored.get("spec").is_none(), "{stored}");
    assert!(stored["metadata"].get("labells").is_none(), "{stored}");
    assert_eq!(stored["data"]["k"], "v");
    let out = c
        .kubectl_stdin(
            &["create", "--validate=ignore", "-f", "-"],
            &bad.replace("typo", "quiet"),
        )
        .await
        .expect_ok();
    assert!(!out.stderr.contains("Warning"), "{out}");
    // A value of the wrong type names the field.
    let wrong = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: wrong\nspec:\n  replicas: many\n";
    c.kubectl_stdin(&["create", "-f", "-"], wrong)
        .await
        .expect_err_contains("Deployment.spec.replicas");
    c.shutdown().await;
}

/// `kubectl apply` of a valid manifest works without flags and builds its
/// strategic merge patch from the OpenAPI v3 schema (no fallback logged at
/// `-v=5`), so a container added by someone else survives a re-apply and
/// list items merge by name.
#[tokio::test]
async fn apply_uses_the_openapi_v3_schema() {
    let c = TestCluster::start().await;
    let manifest = |image: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
spec:
  replicas: 1
  selector: {{matchLabels: {{app: applied}}}}
  template:
    metadata: {{labels: {{app: applied}}}}
    spec:
      containers:
      - name: app
        image: "{image}"
        env: [{{name: A, value: "1"}}]
"#
        )
    };
    c.kubectl_stdin(&["apply", "-f", "-"], &manifest("app:1"))
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/applied created"]);
    c.kubectl(&[
        "patch",
        "deployment",
        "applied",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"injected","image":"side:1"}]}}}}"#,
    ])
    .await
    .expect_ok();
    let out = c
        .kubectl_stdin(&["apply", "-v=5", "-f", "-"], &manifest("app:2"))
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/applied configured"]);
    assert!(
        !out.stderr.to_ascii_lowercase().contains("openapi v3"),
        "apply fell back from the v3 schema: {out}"
    );
    let images = container_images(&c, "applied").await;
    let mut got: Vec<&str> = images.stdout.split_whitespace().collect();
    got.sort();
    assert_eq!(got, ["app=app:2", "injected=side:1"], "{images}");
    c.shutdown().await;
}

/// `kubectl explain` reads the OpenAPI v3 documents.
#[tokio::test]
async fn explain_prints_field_docs() {
    let c = TestCluster::start().await;
    c.kubectl(&["explain", "pod.spec.containers"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "KIND:       Pod",
            "VERSION:    v1",
            "FIELD: containers <[]Container>",
            "List of containers belonging to the pod.",
            "FIELDS:",
            "  image\t<string>",
            "  name\t<string> -required-",
        ]);
    c.kubectl(&["explain", "deployments.spec.replicas"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["GROUP:      apps", "FIELD: replicas <integer>"]);
    c.kubectl(&["explain", "pod.spec.nope"])
        .await
        .expect_err_contains(r#"field "nope" does not exist"#);
    c.shutdown().await;
}

/// The whitespace-separated words of a table's header line.
fn header(out: &vkube_e2e::Output) -> Vec<&str> {
    out.lines()[0].split_whitespace().collect()
}

/// The whitespace-separated words of the row whose first column is `name`.
fn row<'a>(out: &'a vkube_e2e::Output, name: &str) -> Vec<&'a str> {
    out.lines()
        .into_iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name}: {out}"))
}

#[tokio::test]
async fn get_prints_each_kinds_columns() {
    let c = TestCluster::start().await;
    create_app(&c).await;
    create_stdin(
        &c,
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-pod
  namespace: demo
spec:
  containers:
  - name: web
    image: nginx:1.27
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: demo
spec:
  replicas: 3
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: api
        image: api:1
"#,
    )
    .await;
    let get = |what: &'static str, wide: bool| {
        let c = &c;
        let mut args = vec!["get", what, "-n", "demo"];
        if wide {
            args.extend(["-o", "wide"]);
        }
        async move { c.kubectl(&args).await.expect_ok() }
    };

    let out = get("pods", false).await;
    assert_eq!(
        header(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(
        row(&out, "web-pod")[..4],
        ["web-pod", "0/1", "Pending", "0"]
    );
    let out = get("pods", true).await;
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ],
        "{out}"
    );
    assert_eq!(
        row(&out, "web-pod")[5..],
        ["<none>", "<none>", "<none>", "<none>"],
        "{out}"
    );

    // A pod whose status reports its container running and ready.
    c.kubectl(&[
        "patch",
        "pod",
        "web-pod",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","podIP":"10.1.2.3","containerStatuses":[{"name":"web","image":"nginx:1.27","imageID":"","ready":true,"restartCount":0,"started":true,"state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}}}]}}"#,
    ])
    .await
    .expect_ok();
    let out = get("pods", true).await;
    let cells = row(&out, "web-pod");
    assert_eq!(cells[..4], ["web-pod", "1/1", "Running", "0"], "{out}");
    assert_eq!(cells[5], "10.1.2.3", "{out}");

    let out = get("deploy", false).await;
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(row(&out, "api")[..4], ["api", "0/3", "0", "0"], "{out}");
    assert_eq!(row(&out, "web")[..4], ["web", "0/2", "0", "0"], "{out}");
    c.kubectl(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3,"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}}"#,
    ])
    .await
    .expect_ok();
    let out = get("deploy", true).await;
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{out}"
    );
    let cells = row(&out, "api");
    assert_eq!(cells[..4], ["api", "2/3", "3", "2"], "{out}");
    assert_eq!(cells[5..], ["api", "api:1", "app=api"], "{out}");

    let out = get("svc", false).await;
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let web = row(&out, "web");
    assert_eq!(web[..2], ["web", "ClusterIP"], "{out}");
    assert_eq!(web[3..5], ["<none>", "80/TCP"], "{out}");
    // An address allocated from the default service CIDR 10.96.0.0/12.
    let ip: std::net::Ipv4Addr = web[2].parse().expect("a ClusterIP");
    assert_eq!(
        u32::from(ip) >> 20,
        u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20,
        "{out}"
    );

    let out = get("cm", false).await;
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "app-config")[..2], ["app-config", "2"], "{out}");

    let out = get("secrets", false).await;
    assert_eq!(header(&out), ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    assert_eq!(
        row(&out, "app-secret")[..3],
        ["app-secret", "Opaque", "1"],
        "{out}"
    );

    let out = get("sa", false).await;
    assert_eq!(header(&out), ["NAME", "SECRETS", "AGE"], "{out}");
    assert_eq!(row(&out, "builder")[..2], ["builder", "0"], "{out}");

    // Roles have no printer upstream: apiserver's default Name and Created At.
    let out = get("roles", false).await;
    assert_eq!(header(&out), ["NAME", "CREATED", "AT"], "{out}");
    let created = row(&out, "reader")[1];
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.contains('T'),
        "{out}"
    );

    let out = c.kubectl(&["get", "ns"]).await.expect_ok();
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"], "{out}");
    assert_eq!(row(&out, "demo")[..2], ["demo", "Active"], "{out}");
    assert_eq!(row(&out, "default")[..2], ["default", "Active"], "{out}");
}

/// A Deployment manifest for server-side apply tests.
fn ssa_deployment(replicas: u32, tier_label: bool) -> String {
    let tier = if tier_label { "\n    tier: front" } else { "" };
    let replicas = if replicas > 0 {
        format!("\n  replicas: {replicas}")
    } else {
        String::new()
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  labels:
    app: ssa{tier}
spec:{replicas}
  selector:
    matchLabels: {{app: ssa}}
  template:
    metadata:
      labels: {{app: ssa}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#
    )
}

/// `manager:operation` of every managedFields entry, and the fieldsV1 of
/// each, read with `--show-managed-fields`.
async fn managers(c: &TestCluster, what: &[&str]) -> Vec<(String, serde_json::Value)> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    let obj = c.kubectl(&args).await.expect_ok().json();
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                format!(
                    "{}:{}",
                    e["manager"].as_str().unwrap_or(""),
                    e["operation"].as_str().unwrap_or("")
                ),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_between_managers_then_force() {
    let c = TestCluster::start().await;
    let ssa = ["apply", "--server-side", "-f", "-"];
    let with = |mgr: &'static str| {
        let mut a = ssa.to_vec();
        a.push("--field-manager");
        a.push(mgr);
        a
    };
    c.kubectl_stdin(&with("alice"), &ssa_deployment(2, true))
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/ssa serverside-applied"]);

    // Bob wants another replica count: kubectl prints upstream's conflict.
    c.kubectl_stdin(&with("bob"), &ssa_deployment(3, false))
        .await
        .expect_err_contains(
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas",
        )
        .expect_err_contains("--force-conflicts");
    let replicas = c
        .kubectl(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"])
        .await
        .expect_ok();
    assert_eq!(replicas.stdout.trim(), "2", "{replicas}");

    // Forced, Bob owns replicas; Alice keeps the rest she applied.
    let mut forced = with("bob");
    forced.push("--force-conflicts");
    c.kubectl_stdin(&forced, &ssa_deployment(3, false))
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/ssa serverside-applied"]);
    let m = managers(&c, &["deploy", "ssa"]).await;
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["alice:Apply", "bob:Apply"], "{m:?}");
    assert!(m[0].1["f:spec"].get("f:replicas").is_none(), "{m:?}");
    assert_eq!(m[1].1["f:spec"]["f:replicas"], serde_json::json!({}));

    // Alice drops the tier label and replicas from her config: the label,
    // hers alone, is removed; Bob's replicas stays.
    c.kubectl_stdin(&with("alice"), &ssa_deployment(0, false))
        .await
        .expect_ok();
    let got = c
        .kubectl(&[
            "get",
            "deploy",
            "ssa",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.labels}",
        ])
        .await
        .expect_ok();
    assert_eq!(got.stdout.trim(), r#"3 {"app":"ssa"}"#, "{got}");

    // --dry-run=server applies (forced: Bob co-owns the image) without storing.
    let mut dry = with("alice");
    dry.push("--dry-run=server");
    dry.push("--force-conflicts");
    c.kubectl_stdin(
        &dry,
        &ssa_deployment(0, true).replace("nginx:1.27", "nginx:2"),
    )
    .await
    .expect_ok();
    let image = c
        .kubectl(&[
            "get",
            "deploy",
            "ssa",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await
        .expect_ok();
    assert_eq!(image.stdout.trim(), "nginx:1.27", "{image}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_is_tracked_and_upgrades_to_server_side() {
    let c = TestCluster::start().await;
    let cm = |color: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: csa\ndata:\n  color: {color}\n  size: \"1\"\n"
        )
    };
    let csa = ["apply", "-f", "-"];
    c.kubectl_stdin(&csa, &cm("blue"))
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/csa created"]);
    c.kubectl_stdin(&csa, &cm("green"))
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/csa configured"]);
    c.kubectl(&["get", "cm", "csa", "-o", "yaml", "--show-managed-fields"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "manager: kubectl-client-side-apply",
            "operation: Update",
            "f:color: {}",
            "f:kubectl.kubernetes.io/last-applied-configuration: {}",
            "color: green",
        ]);
    // Without the flag kubectl hides managedFields.
    c.kubectl(&["get", "cm", "csa", "-o", "yaml"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["managedFields"]);

    // Another manager editing a field it does not own conflicts with the
    // client-side applier.
    c.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &cm("red"),
    )
    .await
    .expect_err_contains("conflict with \"kubectl-client-side-apply\" using v1: .data.color");
    // kubectl's own server-side apply takes over what the last client-side
    // apply set, as upstream's upgrade path allows.
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &cm("red"))
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/csa serverside-applied"]);
    let m = managers(&c, &["cm", "csa"]).await;
    assert!(m.iter().any(|(n, _)| n == "kubectl:Apply"), "{m:?}");
    let color = c
        .kubectl(&["get", "cm", "csa", "-o", "jsonpath={.data.color}"])
        .await
        .expect_ok();
    assert_eq!(color.stdout.trim(), "red");
}

#[tokio::test]
async fn service_cluster_ip_is_allocated_defaulted_and_immutable() {
    let c = TestCluster::start().await;
    create_stdin(
        &c,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIP: 10.96.0.77\n  ports:\n  - port: 80\n",
    )
    .await;
    let out = c
        .kubectl(&["get", "service", "x", "-o", "json"])
        .await
        .expect_ok();
    let spec = out.json()["spec"].clone();
    assert_eq!(
        spec["clusterIPs"],
        serde_json::json!(["10.96.0.77"]),
        "{out}"
    );
    assert_eq!(spec["type"], "ClusterIP", "{out}");
    assert_eq!(spec["sessionAffinity"], "None", "{out}");
    assert_eq!(spec["ports"][0]["protocol"], "TCP", "{out}");
    assert_eq!(spec["ports"][0]["targetPort"], 80, "{out}");

    // kubectl prints kube-apiserver's message for a changed clusterIP.
    c.kubectl(&[
        "patch",
        "service",
        "x",
        "-p",
        r#"{"spec":{"clusterIP":"10.96.3.4"}}"#,
    ])
    .await
    .expect_err_contains(
        r#"The Service "x" is invalid: spec.clusterIPs[0]: Invalid value: ["10.96.3.4"]: may not change once set"#,
    );

    // A second Service may not take the same address.
    c.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  clusterIP: 10.96.0.77\n  ports:\n  - port: 80\n",
    )
    .await
    .expect_err_contains(
        r#"spec.clusterIPs: Invalid value: ["10.96.0.77"]: failed to allocate IP 10.96.0.77: provided IP is already allocated"#,
    );

    // Server-side dry run shows an allocated address and stores nothing.
    let dry = c
        .kubectl_stdin(
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: z\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n",
        )
        .await
        .expect_ok();
    let dry_spec = dry.json()["spec"].clone();
    assert!(
        dry_spec["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{dry}"
    );
    assert_eq!(dry_spec["externalTrafficPolicy"], "Cluster", "{dry}");
    c.kubectl(&["get", "service", "z"])
        .await
        .expect_err_contains(r#"services "z" not found"#);
}

/// The kinds charts ship beside workloads: PriorityClasses (with the system
/// ones and Priority admission), Ingresses, IngressClasses,
/// NetworkPolicies, StorageClasses, through kubectl's typed (protobuf)
/// create commands and apply.
#[tokio::test]
async fn priority_classes_ingresses_network_policies_and_storage_classes() {
    let c = TestCluster::start().await;
    let pcs = c
        .kubectl(&["get", "priorityclasses", "--no-headers"])
        .await
        .expect_ok();
    let rows: Vec<Vec<&str>> = pcs
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r[..3] == ["system-cluster-critical", "2000000000", "false"]),
        "{pcs}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..3] == ["system-node-critical", "2000001000", "false"]),
        "{pcs}"
    );
    c.kubectl(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=tests",
    ])
    .await
    .expect_ok();
    c.kubectl(&["create", "priorityclass", "too-high", "--value=2000000000"])
        .await
        .expect_err_contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
        );
    c.kubectl(&["create", "priorityclass", "system-mine", "--value=10"])
        .await
        .expect_err_contains("priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class");
    c.kubectl(&[
        "run",
        "important",
        "--image=nginx",
        "--overrides={\"spec\":{\"priorityClassName\":\"high\"}}",
    ])
    .await
    .expect_ok();
    let pod = c.get_json(&["pod", "important"]).await.unwrap();
    assert_eq!(pod["spec"]["priority"], 1000, "{pod}");
    assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    c.kubectl(&["run", "plain", "--image=nginx"])
        .await
        .expect_ok();
    let pod = c.get_json(&["pod", "plain"]).await.unwrap();
    assert_eq!(pod["spec"]["priority"], 0, "{pod}");
    c.kubectl(&[
        "run",
        "lost",
        "--image=nginx",
        "--overrides={\"spec\":{\"priorityClassName\":\"nope\"}}",
    ])
    .await
    .expect_err_contains("pods \"lost\" is forbidden: no PriorityClass with name nope was found");
    // One global default: it names and prices pods without a class.
    c.kubectl(&[
        "create",
        "priorityclass",
        "normal",
        "--value=100",
        "--global-default",
    ])
    .await
    .expect_ok();
    c.kubectl(&["create", "priorityclass", "second", "--value=5", "--global-default"])
        .await
        .expect_err_contains("priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass normal is already marked as default. Only one default can exist");
    c.kubectl(&["run", "defaulted", "--image=nginx"])
        .await
        .expect_ok();
    let pod = c.get_json(&["pod", "defaulted"]).await.unwrap();
    assert_eq!(pod["spec"]["priorityClassName"], "normal", "{pod}");
    assert_eq!(pod["spec"]["priority"], 100);
    c.kubectl(&["delete", "priorityclass", "system-node-critical"])
        .await
        .expect_err_contains("priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted");

    // kubectl autoscale sends an autoscaling/v2 HPA (protobuf).
    c.kubectl(&["create", "deployment", "web", "--image=nginx"])
        .await
        .expect_ok();
    c.kubectl(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu=70%",
    ])
    .await
    .expect_ok();
    c.kubectl(&["get", "hpa", "web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["Deployment/web", "cpu: <unknown>/70%", "2", "5"]);
    c.kubectl(&[
        "create",
        "ingress",
        "web",
        "--class=nginx",
        "--rule=web.example.com/=web:80",
    ])
    .await
    .expect_ok();
    c.kubectl(&["get", "ingress", "web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["CLASS", "HOSTS", "web", "nginx", "web.example.com", "80"]);
    create_stdin(
        &c,
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-only}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: example.com/disk
allowVolumeExpansion: true
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: checks}
webhooks:
- name: checks.example.com
  sideEffects: None
  admissionReviewVersions: [v1]
  clientConfig: {url: "https://hooks.example.com/validate"}
"#,
    )
    .await;
    c.kubectl(&["get", "netpol"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["POD-SELECTOR", "db-only", "app=db"]);
    c.kubectl(&["get", "sc"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "fast (default)",
            "example.com/disk",
            "Delete",
            "Immediate",
            "true",
        ]);
    // The local APIServices kube-apiserver lists for its group versions.
    let services = c.kubectl(&["get", "apiservices"]).await.expect_ok();
    for name in ["v1.", "v1.apps", "v2.autoscaling", "v1.scheduling.k8s.io"] {
        assert!(
            services
                .lines()
                .iter()
                .any(|l| l.split_whitespace().take(3).eq([name, "Local", "True"])),
            "{name}: {services}"
        );
    }
    c.kubectl(&["get", "validatingwebhookconfigurations"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["WEBHOOKS", "checks", "1"]);
    c.kubectl(&["get", "ingressclass", "nginx"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["k8s.io/ingress-nginx", "<none>"]);
    // Default classes fill claims and Ingresses that name none.
    create_stdin(
        &c,
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
    )
    .await;
    let pvc = c.get_json(&["pvc", "data"]).await.unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "fast", "{pvc}");
    c.kubectl(&[
        "annotate",
        "ingressclass",
        "nginx",
        "ingressclass.kubernetes.io/is-default-class=true",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "ingress",
        "plain",
        "--rule=plain.example.com/=web:80",
    ])
    .await
    .expect_ok();
    let ing = c.get_json(&["ingress", "plain"]).await.unwrap();
    assert_eq!(ing["spec"]["ingressClassName"], "nginx", "{ing}");
    c.shutdown().await;
}
