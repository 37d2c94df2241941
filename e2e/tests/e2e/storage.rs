//! Storage through the syncer, end to end with real kubectl: claims made
//! in the tenant (by a StatefulSet, by hand, by an ephemeral volume) are
//! created on the host, bound there (the node simulator stands in for the
//! host's default StorageClass and provisioner), and come back Bound with
//! a virtual PersistentVolume; the host's StorageClasses show in the
//! tenant; hostile claims are refused.

use std::time::Duration;

use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::{TENANT, eventually};

const WAIT: Duration = Duration::from_secs(90);

const APPS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 9042}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: cassandra
          image: cassandra:5
          volumeMounts: [{name: data, mountPath: /var/lib/cassandra}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: model-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: model}
spec:
  replicas: 1
  selector: {matchLabels: {app: model}}
  template:
    metadata: {labels: {app: model}}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:latest
          volumeMounts: [{name: weights, mountPath: /models}]
      volumes:
        - name: weights
          persistentVolumeClaim: {claimName: model-data}
---
apiVersion: v1
kind: Pod
metadata: {name: scratch}
spec:
  containers: [{name: c, image: busybox, command: [sleep, infinity]}]
  volumes:
    - name: tmp
      ephemeral:
        volumeClaimTemplate:
          spec:
            accessModes: [ReadWriteOnce]
            resources: {requests: {storage: 256Mi}}
"#;

/// Waits until virtual claim `name` is Bound to a virtual volume that
/// names it; returns (claim uid, volume name).
async fn wait_bound(c: &SyncedCluster, name: &str) -> (String, String) {
    eventually(&format!("claim {name} Bound"), WAIT, || async {
        let pvc = c.virt_get("pvc", name).await?;
        let volume = pvc["spec"]["volumeName"].as_str().unwrap_or_default();
        if pvc["status"]["phase"] != "Bound" || volume.is_empty() {
            return Err(format!("{}", pvc["status"]));
        }
        let pv = c.virt.get_json(&["pv", volume]).await?;
        let claim = &pv["spec"]["claimRef"];
        (claim["name"] == name
            && claim["namespace"] == "default"
            && claim["uid"] == pvc["metadata"]["uid"]
            && pv["status"]["phase"] == "Bound")
            .then(|| {
                (
                    pvc["metadata"]["uid"].as_str().unwrap().to_string(),
                    volume.to_string(),
                )
            })
            .ok_or(format!("{pv}"))
    })
    .await
}

async fn host_claim_absent(c: &SyncedCluster, name: &str) -> Result<(), String> {
    let host = c.host_name("default", name);
    match c.host_get("pvc", &host).await {
        Err(e) if e.contains("NotFound") => Ok(()),
        Ok(pvc) => Err(format!("still there: {}", pvc["metadata"])),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn stateful_sets_and_deployments_with_claims_run_and_clean_up() {
    let c = SyncedCluster::start().await;
    // The host's default class is shown in the tenant.
    eventually("the host's StorageClass in the tenant", WAIT, || async {
        let out = c.virt.kubectl(&["get", "storageclass"]).await;
        out.stdout
            .contains("standard (default)")
            .then_some(())
            .ok_or(out.stdout + &out.stderr)
    })
    .await;
    // So are the host's CSI drivers.
    c.host
        .kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {name: hostpath.csi.k8s.io}\nspec: {attachRequired: false, podInfoOnMount: true}\n",
        )
        .await
        .expect_ok();
    eventually("the host's CSIDriver in the tenant", WAIT, || async {
        let d = c
            .virt
            .get_json(&["csidriver", "hostpath.csi.k8s.io"])
            .await?;
        (d["spec"]["podInfoOnMount"] == true)
            .then_some(())
            .ok_or(d.to_string())
    })
    .await;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], APPS)
        .await
        .expect_ok();
    for pod in ["db-0", "db-1", "db-2", "scratch"] {
        c.wait_running(pod).await;
    }
    // The CSINode of a node the tenant sees is shown; one of a node it
    // does not see is not.
    let node = c.virt_get("pod", "db-0").await.unwrap()["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    for name in [node.as_str(), "ghost-node"] {
        let csinode = format!(
            "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata: {{name: {name}}}\nspec:\n  drivers: [{{name: hostpath.csi.k8s.io, nodeID: {name}, topologyKeys: [topology.hostpath.csi/node]}}]\n"
        );
        c.host
            .kubectl_stdin(&["apply", "-f", "-"], &csinode)
            .await
            .expect_ok();
    }
    eventually("the node's CSINode in the tenant", WAIT, || async {
        let n = c.virt.get_json(&["csinode", &node]).await?;
        (n["spec"]["drivers"][0]["nodeID"] == node.as_str())
            .then_some(())
            .ok_or(n.to_string())
    })
    .await;
    let ghost = c.virt.kubectl(&["get", "csinode", "ghost-node"]).await;
    assert!(ghost.stderr.contains("NotFound"), "{ghost:?}");
    let model = eventually("the model pod", WAIT, || async {
        let pods = c.virt.get_json(&["pods", "-l", "app=model"]).await?;
        pods["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_string)
            .ok_or(pods.to_string())
    })
    .await;
    c.wait_running(&model).await;

    let mut volumes = Vec::new();
    for claim in [
        "data-db-0",
        "data-db-1",
        "data-db-2",
        "model-data",
        "scratch-tmp",
    ] {
        let (_, volume) = wait_bound(&c, claim).await;
        let host = c
            .host_get("pvc", &c.host_name("default", claim))
            .await
            .unwrap();
        assert_eq!(host["status"]["phase"], "Bound", "{host}");
        assert_eq!(
            host["spec"]["volumeName"],
            volume.as_str(),
            "same volume name"
        );
        volumes.push(volume);
    }
    // The host pods mount the host claims.
    let host_pod = c
        .host_get("pod", &c.host_name("default", "db-0"))
        .await
        .unwrap();
    assert_eq!(
        host_pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        c.host_name("default", "data-db-0").as_str(),
        "{}",
        host_pod["spec"]["volumes"]
    );
    let pvs = c.virt.kubectl(&["get", "pv"]).await.expect_ok();
    for claim in [
        "default/data-db-0",
        "default/model-data",
        "default/scratch-tmp",
    ] {
        assert!(pvs.stdout.contains(claim), "{}", pvs.stdout);
    }
    let get_pvc = c
        .virt
        .kubectl(&["get", "pvc", "data-db-1"])
        .await
        .expect_ok();
    assert!(
        get_pvc.stdout.contains("Bound") && get_pvc.stdout.contains("1Gi"),
        "{}",
        get_pvc.stdout
    );

    // A deleted pod comes back to the same claim.
    let (uid, volume) = wait_bound(&c, "data-db-1").await;
    c.virt
        .kubectl(&["delete", "pod", "db-1", "--wait=false"])
        .await
        .expect_ok();
    eventually("db-1 recreated", WAIT, || async {
        let p = c.virt_get("pod", "db-1").await?;
        (p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(format!("{}", p["status"]))
    })
    .await;
    assert_eq!(wait_bound(&c, "data-db-1").await, (uid, volume));

    // Expansion is pushed to the host; the capacity the host reaches comes
    // back.
    c.virt
        .kubectl(&[
            "patch",
            "pvc",
            "model-data",
            "-p",
            r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#,
        ])
        .await
        .expect_ok();
    eventually("the expanded claim", WAIT, || async {
        let host = c
            .host_get("pvc", &c.host_name("default", "model-data"))
            .await?;
        let v = c.virt_get("pvc", "model-data").await?;
        (host["spec"]["resources"]["requests"]["storage"] == "2Gi"
            && v["status"]["capacity"]["storage"] == "2Gi")
            .then_some(())
            .ok_or(format!("{} {}", host["spec"], v["status"]))
    })
    .await;

    // Everything goes: the StatefulSet, the Deployment, the pod, then the
    // claims the StatefulSet left behind (as on a real cluster).
    c.virt
        .kubectl(&[
            "delete",
            "statefulset/db",
            "deployment/model",
            "pod/scratch",
        ])
        .await
        .expect_ok();
    c.virt
        .kubectl(&[
            "delete",
            "pvc",
            "data-db-0",
            "data-db-1",
            "data-db-2",
            "model-data",
        ])
        .await
        .expect_ok();
    for claim in [
        "data-db-0",
        "data-db-1",
        "data-db-2",
        "model-data",
        "scratch-tmp",
    ] {
        eventually("the host claim gone", WAIT, || host_claim_absent(&c, claim)).await;
    }
    for (side, cluster) in [("virtual", &c.virt), ("host", &c.host)] {
        eventually(&format!("no {side} volumes left"), WAIT, || async {
            let pvs = cluster.get_json(&["pv"]).await?;
            pvs["items"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
                .ok_or(pvs.to_string())
        })
        .await;
    }
    c.shutdown().await;
}

#[tokio::test]
async fn claims_that_would_reach_host_volumes_are_refused() {
    let c = SyncedCluster::start().await;
    // A volume on the host the tenant must not claim (another tenant's,
    // or an administrator's).
    c.host
        .kubectl_stdin(
            &["apply", "-f", "-"],
            r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: precious, labels: {tier: gold}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {path: /srv/precious}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"#,
        )
        .await
        .expect_ok();
    let claims = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: by-name}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  volumeName: precious
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: by-label}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  selector: {matchLabels: {tier: gold}}
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cross-namespace}
spec:
  accessModes: [ReadWriteOnce]
  dataSourceRef: {kind: PersistentVolumeClaim, name: secrets, namespace: kube-system}
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: class-less}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: local-only}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 1Gi}}
"#;
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], claims)
        .await
        .expect_ok();
    for (name, why) in [
        ("by-name", "spec.volumeName"),
        ("by-label", "spec.selector"),
        ("cross-namespace", "spec.dataSourceRef"),
        ("class-less", "storageClassName \"\""),
        ("local-only", "kubernetes.io/no-provisioner"),
    ] {
        c.wait_event(name, "SyncRefused", why).await;
        host_claim_absent(&c, name).await.unwrap();
    }
    // A virtual volume forged to look like the syncer's, for the claim
    // that names the host volume, does not make the name acceptable.
    let uid = c.virt_get("pvc", "by-name").await.unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = format!(
        r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: precious
  labels: {{vkube.dev/managed-by: {TENANT}}}
  annotations: {{vkube.dev/object-name: by-name, vkube.dev/object-namespace: default, vkube.dev/object-uid: {uid}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  flexVolume: {{driver: vkube.dev/host-volume}}
  claimRef: {{namespace: default, name: by-name, uid: {uid}}}
"#
    );
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], &forged)
        .await
        .expect_ok();
    c.virt
        .kubectl(&["annotate", "pvc", "by-name", "retry=1"])
        .await
        .expect_ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    host_claim_absent(&c, "by-name").await.unwrap();
    let precious = c.host.get_json(&["pv", "precious"]).await.unwrap();
    assert!(
        precious["spec"]["claimRef"].is_null(),
        "the host volume stays unclaimed: {precious}"
    );
    c.shutdown().await;
}

/// The restart test for claims: stop the syncer mid-sync of 60 claims,
/// delete 20 virtual claims and create 10 new ones while it is down,
/// restart: the host claims and the virtual volumes converge exactly (no
/// orphans, nothing missing) and every claim is Bound.
#[tokio::test(flavor = "multi_thread")]
async fn restarting_mid_sync_of_claims_converges_exactly() {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use std::collections::{BTreeMap, BTreeSet};
    use vkube_e2e::synced::HOST_NAMESPACE;

    let mut c = SyncedCluster::start().await;
    let vclaims: Api<PersistentVolumeClaim> = Api::namespaced(c.virt.client().await, "default");
    let vvolumes: Api<PersistentVolume> = Api::all(c.virt.client().await);
    let hclaims: Api<PersistentVolumeClaim> =
        Api::namespaced(c.host.client().await, HOST_NAMESPACE);
    let managed = ListParams::default().labels(&format!("vkube.dev/managed-by={TENANT}"));
    let create = |range: std::ops::Range<usize>| {
        let vclaims = vclaims.clone();
        futures::stream::iter(range)
            .map(move |i| {
                let vclaims = vclaims.clone();
                async move {
                    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("c{i:02}")},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}},
                    }))
                    .unwrap();
                    vclaims
                        .create(&PostParams::default(), &claim)
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
    };
    create(0..60).await.expect("creating 60 claims");
    eventually("the first host claims", WAIT, || async {
        let n = hclaims
            .list(&managed)
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        (n >= 5).then_some(()).ok_or(format!("{n} host claims"))
    })
    .await;
    c.stop_syncer().await;
    for i in (0..60).step_by(3) {
        vclaims
            .delete(&format!("c{i:02}"), &DeleteParams::default())
            .await
            .expect("deleting a claim");
    }
    create(60..70).await.expect("creating 10 more");
    c.start_syncer().await;

    eventually(
        "claims and volumes to converge",
        Duration::from_secs(180),
        || async {
            let v = vclaims
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let want: BTreeMap<String, String> = v
                .items
                .iter()
                .map(|p| {
                    (
                        c.host_name("default", p.metadata.name.as_deref().unwrap()),
                        p.metadata.uid.clone().unwrap(),
                    )
                })
                .collect();
            let unbound = v
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound"))
                .count();
            let h = hclaims.list(&managed).await.map_err(|e| e.to_string())?;
            let have: BTreeMap<String, String> = h
                .items
                .iter()
                .map(|p| {
                    let uid = p
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("vkube.dev/object-uid"))
                        .cloned();
                    (p.metadata.name.clone().unwrap(), uid.unwrap_or_default())
                })
                .collect();
            let bound_to: BTreeSet<String> = v
                .items
                .iter()
                .filter_map(|p| p.spec.as_ref()?.volume_name.clone())
                .collect();
            let volumes: BTreeSet<String> = vvolumes
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter_map(|pv| pv.metadata.name)
                .collect();
            if want.len() == 50
                && want == have
                && unbound == 0
                && volumes == bound_to
                && volumes.len() == 50
            {
                Ok(())
            } else {
                Err(format!(
                    "{} virtual ({unbound} unbound), {} host, {} volumes for {} bound",
                    want.len(),
                    have.len(),
                    volumes.len(),
                    bound_to.len()
                ))
            }
        },
    )
    .await;
    c.shutdown().await;
}

/// The host's storage never reaches the tenant when its own classes and
/// volumes are synced to the host: its classes are renamed there, its
/// claims use them, its volumes are pre-bound to its claims and retained;
/// classes naming Secrets and volumes of host paths are refused.
#[tokio::test]
async fn tenant_storage_classes_and_volumes_reach_the_host_renamed() {
    let c = SyncedCluster::start_with(|s| {
        s.storage_classes_to_host = true;
        s.storage_class_provisioners = vec!["sim.vkube.dev/hostpath".into()];
        s.persistent_volumes = Some(vkube_syncer::persistentvolume::PersistentVolumeOptions {
            sources: vec!["nfs:10.0.0.5:/exports".into()],
        });
    })
    .await;
    let host_class = |name: &str| vkube_syncer::cluster_scoped::host_cluster_name(c.tenant(), name);
    c.virt
        .kubectl_stdin(
            &["apply", "-f", "-"],
            r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: sim.vkube.dev/hostpath
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sneaky}
provisioner: sim.vkube.dev/hostpath
parameters:
  csi.storage.k8s.io/provisioner-secret-name: aws-creds
  csi.storage.k8s.io/provisioner-secret-namespace: kube-system
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: elsewhere}
provisioner: nfs.csi.k8s.io
parameters: {server: nfs.other-team, share: /}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: theirs}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  nfs: {server: 10.0.0.5, path: /srv/other-team}
  claimRef: {namespace: default, name: other}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: fast-data}
spec:
  storageClassName: fast
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: share}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: manual
  nfs: {server: 10.0.0.5, path: /exports/team}
  claimRef: {namespace: default, name: shared}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  storageClassName: manual
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 5Gi}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: root}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /}
  claimRef: {namespace: default, name: rooted}
"#,
        )
        .await
        .expect_ok();
    // The class is on the host under the tenant's name, not the default.
    let fast = eventually("the tenant's class on the host", WAIT, || async {
        c.host
            .get_json(&["storageclass", &host_class("fast")])
            .await
    })
    .await;
    assert_eq!(fast["provisioner"], "sim.vkube.dev/hostpath", "{fast}");
    assert!(
        fast["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"].is_null()
    );
    // The host's classes are not the tenant's: none is shown.
    let shown = c.virt.kubectl(&["get", "storageclass", "standard"]).await;
    assert!(shown.stderr.contains("NotFound"), "{shown:?}");
    // A claim of the tenant's class binds through the host copy.
    let (_, volume) = wait_bound(&c, "fast-data").await;
    let host_claim = c
        .host_get("pvc", &c.host_name("default", "fast-data"))
        .await
        .unwrap();
    assert_eq!(
        host_claim["spec"]["storageClassName"],
        host_class("fast").as_str()
    );
    let pv = c.virt.get_json(&["pv", &volume]).await.unwrap();
    assert_eq!(pv["spec"]["storageClassName"], "fast", "the tenant's name");
    // The tenant's own NFS volume: pre-bound, retained, bound on the host.
    let share = host_class("share");
    let host_pv = eventually("the tenant's volume bound on the host", WAIT, || async {
        let pv = c.host.get_json(&["pv", &share]).await?;
        (pv["status"]["phase"] == "Bound")
            .then_some(pv.clone())
            .ok_or(pv.to_string())
    })
    .await;
    assert_eq!(host_pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(
        host_pv["spec"]["storageClassName"],
        host_class("manual").as_str()
    );
    assert_eq!(host_pv["spec"]["nfs"]["server"], "10.0.0.5");
    assert_eq!(
        host_pv["spec"]["claimRef"]["name"],
        c.host_name("default", "shared").as_str()
    );
    assert_eq!(
        host_pv["spec"]["claimRef"]["namespace"],
        c.tenant().host_namespace()
    );
    eventually("the tenant's claim bound to its volume", WAIT, || async {
        let pvc = c.virt_get("pvc", "shared").await?;
        let pv = c.virt.get_json(&["pv", "share"]).await?;
        (pvc["status"]["phase"] == "Bound"
            && pvc["spec"]["volumeName"] == "share"
            && pv["status"]["phase"] == "Bound")
            .then_some(())
            .ok_or(format!("{} {}", pvc["spec"], pv["status"]))
    })
    .await;
    // Hostile objects: refused, nothing on the host.
    c.wait_event("sneaky", "SyncRefused", "Secret").await;
    c.wait_event("root", "SyncRefused", "hostPath").await;
    c.wait_event("elsewhere", "SyncRefused", "provisioner")
        .await;
    c.wait_event("theirs", "SyncRefused", "nfs:10.0.0.5:/exports")
        .await;
    for (kind, name) in [
        ("storageclass", host_class("sneaky")),
        ("storageclass", host_class("elsewhere")),
        ("pv", host_class("root")),
        ("pv", host_class("theirs")),
    ] {
        let out = c.host.kubectl(&["get", kind, &name]).await;
        assert!(out.stderr.contains("NotFound"), "{kind} {name}: {out:?}");
    }
    // Deleting the tenant's objects deletes the host copies.
    c.virt
        .kubectl(&["delete", "pvc", "shared", "fast-data", "--wait=false"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["delete", "pv", "share", "--wait=false"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&["delete", "storageclass", "fast"])
        .await
        .expect_ok();
    eventually("the host copies gone", WAIT, || async {
        for (kind, name) in [("pv", share.clone()), ("storageclass", host_class("fast"))] {
            let out = c.host.kubectl(&["get", kind, &name]).await;
            if !out.stderr.contains("NotFound") {
                return Err(format!("{kind} {name} still there"));
            }
        }
        host_claim_absent(&c, "shared").await
    })
    .await;
    c.shutdown().await;
}
