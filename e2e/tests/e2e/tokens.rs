//! Service account tokens with the real kubectl: `kubectl create token`
//! issues a JWT that authenticates as the service account (`kubectl auth
//! whoami` with a kubeconfig holding only that token), audiences and
//! durations are honoured, and a tampered token is Unauthorized.

use base64::Engine;
use serde_json::{Value, json};
use vkube_e2e::TestCluster;

/// A kubeconfig trusting the cluster CA whose only credential is `token`
/// (no client certificate, which would take precedence).
fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("base64url payload");
    serde_json::from_slice(&payload).expect("JSON claims")
}

#[tokio::test]
async fn kubectl_create_token_authenticates_as_the_service_account() {
    let c = TestCluster::start().await;
    // The default service account exists from the start.
    c.kubectl(&["get", "serviceaccount", "default", "-n", "kube-system"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["default"]);

    let out = c.kubectl(&["create", "token", "default"]).await.expect_ok();
    let token = out.stdout.trim().to_string();
    assert!(token.starts_with("eyJ"), "a JWT: {token}");
    let cl = claims(&token);
    assert_eq!(cl["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        cl["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        3600
    );

    let kc = c.token_kubeconfig("sa.kubeconfig", &token);
    c.kubectl(&["--kubeconfig", &kc, "auth", "whoami"])
        .await
        .expect_ok()
        .expect_stdout_contains(&[
            "system:serviceaccount:default:default",
            "[system:serviceaccounts system:serviceaccounts:default system:authenticated]",
            "authentication.kubernetes.io/credential-id",
        ]);
    let name = c
        .kubectl(&[
            "--kubeconfig",
            &kc,
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await
        .expect_ok();
    assert_eq!(name.stdout, "system:serviceaccount:default:default");
    // Ordinary requests are authorized as the service account: nothing is
    // bound to it, so reading its own ServiceAccount object is refused.
    c.kubectl(&["--kubeconfig", &kc, "get", "serviceaccount", "default"])
        .await
        .expect_err_contains(
            r#"serviceaccounts "default" is forbidden: User "system:serviceaccount:default:default" cannot get resource "serviceaccounts" in API group "" in the namespace "default""#,
        );

    // A tampered token: kubectl's own Unauthorized message.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let bad = format!("{head}.{flipped}{}", &sig[1..]);
    let bad_kc = c.token_kubeconfig("bad.kubeconfig", &bad);
    c.kubectl(&["--kubeconfig", &bad_kc, "auth", "whoami"])
        .await
        .expect_err_contains("error: You must be logged in to the server (Unauthorized)");
    c.kubectl(&["--kubeconfig", &bad_kc, "get", "pods"])
        .await
        .expect_err_contains("error: You must be logged in to the server (Unauthorized)");
    c.shutdown().await;
}

#[tokio::test]
async fn kubectl_create_token_audience_duration_and_binding() {
    let c = TestCluster::start().await;
    let out = c
        .kubectl(&[
            "create",
            "token",
            "default",
            "--audience=foo",
            "--duration=10m",
        ])
        .await
        .expect_ok();
    let token = out.stdout.trim().to_string();
    let cl = claims(&token);
    assert_eq!(cl["aud"], json!(["foo"]));
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        600
    );
    // Not an audience of this API server: not accepted here.
    let kc = c.token_kubeconfig("foo.kubeconfig", &token);
    c.kubectl(&["--kubeconfig", &kc, "auth", "whoami"])
        .await
        .expect_err_contains("Unauthorized");

    c.kubectl(&["create", "token", "default", "--duration=5m"])
        .await
        .expect_err_contains("may not specify a duration less than 10 minutes");
    c.kubectl(&["create", "token", "missing"])
        .await
        .expect_err_contains("serviceaccounts \"missing\" not found");

    // Bound to a pod: the claims and the identity name it.
    c.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  serviceAccountName: default\n  containers:\n  - name: c\n    image: busybox\n",
    )
    .await
    .expect_ok();
    let out = c
        .kubectl(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=p1",
        ])
        .await
        .expect_ok();
    let token = out.stdout.trim().to_string();
    assert_eq!(claims(&token)["kubernetes.io"]["pod"]["name"], "p1");
    let kc = c.token_kubeconfig("pod.kubeconfig", &token);
    c.kubectl(&["--kubeconfig", &kc, "auth", "whoami"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["authentication.kubernetes.io/pod-name", "[p1]"]);
    c.kubectl(&["delete", "pod", "p1", "--grace-period=0", "--force"])
        .await
        .expect_ok();
    c.kubectl(&["--kubeconfig", &kc, "auth", "whoami"])
        .await
        .expect_err_contains("Unauthorized");
    c.shutdown().await;
}
