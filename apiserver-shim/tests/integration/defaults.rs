//! Defaults, validation and Service address allocation as a kube-rs client
//! sees them: every test starts its own server over TLS in a temporary data
//! directory and compares with what kube-apiserver 1.34 answers.

use apiserver_shim::{Server, ServerConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

struct Harness {
    server: Server,
    client: Client,
}

async fn start_in(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Harness {
    let mut cfg = ServerConfig::new(dir);
    tweak(&mut cfg);
    let server = Server::start(cfg).await.expect("server starts");
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    let client = Client::try_from(config).expect("client builds");
    Harness { server, client }
}

#[track_caller]
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// Asserts a `422 Invalid` with kube-apiserver's message and one cause per
/// `(reason, field)`.
#[track_caller]
fn assert_invalid(s: &Status, message: &str, causes: &[(&str, &str)]) {
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert_eq!(s.message, message);
    let got: Vec<(&str, &str)> = s
        .details
        .as_ref()
        .expect("details")
        .causes
        .iter()
        .map(|c| (c.reason.as_str(), c.field.as_str()))
        .collect();
    assert_eq!(got, causes, "{s:?}");
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn port80() -> Value {
    json!([{"port": 80}])
}

fn cluster_ip(s: &Service) -> String {
    s.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn bare_pod_comes_back_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "busybox:1.36"}]},
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &bare).await.unwrap();
    let got = serde_json::to_value(pods.get("bare").await.unwrap()).unwrap();
    assert_eq!(serde_json::to_value(&created).unwrap(), got);
    let spec = &got["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let c0 = &spec["containers"][0];
    assert_eq!(c0["imagePullPolicy"], "Always");
    assert_eq!(c0["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c0["terminationMessagePolicy"], "File");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(got["status"]["phase"], "Pending");
    assert_eq!(got["status"]["qosClass"], "BestEffort");
    h.server.shutdown().await;
}

#[tokio::test]
async fn deployment_gets_strategy_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let deploys: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
        },
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let got = serde_json::to_value(deploys.get("web").await.unwrap()).unwrap();
    let spec = &got["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    // The selector is immutable.
    let err = api_error(
        deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {
                    "selector": {"matchLabels": {"app": "web", "v": "2"}},
                    "template": {"metadata": {"labels": {"v": "2"}}},
                }})),
            )
            .await,
    );
    assert_invalid(
        &err,
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"v\":\"2\"}}: field is immutable",
        &[("FieldValueInvalid", "spec.selector")],
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_service_creates_get_distinct_ips() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let creates = (0..50).map(|i| {
        let svcs = svcs.clone();
        async move {
            svcs.create(
                &PostParams::default(),
                &service(&format!("s{i}"), json!({"ports": port80()})),
            )
            .await
            .expect("create")
        }
    });
    let created = futures::future::join_all(creates).await;
    let cidr = vkube_core::service::ServiceCidr::parse("10.96.0.0/12").unwrap();
    let mut ips = BTreeSet::new();
    for s in &created {
        let ip = cluster_ip(s);
        let v4: Ipv4Addr = ip.parse().expect("an IPv4 address");
        assert!(cidr.contains(v4), "{ip} in {cidr}");
        assert_ne!(ip, "10.96.0.1", "the kubernetes Service keeps its IP");
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ips.as_deref(), Some(&[ip.clone()][..]));
        assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
        );
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 50, "distinct IPs: {ips:?}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn requested_ips_are_honoured_once_and_freed_on_delete() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let pp = PostParams::default();
    let a = svcs
        .create(
            &pp,
            &service("a", json!({"clusterIP": "10.96.0.50", "ports": port80()})),
        )
        .await
        .unwrap();
    assert_eq!(cluster_ip(&a), "10.96.0.50");

    let dup = api_error(
        svcs.create(
            &pp,
            &service("b", json!({"clusterIP": "10.96.0.50", "ports": port80()})),
        )
        .await,
    );
    assert_invalid(
        &dup,
        "Service \"b\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.50\"]: failed to allocate IP 10.96.0.50: provided IP is already allocated",
        &[("FieldValueInvalid", "spec.clusterIPs")],
    );
    let outside = api_error(
        svcs.create(
            &pp,
            &service("c", json!({"clusterIP": "192.168.0.1", "ports": port80()})),
        )
        .await,
    );
    assert_invalid(
        &outside,
        "Service \"c\" is invalid: spec.clusterIPs: Invalid value: [\"192.168.0.1\"]: failed to allocate IP 192.168.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        &[("FieldValueInvalid", "spec.clusterIPs")],
    );
    // The kubernetes Service holds the first address.
    api_error(
        svcs.create(
            &pp,
            &service("d", json!({"clusterIP": "10.96.0.1", "ports": port80()})),
        )
        .await,
    );

    svcs.delete("a", &DeleteParams::default()).await.unwrap();
    let b = svcs
        .create(
            &pp,
            &service("b", json!({"clusterIP": "10.96.0.50", "ports": port80()})),
        )
        .await
        .expect("the deleted Service's IP is free again");
    assert_eq!(cluster_ip(&b), "10.96.0.50");
    h.server.shutdown().await;
}

#[tokio::test]
async fn cluster_ip_may_not_change_once_set() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
    svcs.create(
        &PostParams::default(),
        &service("x", json!({"clusterIP": "10.96.0.77", "ports": port80()})),
    )
    .await
    .unwrap();
    let err = api_error(
        svcs.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterIP": "10.96.3.4"}})),
        )
        .await,
    );
    assert_invalid(
        &err,
        "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: [\"10.96.3.4\"]: may not change once set",
        &[("FieldValueInvalid", "spec.clusterIPs[0]")],
    );
    // A replace without clusterIP keeps the allocated one.
    let mut current = svcs.get("x").await.unwrap();
    let spec = current.spec.as_mut().unwrap();
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    current.labels_mut().insert("edited".into(), "yes".into());
    let replaced = svcs
        .replace("x", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(cluster_ip(&replaced), "10.96.0.77");
    // The IP was not released by the rejected change.
    api_error(
        svcs.create(
            &PostParams::default(),
            &service("y", json!({"clusterIP": "10.96.0.77", "ports": port80()})),
        )
        .await,
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn dry_run_create_defaults_but_reserves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let s = svcs
        .create(
            &dry,
            &service("dry", json!({"type": "NodePort", "ports": port80()})),
        )
        .await
        .unwrap();
    let ip = cluster_ip(&s);
    assert!(ip.starts_with("10."), "dry run shows a clusterIP: {ip:?}");
    let spec = s.spec.as_ref().unwrap();
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    let node_port = spec.ports.as_ref().unwrap()[0].node_port.expect("nodePort");
    assert!((30000..=32767).contains(&node_port));
    assert!(api_error(svcs.get("dry").await).code == 404);
    // Neither the IP nor the port is held.
    let real = svcs
        .create(
            &PostParams::default(),
            &service(
                "real",
                json!({"type": "NodePort", "clusterIP": ip,
                       "ports": [{"port": 80, "nodePort": node_port}]}),
            ),
        )
        .await
        .expect("dry run reserved nothing");
    assert_eq!(cluster_ip(&real), ip);
    // A dry-run create still validates.
    let bad = api_error(
        svcs.create(&dry, &service("bad", json!({"ports": [{"port": 0}]})))
            .await,
    );
    assert_eq!(bad.code, 422);
    h.server.shutdown().await;
}

#[tokio::test]
async fn node_ports_are_allocated_checked_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let pp = PostParams::default();
    let np = svcs
        .create(
            &pp,
            &service(
                "np",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        np.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port,
        Some(30080)
    );
    let lb = svcs
        .create(
            &pp,
            &service("lb", json!({"type": "LoadBalancer", "ports": port80()})),
        )
        .await
        .unwrap();
    let spec = lb.spec.as_ref().unwrap();
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    assert!(spec.ports.as_ref().unwrap()[0].node_port.is_some());

    let taken = api_error(
        svcs.create(
            &pp,
            &service(
                "taken",
                json!({"type": "NodePort", "clusterIP": "10.96.0.99",
                       "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await,
    );
    assert_invalid(
        &taken,
        "Service \"taken\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        &[("FieldValueInvalid", "spec.ports[0].nodePort")],
    );
    // The clusterIP reserved before the failing port was released.
    svcs.create(
        &pp,
        &service(
            "ip-free",
            json!({"clusterIP": "10.96.0.99", "ports": port80()}),
        ),
    )
    .await
    .expect("no half-written allocation");
    let out = api_error(
        svcs.create(
            &pp,
            &service(
                "out",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
            ),
        )
        .await,
    );
    assert_invalid(
        &out,
        "Service \"out\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        &[("FieldValueInvalid", "spec.ports[0].nodePort")],
    );

    // Back to ClusterIP: the node port is released.
    let mut current = svcs.get("np").await.unwrap();
    current.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let changed = svcs.replace("np", &pp, &current).await.unwrap();
    assert_eq!(
        changed.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port,
        None
    );
    assert_eq!(changed.spec.as_ref().unwrap().external_traffic_policy, None);
    svcs.create(
        &pp,
        &service(
            "again",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    )
    .await
    .expect("released node port is free");
    h.server.shutdown().await;
}

/// Each server runs on its own runtime: dropping the runtime ends the
/// server's background tasks and so releases the data directory.
#[test]
fn allocations_survive_a_restart_and_the_cidr_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let small = |c: &mut ServerConfig| {
        c.api.allocation.service_cidr =
            vkube_core::service::ServiceCidr::parse("10.100.0.0/24").unwrap();
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let ip = runtime().block_on(async {
        let h = start_in(dir.path(), small).await;
        let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
        let k = svcs.get("kubernetes").await.unwrap();
        assert_eq!(cluster_ip(&k), "10.100.0.1");
        let s = svcs
            .create(
                &PostParams::default(),
                &service("keep", json!({"ports": port80()})),
            )
            .await
            .unwrap();
        let ip = cluster_ip(&s);
        assert!(ip.starts_with("10.100.0."), "{ip}");
        h.server.shutdown().await;
        ip
    });

    runtime().block_on(async {
        let h = start_in(dir.path(), small).await;
        let svcs: Api<Service> = Api::namespaced(h.client.clone(), "default");
        let dup = api_error(
            svcs.create(
                &PostParams::default(),
                &service("dup", json!({"clusterIP": ip, "ports": port80()})),
            )
            .await,
        );
        assert_eq!(dup.code, 422, "{dup:?}");
        h.server.shutdown().await;
    });
}

#[tokio::test]
async fn validation_errors_are_422_with_causes() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_in(dir.path(), |_| {}).await;
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let no_image: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
    }))
    .unwrap();
    let err = api_error(pods.create(&PostParams::default(), &no_image).await);
    assert_invalid(
        &err,
        "Pod \"p\" is invalid: spec.containers[0].image: Required value",
        &[("FieldValueRequired", "spec.containers[0].image")],
    );
    assert_eq!(api_error(pods.get("p").await).code, 404, "nothing stored");

    // Several causes are joined in brackets.
    let two: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p2"}, "spec": {"containers": [{"image": "x"}, {"name": "d"}]},
    }))
    .unwrap();
    let err = api_error(pods.create(&PostParams::default(), &two).await);
    assert_invalid(
        &err,
        "Pod \"p2\" is invalid: [spec.containers[0].name: Required value, spec.containers[1].image: Required value]",
        &[
            ("FieldValueRequired", "spec.containers[0].name"),
            ("FieldValueRequired", "spec.containers[1].image"),
        ],
    );

    // Most of a pod's spec is immutable.
    let ok: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ok"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &ok).await.unwrap();
    pods.patch(
        "ok",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "x:2"}]}})),
    )
    .await
    .expect("images may change");
    let err = api_error(
        pods.patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(
            "Pod \"ok\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        ),
        "{}",
        err.message
    );

    // An immutable ConfigMap.
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "frozen"}, "immutable": true, "data": {"k": "v"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let err = api_error(
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "w"}})),
        )
        .await,
    );
    assert_invalid(
        &err,
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set",
        &[("FieldValueForbidden", "data")],
    );
    cms.patch(
        "frozen",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .expect("metadata stays mutable");
    h.server.shutdown().await;
}
