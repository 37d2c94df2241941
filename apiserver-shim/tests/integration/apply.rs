//! Server-side apply and `metadata.managedFields` through kube-rs and raw
//! HTTPS against an in-process server: ownership after create, update,
//! patch and status writes; apply create, conflicts, force, removal of
//! fields the applier stopped applying, and the request errors of
//! kube-apiserver.

use apiserver_shim::{Server, ServerConfig};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

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
    let kc = kube::config::Kubeconfig::from_yaml(&server.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    let client = Client::try_from(config).expect("client");
    Harness {
        server,
        client,
        _dir: dir,
    }
}

#[track_caller]
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

async fn send_raw(client: &Client, method: &str, uri: &str, ct: &str, body: &str) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, ct)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("answered");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `managedFields` as JSON values.
fn managed<K: ResourceExt>(obj: &K) -> Vec<Value> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// The entry of `manager` (with `operation`), panicking when absent.
#[track_caller]
fn entry<K: ResourceExt>(obj: &K, manager: &str, operation: &str) -> Value {
    managed(obj)
        .into_iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| panic!("no {operation} entry of {manager}: {:?}", managed(obj)))
}

fn has_entry<K: ResourceExt>(obj: &K, manager: &str) -> bool {
    managed(obj).iter().any(|e| e["manager"] == manager)
}

fn web(replicas: i64, extra_label: bool) -> Value {
    let mut labels = json!({"app": "web"});
    if extra_label {
        labels["tier"] = json!("front");
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_conflicts_forces_and_removes_fields() {
    let h = start().await;
    let deploys: Api<Deployment> = Api::namespaced(h.client.clone(), "default");

    // Apply to a missing object creates it (201) and records an Apply entry.
    let (code, body) = send_raw(
        &h.client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=alice",
        "application/apply-patch+yaml",
        &web(2, true).to_string(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let d = deploys.get("web").await.unwrap();
    let alice = entry(&d, "alice", "Apply");
    assert_eq!(alice["apiVersion"], "apps/v1");
    assert_eq!(alice["fieldsType"], "FieldsV1");
    assert!(alice["time"].as_str().unwrap().ends_with('Z'));
    let fields = &alice["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
    assert_eq!(fields["f:spec"]["f:selector"], json!({}), "atomic selector");
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
    assert_eq!(fields["f:metadata"]["f:labels"]["f:tier"], json!({}));
    assert!(
        fields["f:metadata"].get("f:name").is_none(),
        "name is not tracked: {fields}"
    );
    assert!(fields.get("f:status").is_none());

    // Re-applying the same config is a no-op (200).
    let same = deploys
        .patch(
            "web",
            &PatchParams::apply("alice"),
            &Patch::Apply(web(2, true)),
        )
        .await
        .unwrap();
    assert_eq!(same.resource_version(), d.resource_version());

    // Bob applies another replica count: conflict naming field and manager.
    let err = api_error(
        deploys
            .patch(
                "web",
                &PatchParams::apply("bob"),
                &Patch::Apply(web(5, false)),
            )
            .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    let (code, status) = send_raw(
        &h.client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=bob",
        "application/apply-patch+yaml",
        &web(5, false).to_string(),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"}])
    );
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(2));

    // Forced, Bob takes replicas; both own the rest of what they applied.
    let forced = deploys
        .patch(
            "web",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(web(5, false)),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(5));
    let bob = entry(&forced, "bob", "Apply");
    assert_eq!(bob["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    let alice = entry(&forced, "alice", "Apply");
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert_eq!(alice["fieldsV1"]["f:spec"]["f:selector"], json!({}));

    // Alice stops applying the tier label and replicas: the label, owned by
    // her alone, goes; replicas, now Bob's, stays.
    let mut cfg = web(0, false);
    cfg["spec"].as_object_mut().unwrap().remove("replicas");
    let after = deploys
        .patch("web", &PatchParams::apply("alice"), &Patch::Apply(cfg))
        .await
        .unwrap();
    let labels = after.labels();
    assert!(!labels.contains_key("tier"), "{labels:?}");
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(after.spec.replicas, Some(5));

    // Bob stops applying everything but the name: fields Alice also owns
    // stay, his sole replicas goes.
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let after = deploys
        .patch("web", &PatchParams::apply("bob"), &Patch::Apply(bare))
        .await
        .unwrap();
    assert!(!has_entry(&after, "bob"), "{:?}", managed(&after));
    assert_ne!(after.spec.replicas, Some(5));
    assert_eq!(
        after.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("nginx:1")
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_follow_create_update_patch_and_status() {
    let h = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
    let pp = PostParams {
        field_manager: Some("creator".into()),
        ..Default::default()
    };
    let created = cms.create(&pp, &cm).await.unwrap();
    let e = entry(&created, "creator", "Update");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsV1"], json!({"f:data": {".": {}, "f:a": {}}}));
    assert!(e.get("subresource").is_none());

    // Replace changes a: it moves to the replacer; creator keeps data itself.
    let mut changed = created.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("a".into(), "2".into());
    let pp = PostParams {
        field_manager: Some("replacer".into()),
        ..Default::default()
    };
    let replaced = cms.replace("cfg", &pp, &changed).await.unwrap();
    assert_eq!(
        entry(&replaced, "replacer", "Update")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&replaced, "creator", "Update")["fieldsV1"],
        json!({"f:data": {}})
    );

    // A merge patch by "patcher" adds b; a no-op patch by "idle" adds nothing.
    let params = PatchParams {
        field_manager: Some("patcher".into()),
        ..Default::default()
    };
    let patched = cms
        .patch("cfg", &params, &Patch::Merge(json!({"data": {"b": "3"}})))
        .await
        .unwrap();
    assert_eq!(
        entry(&patched, "patcher", "Update")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
    let idle = PatchParams {
        field_manager: Some("idle".into()),
        ..Default::default()
    };
    let same = cms
        .patch("cfg", &idle, &Patch::Merge(json!({"data": {"b": "3"}})))
        .await
        .unwrap();
    assert!(!has_entry(&same, "idle"));
    assert_eq!(same.resource_version(), patched.resource_version());

    // Without fieldManager the User-Agent's prefix names the manager.
    let req = http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/configmaps/cfg")
        .header(http::header::CONTENT_TYPE, "application/merge-patch+json")
        .header(http::header::USER_AGENT, "my-tool/1.2 (linux/amd64)")
        .body(br#"{"data":{"c":"4"}}"#.to_vec())
        .unwrap();
    let resp = h
        .client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let anon = cms.get("cfg").await.unwrap();
    assert_eq!(
        entry(&anon, "my-tool", "Update")["fieldsV1"],
        json!({"f:data": {"f:c": {}}})
    );

    // An apply to a field an updater set conflicts with "<m>" using v1.
    let err = api_error(
        cms.patch(
            "cfg",
            &PatchParams::apply("applier"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cfg"}, "data": {"b": "x"}})),
        )
        .await,
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"patcher\" using v1: .data.b"
    );

    // `managedFields: [{}]` clears every entry.
    let cleared = cms
        .patch(
            "cfg",
            &params,
            &Patch::Merge(json!({"metadata": {"managedFields": [{}]}})),
        )
        .await
        .unwrap();
    assert!(managed(&cleared).is_empty(), "{:?}", managed(&cleared));

    // Status writes are recorded with their subresource; status is not
    // tracked on the main resource.
    let deploys: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    deploys
        .patch(
            "web",
            &PatchParams::apply("alice"),
            &Patch::Apply(web(1, false)),
        )
        .await
        .unwrap();
    let ctrl = PatchParams {
        field_manager: Some("ctrl".into()),
        ..Default::default()
    };
    let st = deploys
        .patch_status(
            "web",
            &ctrl,
            &Patch::Merge(json!({"status": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let e = entry(&st, "ctrl", "Update");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    // Apply to the status subresource owns status fields only.
    let st = deploys
        .patch_status(
            "web",
            &PatchParams::apply("ctrl2"),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"ignored": "yes"}},
                "spec": {"replicas": 9},
                "status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(st.spec.replicas, Some(1));
    assert!(!st.labels().contains_key("ignored"));
    let e = entry(&st, "ctrl2", "Apply");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:replicas": {}, "f:readyReplicas": {}}})
    );
    let scaled = deploys
        .patch_scale(
            "web",
            &PatchParams {
                field_manager: Some("hpa".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    let d = deploys.get("web").await.unwrap();
    let e = entry(&d, "hpa", "Update");
    assert_eq!(e["subresource"], "scale");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(
        entry(&d, "alice", "Apply")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_request_errors_dry_run_and_yaml() {
    let h = start().await;
    let c = &h.client;
    let url = "/api/v1/namespaces/default/configmaps/yml";
    let apply = "application/apply-patch+yaml";
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  k: v\n";

    let (code, s) = send_raw(c, "PATCH", url, apply, yaml).await;
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let (code, s) = send_raw(
        c,
        "PATCH",
        &format!("{url}?force=true"),
        "application/merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert!(s["message"].as_str().unwrap().contains("force: Forbidden"));

    let bad_bodies = [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  managedFields: []\n",
            "metadata.managedFields must be nil",
        ),
        (
            "apiVersion: apps/v1\nkind: ConfigMap\n",
            "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: v1",
        ),
        (
            "apiVersion: v1\nkind: Secret\n",
            "does not match the expected kind",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n",
            "does not match the name on the URL",
        ),
        ("- not\n- a map\n", "error decoding YAML"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: x\n",
            "metadata: expected an object",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  finalizers: [a, a]\n",
            ".metadata.finalizers: duplicate entries for value \"a\"",
        ),
    ];
    for (body, msg) in bad_bodies {
        let (code, s) = send_raw(c, "PATCH", &format!("{url}?fieldManager=m"), apply, body).await;
        assert_eq!(code, 400, "{body}: {s}");
        assert!(s["message"].as_str().unwrap().contains(msg), "{s}");
    }

    // Bad values reach validation (422), never a server error.
    let (code, s) = send_raw(
        c,
        "PATCH",
        &format!("{url}?fieldManager=m"),
        apply,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: x\n",
    )
    .await;
    assert_eq!(code, 422, "{s}");
    let (code, s) = send_raw(
        c,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/d?fieldManager=m",
        apply,
        r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[1,"x",{"image":"y"}]}}}}"#,
    )
    .await;
    assert!(code < 500, "{code} {s}");

    // Dry run creates nothing.
    let (code, s) = send_raw(
        c,
        "PATCH",
        &format!("{url}?fieldManager=m&dryRun=All"),
        apply,
        yaml,
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["data"]["k"], "v");
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    assert!(cms.get_opt("yml").await.unwrap().is_none());

    // Plain scalars resolve as YAML 1.1, as kube's YAML decoder
    // (sigs.k8s.io/yaml) does: an unquoted `y` is a bool, no name.
    let (code, s) = send_raw(
        c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/y?fieldManager=m",
        apply,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n",
    )
    .await;
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("cannot unmarshal bool"),
        "{s}"
    );

    // A YAML body creates; the namespace must exist.
    let (code, s) = send_raw(c, "PATCH", &format!("{url}?fieldManager=m"), apply, yaml).await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(
        entry(&cms.get("yml").await.unwrap(), "m", "Apply")["fieldsV1"],
        json!({"f:data": {"f:k": {}}})
    );
    let (code, s) = send_raw(
        c,
        "PATCH",
        "/api/v1/namespaces/nowhere/configmaps/yml?fieldManager=m",
        apply,
        yaml,
    )
    .await;
    assert_eq!(code, 404, "{s}");

    // A stale resourceVersion in the config is a precondition failure.
    let stale = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\n  resourceVersion: \"1\"\ndata:\n  k: w\n";
    let (code, s) = send_raw(c, "PATCH", &format!("{url}?fieldManager=m"), apply, stale).await;
    assert_eq!(code, 409, "{s}");
    assert_eq!(cms.get("yml").await.unwrap().data.unwrap()["k"], "v");

    // Dry-run apply to an existing object changes nothing.
    let change = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  k: z\n";
    let (code, s) = send_raw(
        c,
        "PATCH",
        &format!("{url}?fieldManager=m&dryRun=All"),
        apply,
        change,
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["data"]["k"], "z");
    assert_eq!(cms.get("yml").await.unwrap().data.unwrap()["k"], "v");
    h.server.shutdown().await;
}
