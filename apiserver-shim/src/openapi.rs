//! OpenAPI v3 documents: `/openapi/v3` and `/openapi/v3/{api/v1 | apis/G/V}`.
//!
//! Built from k8s-openapi's own type information (its `schemars` support,
//! through the [`crate::typed`] rows) and the resource registry, never
//! written by hand. The shape follows kube-apiserver's (k8s.io/kube-openapi
//! `handler3`, and the spec builder of k8s.io/apiserver/pkg/endpoints/openapi):
//!
//! * the root lists one `serverRelativeURL` per served group-version, with
//!   `?hash=` the document's content hash (also its `ETag`);
//! * `components.schemas` are keyed `io.k8s.api.core.v1.Pod`, referenced as
//!   `#/components/schemas/...`; each kind (and its `…List`) carries
//!   `x-kubernetes-group-version-kind` (a list of `{group, version, kind}`);
//! * list properties carry `x-kubernetes-patch-strategy`,
//!   `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type` and
//!   `x-kubernetes-list-map-keys` from [`vkube_core::smp::builtin`], which
//!   kubectl's client-side apply reads (`PatchMetaFromOpenAPIV3`) to build
//!   its strategic merge patch;
//! * every operation carries `x-kubernetes-action` and
//!   `x-kubernetes-group-version-kind` (one `{group, version, kind}` object);
//!   PATCH operations take `dryRun`, `fieldManager`, `fieldValidation` and
//!   `force` query parameters and list the patch media types in
//!   `requestBody.content`.
//!
//! What kubectl 1.34 reads: `--validate=strict` (the default) asks
//! cli-runtime's `QueryParamVerifierV3` whether the PATCH operation whose
//! `x-kubernetes-group-version-kind` equals the object's GVK has an `in:
//! query` parameter named `fieldValidation`; then it sends
//! `fieldValidation=Strict` and lets the server validate. `kubectl apply`
//! checks that the kind's PATCH operation accepts
//! `application/strategic-merge-patch+json` and then builds the patch from
//! the schema whose GVK list contains the kind. `kubectl explain` walks
//! `properties`, `items`, `$ref` and `allOf` from that schema.
//!
//! Documents are built on the first request and cached for the life of the
//! process (they are a pure function of the binary), so startup is not
//! slowed and an idle server that is never asked holds none of them.

use crate::error::{ApiError, ApiResult};
use crate::registry::{self, RESOURCES, ResourceDef};
use crate::typed;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::sync::OnceLock;
use vkube_core::smp::{ListStrategy, Strategy};

/// Patch media types the server applies, listed in each PATCH operation's
/// `requestBody.content` (kubectl's client-side apply needs the strategic
/// one). Add `application/apply-patch+yaml` here once server-side apply is served.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

const SCHEMAS: &str = "#/components/schemas/";

/// One cached group-version document.
pub struct GroupVersionDoc {
    /// Path under `/openapi/v3/`: `api/v1` or `apis/apps/v1`.
    pub path: String,
    /// Upper-case hex SHA-512 of `body` (the `hash` query value and `ETag`).
    pub hash: String,
    /// The serialised document.
    pub body: Bytes,
}

/// Every document the server serves, built once.
pub struct Documents {
    /// The serialised root (`/openapi/v3`).
    pub root: Bytes,
    /// Hash of `root`.
    pub root_hash: String,
    /// One per served group-version, in discovery order.
    pub group_versions: Vec<GroupVersionDoc>,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

/// The documents, built on first use (tens of milliseconds; call from a
/// blocking context).
pub fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(build_documents)
}

/// Upper-case hex SHA-512 of `bytes`: the `hash` query value and `ETag`
/// of OpenAPI documents, and the `ETag` of aggregated discovery (as
/// kube-apiserver's `discoveryendpoint.CalculateETag`).
pub(crate) fn hash(bytes: &[u8]) -> String {
    sha2::Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn build_documents() -> Documents {
    let mut group_versions = Vec::new();
    let mut paths = Map::new();
    for (group, versions) in registry::groups() {
        for version in versions {
            let doc = group_version_document(group, version);
            let body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
            let path = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let hash = hash(&body);
            paths.insert(
                path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
            );
            group_versions.push(GroupVersionDoc { path, hash, body });
        }
    }
    let root = Bytes::from(serde_json::to_vec(&json!({ "paths": paths })).unwrap_or_default());
    Documents {
        root_hash: hash(&root),
        root,
        group_versions,
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .or_else(|| schema.get("allOf")?.get(0)?.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(SCHEMAS))
}

/// Adds the patch extensions of one [`vkube_core::smp::Schema`] entry
/// (`spec.template.spec.containers[].ports`) to the property it names,
/// following `$ref`/`allOf` from the kind's schema `root`. Paths that do not
/// resolve are skipped.
fn annotate(schemas: &mut Map<String, Value>, root: &str, path: &str, strategy: ListStrategy) {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = root.to_string();
    for (i, segment) in segments.iter().enumerate() {
        let (name, items) = match segment.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (*segment, false),
        };
        let Some(prop) = schemas
            .get_mut(&current)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(name))
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        if i + 1 == segments.len() {
            let list = prop.get("type").and_then(Value::as_str) == Some("array");
            let tag = match strategy.strategy {
                Strategy::Merge => "merge",
                Strategy::Replace => "replace",
                Strategy::RetainKeys => "retainKeys",
                Strategy::MergeRetainKeys => "merge,retainKeys",
            };
            prop.insert("x-kubernetes-patch-strategy".into(), json!(tag));
            if let Some(key) = strategy.merge_key {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
            if list {
                let (list_type, keys) = match (strategy.strategy.merges(), strategy.merge_key) {
                    (true, Some(key)) => ("map", Some(key)),
                    (true, None) => ("set", None),
                    _ => ("atomic", None),
                };
                prop.insert("x-kubernetes-list-type".into(), json!(list_type));
                if let Some(key) = keys {
                    prop.insert("x-kubernetes-list-map-keys".into(), json!([key]));
                }
            }
            return;
        }
        let prop = Value::Object(prop.clone());
        let next = if items {
            prop.get("items")
        } else {
            Some(&prop)
        };
        match next.and_then(ref_name) {
            Some(n) => current = n.to_string(),
            None => return,
        }
    }
}

fn camel(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// kube-apiserver's operation-id prefix of a group-version: `CoreV1`,
/// `AppsV1`, `RbacAuthorizationV1`.
fn gv_id(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "Core".to_string()
    } else {
        group
            .trim_end_matches(".k8s.io")
            .split('.')
            .map(camel)
            .collect()
    };
    format!("{g}{}", camel(version))
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": { "type": ty, "uniqueItems": true },
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn query_params(action: &str) -> Vec<Value> {
    let q = |n: &str, t: &str, d: &str| param(n, "query", t, d);
    let dry_run = q(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    );
    let field_manager = q(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    );
    let field_validation = q(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore: drops unknown fields silently. - Warn: (the default) sends a warning via the standard warning response header for each unknown or duplicate field. - Strict: fails the request with a BadRequest error listing every unknown or duplicate field.",
    );
    let list = || {
        vec![
            q(
                "labelSelector",
                "string",
                "A selector to restrict the list of returned objects by their labels.",
            ),
            q(
                "fieldSelector",
                "string",
                "A selector to restrict the list of returned objects by their fields.",
            ),
            q(
                "limit",
                "integer",
                "limit is a maximum number of responses to return for a list call.",
            ),
            q(
                "continue",
                "string",
                "The continue option should be set when retrieving more results from the server.",
            ),
            q(
                "resourceVersion",
                "string",
                "resourceVersion sets a constraint on what resource versions a request may be served from.",
            ),
            q(
                "resourceVersionMatch",
                "string",
                "resourceVersionMatch determines how resourceVersion is applied to list calls.",
            ),
            q(
                "timeoutSeconds",
                "integer",
                "Timeout for the list/watch call.",
            ),
        ]
    };
    let delete = || {
        vec![
            dry_run.clone(),
            q(
                "gracePeriodSeconds",
                "integer",
                "The duration in seconds before the object should be deleted.",
            ),
            q(
                "propagationPolicy",
                "string",
                "Whether and how garbage collection will be performed.",
            ),
        ]
    };
    match action {
        "list" => {
            let mut v = list();
            v.push(q("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."));
            v.push(q(
                "allowWatchBookmarks",
                "boolean",
                "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
            ));
            v.push(q(
                "sendInitialEvents",
                "boolean",
                "`sendInitialEvents=true` may be set together with `watch=true`.",
            ));
            v
        }
        "post" | "put" => vec![dry_run, field_manager, field_validation],
        "patch" => vec![
            dry_run,
            field_manager,
            field_validation,
            q(
                "force",
                "boolean",
                "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
            ),
        ],
        "delete" => delete(),
        "deletecollection" => {
            let mut v = delete();
            v.extend(list());
            v
        }
        _ => Vec::new(),
    }
}

/// One operation object.
struct Op<'a> {
    action: &'a str,
    id: String,
    description: String,
    gvk: Value,
    request: Option<Value>,
    response: Value,
}

impl Op<'_> {
    fn render(self, tag: &str) -> Value {
        let ok = json!({
            "description": "OK",
            "content": { "application/json": { "schema": self.response } },
        });
        let code = if self.action == "post" { "201" } else { "200" };
        let mut op = json!({
            "tags": [tag],
            "description": self.description,
            "operationId": self.id,
            "responses": { code: ok, "401": { "description": "Unauthorized" } },
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        let params = query_params(self.action);
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        match (self.action, self.request) {
            ("patch", _) => {
                let content: Map<String, Value> = PATCH_CONTENT_TYPES
                    .iter()
                    .map(|t| {
                        (
                            t.to_string(),
                            json!({ "schema": schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch") }),
                        )
                    })
                    .collect();
                op["requestBody"] = json!({ "content": content, "required": true });
            }
            (_, Some(schema)) => {
                op["requestBody"] = json!({
                    "content": { "application/json": { "schema": schema } },
                    "required": true,
                });
            }
            _ => {}
        }
        op
    }
}

/// The schema name prefix of meta/v1 types.
const META_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// A schema generator holding the meta/v1 types every group-version
/// document refers to (Status, DeleteOptions, ListMeta).
fn meta_generator() -> schemars::SchemaGenerator {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::ListMeta>();
    generator
}

/// The generated schemas, with meta/v1 `Patch` (the PATCH body) added.
fn take_schemas(mut generator: schemars::SchemaGenerator) -> Map<String, Value> {
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        format!("{META_V1}.Patch"),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    schemas
}

/// The OpenAPI 3.0 document of one served group-version (pure).
pub fn group_version_document(group: &str, version: &str) -> Value {
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    let mut generator = meta_generator();
    let meta_v1 = META_V1;
    let scale = typed::of("autoscaling", "v1", "Scale").expect("Scale is typed");
    let binding = typed::of("", "v1", "Binding").expect("Binding is typed");
    let mut kinds = Vec::new();
    for d in &defs {
        let Some(t) = typed::of(d.group, d.version, d.kind) else {
            continue;
        };
        (t.schema)(&mut generator);
        kinds.push((*d, (t.schema_name)().into_owned()));
    }
    // The review kinds: a schema and a create operation each.
    let mut reviews = Vec::new();
    for r in registry::REVIEWS
        .iter()
        .filter(|r| r.0 == group && r.1 == version)
    {
        if let Some(t) = typed::of(r.0, r.1, r.3) {
            (t.schema)(&mut generator);
            reviews.push((r, (t.schema_name)().into_owned()));
        }
    }
    if defs.iter().any(|d| d.scale.is_some()) {
        (scale.schema)(&mut generator);
    }
    if defs.iter().any(|d| d.binding) {
        (binding.schema)(&mut generator);
    }
    let mut schemas = take_schemas(generator);
    let set_gvk = |schemas: &mut Map<String, Value>, name: &str, gvks: Value| {
        if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            s.insert("x-kubernetes-group-version-kind".into(), gvks);
        }
    };
    set_gvk(
        &mut schemas,
        &format!("{meta_v1}.Status"),
        json!([gvk("", "v1", "Status")]),
    );
    set_gvk(
        &mut schemas,
        &format!("{meta_v1}.DeleteOptions"),
        json!([gvk(group, version, "DeleteOptions")]),
    );
    set_gvk(
        &mut schemas,
        &(scale.schema_name)(),
        json!([gvk("autoscaling", "v1", "Scale")]),
    );
    set_gvk(
        &mut schemas,
        &(binding.schema_name)(),
        json!([gvk("", "v1", "Binding")]),
    );
    for (d, name) in &kinds {
        set_gvk(&mut schemas, name, json!([gvk(d.group, d.version, d.kind)]));
        let list_kind = format!("{}List", d.kind);
        schemas.insert(
            format!("{name}List"),
            json!({
                "description": format!("{list_kind} is a list of {}.", d.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": { "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object." },
                    "kind": { "type": "string", "description": "Kind is a string value representing the REST resource this object represents." },
                    "metadata": { "allOf": [schema_ref(&format!("{meta_v1}.ListMeta"))], "description": "Standard list metadata." },
                    "items": { "type": "array", "description": format!("List of {}.", d.resource), "items": schema_ref(name) },
                },
                "x-kubernetes-group-version-kind": [gvk(d.group, d.version, &list_kind)],
            }),
        );
        for (path, strategy) in vkube_core::smp::builtin(d.group, d.kind).entries {
            annotate(&mut schemas, name, &path, strategy);
        }
    }
    let mut all_paths = paths(group, version, &kinds);
    let tag = format!("{group}_{version}");
    for ((g, v, resource, kind, namespaced, _), name) in &reviews {
        set_gvk(&mut schemas, name, json!([gvk(g, v, kind)]));
        let (path, scope, mut params) = if *namespaced {
            (
                format!("/apis/{g}/{v}/namespaces/{{namespace}}/{resource}"),
                "Namespaced",
                vec![param(
                    "namespace",
                    "path",
                    "string",
                    "object name and auth scope, such as for teams and projects",
                )],
            )
        } else {
            (format!("/apis/{g}/{v}/{resource}"), "", Vec::new())
        };
        params.push(param(
            "pretty",
            "query",
            "string",
            "If 'true', then the output is pretty printed.",
        ));
        let post = Op {
            action: "post",
            id: format!("create{}{scope}{kind}", gv_id(g, v)),
            description: format!("create a {kind}"),
            gvk: gvk(g, v, kind),
            request: Some(schema_ref(name)),
            response: schema_ref(name),
        }
        .render(&tag);
        all_paths.insert(path, json!({"post": post, "parameters": params}));
    }
    document(
        json!({"title": "Kubernetes", "version": crate::discovery::version()["gitVersion"]}),
        all_paths,
        schemas,
    )
}

/// An OpenAPI 3.0 document with bearer-token security, as kube-apiserver
/// serves each group-version's.
fn document(info: Value, paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": info,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": { "type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header" },
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// The patch media types of a custom resource: no strategic merge patch
/// (custom resources have no patch strategies; the server answers `415`).
const CUSTOM_PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The schema name of a custom kind, as kube-apiextensions-server names it:
/// the group reversed, then version and kind (`com.example.stable.v1.CronTab`).
fn custom_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The OpenAPI 3.0 document of a custom resource group-version (pure),
/// shaped as kube-apiextensions-server's (its `builder` package): each
/// kind's schema is its CRD version's `openAPIV3Schema` with `apiVersion`,
/// `kind` and `metadata` (ObjectMeta) filled in, the kind's `…List`, and
/// the same paths as a built-in kind's, PATCH without the strategic type.
pub fn custom_group_version_document(
    group: &str,
    version: &str,
    custom: &crate::crd::CustomTable,
) -> Value {
    let mut generator = meta_generator();
    let meta_v1 = META_V1;
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    let rows: Vec<_> = custom.of(group, version).collect();
    if rows.iter().any(|c| c.def.scale.is_some()) {
        let scale = typed::of("autoscaling", "v1", "Scale").expect("Scale is typed");
        (scale.schema)(&mut generator);
    }
    let mut schemas = take_schemas(generator);
    let type_meta = json!({
        "apiVersion": { "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources" },
        "kind": { "type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds" },
    });
    let mut kinds = Vec::new();
    for c in &rows {
        let d = &c.def;
        let name = custom_schema_name(d.group, d.version, d.kind);
        let mut schema = c.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(s) = schema.as_object_mut() {
            let props = s.entry("properties").or_insert_with(|| json!({}));
            if let Some(props) = props.as_object_mut() {
                for (k, v) in type_meta.as_object().into_iter().flatten() {
                    props.insert(k.clone(), v.clone());
                }
                props.insert(
                    "metadata".into(),
                    json!({ "allOf": [schema_ref(&format!("{meta_v1}.ObjectMeta"))], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata" }),
                );
            }
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(d.group, d.version, d.kind)]),
            );
        }
        schemas.insert(name.clone(), schema);
        let list_kind = c.list_kind.clone();
        schemas.insert(
            format!("{name}List"),
            json!({
                "description": format!("{list_kind} is a list of {}", d.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": type_meta["apiVersion"],
                    "kind": type_meta["kind"],
                    "metadata": { "allOf": [schema_ref(&format!("{meta_v1}.ListMeta"))], "description": "Standard list metadata." },
                    "items": { "type": "array", "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", d.resource), "items": schema_ref(&name) },
                },
                "x-kubernetes-group-version-kind": [gvk(d.group, d.version, &list_kind)],
            }),
        );
        kinds.push((d, name));
    }
    let mut all_paths = paths(group, version, &kinds);
    for ops in all_paths.values_mut() {
        if let Some(content) = ops
            .pointer_mut("/patch/requestBody/content")
            .and_then(Value::as_object_mut)
        {
            content.retain(|t, _| CUSTOM_PATCH_CONTENT_TYPES.contains(&t.as_str()));
        }
    }
    // kube-apiextensions-server's title and version for CRD documents.
    document(
        json!({"title": "Kubernetes CRD Swagger", "version": "v0.1.0"}),
        all_paths,
        schemas,
    )
}

/// The path and hash of every custom resource group-version document in
/// `custom`, with an empty `body`: the documents (tens of KiB each, mostly
/// ObjectMeta's schema) are built again when asked for, so the server
/// holds only their hashes for the root listing.
pub fn custom_documents(custom: &crate::crd::CustomTable) -> Vec<GroupVersionDoc> {
    let mut out = Vec::new();
    for (group, versions) in custom.groups() {
        for version in versions {
            let body = custom_document_body(group, version, custom);
            out.push(GroupVersionDoc {
                path: format!("apis/{group}/{version}"),
                hash: hash(&body),
                body: Bytes::new(),
            });
        }
    }
    out
}

fn custom_document_body(group: &str, version: &str, custom: &crate::crd::CustomTable) -> Bytes {
    let doc = custom_group_version_document(group, version, custom);
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

fn paths(group: &str, version: &str, kinds: &[(&ResourceDef, String)]) -> Map<String, Value> {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let tag = format!(
        "{}_{version}",
        if group.is_empty() { "core" } else { group }
    );
    let gv = gv_id(group, version);
    let name_param = param("name", "path", "string", "name of the resource");
    let ns_param = param(
        "namespace",
        "path",
        "string",
        "object name and auth scope, such as for teams and projects",
    );
    let pretty = param(
        "pretty",
        "query",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let mut out = Map::new();
    for (d, schema) in kinds {
        let kind_gvk = gvk(d.group, d.version, d.kind);
        let kind_ref = schema_ref(schema);
        let list_ref = schema_ref(&format!("{schema}List"));
        let status_ref = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
        let scope = if d.namespaced { "Namespaced" } else { "" };
        let base = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", d.resource)
        } else {
            format!("{prefix}/{}", d.resource)
        };
        let scope_params = if d.namespaced {
            vec![ns_param.clone(), pretty.clone()]
        } else {
            vec![pretty.clone()]
        };
        let op = |action: &str,
                  verb: &str,
                  sub: &str,
                  what: &str,
                  request: Option<Value>,
                  response: Value,
                  g: &Value| {
            Op {
                action,
                id: format!("{verb}{gv}{scope}{}{}", d.kind, camel(sub)),
                description: what.to_string(),
                gvk: g.clone(),
                request,
                response,
            }
            .render(&tag)
        };
        let mut collection = json!({
            "get": op("list", "list", "", &format!("list or watch objects of kind {}", d.kind), None, list_ref.clone(), &kind_gvk),
            "post": op("post", "create", "", &format!("create a {}", d.kind), Some(kind_ref.clone()), kind_ref.clone(), &kind_gvk),
            "delete": op("deletecollection", "deleteCollection", "", &format!("delete collection of {}", d.kind), None, status_ref.clone(), &kind_gvk),
        });
        collection["parameters"] = Value::Array(scope_params.clone());
        out.insert(base.clone(), collection);
        let mut item_params = vec![name_param.clone()];
        item_params.extend(scope_params.iter().cloned());
        let mut item = json!({
            "get": op("get", "read", "", &format!("read the specified {}", d.kind), None, kind_ref.clone(), &kind_gvk),
            "put": op("put", "replace", "", &format!("replace the specified {}", d.kind), Some(kind_ref.clone()), kind_ref.clone(), &kind_gvk),
            "patch": op("patch", "patch", "", &format!("partially update the specified {}", d.kind), None, kind_ref.clone(), &kind_gvk),
            "delete": op("delete", "delete", "", &format!("delete a {}", d.kind), None, status_ref.clone(), &kind_gvk),
        });
        item["parameters"] = Value::Array(item_params.clone());
        out.insert(format!("{base}/{{name}}"), item);
        if !d.delete_collection
            && let Some(ops) = out.get_mut(&base).and_then(Value::as_object_mut)
        {
            ops.remove("delete");
        }
        if d.computed.is_some() {
            // Computed kinds are read only.
            for path in [base.clone(), format!("{base}/{{name}}")] {
                if let Some(ops) = out.get_mut(&path).and_then(Value::as_object_mut) {
                    ops.retain(|k, _| k == "get" || k == "parameters");
                }
            }
        }
        if d.namespaced {
            let mut all = json!({
                "get": Op {
                    action: "list",
                    id: format!("list{gv}{}ForAllNamespaces", d.kind),
                    description: format!("list or watch objects of kind {}", d.kind),
                    gvk: kind_gvk.clone(),
                    request: None,
                    response: list_ref.clone(),
                }
                .render(&tag),
            });
            all["parameters"] = json!([pretty.clone()]);
            out.insert(format!("{prefix}/{}", d.resource), all);
        }
        for sub in d.subresources() {
            let mut ops = Map::new();
            match sub {
                "status" | "scale" => {
                    let (g, r) = if sub == "scale" {
                        (
                            gvk("autoscaling", "v1", "Scale"),
                            schema_ref("io.k8s.api.autoscaling.v1.Scale"),
                        )
                    } else {
                        (kind_gvk.clone(), kind_ref.clone())
                    };
                    ops.insert(
                        "get".into(),
                        op(
                            "get",
                            "read",
                            sub,
                            &format!("read {sub} of the specified {}", d.kind),
                            None,
                            r.clone(),
                            &g,
                        ),
                    );
                    ops.insert(
                        "put".into(),
                        op(
                            "put",
                            "replace",
                            sub,
                            &format!("replace {sub} of the specified {}", d.kind),
                            Some(r.clone()),
                            r.clone(),
                            &g,
                        ),
                    );
                    ops.insert(
                        "patch".into(),
                        op(
                            "patch",
                            "patch",
                            sub,
                            &format!("partially update {sub} of the specified {}", d.kind),
                            None,
                            r,
                            &g,
                        ),
                    );
                }
                "binding" => {
                    let r = schema_ref("io.k8s.api.core.v1.Binding");
                    ops.insert(
                        "post".into(),
                        op(
                            "post",
                            "create",
                            sub,
                            &format!("create binding of a {}", d.kind),
                            Some(r.clone()),
                            r,
                            &gvk("", "v1", "Binding"),
                        ),
                    );
                }
                "finalize" => {
                    ops.insert(
                        "put".into(),
                        op(
                            "put",
                            "replace",
                            sub,
                            &format!("replace finalize of the specified {}", d.kind),
                            Some(kind_ref.clone()),
                            kind_ref.clone(),
                            &kind_gvk,
                        ),
                    );
                }
                _ => continue,
            }
            ops.insert("parameters".into(), Value::Array(item_params.clone()));
            out.insert(format!("{base}/{{name}}/{sub}"), Value::Object(ops));
        }
    }
    out
}

/// Serves `GET /openapi/v3` and `GET /openapi/v3/{gv path}` (`rest` is the
/// path after `/openapi/v3`). `If-None-Match` with the current `ETag` is
/// `304`; a request whose `hash` matches the document is cacheable forever
/// (`Cache-Control: public, immutable`), others `no-cache, private`, as
/// kube-openapi's handler3 answers. Unknown group-versions are `404`.
pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    rest: &[&str],
    custom: &crate::crd::CustomTable,
) -> ApiResult<Response> {
    if method != Method::GET {
        return Err(ApiError::no_route());
    }
    let docs = match DOCUMENTS.get() {
        Some(d) => d,
        None => tokio::task::spawn_blocking(documents)
            .await
            .map_err(ApiError::internal)?,
    };
    let custom_docs = custom.openapi_documents();
    // Whether the client already holds the document of `hash`
    // (If-None-Match with its ETag), which is then answered `304`.
    let held = |hash: &str| {
        let etag = format!("\"{hash}\"");
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    };
    let root;
    let (body, hash) = if rest.is_empty() && custom_docs.is_empty() {
        (docs.root.clone(), docs.root_hash.as_str())
    } else if rest.is_empty() {
        // The built-in root with the custom group-versions added.
        let mut paths: Map<String, Value> = serde_json::from_slice::<Value>(&docs.root)
            .ok()
            .and_then(|r| r.get("paths").and_then(Value::as_object).cloned())
            .unwrap_or_default();
        for d in custom_docs {
            paths.entry(d.path.clone()).or_insert_with(|| {
                json!({ "serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path, d.hash) })
            });
        }
        let body = Bytes::from(serde_json::to_vec(&json!({ "paths": paths })).unwrap_or_default());
        root = hash(&body);
        (body, root.as_str())
    } else {
        let path = rest.join("/");
        match (
            docs.group_versions.iter().find(|d| d.path == path),
            custom_docs.iter().find(|d| d.path == path),
            rest,
        ) {
            (Some(doc), _, _) => (doc.body.clone(), doc.hash.as_str()),
            // Built only when the client does not hold it already.
            (None, Some(doc), ["apis", group, version]) => {
                let body = if held(&doc.hash) {
                    Bytes::new()
                } else {
                    custom_document_body(group, version, custom)
                };
                (body, doc.hash.as_str())
            }
            _ => return Err(ApiError::no_route()),
        }
    };
    let etag = format!("\"{hash}\"");
    let requested_hash = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.into_owned());
    let cache_control = if requested_hash.as_deref() == Some(hash) {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = if held(hash) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_follow_kube_apiserver() {
        assert_eq!(gv_id("", "v1"), "CoreV1");
        assert_eq!(gv_id("apps", "v1"), "AppsV1");
        assert_eq!(
            gv_id("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
    }

    #[test]
    fn core_document_has_kinds_paths_and_patch_metadata() {
        let doc = group_version_document("", "v1");
        let schemas = &doc["components"]["schemas"];
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert_eq!(
            ref_name(&pod["properties"]["spec"]),
            Some("io.k8s.api.core.v1.PodSpec")
        );
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        let finalizers =
            &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
        assert!(
            doc["paths"]
                .get("/api/v1/namespaces/{namespace}/pods/{name}/status")
                .is_some()
        );
        assert!(
            doc["paths"]
                .get("/api/v1/namespaces/{name}/finalize")
                .is_some()
        );
        // Every `$ref` resolves inside the document.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let name = r.split('"').next().unwrap().trim_start_matches(SCHEMAS);
            assert!(schemas.get(name).is_some(), "dangling ref {name}");
        }
    }

    #[test]
    fn deployment_strategy_retains_keys() {
        let doc = group_version_document("apps", "v1");
        let strategy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
            ["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        let scale =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    }

    #[test]
    fn root_lists_every_group_version_with_its_hash() {
        let docs = documents();
        let root: Value = serde_json::from_slice(&docs.root).unwrap();
        let n: usize = registry::groups().iter().map(|(_, v)| v.len()).sum();
        assert_eq!(root["paths"].as_object().unwrap().len(), n);
        for d in &docs.group_versions {
            assert_eq!(
                root["paths"][&d.path]["serverRelativeURL"],
                format!("/openapi/v3/{}?hash={}", d.path, d.hash)
            );
        }
    }
}
