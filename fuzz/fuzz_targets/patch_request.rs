//! PATCH requests through the REST layer, against a Pod created afresh for
//! each input in an in-memory store (so that every failing input
//! reproduces alone): the first byte picks the dialect (JSON, merge,
//! strategic merge, or server-side apply), the rest is the body. Beyond
//! not panicking, what a client relies on:
//! * the answer is 200 or a client error (400, 409, 415, 422), never 500;
//! * a refused patch changes nothing stored (same resourceVersion, same
//!   content);
//! * a patch never changes the object's identity: `metadata.uid`, name,
//!   namespace and creationTimestamp stay; its resourceVersion never goes
//!   back, and the stored object is the one the answer showed.
#![no_main]

use std::sync::{Arc, OnceLock};

use apiserver_shim::request::{Query, parse_target};
use apiserver_shim::rest::{Api, ApiConfig};
use apiserver_shim::store::{LogStore, LogStoreConfig, MemoryBackend};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const DIALECTS: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

struct World {
    runtime: tokio::runtime::Runtime,
    api: Arc<Api>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let store = LogStore::open(Box::new(MemoryBackend::new()), LogStoreConfig::default())
            .expect("an in-memory store");
        let api = Arc::new(Api::new(Arc::new(store), ApiConfig::default()));
        runtime.block_on(async {
            apiserver_shim::bootstrap::ensure_builtin_objects(&api, 6443)
                .await
                .expect("the built-in objects");
        });
        World { runtime, api }
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{
            "name": "c", "image": "nginx",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}],
        }]},
    })
}

/// The request's answer: status code and body.
async fn request(
    api: &Arc<Api>,
    method: Method,
    name: Option<&str>,
    query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let custom = api.custom_resources().await.expect("the CRD table");
    let mut path = vec!["namespaces", "default", "pods"];
    path.extend(name);
    let target = parse_target("", "v1", &path, &custom).expect("pods are served");
    let query = Query::parse(Some(query)).expect("a valid query");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a header value"),
    );
    match api
        .handle(&method, target, query, &headers, Bytes::from(body))
        .await
    {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("a body");
            (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
        Err(e) => (e.code, json!({"message": e.message})),
    }
}

async fn live(api: &Arc<Api>) -> Value {
    let (code, obj) = request(api, Method::GET, Some("p"), "", "application/json", vec![]).await;
    assert_eq!(code, 200, "the pod is there: {obj}");
    obj
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a resourceVersion")
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, body)) = input.split_first() else {
        return;
    };
    let World { runtime, api } = world();
    runtime.block_on(async {
        let created = serde_json::to_vec(&pod()).unwrap();
        let (code, obj) = request(api, Method::POST, None, "", "application/json", created).await;
        assert_eq!(code, 201, "{obj}");
        let before = live(api).await;
        let content_type = DIALECTS[usize::from(which) % DIALECTS.len()];
        let query = if content_type.starts_with("application/apply") {
            "fieldManager=fuzz&force=true"
        } else {
            ""
        };
        let (code, answer) = request(
            api,
            Method::PATCH,
            Some("p"),
            query,
            content_type,
            body.to_vec(),
        )
        .await;
        let after = live(api).await;
        assert!(
            matches!(code, 200 | 400 | 409 | 415 | 422),
            "{content_type}: {code} {answer}"
        );
        for field in ["uid", "name", "namespace", "creationTimestamp"] {
            assert_eq!(
                after["metadata"][field], before["metadata"][field],
                "{content_type} ({code}) changed metadata.{field}"
            );
        }
        if code == 200 {
            assert!(
                rv(&after) >= rv(&before),
                "{content_type}: resourceVersion went back"
            );
            assert_eq!(
                after, answer,
                "{content_type}: stored is not what was answered"
            );
        } else {
            assert_eq!(
                after, before,
                "{content_type}: a refused patch ({code}) changed the pod"
            );
        }
        // Gone before the next input: finalizers a patch added are taken
        // off, then the pod is deleted at once.
        let unfinalize = br#"{"metadata":{"finalizers":null}}"#.to_vec();
        let merge = "application/merge-patch+json";
        let (code, obj) = request(api, Method::PATCH, Some("p"), "", merge, unfinalize).await;
        assert_eq!(code, 200, "{obj}");
        let zero = "gracePeriodSeconds=0";
        let (code, obj) = request(
            api,
            Method::DELETE,
            Some("p"),
            zero,
            "application/json",
            vec![],
        )
        .await;
        assert_eq!(code, 200, "{obj}");
        let (code, obj) =
            request(api, Method::GET, Some("p"), "", "application/json", vec![]).await;
        assert_eq!(code, 404, "the pod outlived its deletion: {obj}");
    });
});
