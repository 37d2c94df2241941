//! OIDC users: an identity provider run by the test (an HTTPS discovery
//! document and key set, and ES256 tokens it signs) and a server configured
//! with a structured authentication configuration. Real kubectl presents
//! the tokens; what a user sees is asserted: who they are, what RBAC lets
//! them do, and `401` for every forged or stale token.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use vkube_e2e::TestCluster;

/// A signing key and its public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    SigningKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(&key.serialize_der()),
        jwk: json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

/// The identity provider: serves discovery and the current key set over
/// TLS with its own CA.
struct Issuer {
    url: String,
    ca_pem: String,
    keys: Arc<Mutex<Vec<Value>>>,
}

async fn start_issuer() -> Issuer {
    let (acceptor, ca_pem) = vkube_e2e::tls_acceptor(&["127.0.0.1"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let keys: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (served_url, served_keys) = (url.clone(), keys.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, url, keys) = (acceptor.clone(), served_url.clone(), served_keys.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let body = match req.uri().path() {
                            "/.well-known/openid-configuration" => {
                                json!({"issuer": url, "jwks_uri": format!("{url}/keys")})
                            }
                            _ => json!({"keys": *keys.lock().unwrap()}),
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(body.to_string()),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Issuer { url, ca_pem, keys }
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn claims(issuer: &Issuer, email: &str, groups: &[&str]) -> Value {
    json!({"iss": issuer.url, "aud": "vkube", "sub": email, "email": email,
        "email_verified": true, "groups": groups, "iat": now(), "exp": now() + 600,
        "jti": "token-1"})
}

fn config(issuer: &Issuer) -> String {
    let ca = serde_json::to_string(&issuer.ca_pem).unwrap();
    format!(
        r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: {url}
    audiences: [vkube, other]
    audienceMatchPolicy: MatchAny
    certificateAuthority: {ca}
  claimValidationRules:
  - expression: "claims.email.endsWith('@example.com')"
    message: only example.com accounts
  claimMappings:
    username: {{claim: email, prefix: "oidc:"}}
    groups: {{claim: groups, prefix: "oidc:"}}
  userValidationRules:
  - expression: "!user.username.contains('blocked')"
    message: blocked user
"#,
        url = issuer.url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_user_authenticates_with_mapped_groups_and_forged_tokens_do_not() {
    let issuer = start_issuer().await;
    let first = signing_key("key-1");
    issuer.keys.lock().unwrap().push(first.jwk.clone());
    let parsed =
        apiserver_shim::filters::authentication::config::AuthenticationConfiguration::parse(
            &config(&issuer),
        )
        .unwrap();
    let c = TestCluster::start_configured(|config| config.authentication = Some(parsed)).await;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-view, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:devs"}]
"#,
    )
    .await
    .expect_ok();

    // A kubeconfig holding only the token, as an OIDC user's would.
    let written = std::sync::atomic::AtomicUsize::new(0);
    let as_token = |token: String| {
        let c = &c;
        let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kubeconfig = c.token_kubeconfig(&format!("oidc-{n}.kubeconfig"), &token);
        move |args: &[&str]| {
            let mut all = vec!["--kubeconfig".to_string(), kubeconfig.clone()];
            all.extend(args.iter().map(|s| s.to_string()));
            async move {
                let args: Vec<&str> = all.iter().map(String::as_str).collect();
                c.kubectl(&args).await
            }
        }
    };

    // A user with mapped groups; a groups claim naming system:masters is
    // prefixed like any other, so it grants nothing.
    let alice = as_token(sign(
        &first,
        &claims(&issuer, "alice@example.com", &["devs", "system:masters"]),
    ));
    let who = alice(&["auth", "whoami", "-o", "json"])
        .await
        .expect_ok()
        .json();
    let info = &who["status"]["userInfo"];
    assert_eq!(info["username"], "oidc:alice@example.com");
    assert_eq!(
        info["groups"],
        json!(["oidc:devs", "oidc:system:masters", "system:authenticated"])
    );
    assert_eq!(
        info["extra"]["authentication.kubernetes.io/credential-id"],
        json!(["JTI=token-1"])
    );
    alice(&["get", "configmaps", "-n", "team"])
        .await
        .expect_ok();
    alice(&["get", "secrets", "-n", "team"])
        .await
        .expect_err_contains(r#"User "oidc:alice@example.com" cannot list resource "secrets""#);
    alice(&["get", "namespaces"])
        .await
        .expect_err_contains("cannot list resource \"namespaces\"");

    // Every forged, stale or unwanted token: 401, as kubectl shows it.
    let unauthorized = "error: You must be logged in to the server (Unauthorized)";
    let mut expired = claims(&issuer, "alice@example.com", &["devs"]);
    expired["exp"] = json!(now() - 300);
    let mut wrong_audience = claims(&issuer, "alice@example.com", &["devs"]);
    wrong_audience["aud"] = json!("someone-else");
    let mut unverified = claims(&issuer, "alice@example.com", &["devs"]);
    unverified["email_verified"] = json!(false);
    let mut unknown_issuer = claims(&issuer, "alice@example.com", &["devs"]);
    unknown_issuer["iss"] = json!("https://evil.example");
    let stranger = signing_key("key-1");
    let forged_header = {
        let good = sign(&first, &claims(&issuer, "alice@example.com", &["devs"]));
        let parts: Vec<&str> = good.split('.').collect();
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","kid":"key-1"}"#);
        format!("{none}.{}.", parts[1])
    };
    for (what, token) in [
        ("expired", sign(&first, &expired)),
        ("wrong audience", sign(&first, &wrong_audience)),
        ("unverified email", sign(&first, &unverified)),
        ("unknown issuer", sign(&first, &unknown_issuer)),
        (
            "another key with the same kid",
            sign(&stranger, &claims(&issuer, "alice@example.com", &["devs"])),
        ),
        ("alg none", forged_header),
        (
            "claim rule",
            sign(&first, &claims(&issuer, "mallory@evil.example", &["devs"])),
        ),
        (
            "user rule",
            sign(&first, &claims(&issuer, "blocked@example.com", &["devs"])),
        ),
    ] {
        let out = as_token(token)(&["get", "configmaps", "-n", "team"]).await;
        assert!(
            !out.success() && out.stderr.contains(unauthorized),
            "{what}: {out}"
        );
    }

    // The issuer rotates its key: a token of the new key works once the
    // server fetched the keys again (at most every five seconds, so that
    // tokens naming unknown keys cannot make it hammer the issuer).
    let second = signing_key("key-2");
    *issuer.keys.lock().unwrap() = vec![second.jwk.clone()];
    let bob = as_token(sign(
        &second,
        &claims(&issuer, "bob@example.com", &["devs"]),
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = bob(&["get", "configmaps", "-n", "team"]).await;
        if out.success() {
            break;
        }
        assert!(out.stderr.contains(unauthorized), "{out}");
        assert!(
            std::time::Instant::now() < deadline,
            "the new key was never fetched: {out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // The old key is gone from the new set.
    as_token(sign(
        &first,
        &claims(&issuer, "alice@example.com", &["devs"]),
    ))(&["get", "configmaps", "-n", "team"])
    .await
    .expect_err_contains(unauthorized);

    // A TokenReview answers for OIDC tokens too.
    let review = c
        .kubectl_stdin(
            // `kubectl create -f` would validate a kind without PATCH
            // against OpenAPI v2, which this server does not serve.
            &[
                "create",
                "--raw",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                "-f",
                "-",
            ],
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": sign(&second, &claims(&issuer, "carol@example.com", &["ops"]))}})
            .to_string(),
        )
        .await
        .expect_ok()
        .json();
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(
        review["status"]["user"]["username"],
        "oidc:carol@example.com"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn a_bad_authentication_configuration_stops_the_server_with_kubes_errors() {
    let issuer = start_issuer().await;
    let bad = config(&issuer).replace("prefix: \"oidc:\"}\n    groups", "}\n    groups");
    let parsed =
        apiserver_shim::filters::authentication::config::AuthenticationConfiguration::parse(&bad)
            .unwrap();
    let err = TestCluster::try_start_configured(|config| config.authentication = Some(parsed))
        .await
        .err()
        .expect("the server refuses the configuration");
    assert!(
        format!("{err:#}").contains("jwt[0].claimMappings.username.prefix: Required value"),
        "{err:#}"
    );
}

#[tokio::test]
async fn an_issuer_the_server_cannot_reach_gives_its_keys_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("jwks.json");
    let first = signing_key("k1");
    std::fs::write(&keys, json!({"keys": [first.jwk]}).to_string()).unwrap();
    let url = "https://idp.invalid";
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: {url}, audiences: [vkube]}}\n  claimMappings:\n    username: {{claim: sub, prefix: 'offline:'}}\n"
    );
    let parsed =
        apiserver_shim::filters::authentication::config::AuthenticationConfiguration::parse(&text)
            .unwrap();
    let files = [(url.to_string(), keys.clone())].into();
    let c = TestCluster::start_configured(|config| {
        config.authentication = Some(parsed);
        config.authentication_key_files = files;
    })
    .await;
    let claims = |sub: &str| json!({"iss": url, "aud": "vkube", "sub": sub, "iat": now(), "exp": now() + 600});
    let whoami = |token: String| {
        let kubeconfig = c.token_kubeconfig(&format!("{}.kubeconfig", token.len()), &token);
        let c = &c;
        async move {
            c.kubectl(&["--kubeconfig", &kubeconfig, "auth", "whoami", "-o", "json"])
                .await
        }
    };
    let out = whoami(sign(&first, &claims("dana"))).await.expect_ok();
    assert_eq!(out.json()["status"]["userInfo"]["username"], "offline:dana");
    // Replacing the file rotates the keys.
    let second = signing_key("k2");
    std::fs::write(&keys, json!({"keys": [second.jwk]}).to_string()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !whoami(sign(&second, &claims("erin"))).await.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new key file was never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    c.shutdown().await;
}
