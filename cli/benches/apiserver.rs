//! Benchmark of `vkube apiserver`: prints figures, asserts nothing about time.
//!
//! Run: `cargo bench -p vkube --bench apiserver`. It starts the real binary as
//! a child process on loopback and reports
//! * start-up time to the first authenticated response (fresh and existing data dir),
//! * idle RSS after start and after the load,
//! * create / get / list throughput and p50/p99 latency with 1 and 16 clients,
//! * watch delivery latency (create call start → event received),
//! * the RSS 100 CustomResourceDefinitions add to a fresh server, once
//!   established, discovered and listed in OpenAPI.
//!
//! Machines here are noisy: compare figures from one run, not across runs.

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// User + system CPU time of a process, from /proc/PID/stat (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn cm(name: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some([("bench".to_string(), "yes".to_string())].into()),
            ..Default::default()
        },
        data: Some([("key".to_string(), "value".to_string())].into()),
        ..Default::default()
    }
}

async fn startup(binary: &Path, dir: &Path) -> Duration {
    let t0 = Instant::now();
    let server = support::start_apiserver(binary, dir).await;
    let client = support::client(&server.kubeconfig).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    loop {
        if cms.list(&ListParams::default().limit(1)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t0.elapsed();
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    elapsed
}

/// Runs `total` operations over `clients` concurrent tasks; returns (ops/s, sorted latencies).
async fn run<F, Fut>(clients: usize, total: usize, op: F) -> (f64, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let s = Instant::now();
                op(i).await;
                lat.push(s.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    all.sort();
    (total as f64 / secs, all)
}

/// Prints one phase; `server_cpu` is the server's CPU time spent during it.
fn report(what: &str, clients: usize, (ops, lat): (f64, Vec<Duration>), server_cpu: Duration) {
    let per_op_us = server_cpu.as_secs_f64() * 1e6 / lat.len().max(1) as f64;
    println!(
        "{what:<8} clients={clients:<3} {ops:>9.0} ops/s   p50 {:>10}   p99 {:>10}   server CPU {per_op_us:>6.0} us/op",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99))
    );
}

/// Runs a phase and reports it with the server's CPU time.
async fn phase<F, Fut>(pid: u32, what: &str, clients: usize, total: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let cpu0 = cpu_time(pid);
    let result = run(clients, total, op).await;
    report(what, clients, result, cpu_time(pid) - cpu0);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_vkube"));
    println!("# vkube apiserver benchmark (loopback, child process)");

    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        fresh.push(startup(binary, dir.path()).await);
        warm.push(startup(binary, dir.path()).await);
    }
    fresh.sort();
    warm.sort();
    println!(
        "startup to first authenticated response: fresh data dir median {} (min {}), existing data dir median {} (min {})",
        ms(fresh[2]),
        ms(fresh[0]),
        ms(warm[2]),
        ms(warm[0])
    );

    let dir = tempfile::tempdir().unwrap();
    let server = support::start_apiserver(binary, dir.path()).await;
    let pid = server.child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("idle RSS after start: {} KiB", vkube_e2e::rss_kib(pid));

    let client = support::client(&server.kubeconfig).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    for clients in [1usize, 16] {
        let total = if clients == 1 { 1000 } else { 4000 };
        let api = cms.clone();
        let prefix = format!("c{clients}");
        phase(pid, "create", clients, total, move |i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                api.create(&PostParams::default(), &cm(name)).await.unwrap();
            }
        })
        .await;
        let api = cms.clone();
        let prefix = format!("c{clients}");
        phase(pid, "get", clients, total, move |i| {
            let api = api.clone();
            let name = format!("{prefix}-{}", i % 1000);
            async move {
                api.get(&name).await.unwrap();
            }
        })
        .await;
    }
    let api = cms.clone();
    phase(pid, "list100", 1, 200, move |_| {
        let api = api.clone();
        async move {
            let l = api.list(&ListParams::default().limit(100)).await.unwrap();
            assert_eq!(l.items.len(), 100);
        }
    })
    .await;
    let api = cms.clone();
    phase(pid, "list100", 16, 800, move |_| {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().limit(100)).await.unwrap();
        }
    })
    .await;

    // Watch delivery: time from the start of a create call to its ADDED event.
    let watch_api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let rv = watch_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = watch_api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut lat = Vec::new();
    for i in 0..300 {
        let t0 = Instant::now();
        watch_api
            .create(&PostParams::default(), &cm(format!("w-{i}")))
            .await
            .unwrap();
        loop {
            match stream.next().await {
                Some(Ok(WatchEvent::Added(o)))
                    if o.metadata.name.as_deref() == Some(&format!("w-{i}")) =>
                {
                    lat.push(t0.elapsed());
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("watch ended: {other:?}"),
            }
        }
    }
    lat.sort();
    println!(
        "watch delivery (create start -> ADDED received), 300 events: p50 {}   p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "RSS after load ({} objects): {} KiB",
        1000 + 4000 + 300,
        vkube_e2e::rss_kib(pid)
    );
    crd_cost(binary).await;
}

/// A small CRD like most operators ship: one version, a structural schema
/// with a default and a pattern, status, a printer column.
fn crd(i: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("things{i}.example{i}.com")},
        "spec": {
            "group": format!("example{i}.com"),
            "scope": "Namespaced",
            "names": {"plural": format!("things{i}"), "kind": format!("Thing{i}"), "shortNames": [format!("th{i}")]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 0, "default": 1},
                        "name": {"type": "string", "pattern": "^[a-z]+$"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    }},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                }}},
            }],
        },
    })
}

/// The RSS a fresh server gains from 100 established CRDs (created,
/// then discovered and listed in OpenAPI as kubectl would).
async fn crd_cost(binary: &Path) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_apiserver(binary, dir.path()).await;
    let pid = server.child.id().unwrap();
    let client = support::client(&server.kubeconfig).await;
    // Settle what the first discovery and OpenAPI requests build once.
    kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    client
        .request_text(http::Request::get("/openapi/v3").body(Vec::new()).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = vkube_e2e::rss_kib(pid);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for i in 0..100 {
        let crd: CustomResourceDefinition = serde_json::from_value(crd(i)).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let discovered = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(discovered.has_group("example99.com"));
    client
        .request_text(http::Request::get("/openapi/v3").body(Vec::new()).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = vkube_e2e::rss_kib(pid);
    println!(
        "100 CRDs: RSS {before} -> {after} KiB, {} KiB per established CRD",
        after.saturating_sub(before) / 100
    );
}
