//! `vkube syncer` as a child process between two real API servers (the host
//! one with the node simulator playing kubelets): it creates the host
//! namespace, syncs a pod, and serves Prometheus metrics on /metrics with
//! the reconcile counters of every synced kind, over HTTPS to the users the
//! virtual API server authenticates and authorizes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

/// What an HTTPS `GET` answered: the status code, content type and body.
struct Answer {
    code: String,
    content_type: String,
    body: String,
}

/// `GET https://addr{path}` with curl (the self-signed certificate not
/// verified), with `token` as the bearer token when given.
async fn get(addr: &str, path: &str, token: Option<&str>) -> Answer {
    let mut curl = Command::new("curl");
    curl.args(["-sk", "-w", "\n%{http_code}\n%{content_type}"]);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = curl
        .arg(format!("https://{addr}{path}"))
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.rsplitn(3, '\n');
    let content_type = parts.next().unwrap_or_default().to_string();
    let code = parts.next().unwrap_or_default().to_string();
    let body = parts.next().unwrap_or_default().to_string();
    Answer {
        code,
        content_type,
        body,
    }
}

/// `GET /metrics` as `token`'s user: the body, or what was answered.
async fn get_metrics(addr: &str, token: &str) -> Result<String, String> {
    let a = get(addr, "/metrics", Some(token)).await;
    if a.code != "200" {
        return Err(format!("{}: {}", a.code, a.body));
    }
    if !a.content_type.starts_with("text/plain; version=0.0.4") {
        return Err(format!("content type: {}", a.content_type));
    }
    Ok(a.body)
}

/// A token of a new service account `name` in the virtual cluster.
async fn service_account_token(virt: &TestCluster, name: &str) -> String {
    virt.kubectl(&["create", "serviceaccount", name])
        .await
        .expect_ok();
    let out = virt.kubectl(&["create", "token", name]).await.expect_ok();
    out.stdout.trim().to_string()
}

async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vkube_syncer_syncs_a_pod_and_serves_metrics() {
    let host = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let mut virt = TestCluster::start().await;
    virt.run_controllers("*");
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let _child = Command::new(env!("CARGO_BIN_EXE_vkube"))
        .args([
            "syncer",
            "--name",
            "child",
            "--host-namespace",
            "vkube-child",
        ])
        .arg("--virtual-kubeconfig")
        .arg(virt.kubeconfig_path())
        .arg("--host-kubeconfig")
        .arg(host.kubeconfig_path())
        .args(["--metrics-listen", &metrics_addr])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting vkube syncer");

    virt.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hello}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    )
    .await
    .expect_ok();
    let host_pod = vkube_syncer::names::host_name(
        &vkube_syncer::names::Tenant::new("child", "vkube-child").unwrap(),
        "default",
        "hello",
    );
    poll("the host pod in the created host namespace", || async {
        let out = host
            .kubectl(&["get", "pod", &host_pod, "-n", "vkube-child", "-o", "json"])
            .await;
        if out.success() {
            Ok(out.json())
        } else {
            Err(out.stderr)
        }
    })
    .await;
    poll("the virtual pod Running", || async {
        let out = virt
            .kubectl(&["get", "pod", "hello", "-o", "jsonpath={.status.phase}"])
            .await;
        if out.stdout.trim() == "Running" {
            Ok(())
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    })
    .await;

    // Prometheus' service account, bound to system:monitoring as a platform
    // team would; another account without it.
    let scraper = service_account_token(&virt, "prometheus").await;
    virt.kubectl(&[
        "create",
        "clusterrolebinding",
        "prometheus",
        "--clusterrole=system:monitoring",
        "--serviceaccount=default:prometheus",
    ])
    .await
    .expect_ok();
    let stranger = service_account_token(&virt, "stranger").await;

    let text = poll("/metrics with pod reconciles", || async {
        let body = get_metrics(&metrics_addr, &scraper).await?;
        if body.contains("vkube_syncer_reconciles_total{kind=\"Pod\"}")
            && body.contains("vkube_syncer_sync_latency_seconds_bucket{kind=\"Pod\"")
        {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await;
    for series in [
        "# TYPE vkube_syncer_reconciles_total counter",
        "workqueue_depth{name=\"syncer_service\"}",
        "workqueue_depth{name=\"syncer_event\"}",
        "workqueue_depth{name=\"syncer_endpoints\"}",
        "workqueue_adds_total{name=\"syncer_pod\"}",
        "# TYPE vkube_syncer_sync_latency_seconds histogram",
        "# TYPE process_cpu_seconds_total counter",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }

    // kube-apiserver's answers: no or an unknown token is 401, a user
    // without the role 403, each with a Status body.
    let status = |a: &Answer| -> serde_json::Value {
        serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body))
    };
    for token in [None, Some("not-a-token"), Some("")] {
        let a = get(&metrics_addr, "/metrics", token).await;
        assert_eq!(a.code, "401", "token {token:?}: {}", a.body);
        let s = status(&a);
        assert_eq!(
            (&s["kind"], &s["reason"]),
            (&"Status".into(), &"Unauthorized".into()),
            "{s}"
        );
    }
    let a = get(&metrics_addr, "/metrics", Some(&stranger)).await;
    assert_eq!(a.code, "403", "{}", a.body);
    assert_eq!(
        status(&a)["message"],
        "forbidden: User \"system:serviceaccount:default:stranger\" cannot get path \"/metrics\"",
    );
    // Health needs no token; a probe reads it.
    for path in ["/healthz", "/livez", "/readyz"] {
        let a = get(&metrics_addr, path, None).await;
        assert_eq!((a.code.as_str(), a.body.as_str()), ("200", "ok"), "{path}");
    }
    host.shutdown().await;
    virt.shutdown().await;
}
