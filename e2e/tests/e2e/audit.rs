//! The audit log, read as an operator reads kube-apiserver's: one JSON
//! `audit.k8s.io/v1` Event per line, at the levels the policy gives, for a
//! create, a denied request and an exec made with real kubectl.

use apiserver_shim::filters::audit::AuditConfig;
use apiserver_shim::filters::audit::policy::Policy;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
  omitManagedFields: true
- level: Metadata
  resources: [{group: "", resources: ["pods/exec"]}]
- level: Metadata
  users: ["mallory"]
- level: None
"#;

/// Waits (up to 10 s) until the events written so far satisfy `cond`: a
/// thread of the server writes them after the response.
async fn settle(log: &Path, cond: impl Fn(&[Value]) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond(&all_events(log)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the audit log never showed what was awaited: {:#?}",
            all_events(log)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The events of `log` and its rotated files, oldest first.
fn all_events(log: &Path) -> Vec<Value> {
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    [events(&rotated(2)), events(&rotated(1)), events(log)].concat()
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is one JSON event"))
        .collect()
}

/// A cluster auditing to a fresh log (rotated at `max_size_megabytes`),
/// with the default controllers and a simulated node when `node`.
async fn audited_cluster(
    max_size_megabytes: usize,
    node: bool,
) -> (TestCluster, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit").join("audit.log");
    let config = AuditConfig {
        policy: Policy::parse(POLICY).unwrap(),
        log_path: log.clone(),
        max_size_megabytes,
        max_backups: 2,
    };
    let c = if node {
        TestCluster::start_configured_with_controllers(NodeSimulator::default(), |c| {
            c.audit = Some(config)
        })
        .await
    } else {
        TestCluster::start_configured(|c| c.audit = Some(config)).await
    };
    (c, log, dir)
}

#[tokio::test]
async fn a_create_a_denial_and_an_exec_are_recorded_at_their_levels() {
    let (c, log, _dir) = audited_cluster(100, true).await;
    c.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ])
    .await
    .expect_ok();
    c.kubectl(&["--as=mallory", "get", "secrets", "-n", "kube-system"])
        .await
        .expect_err_contains(r#"User "mallory" cannot list resource "secrets""#);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}"#,
    )
    .await
    .expect_ok();
    c.kubectl(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"])
        .await
        .expect_ok();
    c.kubectl(&["exec", "web", "--", "echo", "from-exec"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["from-exec"]);

    settle(&log, |all| {
        all.iter()
            .any(|e| e["objectRef"]["subresource"] == "exec" && e["stage"] == "ResponseComplete")
    })
    .await;
    let all = events(&log);
    assert!(
        all.iter().all(|e| e["stage"] != "RequestReceived"),
        "the policy omits RequestReceived"
    );
    assert!(
        all.iter()
            .all(|e| e["kind"] == "Event" && e["apiVersion"] == "audit.k8s.io/v1"),
        "{all:#?}"
    );

    // The create, with both bodies (RequestResponse) and no managedFields.
    let create = all
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["resource"] == "configmaps"
                && e["objectRef"]["name"] == "settings"
        })
        .expect("the create is recorded");
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["stage"], "ResponseComplete");
    assert_eq!(create["user"]["username"], "kubernetes-admin");
    assert_eq!(
        create["objectRef"],
        serde_json::json!({"resource": "configmaps", "namespace": "default",
            "name": "settings", "apiVersion": "v1"})
    );
    assert_eq!(
        create["responseStatus"],
        serde_json::json!({"metadata": {}, "code": 201})
    );
    assert_eq!(create["requestObject"]["data"]["mode"], "fast");
    assert_eq!(create["responseObject"]["data"]["mode"], "fast");
    assert!(create["responseObject"]["metadata"]["uid"].is_string());
    assert!(
        create["responseObject"]["metadata"]
            .get("managedFields")
            .is_none()
    );
    assert_eq!(create["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    assert!(create["userAgent"].as_str().unwrap().starts_with("kubectl"));
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    for stamp in ["requestReceivedTimestamp", "stageTimestamp"] {
        let t = create[stamp].as_str().unwrap();
        assert!(
            t.parse::<jiff::Timestamp>().is_ok() && t.len() == 27,
            "{stamp}: {t}"
        );
    }

    // The policy reads the authenticated user, as kube's does: the admin
    // acting as mallory matches no rule (level None); mallory's own
    // credentials match the Metadata rule.
    assert!(
        !all.iter()
            .any(|e| e["verb"] == "list" && e["objectRef"]["resource"] == "secrets"),
        "the admin impersonating mallory is the admin to the policy (level None)"
    );
    let mallory = c.client_as("mallory", &[]).await;
    let denied =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(mallory, "kube-system")
            .list(&Default::default())
            .await
            .unwrap_err();
    assert!(denied.to_string().contains("forbidden"), "{denied}");
    settle(&log, |all| {
        all.iter()
            .any(|e| e["verb"] == "list" && e["objectRef"]["resource"] == "secrets")
    })
    .await;
    let all = events(&log);
    let denial = all
        .iter()
        .find(|e| e["verb"] == "list" && e["objectRef"]["resource"] == "secrets")
        .expect("the denial is recorded");
    assert_eq!(denial["level"], "Metadata");
    assert_eq!(denial["user"]["username"], "mallory");
    assert_eq!(denial["responseStatus"]["code"], 403);
    assert_eq!(denial["responseStatus"]["reason"], "Forbidden");
    assert!(
        denial["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"User "mallory" cannot list resource "secrets""#)
    );
    assert_eq!(
        denial["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert!(denial.get("requestObject").is_none() && denial.get("responseObject").is_none());

    // The exec: long-running, so ResponseStarted and ResponseComplete.
    let exec: Vec<&Value> = all
        .iter()
        .filter(|e| e["objectRef"]["subresource"] == "exec")
        .collect();
    let stages: Vec<&str> = exec.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["ResponseStarted", "ResponseComplete"], "{exec:#?}");
    assert_eq!(exec[0]["auditID"], exec[1]["auditID"]);
    // kubectl v1.34 execs over WebSocket: a GET.
    assert_eq!(exec[0]["verb"], "get");
    assert_eq!(exec[0]["objectRef"]["name"], "web");
    assert_eq!(exec[0]["responseStatus"]["code"], 101);
    // The pod's own create is not recorded (level None).
    assert!(
        !all.iter().any(
            |e| e["objectRef"]["resource"] == "pods" && e["objectRef"]["subresource"].is_null()
        )
    );
    c.shutdown().await;
}

#[tokio::test]
async fn every_response_names_its_audit_id_and_the_log_rotates_by_size() {
    let (c, log, _dir) = audited_cluster(1, false).await;
    let client = c.client().await;
    let request = http::Request::get("/api/v1/namespaces/default/configmaps")
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let id = response.headers()["audit-id"].to_str().unwrap().to_string();
    settle(&log, |all| {
        all.iter()
            .any(|e| e["auditID"] == id.as_str() && e["verb"] == "list")
    })
    .await;
    // A caller's own Audit-Id is kept and echoed.
    let request = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("audit-id", "ci-run-42")
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.headers()["audit-id"], "ci-run-42");
    settle(&log, |all| all.iter().any(|e| e["auditID"] == "ci-run-42")).await;
    // Credentials that do not authenticate are recorded, without a user.
    let bogus = c.token_kubeconfig("bogus.kubeconfig", "not-a-token");
    c.kubectl(&[
        "--kubeconfig",
        &bogus,
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
    ])
    .await
    .expect_err_contains("Unauthorized");
    settle(&log, |all| {
        all.iter().any(|e| {
            e["responseStatus"]
                == json!({"metadata": {}, "code": 401,
                    "message": "Authentication failed, attempted: bearer"})
                && e["user"] == json!({})
        })
    })
    .await;
    // Each create of 600 KB is recorded with both bodies: 1.2 MB, so every
    // one starts a new file; two rotated files are kept.
    let big = "x".repeat(600 * 1024);
    for name in ["big-1", "big-2", "big-3"] {
        let path = c.write_file(&format!("{name}.txt"), &big);
        c.kubectl(&[
            "create",
            "configmap",
            name,
            &format!("--from-file=data={}", path.display()),
        ])
        .await
        .expect_ok();
    }
    settle(&log, |all| {
        all.iter().filter(|e| e["verb"] == "create").count() == 3
    })
    .await;
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    assert!(
        rotated.is_file(),
        "the log was rotated to {}",
        rotated.display()
    );
    let oldest = PathBuf::from(format!("{}.2", log.display()));
    let mut names: Vec<String> = [events(&oldest), events(&rotated), events(&log)]
        .concat()
        .iter()
        .filter(|e| e["verb"] == "create")
        .map(|e| {
            let mut e = e.clone();
            e["requestObject"] = Value::Null;
            e["responseObject"] = Value::Null;
            e["objectRef"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{e:#}"))
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["big-1", "big-2", "big-3"],
        "no event is lost in rotation"
    );
    // A stopping server writes what it buffered before it is gone.
    let request = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("audit-id", "the-last-one")
        .body(kube::client::Body::empty())
        .unwrap();
    client.send(request).await.unwrap();
    drop(client);
    c.shutdown().await;
    assert!(
        all_events(&log)
            .iter()
            .any(|e| e["auditID"] == "the-last-one"),
        "the last event is in the log once the server has stopped"
    );
}
