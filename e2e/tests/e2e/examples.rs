//! The manifests in `examples/` apply cleanly with `kubectl apply -f DIR`
//! (strict server-side field validation) and do what their READMEs say,
//! under the virtual cluster's controllers with a simulated node.

use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::{TestCluster, workspace_root};

fn example(name: &str) -> String {
    workspace_root()
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

#[tokio::test]
async fn job_example_runs_to_completion() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["apply", "--validate=strict", "-f", &example("job")])
        .await
        .expect_ok()
        .expect_stdout_contains(&["job.batch/checksum created"]);
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/checksum",
        "--timeout=120s",
    ])
    .await
    .expect_ok();
    let out = c
        .kubectl(&[
            "get",
            "job",
            "checksum",
            "-o",
            "jsonpath={.status.succeeded}",
        ])
        .await
        .expect_ok();
    assert_eq!(out.stdout, "5");
    c.shutdown().await;
}

#[tokio::test]
async fn sandbox_example_creates_its_objects() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["apply", "--validate=strict", "-f", &example("sandbox")])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "namespace/sandbox created",
            "serviceaccount/developer created",
            "role.rbac.authorization.k8s.io/developer created",
            "rolebinding.rbac.authorization.k8s.io/developer created",
            "resourcequota/sandbox-quota created",
            "limitrange/sandbox-defaults created",
        ]);
    let out = c
        .kubectl(&[
            "get",
            "resourcequota,limitrange,role,rolebinding,serviceaccount",
            "-n",
            "sandbox",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    for name in [
        "resourcequota/sandbox-quota",
        "limitrange/sandbox-defaults",
        "role.rbac.authorization.k8s.io/developer",
        "rolebinding.rbac.authorization.k8s.io/developer",
        "serviceaccount/developer",
    ] {
        assert!(out.lines().contains(&name), "no {name} in {out}");
    }
    c.shutdown().await;
}

#[tokio::test]
async fn guestbook_example_applies_and_its_deployments_roll_out() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["apply", "--validate=strict", "-f", &example("guestbook")])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "configmap/redis-config created",
            "secret/redis-auth created",
            "deployment.apps/frontend created",
            "service/frontend created",
        ]);
    for d in ["frontend", "redis-leader", "redis-follower"] {
        c.kubectl(&[
            "rollout",
            "status",
            &format!("deployment/{d}"),
            "--timeout=120s",
        ])
        .await
        .expect_ok();
    }
    let out = c
        .kubectl(&["get", "pods", "-l", "tier=frontend", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(out.lines().len(), 3, "{out}");
    c.shutdown().await;
}

#[tokio::test]
async fn database_example_runs_with_bound_claims_and_a_budget() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl(&["apply", "--validate=strict", "-f", &example("database")])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "statefulset.apps/db created",
            "poddisruptionbudget.policy/db created",
            "networkpolicy.networking.k8s.io/db created",
        ]);
    c.kubectl(&["rollout", "status", "statefulset/db", "--timeout=120s"])
        .await
        .expect_ok();
    let claims = c.kubectl(&["get", "pvc", "--no-headers"]).await.expect_ok();
    for member in ["data-db-0", "data-db-1", "data-db-2"] {
        assert!(
            claims
                .lines()
                .iter()
                .any(|l| l.starts_with(member) && l.contains("Bound")),
            "{}",
            claims.stdout
        );
    }
    c.kubectl(&[
        "wait",
        "--for=jsonpath={.status.disruptionsAllowed}=1",
        "pdb/db",
        "--timeout=60s",
    ])
    .await
    .expect_ok();
    c.shutdown().await;
}
