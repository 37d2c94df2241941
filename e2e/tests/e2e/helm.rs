//! The real helm v4 against a real vkube server: helm applies chart objects
//! with server-side apply (field manager `helm`) and keeps its release in a
//! Secret written by client-go's typed client (a protobuf body). Helm
//! validates the chart's objects against the server's OpenAPI v3.

use std::process::Stdio;
use std::time::Duration;
use vkube_e2e::{Output, TestCluster, find_tool};

const CHART_YAML: &str = "apiVersion: v2\nname: tiny\nversion: 0.1.0\n";
const VALUES_YAML: &str = "color: blue\nreplicas: 1\n";
const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  labels:
    app: {{ .Release.Name }}
data:
  color: {{ .Values.color | quote }}
"#;
const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
"#;

/// Writes the chart `tiny` (a ConfigMap and a Deployment) into the
/// cluster's work dir and returns its path.
fn tiny_chart(c: &TestCluster) -> std::path::PathBuf {
    let chart = c.work_dir.join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(chart.join("values.yaml"), VALUES_YAML).unwrap();
    std::fs::write(chart.join("templates/configmap.yaml"), CONFIGMAP).unwrap();
    std::fs::write(chart.join("templates/deployment.yaml"), DEPLOYMENT).unwrap();
    chart
}

/// Runs `helm ARGS` against the cluster with private HOME and helm dirs.
async fn helm(c: &TestCluster, args: &[&str]) -> Output {
    helm_as(c, c.kubeconfig_path(), args).await
}

/// Runs `helm ARGS` with `kubeconfig`.
async fn helm_as(
    c: &TestCluster,
    kubeconfig: impl AsRef<std::path::Path>,
    args: &[&str],
) -> Output {
    let bin = find_tool("HELM", "helm").unwrap_or_else(|e| panic!("{e:#}"));
    let home = c.work_dir.join("home");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig.as_ref())
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .env("TMPDIR", c.work_dir.join("tmp"))
        .env_remove("KUBECONFIG")
        .env_remove("HELM_DRIVER")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let command = format!("helm {}", args.join(" "));
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{command}` timed out"))
        .unwrap_or_else(|e| panic!("spawning `{command}`: {e}"));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command,
    }
}

async fn jsonpath(c: &TestCluster, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expr = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expr]);
    c.kubectl(&args).await.expect_ok().stdout.trim().to_string()
}

/// A namespace admin (a service account bound to `admin` in its namespace)
/// installs and uninstalls a chart there, and is refused elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_admin_installs_charts_in_its_namespace_only() {
    let c = TestCluster::start().await;
    let chart = tiny_chart(&c);
    let chart = chart.to_str().unwrap();
    for args in [
        &["create", "namespace", "team"][..],
        &["create", "serviceaccount", "deployer", "-n", "team"],
        &[
            "create",
            "rolebinding",
            "deployer",
            "-n",
            "team",
            "--clusterrole=admin",
            "--serviceaccount=team:deployer",
        ],
    ] {
        c.kubectl(args).await.expect_ok();
    }
    let token = c
        .kubectl(&["create", "token", "deployer", "-n", "team"])
        .await
        .expect_ok()
        .stdout
        .trim()
        .to_string();
    let kc = c.token_kubeconfig("deployer.kubeconfig", &token);
    helm_as(&c, &kc, &["install", "rel", chart, "-n", "team"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["STATUS: deployed"]);
    assert_eq!(
        jsonpath(&c, &["cm", "rel-config", "-n", "team"], "{.data.color}").await,
        "blue"
    );
    helm_as(&c, &kc, &["install", "rel", chart, "-n", "default"])
        .await
        .expect_err_contains(r#"User "system:serviceaccount:team:deployer" cannot"#);
    c.kubectl(&["get", "cm", "rel-config", "-n", "default"])
        .await
        .expect_err_contains("NotFound");
    helm_as(&c, &kc, &["uninstall", "rel", "-n", "team"])
        .await
        .expect_ok();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall() {
    let c = TestCluster::start().await;
    let chart = tiny_chart(&c);
    let chart = chart.to_str().unwrap();
    let ns = ["-n", "default"];

    let mut install = vec!["install", "rel", chart];
    install.extend_from_slice(&ns);
    helm(&c, &install)
        .await
        .expect_ok()
        .expect_stdout_contains(&["STATUS: deployed", "REVISION: 1"]);
    assert_eq!(
        jsonpath(&c, &["cm", "rel-config"], "{.data.color}").await,
        "blue"
    );
    assert_eq!(
        jsonpath(&c, &["deploy", "rel-web"], "{.spec.replicas}").await,
        "1"
    );
    // helm applied the chart objects server-side as "helm".
    assert_eq!(
        jsonpath(
            &c,
            &["cm", "rel-config", "--show-managed-fields"],
            "{.metadata.managedFields[*].manager}:{.metadata.managedFields[*].operation}"
        )
        .await,
        "helm:Apply"
    );
    // The release record is a Secret.
    assert_eq!(
        jsonpath(&c, &["secret", "sh.helm.release.v1.rel.v1"], "{.type}").await,
        "helm.sh/release.v1"
    );

    let mut upgrade = vec![
        "upgrade",
        "rel",
        chart,
        "--set",
        "color=green",
        "--set",
        "replicas=2",
    ];
    upgrade.extend_from_slice(&ns);
    helm(&c, &upgrade)
        .await
        .expect_ok()
        .expect_stdout_contains(&["STATUS: deployed", "REVISION: 2"]);
    assert_eq!(
        jsonpath(&c, &["cm", "rel-config"], "{.data.color}").await,
        "green"
    );
    assert_eq!(
        jsonpath(&c, &["deploy", "rel-web"], "{.spec.replicas}").await,
        "2"
    );
    helm(&c, &["list", "-n", "default"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["rel", "deployed", "tiny-0.1.0"]);

    helm(&c, &["uninstall", "rel", "-n", "default"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["release \"rel\" uninstalled"]);
    c.kubectl(&["get", "cm,deploy,secret", "-o", "name"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["rel-config", "rel-web", "sh.helm.release"]);
}

/// The kinds charts ship beside workloads, in one chart.
const PLATFORM_OBJECTS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: {{ .Release.Name }}-web}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: {{ .Release.Name }}-web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: {{ .Release.Name }}-web}
spec:
  podSelector: {matchLabels: {app: {{ .Release.Name }}}}
  policyTypes: [Ingress]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: {{ .Release.Name }}-high}
value: 1000
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: {{ .Release.Name }}-web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: {{ .Release.Name }}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: {{ .Release.Name }}-web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ .Release.Name }}-web}
  maxReplicas: 3
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: {{ .Release.Name }}-fast}
provisioner: example.com/disk
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_ingress_network_policy_priority_class_pdb_hpa_and_storage_class() {
    let c = TestCluster::start().await;
    let chart = c.work_dir.join("platform");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: platform\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("templates/deployment.yaml"), DEPLOYMENT).unwrap();
    std::fs::write(chart.join("templates/platform.yaml"), PLATFORM_OBJECTS).unwrap();
    std::fs::write(chart.join("values.yaml"), VALUES_YAML).unwrap();
    let chart = chart.to_str().unwrap();
    helm(&c, &["install", "p", chart, "-n", "default"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["STATUS: deployed"]);
    for (what, name) in [
        ("ingress", "p-web"),
        ("networkpolicy", "p-web"),
        ("priorityclass", "p-high"),
        ("pdb", "p-web"),
        ("hpa", "p-web"),
        ("storageclass", "p-fast"),
    ] {
        c.kubectl(&["get", what, name]).await.expect_ok();
    }
    // The HPA was defaulted as kube-apiserver does: one replica at least,
    // CPU at 80 %.
    assert_eq!(
        jsonpath(
            &c,
            &["hpa", "p-web"],
            "{.spec.minReplicas} {.spec.metrics[0].resource.name} {.spec.metrics[0].resource.target.averageUtilization}"
        )
        .await,
        "1 cpu 80"
    );
    c.kubectl(&["get", "hpa", "p-web"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["REFERENCE", "Deployment/p-web", "cpu: <unknown>/80%"]);
    helm(&c, &["uninstall", "p", "-n", "default"])
        .await
        .expect_ok();
    c.kubectl(&["get", "storageclass", "p-fast"])
        .await
        .expect_err_contains("NotFound");
    c.shutdown().await;
}

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.charts.example.com
spec:
  group: charts.example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 3}
              color: {type: string}
"#;

const WIDGET: &str = r#"apiVersion: charts.example.com/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}-widget
spec:
  color: {{ .Values.color | quote }}
"#;

/// A chart that ships a CRD in `crds/` and an object of it in `templates/`,
/// as operators' charts do: helm creates the CRD, finds the new kind in
/// discovery, validates the object against the kind's OpenAPI v3 schema and
/// applies it; uninstalling removes the object and keeps the CRD, as helm
/// does.
#[tokio::test]
async fn a_chart_installs_its_crd_and_an_object_of_it() {
    let c = TestCluster::start().await;
    let chart = c.work_dir.join("widgets");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::create_dir_all(chart.join("crds")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "color: blue\n").unwrap();
    std::fs::write(chart.join("crds/widget.yaml"), WIDGET_CRD).unwrap();
    std::fs::write(chart.join("templates/widget.yaml"), WIDGET).unwrap();
    let chart = chart.to_str().unwrap().to_string();
    helm(&c, &["install", "w", &chart, "-n", "default", "--wait"])
        .await
        .expect_ok();
    assert_eq!(
        jsonpath(&c, &["widgets", "w-widget"], "{.spec.color} {.spec.size}").await,
        "blue 3"
    );
    helm(
        &c,
        &[
            "upgrade",
            "w",
            &chart,
            "-n",
            "default",
            "--set",
            "color=red",
        ],
    )
    .await
    .expect_ok();
    assert_eq!(
        jsonpath(&c, &["widgets", "w-widget"], "{.spec.color}").await,
        "red"
    );
    helm(&c, &["uninstall", "w", "-n", "default"])
        .await
        .expect_ok();
    c.kubectl(&["get", "widgets", "w-widget"])
        .await
        .expect_err_contains("NotFound");
    c.kubectl(&["get", "crd", "widgets.charts.example.com"])
        .await
        .expect_ok();
    c.shutdown().await;
}
