//! Benchmark of RBAC authorization: prints figures, asserts nothing about
//! time.
//!
//! Run: `cargo bench -p vkube --bench authorization`. It reports
//! * the cost of one decision (attributes read from the path, then RBAC)
//!   over the bootstrap policy plus 1,000 Roles and 1,000 RoleBindings in
//!   10 namespaces, and again plus 1,000 ClusterRoleBindings: allowed by a
//!   binding, and denied (every binding visited);
//! * create and get throughput of a user outside `system:masters` (a
//!   service account bound to `edit` in `ns-9`, whose requests visit the
//!   100 RoleBindings there) against two `vkube apiserver` child processes
//!   holding the same 1,000 Roles and RoleBindings, one with
//!   `--authorization-mode RBAC` and one with `AlwaysAllow`, and a third
//!   with RBAC and an audit log recording every request at level
//!   `Metadata` (to a file), in rotating order over one run, and the
//!   ratios.
//!
//! Machines here are noisy: compare figures from one run, not across runs.

#[path = "../tests/support/mod.rs"]
mod support;

use apiserver_shim::filters::authorization::{self, attributes, rbac::Policy};
use apiserver_shim::pki::Identity;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const NAMESPACES: usize = 10;
const ROLES: usize = 1000;

fn role(i: usize) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": format!("r-{i}"), "namespace": format!("ns-{}", i % NAMESPACES)},
    "rules": [
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": [format!("p-{i}")], "verbs": ["delete"]},
    ]})
}

fn role_binding(i: usize) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("b-{i}"), "namespace": format!("ns-{}", i % NAMESPACES)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("r-{i}")},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("u-{i}")}]})
}

fn cluster_role_binding(i: usize) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("cb-{i}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("cu-{i}")}]})
}

fn policy(cluster_bindings: usize) -> Policy {
    use apiserver_shim::bootstrap_policy::{cluster_role_bindings, cluster_roles};
    let mut p = Policy::default();
    let mut add = |resource: &str, v: serde_json::Value| {
        p.insert(resource, v.to_string().as_bytes()).unwrap();
    };
    cluster_roles()
        .into_iter()
        .for_each(|r| add("clusterroles", r));
    cluster_role_bindings()
        .into_iter()
        .for_each(|b| add("clusterrolebindings", b));
    for i in 0..ROLES {
        add("roles", role(i));
        add("rolebindings", role_binding(i));
    }
    for i in 0..cluster_bindings {
        add("clusterrolebindings", cluster_role_binding(i));
    }
    p
}

/// Nanoseconds per decision of `user` on `GET path?query`.
fn decision_ns(policy: &Policy, user: &str, path: &str, query: Option<&str>, allowed: bool) -> f64 {
    let identity = Identity {
        user: user.into(),
        groups: vec!["system:authenticated".into()],
        ..Identity::default()
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let iterations = 20_000;
    let t0 = Instant::now();
    for _ in 0..iterations {
        let request = attributes::of("GET", &segments, path, query);
        let ok = authorization::check(policy, &identity, &request).is_ok();
        assert_eq!(ok, allowed, "{user} {path}");
    }
    t0.elapsed().as_nanos() as f64 / iterations as f64
}

fn decisions() {
    for cluster_bindings in [0, 1000] {
        let p = policy(cluster_bindings);
        let crbs = p.cluster_role_bindings.len();
        let allowed = decision_ns(
            &p,
            "u-999",
            "/api/v1/namespaces/ns-9/configmaps",
            None,
            true,
        );
        let named = decision_ns(
            &p,
            "u-999",
            "/api/v1/namespaces/ns-9/pods/p-999",
            None,
            false,
        );
        let watch = decision_ns(
            &p,
            "u-999",
            "/apis/apps/v1/namespaces/ns-9/deployments",
            Some("watch=true&resourceVersion=10"),
            true,
        );
        // Denied: every ClusterRoleBinding and ns-9's 100 RoleBindings visited.
        let denied = decision_ns(&p, "nobody", "/api/v1/namespaces/ns-9/secrets", None, false);
        println!(
            "decision ({crbs} ClusterRoleBindings, {ROLES} Roles and RoleBindings in {NAMESPACES} namespaces): allowed list {:.2} us   allowed watch {:.2} us   denied get {:.2} us   denied list {:.2} us",
            allowed / 1e3,
            watch / 1e3,
            named / 1e3,
            denied / 1e3
        );
    }
}

/// A kubeconfig for `server` whose credential is `token`.
fn token_kubeconfig(server: &support::ApiserverProcess, token: &str) -> String {
    let admin = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let ca = admin.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .unwrap();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        server.url
    )
}

async fn client_for(yaml: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn create(client: &kube::Client, obj: serde_json::Value) {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    let gvk = kube::api::GroupVersionKind::try_from(obj.types.as_ref().unwrap()).unwrap();
    let ar = kube::api::ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// Starts a server with the 1,000 Roles and RoleBindings and returns it
/// with a client of the service account `ns-9/bench`, bound to `edit`.
async fn server(
    binary: &Path,
    dir: &Path,
    flags: &[&str],
) -> (support::ApiserverProcess, kube::Client) {
    let mut args = vec!["--controllers="];
    args.extend_from_slice(flags);
    let server = support::start_apiserver_with(binary, dir, &args).await;
    let admin = support::client(&server.kubeconfig).await;
    for n in 0..NAMESPACES {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("ns-{n}")),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    for i in 0..ROLES {
        create(&admin, role(i)).await;
        create(&admin, role_binding(i)).await;
    }
    create(
        &admin,
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "bench", "namespace": "ns-9"}}),
    )
    .await;
    create(
        &admin,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bench-edit", "namespace": "ns-9"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "ns-9"}]}),
    )
    .await;
    let request = http::Request::post(
        "/api/v1/namespaces/ns-9/serviceaccounts/bench/token",
    )
    .header("content-type", "application/json")
    .body(
        serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}))
            .unwrap(),
    )
    .unwrap();
    let answer: serde_json::Value = admin.request(request).await.unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    let client = client_for(&token_kubeconfig(&server, &token)).await;
    (server, client)
}

/// Operations per second of `total` creates (then gets) over 16 tasks.
async fn throughput(client: &kube::Client, round: usize) -> (f64, f64) {
    let total = 2000;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns-9");
    let mut rates = [0.0; 2];
    for (k, rate) in rates.iter_mut().enumerate() {
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..16 {
            let cms = cms.clone();
            tasks.spawn(async move {
                for i in (t..total).step_by(16) {
                    let name = format!("r{round}-{i}");
                    if k == 0 {
                        let cm = ConfigMap {
                            metadata: ObjectMeta {
                                name: Some(name),
                                ..Default::default()
                            },
                            data: Some([("k".to_string(), "v".to_string())].into()),
                            ..Default::default()
                        };
                        cms.create(&PostParams::default(), &cm).await.unwrap();
                    } else {
                        cms.get(&name).await.unwrap();
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        *rate = total as f64 / t0.elapsed().as_secs_f64();
    }
    (rates[0], rates[1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("# vkube authorization benchmark");
    decisions();

    let binary = Path::new(env!("CARGO_BIN_EXE_vkube"));
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let policy = dirs[2].path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules: [{level: Metadata}]\n",
    )
    .unwrap();
    let log = dirs[2].path().join("audit.log");
    let (policy, log) = (policy.display().to_string(), log.display().to_string());
    let (_rbac, rbac) = server(binary, dirs[0].path(), &["--authorization-mode", "RBAC"]).await;
    let (_allow, allow) = server(
        binary,
        dirs[1].path(),
        &["--authorization-mode", "AlwaysAllow"],
    )
    .await;
    let audit_flags = [
        "--authorization-mode",
        "RBAC",
        "--audit-policy-file",
        &policy,
        "--audit-log-path",
        &log,
    ];
    let (_audited, audited) = server(binary, dirs[2].path(), &audit_flags).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let clients = [&rbac, &allow, &audited];
    let mut sums = [(0.0, 0.0); 3];
    for round in 0..6 {
        // Rotate which server goes first.
        for k in 0..3 {
            let i = (round + k) % 3;
            let (c, g) = throughput(clients[i], round).await;
            sums[i].0 += c;
            sums[i].1 += g;
        }
    }
    let [(rc, rg), (ac, ag), (uc, ug)] = sums.map(|(c, g)| (c / 6.0, g / 6.0));
    println!(
        "service account bound to edit in ns-9, 16 clients, 6 rotating rounds of 2000: create RBAC {rc:.0}/s vs AlwaysAllow {ac:.0}/s (ratio {:.2})   get RBAC {rg:.0}/s vs AlwaysAllow {ag:.0}/s (ratio {:.2})",
        rc / ac,
        rg / ag
    );
    let lines = std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
    println!(
        "audit at level Metadata to a file ({lines} events): create {uc:.0}/s vs RBAC alone {rc:.0}/s (ratio {:.2})   get {ug:.0}/s vs {rg:.0}/s (ratio {:.2})",
        uc / rc,
        ug / rg
    );
}
