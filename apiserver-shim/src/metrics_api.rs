//! `metrics.k8s.io/v1beta1` (`kubectl top`), served through the server's
//! [`MetricsProvider`] ([`crate::rest::ApiConfig::metrics`]) when it has
//! figures, absent otherwise (see [`vkube_core::metrics`]).
//!
//! As metrics-server serves it: `nodes` (cluster-scoped `NodeMetrics`) and
//! `pods` (namespaced `PodMetrics`), verbs `get` and `list`, lists with a
//! `labelSelector`; a missing object is `404 podmetrics.metrics.k8s.io
//! "NAME" not found`. The objects asked about are read from this server's
//! own store, so a tenant only gets figures for its own pods and the nodes
//! it sees.

use crate::error::{ApiError, ApiResult, GroupResource};
use crate::rest::{Api, decode_stored, json_response};
use crate::store::ListOptions;
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use vkube_core::fields::FieldSelector;
use vkube_core::labels::LabelSelector;
use vkube_core::metrics::{GROUP, MetricsQuery, VERSION};

/// The resources of the group (`kubectl top node`, `kubectl top pod`).
pub const RESOURCES: [&str; 2] = ["nodes", "pods"];

/// Whether the group is served now.
pub async fn available(api: &Api) -> bool {
    match &api.config.metrics {
        Some(p) => p.available().await,
        None => false,
    }
}

/// `APIResourceList` of the group version.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// The group's entry in `/apis` (`APIGroup`, without kind).
pub fn api_group() -> Value {
    let v = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [v], "preferredVersion": v})
}

/// The group's entry in aggregated discovery (`APIGroupDiscovery`).
pub fn aggregated_group() -> Value {
    let resource = |name: &str, kind: &str, scope: &str| {
        json!({
            "resource": name,
            "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"],
        })
    };
    json!({
        "metadata": {"name": GROUP},
        "versions": [{
            "version": VERSION,
            "resources": [
                resource("nodes", "NodeMetrics", "Cluster"),
                resource("pods", "PodMetrics", "Namespaced"),
            ],
            "freshness": "Current",
        }],
    })
}

/// Stored objects of `resource` (`pods` or `nodes`) in `namespace` (all
/// when `None`), matching `selector`, or the one named.
async fn stored(
    api: &Api,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: &LabelSelector,
    fields: &FieldSelector,
) -> ApiResult<Vec<Value>> {
    let def = crate::registry::lookup("", "v1", resource).expect("built-in");
    if let Some(name) = name {
        return match api.store.get(&def.key(namespace, name)).await {
            Ok(Some(kv)) => Ok(vec![decode_stored(&kv)?]),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(crate::rest::storage_error(def, name, e)),
        };
    }
    let page = api
        .store
        .list(&def.collection_prefix(namespace), ListOptions::default())
        .await
        .map_err(|e| crate::rest::storage_error(def, "", e))?;
    let mut out = Vec::new();
    for kv in &page.items {
        let obj = decode_stored(kv)?;
        if selector.matches_json(obj.pointer("/metadata/labels"))
            && fields.matches(|f| vkube_core::fields::json_field(&obj, f))
        {
            out.push(obj);
        }
    }
    Ok(out)
}

/// Serves `GET /apis/metrics.k8s.io/v1beta1/REST` (the path after the
/// version).
///
/// # Errors
/// `404` when the group is not served now or the path names nothing, `405`
/// for another method, `400` for a bad selector, `404` for a missing
/// object, and the provider's refusals.
pub async fn serve(
    api: &Api,
    method: &Method,
    rest: &[&str],
    query: Option<&str>,
) -> ApiResult<Response> {
    let Some(provider) = api.config.metrics.clone() else {
        return Err(ApiError::no_route());
    };
    if !provider.available().await {
        return Err(ApiError::no_route());
    }
    if rest.is_empty() {
        return Ok(json_response(StatusCode::OK, &resource_list()));
    }
    let (resource, namespace, name) = match rest {
        ["nodes"] => ("nodes", None, None),
        ["nodes", n] => ("nodes", None, Some(*n)),
        ["pods"] => ("pods", None, None),
        ["namespaces", ns, "pods"] => ("pods", Some(*ns), None),
        ["namespaces", ns, "pods", n] => ("pods", Some(*ns), Some(*n)),
        _ => return Err(ApiError::no_route()),
    };
    let (kind, singular) = if resource == "pods" {
        ("PodMetrics", "podmetrics")
    } else {
        ("NodeMetrics", "nodemetrics")
    };
    if *method != Method::GET {
        return Err(ApiError::method_not_supported(
            &GroupResource::new(GROUP, resource),
            &method.as_str().to_ascii_lowercase(),
        ));
    }
    // The first value of each parameter counts, as in Go's url.Values and
    // as authorization read them.
    let first = |key: &str| crate::request::first_param(query, key);
    // PodMetrics and NodeMetrics are served for get and list only.
    if name.is_none() && first("watch").is_some_and(|w| crate::request::codec_bool(&w)) {
        return Err(ApiError::method_not_supported(
            &GroupResource::new(GROUP, resource),
            "watch",
        ));
    }
    let selector = LabelSelector::parse(&first("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    // A name selector narrows what authorization allowed: it must narrow
    // the answer too.
    let fields = FieldSelector::parse(&first("fieldSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let objects = stored(api, resource, namespace, name, &selector, &fields).await?;
    let query = if resource == "pods" {
        MetricsQuery::Pods(objects)
    } else {
        MetricsQuery::Nodes(
            objects
                .iter()
                .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect(),
        )
    };
    let mut items = provider.metrics(query).await.map_err(ApiError::from_host)?;
    for item in &mut items {
        item["kind"] = json!(kind);
        item["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
    }
    match name {
        Some(n) => match items.into_iter().next() {
            Some(item) => Ok(json_response(StatusCode::OK, &item)),
            None => Err(ApiError::not_found(&GroupResource::new(GROUP, singular), n)),
        },
        None => Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": format!("{kind}List"),
                "apiVersion": format!("{GROUP}/{VERSION}"),
                "metadata": {},
                "items": items,
            }),
        )),
    }
}
