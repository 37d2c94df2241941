//! The kubectl-grade scenario of issue 3: one tenant's day with real kubectl
//! v1.34 and helm v4 against the server, over verified TLS and with kubectl's
//! default (server-side, strict) validation — no weakening flags. Every step
//! asserts on what the user sees: kubectl's messages, tables and objects.

use std::path::Path;
use std::time::Duration;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::{Output, TestCluster, find_tool};

const APP_V1: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
  namespace: shop
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
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
      serviceAccountName: web
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
          name: http
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef:
              name: web-config
              key: greeting
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: http
"#;

fn jsonpath(out: &Output) -> &str {
    out.stdout.trim()
}

async fn get_field(c: &TestCluster, args: &[&str], path: &str) -> String {
    let mut full: Vec<&str> = args.to_vec();
    let jp = format!("jsonpath={path}");
    full.extend(["-o", jp.as_str()]);
    jsonpath(&c.kubectl(&full).await.expect_ok()).to_string()
}

/// Runs the real `helm` binary against the cluster, with its caches and
/// config inside the test's directory.
async fn helm(c: &TestCluster, args: &[&str]) -> Output {
    let bin = find_tool("HELM", "helm").expect("helm (run scripts/install-tools.sh)");
    let home = c.kubeconfig_path().parent().unwrap().join("helm-home");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(c.kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("helm timed out")
        .expect("spawning helm");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        command: format!("helm {}", args.join(" ")),
    }
}

#[tokio::test]
async fn kubectl_day_one_scenario() {
    // A cluster as `vkube apiserver` runs it: controllers on, and a simulated
    // node so that workloads become ready (helm --wait needs it).
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let app = c.write_file("app.yaml", APP_V1);
    let app = app.to_str().unwrap();

    // 1. apply -f of a multi-document manifest, validated by the server.
    c.kubectl(&["apply", "-f", app])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "namespace/shop created",
            "serviceaccount/web created",
            "configmap/web-config created",
            "secret/web-secret created",
            "deployment.apps/web created",
            "service/web created",
        ]);

    // Someone else adds an env var and a label.
    c.kubectl(&[
        "patch", "deployment", "web", "-n", "shop", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"DEBUG","value":"1"}]}]}}}}"#,
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["deployment.apps/web patched"]);
    c.kubectl(&["label", "deployment", "web", "-n", "shop", "team=blue"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web labeled"]);

    // 2. Edit the file and apply again: a strategic three-way patch that
    // keeps what others set.
    let v2 = APP_V1
        .replace("image: nginx:1.25", "image: nginx:1.26")
        .replace("replicas: 2", "replicas: 3");
    c.write_file("app.yaml", &v2);
    c.kubectl(&["apply", "-f", app])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "namespace/shop unchanged",
            "configmap/web-config unchanged",
            "deployment.apps/web configured",
            "service/web unchanged",
        ]);
    let deploy = ["get", "deployment", "web", "-n", "shop"];
    assert_eq!(
        get_field(&c, &deploy, "{.spec.template.spec.containers[0].image}").await,
        "nginx:1.26"
    );
    assert_eq!(get_field(&c, &deploy, "{.spec.replicas}").await, "3");
    // Both env vars, in whichever order the strategic merge leaves them.
    let env = get_field(
        &c,
        &deploy,
        "{.spec.template.spec.containers[0].env[*].name}",
    )
    .await;
    let mut env: Vec<&str> = env.split_whitespace().collect();
    env.sort();
    assert_eq!(
        env,
        ["DEBUG", "GREETING"],
        "the other writer's env var survives the re-apply"
    );
    assert_eq!(
        get_field(&c, &deploy, "{.metadata.labels.team}").await,
        "blue"
    );
    let managers = get_field(
        &c,
        &[&deploy[..], &["--show-managed-fields"]].concat(),
        "{.metadata.managedFields[*].manager}",
    )
    .await;
    assert!(managers.contains("kubectl-client-side-apply"), "{managers}");
    assert!(managers.contains("kubectl-patch"), "{managers}");
    assert!(managers.contains("kubectl-label"), "{managers}");

    // 3. Server-side apply with two field managers and a conflict.
    let alice = c.write_file(
        "settings-alice.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  color: red\n  size: L\n",
    );
    let bob = c.write_file(
        "settings-bob.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  color: blue\n",
    );
    c.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=alice",
        "-f",
        alice.to_str().unwrap(),
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["configmap/settings serverside-applied"]);
    let out = c
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "-f",
            bob.to_str().unwrap(),
        ])
        .await
        .expect_err_contains("conflict with \"alice\"");
    assert!(out.stderr.contains(".data.color"), "{out}");
    assert!(
        out.stderr.contains("--force-conflicts"),
        "kubectl explains the way out: {out}"
    );
    let cm = ["get", "configmap", "settings", "-n", "shop"];
    assert_eq!(get_field(&c, &cm, "{.data.color}").await, "red");
    c.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        bob.to_str().unwrap(),
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["configmap/settings serverside-applied"]);
    assert_eq!(get_field(&c, &cm, "{.data.color}").await, "blue");
    assert_eq!(get_field(&c, &cm, "{.data.size}").await, "L");
    let fields = c
        .kubectl(&[&cm[..], &["-o", "json", "--show-managed-fields"]].concat())
        .await
        .expect_ok()
        .json();
    let owner_of = |field: &str| -> Vec<String> {
        fields["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["fieldsV1"]["f:data"].get(field).is_some())
            .map(|e| e["manager"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        owner_of("f:color"),
        ["bob"],
        "force moved ownership: {fields}"
    );
    assert_eq!(owner_of("f:size"), ["alice"], "{fields}");

    // 4. apply --dry-run=server changes nothing.
    let rv = get_field(&c, &deploy, "{.metadata.resourceVersion}").await;
    c.write_file("app.yaml", &v2.replace("replicas: 3", "replicas: 5"));
    c.kubectl(&["apply", "--dry-run=server", "-f", app])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web configured (server dry run)"]);
    assert_eq!(
        get_field(&c, &deploy, "{.metadata.resourceVersion}").await,
        rv
    );
    assert_eq!(get_field(&c, &deploy, "{.spec.replicas}").await, "3");

    // 5. get in its forms.
    let out = c
        .kubectl(&["get", "deployments", "-n", "shop"])
        .await
        .expect_ok();
    let header: Vec<&str> = out.lines()[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    c.kubectl(&["get", "deployments", "-n", "shop", "-o", "wide"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["CONTAINERS", "IMAGES", "SELECTOR", "nginx:1.26", "app=web"]);
    c.kubectl(&["get", "deployment", "web", "-n", "shop", "-o", "yaml"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "image: nginx:1.26",
            "maxSurge: 25%",
            "maxUnavailable: 25%",
            "revisionHistoryLimit: 10",
            "progressDeadlineSeconds: 600",
            "imagePullPolicy: IfNotPresent",
            "terminationMessagePath: /dev/termination-log",
            "restartPolicy: Always",
            "dnsPolicy: ClusterFirst",
        ]);
    let cluster_ip = get_field(
        &c,
        &["get", "svc", "web", "-n", "shop"],
        "{.spec.clusterIP}",
    )
    .await;
    let ip: std::net::Ipv4Addr = cluster_ip.parse().expect("an IPv4 ClusterIP");
    let [a, b, ..] = ip.octets();
    assert!(
        a == 10 && (96..=111).contains(&b),
        "allocated from the default service CIDR 10.96.0.0/12: {cluster_ip}"
    );
    c.kubectl(&["get", "svc", "-n", "shop"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["CLUSTER-IP", &cluster_ip, "80/TCP"]);
    c.kubectl(&["get", "deployment", "-n", "shop", "--show-labels"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["LABELS", "app=web,team=blue"]);
    let out = c
        .kubectl(&["get", "deployment", "-n", "shop", "-L", "team"])
        .await
        .expect_ok();
    assert!(out.lines()[0].ends_with("TEAM"), "{out}");
    assert!(out.lines()[1].ends_with("blue"), "{out}");
    let out = c.kubectl(&["get", "configmaps", "-A"]).await.expect_ok();
    assert!(out.lines()[0].starts_with("NAMESPACE"), "{out}");
    assert!(
        out.lines()
            .iter()
            .any(|l| l.split_whitespace().take(2).eq(["shop", "web-config"])),
        "{out}"
    );
    let out = c
        .kubectl(&[
            "get",
            "configmaps",
            "-n",
            "shop",
            "--sort-by=.metadata.name",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    let names = out.lines();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{out}");
    assert!(names.contains(&"configmap/settings"), "{out}");
    c.kubectl(&["get", "all", "-n", "shop"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web", "service/web"]);

    // 6. label, annotate, scale, set image, patch with each type.
    c.kubectl(&[
        "annotate",
        "configmap",
        "web-config",
        "-n",
        "shop",
        "owner=ops",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["configmap/web-config annotated"]);
    c.kubectl(&["scale", "deployment", "web", "-n", "shop", "--replicas=4"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployment.apps/web scaled"]);
    assert_eq!(get_field(&c, &deploy, "{.spec.replicas}").await, "4");
    c.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "-n",
        "shop",
        "web=nginx:1.27",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["deployment.apps/web image updated"]);
    for (kind, patch) in [
        ("json", r#"[{"op":"add","path":"/data/j","value":"1"}]"#),
        ("merge", r#"{"data":{"m":"2"}}"#),
        ("strategic", r#"{"data":{"s":"3"}}"#),
    ] {
        c.kubectl(&[
            "patch",
            "configmap",
            "web-config",
            "-n",
            "shop",
            "--type",
            kind,
            "-p",
            patch,
        ])
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/web-config patched"]);
    }
    let wc = ["get", "configmap", "web-config", "-n", "shop"];
    assert_eq!(
        get_field(&c, &wc, "{.data.j}{.data.m}{.data.s}").await,
        "123"
    );

    // 7. edit, with a scripted editor.
    let editor = c.write_file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/greeting: hello/greeting: bonjour/' \"$1\"\n",
    );
    make_executable(&editor);
    c.kubectl_cmd(&["edit", "configmap", "web-config", "-n", "shop"])
        .env("EDITOR", &editor)
        .env("KUBE_EDITOR", &editor)
        .run()
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/web-config edited"]);
    assert_eq!(get_field(&c, &wc, "{.data.greeting}").await, "bonjour");

    // 8. replace.
    let live = c
        .kubectl(&[&wc[..], &["-o", "yaml"]].concat())
        .await
        .expect_ok();
    let replaced = c.write_file("replace.yaml", &live.stdout.replace("bonjour", "hola"));
    c.kubectl(&["replace", "-f", replaced.to_str().unwrap()])
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/web-config replaced"]);
    assert_eq!(get_field(&c, &wc, "{.data.greeting}").await, "hola");

    // 9. create with an unknown field fails under the default strict validation.
    let bad = c.write_file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: shop\ndata:\n  a: b\nbogus: 1\n",
    );
    c.kubectl(&["create", "-f", bad.to_str().unwrap()])
        .await
        .expect_err_contains(r#"unknown field "bogus""#);
    c.kubectl(&["get", "configmap", "bad", "-n", "shop"])
        .await
        .expect_err_contains("NotFound");

    // 10. a Service's clusterIP is immutable, with kube-apiserver's message.
    let patch = r#"{"spec":{"clusterIP":"10.96.200.200","clusterIPs":["10.96.200.200"]}}"#;
    let out = c
        .kubectl(&["patch", "svc", "web", "-n", "shop", "-p", patch])
        .await
        .expect_err_contains("spec.clusterIPs[0]: Invalid value:");
    assert!(out.stderr.contains("may not change once set"), "{out}");
    assert_eq!(
        get_field(
            &c,
            &["get", "svc", "web", "-n", "shop"],
            "{.spec.clusterIP}"
        )
        .await,
        cluster_ip
    );

    // 11. explain, from the server's OpenAPI v3.
    c.kubectl(&["explain", "pod.spec.containers"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "KIND:",
            "Pod",
            "FIELD: containers",
            "image",
            "imagePullPolicy",
        ]);

    // 12. delete without and with --wait; wait --for=delete.
    c.kubectl(&[
        "delete",
        "secret",
        "web-secret",
        "-n",
        "shop",
        "--wait=false",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["secret \"web-secret\" deleted"]);
    c.kubectl(&["delete", "service", "web", "-n", "shop"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["service \"web\" deleted"]);
    c.kubectl(&["get", "service", "web", "-n", "shop"])
        .await
        .expect_err_contains("NotFound");
    c.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await
    .expect_ok();
    let waiter = c
        .kubectl_cmd(&[
            "wait",
            "--for=delete",
            "configmap/settings",
            "-n",
            "shop",
            "--timeout=60s",
        ])
        .spawn();
    c.kubectl(&[
        "delete",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--wait=false",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await
    .expect_ok();
    waiter
        .wait(Duration::from_secs(60))
        .await
        .expect_ok()
        .expect_stdout_contains(&["configmap/settings condition met"]);

    // 13. helm install / upgrade / uninstall of a small local chart.
    let chart = vkube_e2e::workspace_root().join("e2e/testdata/charts/demo");
    let chart = chart.to_str().unwrap();
    helm(
        &c,
        &[
            "install",
            "demo",
            chart,
            "-n",
            "shop",
            "--wait",
            "--timeout",
            "60s",
        ],
    )
    .await
    .expect_ok()
    .expect_stdout_contains(&["STATUS: deployed", "REVISION: 1"]);
    let demo = ["get", "deployment", "demo-web", "-n", "shop"];
    assert_eq!(
        get_field(&c, &demo, "{.spec.template.spec.containers[0].image}").await,
        "nginx:1.25"
    );
    helm(
        &c,
        &[
            "upgrade",
            "demo",
            chart,
            "-n",
            "shop",
            "--set",
            "image=nginx:1.26,greeting=hi",
        ],
    )
    .await
    .expect_ok()
    .expect_stdout_contains(&["STATUS: deployed", "REVISION: 2"]);
    assert_eq!(
        get_field(&c, &demo, "{.spec.template.spec.containers[0].image}").await,
        "nginx:1.26"
    );
    assert_eq!(
        get_field(
            &c,
            &["get", "configmap", "demo-config", "-n", "shop"],
            "{.data.greeting}"
        )
        .await,
        "hi"
    );
    helm(&c, &["list", "-n", "shop"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["demo", "deployed"]);
    helm(&c, &["uninstall", "demo", "-n", "shop", "--wait"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["release \"demo\" uninstalled"]);
    for kind in [
        "deployment/demo-web",
        "service/demo-web",
        "configmap/demo-config",
        "serviceaccount/demo-sa",
    ] {
        c.kubectl(&["get", kind, "-n", "shop"])
            .await
            .expect_err_contains("NotFound");
    }

    // Finally the namespace goes, with everything in it.
    c.kubectl(&["delete", "namespace", "shop"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["namespace \"shop\" deleted"]);
    c.kubectl(&["get", "namespace", "shop"])
        .await
        .expect_err_contains("NotFound");
    c.shutdown().await;
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).unwrap();
}
