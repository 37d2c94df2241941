//! Services, Endpoints and Events through the syncer, end to end: real
//! kubectl against the virtual cluster and the host (`vkube_e2e::synced`).

use std::time::Duration;

use serde_json::{Value, json};
use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::{HOST_NAMESPACE, TENANT, eventually};

const WAIT: Duration = Duration::from_secs(60);

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: front}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext-db}
spec:
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext-db}
subsets:
- addresses: [{ip: 10.1.2.3}]
  ports: [{name: pg, port: 5432}]
"#;

/// The virtual Service's (clusterIP, uid) once it equals the host's
/// clusterIP and the host records that uid.
async fn converged(c: &SyncedCluster, name: &str) -> Result<(String, String, Value), String> {
    let h = c.host_get("svc", &c.host_name("default", name)).await?;
    let v = c.virt_get("svc", name).await?;
    let hip = h["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let vip = v["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let vuid = v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if hip.is_empty() || hip != vip {
        return Err(format!("virtual clusterIP {vip}, host {hip}"));
    }
    if h["metadata"]["annotations"]["vkube.dev/object-uid"] != vuid.as_str() {
        return Err(format!("host records another uid than {vuid}: {h}"));
    }
    Ok((vip, vuid, h))
}

#[tokio::test(flavor = "multi_thread")]
async fn services_carry_the_host_cluster_ip_node_ports_and_endpoints() {
    let mut c = SyncedCluster::start().await;
    let applied = c
        .virt
        .kubectl_stdin(&["apply", "-f", "-", "-o", "json"], APP)
        .await
        .expect_ok()
        .json();
    let applied_svc = |name: &str| {
        applied["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == name)
            .cloned()
            .expect("the applied Service")
    };
    let first = applied_svc("web");

    // The answer to the create already carries the host's clusterIP: the
    // host copy exists before the virtual Service is stored.
    let host_web = c.host_name("default", "web");
    let h = c
        .host_get("svc", &host_web)
        .await
        .expect("host copy at once");
    assert_eq!(
        first["spec"]["clusterIP"], h["spec"]["clusterIP"],
        "{first}"
    );
    assert_eq!(first["spec"]["clusterIPs"], h["spec"]["clusterIPs"]);
    let (ip, uid, h) = eventually("the virtual clusterIP to be the host's", WAIT, || {
        converged(&c, "web")
    })
    .await;
    assert_eq!(first["metadata"]["uid"], uid.as_str(), "never recreated");
    let labels = &h["metadata"]["labels"];
    assert_eq!(labels["vkube.dev/managed-by"], TENANT, "{h}");
    assert_eq!(labels["vkube.dev/namespace"], "default");
    assert_eq!(labels["tier"], "front");
    let ann = &h["metadata"]["annotations"];
    assert_eq!(ann["vkube.dev/object-name"], "web");
    assert_eq!(ann["vkube.dev/object-namespace"], "default");
    assert_eq!(ann["vkube.dev/object-kind"], "Service");
    assert_eq!(
        h["spec"]["selector"],
        json!({"app": "web", "vkube.dev/managed-by": TENANT, "vkube.dev/namespace": "default"})
    );
    // What the tenant sees with kubectl: the host's IP, its own metadata.
    let shown = c
        .virt
        .kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .await
        .expect_ok();
    assert_eq!(shown.stdout.trim(), ip);
    let v = c.virt_get("svc", "web").await.unwrap();
    assert!(
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .is_some_and(|a| a.contains("\"tier\":\"front\"")),
        "{v}"
    );
    assert_eq!(v["metadata"]["labels"]["tier"], "front");

    // The selector matches the synced Deployment pod on the host.
    let selector = h["spec"]["selector"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    eventually("a host pod matching the host selector", WAIT, || async {
        let p = c
            .host
            .get_json(&["pods", "-n", HOST_NAMESPACE, "-l", &selector])
            .await?;
        match p["items"].as_array() {
            Some(items) if !items.is_empty() => Ok(()),
            _ => Err(p.to_string()),
        }
    })
    .await;

    // NodePort: the create's answer carries the host's nodePort.
    let np_first = applied_svc("web-np");
    let host_np = c.host_name("default", "web-np");
    let h_np = c
        .host_get("svc", &host_np)
        .await
        .expect("host copy at once");
    let node_port = h_np["spec"]["ports"][0]["nodePort"].clone();
    assert!(node_port.is_number(), "{h_np}");
    assert_eq!(np_first["spec"]["ports"][0]["nodePort"], node_port);
    assert_eq!(np_first["spec"]["clusterIP"], h_np["spec"]["clusterIP"]);

    // The selector-less Service's Endpoints are copied to the host.
    let ep_host = c.host_name("default", "ext-db");
    let ep = eventually("host Endpoints for ext-db", WAIT, || async {
        let e = c.host_get("endpoints", &ep_host).await?;
        if e["subsets"][0]["addresses"][0]["ip"] == "10.1.2.3" {
            Ok(e)
        } else {
            Err(e.to_string())
        }
    })
    .await;
    assert_eq!(ep["metadata"]["labels"]["vkube.dev/managed-by"], TENANT);
    assert_eq!(
        ep["metadata"]["annotations"]["vkube.dev/object-kind"],
        "Endpoints"
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 5432);
    assert!(c.host_get("svc", &ep_host).await.unwrap()["spec"]["selector"].is_null());

    // A type change is allocated on the host within the request: the
    // patch's answer carries the host's new nodePort.
    let patched = c
        .virt
        .kubectl(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
            "-o",
            "json",
        ])
        .await
        .expect_ok()
        .json();
    let h = c.host_get("svc", &host_web).await.unwrap();
    assert_eq!(h["spec"]["type"], "NodePort", "{h}");
    assert!(h["spec"]["ports"][0]["nodePort"].is_number(), "{h}");
    assert_eq!(
        patched["spec"]["ports"][0]["nodePort"],
        h["spec"]["ports"][0]["nodePort"]
    );
    assert_eq!(patched["spec"]["clusterIP"], ip.as_str());
    assert_eq!(patched["metadata"]["uid"], uid.as_str());

    // A syncer restart changes nothing: same virtual UID, same IP.
    c.stop_syncer().await;
    c.start_syncer().await;
    let metrics = c.metrics().expect("running");
    eventually(
        "the restarted syncer to reconcile Services",
        WAIT,
        || async {
            if metrics.reconciles("Service") >= 4 && metrics.reconciles("Endpoints") >= 1 {
                Ok(())
            } else {
                Err(metrics.render())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ip2, uid2, _) = converged(&c, "web").await.expect("still converged");
    assert_eq!((ip2, uid2), (ip.clone(), uid.clone()), "nothing recreated");
    let text = metrics.render();
    assert!(
        text.contains("vkube_syncer_reconcile_errors_total") && text.contains("kind=\"Service\""),
        "{text}"
    );

    // Someone deletes the host copy: the syncer creates it again with the
    // tenant's address, and the tenant's Service never changes.
    let host_uid = h["metadata"]["uid"].clone();
    c.host_kubectl(&["delete", "svc", &host_web])
        .await
        .expect_ok();
    let (ip3, uid3, h3) = eventually("the host copy recreated", WAIT, || async {
        let got = converged(&c, "web").await?;
        if got.2["metadata"]["uid"] == host_uid {
            return Err("still the old host copy".into());
        }
        Ok(got)
    })
    .await;
    assert_eq!((ip3, uid3), (ip.clone(), uid.clone()));
    assert_eq!(h3["spec"]["type"], "NodePort");

    // Deleting the virtual Service deletes the host one.
    c.virt
        .kubectl(&["delete", "svc", "web", "ext-db"])
        .await
        .expect_ok();
    for (kind, name) in [
        ("svc", &host_web),
        ("svc", &ep_host),
        ("endpoints", &ep_host),
    ] {
        eventually(&format!("host {kind} {name} to go"), WAIT, || async {
            let out = c.host_kubectl(&["get", kind, name]).await;
            if !out.success() && out.stderr.contains("NotFound") {
                Ok(())
            } else {
                Err(out.stdout)
            }
        })
        .await;
    }
    c.shutdown().await;
}

/// A Service the test creates, as its manifest.
fn service(name: &str, extra: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    });
    if let (Some(spec), Some(extra)) = (s["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_keeps_its_identity_from_the_first_answer_on() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};

    let c = SyncedCluster::start().await;
    let client = c.virt.client().await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let rv = api
        .list_metadata(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    // A watch opened before any create.
    let mut watch = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();

    // kube-rs: the 201 body has the final clusterIP.
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(service("by-kube", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    let host = c
        .host_get("svc", &c.host_name("default", "by-kube"))
        .await
        .unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(
        spec.cluster_ip.as_deref(),
        host["spec"]["clusterIP"].as_str()
    );
    // kubectl create.
    let out = c
        .virt
        .kubectl_stdin(
            &["create", "-f", "-", "-o", "json"],
            &service("by-kubectl", json!({})).to_string(),
        )
        .await
        .expect_ok()
        .json();
    let host = c
        .host_get("svc", &c.host_name("default", "by-kubectl"))
        .await
        .unwrap();
    assert_eq!(out["spec"]["clusterIP"], host["spec"]["clusterIP"]);
    // A raw POST.
    let raw = c
        .virt
        .kubectl_stdin(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/services",
                "-f",
                "-",
            ],
            &service("by-raw-post", json!({})).to_string(),
        )
        .await
        .expect_ok()
        .json();
    let host = c
        .host_get("svc", &c.host_name("default", "by-raw-post"))
        .await
        .unwrap();
    assert_eq!(raw["spec"]["clusterIP"], host["spec"]["clusterIP"]);

    // A burst of 200 creates, 16 at a time.
    let names: Vec<String> = (0..200).map(|i| format!("burst-{i}")).collect();
    let bodies: Vec<Service> = names
        .iter()
        .map(|n| serde_json::from_value(service(n, json!({}))).unwrap())
        .collect();
    let burst: Vec<Service> = futures::stream::iter(bodies.iter())
        .map(|s| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), s).await }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("every create succeeds");
    assert_eq!(burst.len(), 200);

    // The watch saw exactly one ADDED per Service, no DELETED, and each
    // ADDED already carried the final clusterIP.
    let mut added = std::collections::HashMap::new();
    let expected = 203;
    let deadline = tokio::time::Instant::now() + WAIT;
    while added.len() < expected {
        let ev = tokio::time::timeout_at(deadline, watch.try_next())
            .await
            .expect("watch events in time")
            .unwrap()
            .expect("the watch stays open");
        match ev {
            WatchEvent::Added(s) => {
                let name = s.metadata.name.clone().unwrap();
                let ip = s.spec.unwrap().cluster_ip.unwrap();
                assert!(
                    added.insert(name.clone(), ip).is_none(),
                    "{name} added twice"
                );
            }
            WatchEvent::Deleted(s) => panic!("{:?} deleted", s.metadata.name),
            WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let hosts = c
        .host
        .get_json(&["svc", "-n", HOST_NAMESPACE])
        .await
        .unwrap();
    let host_ips: std::collections::HashMap<String, String> = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["metadata"]["annotations"]["vkube.dev/object-name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                h["spec"]["clusterIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (name, ip) in &added {
        assert_eq!(host_ips.get(name), Some(ip), "{name}");
    }
    for s in &burst {
        let name = s.metadata.name.as_deref().unwrap();
        assert_eq!(
            added.get(name),
            s.spec.as_ref().unwrap().cluster_ip.as_ref()
        );
        let now = api.get(name).await.unwrap();
        assert_eq!(now.metadata.uid, s.metadata.uid, "{name} kept its uid");
    }

    // A requested ClusterIP the host already gave out: the host's answer,
    // naming the tenant's Service; nothing stored.
    let taken = added["by-kube"].clone();
    let out = c
        .virt
        .kubectl_stdin(
            &["create", "-f", "-"],
            &service("wants-taken", json!({"clusterIP": taken})).to_string(),
        )
        .await;
    out.expect_err_contains(&format!(
        "Service \"wants-taken\" is invalid: spec.clusterIPs: Invalid value: [\"{taken}\"]: \
         failed to allocate IP {taken}: provided IP is already allocated"
    ));
    assert!(api.get_opt("wants-taken").await.unwrap().is_none());
    assert!(
        c.host_get("svc", &c.host_name("default", "wants-taken"))
            .await
            .is_err()
    );
    // A dry run allocates nothing on the host.
    c.virt
        .kubectl_stdin(
            &["create", "--dry-run=server", "-f", "-"],
            &service("dry", json!({})).to_string(),
        )
        .await
        .expect_ok();
    assert!(
        c.host_get("svc", &c.host_name("default", "dry"))
            .await
            .is_err()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_whose_host_name_is_taken_is_refused_and_the_host_object_left_alone() {
    let c = SyncedCluster::start().await;
    let hname = c.host_name("default", "clash");
    let squatter = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": hname, "namespace": HOST_NAMESPACE, "labels": {"owner": "someone-else"}},
        "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 9999}]},
    });
    eventually("the host namespace", WAIT, || async {
        c.host.get_json(&["namespace", HOST_NAMESPACE]).await
    })
    .await;
    c.host
        .kubectl_stdin(&["create", "-f", "-"], &squatter.to_string())
        .await
        .expect_ok();
    let before = c.host_get("svc", &hname).await.unwrap();
    let manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  selector: {app: mine}\n  ports: [{port: 80}]\n";
    c.virt
        .kubectl_stdin(&["create", "-f", "-"], manifest)
        .await
        .expect_err_contains(&format!(
            "Operation cannot be fulfilled on services \"clash\": host Service {HOST_NAMESPACE}/{hname} \
             exists and is not managed by this virtual cluster"
        ));
    assert!(c.virt_get("svc", "clash").await.is_err(), "nothing stored");
    let after = c.host_get("svc", &hname).await.unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["spec"]["selector"], json!({"app": "theirs"}));
    assert!(after["metadata"]["labels"]["vkube.dev/managed-by"].is_null());
    // Once the host object is gone, the same create works.
    c.host_kubectl(&["delete", "svc", &hname]).await.expect_ok();
    c.virt
        .kubectl_stdin(&["create", "-f", "-"], manifest)
        .await
        .expect_ok();
    let (_, _, h) = eventually("the host copy", WAIT, || converged(&c, "clash")).await;
    assert_eq!(h["metadata"]["labels"]["vkube.dev/managed-by"], TENANT);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_events_about_synced_pods_show_up_under_the_virtual_pod_name() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata: {name: worker}\nspec:\n  containers: [{name: c, image: busybox}]\n",
        )
        .await
        .expect_ok();
    let hname = c.host_name("default", "worker");
    let hp = eventually("the host pod", WAIT, || c.host_get("pod", &hname)).await;
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{hname}.e2e1"), "namespace": HOST_NAMESPACE},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "namespace": HOST_NAMESPACE,
            "name": hname, "uid": hp["metadata"]["uid"],
        },
        "reason": "BackOff", "type": "Warning", "count": 1,
        "message": format!("Back-off restarting failed container c in pod {hname}"),
        "source": {"component": "kubelet"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
    });
    c.host
        .kubectl_stdin(&["create", "-f", "-"], &event.to_string())
        .await
        .expect_ok();
    let find = |count: i64| {
        let c = &c;
        async move {
            let out = c.virt.kubectl(&["get", "events", "-n", "default"]).await;
            let evs = c.virt.get_json(&["events", "-n", "default"]).await?;
            evs["items"]
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .find(|e| e["reason"] == "BackOff" && e["count"] == count)
                        .cloned()
                })
                .map(|e| (e, out.stdout))
                .ok_or_else(|| evs.to_string())
        }
    };
    let (ev, table) = eventually("the copied Event", WAIT, || find(1)).await;
    assert_eq!(ev["involvedObject"]["name"], "worker", "{ev}");
    assert_eq!(ev["involvedObject"]["namespace"], "default");
    let vuid = c.virt_get("pod", "worker").await.unwrap()["metadata"]["uid"].clone();
    assert_eq!(ev["involvedObject"]["uid"], vuid);
    assert_eq!(
        ev["message"],
        "Back-off restarting failed container c in pod worker"
    );
    assert!(table.contains("pod/worker"), "{table}");
    assert!(!table.contains(&hname), "host names stay hidden: {table}");

    // The host bumps the count: the copy is updated, not duplicated.
    c.host_kubectl(&[
        "patch",
        "event",
        &format!("{hname}.e2e1"),
        "--type=merge",
        "-p",
        r#"{"count": 3, "lastTimestamp": "2026-01-01T00:05:00Z"}"#,
    ])
    .await
    .expect_ok();
    eventually("the updated count", WAIT, || find(3)).await;
    let evs = c.virt.get_json(&["events", "-n", "default"]).await.unwrap();
    let copies = evs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "BackOff")
        .count();
    assert_eq!(copies, 1, "{evs}");
    c.shutdown().await;
}
