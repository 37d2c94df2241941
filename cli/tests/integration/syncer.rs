//! `vkube syncer` as a child process between two real API servers (the host
//! one with the node simulator playing kubelets): it creates the host
//! namespace, syncs a pod, and serves Prometheus metrics on /metrics with
//! the reconcile counters of every synced kind.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

/// `GET /metrics` over a plain TCP connection (HTTP/1.0: the server closes
/// when done); the body, or the error.
async fn get_metrics(addr: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_string());
    }
    if !head
        .to_ascii_lowercase()
        .contains("content-type: text/plain; version=0.0.4")
    {
        return Err(format!("content type: {head}"));
    }
    Ok(body.to_string())
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

    let text = poll("/metrics with pod reconciles", || async {
        let body = get_metrics(&metrics_addr).await?;
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
    host.shutdown().await;
    virt.shutdown().await;
}
