//! Benchmark of operating pods through the host and of the tenant DNS:
//! prints figures, asserts nothing about time.
//!
//! Run: `cargo bench -p vkube --bench pod_connect`. A host and a virtual
//! cluster with the syncer between them (`vkube_e2e::SyncedCluster`, the
//! virtual API server's pod connector is the host), one running pod whose
//! host copy has a loopback IP. Each figure is measured twice in the same
//! run, through the virtual cluster (virtual API server → host API server
//! → node stand-in) and directly against the host, and their ratio printed:
//! * exec session: `exec cat` started, one 16-byte line echoed, closed (p50/p99);
//! * exec round trip: one 16-byte line through an open `exec cat` (p50/p99);
//! * port-forward throughput: 64 MiB through an echo server in both
//!   directions at once;
//! * DNS: queries/s and p50/p99 of 8 concurrent UDP clients asking a
//!   ClusterIP Service name, and the DNS view's memory per 1,000 Services
//!   (RSS growth while 20,000 Services with two ports each are added).
//!
//! Machines here are noisy: compare figures from one run, not across runs.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vkube_controllers::simulator::NodeSimulator;
use vkube_dns::proto::op::{Message, Query};
use vkube_dns::proto::rr::{Name, RecordType};
use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::{HOST_NAMESPACE, eventually};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: app, image: busybox, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (percentile(&d, 0.5), percentile(&d, 0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts `exec cat` and echoes a 16-byte line `trips` times: the time
/// from the start to the first echo (the session's cost) and each trip's.
async fn cat_trips(api: &Api<Pod>, name: &str, trips: usize) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let params = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);
    let mut p = api.exec(name, ["cat"], &params).await.expect("exec");
    let mut w = p.stdin().expect("stdin");
    let mut r = p.stdout().expect("stdout");
    let mut buf = [0u8; 16];
    let mut first = None;
    let mut out = Vec::with_capacity(trips);
    for _ in 0..trips {
        let t = Instant::now();
        w.write_all(b"0123456789abcde\n").await.unwrap();
        r.read_exact(&mut buf).await.unwrap();
        first.get_or_insert_with(|| start.elapsed());
        out.push(t.elapsed());
    }
    drop(w);
    p.abort();
    (first.unwrap_or_default(), out)
}

async fn port_forward_mib_s(api: &Api<Pod>, name: &str, port: u16, bytes: usize) -> f64 {
    let mut pf = api.portforward(name, &[port]).await.expect("port-forward");
    let stream = pf.take_stream(port).expect("stream");
    let (mut r, mut w) = tokio::io::split(stream);
    let chunk = vec![7u8; 64 * 1024];
    let start = Instant::now();
    let send = async {
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            w.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
    };
    let recv = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < bytes {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early");
            got += n;
        }
    };
    tokio::join!(send, recv);
    let secs = start.elapsed().as_secs_f64();
    pf.abort();
    bytes as f64 / (1024.0 * 1024.0) / secs
}

async fn dns_load(
    addr: SocketAddr,
    clients: usize,
    per_client: usize,
) -> (f64, Duration, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sock.connect(addr).await.unwrap();
            let mut lat = Vec::with_capacity(per_client);
            let mut buf = vec![0u8; 1500];
            for _ in 0..per_client {
                let mut q = Message::query();
                q.add_query(Query::query(
                    Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
                    RecordType::A,
                ));
                let bytes = q.to_vec().unwrap();
                let t = Instant::now();
                sock.send(&bytes).await.unwrap();
                let n = sock.recv(&mut buf).await.unwrap();
                lat.push(t.elapsed());
                let m = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(m.answers.len(), 1);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let qps = all.len() as f64 / start.elapsed().as_secs_f64();
    let (p50, p99) = summary(all);
    (qps, p50, p99)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let simulator = NodeSimulator {
        pod_cidr_prefix: "127.0".into(),
        ..NodeSimulator::default()
    };
    let c = SyncedCluster::start_with_simulator(simulator, |_| {}).await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], POD)
        .await
        .expect_ok();
    c.wait_running("web").await;
    let wait = Duration::from_secs(60);
    let host_name = c.host_name("default", "web");
    let pod_ip = c.host_get("pod", &host_name).await.unwrap()["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let virt: Api<Pod> = Api::default_namespaced(c.virt.client().await);
    let host: Api<Pod> = Api::namespaced(c.host.client().await, HOST_NAMESPACE);
    let paths = [
        ("virtual", &virt, "web"),
        ("direct", &host, host_name.as_str()),
    ];

    println!("exec session (start `cat`, echo 16 B, close), 100 sessions:");
    let mut session = Vec::new();
    for (label, api, name) in paths {
        let mut d = Vec::new();
        for i in 0..110 {
            let (t, _) = cat_trips(api, name, 1).await;
            if i >= 10 {
                d.push(t);
            }
        }
        let (p50, p99) = summary(d);
        println!("  {label:8} p50 {:.2} ms  p99 {:.2} ms", ms(p50), ms(p99));
        session.push(p50);
    }
    println!(
        "  virtual/direct p50 ratio {:.2}",
        session[0].as_secs_f64() / session[1].as_secs_f64()
    );

    println!("exec round trip (16 B through an open `exec cat`), 2,000 trips:");
    let mut trip = Vec::new();
    for (label, api, name) in paths {
        // The first 20 trips warm the path up.
        let (_, trips) = cat_trips(api, name, 2020).await;
        let (p50, p99) = summary(trips[20..].to_vec());
        println!("  {label:8} p50 {:.3} ms  p99 {:.3} ms", ms(p50), ms(p99));
        trip.push(p50);
    }
    println!(
        "  virtual/direct p50 ratio {:.2}",
        trip[0].as_secs_f64() / trip[1].as_secs_f64()
    );

    // The "container": an echo server on the host pod's loopback IP.
    let port = vkube_e2e::echo_tcp(&pod_ip).await;
    println!("port-forward, 64 MiB echoed (both directions at once), best of 3:");
    let mut tput = Vec::new();
    for (label, api, name) in paths {
        let mut best: f64 = 0.0;
        for _ in 0..3 {
            best = best.max(port_forward_mib_s(api, name, port, 64 << 20).await);
        }
        println!("  {label:8} {best:.1} MiB/s");
        tput.push(best);
    }
    println!("  virtual/direct ratio {:.2}", tput[0] / tput[1]);

    let view = Arc::new(RwLock::new(vkube_dns::DnsView::new("cluster.local")));
    let watch = tokio::spawn(vkube_dns::watch::run(c.virt.client().await, view.clone()));
    let dns = vkube_dns::serve(
        "127.0.0.1:0".parse().unwrap(),
        view,
        vkube_dns::system_resolver().unwrap(),
    )
    .await
    .unwrap();
    eventually("web in DNS", wait, || async {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        sock.send_to(&q.to_vec().unwrap(), dns.addr).await.unwrap();
        let mut buf = vec![0u8; 1500];
        let n = sock.recv(&mut buf).await.unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.answers.is_empty() {
            Err("not yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let (qps, p50, p99) = dns_load(dns.addr, 8, 5000).await;
    println!(
        "DNS, 8 UDP clients x 5,000 queries (A, ClusterIP Service): {qps:.0} queries/s, p50 {:.3} ms, p99 {:.3} ms",
        ms(p50),
        ms(p99)
    );
    watch.abort();

    let mut big = vkube_dns::DnsView::new("cluster.local");
    let services: Vec<k8s_openapi::api::core::v1::Service> = (0..20_000u32)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("service-{i}"), "namespace": format!("team-{}", i % 50)},
                "spec": {"clusterIP": format!("10.{}.{}.{}", 96 + (i >> 16), (i >> 8) & 255, i & 255),
                         "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]},
            }))
            .unwrap()
        })
        .collect();
    let before = rss_kib();
    for s in &services {
        big.apply_service(s);
    }
    let after = rss_kib();
    println!(
        "DNS view memory: {:.0} KiB per 1,000 Services (RSS growth over 20,000; {} Services held)",
        (after.saturating_sub(before)) as f64 / 20.0,
        big.len().0
    );
    drop(services);
}
