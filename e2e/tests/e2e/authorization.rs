//! Access reviews, rules reviews, token reviews and impersonation with real
//! kubectl (`kubectl auth can-i`, `--list`, `--as`), answered from the
//! RBAC objects as kube-apiserver's RBAC authorizer answers.

use vkube_controllers::simulator::NodeSimulator;
use vkube_e2e::TestCluster;

/// A kubeconfig whose credential is a fresh token of the service account
/// `dev/builder` (from [`POLICY`]).
async fn builder_kubeconfig(c: &TestCluster) -> String {
    let token = c
        .kubectl(&["create", "token", "builder", "-n", "dev"])
        .await
        .expect_ok()
        .stdout
        .trim()
        .to_string();
    c.token_kubeconfig("builder.kubeconfig", &token)
}

/// `kubectl ARGS` with the kubeconfig `kc`.
async fn kubectl_with(c: &TestCluster, kc: &str, args: &[&str]) -> vkube_e2e::Output {
    let mut all = vec!["--kubeconfig", kc];
    all.extend_from_slice(args);
    c.kubectl(&all).await
}

const POLICY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: dev}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: dev}
rules:
  - apiGroups: [""]
    resources: [pods, pods/log]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
  - {kind: ServiceAccount, name: builder}
"#;

#[tokio::test]
async fn kubectl_auth_can_i_answers_from_rbac() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    // The admin (system:masters) may do anything.
    c.kubectl(&["auth", "can-i", "delete", "nodes"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["yes"]);
    let can = |args: &'static [&'static str]| {
        let c = &c;
        async move {
            let mut all = vec!["auth", "can-i"];
            all.extend_from_slice(args);
            let out = c.kubectl(&all).await;
            (out.success(), out.stdout.trim().to_string())
        }
    };
    assert_eq!(
        can(&["list", "pods", "-n", "dev", "--as", "alice"]).await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&[
            "get",
            "pods",
            "--subresource=log",
            "-n",
            "dev",
            "--as",
            "alice"
        ])
        .await,
        (true, "yes".into())
    );
    assert_eq!(
        can(&["delete", "pods", "-n", "dev", "--as", "alice"]).await,
        (false, "no".into())
    );
    assert_eq!(
        can(&["list", "pods", "-n", "default", "--as", "alice"]).await,
        (false, "no".into())
    );
    assert_eq!(
        can(&["list", "pods", "-n", "dev", "--as", "bob"]).await,
        (false, "no".into())
    );
    assert_eq!(
        can(&[
            "watch",
            "pods",
            "-n",
            "dev",
            "--as",
            "system:serviceaccount:dev:builder"
        ])
        .await,
        (true, "yes".into())
    );
    // Every authenticated user may ask about itself (the bootstrap
    // system:basic-user role).
    assert_eq!(
        can(&["create", "selfsubjectaccessreviews", "--as", "bob"]).await,
        (true, "yes".into())
    );
    // --list is a SelfSubjectRulesReview.
    let list = c
        .kubectl(&["auth", "can-i", "--list", "-n", "dev", "--as", "alice"])
        .await
        .expect_ok();
    let pods = list
        .lines()
        .into_iter()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("{}", list.stdout))
        .to_string();
    assert!(pods.contains("[get list watch]"), "{pods}");
    // A SubjectAccessReview carries the RBAC reason.
    let sar = c
        .kubectl_stdin(
            &[
                "create",
                "--raw",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                "-f",
                "-",
            ],
            r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": "alice", "resourceAttributes":
                  {"namespace": "dev", "verb": "get", "resource": "pods", "name": "web"}}}"#,
        )
        .await
        .expect_ok()
        .json();
    assert_eq!(sar["status"]["allowed"], true, "{sar}");
    assert_eq!(
        sar["status"]["reason"],
        r#"RBAC: allowed by RoleBinding "readers/dev" of Role "pod-reader" to User "alice""#
    );
    // kube's validation: a review must name a user or group.
    c.kubectl_stdin(
        &[
            "create",
            "--raw",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            "-f",
            "-",
        ],
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}"#,
    )
    .await
    .expect_err_contains(
        "spec.user: Invalid value: \"\": at least one of user or group must be specified",
    );
    // Every error in one answer, in kube's order (the spec's, the
    // selectors', the metadata's, a local review's own).
    let out = c
        .kubectl_stdin(
            &[
                "create",
                "--raw",
                "/apis/authorization.k8s.io/v1/namespaces/dev/localsubjectaccessreviews",
                "-f",
                "-",
            ],
            r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                "metadata": {"namespace": "dev", "name": "named"},
                "spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "prod",
                         "labelSelector": {"rawSelector": "app=web", "requirements": [{"key": "app", "operator": "Exists"}]}}}}"#,
        )
        .await;
    let body = out.stderr.clone();
    let positions: Vec<usize> = [
        "spec.user: Invalid value",
        "spec.resourceAttributes.labelSelector.rawSelector: Invalid value: \"app=web\": may not specified at the same time as requirements",
        "metadata: Invalid value",
        "spec.resourceAttributes.namespace: Invalid value: \"prod\": must match metadata.namespace",
    ]
    .iter()
    .map(|m| body.find(m).unwrap_or_else(|| panic!("{m:?} missing: {out}")))
    .collect();
    assert!(positions.is_sorted(), "{out}");
    // The review kinds are in discovery, with only `create`.
    c.kubectl(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "wide",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&[
        "localsubjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
    ])
    .lines()
    .into_iter()
    .skip(1)
    .for_each(|row| assert!(row.trim_end().ends_with("create"), "{row}"));
    c.shutdown().await;
}

// `kubectl create --raw` posts the review as is: kubectl's client-side
// validation of a kind without a PATCH operation reads /openapi/v2, which
// this server does not serve (docs/apiserver.md).
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

#[tokio::test]
async fn token_reviews_and_impersonation_need_the_rights_kube_asks_for() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    let token = c
        .kubectl(&["create", "token", "builder", "-n", "dev"])
        .await
        .expect_ok()
        .stdout
        .trim()
        .to_string();
    let review = |token: &str| {
        format!(
            r#"{{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {{"token": "{token}"}}}}"#
        )
    };
    let ok = c
        .kubectl_stdin(
            &["create", "--raw", TOKEN_REVIEWS, "-f", "-"],
            &review(&token),
        )
        .await
        .expect_ok()
        .json();
    assert_eq!(ok["status"]["authenticated"], true, "{ok}");
    assert_eq!(
        ok["status"]["user"]["username"],
        "system:serviceaccount:dev:builder"
    );
    let groups = ok["status"]["user"]["groups"].to_string();
    assert!(groups.contains("system:serviceaccounts:dev"), "{groups}");
    let bad = c
        .kubectl_stdin(
            &["create", "--raw", TOKEN_REVIEWS, "-f", "-"],
            &review("not-a-token"),
        )
        .await
        .expect_ok()
        .json();
    assert_eq!(
        bad["status"]["authenticated"],
        serde_json::Value::Null,
        "{bad}"
    );
    assert!(bad["status"]["error"].is_string(), "{bad}");
    // The service account may read pods in dev, but not impersonate.
    let kc = c.token_kubeconfig("builder.kubeconfig", &token);
    c.kubectl(&["--kubeconfig", &kc, "get", "pods", "-n", "dev"])
        .await
        .expect_ok();
    c.kubectl(&["--kubeconfig", &kc, "get", "pods", "-n", "dev", "--as", "alice"])
        .await
        .expect_err_contains(
            r#"users "alice" is forbidden: User "system:serviceaccount:dev:builder" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        );
    // The admin may, and then acts as the user (whoami shows it).
    c.kubectl(&["auth", "whoami", "--as", "alice", "--as-group", "devs"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["alice", "devs"]);
    c.shutdown().await;
}

/// A chart's ClusterRole labelled `aggregate-to-edit` extends `edit` and
/// (through `edit`) `admin`, so a user bound to `edit` may use the new
/// kind; deleting it takes the rules away again.
#[tokio::test]
async fn aggregated_cluster_roles_follow_the_roles_they_select() {
    let c = TestCluster::start_with_controllers(NodeSimulator::default()).await;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-edit
  labels: {rbac.authorization.k8s.io/aggregate-to-edit: "true"}
rules:
  - apiGroups: [example.com]
    resources: [widgets]
    verbs: [get, list, create, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: carol-edits, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}]
"#,
    )
    .await
    .expect_ok();
    let widgets_in = |role: &'static str| {
        let c = &c;
        async move {
            let r = c.get_json(&["clusterrole", role]).await.unwrap();
            r["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| rule["resources"] == serde_json::json!(["widgets"]))
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(widgets_in("edit").await && widgets_in("admin").await) {
        assert!(
            std::time::Instant::now() < deadline,
            "edit and admin never aggregated the widgets rule"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        !widgets_in("view").await,
        "view selects aggregate-to-view only"
    );
    // What `kubectl auth can-i create widgets.example.com` asks once the
    // kind is served (kubectl sends no group for a kind it cannot find).
    let review = c
        .kubectl_stdin(
            &[
                "create",
                "--raw",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "-f",
                "-",
                "--as",
                "carol",
            ],
            r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "create",
                  "group": "example.com", "resource": "widgets"}}}"#,
        )
        .await
        .expect_ok()
        .json();
    assert_eq!(
        review["status"]["reason"],
        r#"RBAC: allowed by RoleBinding "carol-edits/default" of ClusterRole "edit" to User "carol""#,
        "{review}"
    );
    // The bootstrap rules of edit are still there.
    c.kubectl(&[
        "auth",
        "can-i",
        "create",
        "deployments.apps",
        "--as",
        "carol",
    ])
    .await
    .expect_ok();
    c.kubectl(&["delete", "clusterrole", "widgets-edit"])
        .await
        .expect_ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while widgets_in("edit").await || widgets_in("admin").await {
        assert!(
            std::time::Instant::now() < deadline,
            "the widgets rule stayed after its role went"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    c.shutdown().await;
}

/// RBAC decides every request: a service account's token (what every pod
/// mounts) is refused what no binding grants, with kube-apiserver's exact
/// message for each verb (list, watch, get, deletecollection, a
/// subresource, a non-resource path), and allowed once a RoleBinding
/// grants it; discovery stays open to every authenticated user.
#[tokio::test]
async fn requests_are_authorized_by_rbac_with_kubes_forbidden_messages() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "dev",
        "--from-literal=k=v",
    ])
    .await
    .expect_ok();
    let kc = builder_kubeconfig(&c).await;
    let sa = async |args: &[&str]| kubectl_with(&c, &kc, args).await;
    let who = r#"User "system:serviceaccount:dev:builder""#;
    sa(&["get", "secrets", "-n", "dev"]).await.expect_err_contains(&format!(
        r#"Error from server (Forbidden): secrets is forbidden: {who} cannot list resource "secrets" in API group "" in the namespace "dev""#
    ));
    sa(&["get", "secret", "db", "-n", "dev"]).await.expect_err_contains(&format!(
        r#"secrets "db" is forbidden: {who} cannot get resource "secrets" in API group "" in the namespace "dev""#
    ));
    sa(&["delete", "--raw", "/api/v1/namespaces/dev/pods"])
        .await
        .expect_err_contains(&format!(
            r#"pods is forbidden: {who} cannot deletecollection resource "pods" in API group "" in the namespace "dev""#
        ));
    sa(&[
        "get",
        "--raw",
        "/api/v1/namespaces/dev/pods?watch=true&timeoutSeconds=1",
    ])
    .await
    .expect_ok();
    sa(&["get", "--raw", "/api/v1/namespaces/default/pods?watch=true"])
        .await
        .expect_err_contains(&format!(
            r#"pods is forbidden: {who} cannot watch resource "pods" in API group "" in the namespace "default""#
        ));
    sa(&["create", "token", "default", "-n", "dev"])
        .await
        .expect_err_contains(&format!(
            r#"serviceaccounts "default" is forbidden: {who} cannot create resource "serviceaccounts/token" in API group "" in the namespace "dev""#
        ));
    sa(&["delete", "namespace", "dev"]).await.expect_err_contains(&format!(
        r#"namespaces "dev" is forbidden: {who} cannot delete resource "namespaces" in API group "" in the namespace "dev""#
    ));
    sa(&["get", "--raw", "/metrics"])
        .await
        .expect_err_contains(&format!(r#"forbidden: {who} cannot get path "/metrics""#));
    // The Role grants pods (and their logs) in dev, and discovery is open.
    sa(&["get", "pods", "-n", "dev"]).await.expect_ok();
    // The legacy `/watch/` paths serve GET only: a delete under one is
    // refused, not run with only `watch` authorized.
    c.kubectl(&["run", "p", "-n", "dev", "--image=busybox"])
        .await
        .expect_ok();
    sa(&["delete", "--raw", "/api/v1/watch/namespaces/dev/pods/p"])
        .await
        .expect_err_contains("MethodNotAllowed");
    c.kubectl(&["get", "pod", "p", "-n", "dev"])
        .await
        .expect_ok();
    // A list allowed for one name by `resourceNames` answers that name
    // only, however the field selector is repeated.
    c.kubectl(&["create", "secret", "generic", "other", "-n", "dev"])
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "role",
        "one-secret",
        "-n",
        "dev",
        "--verb=list",
        "--resource=secrets",
        "--resource-name=db",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "rolebinding",
        "one-secret",
        "-n",
        "dev",
        "--role=one-secret",
        "--serviceaccount=dev:builder",
    ])
    .await
    .expect_ok();
    let listed = sa(&[
        "get",
        "--raw",
        "/api/v1/namespaces/dev/secrets?fieldSelector=metadata.name%3Ddb&fieldSelector=",
    ])
    .await
    .expect_ok()
    .json();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db"], "{listed}");
    sa(&[
        "get",
        "--raw",
        "/api/v1/namespaces/dev/secrets?fieldSelector=metadata.name%3Dother",
    ])
    .await
    .expect_err_contains(&format!(
        r#"secrets "other" is forbidden: {who} cannot list resource "secrets""#
    ));
    sa(&["api-resources", "--api-group=apps"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["deployments"]);
    // A Role and RoleBinding later, the same token reads the Secret, and
    // only in dev.
    c.kubectl(&[
        "create",
        "role",
        "secret-reader",
        "-n",
        "dev",
        "--verb=get,list",
        "--resource=secrets",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "rolebinding",
        "secret-readers",
        "-n",
        "dev",
        "--role=secret-reader",
        "--serviceaccount=dev:builder",
    ])
    .await
    .expect_ok();
    sa(&[
        "get",
        "secret",
        "db",
        "-n",
        "dev",
        "-o",
        "jsonpath={.data.k}",
    ])
    .await
    .expect_ok()
    .expect_stdout_contains(&["dg=="]);
    sa(&["get", "secrets", "-n", "default"])
        .await
        .expect_err_contains(&format!(
            r#"secrets is forbidden: {who} cannot list resource "secrets" in API group "" in the namespace "default""#
        ));
    // Deleting the binding takes the grant away again.
    c.kubectl(&["delete", "rolebinding", "secret-readers", "-n", "dev"])
        .await
        .expect_ok();
    sa(&["get", "secret", "db", "-n", "dev"])
        .await
        .expect_err_contains("Forbidden");
    c.shutdown().await;
}

/// Every built-in controller acts as a `kube-system` service account that
/// the bootstrap policy binds to its own `system:controller:*` role.
#[test]
fn every_controller_has_its_bootstrap_role_and_binding() {
    let roles = apiserver_shim::bootstrap_policy::cluster_roles();
    let bindings = apiserver_shim::bootstrap_policy::cluster_role_bindings();
    for c in vkube_controllers::CONTROLLERS {
        let role = format!("system:controller:{}", c.service_account);
        assert!(
            roles.iter().any(|r| r["metadata"]["name"] == role.as_str()),
            "{}: no ClusterRole {role}",
            c.name
        );
        let binding = bindings
            .iter()
            .find(|b| b["metadata"]["name"] == role.as_str())
            .unwrap_or_else(|| panic!("{}: no ClusterRoleBinding {role}", c.name));
        assert_eq!(binding["roleRef"]["name"], role.as_str());
        assert_eq!(
            binding["subjects"][0],
            serde_json::json!({"kind": "ServiceAccount", "name": c.service_account, "namespace": "kube-system"})
        );
        assert_eq!(
            c.user(),
            format!("system:serviceaccount:kube-system:{}", c.service_account)
        );
    }
}

/// A namespace admin may grant in its namespace what it holds there, and
/// nothing more: a Role with rules it lacks, a RoleBinding to
/// `cluster-admin` and a binding to a missing role get kube-apiserver's
/// answers; `system:masters` may do all of it.
#[tokio::test]
async fn rbac_writes_cannot_escalate() {
    let c = TestCluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], POLICY)
        .await
        .expect_ok();
    c.kubectl(&[
        "create",
        "rolebinding",
        "dev-admin",
        "-n",
        "dev",
        "--clusterrole=admin",
        "--serviceaccount=dev:builder",
    ])
    .await
    .expect_ok();
    let kc = builder_kubeconfig(&c).await;
    let sa = async |args: &[&str]| kubectl_with(&c, &kc, args).await;
    let held = r#"user "system:serviceaccount:dev:builder" (groups=["system:serviceaccounts" "system:serviceaccounts:dev" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#;
    // Rules it holds in dev: allowed.
    sa(&[
        "create",
        "role",
        "secrets",
        "-n",
        "dev",
        "--verb=get,list",
        "--resource=secrets",
    ])
    .await
    .expect_ok();
    sa(&[
        "create",
        "rolebinding",
        "view",
        "-n",
        "dev",
        "--clusterrole=view",
        "--user=carol",
    ])
    .await
    .expect_ok();
    // A body without metadata.namespace (as typed clients send it) is
    // checked in the URL's namespace: a binding to the Role just made.
    let raw = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "raw"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secrets"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]}"#;
    c.kubectl_stdin(
        &[
            "--kubeconfig",
            &kc,
            "create",
            "--raw",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
            "-f",
            "-",
        ],
        raw,
    )
    .await
    .expect_ok();
    c.kubectl(&["get", "rolebinding", "raw", "-n", "dev"])
        .await
        .expect_ok();
    // Rules it does not hold: refused, with the missing rules.
    sa(&["create", "role", "nodes", "-n", "dev", "--verb=list,get", "--resource=nodes"])
        .await
        .expect_err_contains(&format!(
            "roles.rbac.authorization.k8s.io \"nodes\" is forbidden: {held}\n{{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"list\" \"get\"]}}"
        ));
    sa(&["create", "rolebinding", "root", "-n", "dev", "--clusterrole=cluster-admin", "--user=carol"])
        .await
        .expect_err_contains(&format!(
            "rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: {held}\n{{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}}\n{{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}}"
        ));
    sa(&[
        "create",
        "rolebinding",
        "ghost",
        "-n",
        "dev",
        "--clusterrole=nope",
        "--user=carol",
    ])
    .await
    .expect_err_contains(r#"clusterroles.rbac.authorization.k8s.io "nope" not found"#);
    // Raising an allowed Role's rules later is refused as well.
    sa(&["patch", "role", "secrets", "-n", "dev", "--type=json", "-p", r#"[{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}}]"#])
        .await
        .expect_err_contains("is attempting to grant RBAC permissions not currently held");
    // Outside dev it holds nothing.
    sa(&["create", "role", "secrets", "-n", "default", "--verb=get", "--resource=secrets"])
        .await
        .expect_err_contains(
            r#"roles.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:dev:builder" cannot create resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "default""#,
        );
    // The admin (system:masters) may grant anything, even a missing role.
    c.kubectl(&[
        "create",
        "rolebinding",
        "ghost",
        "-n",
        "dev",
        "--clusterrole=nope",
        "--user=carol",
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "create",
        "role",
        "nodes",
        "-n",
        "dev",
        "--verb=list",
        "--resource=nodes",
    ])
    .await
    .expect_ok();
    c.shutdown().await;
}

/// Expands rules into the lines of `testdata/rbac-aggregated-roles-v1.34.txt`.
fn rule_lines(role: &str, rules: &serde_json::Value) -> Vec<String> {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for r in rules.as_array().into_iter().flatten() {
        let verbs = strings(&r["verbs"]);
        let mut names = strings(&r["resourceNames"]);
        if names.is_empty() {
            names.push(String::new());
        }
        for g in strings(&r["apiGroups"]) {
            let g = if g.is_empty() { "\"\"".to_string() } else { g };
            for res in strings(&r["resources"]) {
                for v in &verbs {
                    for n in &names {
                        let line = format!("{role} {g} {res} {v} {n}");
                        out.push(line.trim_end().to_string());
                    }
                }
            }
        }
        for u in strings(&r["nonResourceURLs"]) {
            out.extend(verbs.iter().map(|v| format!("{role} url {u} {v}")));
        }
    }
    out
}

/// `admin`, `edit` and `view` grant exactly what they grant on a real
/// v1.34 cluster (recorded from its bootstrap policy), and `kubectl auth
/// can-i` answers from them.
#[tokio::test]
async fn view_edit_and_admin_grant_what_kube_v1_34_grants() {
    let recorded = include_str!("../../testdata/rbac-aggregated-roles-v1.34.txt");
    let want: std::collections::BTreeSet<&str> = recorded
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let roles = apiserver_shim::bootstrap_policy::cluster_roles();
    let mut have = std::collections::BTreeSet::new();
    for name in ["admin", "edit", "view"] {
        let role = roles
            .iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap();
        have.extend(rule_lines(name, &role["rules"]));
    }
    let missing: Vec<_> = want.iter().filter(|l| !have.contains(**l)).collect();
    let extra: Vec<_> = have.iter().filter(|l| !want.contains(l.as_str())).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );

    // Served: users bound in one namespace get the answers those rules give.
    let c = TestCluster::start().await;
    c.kubectl(&["create", "namespace", "m"]).await.expect_ok();
    for role in ["admin", "edit", "view"] {
        c.kubectl(&[
            "create",
            "rolebinding",
            role,
            "-n",
            "m",
            &format!("--clusterrole={role}"),
            &format!("--user=u-{role}"),
        ])
        .await
        .expect_ok();
    }
    let can = async |role: &str, args: &[&str]| {
        let user = format!("u-{role}");
        let mut all = vec!["auth", "can-i", "-n", "m", "--as", user.as_str()];
        all.extend_from_slice(args);
        c.kubectl(&all).await.stdout.trim().to_string()
    };
    for (role, args, answer) in [
        ("view", &["list", "pods"][..], "yes"),
        ("view", &["get", "secrets"], "no"),
        ("view", &["create", "pods/exec"], "no"),
        ("edit", &["create", "pods/exec"], "yes"),
        ("edit", &["get", "secrets"], "yes"),
        ("edit", &["create", "rolebindings"], "no"),
        ("admin", &["create", "rolebindings"], "yes"),
        ("admin", &["delete", "resourcequotas"], "no"),
        ("admin", &["list", "nodes"], "no"),
    ] {
        assert_eq!(can(role, args).await, answer, "{role} {args:?}");
    }
    c.shutdown().await;
}

/// At every start the bootstrap roles get back what they lack (unless an
/// admin opted out with `autoupdate: "false"`), as kube-apiserver
/// reconciles them: a cluster created by an older vkube gains the rules a
/// newer one grants.
#[tokio::test]
async fn bootstrap_roles_are_reconciled_at_start() {
    let mut c = TestCluster::start().await;
    let empty = r#"[{"op": "replace", "path": "/rules", "value": []}]"#;
    for role in ["system:basic-user", "system:monitoring"] {
        c.kubectl(&["patch", "clusterrole", role, "--type=json", "-p", empty])
            .await
            .expect_ok();
    }
    c.kubectl(&[
        "annotate",
        "clusterrole",
        "system:monitoring",
        "rbac.authorization.kubernetes.io/autoupdate=false",
        "--overwrite",
    ])
    .await
    .expect_ok();
    c.restart_server().await;
    let rules = async |role: &str| {
        c.kubectl(&["get", "clusterrole", role, "-o", "jsonpath={.rules}"])
            .await
            .expect_ok()
            .stdout
    };
    let basic = rules("system:basic-user").await;
    assert!(basic.contains("selfsubjectaccessreviews"), "{basic}");
    let monitoring = rules("system:monitoring").await;
    assert!(!monitoring.contains("/metrics"), "{monitoring}");
    c.shutdown().await;
}

/// The syncer's identity mints only the tokens of pods: a TokenRequest not
/// bound to a pod by uid is refused, as NodeRestriction refuses a kubelet's.
#[tokio::test]
async fn the_syncer_mints_only_pod_bound_tokens() {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    use kube::api::{Api, PostParams};
    let c = TestCluster::start().await;
    c.kubectl(&["run", "p", "--image=busybox"])
        .await
        .expect_ok();
    let uid = Api::<Pod>::default_namespaced(c.client().await)
        .get("p")
        .await
        .unwrap()
        .metadata
        .uid;
    let syncer = c
        .client_as(apiserver_shim::bootstrap_policy::SYNCER_USER, &[])
        .await;
    let sas: Api<ServiceAccount> = Api::default_namespaced(syncer);
    let request = |bound: Option<BoundObjectReference>| TokenRequest {
        spec: Some(TokenRequestSpec {
            bound_object_ref: bound,
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = |uid: Option<String>| BoundObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some("p".into()),
        uid,
    };
    let pp = PostParams::default();
    for (bound, why) in [
        (None, "syncer requested token not bound to a pod"),
        (
            Some(pod(None)),
            "syncer requested token with a pod binding without a uid",
        ),
    ] {
        match sas
            .create_token_request("default", &pp, &request(bound))
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 403);
                assert_eq!(
                    s.message,
                    format!(r#"serviceaccounts "default" is forbidden: {why}"#)
                );
            }
            other => panic!("expected 403: {other:?}"),
        }
    }
    let issued = sas
        .create_token_request("default", &pp, &request(Some(pod(uid))))
        .await
        .unwrap();
    let token = issued.status.and_then(|s| s.token).unwrap_or_default();
    assert!(token.starts_with("eyJ"), "{token}");
    c.shutdown().await;
}

/// A kube-rs client for `c` with no credentials at all (kubectl would
/// prompt for a password on a 401).
async fn anonymous_client(c: &TestCluster) -> kube::Client {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(&c.server.pki.ca_cert);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: nobody}}\ncurrent-context: t\n",
        c.server.url()
    );
    vkube_controllers::client_from_kubeconfig(&yaml)
        .await
        .unwrap()
}

/// `GET path` with `client`: the status code and body.
async fn raw_get(client: &kube::Client, path: &str) -> (u16, String) {
    let request = http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect_bytes().await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn requests_without_credentials_get_401_unless_anonymous_auth_is_on() {
    let off = TestCluster::start().await;
    let (code, body) = raw_get(&anonymous_client(&off).await, "/api").await;
    assert_eq!(code, 401, "{body}");
    off.shutdown().await;

    let on = TestCluster::start_configured(|c| c.anonymous_auth = true).await;
    let anonymous = anonymous_client(&on).await;
    // Public information only, as kube's bootstrap policy grants it.
    assert_eq!(raw_get(&anonymous, "/livez").await.0, 200);
    let (code, body) = raw_get(&anonymous, "/api").await;
    assert_eq!(code, 403);
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/api\""#),
        "{body}"
    );
    let (code, body) = raw_get(&anonymous, "/api/v1/namespaces").await;
    assert_eq!(code, 403);
    assert!(
        body.contains(r#"namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"#),
        "{body}"
    );
    // Whatever RBAC grants system:unauthenticated, it may then do.
    on.kubectl(&[
        "create",
        "clusterrolebinding",
        "anonymous-discovery",
        "--clusterrole=system:discovery",
        "--group=system:unauthenticated",
    ])
    .await
    .expect_ok();
    let (code, body) = raw_get(&anonymous, "/api").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("APIVersions"), "{body}");
    // Credentials that fail are never anonymous, nor an Authorization
    // header of another scheme.
    let basic = http::Request::get("/api")
        .header("authorization", "Basic Zm9vOmJhcg==")
        .body(kube::client::Body::empty())
        .unwrap();
    assert_eq!(anonymous.send(basic).await.unwrap().status().as_u16(), 401);
    let bad = on.token_kubeconfig("bad.kubeconfig", "forged");
    kubectl_with(&on, &bad, &["get", "--raw", "/api"])
        .await
        .expect_err_contains("Unauthorized");
    on.shutdown().await;
}
