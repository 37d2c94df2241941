//! The syncer end to end: real kubectl against the virtual cluster, the
//! host checked with real kubectl too (see `vkube_e2e::synced`).

use std::time::Duration;

use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::{HOST_NAMESPACE, TENANT, eventually};
use vkube_syncer::node::NodeVisibility;

const WAIT: Duration = Duration::from_secs(60);

async fn absent(c: &vkube_e2e::TestCluster, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let out = c.kubectl(&all).await;
    if !out.success() && out.stderr.contains("NotFound") {
        Ok(())
    } else {
        Err(format!("still there: {}{}", out.stdout, out.stderr))
    }
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, vkube.dev/managed-by: forged}
spec:
  containers:
  - name: web
    image: nginx:1.27
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: app-secret, key: password}}
    volumeMounts:
    - {name: config, mountPath: /etc/app}
  volumes:
  - name: config
    configMap: {name: app-config}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_with_configmap_and_secret_runs_on_the_host_and_goes_away() {
    // Only the nodes running its pods: the virtual node goes with the pod.
    let c = SyncedCluster::start_with(|c| c.nodes = NodeVisibility::Used).await;
    c.virt
        .kubectl(&["create", "service", "clusterip", "backend", "--tcp=80:8080"])
        .await
        .expect_ok();
    // Service links carry the host copy's ClusterIP (the only one a host pod
    // can reach), whether or not the virtual Service has been recreated
    // with it yet.
    let backend_host = c.host_name("default", "backend");
    let backend_ip = eventually("the backend Service on the host", WAIT, || async {
        let h = c.host_get("service", &backend_host).await?;
        Ok(h["spec"]["clusterIP"].clone())
    })
    .await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], APP)
        .await
        .expect_ok();
    let pod_host = c.host_name("default", "web");

    // Host pod: documented name, labels, annotations, rewritten refs.
    let hp = eventually("the host pod", WAIT, || c.host_get("pod", &pod_host)).await;
    let labels = &hp["metadata"]["labels"];
    assert_eq!(labels["vkube.dev/managed-by"], TENANT, "{hp}");
    assert_eq!(labels["vkube.dev/namespace"], "default");
    assert_eq!(labels["app"], "web");
    let ann = &hp["metadata"]["annotations"];
    assert_eq!(ann["vkube.dev/object-name"], "web");
    assert_eq!(ann["vkube.dev/object-namespace"], "default");
    assert_eq!(ann["vkube.dev/object-kind"], "Pod");
    let spec = &hp["spec"];
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"],
        c.host_name("default", "app-config")
    );
    let env = spec["containers"][0]["env"].as_array().unwrap();
    let password = env.iter().find(|e| e["name"] == "PASSWORD").unwrap();
    assert_eq!(
        password["valueFrom"]["secretKeyRef"]["name"],
        c.host_name("default", "app-secret")
    );
    let k8s_host = env
        .iter()
        .find(|e| e["name"] == "KUBERNETES_SERVICE_HOST")
        .unwrap();
    assert_eq!(k8s_host["value"], "10.96.0.1");
    // Service links from the virtual namespace's Services, as kubelet sets them.
    let backend = env
        .iter()
        .find(|e| e["name"] == "BACKEND_SERVICE_HOST")
        .unwrap();
    assert_eq!(backend["value"], backend_ip);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(
        spec["serviceAccountName"],
        format!("vkube-workload-{TENANT}")
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"),
        "{mounts:?}"
    );

    // The referenced ConfigMap and Secret are on the host, marked.
    let cm = c
        .host_get("configmap", &c.host_name("default", "app-config"))
        .await
        .unwrap();
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(cm["metadata"]["labels"]["vkube.dev/managed-by"], TENANT);
    let secret = c
        .host_get("secret", &c.host_name("default", "app-secret"))
        .await
        .unwrap();
    assert_eq!(secret["data"]["password"], "czNjcmV0");

    // The host pod carries a token from the virtual API server, mounted
    // from its own annotations (no host Secret per pod).
    let files = delivered_token(&c, &pod_host).await;
    assert!(files["token"].split('.').count() == 3, "a JWT: {files:?}");
    assert!(files["ca.crt"].contains("BEGIN CERTIFICATE"), "{files:?}");
    assert_eq!(files["namespace"], "default");

    // Virtual pod Running with the host's IP and node; virtual node exists.
    let vp = eventually("the virtual pod to run", WAIT, || async {
        let vp = c.virt.get_json(&["pod", "web"]).await?;
        let hp = c.host_get("pod", &pod_host).await?;
        let ok = vp["status"]["phase"] == "Running"
            && vp["status"]["podIP"] == hp["status"]["podIP"]
            && vp["spec"]["nodeName"] == hp["spec"]["nodeName"]
            && vp["status"]["podIP"].is_string();
        if ok {
            Ok(vp)
        } else {
            Err(format!("virtual {} host {}", vp["status"], hp["status"]))
        }
    })
    .await;
    let node = vp["spec"]["nodeName"].as_str().unwrap().to_string();
    let vnode = eventually("the virtual node", WAIT, || async {
        c.virt.get_json(&["node", &node]).await
    })
    .await;
    assert!(vnode["status"]["capacity"]["pods"].is_string(), "{vnode}");
    c.virt
        .kubectl(&["get", "pods", "-o", "wide"])
        .await
        .expect_stdout_contains(&["web", "Running", &node]);

    // Deleting the virtual pod removes the host pod, the unneeded
    // ConfigMap/Secret, and the virtual node.
    c.virt
        .kubectl(&["delete", "pod", "web", "--timeout=60s"])
        .await
        .expect_ok();
    eventually("the host pod to go", WAIT, || async {
        absent(&c.host, &["pod", &pod_host, "-n", HOST_NAMESPACE]).await
    })
    .await;
    let cm_host = c.host_name("default", "app-config");
    eventually("the host configmap to go", WAIT, || async {
        absent(&c.host, &["configmap", &cm_host, "-n", HOST_NAMESPACE]).await
    })
    .await;
    let secret_host = c.host_name("default", "app-secret");
    eventually("the host secret to go", WAIT, || async {
        absent(&c.host, &["secret", &secret_host, "-n", HOST_NAMESPACE]).await
    })
    .await;
    eventually("the virtual node to go", WAIT, || async {
        absent(&c.virt, &["node", &node]).await
    })
    .await;
    // The virtual ConfigMap itself is untouched.
    c.virt
        .kubectl(&["get", "configmap", "app-config"])
        .await
        .expect_ok();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_or_evicting_the_host_pod_deletes_the_virtual_pod() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl(&["run", "lonely", "--image=busybox", "--", "sleep", "3600"])
        .await
        .expect_ok();
    eventually("running", WAIT, || async {
        let vp = c.virt.get_json(&["pod", "lonely"]).await?;
        (vp["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(vp["status"].to_string())
    })
    .await;
    let host = c.host_name("default", "lonely");
    c.host
        .kubectl(&["delete", "pod", &host, "-n", HOST_NAMESPACE])
        .await
        .expect_ok();
    eventually("the virtual pod to go", WAIT, || async {
        absent(&c.virt, &["pod", "lonely"]).await
    })
    .await;

    // Evicted on the host (status Failed/Evicted, pod kept): the virtual
    // pod is deleted too.
    c.virt
        .kubectl(&["run", "evictee", "--image=busybox"])
        .await
        .expect_ok();
    let host = c.host_name("default", "evictee");
    eventually("running", WAIT, || async {
        let vp = c.virt.get_json(&["pod", "evictee"]).await?;
        (vp["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(vp["status"].to_string())
    })
    .await;
    let evicted = r#"{"status":{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}}"#;
    c.host
        .kubectl(&[
            "patch",
            "pod",
            &host,
            "-n",
            HOST_NAMESPACE,
            "--subresource=status",
            "--type=merge",
            "-p",
            evicted,
        ])
        .await
        .expect_ok();
    eventually("the evicted virtual pod to go", WAIT, || async {
        absent(&c.virt, &["pod", "evictee"]).await
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmanaged_host_object_is_left_alone_with_a_sync_conflict_event() {
    let c = SyncedCluster::start().await;
    let host = c.host_name("default", "clash");
    c.host
        .kubectl(&["create", "namespace", HOST_NAMESPACE])
        .await;
    c.host
        .kubectl(&[
            "run",
            &host,
            "-n",
            HOST_NAMESPACE,
            "--image=busybox",
            "--labels=owner=someone-else",
        ])
        .await
        .expect_ok();
    let before = c.host_get("pod", &host).await.unwrap();
    c.virt
        .kubectl(&["run", "clash", "--image=nginx"])
        .await
        .expect_ok();
    eventually("a SyncConflict event", WAIT, || async {
        let out = c
            .virt
            .kubectl(&[
                "get",
                "events",
                "--field-selector=involvedObject.name=clash",
            ])
            .await;
        out.stdout
            .contains("SyncConflict")
            .then_some(())
            .ok_or(out.stdout)
    })
    .await;
    // Give the syncer a few resync rounds to misbehave, then compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = c.host_get("pod", &host).await.unwrap();
    assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    assert!(after["metadata"]["annotations"]["vkube.dev/object-uid"].is_null());
    assert_eq!(after["spec"]["containers"][0]["image"], "busybox");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostpath_privileged_and_added_capability_pods_are_refused_with_an_event() {
    // Without admission in front, the syncer's own check refuses them.
    let c = SyncedCluster::start_without_admission().await;
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: sneaky}
spec:
  containers: [{name: c, image: busybox, volumeMounts: [{name: root, mountPath: /host}]}]
  volumes: [{name: root, hostPath: {path: /}}]
---
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]
---
apiVersion: v1
kind: Pod
metadata: {name: caps}
spec:
  containers: [{name: c, image: busybox, securityContext: {capabilities: {add: [SYS_ADMIN]}}}]
"#;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], pods)
        .await
        .expect_ok();
    for name in ["sneaky", "root", "caps"] {
        c.wait_event(name, "SyncRefused", "").await;
        let vp = c.virt.get_json(&["pod", name]).await.unwrap();
        assert_eq!(vp["status"]["phase"], "Pending", "{vp}");
        assert_eq!(vp["status"]["reason"], "SyncRefused", "{vp}");
        let host = c.host_name("default", name);
        absent(&c.host, &["pod", &host, "-n", HOST_NAMESPACE])
            .await
            .unwrap();
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_security_admission_refuses_at_create_time() {
    let c = SyncedCluster::start().await;
    let out = c
        .virt
        .kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Pod\nmetadata: {name: root}\nspec:\n  hostPID: true\n  containers: [{name: c, image: busybox, securityContext: {privileged: true}}]\n",
        )
        .await;
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains(
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true), privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{out}"
    );
    // kubectl debug node/…: tenants have no node of their own to enter.
    let node = c
        .virt
        .kubectl(&["get", "nodes", "-o", "name"])
        .await
        .expect_ok();
    let node = node.stdout.lines().next().unwrap_or_default().to_string();
    if !node.is_empty() {
        let out = c
            .virt
            .kubectl(&["debug", &node, "--image=busybox", "--", "true"])
            .await;
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains("violates PodSecurity"), "{out}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_of_three_runs_three_host_pods() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=3",
        ])
        .await
        .expect_ok();
    eventually("3 running virtual pods and 3 host pods", WAIT, || async {
        let v = c.virt.get_json(&["pods", "-l", "app=web"]).await?;
        let running = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        let sel = format!("vkube.dev/managed-by={TENANT}");
        let h = c
            .host
            .get_json(&["pods", "-n", HOST_NAMESPACE, "-l", &sel])
            .await?;
        let hosts = h["items"].as_array().unwrap().len();
        (running == 3 && hosts == 3)
            .then_some(())
            .ok_or(format!("{running} running, {hosts} host pods"))
    })
    .await;
    c.virt
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await
        .expect_ok();
    c.shutdown().await;
}

/// Issue 4's done-when: stop the syncer mid-sync of 500 pods, delete some
/// virtual pods while it is down (graceful and forced), restart: the host
/// converges exactly (no orphans, no missing objects).
#[tokio::test(flavor = "multi_thread")]
async fn restarting_mid_sync_of_500_pods_converges_exactly() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use std::collections::BTreeMap;

    let mut c = SyncedCluster::start().await;
    let vpods: Api<Pod> = Api::namespaced(c.virt.client().await, "default");
    let hpods: Api<Pod> = Api::namespaced(c.host.client().await, HOST_NAMESPACE);
    let managed = ListParams::default().labels(&format!("vkube.dev/managed-by={TENANT}"));
    futures::stream::iter(0..500)
        .map(|i| {
            let vpods = vpods.clone();
            async move {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p{i:03}"), "labels": {"batch": "restart"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                }))
                .unwrap();
                vpods.create(&PostParams::default(), &pod).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating 500 virtual pods");

    // Mid-sync: some host pods exist, not all.
    let seen = eventually("the first host pods", WAIT, || async {
        let n = hpods
            .list(&managed)
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        (n >= 20).then_some(n).ok_or(format!("{n} host pods"))
    })
    .await;
    c.stop_syncer().await;
    let at_stop = hpods.list(&managed).await.unwrap().items.len();
    eprintln!("syncer stopped with {at_stop} host pods (saw {seen})");

    // While it is down: 50 graceful deletes, 50 forced ones.
    for i in 0..100 {
        let dp = if i % 2 == 0 {
            DeleteParams::default()
        } else {
            DeleteParams::default().grace_period(0)
        };
        vpods
            .delete(&format!("p{:03}", i * 5), &dp)
            .await
            .expect("deleting a virtual pod");
    }
    c.start_syncer().await;

    let converged = eventually("the host to converge", Duration::from_secs(180), || async {
        let v = vpods.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let terminating = v.items.iter().filter(|p| p.metadata.deletion_timestamp.is_some()).count();
        let want: BTreeMap<String, String> = v
            .items
            .iter()
            .map(|p| {
                (c.host_name("default", p.metadata.name.as_deref().unwrap()), p.metadata.uid.clone().unwrap())
            })
            .collect();
        let h = hpods.list(&managed).await.map_err(|e| e.to_string())?;
        let have: BTreeMap<String, String> = h
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let uid = p.metadata.annotations.as_ref().and_then(|a| a.get("vkube.dev/object-uid")).cloned();
                (p.metadata.name.clone().unwrap(), uid.unwrap_or_default())
            })
            .collect();
        if terminating == 0 && want.len() == 400 && want == have && h.items.len() == 400 {
            Ok(have.len())
        } else {
            let missing = want.keys().filter(|k| !have.contains_key(*k)).count();
            let orphans = have.keys().filter(|k| !want.contains_key(*k)).count();
            Err(format!(
                "{} virtual ({terminating} terminating), {} host: {missing} missing, {orphans} orphans",
                want.len(),
                h.items.len()
            ))
        }
    })
    .await;
    assert_eq!(converged, 400);
    c.shutdown().await;
}

/// Creates Job `once` (a pod that exits 0) in the virtual cluster and waits
/// until it is Complete.
async fn run_job_once(c: &SyncedCluster) {
    c.virt
        .kubectl(&[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "exit 0",
        ])
        .await
        .expect_ok();
    c.virt
        .kubectl(&[
            "wait",
            "--for=condition=Complete",
            "job/once",
            "--timeout=60s",
        ])
        .await
        .expect_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_completes_and_an_image_change_reaches_the_host() {
    let c = SyncedCluster::start().await;
    run_job_once(&c).await;
    let pods = c
        .virt
        .get_json(&["pods", "-l", "job-name=once"])
        .await
        .unwrap();
    assert!(
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["status"]["phase"] == "Succeeded"),
        "{pods}"
    );

    c.virt
        .kubectl(&["run", "img", "--image=nginx:1.26"])
        .await
        .expect_ok();
    let host = c.host_name("default", "img");
    eventually("the host pod", WAIT, || c.host_get("pod", &host)).await;
    c.virt
        .kubectl(&["set", "image", "pod/img", "img=nginx:1.27"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["label", "pod/img", "tier=web"])
        .await
        .expect_ok();
    eventually("the new image and label on the host", WAIT, || async {
        let hp = c.host_get("pod", &host).await?;
        (hp["spec"]["containers"][0]["image"] == "nginx:1.27"
            && hp["metadata"]["labels"]["tier"] == "web")
            .then_some(())
            .ok_or(hp["spec"]["containers"][0]["image"].to_string())
    })
    .await;
    // An annotation the tenant adds and then removes goes from the host pod;
    // one the host added itself stays.
    c.virt
        .kubectl(&["annotate", "pod/img", "team.example/owner=alice"])
        .await
        .expect_ok();
    eventually("the annotation on the host", WAIT, || async {
        let hp = c.host_get("pod", &host).await?;
        (hp["metadata"]["annotations"]["team.example/owner"] == "alice")
            .then_some(())
            .ok_or(hp["metadata"]["annotations"].to_string())
    })
    .await;
    c.host_kubectl(&[
        "annotate",
        &format!("pod/{host}"),
        "host.example/admitted=yes",
    ])
    .await
    .expect_ok();
    c.virt
        .kubectl(&["annotate", "pod/img", "team.example/owner-"])
        .await
        .expect_ok();
    eventually("the annotation gone from the host", WAIT, || async {
        let hp = c.host_get("pod", &host).await?;
        let ann = &hp["metadata"]["annotations"];
        (ann.get("team.example/owner").is_none() && ann["host.example/admitted"] == "yes")
            .then_some(())
            .ok_or(ann.to_string())
    })
    .await;
    c.shutdown().await;
}

/// The files the host pod `host` gets at the token mount path: read from
/// its annotations through its downwardAPI token volume, or from its token
/// Secret (`SyncerConfig::token_secrets`). Waits until they are there.
async fn delivered_token(
    c: &SyncedCluster,
    host: &str,
) -> std::collections::BTreeMap<String, String> {
    use base64::Engine;
    eventually("the delivered token", WAIT, || async {
        let hp = c.host_get("pod", host).await?;
        let vol = hp["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "vkube-sa-token").cloned())
            .ok_or("no token volume")?;
        let mounted = hp["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .is_some_and(|m| {
                m.iter().any(|m| {
                    m["name"] == "vkube-sa-token"
                        && m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
                })
            });
        if !mounted {
            return Err(format!("not mounted: {}", hp["spec"]));
        }
        let mut files = std::collections::BTreeMap::new();
        if let Some(items) = vol["downwardAPI"]["items"].as_array() {
            for item in items {
                let field = item["fieldRef"]["fieldPath"].as_str().unwrap_or_default();
                let key = field
                    .strip_prefix("metadata.annotations['")
                    .and_then(|k| k.strip_suffix("']"))
                    .ok_or(field.to_string())?;
                let value = hp["metadata"]["annotations"][key]
                    .as_str()
                    .unwrap_or_default();
                files.insert(
                    item["path"].as_str().unwrap().to_string(),
                    value.to_string(),
                );
            }
        } else {
            let secret = c
                .host_get("secret", vol["secret"]["secretName"].as_str().unwrap())
                .await?;
            for (k, v) in secret["data"].as_object().ok_or("no data")? {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                files.insert(k.clone(), String::from_utf8(bytes).unwrap());
            }
        }
        files
            .get("token")
            .is_some_and(|t| !t.is_empty())
            .then_some(files.clone())
            .ok_or(format!("no token yet: {files:?}"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_delivered_token_authenticates_to_the_virtual_server_and_opt_out_gets_none() {
    token_delivery(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_secret_option_delivers_the_same_token() {
    token_delivery(true).await;
}

async fn token_delivery(token_secrets: bool) {
    use base64::Engine;
    let c = SyncedCluster::start_with(|s| s.token_secrets = token_secrets).await;
    c.virt
        .kubectl(&["run", "client", "--image=busybox"])
        .await
        .expect_ok();
    let host = c.host_name("default", "client");
    let files = delivered_token(&c, &host).await;
    let hp = c.host_get("pod", &host).await.unwrap();
    let by_secret = hp["spec"]["volumes"].to_string().contains("secretName");
    assert_eq!(by_secret, token_secrets, "{}", hp["spec"]["volumes"]);
    let token = files["token"].clone();
    if !token_secrets {
        // A token taken off the host pod is put back (the refresh path: one
        // patch of the pod's annotations).
        c.host_kubectl(&[
            "annotate",
            &format!("pod/{host}"),
            "vkube.dev/sa-token-",
            "vkube.dev/sa-token-refresh-at-",
        ])
        .await
        .expect_ok();
        let again = delivered_token(&c, &host).await;
        assert_eq!(again["namespace"], "default");
        let hp = c.host_get("pod", &host).await.unwrap();
        assert!(
            hp["metadata"]["annotations"]["vkube.dev/sa-token-refresh-at"].is_string(),
            "{}",
            hp["metadata"]
        );
    }
    // Authenticated as the pod's virtual service account, bound to the
    // pod: the virtual server issued it.
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: v\n  cluster:\n    server: https://{}\n    certificate-authority-data: {}\nusers:\n- name: pod\n  user:\n    token: {token}\ncontexts:\n- name: pod\n  context: {{cluster: v, user: pod}}\ncurrent-context: pod\n",
        c.virt.server.addr,
        base64::engine::general_purpose::STANDARD.encode(&c.virt.server.pki.ca_cert),
    );
    let path = c.virt.write_file("pod-token.kubeconfig", &kubeconfig);
    let out = c
        .virt
        .kubectl(&[
            "auth",
            "whoami",
            "-o",
            "json",
            "--kubeconfig",
            path.to_str().unwrap(),
        ])
        .await
        .expect_ok();
    let user = &out.json()["status"]["userInfo"];
    assert_eq!(
        user["username"], "system:serviceaccount:default:default",
        "{out}"
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"][0], "client",
        "{out}"
    );

    // A pod opting out gets neither volume nor Secret.
    let opt_out = r#"
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: busybox}]
"#;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], opt_out)
        .await
        .expect_ok();
    let host = c.host_name("default", "quiet");
    let hp = eventually("the host pod", WAIT, || c.host_get("pod", &host)).await;
    assert!(
        !hp["spec"].to_string().contains("vkube-sa-token"),
        "{}",
        hp["spec"]
    );

    // The metrics saw it.
    let text = c.metrics().unwrap().render();
    assert!(
        text.contains("vkube_syncer_reconciles_total{kind=\"Pod\"}"),
        "{text}"
    );
    assert!(text.contains("direction=\"virtual_to_host\""), "{text}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_recreated_under_the_same_name_replaces_its_host_copy() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl(&["run", "again", "--image=busybox"])
        .await
        .expect_ok();
    let host = c.host_name("default", "again");
    let first = eventually("the host pod", WAIT, || c.host_get("pod", &host)).await;
    c.virt
        .kubectl(&["delete", "pod", "again", "--grace-period=0", "--force"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["run", "again", "--image=nginx"])
        .await
        .expect_ok();
    let vuid = c.virt.get_json(&["pod", "again"]).await.unwrap()["metadata"]["uid"].clone();
    eventually("the host copy of the new pod", WAIT, || async {
        let hp = c.host_get("pod", &host).await?;
        (hp["metadata"]["annotations"]["vkube.dev/object-uid"] == vuid
            && hp["metadata"]["uid"] != first["metadata"]["uid"]
            && hp["spec"]["containers"][0]["image"] == "nginx")
            .then_some(())
            .ok_or(hp["metadata"].to_string())
    })
    .await;
    c.shutdown().await;
}

/// Nothing is lost when either API server restarts: the syncer's watches
/// reconnect, relist, and the resync that follows catches up.
#[tokio::test(flavor = "multi_thread")]
async fn the_syncer_survives_restarts_of_both_api_servers() {
    let mut c = SyncedCluster::start().await;
    c.virt
        .kubectl(&["run", "before", "--image=busybox"])
        .await
        .expect_ok();
    let before = c.host_name("default", "before");
    eventually("the first host pod", WAIT, || c.host_get("pod", &before)).await;

    c.host.restart_server().await;
    c.virt
        .kubectl(&["run", "during", "--image=busybox"])
        .await
        .expect_ok();
    let during = c.host_name("default", "during");
    eventually("a pod created after the host restarted", WAIT, || {
        c.host_get("pod", &during)
    })
    .await;

    c.virt.restart_server().await;
    c.virt
        .kubectl(&["delete", "pod", "before", "--timeout=60s"])
        .await
        .expect_ok();
    eventually("the host pod of the deleted pod to go", WAIT, || async {
        absent(&c.host, &["pod", &before, "-n", HOST_NAMESPACE]).await
    })
    .await;
    eventually("the surviving pod to run", WAIT, || async {
        let vp = c.virt.get_json(&["pod", "during"]).await?;
        (vp["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(vp["status"].to_string())
    })
    .await;
    c.shutdown().await;
}

/// With only the nodes in use shown, a finished pod whose host pod went
/// with `vkube pause` keeps its node shown after the resume: no host pod
/// runs there, but a virtual pod names it, and the tenant's pod garbage
/// collector would take a node that is not shown for a deleted one.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_pod_keeps_its_node_shown_across_pause_and_resume() {
    let mut c = SyncedCluster::start_with(|c| c.nodes = NodeVisibility::Used).await;
    run_job_once(&c).await;
    let pods = c
        .virt
        .get_json(&["pods", "-l", "job-name=once"])
        .await
        .unwrap();
    let node = pods["items"][0]["spec"]["nodeName"]
        .as_str()
        .expect("the Job's pod is bound")
        .to_string();
    eventually("the virtual node", WAIT, || async {
        c.virt_get("node", &node).await.map(drop)
    })
    .await;
    c.stop_syncer().await;
    let host_client = c.host.client().await;
    vkube_syncer::pause::pause_pods(&host_client, c.tenant())
        .await
        .expect("pausing");
    c.start_syncer().await;
    let record = vkube_syncer::pause::record_name(c.tenant());
    eventually("the record removed", WAIT, || async {
        match c.host_get("configmap", &record).await {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The resumed syncer has reconciled the node by now; it stays.
    for _ in 0..10 {
        c.virt_get("node", &node)
            .await
            .expect("the node of a finished pod stays shown");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let pod = c
        .virt
        .get_json(&["pods", "-l", "job-name=once"])
        .await
        .unwrap();
    assert_eq!(pod["items"][0]["status"]["phase"], "Succeeded", "{pod}");
    c.shutdown().await;
}

/// `vkube pause` then `vkube resume`, as the syncer sees them: the syncer
/// stops (the virtual cluster's process is scaled away), the pause records
/// and deletes the host pods, the syncer starts again.
#[tokio::test(flavor = "multi_thread")]
async fn pause_and_resume_keep_every_pod_of_the_tenant() {
    let mut c = SyncedCluster::start().await;
    c.virt
        .kubectl(&["run", "solo", "--image=nginx"])
        .await
        .expect_ok();
    run_job_once(&c).await;
    c.virt
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
        ])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["wait", "--for=condition=Ready", "pod/solo", "--timeout=60s"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await
        .expect_ok();
    let pods_of = |list: serde_json::Value| -> Vec<(String, String, String, String)> {
        let mut out: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&p["metadata"]["name"]),
                    s(&p["metadata"]["uid"]),
                    s(&p["status"]["phase"]),
                    s(&p["spec"]["nodeName"]),
                )
            })
            .collect();
        out.sort();
        out
    };
    let before = pods_of(c.virt.get_json(&["pods"]).await.unwrap());
    assert_eq!(before.len(), 4, "{before:?}");
    let job_pod = before
        .iter()
        .find(|p| p.0.starts_with("once-"))
        .cloned()
        .expect("the Job's pod");
    assert_eq!(job_pod.2, "Succeeded");
    let solo_host = c.host_name("default", "solo");
    let solo_host_uid = c.host_get("pod", &solo_host).await.unwrap()["metadata"]["uid"].clone();

    // Pause: the syncer stops first, then the host pods are recorded and go.
    c.stop_syncer().await;
    let host_client = c.host.client().await;
    let stopped = vkube_syncer::pause::pause_pods(&host_client, c.tenant())
        .await
        .expect("pausing");
    assert_eq!(stopped, 4);
    let record = vkube_syncer::pause::record_name(c.tenant());
    let recorded = c.host_get("configmap", &record).await.expect("the record");
    assert_eq!(
        recorded["data"].as_object().map(|d| d.len()),
        Some(4),
        "{recorded}"
    );
    eventually("the host pods to go", WAIT, || async {
        let hp = c
            .host
            .get_json(&[
                "pods",
                "-n",
                HOST_NAMESPACE,
                "-l",
                &format!("vkube.dev/managed-by={TENANT}"),
            ])
            .await?;
        hp["items"]
            .as_array()
            .is_some_and(|i| i.is_empty())
            .then_some(())
            .ok_or(hp.to_string())
    })
    .await;

    // Resume.
    c.start_syncer().await;
    eventually("the running pods back on the host", WAIT, || async {
        let hp = c.host_get("pod", &solo_host).await?;
        if hp["metadata"]["uid"] == solo_host_uid {
            return Err("still the old host pod".into());
        }
        let v = c.virt_get("pod", "solo").await?;
        (v["status"]["phase"] == "Running" && hp["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(format!("virtual {}, host {}", v["status"], hp["status"]))
    })
    .await;
    let after = eventually("every pod Running or Succeeded again", WAIT, || async {
        let now = pods_of(c.virt.get_json(&["pods"]).await?);
        now.iter()
            .all(|p| p.2 == "Running" || p.2 == "Succeeded")
            .then_some(now.clone())
            .ok_or(format!("{now:?}"))
    })
    .await;
    // The same pods (names and uids), on the same nodes; the Job's pod kept
    // its final status and was not run again.
    assert_eq!(after, before);
    assert!(
        c.host_get("pod", &c.host_name("default", &job_pod.0))
            .await
            .is_err(),
        "a finished pod is not run again"
    );
    for p in before.iter().filter(|p| p.0 != job_pod.0) {
        let hp = c
            .host_get("pod", &c.host_name("default", &p.0))
            .await
            .unwrap();
        assert_eq!(
            hp["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
            p.3.as_str(),
            "pinned to its node: {hp}"
        );
    }
    eventually("the record removed", WAIT, || async {
        match c.host_get("configmap", &record).await {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.shutdown().await;
}

/// The virtual node names, sorted.
async fn virtual_nodes(c: &SyncedCluster) -> Result<Vec<String>, String> {
    let nodes = c.virt.get_json(&["nodes"]).await?;
    let mut names: Vec<String> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_virtual_cluster_shows_the_host_nodes_and_runs_daemonsets_on_them() {
    // The default (auto): the syncer may list host nodes, so it shows all.
    let c = SyncedCluster::start().await;
    eventually("the host's node in the tenant", WAIT, || async {
        let names = virtual_nodes(&c).await?;
        (names == ["vkube-sim-node"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await;
    let node = c.virt.get_json(&["node", "vkube-sim-node"]).await.unwrap();
    assert!(
        node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "{node}"
    );
    c.virt
        .kubectl_stdin(
            &["create", "-f", "-"],
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: agent, image: busybox}]}\n",
        )
        .await
        .expect_ok();
    c.virt
        .kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await
        .expect_ok();
    let pods = c.virt.get_json(&["pods", "-l", "app=agent"]).await.unwrap();
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one pod per visible node: {pods}");
    assert_eq!(items[0]["spec"]["nodeName"], "vkube-sim-node");
    let name = items[0]["metadata"]["name"].as_str().unwrap();
    let hp = c
        .host_get("pod", &c.host_name("default", name))
        .await
        .unwrap();
    assert_eq!(hp["status"]["phase"], "Running", "{hp}");
    assert_eq!(
        hp["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchFields"][0],
        serde_json::json!({"key": "metadata.name", "operator": "In", "values": ["vkube-sim-node"]}),
        "placed by the host scheduler on its node: {hp}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_selector_limits_the_nodes_a_tenant_sees() {
    let c = SyncedCluster::start_with(|c| {
        c.nodes = NodeVisibility::Selector("pool=tenants".into());
    })
    .await;
    c.host
        .kubectl_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: Node\nmetadata: {name: pool-node, labels: {pool: tenants}}\n",
        )
        .await
        .expect_ok();
    eventually("only the selected node", WAIT, || async {
        let names = virtual_nodes(&c).await?;
        (names == ["pool-node"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await;
    // A node running one of the tenant's pods is shown as well.
    c.virt
        .kubectl(&["run", "web", "--image=nginx"])
        .await
        .expect_ok();
    eventually("the used node too", WAIT, || async {
        let names = virtual_nodes(&c).await?;
        (names == ["pool-node", "vkube-sim-node"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await;
    // A node leaving the selection leaves the tenant.
    c.host
        .kubectl(&["label", "node", "pool-node", "pool=others", "--overwrite"])
        .await
        .expect_ok();
    eventually("the node to leave", WAIT, || async {
        let names = virtual_nodes(&c).await?;
        (names == ["vkube-sim-node"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await;
    c.shutdown().await;
}
