//! Benchmark of the syncer: prints figures, asserts nothing about time.
//!
//! Run: `cargo bench -p vkube --bench syncer` (`SYNCER_BENCH_BURSTS=1000`
//! for only the smaller burst, `SYNCER_BENCH_ARGS=--token-secrets` for more
//! `vkube syncer` flags; the syncer child inherits the environment, so e.g.
//! `MALLOC_ARENA_MAX=2` applies to it). Two in-process API servers
//! (`vkube_e2e::TestCluster`): the HOST with every default controller and
//! the node simulator playing scheduler and kubelets, the VIRTUAL one with
//! its controllers; between them the real `vkube syncer` binary as a child
//! process, so its RSS is its own. Reported:
//! * virtual pod create → host pod seen (host watch), p50/p99 over 200
//!   creates at light load (one every 50 ms) and over 200 back-to-back
//!   creates (the next one as soon as the previous pod is seen on the host),
//!   next to the same for pods created directly on the host (the difference
//!   is what the syncer adds);
//!   and the create call alone on each side (the virtual create's own
//!   duration is a floor of what the syncer adds: it acts on the watch
//!   event of a write that is durable);
//! * bursts of N pods (`SYNCER_BENCH_BURSTS`, default 1,000 then 10,000;
//!   32 concurrent creates): time until all N host pods exist, vs creating
//!   the same N pods directly on the host;
//! * syncer RSS per synced pod: RSS growth of the syncer process over each
//!   burst (once the pods run and their status is reflected), divided by N,
//!   after an untimed warm-up burst of 300 pods on each path;
//! * claims at light load: virtual PersistentVolumeClaim create → host
//!   claim seen (host watch), p50/p99 over 100 creates one every 50 ms;
//! * status reflection: host `status.message` write → visible on the
//!   virtual pod (virtual watch), p50/p99 over 100 pods;
//! * catch-up: N (the first burst size) virtual pods created while the syncer is stopped, then a
//!   fresh syncer started: time until all N exist on the host, and that
//!   syncer's RSS per pod it holds (no burst history in its heap).
//!
//! Why an earlier bench (`syncer/benches/syncer.rs`, now removed) measured
//! ~13 KiB/pod and +1 ms where this one measured 83–100 KiB/pod and
//! +10–16 ms: its pods had `automountServiceAccountToken: false`, its
//! virtual cluster ran no controllers and its host no node simulator. So
//! no pod there got a token (here: a TokenRequest, a live GET of
//! `kube-root-ca.crt` and a host Secret per pod, each Secret body ~2 KiB
//! cached in full), no pod went Running (here: the host pod's status —
//! conditions, container statuses — is cached and reflected into the
//! virtual pod, which then also grows in the virtual cache, plus a binding
//! per pod), and the host API server was not busy scheduling and writing
//! status while the syncer worked, which is where most of the added
//! latency came from. It also read RSS 2 s after the burst rather than
//! once the pods had settled. This bench keeps the realistic setup; its
//! catch-up part comes from the other one.
//!
//! Machines here are noisy: compare figures from one run, not across runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

const HOST_NS: &str = "vkube-bench";
const DIRECT_NS: &str = "direct";
const VC: &str = "bench";

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

/// Names seen by a watch, with the time each was first seen (or first seen
/// satisfying a predicate).
#[derive(Clone, Default)]
struct Seen {
    at: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    task: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

impl Seen {
    /// Watches `api` (filtered by `labels`) recording `key(obj)` for every
    /// object for which it returns `Some`; returns once the watch is ready.
    async fn watch<K>(
        api: Api<K>,
        labels: &str,
        key: impl Fn(&K) -> Option<String> + Send + 'static,
    ) -> Seen
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        let seen = Seen::default();
        let s = seen.clone();
        let ready = Arc::new(Notify::new());
        let r = Arc::clone(&ready);
        let cfg = watcher::Config::default().labels(labels);
        let task = tokio::spawn(async move {
            // Backoff: once the bench shuts the servers down, an erroring
            // watch must sleep (yield) between retries, or the runtime
            // cannot finish shutting down.
            let mut stream = std::pin::pin!(watcher(api, cfg).default_backoff());
            while let Some(ev) = stream.next().await {
                let objs = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
                    Ok(watcher::Event::InitDone) => {
                        r.notify_one();
                        continue;
                    }
                    _ => continue,
                };
                let now = Instant::now();
                for p in objs {
                    if let Some(k) = key(&p) {
                        s.at.lock().unwrap().entry(k).or_insert(now);
                    }
                }
                s.changed.notify_waiters();
            }
        });
        *seen.task.lock().unwrap() = Some(task.abort_handle());
        ready.notified().await;
        seen
    }

    /// Stops the watch (so it adds no load to what is measured next).
    fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    fn get(&self, k: &str) -> Option<Instant> {
        self.at.lock().unwrap().get(k).copied()
    }

    fn len(&self) -> usize {
        self.at.lock().unwrap().len()
    }

    /// Waits until `done(self)` holds (120 s bound, then panics).
    async fn until(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let notified = self.changed.notified();
            if done(self) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

/// The current resourceVersion of the cluster behind `client` (that of an
/// empty-page list): with our API server, the count of writes so far.
async fn revision(client: &kube::Client) -> u64 {
    let lp = kube::api::ListParams::default().limit(1);
    let list = Api::<Namespace>::all(client.clone())
        .list_metadata(&lp)
        .await
        .expect("listing namespaces");
    list.metadata
        .resource_version
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds used so far by this process (both API servers, their
/// controllers, the node simulator, the bench's clients) and by the syncer.
struct Cpu {
    servers: f64,
    syncer: f64,
}

impl Cpu {
    fn now(syncer: u32) -> Cpu {
        Cpu {
            servers: vkube_e2e::cpu_seconds(std::process::id()),
            syncer: vkube_e2e::cpu_seconds(syncer),
        }
    }

    /// What was used since `self`, as "servers X s, syncer Y s".
    fn since(&self, syncer: u32) -> String {
        let now = Cpu::now(syncer);
        format!(
            "API servers and bench {:.2} s, syncer {:.2} s",
            now.servers - self.servers,
            now.syncer - self.syncer
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Creates `names` one after another through `create_api`; returns, sorted,
/// the latency from each create call to `seen` recording `seen_name(name)`,
/// and the duration of each create call itself (request → response).
async fn sequential(
    create_api: &Api<Pod>,
    seen: &Seen,
    names: &[String],
    seen_name: impl Fn(&str) -> String,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut out, mut calls) = (Vec::new(), Vec::new());
    for n in names {
        let start = Instant::now();
        create_api
            .create(&PostParams::default(), &pod(n))
            .await
            .unwrap();
        calls.push(start.elapsed());
        let key = seen_name(n);
        seen.until(&key, |s| s.get(&key).is_some()).await;
        out.push(seen.get(&key).unwrap().saturating_duration_since(start));
    }
    out.sort();
    calls.sort();
    (out, calls)
}

/// Like [`sequential`], but each create starts `every` after the previous
/// one started (an open-loop stream at a fixed, light rate), so the system
/// has finished the previous pod's follow-up work (binding, status, token)
/// when the next create arrives, as at light load on a real cluster.
async fn paced(
    create_api: &Api<Pod>,
    seen: &Seen,
    names: &[String],
    every: Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut out, mut calls) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in names {
        tick.tick().await;
        let (o, c) = sequential(create_api, seen, std::slice::from_ref(n), str::to_string).await;
        out.extend(o);
        calls.extend(c);
    }
    out.sort();
    calls.sort();
    (out, calls)
}

/// Creates `names` with 32 concurrent creates through `api`.
async fn burst(api: &Api<Pod>, names: Vec<String>) {
    futures::stream::iter(names)
        .for_each_concurrent(32, |n| async move {
            api.create(&PostParams::default(), &pod(&n)).await.unwrap();
        })
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bursts: Vec<usize> = std::env::var("SYNCER_BENCH_BURSTS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("SYNCER_BENCH_BURSTS: comma-separated counts")
        })
        .collect();
    let burst_n = bursts[0];
    // More `vkube syncer` flags, e.g. `--token-secrets` to compare the
    // token deliveries.
    let extra_args: Vec<String> = std::env::var("SYNCER_BENCH_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let host = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    let mut virt = TestCluster::start().await;
    virt.run_controllers("*");
    let hc = host.client().await;
    let vc = virt.client().await;
    let ns_api: Api<Namespace> = Api::all(hc.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": DIRECT_NS}})).unwrap();
    ns_api.create(&PostParams::default(), &ns).await.unwrap();

    let spawn_syncer = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vkube"))
            .args(["syncer", "--name", VC, "--host-namespace", HOST_NS])
            .args(extra_args.iter())
            .arg("--virtual-kubeconfig")
            .arg(virt.kubeconfig_path())
            .arg("--host-kubeconfig")
            .arg(host.kubeconfig_path())
            .env("VKUBE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting vkube syncer")
    };
    let mut syncer = spawn_syncer();
    let pid = syncer.id().expect("running");

    let vpods: Api<Pod> = Api::namespaced(vc.clone(), "default");
    let hpods: Api<Pod> = Api::namespaced(hc.clone(), HOST_NS);
    let dpods: Api<Pod> = Api::namespaced(hc.clone(), DIRECT_NS);
    // Host pods by their virtual name (annotation), direct pods by name.
    let host_seen = Seen::watch(
        Api::namespaced(hc.clone(), HOST_NS),
        &format!("vkube.dev/managed-by={VC}"),
        |p: &Pod| {
            p.metadata
                .annotations
                .as_ref()?
                .get("vkube.dev/object-name")
                .cloned()
        },
    )
    .await;
    let direct_seen = Seen::watch(dpods.clone(), "app=bench", |p: &Pod| {
        p.metadata.name.clone()
    })
    .await;

    // Warm up (syncer caches ready, host namespace created).
    let warm: Vec<String> = (0..5).map(|i| format!("warm-{i}")).collect();
    sequential(&vpods, &host_seen, &warm, str::to_string).await;
    sequential(&dpods, &direct_seen, &warm, str::to_string).await;

    let light: Vec<String> = (0..200).map(|i| format!("light-{i}")).collect();
    let paced_names: Vec<String> = (0..200).map(|i| format!("paced-{i}")).collect();
    let every = Duration::from_millis(50);
    let (p_syncer, p_virtual_calls) = paced(&vpods, &host_seen, &paced_names, every).await;
    let (p_direct, p_direct_calls) = paced(&dpods, &direct_seen, &paced_names, every).await;
    let (via_syncer, virtual_calls) = sequential(&vpods, &host_seen, &light, str::to_string).await;
    let (direct, direct_calls) = sequential(&dpods, &direct_seen, &light, str::to_string).await;
    let report =
        |what: &str, via_syncer: &[Duration], direct: &[Duration], calls: [&[Duration]; 2]| {
            println!("{what}, create call → host pod seen by a watch:");
            println!(
                "  through the syncer: p50 {}  p99 {}",
                ms(percentile(via_syncer, 0.5)),
                ms(percentile(via_syncer, 0.99))
            );
            println!(
                "  directly on host:   p50 {}  p99 {}",
                ms(percentile(direct, 0.5)),
                ms(percentile(direct, 0.99))
            );
            println!(
                "  added by the syncer: p50 {}",
                ms(percentile(via_syncer, 0.5).saturating_sub(percentile(direct, 0.5)))
            );
            println!(
                "  the create call alone (request → response): virtual p50 {}, host p50 {}",
                ms(percentile(calls[0], 0.5)),
                ms(percentile(calls[1], 0.5))
            );
        };
    report(
        "light load, 200 pod creates one every 50 ms (20/s)",
        &p_syncer,
        &p_direct,
        [&p_virtual_calls, &p_direct_calls],
    );
    report(
        "200 back-to-back pod creates (each right after the previous pod is seen on the host, while its follow-up work runs)",
        &via_syncer,
        &direct,
        [&virtual_calls, &direct_calls],
    );

    // Claims at light load: virtual create → host claim seen.
    let hclaims: Api<PersistentVolumeClaim> = Api::namespaced(hc.clone(), HOST_NS);
    let vclaims: Api<PersistentVolumeClaim> = Api::namespaced(vc.clone(), "default");
    let claims_seen = Seen::watch(
        hclaims,
        &format!("vkube.dev/managed-by={VC}"),
        |c: &PersistentVolumeClaim| {
            c.metadata
                .annotations
                .as_ref()?
                .get("vkube.dev/object-name")
                .cloned()
        },
    )
    .await;
    let mut claim_lat = Vec::new();
    for i in 0..100 {
        let name = format!("claim-{i}");
        let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}},
        }))
        .unwrap();
        let start = Instant::now();
        vclaims
            .create(&PostParams::default(), &claim)
            .await
            .unwrap();
        claims_seen.until(&name, |s| s.get(&name).is_some()).await;
        claim_lat.push(
            claims_seen
                .get(&name)
                .unwrap()
                .saturating_duration_since(start),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    claim_lat.sort();
    println!(
        "claims at light load, 100 creates one every 50 ms, create call → host claim seen: p50 {}  p99 {}",
        ms(percentile(&claim_lat, 0.5)),
        ms(percentile(&claim_lat, 0.99))
    );
    claims_seen.stop();

    // Let the light pods settle (Running, status reflected) before the burst.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut first_direct = Duration::ZERO;
    // Status reflection: host status.message → virtual pod.
    let reflected = Seen::watch(vpods.clone(), "app=bench", |p: &Pod| {
        p.status
            .as_ref()?
            .message
            .clone()
            .filter(|m| m.starts_with("bench-"))
    })
    .await;
    let mut lat = Vec::new();
    for i in 0..100 {
        let vname = format!("light-{i}");
        let hname = vkube_syncer::names::host_name(
            &vkube_syncer::names::Tenant::new(VC, HOST_NS).unwrap(),
            "default",
            &vname,
        );
        let msg = format!("bench-{i}");
        let patch = serde_json::json!({"status": {"message": msg}});
        let start = Instant::now();
        hpods
            .patch_status(&hname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        reflected.until(&msg, |s| s.get(&msg).is_some()).await;
        lat.push(
            reflected
                .get(&msg)
                .unwrap()
                .saturating_duration_since(start),
        );
    }
    lat.sort();
    println!(
        "status reflection, host status write → virtual pod status seen (100 pods): p50 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    reflected.stop();

    // An untimed burst on each path first: the bursts below then measure
    // per-pod cost, not the one-off growth of connection pools, buffers and
    // channels that the first concurrent load brings (about 2 MiB of the
    // syncer's heap by heaptrack, which a first burst of 1,000 pods would
    // count as 2 KiB per pod).
    let warm: Vec<String> = (0..300).map(|i| format!("warm-burst-{i}")).collect();
    burst(&dpods, warm.clone()).await;
    burst(&vpods, warm).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    for (round, &n) in bursts.iter().enumerate() {
        // Each burst starts on a quiet system: the follow-up work of the
        // previous one (bindings, status writes, tokens) would otherwise
        // slow whichever burst comes next.
        let settle = Duration::from_secs(5 + 3 * n as u64 / 1000);
        let names: Vec<String> = (0..n).map(|i| format!("burst{round}-{i}")).collect();
        let base = direct_seen.len();
        let host_rev = revision(&hc).await;
        let cpu = Cpu::now(pid);
        let start = Instant::now();
        burst(&dpods, names.clone()).await;
        direct_seen
            .until("the direct burst", |s| s.len() >= base + n)
            .await;
        let direct_burst = start.elapsed();
        let direct_cpu = cpu.since(pid);
        tokio::time::sleep(settle).await;
        let direct_writes = revision(&hc).await - host_rev;
        let rss_before = vkube_e2e::rss_kib(pid);
        let (host_rev, virtual_rev) = (revision(&hc).await, revision(&vc).await);
        let base = host_seen.len();
        let cpu = Cpu::now(pid);
        // On stderr, for profilers to start (e.g. `perf record -p`).
        eprintln!("synced burst of {n} starts");
        let start = Instant::now();
        burst(&vpods, names).await;
        host_seen
            .until("the burst on the host", |s| s.len() >= base + n)
            .await;
        let synced = start.elapsed();
        let synced_cpu = cpu.since(pid);
        println!("burst of {n} pods (32 concurrent creates) until all exist on the host:");
        println!(
            "  directly on host:   {:.2} s (CPU: {direct_cpu})",
            direct_burst.as_secs_f64()
        );
        println!(
            "  through the syncer: {:.2} s (CPU: {synced_cpu})",
            synced.as_secs_f64()
        );
        println!(
            "  syncer throughput / direct: {:.0} %",
            100.0 * direct_burst.as_secs_f64() / synced.as_secs_f64()
        );
        // Let the syncer finish reflecting status (Running) for the burst.
        tokio::time::sleep(settle).await;
        let rss_after = vkube_e2e::rss_kib(pid);
        println!(
            "  writes per pod until settled (resourceVersion growth / N): directly {:.2} on the host; through the syncer {:.2} virtual + {:.2} host",
            direct_writes as f64 / n as f64,
            (revision(&vc).await - virtual_rev) as f64 / n as f64,
            (revision(&hc).await - host_rev) as f64 / n as f64,
        );
        println!(
            "  syncer RSS: {rss_before} KiB before the burst, {rss_after} KiB after; {:.2} KiB per synced pod",
            rss_after.saturating_sub(rss_before) as f64 / n as f64
        );
        if round == 0 {
            first_direct = direct_burst;
        }
    }

    // Catch-up: pods created while the syncer is down, then a fresh one.
    let _ = syncer.kill().await;
    let _ = syncer.wait().await;
    let names: Vec<String> = (0..burst_n).map(|i| format!("catchup-{i}")).collect();
    burst(&vpods, names).await;
    let base = host_seen.len();
    let start = Instant::now();
    let mut syncer = spawn_syncer();
    let pid = syncer.id().expect("running");
    host_seen
        .until("the catch-up on the host", |s| s.len() >= base + burst_n)
        .await;
    let catchup = start.elapsed();
    println!(
        "catch-up: {burst_n} pending virtual pods synced by a starting syncer in {:.2} s; vs the direct burst: {:.0} %",
        catchup.as_secs_f64(),
        100.0 * first_direct.as_secs_f64() / catchup.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let total = host_seen.len();
    let rss = vkube_e2e::rss_kib(pid);
    println!(
        "fresh syncer holding {total} synced pods: RSS {rss} KiB, {:.2} KiB per pod all-in (base included)",
        rss as f64 / total as f64
    );

    let _ = syncer.kill().await;
    host.shutdown().await;
    virt.shutdown().await;
}
