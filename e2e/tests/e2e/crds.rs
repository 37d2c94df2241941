//! CustomResourceDefinitions and custom resources with real kubectl and
//! kube-rs: a CRD is applied and established, its objects are created,
//! listed with the printer columns, pruned, defaulted, validated against
//! the schema, patched (merge, JSON, apply), scaled, read at every served
//! version and watched, and deleting the CRD deletes them.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use vkube_e2e::TestCluster;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    selectableFields:
    - {jsonPath: .spec.image}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - {rule: "self.replicas <= 10", message: at most ten}
            properties:
              cronSpec: {type: string, pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'}
              image: {type: string, description: The image the job runs.}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
              policy: {type: string, enum: [Allow, Forbid], default: Allow}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly, labels: {team: a}}
spec:
  cronSpec: "0 3 * * *"
  image: backup
"#;

#[tokio::test]
async fn custom_resources_are_served_as_their_crd_defines_them() {
    let c = TestCluster::start().await;
    // CEL rules are kept, and the writer is told they are not evaluated.
    let applied = c
        .kubectl_stdin(&["apply", "-f", "-"], CRD)
        .await
        .expect_ok();
    assert!(
        applied
            .stderr
            .contains("x-kubernetes-validations rules are stored but not evaluated"),
        "{applied}"
    );
    c.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ])
    .await
    .expect_ok();
    let crds = c.kubectl(&["get", "crd"]).await.expect_ok();
    assert_eq!(
        crds.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "CREATED", "AT"]
    );
    c.kubectl(&["api-resources", "--api-group=stable.example.com"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["crontabs", "ct", "stable.example.com/v1", "CronTab"]);

    // Created with defaults; listed with the printer columns.
    c.kubectl_stdin(&["apply", "-f", "-"], CRONTAB)
        .await
        .expect_ok();
    let got = c.get_json(&["ct", "nightly"]).await.unwrap();
    assert_eq!(got["spec"]["replicas"], 1);
    assert_eq!(got["spec"]["policy"], "Allow");
    assert_eq!(got["metadata"]["generation"], 1);
    let table = c.kubectl(&["get", "crontabs"]).await.expect_ok();
    assert_eq!(
        table.lines()[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SPEC", "REPLICAS", "READY", "AGE"]
    );
    assert!(table.lines()[1].starts_with("nightly"), "{}", table.stdout);
    assert!(table.lines()[1].contains("0 3 * * *"), "{}", table.stdout);
    // `kubectl get all` includes the kind through its category.
    c.kubectl(&["get", "all"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["crontab.stable.example.com/nightly"]);

    // Unknown fields: refused under kubectl's default strict validation,
    // pruned without it.
    let bogus = CRONTAB.replace("image: backup", "image: backup\n  bogus: 1");
    c.kubectl_stdin(&["apply", "-f", "-"], &bogus)
        .await
        .expect_err_contains(r#"strict decoding error: unknown field "spec.bogus""#);
    c.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], &bogus)
        .await
        .expect_ok();
    let got = c.get_json(&["ct", "nightly"]).await.unwrap();
    assert!(got["spec"].get("bogus").is_none(), "{got}");

    // Schema violations, all at once, in kube's words.
    let bad = CRONTAB
        .replace("nightly", "bad")
        .replace("\"0 3 * * *\"", "nope\n  replicas: 20\n  policy: Maybe");
    let out = c
        .kubectl_stdin(&["apply", "-f", "-"], &bad)
        .await
        .expect_err_contains(r#"The CronTab "bad" is invalid"#);
    for want in [
        r#"spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"#,
        r#"spec.policy: Unsupported value: "Maybe": supported values: "Allow", "Forbid""#,
        r#"spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match"#,
    ] {
        assert!(out.stderr.contains(want), "missing {want:?}: {out}");
    }

    // Patches: merge and JSON work, strategic is refused as upstream.
    c.kubectl(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"backup:2"}}"#,
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "patch",
        "ct",
        "nightly",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ])
    .await
    .expect_ok();
    c.kubectl(&["patch", "ct", "nightly", "-p", r#"{"spec":{"image":"x"}}"#])
        .await
        .expect_err_contains("the body of the request was in an unknown format");
    let got = c.get_json(&["ct", "nightly"]).await.unwrap();
    assert_eq!(
        (
            got["spec"]["image"].as_str(),
            got["spec"]["replicas"].as_i64()
        ),
        (Some("backup:2"), Some(2))
    );
    assert_eq!(got["metadata"]["generation"], 3);

    // The status subresource: only status writes change status, and they
    // leave the generation alone.
    c.kubectl(&[
        "patch", "ct", "nightly", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"replicas":2,"selector":"team=a","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await
    .expect_ok();
    c.kubectl(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":9}}"#,
    ])
    .await
    .expect_ok();
    let got = c.get_json(&["ct", "nightly"]).await.unwrap();
    assert_eq!(got["status"]["replicas"], 2);
    assert_eq!(got["metadata"]["generation"], 3);
    let table = c
        .kubectl(&["get", "ct", "nightly", "--no-headers"])
        .await
        .expect_ok();
    assert_eq!(
        table.lines()[0].split_whitespace().nth(7),
        Some("True"),
        "{}",
        table.stdout
    );

    // The scale subresource.
    c.kubectl(&["scale", "ct", "nightly", "--replicas=4"])
        .await
        .expect_ok();
    let scale = c
        .get_json(&["ct", "nightly", "--subresource=scale"])
        .await
        .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "team=a");

    // A selectable field selects; other fields are refused as upstream.
    let selected = c
        .kubectl(&[
            "get",
            "ct",
            "--field-selector",
            "spec.image=backup:2",
            "-o",
            "name",
        ])
        .await
        .expect_ok();
    assert_eq!(selected.lines(), ["crontab.stable.example.com/nightly"]);
    c.kubectl(&["get", "ct", "--field-selector", "spec.cronSpec=x"])
        .await
        .expect_err_contains("field label not supported: spec.cronSpec");

    // Server-side apply records its manager.
    c.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=ops", "-f", "-"],
        &CRONTAB.replace("nightly", "weekly"),
    )
    .await
    .expect_ok();
    let got = c
        .get_json(&["ct", "weekly", "--show-managed-fields"])
        .await
        .unwrap();
    assert!(
        got["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "ops" && m["operation"] == "Apply"),
        "{got}"
    );

    // Every served version reads the same object with its own apiVersion.
    let beta = c
        .get_json(&["crontabs.v1beta1.stable.example.com", "nightly"])
        .await
        .unwrap();
    assert_eq!(beta["apiVersion"], "stable.example.com/v1beta1");
    assert_eq!(beta["spec"]["image"], "backup:2");

    // `kubectl explain` reads the schema.
    c.kubectl(&["explain", "crontab.spec.image"])
        .await
        .expect_ok()
        .expect_stdout_contains(&["The image the job runs."]);

    // kube-rs lists with a label selector and watches.
    let client = c.client().await;
    let ar = ApiResource {
        group: "stable.example.com".into(),
        version: "v1".into(),
        api_version: "stable.example.com/v1".into(),
        kind: "CronTab".into(),
        plural: "crontabs".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let listed = api
        .list(&ListParams::default().labels("team=a"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    let rv = listed.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    c.kubectl(&["delete", "ct", "weekly"]).await.expect_ok();
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.next().await {
            if let Ok(WatchEvent::Deleted(obj)) = ev {
                return obj.metadata.name;
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(deleted.as_deref(), Some("weekly"));

    // Deleting the CRD deletes its objects, then the CRD.
    c.kubectl(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ])
    .await
    .expect_ok();
    c.kubectl(&["get", "crd"])
        .await
        .expect_ok()
        .expect_stdout_lacks(&["crontabs"]);
    c.kubectl(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"])
        .await
        .expect_err_contains("NotFound");
    // Defined again, the kind starts empty.
    c.kubectl_stdin(&["apply", "-f", "-"], CRD)
        .await
        .expect_ok();
    let list = c
        .kubectl(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"])
        .await
        .expect_ok()
        .json();
    assert_eq!(list["items"], serde_json::json!([]));
}

#[tokio::test]
async fn crd_definitions_are_validated_with_kubes_messages() {
    let c = TestCluster::start().await;
    let bad = CRD
        .replace(
            "name: crontabs.stable.example.com",
            "name: crontab.stable.example.com",
        )
        .replace("storage: false", "storage: true")
        .replace(
            "    x-kubernetes-preserve-unknown-fields: true",
            "    properties: {spec: {description: untyped}}",
        );
    let out = c
        .kubectl_stdin(&["apply", "-f", "-"], &bad)
        .await
        .expect_err_contains(
            r#"The CustomResourceDefinition "crontab.stable.example.com" is invalid"#,
        );
    for want in [
        r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#,
        "must have exactly one version marked as storage version",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
    ] {
        assert!(out.stderr.contains(want), "missing {want:?}: {out}");
    }
    // Nothing was stored, so nothing is served.
    c.kubectl(&["get", "crontabs"])
        .await
        .expect_err_contains("the server doesn't have a resource type");
}

#[tokio::test]
async fn custom_resources_of_a_deleted_namespace_go_with_it() {
    let mut c = TestCluster::start().await;
    c.run_controllers("namespace");
    c.kubectl_stdin(&["apply", "-f", "-"], CRD)
        .await
        .expect_ok();
    c.kubectl(&["create", "namespace", "team-a"])
        .await
        .expect_ok();
    c.kubectl_stdin(&["apply", "-n", "team-a", "-f", "-"], CRONTAB)
        .await
        .expect_ok();
    c.kubectl(&["get", "ct", "-n", "team-a", "nightly"])
        .await
        .expect_ok();
    c.kubectl(&["delete", "namespace", "team-a", "--timeout=60s"])
        .await
        .expect_ok();
    let list = c
        .kubectl(&["get", "--raw", "/apis/stable.example.com/v1/crontabs"])
        .await
        .expect_ok()
        .json();
    assert_eq!(list["items"], serde_json::json!([]));
}

/// The garbage collector follows custom kinds as their CRDs appear: a
/// ConfigMap owned by a custom resource goes with it, a custom resource
/// owned by a ConfigMap goes with that, and foreground and orphan deletion
/// of a custom resource complete (their finalizers are the collector's).
#[tokio::test]
async fn the_garbage_collector_follows_custom_kinds() {
    let mut c = TestCluster::start().await;
    c.run_controllers("garbagecollector");
    c.kubectl_stdin(&["apply", "-f", "-"], CRD)
        .await
        .expect_ok();
    let owner_ref = |kind: &str, api_version: &str, name: &str, uid: &str| serde_json::json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "blockOwnerDeletion": true}]);
    let uid = |v: serde_json::Value| v["metadata"]["uid"].as_str().unwrap().to_string();

    // A built-in dependent of a custom owner, deleted in the background.
    c.kubectl_stdin(&["apply", "-f", "-"], CRONTAB)
        .await
        .expect_ok();
    let owner = uid(c.get_json(&["ct", "nightly"]).await.unwrap());
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "nightly-config", "ownerReferences": owner_ref("CronTab", "stable.example.com/v1", "nightly", &owner)}});
    c.kubectl_stdin(&["create", "-f", "-"], &cm.to_string())
        .await
        .expect_ok();
    c.kubectl(&["delete", "ct", "nightly"]).await.expect_ok();
    c.kubectl(&[
        "wait",
        "--for=delete",
        "configmap/nightly-config",
        "--timeout=20s",
    ])
    .await
    .expect_ok();

    // A custom dependent of a built-in owner.
    c.kubectl(&["create", "configmap", "parent"])
        .await
        .expect_ok();
    let parent = uid(c.get_json(&["configmap", "parent"]).await.unwrap());
    let mut child: serde_json::Value = serde_json::json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "child", "ownerReferences": owner_ref("ConfigMap", "v1", "parent", &parent)},
        "spec": {"cronSpec": "* * * * *"},
    });
    c.kubectl_stdin(&["create", "-f", "-"], &child.to_string())
        .await
        .expect_ok();
    c.kubectl(&["delete", "configmap", "parent"])
        .await
        .expect_ok();
    c.kubectl(&["wait", "--for=delete", "crontab/child", "--timeout=20s"])
        .await
        .expect_ok();

    // Foreground deletion of a custom owner: the dependent first, then the
    // owner. Orphan deletion: the dependent stays, without the reference.
    for (cascade, dependent_stays) in [("foreground", false), ("orphan", true)] {
        c.kubectl_stdin(&["apply", "-f", "-"], CRONTAB)
            .await
            .expect_ok();
        let owner = uid(c.get_json(&["ct", "nightly"]).await.unwrap());
        child["metadata"]["name"] = serde_json::json!(format!("{cascade}-child"));
        child["metadata"]["ownerReferences"] =
            owner_ref("CronTab", "stable.example.com/v1", "nightly", &owner);
        c.kubectl_stdin(&["create", "-f", "-"], &child.to_string())
            .await
            .expect_ok();
        c.kubectl(&[
            "delete",
            "ct",
            "nightly",
            &format!("--cascade={cascade}"),
            "--timeout=20s",
        ])
        .await
        .expect_ok();
        c.kubectl(&["wait", "--for=delete", "crontab/nightly", "--timeout=20s"])
            .await
            .expect_ok();
        let left = c.get_json(&["ct", &format!("{cascade}-child")]).await;
        assert_eq!(left.is_ok(), dependent_stays, "{cascade}: {left:?}");
        if let Ok(left) = left {
            assert!(left["metadata"].get("ownerReferences").is_none(), "{left}");
        }
    }
}

/// Aggregated discovery carries an ETag that client caches revalidate
/// with: `304` while nothing changed, a new document once a CRD adds a
/// group.
#[tokio::test]
async fn aggregated_discovery_revalidates_with_its_etag() {
    let c = TestCluster::start().await;
    let client = c.client().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let get = |etag: Option<String>| {
        let client = client.clone();
        async move {
            let mut req = http::Request::get("/apis").header("Accept", accept);
            if let Some(etag) = etag {
                req = req.header("If-None-Match", etag);
            }
            let resp = client
                .send(req.body(kube::client::Body::empty()).unwrap())
                .await
                .unwrap();
            let etag = resp.headers()["etag"].to_str().unwrap().to_string();
            (resp.status().as_u16(), etag)
        }
    };
    let (code, etag) = get(None).await;
    assert_eq!(code, 200);
    assert!(etag.starts_with('"') && etag.len() > 100, "{etag}");
    assert_eq!(get(Some(etag.clone())).await, (304, etag.clone()));
    c.kubectl_stdin(&["apply", "-f", "-"], CRD)
        .await
        .expect_ok();
    let (code, fresh) = get(Some(etag.clone())).await;
    assert_eq!(code, 200);
    assert_ne!(fresh, etag);
}
