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
    let first_uid = applied["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "web")
        .map(|o| o["metadata"]["uid"].clone())
        .expect("the applied Service");

    // The host Service: documented name, markers, a selector that only
    // matches this tenant's pods of that namespace.
    let (ip, uid, h) = eventually("the virtual clusterIP to be the host's", WAIT, || {
        converged(&c, "web")
    })
    .await;
    // Both servers allocate at random, so the IPs differed and the virtual
    // Service was recreated with the host's: a new UID.
    assert_ne!(first_uid, uid.as_str(), "the virtual Service was recreated");
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
    // What the tenant sees with kubectl: the host's IP, its own metadata
    // (kubectl's last-applied annotation survives the recreate).
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

    // NodePort: the tenant sees the host's nodePort.
    let host_np = c.host_name("default", "web-np");
    eventually(
        "the host's nodePort on the virtual Service",
        WAIT,
        || async {
            let h = c.host_get("svc", &host_np).await?;
            let v = c.virt_get("svc", "web-np").await?;
            let hp = &h["spec"]["ports"][0]["nodePort"];
            if hp.is_number() && *hp == v["spec"]["ports"][0]["nodePort"] {
                Ok(())
            } else {
                Err(format!("virtual {v}, host {h}"))
            }
        },
    )
    .await;
    eventually("the NodePort Service's clusterIP", WAIT, || {
        converged(&c, "web-np")
    })
    .await;

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

    // A syncer restart recreates nothing: same virtual UID, same IP.
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
    assert_eq!((ip2, uid2), (ip.clone(), uid.clone()), "no second recreate");
    let text = metrics.render();
    assert!(
        text.contains("vkube_syncer_reconcile_errors_total") && text.contains("kind=\"Service\""),
        "{text}"
    );

    // A crash between recreating the virtual Service and recording its UID
    // on the host leaves the host copy naming the old UID: the restarted
    // syncer adopts it in place (same host object, same IP) instead of
    // replacing it, which would change the IP and recreate again.
    c.stop_syncer().await;
    let host_web = c.host_name("default", "web");
    let host_uid = h["metadata"]["uid"].clone();
    c.host_kubectl(&[
        "annotate",
        "svc",
        &host_web,
        "--overwrite",
        "vkube.dev/object-uid=uid-of-the-deleted-incarnation",
    ])
    .await
    .expect_ok();
    c.start_syncer().await;
    let (ip3, uid3, h3) = eventually("the stale host Service adopted", WAIT, || {
        converged(&c, "web")
    })
    .await;
    assert_eq!((ip3, uid3), (ip.clone(), uid.clone()));
    assert_eq!(h3["metadata"]["uid"], host_uid, "the host Service was kept");

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

#[tokio::test(flavor = "multi_thread")]
async fn an_unmanaged_host_service_with_the_name_is_left_alone_with_a_warning() {
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
    c.virt
        .kubectl_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  selector: {app: mine}\n  ports: [{port: 80}]\n",
        )
        .await
        .expect_ok();
    let ev = eventually("a SyncConflict Event", WAIT, || async {
        let evs = c.virt.get_json(&["events", "-n", "default"]).await?;
        evs["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|e| {
                        e["reason"] == "SyncConflict" && e["involvedObject"]["name"] == "clash"
                    })
                    .cloned()
            })
            .ok_or_else(|| evs.to_string())
    })
    .await;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["involvedObject"]["kind"], "Service");
    let after = c.host_get("svc", &hname).await.unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["spec"]["selector"], json!({"app": "theirs"}));
    assert!(after["metadata"]["labels"]["vkube.dev/managed-by"].is_null());
    // And it stays: deleting the virtual Service does not delete it.
    c.virt
        .kubectl(&["delete", "svc", "clash"])
        .await
        .expect_ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.host_get("svc", &hname).await.expect("still there");
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
