//! Benchmark of the built-in controllers in `vkube apiserver`: prints
//! figures, asserts nothing about time.
//!
//! Run: `cargo bench -p vkube --bench controllers`. It starts the real binary
//! (controllers on, no node, so pods stay Pending) and reports
//! * the time from creating a Deployment with `replicas: N` (the object
//!   `kubectl create deployment --replicas=N` sends) to N pods existing, for
//!   N = 100 and 1,000, seen through a pod watch;
//! * CPU time over 10 s and RSS at idle with those objects (about 1,100
//!   pods), next to the same figures for a server started with
//!   `--controllers=` holding as many directly created pods: the difference
//!   is the controllers' cost.
//!
//! Machines here are noisy: compare figures from one run, not across runs.

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// User + system CPU time of a process (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
            },
        },
    }))
    .unwrap()
}

/// Creates a Deployment of `n` replicas and returns the time until `n` of
/// its pods exist.
async fn time_to_pods(client: &kube::Client, name: &str, n: usize) -> Duration {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cfg = watcher::Config::default().labels(&format!("app={name}"));
    let mut stream = std::pin::pin!(watcher(pods, cfg));
    // Wait for the watch to be established before starting the clock.
    while let Some(ev) = stream.next().await {
        if matches!(ev, Ok(watcher::Event::InitDone)) {
            break;
        }
    }
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    deploys
        .create(&PostParams::default(), &deployment(name, n as i32))
        .await
        .unwrap();
    let mut seen = HashSet::new();
    while seen.len() < n {
        match tokio::time::timeout(Duration::from_secs(120), stream.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(p)))) => {
                seen.insert(p.metadata.uid.unwrap_or_default());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("only {} of {n} pods appeared", seen.len()),
        }
    }
    start.elapsed()
}

async fn idle_figures(pid: u32) -> (Duration, u64) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    (cpu_time(pid) - before, vkube_e2e::rss_kib(pid))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_vkube"));
    println!("# vkube controllers benchmark (loopback, child process, no node)");

    let dir = tempfile::tempdir().unwrap();
    let server = support::start_apiserver(binary, dir.path()).await;
    let pid = server.child.id().unwrap();
    let client = support::client(&server.kubeconfig).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, rss0) = idle_figures(pid).await;
    println!(
        "apiserver + controllers, empty cluster, idle: CPU {:.0} ms per 10 s, RSS {rss0} KiB",
        cpu0.as_secs_f64() * 1e3
    );
    for n in [100usize, 1000] {
        let t = time_to_pods(&client, &format!("bench-{n}"), n).await;
        println!(
            "create deployment --replicas={n} → {n} pods exist: {:.3} s ({:.0} pods/s)",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
    }
    let (cpu, rss) = idle_figures(pid).await;
    println!(
        "apiserver + controllers, 2 deployments / 2 replicasets / 1,100 pods, idle: CPU {:.0} ms per 10 s, RSS {rss} KiB",
        cpu.as_secs_f64() * 1e3
    );
    drop(server);

    // Baseline: the same number of pods in a server without controllers.
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(binary)
        .args(["apiserver", "--controllers="])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("VKUBE_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "baseline server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base_pid = child.id().unwrap();
    let client = support::client(&kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let template: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"generateName": "base-", "labels": {"app": "base"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
    }))
    .unwrap();
    let pp = PostParams::default();
    for _ in 0..(1100 / 50) {
        futures::future::join_all((0..50).map(|_| pods.create(&pp, &template))).await;
    }
    let (cpu_b, rss_b) = idle_figures(base_pid).await;
    println!(
        "apiserver without controllers, 1,100 pods, idle: CPU {:.0} ms per 10 s, RSS {rss_b} KiB",
        cpu_b.as_secs_f64() * 1e3
    );
    println!(
        "controllers' share at idle with ~1,100 objects: CPU {:+.0} ms per 10 s, RSS {:+} KiB",
        (cpu.as_secs_f64() - cpu_b.as_secs_f64()) * 1e3,
        rss as i64 - rss_b as i64
    );
    let _ = child.kill().await;
}
