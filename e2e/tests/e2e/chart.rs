//! The vkube Helm chart (`chart/`) through the real helm binary: it lints,
//! renders with default and non-default values into objects that decode
//! strictly into their k8s-openapi types, grants only the RBAC the syncer
//! uses, rejects bad values through `values.schema.json`, and installs and
//! uninstalls against a local host (a vkube API server with the node
//! simulator) whose StatefulSet controller creates the tenant pod.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::{Output, TestCluster, find_tool, workspace_root};

fn chart_dir() -> PathBuf {
    workspace_root().join("chart")
}

/// Runs `helm ARGS` with private helm directories under `home`, against
/// `kubeconfig` if given (else no cluster at all).
async fn helm_in(home: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let bin = find_tool("HELM", "helm").unwrap_or_else(|e| panic!("{e:#}"));
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .env_remove("KUBECONFIG")
        .env_remove("HELM_DRIVER")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(k) = kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
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

/// `helm ARGS` with no cluster (lint, template).
async fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    helm_in(home.path(), None, args).await
}

/// Decodes `value` into `T`, failing on any field `T` does not know (k8s-openapi
/// silently drops them otherwise) and on type errors.
fn strict<T: DeserializeOwned>(what: &str, value: &serde_json::Value) -> T {
    let mut unknown = Vec::new();
    let decoded: T =
        serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()))
            .unwrap_or_else(|e| panic!("{what} does not decode: {e}\n{value:?}"));
    assert!(unknown.is_empty(), "{what} has unknown fields {unknown:?}");
    decoded
}

/// One rendered chart: every document, each already checked to decode
/// strictly into the k8s-openapi type of its kind.
struct Rendered {
    docs: Vec<(String, String, serde_json::Value)>,
}

impl Rendered {
    /// Kinds and names, sorted, e.g. `("Service", "vkube-t")`.
    fn objects(&self) -> BTreeSet<(String, String)> {
        self.docs
            .iter()
            .map(|(k, n, _)| (k.clone(), n.clone()))
            .collect()
    }

    fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        let (_, _, v) = self
            .docs
            .iter()
            .find(|(k, n, _)| k == kind && n == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", self.objects()));
        strict(&format!("{kind} {name}"), v)
    }

    fn has(&self, kind: &str) -> bool {
        self.docs.iter().any(|(k, _, _)| k == kind)
    }
}

/// Decodes one rendered document into its kind's type; unknown kinds fail.
fn check_kind(kind: &str, what: &str, v: &serde_json::Value) {
    match kind {
        "StatefulSet" => drop(strict::<StatefulSet>(what, v)),
        "Service" => drop(strict::<Service>(what, v)),
        "ServiceAccount" => drop(strict::<ServiceAccount>(what, v)),
        "Role" => drop(strict::<Role>(what, v)),
        "RoleBinding" => drop(strict::<RoleBinding>(what, v)),
        "ClusterRole" => drop(strict::<ClusterRole>(what, v)),
        "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(what, v)),
        "ResourceQuota" => drop(strict::<ResourceQuota>(what, v)),
        "LimitRange" => drop(strict::<LimitRange>(what, v)),
        "NetworkPolicy" => drop(strict::<NetworkPolicy>(what, v)),
        "Ingress" => drop(strict::<Ingress>(what, v)),
        "ConfigMap" => drop(strict::<k8s_openapi::api::core::v1::ConfigMap>(what, v)),
        // The Prometheus operator's kind: no k8s-openapi type; its fields
        // are checked by the test that renders it.
        "ServiceMonitor" => assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1", "{what}"),
        other => panic!("{what}: the chart renders an unexpected kind {other}"),
    }
}

/// `helm template t chart -n tenant ARGS`, every document decoded strictly.
async fn render(args: &[&str]) -> Rendered {
    let chart = chart_dir();
    let mut all = vec!["template", "t", chart.to_str().unwrap(), "-n", "tenant"];
    all.extend_from_slice(args);
    let out = helm(&all).await.expect_ok();
    let mut docs = Vec::new();
    let rendered: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(&out.stdout).expect("rendered YAML");
    for v in rendered {
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().expect("kind").to_string();
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        check_kind(&kind, &format!("{kind} {name}"), &v);
        docs.push((kind, name, v));
    }
    Rendered { docs }
}

fn objs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect()
}

/// Rules flattened to (apiGroup, resource, verb, resourceNames).
fn flatten(rules: &[PolicyRule]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none(), "non-resource rule {r:?}");
        let names = r.resource_names.clone().unwrap_or_default().join(",");
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone(), names.clone()));
                }
            }
        }
    }
    out
}

fn rule_set(list: &[(&str, &[&str], &[&str], &str)]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (g, resources, verbs, names) in list {
        for r in *resources {
            for v in *verbs {
                out.insert((
                    g.to_string(),
                    r.to_string(),
                    v.to_string(),
                    names.to_string(),
                ));
            }
        }
    }
    out
}

fn args_of(sts: &StatefulSet) -> Vec<String> {
    let c = &sts.spec.template.spec.as_ref().unwrap().containers[0];
    c.args.clone().unwrap_or_default()
}

#[test]
fn strict_decoding_reports_unknown_fields() {
    let v: serde_json::Value = serde_saphyr::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {typo: 1}\n",
    )
    .unwrap();
    let caught = std::panic::catch_unwind(|| strict::<Service>("svc", &v));
    assert!(caught.is_err(), "an unknown field must fail the check");
}

#[tokio::test]
async fn chart_lints_with_default_and_non_default_values() {
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    helm(&["lint", chart, "--strict"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["1 chart(s) linted, 0 chart(s) failed"]);
    helm(&[
        "lint",
        chart,
        "--strict",
        "--set",
        "exposure.type=Ingress",
        "--set",
        "exposure.ingress.host=t.example.com",
        "--set",
        "isolation.enabled=true",
        "--set",
        "sync.nodes=true",
        "--set",
        "podSecurity=restricted",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["0 chart(s) failed"]);
}

#[tokio::test]
async fn default_values_render_the_contracted_objects() {
    let r = render(&[]).await;
    assert_eq!(
        r.objects(),
        objs(&[
            ("StatefulSet", "vkube-t"),
            ("Service", "vkube-t"),
            ("Service", "vkube-t-dns"),
            ("ServiceAccount", "vkube-t"),
            ("ServiceAccount", "vkube-workload-t"),
            ("Role", "vkube-t"),
            ("RoleBinding", "vkube-t"),
            ("ClusterRole", "vkube-t-tenant"),
            ("ClusterRoleBinding", "vkube-t-tenant"),
        ])
    );
    for (kind, name, v) in &r.docs {
        let labels = &v["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/name"].as_str(),
            Some("vkube"),
            "{kind} {name}"
        );
        assert_eq!(
            labels["app.kubernetes.io/instance"].as_str(),
            Some("t"),
            "{kind} {name}"
        );
        assert_eq!(
            labels["app.kubernetes.io/managed-by"].as_str(),
            Some("Helm"),
            "{kind} {name}"
        );
        assert_eq!(
            labels["vkube.dev/virtual-cluster"].as_str(),
            Some("t"),
            "{kind} {name}"
        );
        let cluster_scoped = kind.starts_with("Cluster");
        assert_eq!(
            v["metadata"]["namespace"].as_str(),
            (!cluster_scoped).then_some("tenant"),
            "{kind} {name}"
        );
    }

    let sts: StatefulSet = r.get("StatefulSet", "vkube-t");
    let spec = &sts.spec;
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("vkube-t"));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/vkube/vkube:0.1.0"));
    let csc = c.security_context.as_ref().unwrap();
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(
        csc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    let args = args_of(&sts);
    for want in [
        "server",
        "--name=t",
        "--data-dir=/data",
        "--listen=0.0.0.0:8443",
        "--tls-san=vkube-t",
        "--tls-san=vkube-t.tenant",
        "--tls-san=vkube-t.tenant.svc",
        "--tls-san=vkube-t.tenant.svc.cluster.local",
        "--host-namespace=$(POD_NAMESPACE)",
        "--kubeconfig-secret=vkube-t-kubeconfig",
        "--kubeconfig-server=https://vkube-t.tenant.svc:443",
        "--host-owner=statefulset/vkube-t",
        "--pod-security=baseline",
        "--host-service-account=vkube-workload-t",
        "--sync-nodes=auto",
        "--controllers=*",
        "--service-cidr=10.96.0.0/12",
        "--host-service=vkube-t",
        "--cluster-domain=cluster.local",
        "--dns-listen=0.0.0.0:1053",
        "--dns-service=vkube-t-dns",
        "--max-requests-inflight=400",
        "--max-mutating-requests-inflight=200",
        "--log-format=text",
    ] {
        assert!(
            args.contains(&want.to_string()),
            "missing {want} in {args:?}"
        );
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--sync-all")),
        "{args:?}"
    );
    let env = c.env.as_ref().unwrap();
    let ns = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
    assert_eq!(
        ns.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.namespace"
    );
    for (probe, path) in [
        (&c.readiness_probe, "/readyz"),
        (&c.liveness_probe, "/livez"),
        (&c.startup_probe, "/livez"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.path.as_deref(), Some(path));
    }
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "64Mi");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "512Mi");
    let claims = spec.volume_claim_templates.as_ref().unwrap();
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));

    let svc: Service = r.get("Service", "vkube-t");
    let ss = svc.spec.unwrap();
    assert_eq!(ss.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(ss.ports.as_ref().unwrap()[0].port, 443);
    // The tenant DNS: cluster-internal whatever the exposure, port 53 on
    // both protocols, onto the container's unprivileged port.
    let dns: Service = r.get("Service", "vkube-t-dns");
    let ds = dns.spec.unwrap();
    assert_eq!(ds.type_.as_deref(), Some("ClusterIP"));
    let ports: Vec<(i32, String)> = ds
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.port, p.protocol.unwrap_or_default()))
        .collect();
    assert_eq!(ports, [(53, "UDP".to_string()), (53, "TCP".to_string())]);
    let cports: Vec<(i32, String)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.container_port, p.protocol.clone().unwrap_or_default()))
        .collect();
    assert!(cports.contains(&(1053, "UDP".to_string())), "{cports:?}");
    assert!(cports.contains(&(1053, "TCP".to_string())), "{cports:?}");

    let workload: ServiceAccount = r.get("ServiceAccount", "vkube-workload-t");
    assert_eq!(workload.automount_service_account_token, Some(false));
}

#[tokio::test]
async fn role_grants_exactly_what_the_syncer_uses() {
    let crud: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let expected = rule_set(&[
        (
            "",
            &[
                "pods",
                "services",
                "endpoints",
                "configmaps",
                "secrets",
                "persistentvolumeclaims",
            ],
            crud,
            "",
        ),
        (
            "networking.k8s.io",
            &["ingresses", "networkpolicies"],
            crud,
            "",
        ),
        ("policy", &["poddisruptionbudgets"], crud, ""),
        ("", &["pods/status"], &["get", "update", "patch"], ""),
        ("", &["pods/log"], &["get"], ""),
        (
            "",
            &["pods/exec", "pods/portforward", "pods/attach"],
            &["get", "create"],
            "",
        ),
        ("", &["pods/ephemeralcontainers"], &["patch"], ""),
        (
            "",
            &["pods/proxy", "services/proxy"],
            &["get", "create", "update", "patch", "delete"],
            "",
        ),
        ("", &["pods/eviction"], &["create"], ""),
        ("", &["events"], &["create", "patch", "list", "watch"], ""),
        ("metrics.k8s.io", &["pods"], &["get", "list"], ""),
        ("apps", &["statefulsets"], &["get"], "vkube-t"),
    ]);
    for values in [
        &[][..],
        &[
            "--set",
            "sync.nodes=true",
            "--set",
            "isolation.enabled=true",
        ][..],
    ] {
        let r = render(values).await;
        let role: Role = r.get("Role", "vkube-t");
        let rules = role.rules.unwrap_or_default();
        let flat = flatten(&rules);
        assert_eq!(flat, expected, "values {values:?}");
        assert!(
            !flat
                .iter()
                .any(|(g, res, v, _)| g == "*" || res == "*" || v == "*"),
            "wildcard in {flat:?}"
        );
        let rb: RoleBinding = r.get("RoleBinding", "vkube-t");
        assert_eq!(rb.role_ref.kind, "Role");
        assert_eq!(rb.role_ref.name, "vkube-t");
        let subjects = rb.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, "vkube-t");
        assert_eq!(subjects[0].namespace.as_deref(), Some("tenant"));
    }

    let plain = render(&["--set", "sync.hostClasses=false"]).await;
    assert!(!plain.has("ClusterRole") && !plain.has("ClusterRoleBinding"));
    let classes = rule_set(&[
        (
            "storage.k8s.io",
            &["storageclasses", "csidrivers", "csinodes"],
            &["get", "list", "watch"],
            "",
        ),
        (
            "networking.k8s.io",
            &["ingressclasses"],
            &["get", "list", "watch"],
            "",
        ),
        ("", &["persistentvolumes"], &["get"], ""),
    ]);
    let default: ClusterRole = render(&[]).await.get("ClusterRole", "vkube-t-tenant");
    assert_eq!(flatten(&default.rules.unwrap_or_default()), classes);
    let nodes = render(&["--set", "sync.nodes=true"]).await;
    let cr: ClusterRole = nodes.get("ClusterRole", "vkube-t-tenant");
    let mut both = rule_set(&[
        ("", &["nodes"], &["get", "list", "watch"], ""),
        ("metrics.k8s.io", &["nodes"], &["get", "list"], ""),
    ]);
    both.extend(classes.clone());
    let priority = render(&[
        "--set",
        "sync.priorityClasses.enabled=true",
        "--set",
        "sync.priorityClasses.maxValue=1000",
    ])
    .await;
    let pcr: ClusterRole = priority.get("ClusterRole", "vkube-t-tenant");
    let mut with_classes = classes.clone();
    with_classes.extend(rule_set(&[(
        "scheduling.k8s.io",
        &["priorityclasses"],
        &["get", "list", "watch", "create", "update", "delete"],
        "",
    )]));
    assert_eq!(flatten(&pcr.rules.unwrap_or_default()), with_classes);
    assert_eq!(flatten(&cr.rules.unwrap_or_default()), both);
    // The storage options add their writes and flags, and nothing else.
    let storage = render(&[
        "--set",
        "sync.hostClasses=false",
        "--set",
        "sync.storageClassesToHost=true",
        "--set",
        "sync.storageClassProvisioners={ebs.csi.aws.com}",
        "--set",
        "sync.persistentVolumes.enabled=true",
        "--set",
        "sync.persistentVolumes.sources={nfs,csi:nfs.csi.k8s.io}",
    ])
    .await;
    let writes = ["get", "list", "watch", "create", "update", "delete"];
    assert_eq!(
        flatten(
            &storage
                .get::<ClusterRole>("ClusterRole", "vkube-t-tenant")
                .rules
                .unwrap_or_default()
        ),
        rule_set(&[
            ("storage.k8s.io", &["storageclasses"], &writes, ""),
            ("", &["persistentvolumes"], &writes, ""),
        ])
    );
    let args = args_of(&storage.get("StatefulSet", "vkube-t"));
    for flag in [
        "--sync-storage-classes-to-host",
        "--storage-class-provisioner=ebs.csi.aws.com",
        "--sync-persistent-volumes",
        "--persistent-volume-source=nfs",
        "--persistent-volume-source=csi:nfs.csi.k8s.io",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
    }
    let crb: ClusterRoleBinding = nodes.get("ClusterRoleBinding", "vkube-t-tenant");
    assert_eq!(crb.role_ref.name, "vkube-t-tenant");
    assert_eq!(crb.subjects.unwrap()[0].name, "vkube-t");
}

#[tokio::test]
async fn monitoring_renders_a_service_monitor_with_the_scrape_token_and_a_dashboard() {
    let off = render(&[]).await;
    assert!(!off.has("ServiceMonitor"));
    assert!(
        !args_of(&off.get("StatefulSet", "vkube-t"))
            .iter()
            .any(|a| a.starts_with("--metrics-token-secret"))
    );

    let r = render(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
        "--set",
        "metrics.grafanaDashboard.enabled=true",
        "--set",
        "logFormat=json",
    ])
    .await;
    let args = args_of(&r.get("StatefulSet", "vkube-t"));
    for want in [
        "--metrics-token-secret=vkube-t-metrics",
        "--log-format=json",
    ] {
        assert!(
            args.contains(&want.to_string()),
            "missing {want} in {args:?}"
        );
    }
    let (_, _, sm) = r
        .docs
        .iter()
        .find(|(k, _, _)| k == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": "t"})
    );
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"], "https");
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(
        ep["authorization"]["credentials"]["name"],
        "vkube-t-metrics"
    );
    assert_eq!(ep["authorization"]["credentials"]["key"], "token");
    assert_eq!(ep["tlsConfig"]["ca"]["secret"]["key"], "ca.crt");
    assert_eq!(ep["tlsConfig"]["serverName"], "vkube-t");

    // The dashboard ConfigMap holds the chart's dashboard, whose every
    // query is valid PromQL (promtool checks it as rules, with Grafana's
    // variables filled in) over series vkube serves.
    let cm: k8s_openapi::api::core::v1::ConfigMap = r.get("ConfigMap", "vkube-t-dashboard");
    assert_eq!(cm.metadata.labels.unwrap()["grafana_dashboard"], "1");
    let dashboard: serde_json::Value =
        serde_json::from_str(&cm.data.unwrap()["vkube.json"]).expect("dashboard JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let served = [
        "apiserver_request_total",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_current_inflight_requests",
        "apiserver_longrunning_requests",
        "apiserver_watch_events_total",
        "apiserver_storage_objects",
        "vkube_syncer_sync_latency_seconds_bucket",
        "vkube_syncer_reconcile_errors_total",
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_work_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ];
    for e in &exprs {
        assert!(
            served.iter().any(|s| e.contains(s)),
            "{e} reads nothing vkube serves"
        );
    }
    let mut rules = String::from("groups:\n- name: dashboard\n  rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$namespace", "tenant")
            .replace("$service", ".+");
        rules.push_str(&format!(
            "  - record: dashboard:query{i}\n    expr: {}\n",
            serde_json::Value::from(e)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .await
        .expect("promtool (scripts/install-tools.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_exposure_type_renders() {
    let np = render(&[
        "--set",
        "exposure.type=NodePort",
        "--set",
        "exposure.nodePort=30443",
    ])
    .await;
    let svc: Service = np.get("Service", "vkube-t");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30443));
    assert!(!np.has("Ingress"));

    let lb = render(&[
        "--set",
        "exposure.type=LoadBalancer",
        "--set",
        "exposure.loadBalancerSourceRanges[0]=203.0.113.0/24",
        "--set",
        "service.port=6443",
    ])
    .await;
    let spec = lb.get::<Service>("Service", "vkube-t").spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.ports.unwrap()[0].port, 6443);
    assert_eq!(
        spec.load_balancer_source_ranges.unwrap(),
        ["203.0.113.0/24"]
    );
    let args = args_of(&lb.get("StatefulSet", "vkube-t"));
    assert!(
        args.contains(&"--kubeconfig-server=https://vkube-t.tenant.svc:6443".into()),
        "{args:?}"
    );

    let ing = render(&[
        "--set",
        "exposure.type=Ingress",
        "--set",
        "exposure.ingress.host=t.example.com",
        "--set",
        "exposure.ingress.className=nginx",
        "--set",
        "tls.extraSANs[0]=vc.example.org",
        "--set",
        "tls.extraSANs[1]=198.51.100.7",
    ])
    .await;
    let spec = ing.get::<Service>("Service", "vkube-t").spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let ingress: Ingress = ing.get("Ingress", "vkube-t");
    let ann = ingress.metadata.annotations.unwrap();
    assert_eq!(ann["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");
    assert_eq!(ann["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
    let ispec = ingress.spec.unwrap();
    assert_eq!(ispec.ingress_class_name.as_deref(), Some("nginx"));
    let rule = &ispec.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("t.example.com"));
    let backend = rule.http.as_ref().unwrap().paths[0]
        .backend
        .service
        .as_ref()
        .unwrap();
    assert_eq!(backend.name, "vkube-t");
    let args = args_of(&ing.get("StatefulSet", "vkube-t"));
    for want in [
        "--tls-san=t.example.com",
        "--tls-san=vc.example.org",
        "--tls-san=198.51.100.7",
        "--kubeconfig-server=https://t.example.com",
    ] {
        assert!(
            args.contains(&want.to_string()),
            "missing {want} in {args:?}"
        );
    }
}

#[tokio::test]
async fn isolation_confines_the_tenant_pods() {
    let r = render(&[
        "--set",
        "isolation.enabled=true",
        "--set",
        "sync.allConfigMaps=true",
        "--set",
        "sync.allSecrets=true",
        "--set",
        "podSecurity=restricted",
    ])
    .await;
    let quota: ResourceQuota = r.get("ResourceQuota", "vkube-t");
    assert!(
        quota
            .spec
            .unwrap()
            .hard
            .unwrap()
            .contains_key("requests.cpu")
    );
    let lr: LimitRange = r.get("LimitRange", "vkube-t");
    assert_eq!(lr.spec.unwrap().limits[0].type_, "Container");
    // The server pod: API open, DNS only from the tenant's pods.
    let server: NetworkPolicy = r.get("NetworkPolicy", "vkube-t-server");
    let ingress = server.spec.unwrap().ingress.unwrap();
    assert!(ingress[0].from.is_none(), "the API is open: {ingress:?}");
    let dns_from = ingress[1].from.as_ref().unwrap()[0]
        .pod_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(dns_from["vkube.dev/managed-by"], "t");
    let np: NetworkPolicy = r.get("NetworkPolicy", "vkube-t-workloads");
    let spec = np.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()["vkube.dev/managed-by"],
        "t"
    );
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    let egress = spec.egress.unwrap();
    let dns = egress
        .iter()
        .find(|e| {
            e.ports
                .iter()
                .flatten()
                .any(|p| p.port.is_some() && p.protocol.as_deref() == Some("UDP"))
        })
        .expect("a DNS egress rule");
    let peer = &dns.to.as_ref().unwrap()[0];
    assert_eq!(
        peer.namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["kubernetes.io/metadata.name"],
        "kube-system"
    );
    let internet = egress
        .iter()
        .flat_map(|e| e.to.iter().flatten())
        .find_map(|p| p.ip_block.as_ref())
        .expect("an internet egress rule");
    assert_eq!(internet.cidr, "0.0.0.0/0");
    assert!(
        internet
            .except
            .as_ref()
            .unwrap()
            .contains(&"10.0.0.0/8".to_string())
    );
    let server = egress
        .iter()
        .flat_map(|e| e.to.iter().flatten())
        .filter_map(|p| p.pod_selector.as_ref()?.match_labels.as_ref())
        .any(|l| l.get("app.kubernetes.io/instance").map(String::as_str) == Some("t"));
    assert!(server, "the tenant pods may reach their vkube server");
    let server_ports: Vec<String> = egress
        .iter()
        .filter(|e| {
            e.to.iter()
                .flatten()
                .filter_map(|p| p.pod_selector.as_ref()?.match_labels.as_ref())
                .any(|l| l.contains_key("app.kubernetes.io/instance"))
        })
        .flat_map(|e| e.ports.iter().flatten())
        .map(|p| format!("{}/{:?}", p.protocol.as_deref().unwrap_or("TCP"), p.port))
        .collect();
    for want in [
        "TCP/Some(Int(8443))",
        "UDP/Some(Int(1053))",
        "TCP/Some(Int(1053))",
    ] {
        assert!(
            server_ports.contains(&want.to_string()),
            "the tenant pods may reach their server's API and DNS: {server_ports:?}"
        );
    }
    let args = args_of(&r.get("StatefulSet", "vkube-t"));
    for want in [
        "--sync-all-configmaps",
        "--sync-all-secrets",
        "--pod-security=restricted",
    ] {
        assert!(
            args.contains(&want.to_string()),
            "missing {want} in {args:?}"
        );
    }
}

#[tokio::test]
async fn audit_and_oidc_render_their_configuration_volume_and_flags() {
    let off = render(&[]).await;
    assert!(
        !args_of(&off.get("StatefulSet", "vkube-t"))
            .iter()
            .any(|a| a.starts_with("--audit") || a.starts_with("--authentication"))
    );
    assert!(
        !off.objects()
            .contains(&("ConfigMap".into(), "vkube-t-apiserver".into()))
    );

    let anonymous = render(&["--set", "apiserver.anonymousAuth=true"]).await;
    assert!(
        args_of(&anonymous.get("StatefulSet", "vkube-t")).contains(&"--anonymous-auth".to_string())
    );
    assert!(!args_of(&off.get("StatefulSet", "vkube-t")).contains(&"--anonymous-auth".to_string()));

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("oidc.yaml");
    std::fs::write(
        &values,
        r#"
apiserver:
  authentication:
    jwt:
    - issuer: {url: "https://idp.example.com", audiences: [vkube]}
      claimMappings:
        username: {claim: email, prefix: "oidc:"}
        groups: {claim: groups, prefix: "oidc:"}
    jwks:
      "https://idp.example.com": '{"keys": []}'
"#,
    )
    .unwrap();
    let values = values.to_str().unwrap();
    for (target, log_path) in [("stdout", "-"), ("volume", "/data/audit/audit.log")] {
        let r = render(&[
            "-f",
            values,
            "--set",
            "apiserver.audit.enabled=true",
            "--set",
            &format!("apiserver.audit.target={target}"),
        ])
        .await;
        let sts: StatefulSet = r.get("StatefulSet", "vkube-t");
        let args = args_of(&sts);
        for want in [
            "--audit-policy-file=/etc/vkube/apiserver/audit-policy.yaml".to_string(),
            format!("--audit-log-path={log_path}"),
            "--audit-log-maxsize=100".into(),
            "--audit-log-maxbackup=5".into(),
            "--authentication-config=/etc/vkube/apiserver/authentication-config.yaml".into(),
            "--authentication-jwks-file=https://idp.example.com=/etc/vkube/apiserver/jwks-0.json"
                .into(),
        ] {
            assert!(args.contains(&want), "missing {want} in {args:?}");
        }
        let spec = sts.spec.template.spec.unwrap();
        let volume = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "apiserver-config")
            .expect("the configuration volume");
        assert_eq!(volume.config_map.unwrap().name, "vkube-t-apiserver");
        let cm: k8s_openapi::api::core::v1::ConfigMap = r.get("ConfigMap", "vkube-t-apiserver");
        let data = cm.data.unwrap();
        // What the server will read parses and validates.
        let policy =
            apiserver_shim::filters::audit::policy::Policy::parse(&data["audit-policy.yaml"])
                .unwrap();
        assert_eq!(policy.rules.len(), 2);
        use apiserver_shim::filters::authentication::config::AuthenticationConfiguration;
        let authn =
            AuthenticationConfiguration::parse(&data["authentication-config.yaml"]).unwrap();
        assert_eq!(authn.jwt[0].issuer.url, "https://idp.example.com");
        authn.validate(&[]).unwrap();
    }
    // OIDC alone renders the ConfigMap without a policy.
    let r = render(&["-f", values]).await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = r.get("ConfigMap", "vkube-t-apiserver");
    assert_eq!(
        cm.data.unwrap().keys().collect::<Vec<_>>(),
        ["authentication-config.yaml", "jwks-0.json"]
    );
}

#[tokio::test]
async fn the_schema_rejects_bad_values() {
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    for (set, needle) in [
        ("podSecurity=bogus", "/podSecurity"),
        ("exposure.type=Bogus", "/exposure/type"),
        ("sync.everything=true", "everything"),
        ("nonsense=1", "nonsense"),
        ("service.port=70000", "/service/port"),
        ("apiserver.audit.target=syslog", "/apiserver/audit/target"),
        (
            "apiserver.maxRequestsInflight=-1",
            "/apiserver/maxRequestsInflight",
        ),
        (
            "sync.persistentVolumes.sources={nfs,hostPath}",
            "/sync/persistentVolumes/sources/1",
        ),
    ] {
        helm(&["template", "t", chart, "--set", set])
            .await
            .expect_err_contains(needle);
    }
    helm(&["template", "t", chart, "--set", "exposure.type=Ingress"])
        .await
        .expect_err_contains("/exposure/ingress");
}

async fn poll<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_uninstall_against_the_local_host() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let home = c.work_dir.join("home");
    let kubeconfig = c.kubeconfig_path();
    c.kubectl(&["create", "namespace", "tenant-a"])
        .await
        .expect_ok();
    let chart = chart_dir();
    helm_in(
        &home,
        Some(kubeconfig),
        &["install", "t", chart.to_str().unwrap(), "-n", "tenant-a"],
    )
    .await
    .expect_ok()
    .expect_stdout_contains(&["STATUS: deployed"]);

    let get = |args: Vec<&'static str>| {
        let c = &c;
        async move {
            let mut all = vec!["-n", "tenant-a", "get"];
            all.extend(args);
            c.kubectl(&all).await
        }
    };
    get(vec![
        "sts/vkube-t",
        "svc/vkube-t",
        "sa/vkube-t",
        "sa/vkube-workload-t",
        "role/vkube-t",
        "rolebinding/vkube-t",
    ])
    .await
    .expect_ok();
    poll("the tenant pod is simulated Running", || async {
        let out = get(vec!["pod", "vkube-t-0", "-o", "jsonpath={.status.phase}"]).await;
        if out.success() && out.stdout == "Running" {
            Ok(())
        } else {
            Err(out.to_string())
        }
    })
    .await;
    let labels = get(vec![
        "pod",
        "vkube-t-0",
        "-o",
        "jsonpath={.metadata.labels.vkube\\.dev/virtual-cluster}",
    ])
    .await
    .expect_ok();
    assert_eq!(labels.stdout, "t");
    get(vec!["pvc", "data-vkube-t-0"]).await.expect_ok();

    helm_in(
        &home,
        Some(kubeconfig),
        &["uninstall", "t", "-n", "tenant-a"],
    )
    .await
    .expect_ok()
    .expect_stdout_contains(&["uninstalled"]);
    get(vec![
        "sts,svc,sa,role,rolebinding",
        "-l",
        "app.kubernetes.io/instance=t",
        "-o",
        "name",
    ])
    .await
    .expect_ok()
    .expect_stdout_lacks(&["vkube-t"]);
    poll("the tenant pod is garbage-collected", || async {
        let out = get(vec!["pods", "-o", "name"]).await;
        if out.success() && !out.stdout.contains("vkube-t-0") {
            Ok(())
        } else {
            Err(out.to_string())
        }
    })
    .await;
    c.shutdown().await;
}
