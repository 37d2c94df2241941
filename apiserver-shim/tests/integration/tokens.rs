//! Service account tokens through kube-rs: TokenRequest on
//! `serviceaccounts/token`, the issued JWT used as a bearer token by a fresh
//! client, identity via `selfsubjectreviews`, revocation by deleting or
//! recreating the service account or bound pod, and issuer discovery.

use apiserver_shim::{Server, ServerConfig};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

struct Harness {
    server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = ServerConfig::new(dir.path());
    tweak(&mut cfg);
    let server = Server::start(cfg).await.expect("server starts");
    let client = client_from_kubeconfig(&server.kubeconfig).await;
    Harness {
        server,
        client,
        _dir: dir,
    }
}

async fn client_from_kubeconfig(yaml: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    Client::try_from(config).expect("client builds")
}

/// A client that trusts the server's CA and authenticates with `token` only.
async fn token_client(server: &Server, token: &str) -> Client {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(&server.pki.ca_cert);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user: {{token: {token}}}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\ncurrent-context: t\n",
        server.url()
    );
    client_from_kubeconfig(&yaml).await
}

/// A TokenRequest with `spec` (JSON, so the test does not depend on the
/// k8s-openapi version's field optionality); the answer as JSON.
async fn request_token(client: &Client, ns: &str, sa: &str, spec: Value) -> kube::Result<Value> {
    let tr: TokenRequest = serde_json::from_value(json!({"spec": spec})).unwrap();
    let out = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &tr)
        .await?;
    Ok(serde_json::to_value(out).unwrap())
}

/// The issued token of a TokenRequest answer.
fn token_of(tr: &Value) -> String {
    tr["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

/// `status.userInfo` of a SelfSubjectReview.
async fn whoami(client: &Client) -> kube::Result<Value> {
    let review: SelfSubjectReview = serde_json::from_value(json!({})).unwrap();
    let out = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(serde_json::to_value(out).unwrap()["status"]["userInfo"].clone())
}

fn status_code<T: std::fmt::Debug>(r: kube::Result<T>) -> u16 {
    match r {
        Err(kube::Error::Api(s)) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_issues_a_token_that_authenticates_as_the_service_account() {
    let h = start().await;
    // The built-in namespaces have their default service account.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        Api::<ServiceAccount>::namespaced(h.client.clone(), ns)
            .get("default")
            .await
            .expect("default service account");
    }

    let tr = request_token(&h.client, "default", "default", json!({}))
        .await
        .expect("token request");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        tr["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let token = token_of(&tr);
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 3600);
    let expires: jiff::Timestamp = tr["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires.as_second() <= exp && expires.as_second() >= exp - 5);

    let sa_client = token_client(&h.server, &token).await;
    let user = whoami(&sa_client).await.expect("whoami");
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let sas = Api::<ServiceAccount>::namespaced(h.client.clone(), "default");
    let sa = sas.get("default").await.unwrap();
    assert_eq!(user["uid"], json!(sa.uid()));
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", claims["jti"].as_str().unwrap())])
    );
    // Ordinary requests with the token are authorized as the service
    // account, to which nothing is bound.
    let read = Api::<ServiceAccount>::namespaced(sa_client.clone(), "default")
        .get("default")
        .await;
    assert_eq!(status_code(read), 403);

    // In-process clients get every group they are issued with.
    let loopback = h
        .server
        .kubeconfig_for("system:serviceaccount:kube-system:x", &["a", "b"])
        .unwrap();
    let user = whoami(&client_from_kubeconfig(&loopback).await)
        .await
        .unwrap();
    assert_eq!(user["username"], "system:serviceaccount:kube-system:x");
    assert_eq!(user["groups"], json!(["a", "b", "system:authenticated"]));
    // A certificate names one group: more is refused, not truncated.
    assert!(h.server.pki.issue_client("u", &["a", "b"]).is_err());

    // The admin's identity gains system:authenticated as well.
    let admin = whoami(&h.client).await.unwrap();
    assert_eq!(
        admin["groups"],
        json!(["system:masters", "system:authenticated"])
    );

    // A token for another audience does not authenticate here.
    let foo = request_token(
        &h.client,
        "default",
        "default",
        json!({"audiences": ["foo"], "expirationSeconds": 600}),
    )
    .await
    .unwrap();
    assert_eq!(foo["spec"]["audiences"], json!(["foo"]));
    let foo_token = token_of(&foo);
    assert_eq!(claims_of(&foo_token)["aud"], json!(["foo"]));
    let foo_client = token_client(&h.server, &foo_token).await;
    assert_eq!(status_code(whoami(&foo_client).await), 401);

    // A tampered token is rejected.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let tampered_client = token_client(&h.server, &tampered).await;
    assert_eq!(status_code(whoami(&tampered_client).await), 401);

    // Deleting and recreating the service account revokes its tokens.
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_code(whoami(&sa_client).await), 401);
    let fresh: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    sas.create(&PostParams::default(), &fresh).await.unwrap();
    assert_eq!(status_code(whoami(&sa_client).await), 401);

    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_errors_and_pod_binding() {
    let h = start().await;
    let c = &h.client;
    // Missing service account.
    let missing = request_token(c, "default", "nope", json!({})).await;
    assert_eq!(status_code(missing), 404);
    // Too short a lifetime, with upstream's message.
    match request_token(c, "default", "default", json!({"expirationSeconds": 60})).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert_eq!(
                s.message,
                "TokenRequest.authentication.k8s.io \"default\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
            );
        }
        other => panic!("{other:?}"),
    }

    // Bound to a pod: claims name it; deleting the pod revokes the token.
    let pods = Api::<Pod>::namespaced(c.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p1"},
        "spec": {"serviceAccountName": "default",
                 "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let bound = |kind: &str, uid: Option<String>| json!({"boundObjectRef": {"apiVersion": "v1", "kind": kind, "name": "p1", "uid": uid}});
    let wrong_uid = request_token(c, "default", "default", bound("Pod", Some("x".into()))).await;
    assert_eq!(status_code(wrong_uid), 409);
    let other_sa = request_token(c, "kube-system", "default", bound("Pod", None)).await;
    assert_eq!(
        status_code(other_sa),
        404,
        "pods are looked up in the token's namespace"
    );
    let tr = request_token(c, "default", "default", bound("Pod", pod.uid()))
        .await
        .unwrap();
    let token = token_of(&tr);
    assert_eq!(
        claims_of(&token)["kubernetes.io"]["pod"],
        json!({"name": "p1", "uid": pod.uid().unwrap()})
    );
    let client = token_client(&h.server, &token).await;
    let user = whoami(&client).await.unwrap();
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["p1"])
    );
    pods.delete("p1", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(status_code(whoami(&client).await), 401);
    // Binding to a missing pod or an unsupported kind.
    let gone = request_token(c, "default", "default", bound("Pod", None)).await;
    assert_eq!(status_code(gone), 404);
    let cm = request_token(c, "default", "default", bound("ConfigMap", None)).await;
    assert_eq!(status_code(cm), 400);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_discovery_documents() {
    use base64::Engine;
    let h = start().await;
    let get = |path: &'static str| {
        let client = h.client.clone();
        async move {
            let req = http::Request::get(path).body(Vec::new()).unwrap();
            client.request::<Value>(req).await.expect(path)
        }
    };
    let oidc = get("/.well-known/openid-configuration").await;
    assert_eq!(
        oidc["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert!(
        oidc["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/openid/v1/jwks")
    );
    let jwks = get("/openid/v1/jwks").await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    // The kid in the JWKS is the one tokens carry.
    let tr = request_token(&h.client, "kube-system", "default", json!({}))
        .await
        .unwrap();
    let token = token_of(&tr);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key["kid"]);
    assert_eq!(header["alg"], "ES256");
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_issuer_and_max_expiration() {
    let h = start_with(|c| {
        c.service_account.issuer = "https://vc.example.com".into();
        c.service_account.max_expiration_seconds = Some(900);
    })
    .await;
    let tr = request_token(
        &h.client,
        "default",
        "default",
        json!({"expirationSeconds": 7200}),
    )
    .await
    .unwrap();
    // Shortened to the cap; the issuer is also the default audience.
    assert_eq!(tr["spec"]["expirationSeconds"], 900);
    assert_eq!(tr["spec"]["audiences"], json!(["https://vc.example.com"]));
    let token = token_of(&tr);
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], "https://vc.example.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let user = whoami(&token_client(&h.server, &token).await)
        .await
        .unwrap();
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    h.server.shutdown().await;
}
