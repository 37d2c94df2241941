//! Admission webhooks with real kubectl: a test webhook server over TLS
//! (its own CA, given to the configurations as `caBundle`) mutates and
//! denies requests, referenced by `url` and by a tenant Service whose
//! Endpoints point at it; failure policies, timeouts, garbage answers,
//! dry runs and the exemption of the configurations themselves behave as
//! on kube-apiserver.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vkube_e2e::TestCluster;

/// A webhook server; every review it received is kept.
struct WebhookServer {
    port: u16,
    ca_pem: String,
    reviews: Arc<Mutex<Vec<Value>>>,
}

impl WebhookServer {
    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().unwrap().clone()
    }
}

fn labels(obj: &Value) -> &Value {
    obj.pointer("/metadata/labels").unwrap_or(&Value::Null)
}

/// What the test webhook answers, by path: `/mutate` labels the object
/// `mutated=true` and warns; `/validate` denies objects labelled
/// `deny=true` and deletes of objects labelled `protect=true`; `/uid`
/// replaces the uid; `/hang` never answers in time; `/garbage` is not JSON.
async fn answer(path: &str, review: &Value) -> Vec<u8> {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let object = &request["object"];
    let mut response = json!({"uid": uid, "allowed": true});
    match path {
        // A delete has no object to patch (a patch would be refused).
        "/mutate" if object.is_object() => {
            let patch = if labels(object).is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "true"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "true"}}])
            };
            response["patchType"] = json!("JSONPatch");
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            response["warnings"] = json!(["mutated by the test webhook"]);
        }
        "/validate" => {
            let deny = if labels(object)["deny"] == "true" {
                Some("the deny label is set")
            } else if request["operation"] == "DELETE"
                && labels(&request["oldObject"])["protect"] == "true"
            {
                Some("this object is protected")
            } else {
                None
            };
            if let Some(message) = deny {
                response["allowed"] = json!(false);
                response["status"] =
                    json!({"code": 403, "reason": "Forbidden", "message": message});
            }
        }
        "/uid" => {
            let patch = json!([{"op": "replace", "path": "/metadata/uid", "value": "00000000-0000-0000-0000-000000000000"}]);
            response["patchType"] = json!("JSONPatch");
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
        }
        "/rename" => {
            let patch = json!([{"op": "replace", "path": "/metadata/name", "value": "elsewhere"}]);
            response["patchType"] = json!("JSONPatch");
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
        }
        "/privileged" if object.is_object() => {
            let patch = json!([{"op": "add", "path": "/spec/hostPID", "value": true}]);
            response["patchType"] = json!("JSONPatch");
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
        }
        "/no-exec" if request["operation"] == "CONNECT" => {
            let command: Vec<&str> = object["command"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            response["allowed"] = json!(false);
            response["status"] = json!({"code": 403, "reason": "Forbidden", "message": format!("no exec into this pod ({}, {})", object["kind"].as_str().unwrap_or_default(), command.join(" "))});
        }
        "/hang" => tokio::time::sleep(Duration::from_secs(20)).await,
        "/garbage" => return b"<html>not a review</html>".to_vec(),
        _ => {}
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
    .unwrap()
}

/// Starts the server on 127.0.0.1 with a certificate for `127.0.0.1` and
/// for `hooks.webhooks.svc` (the Service the tests reference).
async fn start_webhook_server() -> WebhookServer {
    let (acceptor, ca_pem) = vkube_e2e::tls_acceptor(&["127.0.0.1", "hooks.webhooks.svc"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reviews: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = reviews.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, kept) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                            kept.lock().unwrap().push(review.clone());
                            let out = answer(&path, &review).await;
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(out),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    WebhookServer {
        port,
        ca_pem,
        reviews,
    }
}

/// One webhook configuration of `kind` with one webhook on ConfigMaps in
/// namespaces labelled `webhooks=on`.
fn configuration(kind: &str, name: &str, client_config: Value, extra: Value) -> String {
    let mut webhook = json!({
        "name": format!("{name}.webhooks.example.com"),
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (k, v) in extra.as_object().unwrap() {
        webhook[k] = v.clone();
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [webhook],
    })
    .to_string()
}

fn url_config(server: &WebhookServer, path: &str) -> Value {
    json!({"url": format!("https://127.0.0.1:{}{path}", server.port), "caBundle": server.ca_bundle()})
}

/// `kubectl apply -f -` of `manifest`.
async fn apply(c: &TestCluster, manifest: &str) -> vkube_e2e::Output {
    c.kubectl_stdin(&["apply", "-f", "-"], manifest).await
}

async fn cluster_with_namespaces() -> TestCluster {
    let c = TestCluster::start().await;
    c.kubectl(&["create", "namespace", "hooked"])
        .await
        .expect_ok();
    c.kubectl(&["label", "namespace", "hooked", "webhooks=on"])
        .await
        .expect_ok();
    c.kubectl(&["create", "namespace", "plain"])
        .await
        .expect_ok();
    c
}

#[tokio::test]
async fn a_mutating_and_a_validating_webhook_change_and_deny_requests() {
    let server = start_webhook_server().await;
    let c = cluster_with_namespaces().await;
    apply(
        &c,
        &configuration(
            "MutatingWebhookConfiguration",
            "mutate",
            url_config(&server, "/mutate"),
            json!({}),
        ),
    )
    .await
    .expect_ok();
    apply(
        &c,
        &configuration(
            "ValidatingWebhookConfiguration",
            "validate",
            url_config(&server, "/validate"),
            json!({}),
        ),
    )
    .await
    .expect_ok();
    // The stored configuration carries the v1 defaults.
    let stored = c
        .get_json(&["validatingwebhookconfiguration", "validate", "-o", "json"])
        .await
        .unwrap();
    assert_eq!(stored["webhooks"][0]["failurePolicy"], "Fail");
    assert_eq!(stored["webhooks"][0]["timeoutSeconds"], 10);

    // Mutated, with the webhook's warning shown by kubectl.
    let created = c
        .kubectl(&[
            "-n",
            "hooked",
            "create",
            "configmap",
            "one",
            "--from-literal=a=b",
        ])
        .await
        .expect_ok();
    assert!(
        created
            .stderr
            .contains("Warning: mutated by the test webhook"),
        "{}",
        created.stderr
    );
    let one = c
        .get_json(&["-n", "hooked", "configmap", "one"])
        .await
        .unwrap();
    assert_eq!(one["metadata"]["labels"]["mutated"], "true");
    let review = server
        .reviews()
        .into_iter()
        .find(|r| r["request"]["operation"] == "CREATE" && r["request"]["name"] == "one")
        .expect("the create was reviewed");
    let request = &review["request"];
    assert_eq!(request["namespace"], "hooked");
    assert_eq!(
        request["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(request["userInfo"]["username"], "kubernetes-admin");
    assert_eq!(request["options"]["kind"], "CreateOptions");
    assert_eq!(request["dryRun"], false);

    // Denied with the webhook's status and kube's prefix; nothing stored.
    c.kubectl(&["-n", "hooked", "create", "configmap", "two"])
        .await
        .expect_ok();
    let denied = c
        .kubectl(&["-n", "hooked", "label", "configmap", "two", "deny=true"])
        .await
        .expect_err_contains(
            "admission webhook \"validate.webhooks.example.com\" denied the request: the deny label is set",
        );
    assert!(denied.stderr.contains("Forbidden"), "{}", denied.stderr);
    let two = c
        .get_json(&["-n", "hooked", "configmap", "two"])
        .await
        .unwrap();
    assert_eq!(two["metadata"]["labels"].get("deny"), None);

    // A delete is reviewed with the stored object as oldObject.
    c.kubectl(&["-n", "hooked", "label", "configmap", "two", "protect=true"])
        .await
        .expect_ok();
    c.kubectl(&["-n", "hooked", "delete", "configmap", "two"])
        .await
        .expect_err_contains("this object is protected");
    c.kubectl(&["-n", "hooked", "get", "configmap", "two"])
        .await
        .expect_ok();

    // A server-side dry run reaches webhooks without side effects.
    let before = server.reviews().len();
    c.kubectl(&[
        "-n",
        "hooked",
        "create",
        "configmap",
        "dry",
        "--dry-run=server",
    ])
    .await
    .expect_ok();
    let after = server.reviews();
    assert!(after.len() > before);
    assert!(
        after[before..]
            .iter()
            .all(|r| r["request"]["dryRun"] == true)
    );

    // Namespaces outside the selector are not sent to the webhooks.
    let before = server.reviews().len();
    c.kubectl(&["-n", "plain", "create", "configmap", "free"])
        .await
        .expect_ok();
    let free = c
        .get_json(&["-n", "plain", "configmap", "free"])
        .await
        .unwrap();
    assert_eq!(free["metadata"].get("labels"), None);
    assert_eq!(server.reviews().len(), before);
    c.shutdown().await;
}

#[tokio::test]
async fn a_service_referenced_webhook_is_reached_through_the_tenant_service() {
    let server = start_webhook_server().await;
    let c = cluster_with_namespaces().await;
    // A selector-less Service whose Endpoints are the test server: the
    // Service port (443) differs from the endpoint's, as with any pod.
    let service = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: webhooks}}
---
apiVersion: v1
kind: Service
metadata: {{name: hooks, namespace: webhooks}}
spec:
  ports: [{{name: https, port: 443, targetPort: 9443}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: hooks, namespace: webhooks}}
subsets:
- addresses: [{{ip: 127.0.0.1}}]
  ports: [{{name: https, port: {}}}]
"#,
        server.port
    );
    apply(&c, &service).await.expect_ok();
    apply(&c, &configuration(
            "ValidatingWebhookConfiguration",
            "by-service",
            json!({"service": {"namespace": "webhooks", "name": "hooks", "path": "/validate"}, "caBundle": server.ca_bundle()}),
            json!({}),
        ))
    .await
    .expect_ok();
    c.kubectl(&["-n", "hooked", "create", "configmap", "bad"])
        .await
        .expect_ok();
    c.kubectl(&["-n", "hooked", "label", "configmap", "bad", "deny=true"])
        .await
        .expect_err_contains(
            "admission webhook \"by-service.webhooks.example.com\" denied the request: the deny label is set",
        );

    // A CA that did not sign the server's certificate fails the call, and
    // `failurePolicy: Fail` fails the request with kube's message.
    let other_ca = start_webhook_server().await;
    apply(&c, &configuration(
            "ValidatingWebhookConfiguration",
            "by-service",
            json!({"service": {"namespace": "webhooks", "name": "hooks", "path": "/validate"}, "caBundle": other_ca.ca_bundle()}),
            json!({}),
        ))
    .await
    .expect_ok();
    let failed = c
        .kubectl(&["-n", "hooked", "create", "configmap", "unverified"])
        .await
        .expect_err_contains("Internal error occurred: failed calling webhook \"by-service.webhooks.example.com\": failed to call webhook: Post \"https://hooks.webhooks.svc:443/validate?timeout=10s\"");
    assert!(failed.stderr.contains("certificate"), "{}", failed.stderr);

    // With no ready endpoint the call fails the same way.
    c.kubectl(&["-n", "webhooks", "delete", "endpoints", "hooks"])
        .await
        .expect_ok();
    c.kubectl(&["-n", "hooked", "create", "configmap", "unreachable"])
        .await
        .expect_err_contains("no endpoints available for service \"hooks\"");
    c.shutdown().await;
}

#[tokio::test]
async fn failing_webhooks_follow_their_failure_policy_and_configurations_stay_removable() {
    let server = start_webhook_server().await;
    let c = cluster_with_namespaces().await;
    let hook = |kind: &'static str, name: &'static str, path: &'static str, extra: Value| {
        configuration(kind, name, url_config(&server, path), extra)
    };
    // A webhook that hangs past its timeout: Fail fails the request…
    apply(
        &c,
        &hook(
            "ValidatingWebhookConfiguration",
            "hang",
            "/hang",
            json!({"timeoutSeconds": 1}),
        ),
    )
    .await
    .expect_ok();
    let hung = c
        .kubectl(&["-n", "hooked", "create", "configmap", "slow"])
        .await
        .expect_err_contains("failed calling webhook \"hang.webhooks.example.com\"");
    assert!(
        hung.stderr.contains("context deadline exceeded") && hung.stderr.contains("?timeout=1s"),
        "{}",
        hung.stderr
    );
    // …Ignore lets it through.
    apply(
        &c,
        &hook(
            "ValidatingWebhookConfiguration",
            "hang",
            "/hang",
            json!({"timeoutSeconds": 1, "failurePolicy": "Ignore"}),
        ),
    )
    .await
    .expect_ok();
    c.kubectl(&["-n", "hooked", "create", "configmap", "slow"])
        .await
        .expect_ok();
    c.kubectl(&["delete", "validatingwebhookconfiguration", "hang"])
        .await
        .expect_ok();

    // An answer that is not an AdmissionReview.
    apply(
        &c,
        &hook(
            "ValidatingWebhookConfiguration",
            "garbage",
            "/garbage",
            json!({}),
        ),
    )
    .await
    .expect_ok();
    c.kubectl(&["-n", "hooked", "create", "configmap", "g"])
        .await
        .expect_err_contains(
            "failed calling webhook \"garbage.webhooks.example.com\": failed to call webhook",
        );
    c.kubectl(&["delete", "validatingwebhookconfiguration", "garbage"])
        .await
        .expect_ok();

    // A mutating webhook that rewrites the uid of an update is refused
    // with kube's immutability error; the stored object keeps its own.
    c.kubectl(&["-n", "hooked", "create", "configmap", "keep"])
        .await
        .expect_ok();
    let uid = c
        .get_json(&["-n", "hooked", "configmap", "keep"])
        .await
        .unwrap()["metadata"]["uid"]
        .clone();
    apply(&c, &hook(
            "MutatingWebhookConfiguration",
            "uid",
            "/uid",
            json!({"rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]}),
        ))
    .await
    .expect_ok();
    c.kubectl(&["-n", "hooked", "label", "configmap", "keep", "x=y"])
        .await
        .expect_err_contains("metadata.uid: Invalid value: \"00000000-0000-0000-0000-000000000000\": field is immutable");
    let kept = c
        .get_json(&["-n", "hooked", "configmap", "keep"])
        .await
        .unwrap();
    assert_eq!(kept["metadata"]["uid"], uid);
    // Nor may it rename the object.
    apply(
        &c,
        &hook(
            "MutatingWebhookConfiguration",
            "uid",
            "/rename",
            json!({"rules": [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]}),
        ),
    )
    .await
    .expect_ok();
    c.kubectl(&["-n", "hooked", "label", "configmap", "keep", "x=y"])
        .await
        .expect_err_contains("metadata.name: Invalid value: \"elsewhere\": field is immutable");
    c.kubectl(&["-n", "hooked", "get", "configmap", "elsewhere"])
        .await
        .expect_err_contains("NotFound");
    c.kubectl(&["delete", "mutatingwebhookconfiguration", "uid"])
        .await
        .expect_ok();

    // A webhook on everything that always fails cannot lock the tenant
    // out: the configurations themselves are never sent to webhooks.
    apply(&c, &hook(
            "ValidatingWebhookConfiguration",
            "everything",
            "/garbage",
            json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}], "namespaceSelector": {}}),
        ))
    .await
    .expect_ok();
    c.kubectl(&["create", "namespace", "blocked"])
        .await
        .expect_err_contains("failed calling webhook \"everything.webhooks.example.com\"");
    c.kubectl(&["delete", "validatingwebhookconfiguration", "everything"])
        .await
        .expect_ok();
    c.kubectl(&["create", "namespace", "blocked"])
        .await
        .expect_ok();

    // A configuration kube would refuse is refused with its messages.
    apply(
        &c,
        &hook(
            "ValidatingWebhookConfiguration",
            "invalid",
            "/validate",
            json!({"timeoutSeconds": 60, "sideEffects": "Some"}),
        ),
    )
    .await
    .expect_err_contains("the timeout value must be between 1 and 30 seconds");
    c.shutdown().await;
}

#[tokio::test]
async fn a_mutating_webhook_cannot_take_a_pod_past_pod_security() {
    use vkube_syncer::security::{Enforce, PodSecurityLevel};
    let server = start_webhook_server().await;
    let c = TestCluster::start_configured(|config| {
        config.api.pod_security = Some(Arc::new(Enforce(PodSecurityLevel::Baseline)));
    })
    .await;
    c.kubectl(&["create", "namespace", "hooked"])
        .await
        .expect_ok();
    c.kubectl(&["label", "namespace", "hooked", "webhooks=on"])
        .await
        .expect_ok();
    let mut hook: Value = serde_json::from_str(&configuration(
        "MutatingWebhookConfiguration",
        "privileged",
        url_config(&server, "/privileged"),
        json!({}),
    ))
    .unwrap();
    hook["webhooks"][0]["rules"][0]["resources"] = json!(["pods"]);
    apply(&c, &hook.to_string()).await.expect_ok();
    // Pod Security is checked on the object the webhooks made.
    c.kubectl(&["-n", "hooked", "run", "web", "--image=nginx"])
        .await
        .expect_err_contains(
            "violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)",
        );
    c.kubectl(&["-n", "hooked", "get", "pod", "web"])
        .await
        .expect_err_contains("NotFound");
    c.shutdown().await;
}

#[tokio::test]
async fn connections_are_admitted_with_their_options() {
    let server = start_webhook_server().await;
    let c = cluster_with_namespaces().await;
    let mut hook: Value = serde_json::from_str(&configuration(
        "ValidatingWebhookConfiguration",
        "no-exec",
        url_config(&server, "/no-exec"),
        json!({}),
    ))
    .unwrap();
    hook["webhooks"][0]["rules"] = json!([{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec"]}]);
    apply(&c, &hook.to_string()).await.expect_ok();
    c.kubectl(&["-n", "hooked", "run", "web", "--image=nginx"])
        .await
        .expect_ok();
    c.kubectl(&["-n", "hooked", "exec", "web", "--", "cat", "/etc/passwd"])
        .await
        .expect_err_contains("admission webhook \"no-exec.webhooks.example.com\" denied the request: no exec into this pod (PodExecOptions, cat /etc/passwd)");
    let review = server
        .reviews()
        .into_iter()
        .find(|r| r["request"]["operation"] == "CONNECT")
        .expect("the exec was reviewed");
    assert_eq!(review["request"]["subResource"], "exec");
    assert_eq!(review["request"]["kind"]["kind"], "PodExecOptions");
    assert_eq!(review["request"]["name"], "web");
    assert_eq!(review["request"]["options"], Value::Null);
    c.shutdown().await;
}
