//! Real projects' CustomResourceDefinitions and objects of them, applied
//! with real kubectl: Argo CD, cert-manager, prometheus-operator, Gateway
//! API, Istio, Cluster API, Linkerd, External Secrets, AWS ACK, Zalando's
//! postgres-operator, an OpenShift installer kind. They ship in the test
//! data of the `kopium` crate, which `scripts/fetch-test-crds.sh` fetches
//! (checksum-pinned) into `.tools/real-crds/` at test set-up.

use std::path::PathBuf;

use vkube_e2e::TestCluster;

/// Where `scripts/fetch-test-crds.sh` unpacks the files.
fn real_crds() -> PathBuf {
    let dir = vkube_e2e::workspace_root().join(".tools/real-crds/kopium-0.24.1");
    assert!(
        dir.join(".complete").exists(),
        "{} is missing: run scripts/fetch-test-crds.sh (scripts/test does)",
        dir.display()
    );
    dir
}

/// The files of `dir` holding a CRD (`kind: CustomResourceDefinition`,
/// quoted or not) or not, sorted.
fn yaml_files(dir: &std::path::Path, crds: bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let is_crd = text.contains("kind: CustomResourceDefinition")
                || text.contains("kind: \"CustomResourceDefinition\"");
            is_crd == crds
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn real_projects_crds_install_and_serve_their_objects() {
    let dir = real_crds();
    let c = TestCluster::start().await;
    let mut crds = yaml_files(&dir, true);
    crds.extend(yaml_files(&dir.join("cmd/generate/crds"), true));
    assert!(crds.len() >= 17, "{crds:?}");
    let mut installed = Vec::new();
    for f in &crds {
        let path = f.to_str().unwrap();
        let out = c.kubectl(&["apply", "--server-side", "-f", path]).await;
        if f.ends_with("argoproj.io_clusterworkflowtemplates.yaml") {
            // This copy of Argo Workflows' CRD has arrays without `items`
            // and an object field without a type, which kube-apiserver's
            // structural-schema check refuses as well.
            out.expect_err_contains(
                "properties[steps].items.items: Required value: must be specified",
            );
            continue;
        }
        let out = out.expect_ok();
        installed.push(out.stdout.split_whitespace().next().unwrap().to_string());
    }
    assert_eq!(installed.len(), crds.len() - 1);
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=30s"];
    wait.extend(installed.iter().map(String::as_str));
    c.kubectl(&wait).await.expect_ok();

    // Every sample object is accepted under kubectl's strict validation
    // and reads back.
    for f in yaml_files(&dir, false) {
        let path = f.to_str().unwrap();
        let created = c.kubectl(&["apply", "-f", path]).await.expect_ok();
        let name = created
            .stdout
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        c.kubectl(&["get", &name]).await.expect_ok();
    }

    // Their printer columns, categories and schemas are what the projects
    // publish.
    let certs = c
        .kubectl(&["get", "certificates.cert-manager.io"])
        .await
        .expect_ok();
    assert_eq!(
        certs.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "SECRET", "AGE"]
    );
    assert!(
        certs.stdout.contains("test-certificate"),
        "{}",
        certs.stdout
    );
    let apps = c
        .kubectl(&["get", "applications.argoproj.io"])
        .await
        .expect_ok();
    assert!(apps.lines()[0].contains("SYNC STATUS"), "{}", apps.stdout);
    c.kubectl(&["explain", "servicemonitor.spec.endpoints.port"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["KIND:       ServiceMonitor", "FIELD: port <string>"]);
    // A multi-version kind reads in each served version.
    let app = c
        .get_json(&["applications.v1alpha1.argoproj.io", "gen"])
        .await
        .unwrap();
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    let cluster_versions = c
        .kubectl(&[
            "api-resources",
            "--api-group=cluster.x-k8s.io",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(cluster_versions.lines(), ["clusters.cluster.x-k8s.io"]);
    // Cluster API converts its versions with a webhook, which this server
    // does not call yet: only the storage version is served.
    c.kubectl(&["get", "clusters.v1beta1.cluster.x-k8s.io"])
        .await
        .expect_ok();
    c.kubectl(&["get", "clusters.v1alpha3.cluster.x-k8s.io"])
        .await
        .expect_err_contains("the server doesn't have a resource type");
}
