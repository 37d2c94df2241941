//! What encoding a response as kube-apiserver does costs beside a plain
//! serialisation: `cargo bench -p vkube-core --bench gojson`.
//!
//! Encodes a list of 1,000 Pods (as the API server stores them, defaults
//! applied) and of 5,000 small ConfigMaps both ways, several rounds each,
//! interleaved so machine noise hits both alike, and prints the best round
//! of each and their ratio. Prints figures only; never fails on time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn pod(i: usize) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
                     "resourceVersion": (1000 + i).to_string(), "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "5d8f7c9b6"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b6",
                                          "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                                 "imagePullPolicy": "IfNotPresent",
                                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "serviceAccountName": "default", "serviceAccount": "default", "nodeName": "node-1",
                 "securityContext": {}, "schedulerName": "default-scheduler",
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                 "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"},
        "status": {"phase": "Running", "hostIP": "10.0.0.5", "podIP": format!("10.244.0.{}", i % 250),
                   "podIPs": [{"ip": format!("10.244.0.{}", i % 250)}], "startTime": "2026-01-01T00:00:01Z",
                   "qosClass": "Burstable",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:02Z"}],
                   "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27",
                                          "imageID": "", "started": true,
                                          "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]}
    })
}

fn config_map(i: usize) -> Value {
    json!({"kind": "ConfigMap", "apiVersion": "v1",
           "metadata": {"name": format!("cm-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
                        "resourceVersion": (1000 + i).to_string(), "creationTimestamp": "2026-01-01T00:00:00Z"},
           "data": {"key": "value"}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "9999"}, "items": items})
}

fn best(rounds: &[Duration]) -> Duration {
    rounds.iter().copied().min().unwrap_or_default()
}

fn measure(name: &str, body: &Value, objects: usize) {
    let (mut plain, mut go) = (Vec::new(), Vec::new());
    let mut sizes = (0, 0);
    for _ in 0..15 {
        let t = Instant::now();
        let a = black_box(serde_json::to_vec(black_box(body)).unwrap());
        plain.push(t.elapsed());
        let t = Instant::now();
        let b = black_box(vkube_core::gojson::to_vec(black_box(body)));
        go.push(t.elapsed());
        sizes = (a.len(), b.len());
    }
    let (p, g) = (best(&plain), best(&go));
    println!(
        "{name:<24} plain {:>8.2} ms ({:>6.0} ns/object, {} B)  gojson {:>8.2} ms ({:>6.0} ns/object, {} B)  ratio {:.2}",
        p.as_secs_f64() * 1e3,
        p.as_nanos() as f64 / objects as f64,
        sizes.0,
        g.as_secs_f64() * 1e3,
        g.as_nanos() as f64 / objects as f64,
        sizes.1,
        g.as_secs_f64() / p.as_secs_f64()
    );
}

fn main() {
    let pods = list("PodList", (0..1000).map(pod).collect());
    let cms = list("ConfigMapList", (0..5000).map(config_map).collect());
    measure("PodList (1,000)", &pods, 1000);
    measure("ConfigMapList (5,000)", &cms, 5000);
}
