//! The generic REST layer: every verb for every kind, written once.
//!
//! The order of a write follows k8s.io/apiserver's generic registry store
//! (STYLE 4): system metadata → generateName → the kind's prepare hook →
//! validation → storage. Updates, patches and subresource writes all go
//! through [`Api::guaranteed_update`], which re-reads and retries on a
//! revision conflict unless the client pinned a resourceVersion (then `409`).

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::{NameRule, ResourceDef};
use crate::request::{Query, Representation, Target};
use crate::store::{KeyValue, ListOptions, Storage, StorageError};
use crate::table;
use crate::typed::{FieldValidation, Source};
use crate::webhook::matching::Operation;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use vkube_core::fields::FieldSelector;
use vkube_core::labels::LabelSelector;

// Server-side apply (`application/apply-patch+yaml`); managedFields of
// every other write are kept by the `fieldmanager::track_update` calls below.
mod apply;
use crate::fieldmanager;

/// Built-in admission plugins (LimitRanger, ResourceQuota).
mod admission;

/// `pods/eviction` and PodDisruptionBudgets.
mod eviction;

pub mod continuation;
pub mod patch;
use continuation::{decode_continue, encode_continue};
use patch::Patch;

/// Limits and timings of the REST layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How requests are authorized (kube-apiserver's `--authorization-mode`);
    /// under `AlwaysAllow` RBAC writes are not checked for escalation either.
    pub authorization_mode: crate::filters::authorization::AuthorizationMode,
    /// Largest stored object, in bytes (etcd's default request limit, 1.5 MiB).
    pub max_object_bytes: usize,
    /// Interval between watch BOOKMARK events when the client allows them
    /// (kube-apiserver sends one about every minute).
    pub bookmark_interval: Duration,
    /// How long a "not older than" read waits for a future resourceVersion
    /// before answering `504 Timeout`.
    pub future_revision_wait: Duration,
    /// Service CIDR and NodePort range Services are allocated from.
    pub allocation: crate::alloc::AllocConfig,
    /// What serves the pod connect subresources (`log`, `exec`, `attach`,
    /// `portforward`; [`crate::connect`]) once the request is validated,
    /// as kube-apiserver's kubelet client does: the host cluster for a
    /// virtual cluster's server, [`crate::local_node::LocalNode`] for a
    /// server standing in for a host. `None`: the subresources answer 400.
    pub pod_connector: Option<Arc<dyn vkube_core::connect::PodConnector>>,
    /// Where Services get their ClusterIPs and nodePorts when this server is
    /// a virtual cluster's: the host cluster, asked within the create or
    /// update request ([`vkube_core::service::HostAllocator`]); `None` (a
    /// stand-alone server, the local host) allocates from
    /// [`ApiConfig::allocation`].
    pub service_host: Option<Arc<dyn vkube_core::service::HostAllocator>>,
    /// The ClusterIP of `default/kubernetes`: in a virtual cluster, the
    /// address of the server's own Service on the host, so in-pod clients
    /// that read the Service (or `KUBERNETES_SERVICE_HOST`) reach this
    /// server and never the host's API server. `None`: the first address
    /// of [`ApiConfig::allocation`]'s service CIDR, as kube-apiserver.
    pub kubernetes_service_ip: Option<std::net::IpAddr>,
    /// Where `metrics.k8s.io` figures come from (`kubectl top`;
    /// [`crate::metrics_api`]); `None`: the group is not served.
    pub metrics: Option<Arc<dyn vkube_core::metrics::MetricsProvider>>,
    /// PodSecurity admission ([`vkube_core::podsecurity`]); `None`: pods
    /// are not checked here (a stand-alone server, the local host).
    pub pod_security: Option<Arc<dyn vkube_core::podsecurity::PodSecurityAdmission>>,
    /// Where `pods/eviction` is decided when this server is a virtual
    /// cluster's: the host, evicting the host copy under the host's
    /// budgets ([`vkube_core::eviction::HostEvictor`]); `None`: this
    /// server's own PodDisruptionBudgets decide.
    pub evictor: Option<Arc<dyn vkube_core::eviction::HostEvictor>>,
    /// Admission webhooks may be called on loopback addresses. A
    /// stand-alone server (a developer's webhook on `https://127.0.0.1`)
    /// allows it; a virtual cluster's server does not, since its loopback
    /// is its own pod in the host (the server's and its sidecars' ports),
    /// never a tenant's.
    pub webhook_loopback: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            authorization_mode: Default::default(),
            max_object_bytes: 3 << 19,
            bookmark_interval: Duration::from_secs(60),
            future_revision_wait: Duration::from_secs(3),
            allocation: crate::alloc::AllocConfig::default(),
            pod_connector: None,
            service_host: None,
            kubernetes_service_ip: None,
            metrics: None,
            pod_security: None,
            evictor: None,
            webhook_loopback: true,
        }
    }
}

/// The REST layer's shared state.
pub struct Api {
    /// The storage backend.
    pub store: Arc<dyn Storage>,
    /// Limits and timings.
    pub config: ApiConfig,
    /// Watch events rendered once and shared by every watcher.
    pub(crate) watch_cache: crate::watch::EventCache,
    /// The RBAC objects authorization reads.
    policy: crate::filters::authorization::PolicyCache,
    /// The custom resources the stored CRDs define.
    custom: crate::crd::CustomCache,
    /// The admission webhook configurations and their clients.
    pub(crate) webhook_cache: crate::webhook::WebhookCache,
    /// The ValidatingAdmissionPolicies and their bindings.
    pub(crate) admission_policies: crate::admission_policy::PolicyCache,
    /// The Prometheus metrics `/metrics` serves (not `metrics.k8s.io`,
    /// which is [`ApiConfig::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The `/readyz` and `/healthz` checks of the components running
    /// beside the server (controllers, syncer).
    pub health_checks: crate::health::Checks,
}

impl Api {
    /// The REST layer over `store`.
    pub fn new(store: Arc<dyn Storage>, mut config: ApiConfig) -> Self {
        config.allocation.kubernetes_service_ip = config.kubernetes_service_ip;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        // Every read and write is timed for `/metrics`.
        let store: Arc<dyn Storage> =
            Arc::new(crate::metrics::MeteredStore::new(store, metrics.clone()));
        Self {
            store,
            config,
            watch_cache: crate::watch::EventCache::default(),
            policy: Default::default(),
            custom: Default::default(),
            webhook_cache: Default::default(),
            admission_policies: Default::default(),
            metrics,
            health_checks: Default::default(),
        }
    }

    /// The custom resource versions as of every acknowledged CRD write
    /// ([`crate::crd::CustomCache`]).
    ///
    /// # Errors
    /// `500` when the store cannot be read.
    pub async fn custom_resources(&self) -> ApiResult<Arc<crate::crd::CustomTable>> {
        self.custom.current(&*self.store).await
    }

    /// The RBAC policy as of every acknowledged write
    /// ([`crate::filters::authorization::cache`]).
    ///
    /// # Errors
    /// `500` when the store cannot be read.
    pub async fn policy(&self) -> ApiResult<Arc<crate::filters::authorization::rbac::Policy>> {
        self.policy.current(&*self.store).await
    }
}

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Default)]
pub(crate) struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`.
    orphan_dependents: Option<bool>,
}

/// Finalizer asking the garbage collector to orphan dependents
/// (`metav1.FinalizerOrphanDependents`).
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer asking the garbage collector to delete dependents first
/// (`metav1.FinalizerDeleteDependents`).
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// The finalizers a delete leaves on `obj` for the garbage collector, when
/// they differ from its current ones (genericregistry
/// `deletionFinalizersForGarbageCollection`): an explicit
/// `orphanDependents`, else `propagationPolicy`, else the finalizers already
/// present decide; every served kind's default policy is to delete
/// dependents in the background, which needs no finalizer.
fn gc_finalizers(obj: &Value, opts: &DeleteOptions) -> Option<Vec<Value>> {
    let current: Vec<Value> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (orphan, foreground) = match (opts.orphan_dependents, opts.propagation_policy.as_deref()) {
        (Some(o), _) => (o, false),
        (None, Some("Orphan")) => (true, false),
        (None, Some("Foreground")) => (false, true),
        (None, Some(_)) => (false, false),
        (None, None) => {
            let first = current
                .iter()
                .find(|x| *x == FINALIZER_ORPHAN || *x == FINALIZER_FOREGROUND);
            (
                first.is_some_and(|x| x == FINALIZER_ORPHAN),
                first.is_some_and(|x| x == FINALIZER_FOREGROUND),
            )
        }
    };
    let mut out: Vec<Value> = current
        .iter()
        .filter(|x| *x != FINALIZER_ORPHAN && *x != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        out.push(json!(FINALIZER_ORPHAN));
    }
    if foreground {
        out.push(json!(FINALIZER_FOREGROUND));
    }
    let same = out.len() == current.len() && out.iter().all(|f| current.contains(f));
    (!same).then_some(out)
}

/// A selector pair parsed from the query, applied to every listed or watched object.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    /// The kind's selectable fields, for how each value is read.
    selectable: &'static [crate::registry::SelectableField],
}

impl Filter {
    /// Parses `labelSelector`/`fieldSelector`; an unknown field label is
    /// `400 field label not supported: <field>` as kube-apiserver answers.
    pub fn from_query(def: &ResourceDef, q: &Query, name: Option<&str>) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let mut fs = q.field_selector.clone().unwrap_or_default();
        if let Some(n) = name {
            // A watch on one object is a watch on the collection by name.
            if !fs.is_empty() {
                fs.push(',');
            }
            fs.push_str(&format!("metadata.name={n}"));
        }
        let fields = FieldSelector::parse(&fs).map_err(|e| ApiError::bad_request(e.to_string()))?;
        for r in fields.requirements() {
            if !def.selectable(&r.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Filter {
            labels,
            fields,
            selectable: def.field_selectors,
        })
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_json(obj.pointer("/metadata/labels"))
            && self
                .fields
                .matches(|f| crate::registry::SelectableField::value_in(self.selectable, obj, f))
    }

    /// Whether the filter selects everything.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.requirements().is_empty()
    }
}

/// Decodes a stored value and stamps its resourceVersion.
pub fn decode_stored(kv: &KeyValue) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    meta::set_resource_version(&mut v, kv.mod_revision);
    Ok(v)
}

/// Decodes a stored value of `def`'s storage into `def`'s version
/// ([`ResourceDef::from_storage`]) and stamps its resourceVersion.
pub fn decode_as(def: &ResourceDef, kv: &KeyValue) -> ApiResult<Value> {
    let v = decode_stored(kv)?;
    Ok(if def.converts() {
        def.from_storage(v)
    } else {
        v
    })
}

/// A list answer in the requested representation: a Table, a
/// `PartialObjectMetadataList`, or `<Kind>List` whose items carry no
/// kind/apiVersion.
fn render_list(
    def: &crate::registry::Def,
    items: Vec<Value>,
    list_meta: Value,
    repr: Representation,
    query: &Query,
) -> Value {
    match repr {
        Representation::Table => table::table(
            def,
            &items,
            query.include_object.as_deref(),
            Some(list_meta),
        ),
        // The items move into the body: `json!` would copy each one.
        Representation::PartialMetadata => list_body(
            "PartialObjectMetadataList".into(),
            "meta.k8s.io/v1".into(),
            list_meta,
            items.iter().map(table::partial_metadata).collect(),
        ),
        // A custom resource list is unstructured upstream: its items keep
        // their kind and apiVersion, and the list is the CRD's listKind.
        Representation::Object if def.custom().is_some() => list_body(
            def.custom()
                .map(|c| c.list_kind.clone())
                .unwrap_or_default(),
            def.api_version(),
            list_meta,
            items,
        ),
        // The items carry no kind/apiVersion, as in kube-apiserver's
        // lists of built-in kinds (the list's own TypeMeta names them).
        Representation::Object => list_body(
            format!("{}List", def.kind),
            def.api_version(),
            list_meta,
            items
                .into_iter()
                .map(|mut item| {
                    if let Some(o) = item.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    item
                })
                .collect(),
        ),
    }
}

/// The deepest nesting of objects and arrays a stored object may have.
pub(crate) const MAX_NESTING: usize = 100;

/// How deeply `v` nests objects and arrays (a scalar is 0), without
/// recursion.
fn nesting_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

/// Maps a storage error about one object to its `Status`.
pub fn storage_error(def: &ResourceDef, name: &str, e: StorageError) -> ApiError {
    let gr = def.group_resource();
    match e {
        StorageError::AlreadyExists(_) => ApiError::already_exists(&gr, name),
        StorageError::NotFound(_) => ApiError::not_found(&gr, name),
        StorageError::Conflict { .. } => ApiError::modified(&gr, name),
        StorageError::Compacted {
            requested,
            compacted,
        } => ApiError::too_old_resource_version(requested, compacted),
        StorageError::FutureRevision { requested, current } => ApiError::timeout(
            format!("Too large resource version: {requested}, current: {current}"),
            1,
        ),
        StorageError::Backend(msg) => {
            tracing::error!(%msg, "storage failure");
            ApiError::internal(msg)
        }
    }
}

/// A list body `{kind, apiVersion, metadata, items}` that takes ownership of
/// `items` (the `json!` macro would serialise a copy of each).
fn list_body(kind: String, api_version: String, metadata: Value, items: Vec<Value>) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("kind".into(), Value::String(kind));
    body.insert("apiVersion".into(), Value::String(api_version));
    body.insert("metadata".into(), metadata);
    body.insert("items".into(), Value::Array(items));
    Value::Object(body)
}

/// An object as stored: serialised without `metadata.resourceVersion`,
/// which the store keeps beside the value as its `mod_revision`. The same
/// bytes as removing the field from a copy, without the copy.
struct Stored<'a>(&'a Value);

/// The members of a `metadata` map but `resourceVersion`.
struct MetadataWithoutRv<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match v {
                Value::Object(md) if k == "metadata" => {
                    map.serialize_entry(k, &MetadataWithoutRv(md))?
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

impl serde::Serialize for MetadataWithoutRv<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| *k != "resourceVersion") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A JSON response with the given code, encoded as kube-apiserver encodes
/// its Go types ([`vkube_core::gojson`]: field order, omitempty and zero
/// values, a trailing newline).
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    json_bytes_response(code, vkube_core::gojson::to_vec(body))
}

/// A response with an already encoded JSON body.
pub fn json_bytes_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn success_status(def: &ResourceDef, obj: &Value) -> Value {
    let mut details = json!({
        "name": meta::name(obj),
        "kind": def.resource,
        "uid": meta::uid(obj),
    });
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a JSON (or Kubernetes protobuf, see [`crate::protobuf`]) object
/// body; anything else is `400` (or `415` for a media type the endpoint does
/// not take).
pub(crate) fn decode_body(headers: &HeaderMap, body: &[u8], kind: &str) -> ApiResult<Value> {
    let mt = media_type(headers);
    if mt == crate::protobuf::CONTENT_TYPE {
        return crate::protobuf::decode_body(body, kind);
    }
    if !(mt.is_empty() || mt == "application/json") {
        return Err(ApiError::unsupported_media_type(&mt));
    }
    decode_json_object(body, kind)
}

/// Summarises a body for a decode error as handlers/rest.go does: the first
/// 30 bytes of a JSON object, hex otherwise, `<empty>` for none.
fn body_summary(body: &[u8]) -> String {
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => {
            let head = String::from_utf8_lossy(&body[..body.len().min(30)]);
            if body.len() > 30 {
                format!("{head} ...")
            } else {
                head.into_owned()
            }
        }
        Some(_) => body.iter().take(30).map(|b| format!("{b:02x}")).collect(),
    }
}

fn decode_json_object(body: &[u8], kind: &str) -> ApiResult<Value> {
    let unrecognized = |why: String| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {why} ({})",
            body_summary(body)
        ))
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| unrecognized(e.to_string()))?;
    if !v.is_object() {
        return Err(unrecognized("expected a JSON object".into()));
    }
    if v.get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(
            "metadata: expected an object (ObjectMeta)",
        ));
    }
    Ok(v)
}

/// Checks `apiVersion`/`kind` of a body against the URL's resource, filling them if absent.
fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> ApiResult<()> {
    let api_version = def.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => obj["apiVersion"] = json!(api_version),
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => obj["kind"] = json!(def.kind),
    }
    Ok(())
}

fn invalid_value(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value:?}: {detail}"),
        field: field.into(),
    }
}

/// `TotalAnnotationSizeLimitB`: the most bytes an object's annotation keys
/// and values may hold together, 256 KiB.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 << 10;

/// ObjectMeta validation as k8s.io/apimachinery/pkg/api/validation
/// `ValidateObjectMeta`: the name rule of the kind, label keys and values,
/// annotation keys and their total size.
fn validate_object_meta(def: &ResourceDef, obj: &Value) -> Vec<Cause> {
    use vkube_core::validation as v;
    let mut causes = Vec::new();
    let name = meta::name(obj);
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        });
    } else {
        let errs = match def.name_rule {
            NameRule::Label => v::is_dns1123_label(name),
            NameRule::PathSegment => path_segment_name(name),
            NameRule::Subdomain => v::is_dns1123_subdomain(name),
        };
        for e in errs {
            causes.push(invalid_value("metadata.name", name, &e));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, val) in labels {
            for e in v::is_qualified_name(k) {
                causes.push(invalid_value("metadata.labels", k, &e));
            }
            match val.as_str() {
                Some(s) => {
                    for e in v::is_valid_label_value(s) {
                        causes.push(invalid_value(&format!("metadata.labels[{k}]"), s, &e));
                    }
                }
                None => causes.push(invalid_value(
                    &format!("metadata.labels[{k}]"),
                    &val.to_string(),
                    "must be a string",
                )),
            }
        }
    } else if obj
        .pointer("/metadata/labels")
        .is_some_and(|l| !l.is_null())
    {
        causes.push(invalid_value("metadata.labels", "", "must be an object"));
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        // ValidateAnnotationsSize: keys and values together.
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            causes.push(Cause::from(vkube_core::field::FieldError::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE_LIMIT,
            )));
        }
        for (k, val) in ann {
            for e in v::is_qualified_name(&k.to_ascii_lowercase()) {
                causes.push(invalid_value("metadata.annotations", k, &e));
            }
            if !val.is_string() {
                causes.push(invalid_value(
                    &format!("metadata.annotations[{k}]"),
                    &val.to_string(),
                    "must be a string",
                ));
            }
        }
    }
    causes
}

/// `path.ValidatePathSegmentName`: any name usable as one URL path segment.
fn path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid value: {s:?}: resourceVersion must be an unsigned integer"
        ))
    })
}

impl Api {
    /// Serves one resource request.
    pub async fn handle(
        self: &Arc<Self>,
        method: &Method,
        target: Target,
        query: Query,
        headers: &HeaderMap,
        body: Bytes,
    ) -> ApiResult<Response> {
        let repr = crate::request::representation(
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        );
        let def: &ResourceDef = &target.def;
        let sub = target.subresource.as_deref();
        let gr = def.group_resource();
        if let Some(computed) = def.computed {
            return self
                .serve_computed(computed, method, &target, &query, repr)
                .await;
        }
        match (method.as_str(), target.name.as_deref(), sub) {
            // `watch=true` on an object's URL is a get, as in kube; the
            // legacy `/watch/` prefix watches one object too.
            ("GET", name, None) if target.watch_prefix || (query.watch && name.is_none()) => {
                crate::watch::serve(self.clone(), target, query, repr).await
            }
            ("GET", None, None) => self.list(&target, &query, repr).await,
            ("GET", Some(name), None | Some("status" | "ephemeralcontainers" | "approval")) => {
                let obj = self.get(&target, name).await?;
                Ok(self.render_one(&target.def, StatusCode::OK, &obj, repr, &query))
            }
            ("GET", Some(name), Some("scale")) => {
                let obj = self.get(&target, name).await?;
                Ok(json_response(StatusCode::OK, &to_scale(def, &obj)))
            }
            ("POST", None, None) => self.create(&target, &query, headers, &body, repr).await,
            ("POST", Some(name), Some("binding")) => {
                self.bind(&target, name, headers, &body, query.dry_run)
                    .await
            }
            ("POST", Some(name), Some("eviction")) => {
                self.evict(&target, name, &query.dry_run_values, headers, &body)
                    .await
            }
            ("PUT", Some(name), _) => {
                let mut obj = decode_body(headers, &body, def.kind)?;
                check_fields(&target, &query, "UpdateOptions", Some(&body), &mut obj)?;
                fieldmanager::validate_options("UpdateOptions", &query, None)?;
                let manager = fieldmanager::manager_name(&query, headers);
                self.update(&target, name, &query, obj, repr, &manager)
                    .await
            }
            ("PATCH", Some(name), _) => {
                self.patch(&target, name, &query, headers, &body, repr)
                    .await
            }
            ("DELETE", Some(name), None) => {
                let opts = delete_options(&query, headers, &body)?;
                self.delete(&target, name, &opts).await
            }
            ("DELETE", None, None) if !def.delete_collection => {
                Err(ApiError::method_not_supported(&gr, "deletecollection"))
            }
            ("DELETE", None, None) => {
                let opts = delete_options(&query, headers, &body)?;
                self.delete_collection(&target, &query, &opts).await
            }
            (m, _, _) => Err(ApiError::method_not_supported(&gr, &m.to_ascii_lowercase())),
        }
    }

    /// A [`crate::registry::Computed`] kind: `get` and `list` of objects made
    /// on each read; every other verb, `watch` included, is `405`.
    async fn serve_computed(
        &self,
        computed: crate::registry::Computed,
        method: &Method,
        target: &Target,
        query: &Query,
        repr: Representation,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        if method != Method::GET || target.subresource.is_some() {
            return Err(ApiError::method_not_supported(
                &gr,
                &method.as_str().to_ascii_lowercase(),
            ));
        }
        if query.watch || target.watch_prefix {
            return Err(ApiError::method_not_supported(&gr, "watch"));
        }
        let objects = match computed {
            crate::registry::Computed::ComponentStatuses => {
                crate::warning::add("v1 ComponentStatus is deprecated in v1.19+".into());
                self.component_statuses().await
            }
            crate::registry::Computed::IpAddresses => {
                let services = crate::registry::lookup("", "v1", "services")
                    .expect("services registered")
                    .prefix();
                crate::alloc::ip_addresses(&*self.store, &services)
                    .await
                    .map_err(|e| storage_error(def, "", e))?
            }
            crate::registry::Computed::ServiceCidrs => {
                let created = self
                    .store
                    .get("/core/namespaces/default")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|kv| decode_stored(&kv).ok())
                    .and_then(|ns| ns.pointer("/metadata/creationTimestamp").cloned());
                vec![crate::alloc::service_cidr_object(
                    &self.config.allocation,
                    created,
                )]
            }
        };
        if let Some(name) = target.name.as_deref() {
            let obj = objects
                .into_iter()
                .find(|o| meta::name(o) == name)
                .ok_or_else(|| ApiError::not_found(&gr, name))?;
            return Ok(self.render_one(&target.def, StatusCode::OK, &obj, repr, query));
        }
        let filter = Filter::from_query(def, query, None)?;
        let items: Vec<Value> = objects.into_iter().filter(|o| filter.matches(o)).collect();
        let body = render_list(&target.def, items, json!({}), repr, query);
        Ok(json_response(StatusCode::OK, &body))
    }

    /// This server's parts as ComponentStatuses, as kube-apiserver reports
    /// its etcd servers, scheduler and controller manager: the one part a
    /// vkube API server owns is its store (`storage`), probed with a read.
    /// The controllers and the scheduling run elsewhere (in-process
    /// controllers, the host's scheduler through the syncer) and have their
    /// own health endpoints.
    async fn component_statuses(&self) -> Vec<Value> {
        let probe = self.store.get("/core/namespaces/default").await;
        let condition = match probe {
            Ok(_) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
            Err(e) => json!({"type": "Healthy", "status": "False", "error": e.to_string()}),
        };
        vec![json!({
            "kind": "ComponentStatus",
            "apiVersion": "v1",
            "metadata": {"name": "storage"},
            "conditions": [condition],
        })]
    }

    fn render_one(
        &self,
        def: &crate::registry::Def,
        code: StatusCode,
        obj: &Value,
        repr: Representation,
        query: &Query,
    ) -> Response {
        match repr {
            Representation::Object => json_response(code, obj),
            Representation::Table => json_response(
                code,
                &table::table(
                    def,
                    std::slice::from_ref(obj),
                    query.include_object.as_deref(),
                    None,
                ),
            ),
            Representation::PartialMetadata => json_response(code, &table::partial_metadata(obj)),
        }
    }

    async fn get(&self, target: &Target, name: &str) -> ApiResult<Value> {
        let def: &ResourceDef = &target.def;
        let key = def.key(target.namespace.as_deref(), name);
        match self.store.get(&key).await {
            Ok(Some(kv)) => decode_as(def, &kv),
            Ok(None) => Err(ApiError::not_found(&def.group_resource(), name)),
            Err(e) => Err(storage_error(def, name, e)),
        }
    }

    /// The revision a list reads at, from resourceVersion/resourceVersionMatch
    /// per the API concepts' "Semantics for get and list" table.
    async fn list_revision(&self, query: &Query) -> ApiResult<Option<u64>> {
        let rv = query.resource_version.as_deref();
        let forbidden = |msg: &str| ApiError::list_options_forbidden("resourceVersionMatch", msg);
        match (query.resource_version_match.as_deref(), rv) {
            (Some(_), None) => Err(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            (Some("Exact"), Some("0")) => Err(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )),
            (Some("Exact"), Some(rv)) => {
                let rv = parse_rv(rv)?;
                self.wait_not_older(rv).await?;
                Ok(Some(rv))
            }
            (Some("NotOlderThan") | None, Some(rv)) => {
                let rv = parse_rv(rv)?;
                self.wait_not_older(rv).await?;
                Ok(None)
            }
            (None, None) => Ok(None),
            (Some(other), _) => Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                vec![Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                    field: "resourceVersionMatch".into(),
                }],
            )),
        }
    }

    /// After a revision conflict: reads serve the durable revision, so wait
    /// until the conflicting write (`revision`) is durable before re-reading;
    /// retrying at once would re-read the same stale value.
    async fn await_write(&self, revision: u64) {
        self.store
            .wait_for_revision(revision, self.config.future_revision_wait)
            .await;
    }

    /// Waits briefly for a resourceVersion newer than the store's, else `504`.
    pub async fn wait_not_older(&self, rv: u64) -> ApiResult<()> {
        if rv <= self.store.current_revision()
            || self
                .store
                .wait_for_revision(rv, self.config.future_revision_wait)
                .await
        {
            return Ok(());
        }
        Err(ApiError::timeout(
            format!(
                "Too large resource version: {rv}, current: {}",
                self.store.current_revision()
            ),
            1,
        ))
    }

    /// Lists matching objects; returns them with the list's revision and the
    /// continue token of the next page, if any.
    pub async fn list_objects(
        &self,
        target: &Target,
        query: &Query,
        filter: &Filter,
    ) -> ApiResult<(Vec<Value>, u64, Option<String>)> {
        let def: &ResourceDef = &target.def;
        let prefix = def.collection_prefix(target.namespace.as_deref());
        let (mut revision, mut start_after) = match &query.continue_token {
            Some(token) => {
                if query
                    .resource_version
                    .as_deref()
                    .is_some_and(|rv| rv != "0")
                {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let (rv, start) = decode_continue(token, &prefix)?;
                (Some(rv), Some(start))
            }
            None => (self.list_revision(query).await?, None),
        };
        // As the watch cache does, a list at resourceVersion "0" ignores limit.
        let limit = query.limit.filter(|_| {
            query.resource_version.as_deref() != Some("0") || query.continue_token.is_some()
        });
        let mut items = Vec::new();
        loop {
            let want = limit.map(|l| l - items.len());
            let page = self
                .store
                .list(
                    &prefix,
                    ListOptions {
                        revision,
                        start_after: start_after.clone(),
                        limit: want.map(|w| w.max(64)),
                    },
                )
                .await
                .map_err(|e| match e {
                    StorageError::Compacted { .. } if query.continue_token.is_some() => {
                        ApiError::continue_expired()
                    }
                    e => storage_error(def, "", e),
                })?;
            revision = Some(page.revision);
            let mut last_key = None;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let obj = decode_as(def, kv)?;
                if filter.matches(&obj) {
                    items.push(obj);
                    if limit.is_some_and(|l| items.len() >= l) {
                        break;
                    }
                }
            }
            let scanned_all = last_key.as_deref() == page.items.last().map(|kv| kv.key.as_str());
            let more = page.more || !scanned_all;
            let full = limit.is_some_and(|l| items.len() >= l);
            if full || !more {
                let token = (full && more).then(|| {
                    encode_continue(page.revision, last_key.as_deref().unwrap_or_default())
                });
                return Ok((items, page.revision, token));
            }
            start_after = last_key;
        }
    }

    async fn list(
        &self,
        target: &Target,
        query: &Query,
        repr: Representation,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let filter = Filter::from_query(def, query, None)?;
        let (items, revision, token) = self.list_objects(target, query, &filter).await?;
        let mut list_meta = json!({ "resourceVersion": revision.to_string() });
        if let Some(t) = &token {
            list_meta["continue"] = json!(t);
        }
        let body = render_list(&target.def, items, list_meta, repr, query);
        Ok(json_response(StatusCode::OK, &body))
    }

    fn encode(&self, def: &ResourceDef, obj: &Value) -> ApiResult<Bytes> {
        // What is stored must decode again: the JSON reader refuses more
        // than 128 nested levels, which a JSON patch could build.
        if nesting_depth(obj) > MAX_NESTING {
            return Err(ApiError::bad_request(format!(
                "the object is nested more than {MAX_NESTING} levels deep"
            )));
        }
        let bytes = if def.converts() {
            serde_json::to_vec(&Stored(&def.to_storage(obj.clone())))
        } else {
            serde_json::to_vec(&Stored(obj))
        }
        .map_err(ApiError::internal)?;
        if bytes.len() > self.config.max_object_bytes {
            return Err(ApiError::too_large(format!(
                "Request entity too large: {} \"{}\" is {} bytes, limit is {}",
                def.resource,
                meta::name(obj),
                bytes.len(),
                self.config.max_object_bytes
            )));
        }
        Ok(Bytes::from(bytes))
    }

    /// The stored Namespace `ns`, if there is one.
    pub(crate) async fn stored_namespace(&self, ns: &str) -> ApiResult<Option<Value>> {
        let nsdef = namespace_def();
        let found = self
            .store
            .get(&nsdef.key(None, ns))
            .await
            .map_err(|e| storage_error(nsdef, ns, e))?;
        found.map(|kv| decode_stored(&kv)).transpose()
    }

    /// Rejects writes into a missing or terminating namespace.
    async fn check_namespace(&self, def: &ResourceDef, ns: &str, name: &str) -> ApiResult<()> {
        match self.stored_namespace(ns).await? {
            None => Err(ApiError::not_found(&namespace_def().group_resource(), ns)),
            Some(nsobj) => {
                if meta::is_deleting(&nsobj) {
                    return Err(ApiError::forbidden(
                        &def.group_resource(),
                        name,
                        &format!(
                            "unable to create new content in namespace {ns} because it is being terminated"
                        ),
                    )
                    .with_cause(
                        "NamespaceTerminating",
                        &format!("namespace {ns} is being terminated"),
                        "metadata.namespace",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Fills system metadata of a new object and runs the kind's create hooks and validation.
    fn prepare_create(&self, target: &Target, obj: &mut Value) -> ApiResult<()> {
        let def: &ResourceDef = &target.def;
        check_type_meta(def, obj)?;
        let url_ns = target.namespace.clone();
        let md = meta::metadata_mut(obj);
        if def.namespaced {
            let ns = url_ns.unwrap_or_default();
            match md.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    md.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            md.remove("namespace");
        }
        let name_empty = md
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if name_empty
            && let Some(base) = md.get("generateName").and_then(Value::as_str)
            && !base.is_empty()
        {
            let generated = meta::generate_name(base);
            md.insert("name".into(), json!(generated));
        }
        md.insert("uid".into(), json!(meta::new_uid()));
        md.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            md.remove(f);
        }
        if def.generation {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
        // Status is written through the status subresource only: the kinds'
        // PrepareForCreate reset it (Node excepted: kubelets register with status).
        if def.status && !def.status_on_create {
            obj["status"] = json!({});
        }
        (def.strategy.default)(obj);
        (def.strategy.prepare_create)(obj);
        let mut causes = validate_object_meta(def, obj);
        if let Some(custom) = target.def.custom() {
            if custom.terminating {
                return Err(ApiError::method_not_allowed(
                    "create not allowed while custom resource definition is terminating",
                ));
            }
            // A custom resource's PrepareForCreate drops the status.
            if def.status
                && let Some(o) = obj.as_object_mut()
            {
                o.remove("status");
            }
            causes.extend(
                custom
                    .default_and_validate(obj, None)
                    .into_iter()
                    .map(Cause::from),
            );
        }
        causes.extend(
            (def.strategy.validate_create)(obj)
                .into_iter()
                .map(Cause::from),
        );
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                def.kind,
                def.group,
                meta::name(obj),
                causes,
            ));
        }
        Ok(())
    }

    /// The create sequence of the generic registry store, once for every
    /// path that creates: system metadata and the kind's hooks, namespace
    /// admission, then one storage create (skipped under dry run).
    /// `Ok(None)` means the key already exists; the caller decides whether to
    /// retry (generateName, a racing create-on-update) or answer 409.
    async fn insert(
        &self,
        target: &Target,
        mut obj: Value,
        dry_run: bool,
    ) -> ApiResult<Option<Value>> {
        let def: &ResourceDef = &target.def;
        // Admission: the kind's own mutating plugins first, then the
        // mutating webhooks (which see no uid or generated name yet).
        self.admit(target, &mut obj, None, false).await?;
        let requested_name = meta::name(&obj).to_string();
        if let Some(request) =
            self.admission_request(target, Operation::Create, &requested_name, dry_run)
        {
            // kube sets the request's namespace on the object before
            // admission (a mismatch is refused below, in prepare_create).
            if let (true, Some(ns)) = (def.namespaced, &target.namespace)
                && meta::namespace(&obj).is_empty()
            {
                meta::metadata_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
            Box::pin(self.mutate_by_webhooks(&request, &mut obj, None)).await?;
            // A PUT that creates stores under the URL's name only.
            if let Some(url_name) = target.name.as_deref()
                && meta::name(&obj) != url_name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({url_name})",
                    meta::name(&obj)
                )));
            }
        }
        self.prepare_create(target, &mut obj)?;
        if def.conversion.is_some() {
            obj = through_storage(target, None, obj);
        }
        let name = meta::name(&obj).to_string();
        if def.namespaced {
            self.check_namespace(def, target.namespace.as_deref().unwrap_or(""), &name)
                .await?;
        }
        // Admission: the kind's validating plugins, the validating
        // webhooks, then ResourceQuota last.
        self.admit(target, &mut obj, None, true).await?;
        if let Some(request) = self.admission_request(target, Operation::Create, &name, dry_run) {
            Box::pin(self.validate_by_webhooks(&request, Some(&obj), None)).await?;
        }
        if def.namespaced {
            self.admit_quota(target, &obj, dry_run).await?;
        }
        let key = def.key(target.namespace.as_deref(), &name);
        if def.allocates && !dry_run && self.config.service_host.is_some() {
            // The host is asked before the store: a name already taken here
            // must not reach it (the host copy of the existing Service
            // would look like a stale one to replace).
            let existing = self.store.get(&key).await;
            if existing
                .map_err(|e| storage_error(def, &name, e))?
                .is_some()
            {
                return Ok(None);
            }
        }
        let allocation = self.allocate(def, None, &mut obj, dry_run).await?;
        if dry_run {
            return Ok(Some(obj));
        }
        let created = match self.encode(def, &obj) {
            Err(e) => Err(e),
            Ok(bytes) => match self.store.create(&key, bytes).await {
                Ok(rev) => {
                    meta::set_resource_version(&mut obj, rev);
                    Ok(Some(obj))
                }
                Err(StorageError::AlreadyExists(_)) => Ok(None),
                Err(e) => Err(storage_error(def, &name, e)),
            },
        };
        self.settle(allocation, matches!(created, Ok(Some(_))))
            .await;
        created
    }

    async fn create(
        &self,
        target: &Target,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
        repr: Representation,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let mut obj = decode_body(headers, body, def.kind)?;
        check_fields(target, query, "CreateOptions", Some(body), &mut obj)?;
        fieldmanager::validate_options("CreateOptions", query, None)?;
        let manager = fieldmanager::manager_name(query, headers);
        // Defaults first, as kube-apiserver defaults while decoding: the
        // creator owns the defaulted fields.
        (def.strategy.default)(&mut obj);
        fieldmanager::track_update(def, None, None, &mut obj, &manager);
        let generated = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if !generated {
            // One attempt: the object moves into it rather than being copied.
            let name = meta::name(&obj).to_string();
            return match self.insert(target, obj, query.dry_run).await? {
                Some(created) => {
                    Ok(self.render_one(&target.def, StatusCode::CREATED, &created, repr, query))
                }
                None => Err(ApiError::already_exists(&def.group_resource(), &name)),
            };
        }
        // generateName collisions are retried with a new suffix, as the registry does.
        for _ in 0..8 {
            if let Some(created) = self.insert(target, obj.clone(), query.dry_run).await? {
                return Ok(self.render_one(
                    &target.def,
                    StatusCode::CREATED,
                    &created,
                    repr,
                    query,
                ));
            }
        }
        Err(ApiError::already_exists(
            &def.group_resource(),
            meta::name(&obj),
        ))
    }

    /// Read-modify-write of one object. `mutate` receives the current object
    /// (with its resourceVersion) and returns the desired object; it runs again
    /// after a conflict. Returns the stored object and whether it was created.
    pub async fn guaranteed_update(
        &self,
        target: &Target,
        name: &str,
        allow_create: bool,
        dry_run: bool,
        mut mutate: impl FnMut(Option<&Value>) -> ApiResult<Value>,
    ) -> ApiResult<(Value, bool)> {
        let def: &ResourceDef = &target.def;
        let key = def.key(target.namespace.as_deref(), name);
        for _attempt in 0..64 {
            let current = self
                .store
                .get(&key)
                .await
                .map_err(|e| storage_error(def, name, e))?;
            let Some(kv) = current else {
                if !allow_create {
                    return Err(ApiError::not_found(&def.group_resource(), name));
                }
                match self.insert(target, mutate(None)?, dry_run).await? {
                    Some(created) => return Ok((created, true)),
                    // Created concurrently: update it instead.
                    None => continue,
                }
            };
            let old = decode_as(def, &kv)?;
            let mut new = mutate(Some(&old))?;
            self.admit(target, &mut new, Some(&old), false).await?;
            let request = self.admission_request(target, Operation::Update, name, dry_run);
            if let Some(request) = &request {
                Box::pin(self.mutate_by_webhooks(request, &mut new, Some(&old))).await?;
            }
            finish_update(target, &old, &mut new)?;
            if def.conversion.is_some() {
                new = through_storage(target, Some(&decode_stored(&kv)?), new);
            }
            self.admit(target, &mut new, Some(&old), true).await?;
            if let Some(request) = &request {
                Box::pin(self.validate_by_webhooks(request, Some(&new), Some(&old))).await?;
            }
            let allocation = self.allocate(def, Some(&old), &mut new, dry_run).await?;
            if new == old || dry_run {
                self.settle(allocation, false).await;
                return Ok((if new == old { old } else { new }, false));
            }
            let encoded = match self.encode(def, &new) {
                Ok(b) => b,
                Err(e) => {
                    self.settle(allocation, false).await;
                    return Err(e);
                }
            };
            let vanishes = meta::is_deleting(&new)
                && !blocks_deletion(def, &new)
                && new
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    == 0;
            let result = if vanishes {
                // The last finalizer is gone: the object goes away now.
                self.store.delete(&key, kv.mod_revision).await
            } else {
                self.store.update(&key, kv.mod_revision, encoded).await
            };
            self.settle(allocation, result.is_ok() && !vanishes).await;
            match result {
                Ok(rev) => {
                    if vanishes {
                        self.release_held(def, &old).await;
                        self.release_held(def, &new).await;
                    }
                    meta::set_resource_version(&mut new, rev);
                    return Ok((new, false));
                }
                Err(StorageError::Conflict { actual, .. }) => {
                    self.await_write(actual).await;
                    continue;
                }
                Err(e) => return Err(storage_error(def, name, e)),
            }
        }
        Err(ApiError::modified(&def.group_resource(), name))
    }

    async fn update(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        mut body: Value,
        repr: Representation,
        manager: &str,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        let sub = target.subresource.clone();
        if sub.as_deref() == Some("scale") {
            return self.update_scale(target, name, query, body, manager).await;
        }
        check_type_meta(def, &mut body)?;
        let body_name = meta::name(&body);
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let precondition = meta::resource_version(&body).to_string();
        let allow_create = def.allow_create_on_update && sub.is_none();
        let (obj, created) = self
            .guaranteed_update(target, name, allow_create, query.dry_run, |old| {
                let Some(old) = old else {
                    let mut created = body.clone();
                    (def.strategy.default)(&mut created);
                    fieldmanager::track_update(def, None, None, &mut created, manager);
                    return Ok(created);
                };
                uid_precondition(&gr, name, &body, old)?;
                if !precondition.is_empty() && precondition != meta::resource_version(old) {
                    return Err(ApiError::modified(&gr, name));
                }
                let mut new = requested_update(def, sub.as_deref(), old, body.clone())?;
                fieldmanager::track_update(def, sub.as_deref(), Some(old), &mut new, manager);
                Ok(new)
            })
            .await?;
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(self.render_one(&target.def, code, &obj, repr, query))
    }

    async fn patch(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        headers: &HeaderMap,
        body: &[u8],
        repr: Representation,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        let mt = media_type(headers);
        if mt == fieldmanager::APPLY_PATCH {
            fieldmanager::validate_options("PatchOptions", query, Some(true))?;
            return self.apply_patch(target, name, query, body, repr).await;
        }
        if mt == "application/strategic-merge-patch+json" && target.def.custom().is_some() {
            return Err(ApiError::strategic_patch_of_custom_resource());
        }
        let patch = Patch::parse(&mt, body, def)?;
        let mode = FieldValidation::parse(query.field_validation.as_deref(), "PatchOptions")?;
        fieldmanager::validate_options("PatchOptions", query, Some(false))?;
        let manager = fieldmanager::manager_name(query, headers);
        // Duplicate keys of a merge or strategic patch are reported like a
        // body's (handlers/patch.go decodes those patches strictly).
        let patch_keys = (!matches!(patch, Patch::Json(_))).then_some(body);
        let sub = target.subresource.clone();
        let (obj, _) = self
            .guaranteed_update(target, name, false, query.dry_run, |old| {
                let old = old.expect("patch does not create");
                if sub.as_deref() == Some("scale") {
                    let mut scale = to_scale(def, old);
                    let before = scale.clone();
                    patch.apply(&mut scale)?;
                    let mut new = scale_into(def, &gr, name, old, &before, &scale)?;
                    fieldmanager::track_update(def, sub.as_deref(), Some(old), &mut new, &manager);
                    return Ok(new);
                }
                let mut patched = old.clone();
                patch.apply(&mut patched)?;
                crate::typed::check(&target.def, mode, patch_keys, &mut patched, Source::Patch)?;
                if meta::resource_version(&patched) != meta::resource_version(old) {
                    return Err(ApiError::modified(&gr, name));
                }
                if meta::name(&patched) != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta::name(&patched)
                    )));
                }
                let mut new = requested_update(def, sub.as_deref(), old, patched)?;
                fieldmanager::track_update(def, sub.as_deref(), Some(old), &mut new, &manager);
                Ok(new)
            })
            .await?;
        if sub.as_deref() == Some("scale") {
            return Ok(json_response(StatusCode::OK, &to_scale(def, &obj)));
        }
        Ok(self.render_one(&target.def, StatusCode::OK, &obj, repr, query))
    }

    async fn update_scale(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        body: Value,
        manager: &str,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        let (obj, _) = self
            .guaranteed_update(target, name, false, query.dry_run, |old| {
                let old = old.expect("no create");
                let current = to_scale(def, old);
                let mut new = scale_into(def, &gr, name, old, &current, &body)?;
                fieldmanager::track_update(def, Some("scale"), Some(old), &mut new, manager);
                Ok(new)
            })
            .await?;
        Ok(json_response(StatusCode::OK, &to_scale(def, &obj)))
    }

    /// `POST /api/v1/namespaces/{ns}/bindings`: the pod is named by the
    /// Binding's `metadata.name` (kube's BindingREST, reached through the
    /// legacy `bindings` resource).
    pub async fn create_binding(
        &self,
        namespace: &str,
        headers: &HeaderMap,
        body: &[u8],
        dry_run: bool,
    ) -> ApiResult<Response> {
        let pods = crate::registry::lookup("", "v1", "pods").expect("pods registered");
        let binding = decode_body(headers, body, "Binding")?;
        let body_ns = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = meta::name(&binding).to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        let target = Target {
            def: crate::registry::Def::Builtin(pods),
            namespace: Some(namespace.to_string()),
            name: Some(name.clone()),
            subresource: Some("binding".into()),
            watch_prefix: false,
        };
        self.bind_decoded(&target, &name, binding, dry_run).await
    }

    async fn bind(
        &self,
        target: &Target,
        name: &str,
        headers: &HeaderMap,
        body: &[u8],
        dry_run: bool,
    ) -> ApiResult<Response> {
        let binding = decode_body(headers, body, "Binding")?;
        self.bind_decoded(target, name, binding, dry_run).await
    }

    /// Binds pod `name` to the Binding's node; under `dry_run` checks and
    /// answers without writing.
    async fn bind_decoded(
        &self,
        target: &Target,
        name: &str,
        binding: Value,
        dry_run: bool,
    ) -> ApiResult<Response> {
        let gr = crate::error::GroupResource::new("", "pods/binding");
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ));
        }
        self.guaranteed_update(target, name, false, dry_run, |old| {
            let old = old.expect("no create");
            if meta::is_deleting(old) {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let current = old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !current.is_empty() {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!("pod {name} is already assigned to node {current:?}"),
                ));
            }
            let mut pod = old.clone();
            meta::ensure_object(&mut pod, "spec").insert("nodeName".into(), json!(node));
            set_condition(&mut pod, "PodScheduled", "True");
            Ok(pod)
        })
        .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    /// Deletes one object, honouring finalizers, graceful deletion and preconditions.
    async fn delete(
        &self,
        target: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Response> {
        let (code, body) = self.delete_one(target, name, opts).await?;
        Ok(json_response(code, &body))
    }

    pub(crate) async fn delete_one(
        &self,
        target: &Target,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(StatusCode, Value)> {
        let def: &ResourceDef = &target.def;
        let gr = def.group_resource();
        let key = def.key(target.namespace.as_deref(), name);
        for _attempt in 0..64 {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| storage_error(def, name, e))?
                .ok_or_else(|| ApiError::not_found(&gr, name))?;
            let obj = decode_as(def, &kv)?;
            // rest.BeforeDelete names the Kind (not the resource) in these conflicts.
            let gk = crate::error::GroupResource::new(def.group, def.kind);
            if let Some(uid) = &opts.precondition_uid
                && uid != meta::uid(&obj)
            {
                return Err(ApiError::conflict(
                    &gk,
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                        meta::uid(&obj)
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_rv
                && rv != meta::resource_version(&obj)
            {
                return Err(ApiError::conflict(
                    &gk,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        meta::resource_version(&obj)
                    ),
                ));
            }
            if def.undeletable.contains(&name) {
                let why = match def.undeletable_why {
                    "" => format!("this {} may not be deleted", def.singular),
                    why => why.to_string(),
                };
                return Err(ApiError::forbidden(&gr, name, &why));
            }
            // Admission of a delete: webhooks see the stored object as
            // `oldObject`; mutating ones may deny but not patch.
            if let Some(request) =
                self.admission_request(target, Operation::Delete, name, opts.dry_run)
            {
                // Mutating webhooks see neither object on a delete, as
                // kube's delete handler admits it.
                Box::pin(self.admit_mutating_webhooks(&request, None, None)).await?;
                Box::pin(self.validate_by_webhooks(&request, None, Some(&obj))).await?;
            }
            let grace = def
                .strategy
                .grace_period
                .map_or(0, |f| f(&obj, opts.grace_period_seconds));
            // Garbage-collection finalizers (orphan/foregroundDeletion) hold
            // the object until the collector has handled its dependents.
            let mut base = obj.clone();
            if let Some(f) = gc_finalizers(&obj, opts) {
                meta::metadata_mut(&mut base).insert("finalizers".into(), Value::Array(f));
            }
            let pending = blocks_deletion(def, &base);
            if pending || grace > 0 {
                let mut marked = base;
                let md = meta::metadata_mut(&mut marked);
                let current_grace = md.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
                let already = md.get("deletionTimestamp").is_some_and(|v| !v.is_null());
                if !already || current_grace.is_some_and(|g| grace < g) {
                    md.insert(
                        "deletionTimestamp".into(),
                        json!(meta::now_plus_seconds(grace)),
                    );
                    md.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                (def.strategy.begin_deletion)(&mut marked);
                if grace == 0 && !pending {
                    // fall through to an immediate delete below
                } else {
                    if marked == obj || opts.dry_run {
                        return Ok((StatusCode::OK, marked));
                    }
                    match self
                        .store
                        .update(&key, kv.mod_revision, self.encode(def, &marked)?)
                        .await
                    {
                        Ok(rev) => {
                            meta::set_resource_version(&mut marked, rev);
                            return Ok((StatusCode::OK, marked));
                        }
                        Err(StorageError::Conflict { actual, .. }) => {
                            self.await_write(actual).await;
                            continue;
                        }
                        Err(e) => return Err(storage_error(def, name, e)),
                    }
                }
            }
            if opts.dry_run {
                return Ok((StatusCode::OK, obj));
            }
            match self.store.delete(&key, kv.mod_revision).await {
                Ok(rev) => {
                    self.release_held(def, &obj).await;
                    let mut deleted = obj;
                    meta::set_resource_version(&mut deleted, rev);
                    let body = if def.return_deleted_object {
                        deleted
                    } else {
                        success_status(def, &deleted)
                    };
                    return Ok((StatusCode::OK, body));
                }
                Err(StorageError::Conflict { actual, .. }) => {
                    self.await_write(actual).await;
                    continue;
                }
                Err(StorageError::NotFound(_)) => return Err(ApiError::not_found(&gr, name)),
                Err(e) => return Err(storage_error(def, name, e)),
            }
        }
        Err(ApiError::modified(&gr, name))
    }

    async fn delete_collection(
        &self,
        target: &Target,
        query: &Query,
        opts: &DeleteOptions,
    ) -> ApiResult<Response> {
        let def: &ResourceDef = &target.def;
        let filter = Filter::from_query(def, query, None)?;
        let mut list_query = query.clone();
        list_query.limit = None;
        list_query.continue_token = None;
        let (items, revision, _) = self.list_objects(target, &list_query, &filter).await?;
        let mut deleted = Vec::new();
        for item in items {
            let mut t = target.clone();
            if def.namespaced {
                t.namespace = Some(meta::namespace(&item).to_string());
            }
            // The answer lists the items as they were before deletion.
            match self.delete_one(&t, meta::name(&item), opts).await {
                Ok(_) => deleted.push(item),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": revision.to_string()},
                "items": deleted,
            }),
        ))
    }
}

// ---- Service address allocation (crate::alloc), for kinds with `allocates` ----

/// What one Service write reserved, until [`Api::settle`] learns whether
/// the write landed.
enum Reservation {
    /// Held in this server's store ([`crate::alloc`]).
    Local(crate::alloc::Allocation),
    /// Held by the host ([`ApiConfig::service_host`]); on a create, the
    /// host's Service, to remove if the virtual one is not stored.
    Host(Option<Value>),
}

impl Api {
    /// Reserves what `new` needs beyond what `old` holds; `None` for kinds
    /// without allocation. Real writes of a virtual cluster's Services ask
    /// the host first ([`ApiConfig::service_host`]) and store its
    /// addresses; dry runs and what the host leaves to this server use
    /// [`crate::alloc`]. Every `Some` must reach [`Api::settle`].
    ///
    /// Errors: the host's own refusal (e.g. `422` for a taken ClusterIP),
    /// or [`crate::alloc::allocate`]'s.
    async fn allocate(
        &self,
        def: &ResourceDef,
        old: Option<&Value>,
        new: &mut Value,
        dry_run: bool,
    ) -> ApiResult<Option<Reservation>> {
        if !def.allocates {
            return Ok(None);
        }
        if !dry_run && let Some(host) = &self.config.service_host {
            match host.allocate(old, new).await {
                Ok(Some(h)) => {
                    vkube_core::service::copy_allocations(&h, new);
                    return Ok(Some(Reservation::Host(old.is_none().then_some(h))));
                }
                Ok(None) => {}
                Err(refusal) => return Err(ApiError::from_host(refusal)),
            }
        }
        let a = crate::alloc::allocate(&*self.store, &self.config.allocation, old, new, dry_run)
            .await?;
        Ok(Some(Reservation::Local(a)))
    }

    /// Commits an allocation whose write `landed`, else releases it.
    async fn settle(&self, allocation: Option<Reservation>, landed: bool) {
        match allocation {
            Some(Reservation::Local(a)) if landed => a.commit(&*self.store).await,
            Some(Reservation::Local(a)) => a.undo(&*self.store).await,
            Some(Reservation::Host(Some(created))) if !landed => {
                if let Some(host) = &self.config.service_host {
                    host.release(&created).await;
                }
            }
            Some(Reservation::Host(_)) | None => {}
        }
    }

    /// Releases everything a deleted object held.
    async fn release_held(&self, def: &ResourceDef, obj: &Value) {
        if def.allocates {
            crate::alloc::release(&*self.store, &crate::alloc::held_keys(obj), meta::uid(obj))
                .await;
        }
    }
}

/// Server-side field validation of a create or update body (the hook into
/// [`crate::typed`]): parses `fieldValidation` (`options_kind` names the
/// options in its error), then decodes `obj` into the kind's type, failing on
/// a type error, reporting unknown and duplicate fields per the directive,
/// and pruning unknown fields. The `scale` subresource (a Scale, not the
/// kind) and `binding` are not checked here.
fn check_fields(
    target: &Target,
    query: &Query,
    options_kind: &str,
    raw: Option<&[u8]>,
    obj: &mut Value,
) -> ApiResult<()> {
    let mode = FieldValidation::parse(query.field_validation.as_deref(), options_kind)?;
    match target.subresource.as_deref() {
        None | Some("status" | "finalize" | "ephemeralcontainers" | "approval") => {
            crate::typed::check(&target.def, mode, raw, obj, Source::Body)
        }
        _ => Ok(()),
    }
}

/// Whether finalizers still hold the object: `metadata.finalizers`, or the
/// kind's own (a Namespace's `spec.finalizers`, cleared via `finalize`).
fn blocks_deletion(def: &ResourceDef, obj: &Value) -> bool {
    meta::has_finalizers(obj) || (def.strategy.holds_deletion)(obj)
}

/// The object a request (PUT body, patched or applied object) asks to store
/// over `old`: a changed uid is refused ([`uid_unchanged`]) while the
/// request's metadata is still there, then [`apply_subresource_rules`]
/// keep what the subresource may change.
fn requested_update(
    def: &ResourceDef,
    sub: Option<&str>,
    old: &Value,
    new: Value,
) -> ApiResult<Value> {
    uid_unchanged(def, old, &new)?;
    Ok(apply_subresource_rules(def, sub, old, new))
}

/// Which part of the object a write may change: the main resource keeps the
/// stored status; `status` changes only status; `finalize` only the
/// namespace's `spec.finalizers`.
fn apply_subresource_rules(def: &ResourceDef, sub: Option<&str>, old: &Value, new: Value) -> Value {
    match sub {
        None => {
            let mut new = new;
            if def.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().map(|o| o.remove("status"));
                    }
                }
            }
            (def.strategy.default)(&mut new);
            (def.strategy.prepare_update)(&mut new, old);
            new
        }
        Some("status") => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    out.as_object_mut().map(|o| o.remove("status"));
                }
            }
            // Status defaults too (a Node's allocatable from capacity).
            (def.strategy.default)(&mut out);
            (def.strategy.prepare_status_update)(&mut out, old);
            out
        }
        Some("ephemeralcontainers") => {
            let mut out = old.clone();
            let list = new.pointer("/spec/ephemeralContainers").cloned();
            let spec = meta::ensure_object(&mut out, "spec");
            match list {
                Some(l) if !l.is_null() => spec.insert("ephemeralContainers".into(), l),
                _ => spec.remove("ephemeralContainers"),
            };
            (def.strategy.default)(&mut out);
            out
        }
        Some("approval") => crate::certificates::approval_update(old, &new),
        Some("finalize") => {
            let mut out = old.clone();
            let fins = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            meta::ensure_object(&mut out, "spec").insert("finalizers".into(), fins);
            out
        }
        Some(_) => new,
    }
}

/// The UID precondition of an update (PUT): a non-empty `metadata.uid` in
/// `body` must be the stored object's, else 409 Conflict with the storage
/// layer's message, as kube-apiserver's `rest.DefaultUpdatedObjectInfo`
/// turns the body's uid into `Preconditions{UID}` (checked before the
/// resourceVersion). Guards a client writing to a deleted and recreated
/// object of the same name.
fn uid_precondition(
    gr: &crate::error::GroupResource,
    name: &str,
    body: &Value,
    old: &Value,
) -> ApiResult<()> {
    let (want, have) = (meta::uid(body), meta::uid(old));
    if want.is_empty() || want == have {
        return Ok(());
    }
    Err(ApiError::conflict(
        gr,
        name,
        &format!(
            "StorageError: invalid object, Code: 4, AdditionalErrorMsg: Precondition failed: UID in precondition: {want}, UID in object meta: {have}"
        ),
    ))
}

/// Refuses a non-empty `metadata.uid` in `new` other than `old`'s, as
/// kube-apiserver's `rest.BeforeUpdate` does (only an empty uid is filled
/// in from the stored object; `ValidateObjectMetaUpdate` then finds the uid
/// changed): 422, `metadata.uid: Invalid value: "…": field is immutable`.
/// (A PUT body's uid is checked earlier, as a precondition:
/// [`uid_precondition`].)
fn uid_unchanged(def: &ResourceDef, old: &Value, new: &Value) -> ApiResult<()> {
    let new_uid = meta::uid(new);
    if new_uid.is_empty() || new_uid == meta::uid(old) {
        return Ok(());
    }
    Err(ApiError::invalid(
        def.kind,
        def.group,
        meta::name(old),
        vec![Cause::from(vkube_core::field::FieldError::immutable(
            "metadata.uid",
            &json!(new_uid),
        ))],
    ))
}

/// Carries system metadata over from the stored object and bumps generation.
fn finish_update(target: &Target, old: &Value, new: &mut Value) -> ApiResult<()> {
    let def: &ResourceDef = &target.def;
    check_type_meta(def, new)?;
    let old_md = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let md = meta::metadata_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "resourceVersion",
    ] {
        match old_md.get(f) {
            Some(v) => md.insert(f.into(), v.clone()),
            None => md.remove(f),
        };
    }
    md.remove("selfLink");
    bump_generation(def, old, new);
    // Once deletion started, finalizers may only be removed.
    let mut causes = validate_object_meta(def, new);
    if target.subresource.as_deref() == Some("ephemeralcontainers") {
        causes.extend(
            vkube_core::apivalidation::pod_ephemeral_containers_update(new, old)
                .into_iter()
                .map(Cause::from),
        );
    } else if let Some(sub @ ("status" | "approval")) = target.subresource.as_deref() {
        causes.extend(
            (def.strategy.validate_subresource_update)(sub, new, old)
                .into_iter()
                .map(Cause::from),
        );
    } else if target.subresource.is_none() {
        // Compare with the old object as kube-apiserver reads it: defaulted
        // (objects stored before defaulting existed compare equal).
        let mut old = old.clone();
        (def.strategy.default)(&mut old);
        causes.extend(
            (def.strategy.validate_update)(new, &old)
                .into_iter()
                .map(Cause::from),
        );
    }
    if let Some(custom) = target.def.custom()
        && matches!(
            target.subresource.as_deref(),
            None | Some("status" | "scale")
        )
    {
        causes.extend(
            custom
                .default_and_validate(new, Some(old))
                .into_iter()
                .map(Cause::from),
        );
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            def.kind,
            def.group,
            meta::name(new),
            causes,
        ));
    }
    Ok(())
}

/// `metadata.generation` one past `old`'s when a kind that counts
/// generations changed anything outside metadata and status.
fn bump_generation(def: &ResourceDef, old: &Value, new: &mut Value) {
    if def.generation && meta::spec_changed(old, new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::metadata_mut(new).insert("generation".into(), json!(g + 1));
    }
}

/// A write of a converted kind ([`ResourceDef::conversion`]) as
/// kube-apiserver makes it on the internal object: converted to the stored
/// form, where the storage version's rules apply (a main-resource write
/// keeps the stored status and a create starts with none, whatever the
/// served version carries in annotations; `metadata.generation` follows
/// the stored spec), and back. `old` is the stored object (storage form)
/// on an update. What comes back is what a read will answer.
fn through_storage(target: &Target, old: Option<&Value>, new: Value) -> Value {
    let def: &ResourceDef = &target.def;
    let Some(c) = def.conversion else {
        return new;
    };
    let Some(sdef) =
        crate::registry::lookup(c.storage_group, c.storage_version, c.storage_resource)
    else {
        return new;
    };
    let rv = meta::resource_version(&new).to_string();
    let mut stored = def.to_storage(new);
    match (old, target.subresource.as_deref()) {
        (None, _) if sdef.status && !sdef.status_on_create => stored["status"] = json!({}),
        (Some(old), None) => {
            stored = apply_subresource_rules(sdef, None, old, stored);
            // The served version's comparison counted already; the stored
            // spec decides.
            match old.pointer("/metadata/generation") {
                Some(g) => meta::metadata_mut(&mut stored).insert("generation".into(), g.clone()),
                None => meta::metadata_mut(&mut stored).remove("generation"),
            };
            bump_generation(sdef, old, &mut stored);
        }
        _ => {}
    }
    let mut served = def.from_storage(stored);
    if !rv.is_empty() {
        meta::metadata_mut(&mut served).insert("resourceVersion".into(), json!(rv));
    }
    served
}

/// Sets condition `kind` of `obj` to `status` as kube-apiserver's
/// `UpdatePodCondition` does (pkg/api/v1/pod/util.go): the condition is
/// replaced by `{type, status, lastTransitionTime}`, so an old reason and
/// message go, and `lastTransitionTime` is now only when the status changes
/// (kept otherwise).
fn set_condition(obj: &mut Value, kind: &str, status: &str) {
    let status_obj = meta::ensure_object(obj, "status");
    let conds = status_obj.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let arr = conds.as_array_mut().expect("array");
    let now = meta::now_rfc3339();
    let new = |transition: Value| json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
    match arr
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(c) => {
            let transition = if c.get("status").and_then(Value::as_str) == Some(status) {
                c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
            } else {
                json!(now)
            };
            *c = new(transition);
        }
        None => arr.push(new(json!(now))),
    }
}

fn get_path<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| v.get(*seg))
}

/// The autoscaling/v1 `Scale` view of a workload.
pub fn to_scale(def: &ResourceDef, obj: &Value) -> Value {
    let scale = def.scale.expect("kind has a scale subresource");
    let md = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    // A custom resource's `labelSelectorPath` names the selector already
    // in its string form.
    let selector = get_path(obj, scale.selector)
        .filter(|s| !s.is_string())
        .map(|s| {
            // A ReplicationController's selector is a plain label map.
            if s.get("matchLabels").is_none() && s.get("matchExpressions").is_none() {
                json!({ "matchLabels": s })
            } else {
                s.clone()
            }
        })
        .and_then(|s| LabelSelector::from_label_selector_json(&s).ok())
        .map(|s| s.to_string())
        .or_else(|| get_path(obj, scale.selector)?.as_str().map(str::to_string))
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
            "creationTimestamp": md.get("creationTimestamp"),
        },
        "spec": {"replicas": get_path(obj, scale.spec_replicas).and_then(Value::as_i64).unwrap_or(scale.unset_replicas)},
        "status": {
            "replicas": get_path(obj, scale.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// Writes a Scale's `spec.replicas` into the workload, checking its resourceVersion.
pub(crate) fn scale_into(
    def: &ResourceDef,
    gr: &crate::error::GroupResource,
    name: &str,
    old: &Value,
    current_scale: &Value,
    desired: &Value,
) -> ApiResult<Value> {
    let rv = meta::resource_version(desired);
    if !rv.is_empty() && rv != meta::resource_version(current_scale) {
        return Err(ApiError::modified(gr, name));
    }
    let replicas = desired
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let scale = def.scale.expect("kind has a scale subresource");
    let mut new = old.clone();
    let Some((last, parents)) = scale.spec_replicas.split_last() else {
        return Err(ApiError::internal(
            "the scale subresource names no replicas field",
        ));
    };
    let mut cur = &mut new;
    for seg in parents {
        cur = meta::ensure_object_value(cur, seg);
    }
    cur[*last] = json!(replicas);
    Ok(new)
}

fn delete_options(query: &Query, headers: &HeaderMap, body: &[u8]) -> ApiResult<DeleteOptions> {
    let opts = DeleteOptions {
        grace_period_seconds: query.grace_period_seconds,
        dry_run: query.dry_run,
        propagation_policy: query.propagation_policy.clone(),
        ..Default::default()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        fieldmanager::validate_delete_dry_run(&query.dry_run_values)?;
        return Ok(opts);
    }
    let v = decode_body(headers, body, "DeleteOptions")?;
    delete_options_from(&v, opts, &query.dry_run_values)
}

/// Reads a `DeleteOptions` object `v` over `opts` (the query's), as sent
/// in a DELETE body or an Eviction's `deleteOptions`.
pub(crate) fn delete_options_from(
    v: &Value,
    mut opts: DeleteOptions,
    query_dry_run: &[String],
) -> ApiResult<DeleteOptions> {
    if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(p) = v.get("preconditions") {
        opts.precondition_uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv = p
            .get("resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let mut dry_run = query_dry_run.to_vec();
    if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
        opts.dry_run |= d.iter().any(|x| x == "All");
        dry_run.extend(d.iter().map(|x| x.as_str().unwrap_or_default().to_string()));
    }
    fieldmanager::validate_delete_dry_run(&dry_run)?;
    if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
        opts.propagation_policy = Some(p.to_string());
    }
    opts.orphan_dependents = v.get("orphanDependents").and_then(Value::as_bool);
    Ok(opts)
}

/// The Namespaces resource.
fn namespace_def() -> &'static ResourceDef {
    crate::registry::lookup("", "v1", "namespaces").expect("namespaces registered")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_propagation_sets_gc_finalizers_like_kube_apiserver() {
        let opts = |p: Option<&str>, o: Option<bool>| DeleteOptions {
            propagation_policy: p.map(str::to_string),
            orphan_dependents: o,
            ..Default::default()
        };
        let plain = json!({"metadata": {"finalizers": ["x"]}});
        assert_eq!(gc_finalizers(&plain, &opts(None, None)), None);
        assert_eq!(gc_finalizers(&plain, &opts(Some("Background"), None)), None);
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Foreground"), None)),
            Some(vec![json!("x"), json!("foregroundDeletion")])
        );
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Orphan"), None)),
            Some(vec![json!("x"), json!("orphan")])
        );
        assert_eq!(
            gc_finalizers(&plain, &opts(Some("Foreground"), Some(true))),
            Some(vec![json!("x"), json!("orphan")])
        );
        let orphaning = json!({"metadata": {"finalizers": ["orphan"]}});
        assert_eq!(gc_finalizers(&orphaning, &opts(None, None)), None);
        assert_eq!(
            gc_finalizers(&orphaning, &opts(Some("Background"), None)),
            Some(vec![])
        );
    }

    #[test]
    fn status_rules() {
        let def = crate::registry::lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"spec": {"replicas": 2}, "status": {"replicas": 9}});
        let main = apply_subresource_rules(def, None, &old, new.clone());
        assert_eq!(main["spec"]["replicas"], 2);
        assert_eq!(main["status"]["replicas"], 1);
        let status = apply_subresource_rules(def, Some("status"), &old, new);
        assert_eq!(status["spec"]["replicas"], 1);
        assert_eq!(status["status"]["replicas"], 9);
    }

    #[test]
    fn object_meta_validation_messages() {
        let def = crate::registry::lookup("", "v1", "configmaps").unwrap();
        let causes = validate_object_meta(def, &json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.name");
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
        let causes = validate_object_meta(def, &json!({"metadata": {}}));
        assert_eq!(causes[0].reason, "FieldValueRequired");
        let roles =
            crate::registry::lookup("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap();
        assert!(
            validate_object_meta(roles, &json!({"metadata": {"name": "system:controller:x"}}))
                .is_empty()
        );
        let labels = validate_object_meta(
            def,
            &json!({"metadata": {"name": "ok", "labels": {"a b": "c"}}}),
        );
        assert_eq!(labels[0].field, "metadata.labels");
    }

    #[test]
    fn set_condition_keeps_the_transition_time_when_the_status_is_unchanged() {
        let mut pod = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "x", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        ]}});
        super::set_condition(&mut pod, "PodScheduled", "True");
        assert_eq!(
            pod.pointer("/status/conditions/0/lastTransitionTime"),
            Some(&json!("2020-01-01T00:00:00Z"))
        );
        super::set_condition(&mut pod, "Ready", "True");
        let ready = pod.pointer("/status/conditions/1").unwrap();
        assert_eq!(ready["status"], json!("True"));
        assert_ne!(ready["lastTransitionTime"], json!("2020-01-01T00:00:00Z"));
        assert!(ready.get("reason").is_none(), "{ready}");
        super::set_condition(&mut pod, "Initialized", "True");
        assert_eq!(
            pod.pointer("/status/conditions/2/type"),
            Some(&json!("Initialized"))
        );
    }
}
