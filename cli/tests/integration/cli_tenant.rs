//! The host-side `vkube` commands against a local host: a vkube API server
//! with every controller and the node simulator (`e2e::TestCluster`), whose
//! kubeconfig (a private copy) is the user's `KUBECONFIG`, and the real helm.
//!
//! The simulated tenant pod runs no process, so these tests create with
//! `--wait=false`; the connect path is exercised with the host API server
//! playing the tenant's (its own admin kubeconfig stored in the kubeconfig
//! Secret) behind a LoadBalancer Service whose ingress the test sets, as a
//! cloud load-balancer controller would. Where the real `vkube server` runs,
//! the test starts it as a child process and plays the kubelet for the
//! tenant pod.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::{Output, TestCluster, find_tool};

/// A local host plus the user's environment for the `vkube` binary.
struct Host {
    c: TestCluster,
    kubeconfig: PathBuf,
}

impl Host {
    async fn start() -> Host {
        let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
        let kubeconfig = c.work_dir.join("user-kubeconfig");
        std::fs::copy(c.kubeconfig_path(), &kubeconfig).unwrap();
        Host { c, kubeconfig }
    }

    /// Runs `vkube ARGS` as the user.
    async fn vkube(&self, args: &[&str]) -> Output {
        self.vkube_env(args, &[]).await
    }

    async fn vkube_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = self.c.work_dir.join("home");
        let helm = find_tool("HELM", "helm").unwrap_or_else(|e| panic!("{e:#}"));
        let kubectl = find_tool("KUBECTL", "kubectl").unwrap_or_else(|e| panic!("{e:#}"));
        let path = format!(
            "{}:{}",
            kubectl.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vkube"));
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &home)
            .env("HELM", &helm)
            .env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .env("PATH", path)
            .env("VKUBE_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let command = format!("vkube {}", args.join(" "));
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
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

    async fn kubectl(&self, args: &[&str]) -> Output {
        self.c.kubectl(args).await
    }

    /// `kubectl get ... -o jsonpath=PATH` in `ns`; empty on failure.
    async fn jsonpath(&self, ns: &str, what: &str, path: &str) -> String {
        let expr = format!("jsonpath={path}");
        let out = self.kubectl(&["-n", ns, "get", what, "-o", &expr]).await;
        if out.success() {
            out.stdout.trim().to_string()
        } else {
            String::new()
        }
    }

    /// Polls until `jsonpath` returns `want` (60 s).
    async fn wait_for(&self, ns: &str, what: &str, path: &str, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.jsonpath(ns, what, path).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} {path}: want {want:?}, still {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Polls until `kubectl get what` in `ns` reports NotFound (60 s).
    async fn wait_gone(&self, ns: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.kubectl(&["-n", ns, "get", what]).await;
            if !out.success() && out.stderr.contains("NotFound") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} is still there: {out}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// `vkube list -o json`, parsed, polled until the entry for NAME in NS
    /// has `status` (60 s).
    async fn wait_listed(&self, name: &str, ns: &str, status: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.vkube(&["list", "-o", "json"]).await.expect_ok();
            let rows = out.json();
            let row = rows
                .as_array()
                .expect("a JSON array")
                .iter()
                .find(|r| r["name"] == name && r["namespace"] == ns)
                .cloned();
            if let Some(r) = row.filter(|r| r["status"] == status) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never {status}: {out}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_pause_resume_delete() {
    let h = Host::start().await;
    let ns = "tenant-a";
    h.vkube(&["create", "t", "-n", ns, "--connect=false", "--wait=false"])
        .await
        .expect_ok()
        .expect_err_contains_ok("Installed virtual cluster t in namespace tenant-a");
    h.wait_for(ns, "pod/vkube-t-0", "{.status.phase}", "Running")
        .await;
    let row = h.wait_listed("t", ns, "Running").await;
    assert_eq!(row["connected"], false);
    h.vkube(&["list"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "NAME",
            "NAMESPACE",
            "STATUS",
            "CONNECTED",
            "AGE",
            "tenant-a",
        ]);
    h.vkube(&["list", "-o", "yaml", "-n", "other"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["tenant-a"]);

    // Stand-ins for objects the syncer would have created.
    h.kubectl(&[
        "-n",
        ns,
        "run",
        "synced",
        "--image=nginx",
        "-l",
        "vkube.dev/managed-by=t",
    ])
    .await
    .expect_ok();
    h.kubectl(&["-n", ns, "create", "configmap", "synced-cm"])
        .await
        .expect_ok();
    h.kubectl(&[
        "-n",
        ns,
        "label",
        "configmap",
        "synced-cm",
        "vkube.dev/managed-by=t",
    ])
    .await
    .expect_ok();
    h.kubectl(&["-n", ns, "run", "bystander", "--image=nginx"])
        .await
        .expect_ok();

    h.vkube(&["pause", "t", "-n", ns]).await.expect_ok();
    assert_eq!(h.jsonpath(ns, "sts/vkube-t", "{.spec.replicas}").await, "0");
    assert_eq!(
        h.jsonpath(
            ns,
            "sts/vkube-t",
            "{.metadata.annotations.vkube\\.dev/paused}"
        )
        .await,
        "true"
    );
    h.wait_gone(ns, "pod/synced").await;
    h.wait_gone(ns, "pod/vkube-t-0").await;
    h.wait_listed("t", ns, "Paused").await;
    // The record that lets resume run the tenant's pods again.
    assert_eq!(
        h.jsonpath(
            ns,
            "configmap/vkube-paused-pods-t",
            "{.metadata.labels.vkube\\.dev/paused-pods-of}"
        )
        .await,
        "t"
    );
    // Objects of others are left alone; data stays.
    h.kubectl(&["-n", ns, "get", "pod/bystander", "pvc/data-vkube-t-0"])
        .await
        .expect_ok();

    h.vkube(&["resume", "t", "-n", ns]).await.expect_ok();
    assert_eq!(h.jsonpath(ns, "sts/vkube-t", "{.spec.replicas}").await, "1");
    assert_eq!(
        h.jsonpath(
            ns,
            "sts/vkube-t",
            "{.metadata.annotations.vkube\\.dev/paused}"
        )
        .await,
        ""
    );
    h.wait_for(ns, "pod/vkube-t-0", "{.status.phase}", "Running")
        .await;
    h.wait_listed("t", ns, "Running").await;

    h.vkube(&["delete", "t", "-n", ns]).await.expect_ok();
    for what in [
        "sts/vkube-t",
        "svc/vkube-t",
        "sa/vkube-t",
        "role/vkube-t",
        "configmap/synced-cm",
        "configmap/vkube-paused-pods-t",
        "pvc/data-vkube-t-0",
    ] {
        h.wait_gone(ns, what).await;
    }
    h.wait_gone(ns, "pod/vkube-t-0").await;
    h.kubectl(&["-n", ns, "get", "pod/bystander"])
        .await
        .expect_ok();
    let rows = h.vkube(&["list", "-o", "json"]).await.expect_ok().json();
    assert_eq!(rows, serde_json::json!([]));
    h.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_keep_data_keeps_the_pvc() {
    let h = Host::start().await;
    // A values file and the chart of this source tree (--chart).
    let values = h.c.work_dir.join("values.yaml");
    std::fs::write(&values, "persistence:\n  size: 1Gi\n").unwrap();
    let chart = vkube_e2e::workspace_root().join("chart");
    h.vkube(&[
        "create",
        "k",
        "--wait=false",
        "-f",
        values.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ])
    .await
    .expect_ok();
    // The default namespace is vkube-NAME, created by helm.
    let ns = "vkube-k";
    h.wait_for(ns, "pod/vkube-k-0", "{.status.phase}", "Running")
        .await;
    assert_eq!(
        h.jsonpath(
            ns,
            "pvc/data-vkube-k-0",
            "{.spec.resources.requests.storage}"
        )
        .await,
        "1Gi"
    );
    h.vkube(&["delete", "k", "--keep-data"]).await.expect_ok();
    h.wait_gone(ns, "sts/vkube-k").await;
    h.kubectl(&["-n", ns, "get", "pvc/data-vkube-k-0"])
        .await
        .expect_ok();
    h.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_through_a_load_balancer_then_disconnect() {
    let h = Host::start().await;
    let ns = "tenant-b";
    let port = create_exposed(&h, "t", ns).await;
    assert_eq!(
        h.jsonpath(ns, "svc/vkube-t", "{.spec.type}").await,
        "LoadBalancer"
    );
    // Before the server wrote its kubeconfig, connect says what to check.
    h.vkube(&["connect", "t", "-n", ns, "--print"])
        .await
        .expect_err_contains("Secret vkube-t-kubeconfig not found in namespace tenant-b");

    // Play the tenant's server (the host's own API server, its admin
    // kubeconfig in the Secret) and the cloud load balancer (127.0.0.1).
    play_server_and_load_balancer(&h, "t", ns).await;

    let printed = h
        .vkube(&["connect", "t", "-n", ns, "--print"])
        .await
        .expect_ok();
    let want_server = format!("server: https://127.0.0.1:{port}");
    assert!(printed.stdout.contains(&want_server), "{printed}");
    assert!(
        printed.stdout.contains("current-context: vkube_t_tenant-b"),
        "{printed}"
    );
    assert!(
        printed.stdout.contains("tls-server-name: localhost"),
        "{printed}"
    );
    assert!(
        !printed.stdout.contains("insecure-skip-tls-verify"),
        "{printed}"
    );

    // Run a command against it: real kubectl, verified TLS.
    h.vkube(&[
        "connect", "t", "-n", ns, "--", "kubectl", "get", "ns", "tenant-b", "-o", "name",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["namespace/tenant-b"]);
    // A failing command's status is passed on.
    let failed = h
        .vkube(&[
            "connect", "t", "-n", ns, "--", "kubectl", "get", "ns", "nope",
        ])
        .await;
    assert!(!failed.success(), "{failed}");

    // Switch the user's context, and back.
    let before = h
        .kubectl(&[
            "--kubeconfig",
            h.kubeconfig.to_str().unwrap(),
            "config",
            "current-context",
        ])
        .await;
    let before = before.expect_ok().stdout.trim().to_string();
    h.vkube(&["connect", "t", "-n", ns])
        .await
        .expect_ok()
        .expect_err_contains_ok("Switched to context vkube_t_tenant-b");
    let user = ["--kubeconfig", h.kubeconfig.to_str().unwrap()];
    let current = h
        .kubectl(&[user[0], user[1], "config", "current-context"])
        .await
        .expect_ok();
    assert_eq!(current.stdout.trim(), "vkube_t_tenant-b");
    h.kubectl(&[user[0], user[1], "get", "ns", "tenant-b"])
        .await
        .expect_ok();
    // list still talks to the host and marks the connected cluster.
    let row = h.wait_listed("t", ns, "Running").await;
    assert_eq!(row["connected"], true);

    h.vkube(&["disconnect"]).await.expect_ok();
    let current = h
        .kubectl(&[user[0], user[1], "config", "current-context"])
        .await
        .expect_ok();
    assert_eq!(current.stdout.trim(), before);
    h.kubectl(&[user[0], user[1], "config", "get-contexts", "-o", "name"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["vkube_t_tenant-b"]);
    h.vkube(&["disconnect"])
        .await
        .expect_err_contains("not a vkube context");
    h.c.shutdown().await;
}

/// The host API server's port (it plays the tenant's server).
fn host_port(h: &Host) -> String {
    h.c.server
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// `vkube create NAME -n NS --expose --wait=false` with the Service on
/// [`host_port`]; that port.
async fn create_exposed(h: &Host, name: &str, ns: &str) -> String {
    let port = host_port(h);
    let set_port = format!("service.port={port}");
    h.vkube(&[
        "create",
        name,
        "-n",
        ns,
        "--expose",
        "--set",
        &set_port,
        "--wait=false",
    ])
    .await
    .expect_ok();
    port
}

/// Plays the tenant server and the cloud load balancer for `vkube-NAME` in
/// `ns`: stores the host's own admin kubeconfig as the kubeconfig Secret and
/// sets the Service's load-balancer ingress to 127.0.0.1.
async fn play_server_and_load_balancer(h: &Host, name: &str, ns: &str) {
    // The server names itself `localhost` (one of its SANs), so clients
    // reaching it at 127.0.0.1 must verify it by tls-server-name.
    let admin = std::fs::read_to_string(h.c.kubeconfig_path()).unwrap();
    assert!(admin.contains("server: https://127.0.0.1:"), "{admin}");
    let admin = admin.replace("server: https://127.0.0.1:", "server: https://localhost:");
    let admin_file = h.c.work_dir.join(format!("admin-{name}.kubeconfig"));
    std::fs::write(&admin_file, admin).unwrap();
    let from_file = format!("--from-file=config={}", admin_file.display());
    let secret = format!("vkube-{name}-kubeconfig");
    h.kubectl(&["-n", ns, "create", "secret", "generic", &secret, &from_file])
        .await
        .expect_ok();
    let svc = format!("vkube-{name}");
    h.kubectl(&[
        "-n",
        ns,
        "patch",
        "svc",
        &svc,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}"#,
    ])
    .await
    .expect_ok();
}

/// Plays the kubelet for pod `vkube-NAME-0`: runs the real `vkube server`
/// as a child process on `listen`, with the flags the chart passes (its
/// kubeconfig Secret names `kubeconfig_server`).
fn spawn_vkube_server(
    h: &Host,
    name: &str,
    ns: &str,
    listen: std::net::SocketAddr,
    kubeconfig_server: &str,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args(["server", "--name", name, "--listen", &listen.to_string()])
        .args(["--dns-listen", "127.0.0.1:0"])
        .args(["--kubeconfig-server", kubeconfig_server])
        .args(["--host-owner", &format!("statefulset/vkube-{name}")])
        .args(["--host-service-account", &format!("vkube-workload-{name}")])
        .arg("--host-kubeconfig")
        .arg(h.c.kubeconfig_path())
        .arg("--data-dir")
        .arg(h.c.work_dir.join(format!("{ns}-data")))
        .env("POD_NAMESPACE", ns)
        .env("VKUBE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting vkube server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_waits_for_the_pod_the_secret_and_the_api_then_connects() {
    let h = std::sync::Arc::new(Host::start().await);
    let ns = "tenant-w";
    let port = host_port(&h);
    let set_port = format!("service.port={port}");
    let creating = {
        let h = h.clone();
        let set_port = set_port.clone();
        tokio::spawn(async move {
            h.vkube(&[
                "create",
                "w",
                "-n",
                ns,
                "--expose",
                "--set",
                &set_port,
                "--timeout",
                "90",
            ])
            .await
        })
    };
    // While create waits, the pod becomes Ready (simulated); then the
    // "server" writes its Secret and the "cloud" assigns the address.
    h.wait_for(ns, "pod/vkube-w-0", "{.status.phase}", "Running")
        .await;
    assert!(
        !creating.is_finished(),
        "create must wait for the kubeconfig Secret"
    );
    play_server_and_load_balancer(&h, "w", ns).await;
    let out = creating.await.unwrap().expect_ok();
    assert!(out.stderr.contains("Virtual cluster w is ready"), "{out}");
    assert!(
        out.stderr.contains("Switched to context vkube_w_tenant-w"),
        "{out}"
    );
    let user = ["--kubeconfig", h.kubeconfig.to_str().unwrap()];
    let current = h
        .kubectl(&[user[0], user[1], "config", "current-context"])
        .await
        .expect_ok();
    assert_eq!(current.stdout.trim(), "vkube_w_tenant-w");
    // While connected, vkube still manages the host; delete drops the
    // context and switches back.
    h.vkube(&["delete", "w", "-n", ns])
        .await
        .expect_ok()
        .expect_err_contains_ok("Removed kube context vkube_w_tenant-w");
    let current = h
        .kubectl(&[user[0], user[1], "config", "current-context"])
        .await
        .expect_ok();
    assert_ne!(current.stdout.trim(), "vkube_w_tenant-w");
    h.kubectl(&[user[0], user[1], "-n", ns, "get", "sts", "-o", "name"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["vkube-w"]);
    let h = std::sync::Arc::into_inner(h).expect("the create task is done");
    h.c.shutdown().await;
}

/// ClusterIP only, so `vkube connect` port-forwards to `vkube-p-0` through
/// the host API server, which (standing in for kubelet) dials the pod's
/// `status.podIP`. The test plays the kubelet: it runs the real `vkube
/// server` on 127.0.0.2 (a loopback address distinct from the host API
/// server's) at the pod's container port and writes 127.0.0.2 as the pod's
/// IP through the status subresource. The node simulator keeps a podIP once
/// one is set (as a kubelet keeps its sandbox's IP), so writing it after the
/// pod is Running suffices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_an_external_address_port_forwards() {
    let h = Host::start().await;
    let ns = "tenant-p";
    let pod_ip = "127.0.0.2";
    let addr = std::net::TcpListener::bind((pod_ip, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    // The chart's container port `https` is what connect forwards to.
    let set_port = format!("serverPort={}", addr.port());
    h.vkube(&["create", "p", "-n", ns, "--set", &set_port, "--wait=false"])
        .await
        .expect_ok();
    h.wait_for(ns, "pod/vkube-p-0", "{.status.phase}", "Running")
        .await;
    h.wait_for(
        ns,
        "pod/vkube-p-0",
        "{.status.conditions[?(@.type==\"Ready\")].status}",
        "True",
    )
    .await;
    assert_eq!(
        h.jsonpath(
            ns,
            "pod/vkube-p-0",
            "{.spec.containers[0].ports[?(@.name==\"https\")].containerPort}"
        )
        .await,
        addr.port().to_string()
    );
    // The kubelet's part: the server runs "in the pod", reachable at its IP.
    let kubeconfig_server = format!("https://localhost:{}", addr.port());
    let mut server = spawn_vkube_server(&h, "p", ns, addr, &kubeconfig_server);
    let ip_patch = format!(r#"{{"status":{{"podIP":"{pod_ip}","podIPs":[{{"ip":"{pod_ip}"}}]}}}}"#);
    h.kubectl(&[
        "-n",
        ns,
        "patch",
        "pod",
        "vkube-p-0",
        "--subresource=status",
        "--type=merge",
        "-p",
        &ip_patch,
    ])
    .await
    .expect_ok();
    h.wait_for(ns, "pod/vkube-p-0", "{.status.podIP}", pod_ip)
        .await;
    // The server writes its kubeconfig Secret once it serves.
    h.wait_for(
        ns,
        "secret/vkube-p-kubeconfig",
        "{.metadata.name}",
        "vkube-p-kubeconfig",
    )
    .await;

    // ClusterIP: no external address, so connect listens on a local port
    // and keeps running; the kubeconfig points there and verifies the
    // serving certificate against the host name the server wrote.
    let home = h.c.work_dir.join("home");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args(["connect", "p", "-n", ns, "--print"])
        .env("KUBECONFIG", &h.kubeconfig)
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), stderr.next_line())
        .await
        .expect("connect reports the forward")
        .unwrap()
        .unwrap_or_default();
    assert!(line.starts_with("Forwarding 127.0.0.1:"), "{line}");
    let local = line
        .trim_start_matches("Forwarding ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("server: https://{local}")),
        "{printed}"
    );
    assert!(printed.contains("tls-server-name: localhost"), "{printed}");

    // Data flows: kubectl through the port-forward reaches the virtual
    // cluster (its namespaces, not the host's), with verified TLS.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let out = h
            .vkube(&[
                "connect", "p", "-n", ns, "--", "kubectl", "get", "ns", "-o", "name",
            ])
            .await;
        if out.success() || tokio::time::Instant::now() >= deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        server.try_wait().unwrap().is_none(),
        "vkube server exited: {listed}"
    );
    listed
        .expect_ok()
        .expect_stdout_contains(&["namespace/default", "namespace/kube-system"])
        .expect_stdout_lacks(&["namespace/tenant-p"]);
    let _ = server.start_kill();
    let _ = server.wait().await;
    h.c.shutdown().await;
}

/// The whole path with the real `vkube server`: the test plays the kubelet
/// for the tenant pod (runs `vkube server` as a child process on a loopback
/// port, with the flags the chart passes) and the cloud load balancer
/// (ingress 127.0.0.1 on the Service), while `vkube create` waits for the
/// pod, the Secret and the virtual API; then `vkube connect -- kubectl get
/// ns` shows the virtual cluster's namespaces, not the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_connect_with_the_real_vkube_server() {
    let h = std::sync::Arc::new(Host::start().await);
    let ns = "tenant-e";
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let set_port = format!("service.port={}", addr.port());
    let creating = {
        let h = h.clone();
        tokio::spawn(async move {
            h.vkube(&[
                "create",
                "e",
                "-n",
                ns,
                "--expose",
                "--set",
                &set_port,
                "--connect=false",
                "--timeout",
                "110",
            ])
            .await
        })
    };
    h.wait_for(ns, "pod/vkube-e-0", "{.status.phase}", "Running")
        .await;
    let url = format!("https://{addr}");
    let mut server = spawn_vkube_server(&h, "e", ns, addr, &url);
    h.kubectl(&[
        "-n",
        ns,
        "patch",
        "svc",
        "vkube-e",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}"#,
    ])
    .await
    .expect_ok();
    let created = creating.await.unwrap();
    assert!(
        server.try_wait().unwrap().is_none(),
        "vkube server exited: {created}"
    );
    created
        .expect_ok()
        .expect_err_contains_ok("Virtual cluster e is ready");

    let out = h
        .vkube(&[
            "connect", "e", "-n", ns, "--", "kubectl", "get", "ns", "-o", "name",
        ])
        .await
        .expect_ok()
        .expect_stdout_contains(&["namespace/default", "namespace/kube-system"])
        .expect_stdout_lacks(&["namespace/tenant-e"]);
    assert!(out.success());
    let _ = server.start_kill();
    let _ = server.wait().await;
    let h = std::sync::Arc::into_inner(h).expect("the create task is done");
    h.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do_next() {
    let h = Host::start().await;
    h.vkube_env(
        &["create", "t", "--wait=false"],
        &[("HELM", "/nonexistent/helm")],
    )
    .await
    .expect_err_contains("install helm v3.8+ or v4");
    h.vkube(&["pause", "nope", "-n", "default"])
        .await
        .expect_err_contains("see `vkube list`");
    h.vkube(&[
        "create",
        "bad",
        "--wait=false",
        "--set",
        "podSecurity=bogus",
    ])
    .await
    .expect_err_contains("podSecurity");
    h.vkube(&["completion", "bash"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["_vkube", "connect", "disconnect"]);
    h.c.shutdown().await;
}

/// `expect_ok` helpers for messages vkube prints on stderr.
trait StderrContains {
    fn expect_err_contains_ok(self, needle: &str) -> Self;
}

impl StderrContains for Output {
    #[track_caller]
    fn expect_err_contains_ok(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}: {self}"
        );
        self
    }
}

/// The chart and `vkube server` agree: the container args the chart renders
/// (every optional flag switched on) parse as `vkube server` flags, so the
/// server gets as far as looking for its in-cluster host config.
#[tokio::test]
async fn the_chart_args_are_vkube_server_flags() {
    let helm = find_tool("HELM", "helm").unwrap_or_else(|e| panic!("{e:#}"));
    let chart = vkube_e2e::workspace_root().join("chart");
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(helm)
        .args(["template", "t", chart.to_str().unwrap(), "-n", "ns"])
        .args(["--show-only", "templates/statefulset.yaml"])
        .args([
            "--set",
            "sync.allConfigMaps=true",
            "--set",
            "sync.allSecrets=true",
        ])
        .args(["--set", "tls.extraSANs[0]=vc.example.org"])
        .args([
            "--set",
            "podSecurity=restricted",
            "--set",
            r"controllers=*\,-cronjob",
        ])
        .env("HOME", home.path())
        .env("HELM_CACHE_HOME", home.path().join("c"))
        .env("HELM_CONFIG_HOME", home.path().join("f"))
        .env("HELM_DATA_HOME", home.path().join("d"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sts: k8s_openapi::api::apps::v1::StatefulSet =
        serde_saphyr::from_slice(&out.stdout).expect("a StatefulSet");
    let pod = sts.spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_deref(),
        Some(&["vkube".to_string()][..])
    );
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "server");
    // Outside a pod: the flags parse, then the in-cluster config is missing.
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args(&args)
        .env("POD_NAMESPACE", "ns")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .env("VKUBE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_ne!(
        run.status.code(),
        Some(2),
        "clap refused the chart's args: {stderr}"
    );
    assert!(!run.status.success());
    assert!(stderr.contains("--host-kubeconfig"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_user_gives_a_working_restricted_user() {
    let h = Host::start().await;
    let ns = "tenant-u";
    create_exposed(&h, "t", ns).await;
    play_server_and_load_balancer(&h, "t", ns).await;
    // The group `devs` may read pods in namespace team, nothing else.
    h.c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: team}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-read-pods, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}]
"#,
    )
    .await
    .expect_ok();

    let file = h.c.work_dir.join("alice.kubeconfig");
    let path = file.to_str().unwrap();
    h.vkube(&[
        "kubeconfig",
        "t",
        "-n",
        ns,
        "--user",
        "alice",
        "--group",
        "devs",
        "--ttl",
        "2h",
        "-o",
        path,
    ])
    .await
    .expect_ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let alice = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", path];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let c = &h.c;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            c.kubectl(&args).await
        }
    };
    let whoami = run(alice(&["auth", "whoami", "-o", "json"]))
        .await
        .expect_ok();
    let status = &whoami.json()["status"]["userInfo"];
    assert_eq!(status["username"], "alice");
    assert_eq!(
        status["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    run(alice(&["get", "pods", "-n", "team"])).await.expect_ok();
    run(alice(&["get", "secrets", "-n", "team"]))
        .await
        .expect_err_contains(
            r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team""#,
        );
    run(alice(&["get", "pods", "-n", "kube-system"]))
        .await
        .expect_err_contains(r#"User "alice" cannot list resource "pods""#);
    // Issued through the CSR API, as asked: approved, signed, two hours.
    let csrs = h.c.get_json(&["csr"]).await.unwrap();
    let csr = csrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("vkube-user-alice-")
        })
        .expect("alice's CertificateSigningRequest");
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client"
    );
    assert_eq!(csr["spec"]["expirationSeconds"], 7200);
    assert!(csr["status"]["certificate"].is_string());

    // `vkube connect --user` runs a command as the user.
    h.vkube(&[
        "connect", "t", "-n", ns, "--user", "bob", "--", "kubectl", "auth", "whoami",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["bob"]);
    // A certificate names one group here.
    h.vkube(&[
        "kubeconfig",
        "t",
        "-n",
        ns,
        "--user",
        "carol",
        "--group",
        "a",
        "--group",
        "b",
    ])
    .await
    .expect_err_contains("one group");
    // The CSR API refuses the privileged group, as kube's
    // CertificateSubjectRestriction admission does.
    h.vkube(&[
        "kubeconfig", "t", "-n", ns, "--user", "eve", "--group", "system:masters",
    ])
    .await
    .expect_err_contains("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed");
    h.vkube(&["kubeconfig", "t", "-n", ns, "--user", "dave", "--ttl", "1m"])
        .await
        .expect_err_contains("shorter than 10m");
    h.c.shutdown().await;
}
