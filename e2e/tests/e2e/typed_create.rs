//! kubectl's typed commands (`create <kind>`, `expose`) against vkube.
//!
//! These go through client-go's typed clientset, which sends request bodies
//! as `application/vnd.kubernetes.protobuf`; the server decodes them to the
//! JSON a JSON client would have sent (vkube-core `protobuf`). Each test
//! checks both kubectl's answer and what was stored.

use vkube_e2e::TestCluster;

/// `kubectl get` with `-o jsonpath=<path>`, returning stdout.
async fn jsonpath(c: &TestCluster, args: &[&str], path: &str) -> String {
    let jp = format!("jsonpath={path}");
    let mut all: Vec<&str> = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", &jp]);
    c.kubectl(&all).await.expect_ok().stdout
}

#[tokio::test]
async fn create_namespace_configmap_secret_serviceaccount() {
    let c = TestCluster::start().await;
    c.kubectl(&["create", "namespace", "typed"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["namespace/typed created"]);
    assert_eq!(
        jsonpath(&c, &["ns", "typed"], "{.status.phase}").await,
        "Active"
    );

    c.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "typed",
        "--from-literal=color=blue",
        "--from-literal=empty=",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["configmap/cfg created"]);
    let data = c
        .kubectl(&["get", "cm", "cfg", "-n", "typed", "-o", "json"])
        .await
        .expect_ok()
        .json()["data"]
        .clone();
    assert_eq!(data, serde_json::json!({"color": "blue", "empty": ""}));

    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "typed",
        "--from-literal=password=hunter2",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["secret/creds created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["secret", "creds", "-n", "typed"],
            "{.type} {.data.password}"
        )
        .await,
        "Opaque aHVudGVyMg=="
    );

    c.kubectl(&["create", "serviceaccount", "builder", "-n", "typed"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["serviceaccount/builder created"]);
    c.kubectl(&["get", "sa", "builder", "-n", "typed"])
        .await
        .expect_ok();

    // A second create of the same name is the usual AlreadyExists.
    c.kubectl(&["create", "namespace", "typed"])
        .await
        .expect_err_contains("namespaces \"typed\" already exists");
    c.shutdown().await;
}

#[tokio::test]
async fn create_deployments_jobs_and_services() {
    let c = TestCluster::start().await;
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
        "--port=80",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["deployment.apps/web created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["deploy", "web"],
            "{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.selector.matchLabels.app}"
        )
        .await,
        "3 nginx 80 web"
    );
    // An explicit zero for a pointer field survives the protobuf decoding.
    c.kubectl(&[
        "create",
        "deployment",
        "idle",
        "--image=nginx",
        "--replicas=0",
    ])
    .await
    .expect_ok();
    assert_eq!(
        jsonpath(&c, &["deploy", "idle"], "{.spec.replicas}").await,
        "0"
    );

    c.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=8080",
        "--target-port=80",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["service/web exposed"]);
    assert_eq!(
        jsonpath(
            &c,
            &["svc", "web"],
            "{.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}"
        )
        .await,
        "8080 80 web"
    );

    c.kubectl(&["create", "service", "clusterip", "api", "--tcp=80:8080"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["service/api created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["svc", "api"],
            "{.spec.type} {.spec.ports[0].name} {.spec.ports[0].targetPort}"
        )
        .await,
        "ClusterIP 80-8080 8080"
    );

    c.kubectl(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["job.batch/once created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["job", "once"],
            "{.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].command}"
        )
        .await,
        r#"Never ["echo","hi"]"#
    );

    c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["cronjob.batch/tick created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["cronjob", "tick"],
            "{.spec.schedule} {.spec.jobTemplate.spec.template.spec.containers[0].image}"
        )
        .await,
        "*/5 * * * * busybox"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn create_rbac_quota_and_disruption_budget() {
    let c = TestCluster::start().await;
    c.kubectl(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["role.rbac.authorization.k8s.io/reader created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["role", "reader"],
            "{.rules[0].verbs} {.rules[0].resources}"
        )
        .await,
        r#"["get","list"] ["pods"]"#
    );
    c.kubectl(&[
        "create",
        "rolebinding",
        "read",
        "--role=reader",
        "--user=alice",
        "--serviceaccount=default:builder",
    ])
    .await
    .expect_ok();
    assert_eq!(
        jsonpath(
            &c,
            &["rolebinding", "read"],
            "{.roleRef.kind}/{.roleRef.name} {.subjects[0].name} {.subjects[1].kind}"
        )
        .await,
        "Role/reader alice ServiceAccount"
    );
    c.kubectl(&[
        "create",
        "clusterrole",
        "nodes",
        "--verb=get",
        "--resource=nodes",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "nodes",
        "--clusterrole=nodes",
        "--group=ops",
    ])
    .await
    .expect_ok();
    assert_eq!(
        jsonpath(
            &c,
            &["clusterrolebinding", "nodes"],
            "{.roleRef.name} {.subjects[0].kind}/{.subjects[0].name}"
        )
        .await,
        "nodes Group/ops"
    );

    c.kubectl(&[
        "create",
        "quota",
        "small",
        "--hard=cpu=1,memory=1Gi,pods=10",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["resourcequota/small created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["quota", "small"],
            "{.spec.hard.cpu} {.spec.hard.memory} {.spec.hard.pods}"
        )
        .await,
        "1 1Gi 10"
    );

    c.kubectl(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--max-unavailable=50%",
    ])
    .await
    .expect_ok();
    assert_eq!(
        jsonpath(
            &c,
            &["pdb", "web"],
            "{.spec.maxUnavailable} {.spec.selector.matchLabels.app}"
        )
        .await,
        "50% web"
    );
    c.shutdown().await;
}

/// Kinds the server does not serve fail as on a cluster without the API.
#[tokio::test]
async fn unserved_kinds_fail_cleanly() {
    let c = TestCluster::start().await;
    // Kinds kube-apiserver does not serve by default are not served here.
    c.kubectl(&["get", "storageversionmigrations"])
        .await
        .expect_err_contains(
            "the server doesn't have a resource type \"storageversionmigrations\"",
        );
    c.kubectl(&["get", "widgets"])
        .await
        .expect_err_contains("the server doesn't have a resource type \"widgets\"");
    c.shutdown().await;
}

#[tokio::test]
async fn run_a_pod_and_expose_it() {
    let c = TestCluster::start().await;
    c.kubectl(&[
        "run",
        "nginx",
        "--image=nginx:1.27",
        "--labels=app=nginx,tier=web",
        "--port=80",
        "--env=MODE=prod",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["pod/nginx created"]);
    assert_eq!(
        jsonpath(
            &c,
            &["pod", "nginx"],
            "{.spec.containers[0].image} {.spec.containers[0].env[0].value} {.metadata.labels.tier} {.status.phase}"
        )
        .await,
        "nginx:1.27 prod web Pending"
    );
    c.kubectl(&["expose", "pod", "nginx", "--port=80", "--name=nginx-svc"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["service/nginx-svc exposed"]);
    assert_eq!(
        jsonpath(
            &c,
            &["svc", "nginx-svc"],
            "{.spec.selector.app} {.spec.ports[0].targetPort}"
        )
        .await,
        "nginx 80"
    );
    c.shutdown().await;
}
