//! Integration tests of `/openapi/v3` and server-side field validation
//! (`fieldValidation`), through kube-rs and raw HTTPS against a real
//! in-process server. Expected shapes are kube-apiserver's: kube-openapi's
//! handler3 for the documents, k8s.io/apiserver's create/update/patch
//! handlers for the validation answers.

use apiserver_shim::{Server, ServerConfig, registry};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, ValidationDirective};
use kube::{Client, core::Status};
use serde_json::{Value, json};
use std::collections::BTreeSet;

struct Harness {
    server: Server,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(ServerConfig::new(dir.path()))
        .await
        .expect("server starts");
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    let client = Client::try_from(config).expect("client builds");
    Harness {
        server,
        client,
        _dir: dir,
    }
}

/// An answer: code, headers, body.
struct Answer {
    code: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Answer {
    fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[track_caller]
    fn expect(self, what: &str, code: u16) -> Self {
        assert_eq!(self.code, code, "{what}: {}", self.body);
        self
    }
}

async fn send(
    client: &Client,
    method: &str,
    uri: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut b = http::Request::builder().method(method).uri(uri);
    if !content_type.is_empty() {
        b = b.header(http::header::CONTENT_TYPE, content_type);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .send(b.body(body).unwrap().map(kube::client::Body::from))
        .await
        .expect("request is answered");
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {uri}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        code,
        headers,
        body,
    }
}

async fn get(client: &Client, uri: &str) -> Answer {
    send(client, "GET", uri, "", &[], Vec::new()).await
}

fn header(a: &Answer, name: http::header::HeaderName) -> &str {
    a.headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

// ---------------------------------------------------------------------------
// /openapi/v3
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v3_documents_cover_the_registry() {
    let h = start().await;
    let c = &h.client;
    let root = get(c, "/openapi/v3").await.expect("root", 200);
    let paths = root.body["paths"].as_object().expect("root has paths");
    let want: BTreeSet<String> = registry::groups()
        .into_iter()
        .flat_map(|(g, vs)| {
            vs.into_iter().map(move |v| {
                if g.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{g}/{v}")
                }
            })
        })
        .collect();
    assert_eq!(paths.keys().cloned().collect::<BTreeSet<_>>(), want);

    for (gv, entry) in paths {
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let hash = url.split_once("?hash=").expect("URL carries the hash").1;
        let doc = get(c, url).await.expect(url, 200);
        assert_eq!(header(&doc, http::header::ETAG), format!("\"{hash}\""));
        assert_eq!(
            header(&doc, http::header::CACHE_CONTROL),
            "public, immutable"
        );
        assert_eq!(doc.body["openapi"], "3.0.0", "{gv}");
        let schemas = doc.body["components"]["schemas"].as_object().unwrap();
        let ops = doc.body["paths"].as_object().unwrap();
        // Every PATCH operation names its GVK and takes the write options.
        let mut patched_kinds = BTreeSet::new();
        for (path, item) in ops {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(op["x-kubernetes-action"].is_string(), "{path} {method}");
                assert!(
                    op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                    "{path} {method}"
                );
                if method == "patch" {
                    let params: BTreeSet<&str> = op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p["in"] == "query")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect();
                    for p in ["fieldValidation", "dryRun", "fieldManager", "force"] {
                        assert!(params.contains(p), "{path} PATCH lacks {p}");
                    }
                    let gvk = &op["x-kubernetes-group-version-kind"];
                    patched_kinds.insert((
                        gvk["group"].as_str().unwrap().to_string(),
                        gvk["kind"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
        for def in registry::RESOURCES.iter().filter(|d| {
            d.api_version() == gv.trim_start_matches("api/").trim_start_matches("apis/")
        }) {
            // Computed kinds (componentstatuses) are read only.
            assert_eq!(
                patched_kinds.contains(&(def.group.to_string(), def.kind.to_string())),
                def.computed.is_none(),
                "{gv}: PATCH operation for {}",
                def.kind
            );
            let want = json!({"group": def.group, "version": def.version, "kind": def.kind});
            assert!(
                schemas
                    .values()
                    .any(|s| s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|l| l.contains(&want))),
                "{gv}: no schema for {}",
                def.kind
            );
        }
        // Revalidation with the ETag is 304; without the hash it must revalidate.
        let etag = format!("\"{hash}\"");
        let again = send(c, "GET", url, "", &[("if-none-match", &etag)], Vec::new()).await;
        assert_eq!(again.code, 304, "{url}");
        let bare = get(c, &format!("/openapi/v3/{gv}")).await.expect(gv, 200);
        assert_eq!(
            header(&bare, http::header::CACHE_CONTROL),
            "no-cache, private"
        );
    }
    get(c, "/openapi/v3/apis/nope/v1")
        .await
        .expect("unknown gv", 404);
    h.server.shutdown().await;
}

// ---------------------------------------------------------------------------
// fieldValidation
// ---------------------------------------------------------------------------

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_on_create_and_update() {
    let h = start().await;
    let c = &h.client;
    let json_ct = "application/json";
    let cm = |name: &str| {
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "bogus": 1},
            "data": {"a": "b"},
            "spec": {"foo": true},
        }))
        .unwrap()
    };

    // Strict: 400 listing every unknown field; nothing stored.
    let a = send(
        c,
        "POST",
        &format!("{CMS}?fieldValidation=Strict"),
        json_ct,
        &[],
        cm("strict"),
    )
    .await
    .expect("strict create", 400);
    assert_eq!(a.body["reason"], "BadRequest");
    assert_eq!(
        a.body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec\""
    );
    get(c, &format!("{CMS}/strict"))
        .await
        .expect("not stored", 404);

    // Duplicate keys are seen on the raw body.
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"}}"#
        .to_vec();
    let a = send(
        c,
        "POST",
        &format!("{CMS}?fieldValidation=Strict"),
        json_ct,
        &[],
        dup.clone(),
    )
    .await
    .expect("duplicate", 400);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: duplicate field \"metadata.name\""),
        "{}",
        a.body
    );

    // Warn is the default: created, one Warning header per field, unknown fields dropped.
    let a = send(c, "POST", CMS, json_ct, &[], cm("warn"))
        .await
        .expect("warn create", 201);
    assert_eq!(
        a.warnings(),
        vec![
            "299 - \"unknown field \\\"metadata.bogus\\\"\"",
            "299 - \"unknown field \\\"spec\\\"\""
        ]
    );
    assert!(a.body["metadata"].get("bogus").is_none() && a.body.get("spec").is_none());
    let stored = get(c, &format!("{CMS}/warn")).await.expect("stored", 200);
    assert!(stored.body.get("spec").is_none(), "{}", stored.body);
    assert_eq!(stored.body["data"], json!({"a": "b"}));
    let a = send(
        c,
        "POST",
        &format!("{CMS}?fieldValidation=Warn"),
        json_ct,
        &[],
        dup,
    )
    .await
    .expect("duplicate under warn", 201);
    assert_eq!(
        a.warnings(),
        vec!["299 - \"duplicate field \\\"metadata.name\\\"\""]
    );

    // Ignore: created silently, still dropped.
    let a = send(
        c,
        "POST",
        &format!("{CMS}?fieldValidation=Ignore"),
        json_ct,
        &[],
        cm("ignore"),
    )
    .await
    .expect("ignore create", 201);
    assert!(a.warnings().is_empty());
    assert!(a.body.get("spec").is_none());

    // A value outside the three directives is rejected as upstream validates options.
    let a = send(
        c,
        "POST",
        &format!("{CMS}?fieldValidation=strict"),
        json_ct,
        &[],
        cm("x"),
    )
    .await
    .expect("bad directive", 422);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\""),
        "{}",
        a.body
    );

    // PUT: the same rules.
    let put = |v: Value| serde_json::to_vec(&v).unwrap();
    let a = send(
        c,
        "PUT",
        &format!("{CMS}/warn?fieldValidation=Strict"),
        json_ct,
        &[],
        put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warn"}, "data": {"a": "c"}, "extra": 1})),
    )
    .await
    .expect("strict put", 400);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .ends_with("unknown field \"extra\"")
    );
    let a = send(
        c,
        "PUT",
        &format!("{CMS}/warn"),
        json_ct,
        &[],
        put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warn"}, "data": {"a": "c"}, "extra": 1})),
    )
    .await
    .expect("warn put", 200);
    assert_eq!(a.warnings(), vec!["299 - \"unknown field \\\"extra\\\"\""]);
    assert!(a.body.get("extra").is_none());
    assert_eq!(a.body["data"]["a"], "c");

    // A wrong type is a 400 naming the field, never a 500, and stores nothing.
    let a = send(
        c,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        json_ct,
        &[],
        put(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}})),
    )
    .await
    .expect("wrong type", 400);
    let msg = a.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field Deployment.spec.replicas"),
        "{msg}"
    );
    get(c, "/apis/apps/v1/namespaces/default/deployments/d")
        .await
        .expect("not stored", 404);
    let a = send(
        c,
        "PUT",
        &format!("{CMS}/warn"),
        json_ct,
        &[],
        put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warn", "labels": {"a": 1}}})),
    )
    .await
    .expect("wrong type on put", 400);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("metadata.labels.a"),
        "{}",
        a.body
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_on_patches_and_status() {
    let h = start().await;
    let c = &h.client;
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }))
    .unwrap();
    deployments.create(&Default::default(), &d).await.unwrap();
    let url = "/apis/apps/v1/namespaces/default/deployments/web";
    let merge = "application/merge-patch+json";
    let body = |v: Value| serde_json::to_vec(&v).unwrap();

    // kube-rs with fieldValidation=Strict: the patched object is checked.
    let strict = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..Default::default()
    };
    let err = deployments
        .patch(
            "web",
            &strict,
            &Patch::Merge(json!({"spec": {"paused": true, "foo": 1}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}")
    };
    let status: Status = *status;
    // handlers/patch.go: 422 on the field `patch`, carrying the patched object.
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status
            .message
            .starts_with(" \"\" is invalid: patch: Invalid value: \"{")
            && status
                .message
                .ends_with("\": strict decoding error: unknown field \"spec.foo\""),
        "{}",
        status.message
    );
    assert_ne!(
        deployments.get("web").await.unwrap().spec.paused,
        Some(true)
    );

    // Default (Warn): applied, warned, unknown field not stored.
    let a = send(
        c,
        "PATCH",
        url,
        merge,
        &[],
        body(json!({"spec": {"paused": true, "foo": 1}})),
    )
    .await
    .expect("warn patch", 200);
    assert_eq!(
        a.warnings(),
        vec!["299 - \"unknown field \\\"spec.foo\\\"\""]
    );
    assert_eq!(a.body["spec"]["paused"], true);
    let stored = get(c, url).await.expect("get", 200);
    assert!(stored.body["spec"].get("foo").is_none());

    // Strategic and JSON patches too; a wrong type is 422 with the path.
    let a = send(
        c,
        "PATCH",
        &format!("{url}?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        &[],
        body(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "imagePolicy": "x"}]}}}})),
    )
    .await
    .expect("strict smp", 422);
    assert!(
        a.body["message"].as_str().unwrap().ends_with(
            "strict decoding error: unknown field \"spec.template.spec.containers[0].imagePolicy\""
        ),
        "{}",
        a.body
    );
    let a = send(
        c,
        "PATCH",
        url,
        "application/json-patch+json",
        &[],
        body(json!([{"op": "add", "path": "/spec/replicas", "value": "many"}])),
    )
    .await
    .expect("wrong type patch", 422);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("Deployment.spec.replicas"),
        "{}",
        a.body
    );
    let a = send(
        c,
        "PATCH",
        &format!("{url}?fieldValidation=bogus"),
        merge,
        &[],
        body(json!({})),
    )
    .await
    .expect("bad directive", 422);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("PatchOptions.meta.k8s.io")
    );

    // Duplicate keys in a merge patch are reported too.
    let a = send(
        c,
        "PATCH",
        url,
        merge,
        &[],
        br#"{"spec":{"paused":false,"paused":true}}"#.to_vec(),
    )
    .await
    .expect("duplicate in patch", 200);
    assert_eq!(
        a.warnings(),
        vec!["299 - \"duplicate field \\\"spec.paused\\\"\""]
    );

    // The status subresource is checked the same way.
    let a = send(
        c,
        "PATCH",
        &format!("{url}/status?fieldValidation=Strict"),
        merge,
        &[],
        body(json!({"status": {"replicas": 1, "bogus": true}})),
    )
    .await
    .expect("strict status patch", 422);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: unknown field \"status.bogus\""),
        "{}",
        a.body
    );
    assert_eq!(a.body["details"]["causes"][0]["field"], "patch");
    let a = send(
        c,
        "PATCH",
        &format!("{url}/status"),
        merge,
        &[],
        body(json!({"status": {"replicas": 1, "bogus": true}})),
    )
    .await
    .expect("warn status patch", 200);
    assert_eq!(
        a.warnings(),
        vec!["299 - \"unknown field \\\"status.bogus\\\"\""]
    );
    assert_eq!(a.body["status"]["replicas"], 1);
    assert!(a.body["status"].get("bogus").is_none());
    h.server.shutdown().await;
}
