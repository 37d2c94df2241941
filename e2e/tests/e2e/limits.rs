//! Fair limits under load: one user floods the server with concurrent
//! LISTs while another user's GETs keep being served; the flooder gets
//! kube-apiserver's `429` with `Retry-After`, and nothing stored is lost.

use apiserver_shim::filters::limits::LimitsConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use vkube_e2e::TestCluster;

const OBJECTS: usize = 300;

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// `count` sequential GETs of one ConfigMap by `reader`; their latencies.
/// Every one must succeed.
async fn reads(reader: &Api<ConfigMap>, count: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let began = Instant::now();
        let got = reader.get(&format!("cm-{}", i % OBJECTS)).await;
        samples.push(began.elapsed());
        if let Err(e) = got {
            panic!("the reader's GET {i} failed while another user flooded: {e}");
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_user_gets_429s_while_another_users_gets_succeed() {
    let c = TestCluster::start_configured(|config| {
        config.limits = LimitsConfig {
            max_requests_inflight: 4,
            max_mutating_requests_inflight: 4,
            queue_length_limit: 8,
            queue_wait: Duration::from_secs(10),
        };
    })
    .await;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: load}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: load-viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: flooder}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: reader}
"#,
    )
    .await
    .expect_ok();
    // The admin (system:masters) is never queued: setting up is not slowed.
    let admin: Api<ConfigMap> = Api::namespaced(c.client().await, "load");
    for i in 0..OBJECTS {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cm-{i}")},
            "data": {"index": i.to_string(), "payload": "x".repeat(512)},
        }))
        .unwrap();
        admin.create(&PostParams::default(), &cm).await.unwrap();
    }
    let reader: Api<ConfigMap> = Api::namespaced(c.client_as("reader", &[]).await, "load");
    let quiet = p99(reads(&reader, 200).await);

    let flooder = c.client_as("flooder", &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, refused, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let first_refusal = Arc::new(std::sync::Mutex::new(None::<(String, String)>));
    let mut flood = Vec::new();
    for _ in 0..64 {
        let (client, stop, ok, refused, other, first_refusal) = (
            flooder.clone(),
            stop.clone(),
            ok.clone(),
            refused.clone(),
            other.clone(),
            first_refusal.clone(),
        );
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = http::Request::get("/api/v1/namespaces/load/configmaps")
                    .body(kube::client::Body::empty())
                    .unwrap();
                let Ok(response) = client.send(request).await else {
                    other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = response
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                match status {
                    200 => ok.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        first_refusal.lock().unwrap().get_or_insert((
                            retry_after,
                            String::from_utf8_lossy(&body).into_owned(),
                        ));
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Let the flood fill every seat and queue first.
    while refused.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flooded = p99(reads(&reader, 200).await);
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    let (ok, refused, other) = (
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    println!(
        "reader GET p99: {quiet:?} quiet, {flooded:?} under a 64-way LIST flood \
         (flooder: {ok} served, {refused} refused with 429)"
    );
    assert!(ok > 0, "the flooder is served its share too");
    assert_eq!(other, 0, "the flooder gets only 200s and 429s");
    let (retry_after, body) = first_refusal.lock().unwrap().clone().unwrap();
    assert_eq!(retry_after, "1");
    assert_eq!(body, "Too many requests, please try again later.\n");

    // Nothing stored was lost or changed.
    let all = admin.list(&Default::default()).await.unwrap();
    assert_eq!(all.items.len(), OBJECTS);
    for cm in &all.items {
        let name = cm.metadata.name.as_deref().unwrap();
        let data = cm.data.as_ref().unwrap();
        assert_eq!(format!("cm-{}", data["index"]), name);
        assert_eq!(data["payload"].len(), 512);
    }
    c.shutdown().await;
}
