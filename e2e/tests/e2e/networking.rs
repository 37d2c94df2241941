//! Ingresses and NetworkPolicies through the syncer, end to end with real
//! kubectl (the node simulator stands in for the host's ingress controller
//! publishing its address; no traffic flows).

use std::time::Duration;

use vkube_e2e::SyncedCluster;
use vkube_e2e::synced::eventually;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_ingress_with_tls_reaches_the_host_and_its_address_comes_back() {
    let c = SyncedCluster::start().await;
    c.virt
        .kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await
        .expect_ok();
    c.virt
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "web-tls",
            "--type=kubernetes.io/tls",
            "--from-literal=tls.crt=cert",
            "--from-literal=tls.key=key",
        ])
        .await
        .expect_ok();
    c.virt
        .kubectl(&[
            "create",
            "ingress",
            "web",
            "--class=nginx",
            "--rule=web.example.com/*=web:80,tls=web-tls",
            "--annotation=nginx.ingress.kubernetes.io/server-snippet=location /x { return 200; }",
            "--annotation=cert-manager.io/cluster-issuer=letsencrypt",
        ])
        .await
        .expect_ok();
    let host_name = c.host_name("default", "web");
    let host = eventually("the host Ingress", WAIT, || {
        c.host_get("ingress", &host_name)
    })
    .await;
    let spec = &host["spec"];
    assert_eq!(spec["ingressClassName"], "nginx", "{spec}");
    assert_eq!(
        spec["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        host_name.as_str(),
        "{spec}"
    );
    assert_eq!(spec["rules"][0]["host"], "web.example.com");
    let tls_host = c.host_name("default", "web-tls");
    assert_eq!(spec["tls"][0]["secretName"], tls_host.as_str(), "{spec}");
    let ann = &host["metadata"]["annotations"];
    assert_eq!(ann["cert-manager.io/cluster-issuer"], "letsencrypt");
    assert!(
        ann["nginx.ingress.kubernetes.io/server-snippet"].is_null(),
        "a denied annotation reached the host: {ann}"
    );
    // The TLS Secret is synced with the Ingress.
    let secret = eventually("the TLS Secret on the host", WAIT, || {
        c.host_get("secret", &tls_host)
    })
    .await;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    // The address the host's controller published comes back.
    eventually("the address in the tenant", WAIT, || async {
        let out = c.virt.kubectl(&["get", "ingress", "web"]).await;
        out.stdout
            .contains("10.0.0.10")
            .then_some(())
            .ok_or(out.stdout + &out.stderr)
    })
    .await;
    eventually("a warning about the denied annotation", WAIT, || async {
        let out = c
            .virt
            .kubectl(&[
                "get",
                "events",
                "--field-selector=involvedObject.kind=Ingress",
            ])
            .await;
        out.stdout
            .contains("server-snippet")
            .then_some(())
            .ok_or(out.stdout)
    })
    .await;

    // A backend resource reference is refused; nothing is made on the host.
    c.virt
        .kubectl_stdin(
            &["apply", "-f", "-"],
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: sneaky}
spec:
  defaultBackend:
    resource: {apiGroup: "", kind: Secret, name: vkube-kubeconfig}
"#,
        )
        .await
        .expect_ok();
    c.wait_event("sneaky", "SyncRefused", "").await;
    assert!(
        c.host_get("ingress", &c.host_name("default", "sneaky"))
            .await
            .is_err()
    );

    // Deleting the Ingress removes the host copy and, unused, its Secret.
    c.virt
        .kubectl(&["delete", "ingress", "web"])
        .await
        .expect_ok();
    eventually("the host Ingress and Secret gone", WAIT, || async {
        let i = c.host_get("ingress", &host_name).await;
        let s = c.host_get("secret", &tls_host).await;
        (i.is_err() && s.is_err())
            .then_some(())
            .ok_or(format!("{i:?} {s:?}"))
    })
    .await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_network_policy_reaches_the_host_with_exactly_the_translated_selectors() {
    use vkube_e2e::synced::TENANT;
    let c = SyncedCluster::start().await;
    for ns in ["frontend", "other"] {
        c.virt
            .kubectl(&["create", "namespace", ns])
            .await
            .expect_ok();
    }
    c.virt
        .kubectl(&["label", "namespace", "frontend", "team=web"])
        .await
        .expect_ok();
    c.virt
        .kubectl_stdin(
            &["apply", "-f", "-"],
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: web}}
          podSelector: {matchLabels: {app: api}}
        - ipBlock: {cidr: 192.0.2.0/24}
      ports: [{port: 5432, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sneaky}
spec:
  podSelector: {matchLabels: {vkube.dev/managed-by: another-tenant}}
"#,
        )
        .await
        .expect_ok();
    let host_name = c.host_name("default", "db");
    let expected = |namespaces: serde_json::Value| {
        serde_json::json!({
            "podSelector": {"matchLabels": {
                "app": "db", "vkube.dev/managed-by": TENANT, "vkube.dev/namespace": "default"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"podSelector": namespaces},
                    {"ipBlock": {"cidr": "192.0.2.0/24"}},
                ],
                "ports": [{"port": 5432, "protocol": "TCP"}],
            }],
        })
    };
    let one = expected(serde_json::json!({"matchLabels": {
        "app": "api", "vkube.dev/managed-by": TENANT, "vkube.dev/namespace": "frontend"}}));
    eventually("the host NetworkPolicy", WAIT, || async {
        let h = c.host_get("networkpolicy", &host_name).await?;
        (h["spec"] == one)
            .then_some(())
            .ok_or(h["spec"].to_string())
    })
    .await;
    // A namespace that gets the label joins the policy on the host.
    c.virt
        .kubectl(&["label", "namespace", "other", "team=web"])
        .await
        .expect_ok();
    let two = expected(serde_json::json!({
        "matchLabels": {"app": "api", "vkube.dev/managed-by": TENANT},
        "matchExpressions": [{"key": "vkube.dev/namespace", "operator": "In",
            "values": ["frontend", "other"]}]}));
    eventually(
        "the host NetworkPolicy follows the labels",
        WAIT,
        || async {
            let h = c.host_get("networkpolicy", &host_name).await?;
            (h["spec"] == two)
                .then_some(())
                .ok_or(h["spec"].to_string())
        },
    )
    .await;
    c.wait_event("sneaky", "SyncRefused", "").await;
    assert!(
        c.host_get("networkpolicy", &c.host_name("default", "sneaky"))
            .await
            .is_err()
    );
    c.virt
        .kubectl(&["delete", "networkpolicy", "db"])
        .await
        .expect_ok();
    eventually("the host NetworkPolicy gone", WAIT, || async {
        match c.host_get("networkpolicy", &host_name).await {
            Err(e) if e.contains("NotFound") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    c.shutdown().await;
}

/// The restart test for Ingresses, NetworkPolicies and
/// PodDisruptionBudgets: stop the syncer after some host copies exist,
/// delete some and create others while it is down, restart: the host holds
/// exactly the copies of what exists (by uid), nothing orphaned, nothing
/// missing.
#[tokio::test(flavor = "multi_thread")]
async fn restarting_with_changes_while_down_converges_for_every_kind() {
    use std::collections::BTreeMap;
    use vkube_e2e::synced::{HOST_NAMESPACE, TENANT};
    // The cluster-scoped kinds behind options are on too.
    let mut c = SyncedCluster::start_with(|s| {
        s.priority_classes =
            Some(vkube_syncer::priorityclass::PriorityClassOptions { max_value: 100 });
        s.storage_classes_to_host = true;
        s.storage_class_provisioners = vec!["example.com/none".into()];
        s.persistent_volumes = Some(vkube_syncer::persistentvolume::PersistentVolumeOptions {
            sources: vec!["nfs:10.0.0.1".into()],
        });
    })
    .await;
    let manifest = |i: usize| {
        format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: ing-{i}}}
spec:
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: np-{i}}}
spec:
  podSelector: {{matchLabels: {{app: "a{i}"}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: pdb-{i}}}
spec:
  maxUnavailable: 1
  selector: {{matchLabels: {{app: "a{i}"}}}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: pc-{i}}}
value: {i}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: sc-{i}}}
provisioner: example.com/none
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  nfs: {{server: 10.0.0.1, path: "/{i}"}}
  claimRef: {{namespace: default, name: "c{i}"}}
"#
        )
    };
    let all: String = (0..12).map(manifest).collect::<Vec<_>>().join("\n---\n");
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], &all)
        .await
        .expect_ok();
    let kinds = ["ingress", "networkpolicy", "pdb"];
    let cluster_kinds = ["priorityclass", "storageclass", "pv"];
    eventually("the first host copies", WAIT, || async {
        let n = c.host.get_json(&["pdb", "-n", HOST_NAMESPACE]).await?["items"]
            .as_array()
            .map_or(0, Vec::len);
        (n >= 2).then_some(()).ok_or(format!("{n} host budgets"))
    })
    .await;
    c.stop_syncer().await;
    for i in (0..12).step_by(3) {
        c.virt
            .kubectl(&[
                "delete",
                &format!("ingress/ing-{i}"),
                &format!("networkpolicy/np-{i}"),
                &format!("pdb/pdb-{i}"),
                &format!("priorityclass/pc-{i}"),
                &format!("storageclass/sc-{i}"),
                &format!("pv/pv-{i}"),
            ])
            .await
            .expect_ok();
    }
    let more: String = (12..15).map(manifest).collect::<Vec<_>>().join("\n---\n");
    c.virt
        .kubectl_stdin(&["apply", "-f", "-"], &more)
        .await
        .expect_ok();
    c.start_syncer().await;
    let by_uid = |list: serde_json::Value, host: bool| -> BTreeMap<String, String> {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| !host || o["metadata"]["labels"]["vkube.dev/managed-by"] == TENANT)
            .map(|o| {
                let m = &o["metadata"];
                let (name, uid) = if host {
                    (
                        m["annotations"]["vkube.dev/object-name"].clone(),
                        m["annotations"]["vkube.dev/object-uid"].clone(),
                    )
                } else {
                    (m["name"].clone(), m["uid"].clone())
                };
                (
                    name.as_str().unwrap_or_default().to_string(),
                    uid.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    for kind in kinds {
        eventually(
            &format!("the host {kind}s to converge"),
            Duration::from_secs(120),
            || async {
                let want = by_uid(c.virt.get_json(&[kind]).await?, false);
                let have = by_uid(c.host.get_json(&[kind, "-n", HOST_NAMESPACE]).await?, true);
                (want.len() == 11 && want == have)
                    .then_some(())
                    .ok_or(format!("{} virtual, {} host", want.len(), have.len()))
            },
        )
        .await;
    }
    // Cluster-scoped: every virtual object (the built-in PriorityClasses
    // too) has exactly one host copy of this tenant, the deleted ones none.
    for kind in cluster_kinds {
        eventually(
            &format!("the host {kind}s to converge"),
            Duration::from_secs(120),
            || async {
                let want = by_uid(c.virt.get_json(&[kind]).await?, false);
                let have = by_uid(c.host.get_json(&[kind]).await?, true);
                let ours = want
                    .keys()
                    .filter(|n| n.ends_with(char::is_numeric))
                    .count();
                (ours == 11 && want == have).then_some(()).ok_or(format!(
                    "{} virtual, {} host",
                    want.len(),
                    have.len()
                ))
            },
        )
        .await;
    }
    c.shutdown().await;
}
