//! `vkube server` as the chart runs it, against a real host API server
//! (an e2e `TestCluster` standing in for the host cluster): it publishes the
//! admin kubeconfig in the host Secret, owned by `--host-owner`, and that
//! kubeconfig works with real kubectl; SIGTERM stops it with status 0.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use vkube_e2e::TestCluster;

const STS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vkube-t1, namespace: tenants}
spec:
  serviceName: vkube-t1
  replicas: 0
  selector: {matchLabels: {app: t1}}
  template:
    metadata: {labels: {app: t1}}
    spec: {containers: [{name: vkube, image: vkube:dev}]}
---
apiVersion: v1
kind: Service
metadata: {name: vkube-t1, namespace: tenants}
spec:
  selector: {app: t1}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: vkube-t1-dns, namespace: tenants}
spec:
  selector: {app: t1}
  ports:
  - {name: dns-udp, port: 53, protocol: UDP, targetPort: 1053}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 1053}
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: default}
spec:
  containers: [{name: app, image: busybox}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_publishes_its_kubeconfig_secret_owned_by_the_statefulset() {
    let host = TestCluster::start().await;
    host.kubectl(&["create", "namespace", "tenants"])
        .await
        .expect_ok();
    host.kubectl_stdin(&["apply", "-f", "-"], STS)
        .await
        .expect_ok();
    let sts_uid = host
        .kubectl(&[
            "get",
            "sts",
            "vkube-t1",
            "-n",
            "tenants",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await
        .expect_ok()
        .stdout;

    let data = tempfile::tempdir().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("https://{addr}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args(["server", "--name", "t1", "--listen", &addr.to_string()])
        .args([
            "--dns-service",
            "vkube-t1-dns",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--host-owner",
            "statefulset/vkube-t1",
            "--kubeconfig-server",
            &url,
            "--metrics-token-secret",
            "vkube-t1-metrics",
        ])
        .arg("--host-kubeconfig")
        .arg(host.kubeconfig_path())
        .arg("--data-dir")
        .arg(data.path())
        .env("POD_NAMESPACE", "tenants")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting vkube server");
    // Its log, read while it runs (a full pipe would stall it).
    let mut stderr = child.stderr.take().expect("piped stderr");
    let log = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut buf).await;
        buf
    });

    // Poll for the Secret (generous bound; not a timing assertion).
    let deadline = Instant::now() + Duration::from_secs(120);
    let secret = loop {
        let out = host
            .kubectl(&[
                "get",
                "secret",
                "vkube-t1-kubeconfig",
                "-n",
                "tenants",
                "-o",
                "json",
            ])
            .await;
        if out.success() {
            break out.json();
        }
        assert!(Instant::now() < deadline, "no kubeconfig Secret: {out}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "vkube server exited early"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "StatefulSet");
    assert_eq!(owner["name"], "vkube-t1");
    assert_eq!(owner["uid"], sts_uid.as_str());
    assert_eq!(
        secret["metadata"]["labels"]["vkube.dev/virtual-cluster"],
        "t1"
    );

    use base64::Engine;
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["config"].as_str().expect("key config"))
        .unwrap();
    let config = String::from_utf8(config).unwrap();
    assert!(config.contains(&format!("server: {url}")), "{config}");
    let kubeconfig = host.write_file("t1.kubeconfig", &config);

    // The published kubeconfig reaches the virtual cluster, not the host.
    let kubectl = vkube_e2e::find_tool("KUBECTL", "kubectl").unwrap();
    let out = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "namespaces", "-o", "name"])
        .env("HOME", &host.work_dir)
        .output()
        .await
        .unwrap();
    let namespaces = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(namespaces.contains("namespace/default"), "{namespaces}");
    assert!(!namespaces.contains("namespace/tenants"), "{namespaces}");

    // One `/metrics` serves the server's, the controllers' and the
    // syncer's series, counting what the tenant's kubectl did.
    let (_, scrape) = super::metrics::assert_counts_requests(&kubeconfig).await;
    super::metrics::assert_workqueues(&scrape, true);
    assert!(
        scrape
            .text
            .contains("\n# TYPE vkube_syncer_reconciles_total counter\n")
    );

    // Readiness covers the components beside the server; liveness not.
    let readyz =
        super::metrics::kubectl_output(&kubeconfig, &["get", "--raw", "/readyz?verbose"], "").await;
    let readyz = String::from_utf8_lossy(&readyz.stdout).into_owned();
    for line in [
        "[+]etcd ok",
        "[+]controllers ok",
        "[+]syncer ok",
        "readyz check passed",
    ] {
        assert!(readyz.contains(line), "{line} missing in {readyz}");
    }
    let livez =
        super::metrics::kubectl_output(&kubeconfig, &["get", "--raw", "/livez?verbose"], "").await;
    assert!(!String::from_utf8_lossy(&livez.stdout).contains("syncer"));

    // A host Prometheus scrapes with the published token, verifying the
    // server with the published CA; the token reads nothing else.
    let metrics_secret = host
        .kubectl(&[
            "get",
            "secret",
            "vkube-t1-metrics",
            "-n",
            "tenants",
            "-o",
            "json",
        ])
        .await
        .expect_ok()
        .json();
    assert_eq!(
        metrics_secret["metadata"]["ownerReferences"][0]["uid"],
        sts_uid.as_str()
    );
    let field = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(metrics_secret["data"][k].as_str().expect(k))
                .unwrap(),
        )
        .unwrap()
    };
    let ca = host.write_file("metrics-ca.crt", &field("ca.crt"));
    let scraper = host.write_file(
        "scraper.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"https://{addr}\", certificate-authority: {}, tls-server-name: localhost}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: s}}}}]\nusers: [{{name: s, user: {{token: {}}}}}]\ncurrent-context: c\n",
            ca.display(),
            field("token")
        ),
    );
    let scraped = super::metrics::Scrape::take(&scraper, &[])
        .await
        .expect("the token scrapes");
    assert!(scraped.counter("apiserver_request_total", &[("resource", "podtemplates")]) >= 5.0);
    let pods = super::metrics::kubectl_output(&scraper, &["get", "pods", "-A"], "").await;
    assert!(
        String::from_utf8_lossy(&pods.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&pods.stderr)
    );

    // Tenant pods reach this server at its host Service's ClusterIP (the
    // tenant's `kubernetes` Service shows it too) and resolve through the
    // tenant DNS behind vkube-t1-dns.
    let host_ip = |svc: &'static str| {
        let host = &host;
        async move {
            host.kubectl(&[
                "get",
                "svc",
                svc,
                "-n",
                "tenants",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ])
            .await
            .expect_ok()
            .stdout
        }
    };
    let api_ip = host_ip("vkube-t1").await;
    let dns_ip = host_ip("vkube-t1-dns").await;
    let tenant = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&kubectl);
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env("HOME", &host.work_dir);
        cmd
    };
    let out = tenant(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), api_ip);
    let mut apply = tenant(&["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut apply.stdin.take().unwrap(), POD.as_bytes()).unwrap();
    assert!(apply.wait().unwrap().success());
    let host_pod = vkube_e2e::synced::eventually("the host pod", Duration::from_secs(120), || {
        host.get_json(&["pod", "app-x-default-x-t1", "-n", "tenants"])
    })
    .await;
    let spec = &host_pod["spec"];
    assert_eq!(spec["dnsPolicy"], "None", "{spec}");
    assert_eq!(
        spec["dnsConfig"]["nameservers"][0],
        dns_ip.as_str(),
        "{spec}"
    );
    let env = spec["containers"][0]["env"].as_array().unwrap();
    let host_var = env
        .iter()
        .find(|e| e["name"] == "KUBERNETES_SERVICE_HOST")
        .expect("KUBERNETES_SERVICE_HOST");
    assert_eq!(host_var["value"], api_ip.as_str(), "{spec}");

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("vkube server did not stop after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // Logs to a pipe are plain text: no ANSI colour codes.
    let log = log.await.unwrap();
    assert!(!log.is_empty(), "vkube server logged nothing");
    assert!(
        !log.contains(&0x1b),
        "escape codes in the log: {}",
        String::from_utf8_lossy(&log)
    );
    host.shutdown().await;
}
