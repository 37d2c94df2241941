//! Benchmark of the syncer: prints figures, asserts nothing about time.
//!
//! Run: `cargo bench -p vkube-syncer --bench syncer` (`BENCH_BURST=10000`
//! for a bigger burst). Two API servers (host and virtual) run in-process;
//! the syncer runs in a child process (this binary re-executed with
//! `--syncer-child`) so its RSS is its own. Reported:
//! * virtual pod create → host pod ADDED on a host watch, p50/p99, one pod
//!   at a time, next to the same for a pod created directly on the host;
//! * a burst of N pods (16 concurrent creators): time until all N host
//!   pods exist, vs creating N pods directly on the host (ratio);
//! * status reflection: host pod status written → virtual pod shows it;
//! * syncer RSS per synced pod ((RSS with N more pods − RSS before) / N).
//!
//! Machines here are noisy: compare figures from one run, not across runs.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use vkube_syncer::names::{Tenant, host_name};
use vkube_syncer::{Syncer, SyncerConfig};

const HOST_NS: &str = "vkube-bench";
const TENANT: &str = "bench";

async fn client(yaml: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    Client::try_from(config).expect("client")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }))
    .expect("pod")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Runs only the syncer, from two kubeconfig files (the child process).
async fn syncer_child(virtual_kubeconfig: &str, host_kubeconfig: &str) {
    let v = client(&std::fs::read_to_string(virtual_kubeconfig).expect("read")).await;
    let h = client(&std::fs::read_to_string(host_kubeconfig).expect("read")).await;
    let config = SyncerConfig::new(Tenant::new(TENANT, HOST_NS).expect("tenant"));
    if let Err(e) = Syncer::new(v, h, config).run().await {
        eprintln!("syncer failed: {e:#}");
        std::process::exit(1);
    }
}

/// Waits until `n` pods whose name is in `names` were ADDED on `api`'s
/// watch (started before `start()` runs); returns per-name arrival instants.
async fn watch_added(api: Api<Pod>, rv: String, n: usize) -> Vec<(String, Instant)> {
    let mut seen = Vec::with_capacity(n);
    let mut rv = rv;
    while seen.len() < n {
        let wp = WatchParams::default().timeout(290);
        let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
        while let Some(ev) = stream.try_next().await.expect("watch event") {
            match ev {
                WatchEvent::Added(p) => {
                    rv = p.resource_version().unwrap_or_default();
                    seen.push((p.name_any(), Instant::now()));
                    if seen.len() >= n {
                        return seen;
                    }
                }
                WatchEvent::Modified(p) | WatchEvent::Deleted(p) => {
                    rv = p.resource_version().unwrap_or_default();
                }
                _ => {}
            }
        }
    }
    seen
}

async fn current_rv(api: &Api<Pod>) -> String {
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default()
}

/// One pod at a time: create with `create_api`, wait for ADDED on `watch_api`.
async fn one_by_one(
    create_api: &Api<Pod>,
    watch_api: &Api<Pod>,
    prefix: &str,
    n: usize,
    host_names: Option<&Tenant>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let rv = current_rv(watch_api).await;
        let waiter = tokio::spawn(watch_added(watch_api.clone(), rv, 1));
        tokio::time::sleep(Duration::from_millis(20)).await; // the watch is open
        let t0 = Instant::now();
        create_api
            .create(&PostParams::default(), &pod(&name))
            .await
            .expect("create");
        let got = waiter.await.expect("watch task");
        let want = match host_names {
            Some(t) => host_name(t, "default", &name),
            None => name.clone(),
        };
        assert_eq!(got[0].0, want);
        out.push(got[0].1 - t0);
    }
    out.sort();
    out
}

async fn burst(create_api: &Api<Pod>, watch_api: &Api<Pod>, prefix: &str, n: usize) -> Duration {
    let rv = current_rv(watch_api).await;
    let waiter = tokio::spawn(watch_added(watch_api.clone(), rv, n));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = create_api.clone();
            let name = format!("{prefix}{i}");
            async move {
                api.create(&PostParams::default(), &pod(&name))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("burst create");
    let got = waiter.await.expect("watch task");
    got.iter().map(|(_, t)| *t).max().unwrap_or(t0) - t0
}

fn spawn_syncer(
    virt: &apiserver_shim::Server,
    host: &apiserver_shim::Server,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--syncer-child")
        .arg(&virt.kubeconfig_path)
        .arg(&host.kubeconfig_path)
        .spawn()
        .expect("spawning the syncer")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--syncer-child") {
        syncer_child(&args[i + 1], &args[i + 2]).await;
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` probing: nothing to list
    }
    let burst_n: usize = std::env::var("BENCH_BURST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let host =
        apiserver_shim::Server::start(apiserver_shim::ServerConfig::new(dir.path().join("host")))
            .await
            .expect("host server");
    let virt = apiserver_shim::Server::start(apiserver_shim::ServerConfig::new(
        dir.path().join("virtual"),
    ))
    .await
    .expect("virtual server");
    let hc = client(&host.kubeconfig).await;
    let vc = client(&virt.kubeconfig).await;
    // A namespace for the direct-creation baseline.
    Api::<Namespace>::all(hc.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "direct"}})).unwrap(),
        )
        .await
        .expect("namespace");

    let mut child = spawn_syncer(&virt, &host);
    let pid = child.id();
    let host_pods: Api<Pod> = Api::namespaced(hc.clone(), HOST_NS);
    let direct: Api<Pod> = Api::namespaced(hc.clone(), "direct");
    let vpods: Api<Pod> = Api::namespaced(vc.clone(), "default");
    let tenant = Tenant::new(TENANT, HOST_NS).expect("tenant");
    // Ready once the syncer syncs a first pod.
    vpods
        .create(&PostParams::default(), &pod("warmup"))
        .await
        .expect("warmup");
    let hn = host_name(&tenant, "default", "warmup");
    let t = Instant::now();
    while host_pods.get_opt(&hn).await.ok().flatten().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the syncer never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle = rss_kib(pid);
    println!("syncer RSS with 1 pod: {rss_idle} KiB");

    let n = 100;
    let via = one_by_one(&vpods, &host_pods, "light", n, Some(&tenant)).await;
    let dir_lat = one_by_one(&direct, &direct, "light", n, None).await;
    println!("light load, {n} pods one at a time (create call start -> host watch ADDED):");
    println!(
        "  via syncer: p50 {} p99 {}",
        ms(percentile(&via, 0.5)),
        ms(percentile(&via, 0.99))
    );
    println!(
        "  direct:     p50 {} p99 {}",
        ms(percentile(&dir_lat, 0.5)),
        ms(percentile(&dir_lat, 0.99))
    );
    println!(
        "  added by the syncer: p50 {}",
        ms(percentile(&via, 0.5).saturating_sub(percentile(&dir_lat, 0.5)))
    );

    // Status reflection: write host status, wait for the virtual pod.
    let mut refl = Vec::new();
    for i in 0..50 {
        let name = format!("light{i}");
        let ip = format!("10.9.{}.{}", i / 200, i % 200 + 1);
        let patch = serde_json::json!({"status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.0.9"}});
        let t0 = Instant::now();
        host_pods
            .patch_status(
                &host_name(&tenant, "default", &name),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("host status");
        loop {
            let v = vpods.get(&name).await.expect("virtual pod");
            if v.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip.as_str()) {
                refl.push(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "status never reflected"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    refl.sort();
    println!(
        "status reflection (host status write -> virtual GET shows it, 1 ms polling): p50 {} p99 {}",
        ms(percentile(&refl, 0.5)),
        ms(percentile(&refl, 0.99))
    );

    let rss_before = rss_kib(pid);
    let via = burst(&vpods, &host_pods, "burst", burst_n).await;
    let dir_t = burst(&direct, &direct, "burst", burst_n).await;
    println!("burst of {burst_n} pods, 16 concurrent creators (first create -> last host ADDED):");
    println!(
        "  via syncer: {:.3} s ({:.0} pods/s)",
        via.as_secs_f64(),
        burst_n as f64 / via.as_secs_f64()
    );
    println!(
        "  direct:     {:.3} s ({:.0} pods/s)",
        dir_t.as_secs_f64(),
        burst_n as f64 / dir_t.as_secs_f64()
    );
    println!(
        "  throughput via syncer / direct: {:.0} %",
        100.0 * dir_t.as_secs_f64() / via.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib(pid);
    println!(
        "syncer RSS: {rss_before} KiB before the burst, {rss_after} KiB after; {:.2} KiB per synced pod",
        (rss_after.saturating_sub(rss_before)) as f64 / burst_n as f64
    );
    // Catch-up: N virtual pods created while the syncer is down, then the
    // syncer starts; the virtual server is idle meanwhile, so this compares
    // the syncer's own throughput with direct creation on the same host.
    let _ = child.kill();
    let _ = child.wait();
    futures::stream::iter(0..burst_n)
        .map(|i| {
            let api = vpods.clone();
            async move {
                api.create(&PostParams::default(), &pod(&format!("catchup{i}")))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("catch-up create");
    let rv = current_rv(&host_pods).await;
    let waiter = tokio::spawn(watch_added(host_pods.clone(), rv, burst_n));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let mut child = spawn_syncer(&virt, &host);
    let got = waiter.await.expect("watch task");
    let catchup = got.iter().map(|(_, t)| *t).max().unwrap_or(t0) - t0;
    println!(
        "catch-up: {burst_n} pending virtual pods synced by a starting syncer in {:.3} s ({:.0} pods/s); vs direct creation: {:.0} %",
        catchup.as_secs_f64(),
        burst_n as f64 / catchup.as_secs_f64(),
        100.0 * dir_t.as_secs_f64() / catchup.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = vpods
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .items
        .len();
    let rss = rss_kib(child.id());
    println!(
        "fresh syncer holding {total} synced pods: RSS {rss} KiB, {:.2} KiB per pod all-in (incl. the ~17 MiB base)",
        rss as f64 / total as f64
    );
    let _ = child.kill();
    let _ = child.wait();
    virt.shutdown().await;
    host.shutdown().await;
}
