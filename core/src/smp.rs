//! Strategic merge patch (`application/strategic-merge-patch+json`), applied
//! the way kube-apiserver applies it: `k8s.io/apimachinery/pkg/util/strategicpatch`
//! (`StrategicMergeMapPatch` → `mergeMap`/`mergeSlice`, patch.go) with the
//! directive set described in the community doc
//! `contributors/devel/sig-api-machinery/strategic-merge-patch.md`.
//!
//! Upstream reads how each field merges from Go struct tags
//! (`patchStrategy:"merge" patchMergeKey:"name"`). Here that knowledge is
//! data: a [`Schema`] maps a field path (JSON keys from the object root, list
//! items written `[]`, e.g. `spec.containers[].env`) to a [`ListStrategy`].
//! [`builtin`] returns the table for the built-in kinds; every other list is
//! replaced atomically and every other map is merged key by key.
//!
//! Supported directives (all are removed from the result):
//!
//! - `$patch: replace` in a map (take the map literally) or as a list item
//!   (replace the whole merging list with the other items);
//! - `$patch: delete` in a map (the map becomes `{}`, as upstream's
//!   `handleDirectiveInMergeMap`) or as a list item carrying the merge key
//!   (every item with that key value is removed);
//! - `$retainKeys: [..]` (keys of the original map not listed are cleared);
//! - `$deleteFromPrimitiveList/<field>: [..]` (remove values from a merging
//!   list of primitives);
//! - `$setElementOrder/<field>: [..]` (final order of a list, for merge-key
//!   lists and primitive lists).
//!
//! `$patch: merge` is rejected as upstream rejects it: in a map with
//! `unknown patch type: merge in map: ...`, in a list with `merging lists
//! cannot yet be specified in the patch` (the doc: "`merge` directive is used
//! only in the go struct tags").
//!
//! Ordering of merged lists follows upstream's `normalizeElementOrder`: items
//! named by the patch keep the patch's order, items only in the original keep
//! theirs, and an original-only item is placed before a patch item only when
//! it preceded that item in the original. In particular an item that is new
//! to the list lands *before* the existing ones unless the patch carries a
//! `$setElementOrder` list (kubectl always sends one).
//!
//! Error texts are upstream's (`mergepatch/errors.go` and patch.go), e.g.
//! `map: map[image:x] does not contain declared merge key: name`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

const GO_SLICE: &str = "[]interface {}";
const GO_MAP: &str = "map[string]interface {}";

/// How a field is patched: the `patchStrategy` struct tag of upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// `patchStrategy:"merge"`: lists of maps merge item by item on the merge
    /// key, lists of primitives merge as ordered sets.
    Merge,
    /// `patchStrategy:"replace"` (and the default for lists): the patch value
    /// replaces the original value.
    Replace,
    /// `patchStrategy:"retainKeys"` on a map (e.g. Deployment
    /// `spec.strategy`). On apply it merges like any map; upstream uses the tag
    /// only when *computing* patches, and honours a `$retainKeys` directive
    /// wherever it appears.
    RetainKeys,
    /// `patchStrategy:"merge,retainKeys"` on a list (e.g. PodSpec `volumes`):
    /// merges like [`Strategy::Merge`]; items carry their own `$retainKeys`.
    MergeRetainKeys,
}

impl Strategy {
    /// Whether lists with this strategy merge (rather than being replaced).
    pub fn merges(self) -> bool {
        matches!(self, Strategy::Merge | Strategy::MergeRetainKeys)
    }
}

/// Patch metadata of one field: upstream's `patchMergeKey` and
/// `patchStrategy` tags.
///
/// For a list of maps with a merging strategy `merge_key` names the key that
/// identifies items; for a list of primitives with [`Strategy::Merge`] it is
/// `None` (set semantics). For map fields only `strategy` matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListStrategy {
    /// The `patchMergeKey` tag, e.g. `Some("name")` for containers.
    pub merge_key: Option<&'static str>,
    /// The `patchStrategy` tag.
    pub strategy: Strategy,
}

impl ListStrategy {
    /// A list of maps merged on `key` (`patchStrategy:"merge" patchMergeKey:key`).
    pub const fn merge(key: &'static str) -> Self {
        ListStrategy {
            merge_key: Some(key),
            strategy: Strategy::Merge,
        }
    }

    /// A list of maps merged on `key` whose items may clear sibling keys with
    /// `$retainKeys` (`patchStrategy:"merge,retainKeys" patchMergeKey:key`).
    pub const fn merge_retain_keys(key: &'static str) -> Self {
        ListStrategy {
            merge_key: Some(key),
            strategy: Strategy::MergeRetainKeys,
        }
    }

    /// A list of primitives merged as an ordered set (`patchStrategy:"merge"`
    /// without a merge key, e.g. `metadata.finalizers`).
    pub const fn set() -> Self {
        ListStrategy {
            merge_key: None,
            strategy: Strategy::Merge,
        }
    }

    /// A map tagged `patchStrategy:"retainKeys"`.
    pub const fn retain_keys() -> Self {
        ListStrategy {
            merge_key: None,
            strategy: Strategy::RetainKeys,
        }
    }

    /// A field replaced as a whole (`patchStrategy:"replace"`); for lists this
    /// is also what an absent entry means.
    pub const fn replace() -> Self {
        ListStrategy {
            merge_key: None,
            strategy: Strategy::Replace,
        }
    }
}

/// Per-path patch metadata for one kind, standing in for upstream's Go struct
/// tags (`LookupPatchMetadata`).
///
/// Keys of [`Schema::entries`] are field paths from the object root: JSON
/// keys joined with `.`, with `[]` appended to a list field to address its
/// items, e.g. `spec.template.spec.containers[].ports`. Lists without an
/// entry (or with a non-merging strategy) are replaced atomically; maps
/// without an entry are merged recursively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Field path → patch metadata.
    pub entries: BTreeMap<String, ListStrategy>,
}

impl Schema {
    /// An empty schema: every list is atomic, every map merges.
    pub fn new() -> Self {
        Schema::default()
    }

    /// Adds (or overwrites) the entry for `path`; returns `self` for chaining.
    pub fn with(mut self, path: impl Into<String>, strategy: ListStrategy) -> Self {
        self.insert(path, strategy);
        self
    }

    /// Adds (or overwrites) the entry for `path`.
    pub fn insert(&mut self, path: impl Into<String>, strategy: ListStrategy) {
        self.entries.insert(path.into(), strategy);
    }

    /// The entry for `path`, if any.
    pub fn get(&self, path: &str) -> Option<ListStrategy> {
        self.entries.get(path).copied()
    }
}

/// The patch metadata of a built-in kind (`group` is `""` for the core
/// group, e.g. `("apps", "Deployment")`), taken from the struct tags of
/// `k8s.io/api` and `k8s.io/apimachinery` (`ObjectMeta`).
///
/// Every kind gets `metadata.ownerReferences` (merge key `uid`) and
/// `metadata.finalizers` (set). Kinds carrying a PodSpec get the PodSpec
/// table at `spec` (Pod), `template.spec` (PodTemplate), `spec.template.spec`
/// (ReplicationController, Deployment, ReplicaSet, StatefulSet, DaemonSet,
/// Job) or `spec.jobTemplate.spec.template.spec` (CronJob), plus the
/// template's `metadata` lists. Status `conditions` merge on `type` for Pod,
/// Node, Namespace, PersistentVolumeClaim, ReplicationController,
/// Deployment, ReplicaSet, StatefulSet, DaemonSet and Job.
///
/// Verified against upstream tags (core/v1 types.go, apps/v1, batch/v1):
/// PodSpec `volumes` (name, merge+retainKeys), `initContainers`,
/// `containers`, `ephemeralContainers` (name), `imagePullSecrets` (name),
/// `hostAliases` (ip), `topologySpreadConstraints` (topologyKey),
/// `schedulingGates` (name), `resourceClaims` (name, merge+retainKeys);
/// Container/EphemeralContainer `ports` (containerPort), `env` (name),
/// `volumeMounts` (mountPath), `volumeDevices` (devicePath); PodStatus
/// `conditions` (type), `podIPs`/`hostIPs` (ip), `resourceClaimStatuses`
/// (name, merge+retainKeys); ServiceSpec `ports` (port); NodeStatus
/// `conditions`/`addresses` (type); ServiceAccount `secrets` (name);
/// DeploymentSpec `strategy` (retainKeys).
///
/// Atomic upstream (no patch tags, so deliberately absent): PodSpec
/// `tolerations`, `readinessGates`; Container `resizePolicy`, `envFrom`,
/// `command`, `args`, `resources.claims`; NodeSpec `taints`; Endpoints
/// `subsets`; ServiceAccount `imagePullSecrets`.
///
/// Unknown `(group, kind)` pairs (including custom resources, for which
/// kube-apiserver refuses strategic merge patch) get only the metadata
/// entries.
pub fn builtin(group: &str, kind: &str) -> Schema {
    let mut s = Schema::new();
    add_object_meta(&mut s, "metadata");
    match (group, kind) {
        ("", "Pod") => {
            add_pod_spec(&mut s, "spec");
            add_conditions(&mut s, "status");
            s.insert("status.podIPs", ListStrategy::merge("ip"));
            s.insert("status.hostIPs", ListStrategy::merge("ip"));
            s.insert(
                "status.resourceClaimStatuses",
                ListStrategy::merge_retain_keys("name"),
            );
        }
        ("", "PodTemplate") => add_pod_template(&mut s, "template"),
        ("", "ReplicationController") => {
            add_pod_template(&mut s, "spec.template");
            add_conditions(&mut s, "status");
        }
        ("apps", "Deployment") => {
            add_pod_template(&mut s, "spec.template");
            s.insert("spec.strategy", ListStrategy::retain_keys());
            add_conditions(&mut s, "status");
        }
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            add_pod_template(&mut s, "spec.template");
            add_conditions(&mut s, "status");
        }
        ("batch", "CronJob") => {
            add_object_meta(&mut s, "spec.jobTemplate.metadata");
            add_pod_template(&mut s, "spec.jobTemplate.spec.template");
        }
        ("", "Service") => s.insert("spec.ports", ListStrategy::merge("port")),
        ("", "Node") => {
            add_conditions(&mut s, "status");
            s.insert("status.addresses", ListStrategy::merge("type"));
        }
        ("", "Namespace" | "PersistentVolumeClaim") => add_conditions(&mut s, "status"),
        ("", "ServiceAccount") => s.insert("secrets", ListStrategy::merge("name")),
        _ => {}
    }
    s
}

/// `metav1.ObjectMeta`: `ownerReferences` merge on `uid`, `finalizers` merge
/// as a set.
fn add_object_meta(s: &mut Schema, prefix: &str) {
    s.insert(
        format!("{prefix}.ownerReferences"),
        ListStrategy::merge("uid"),
    );
    s.insert(format!("{prefix}.finalizers"), ListStrategy::set());
}

fn add_conditions(s: &mut Schema, status: &str) {
    s.insert(format!("{status}.conditions"), ListStrategy::merge("type"));
}

/// `PodTemplateSpec` at `prefix`.
fn add_pod_template(s: &mut Schema, prefix: &str) {
    add_object_meta(s, &format!("{prefix}.metadata"));
    add_pod_spec(s, &format!("{prefix}.spec"));
}

/// `v1.PodSpec` at `prefix`.
fn add_pod_spec(s: &mut Schema, prefix: &str) {
    s.insert(
        format!("{prefix}.volumes"),
        ListStrategy::merge_retain_keys("name"),
    );
    for containers in ["containers", "initContainers", "ephemeralContainers"] {
        let list = format!("{prefix}.{containers}");
        s.insert(list.clone(), ListStrategy::merge("name"));
        // Container and EphemeralContainerCommon carry identical tags.
        // `resizePolicy` is `+listType=atomic` without patch tags.
        s.insert(
            format!("{list}[].ports"),
            ListStrategy::merge("containerPort"),
        );
        s.insert(format!("{list}[].env"), ListStrategy::merge("name"));
        s.insert(
            format!("{list}[].volumeMounts"),
            ListStrategy::merge("mountPath"),
        );
        s.insert(
            format!("{list}[].volumeDevices"),
            ListStrategy::merge("devicePath"),
        );
    }
    s.insert(
        format!("{prefix}.imagePullSecrets"),
        ListStrategy::merge("name"),
    );
    s.insert(format!("{prefix}.hostAliases"), ListStrategy::merge("ip"));
    s.insert(
        format!("{prefix}.topologySpreadConstraints"),
        ListStrategy::merge("topologyKey"),
    );
    s.insert(
        format!("{prefix}.schedulingGates"),
        ListStrategy::merge("name"),
    );
    s.insert(
        format!("{prefix}.resourceClaims"),
        ListStrategy::merge_retain_keys("name"),
    );
}

/// A malformed strategic merge patch. [`std::fmt::Display`] gives
/// upstream's message (`mergepatch/errors.go`, strategicpatch/patch.go), with
/// Go's `%v` rendering of JSON values (`map[k:v ...]`, `[a b]`, `<nil>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The original or the patch is not a JSON object (`ErrBadJSONDoc`).
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// `$patch` with a value other than `replace`/`delete` in a map, or other
    /// than `replace`/`delete`/`merge` in a list item (`ErrBadPatchType`).
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchType {
        /// The directive value as Go's `%s` prints it.
        directive: String,
        /// The map holding the directive, as Go's `%v` prints it.
        map: String,
    },
    /// A list item (original, patch or `$setElementOrder`) lacks the merge
    /// key (`ErrNoMergeKey`).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The offending item, as Go's `%v` prints it.
        map: String,
        /// The declared merge key.
        key: String,
    },
    /// A value has the wrong JSON type (`ErrBadArgType`), e.g. a
    /// `$setElementOrder` value that is not a list.
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        /// Go type expected (`[]interface {}` or `map[string]interface {}`).
        expected: &'static str,
        /// Go type received (`string`, `int64`, `float64`, ...).
        actual: String,
    },
    /// `$retainKeys` is not a list, or the patch sets a key it does not list
    /// (`ErrBadPatchFormatForRetainKeys`).
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A `$deleteFromPrimitiveList` key not of the form
    /// `$deleteFromPrimitiveList/<field>` (`ErrBadPatchFormatForPrimitiveList`).
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A `$setElementOrder` key not of the form `$setElementOrder/<field>`
    /// (`ErrBadPatchFormatForSetElementOrderList`).
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrderList,
    /// The patch list names items missing from, or ordered differently than
    /// in, its `$setElementOrder` list (`validatePatchWithSetOrderList`).
    #[error("the order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}")]
    SetElementOrderMismatch {
        /// The patch list, as Go's `%v` prints it.
        patch: String,
        /// The `$setElementOrder` list, as Go's `%v` prints it.
        order: String,
    },
    /// A list item `$patch: merge` (`mergeSliceWithSpecialElements`).
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A merging list declared without merge key holds maps (`mergeSlice`).
    #[error("cannot merge lists without merge key for type {kind}")]
    NoMergeKeyForList {
        /// Go kind of the items (`struct` for built-in types).
        kind: String,
    },
    /// A merging list contains lists (`ErrNoListOfLists`).
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// Items of a merging list (original and patch together) have different
    /// JSON types (`sliceElementType`).
    #[error("list element types are not identical: {lists}")]
    MixedElementTypes {
        /// The lists involved, as Go's `%v` prints `[][]interface{}`.
        lists: String,
    },
    /// An original item of a merge-key list is not a map
    /// (`findMapInSliceBasedOnKeyValue`).
    #[error("value for key {index} is not a map.")]
    NotAMap {
        /// Index of the item.
        index: usize,
    },
}

/// Applies a strategic merge `patch` to `original` using `schema` for list
/// semantics, like kube-apiserver's `strategicpatch.StrategicMergeMapPatch`.
///
/// Both arguments must be JSON objects (`null` counts as `{}`); otherwise
/// [`SmpError::BadJsonDoc`]. Semantics, per key of the patch:
///
/// - `null` removes the key;
/// - a key absent from the original (or holding a value of another JSON
///   type) takes the patch value with `null` members dropped and directives
///   removed (a map carrying `$patch` is dropped entirely), as upstream's
///   `removeDirectives`/`discardNullValuesFromPatch`;
/// - maps merge recursively (or are replaced when the schema says
///   [`Strategy::Replace`]);
/// - lists merge per the schema entry at their path, otherwise the patch list
///   replaces the original;
/// - scalars are replaced.
///
/// Directives are described in the [module docs](self). Upstream quirks kept
/// on purpose: `$patch: delete` in a map yields `{}` (not a removed key;
/// send `null` for that); `$deleteFromPrimitiveList/<f>` against a
/// non-merging list replaces that list with the deletion list; new items of a
/// merging list are placed first unless `$setElementOrder` says otherwise.
/// Deliberate differences: directives nested in values taken literally
/// (`$patch: replace` maps, replaced lists, appended items) are stripped too,
/// so the result never contains `$patch`, `$retainKeys`,
/// `$setElementOrder/*` or `$deleteFromPrimitiveList/*`; a `$setElementOrder`
/// for a list that ends up empty is accepted instead of failing with `no
/// elements in any of the given slices`; `$deleteFromPrimitiveList` entries
/// are applied after the other keys of the same map (upstream's order is
/// Go's random map order).
///
/// Errors are the [`SmpError`] variants, with upstream's texts.
pub fn apply(original: &Value, patch: &Value, schema: &Schema) -> Result<Value, SmpError> {
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(SmpError::BadJsonDoc),
    };
    let empty = Map::new();
    let patch = match patch {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(SmpError::BadJsonDoc),
    };
    merge_map(original, patch, "", schema).map(Value::Object)
}

/// Path of the field `key` of the map at `path`.
fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Upstream `mergeMap`.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    schema: &Schema,
) -> Result<Map<String, Value>, SmpError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        // handleDirectiveInMergeMap
        return match directive.as_str() {
            Some("replace") => {
                let mut p = patch.clone();
                p.remove(DIRECTIVE_MARKER);
                Ok(clean_map(&p))
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(SmpError::UnknownPatchType {
                directive: go_fmt_s(directive),
                map: go_fmt_map(patch),
            }),
        };
    }

    let mut patch = patch.clone();
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, path, schema)?;

    let mut deletions = Vec::new();
    for (key, patch_value) in patch {
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            deletions.push((key, patch_value));
            continue;
        }
        let child = child_path(path, &key);
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let merged = match (original.remove(&key), patch_value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if schema.get(&child).map(|s| s.strategy) == Some(Strategy::Replace) {
                    clean(&Value::Object(p))
                } else {
                    Some(Value::Object(merge_map(o, &p, &child, schema)?))
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_list(o, &p, &child, false, schema)?))
            }
            (_, p) => clean(&p),
        };
        if let Some(v) = merged {
            original.insert(key, v);
        }
    }

    for (key, patch_value) in deletions {
        let list_key = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?;
        if patch_value.is_null() {
            original.remove(&list_key);
            continue;
        }
        let child = child_path(path, &list_key);
        if let (Some(Value::Array(o)), Value::Array(p)) = (original.get(&list_key), &patch_value) {
            let merged = merge_list(o.clone(), p, &child, true, schema)?;
            original.insert(list_key, Value::Array(merged));
        }
    }
    Ok(original)
}

/// Upstream `extractKey`: `<prefix>/<field>` → `<field>`.
fn extract_key(key: &str, prefix: &str) -> Result<String, SmpError> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_owned()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX => Err(SmpError::BadPrimitiveList),
        _ => Err(SmpError::BadSetElementOrderList),
    }
}

/// Upstream `applyRetainKeysDirective` (server side, `MergeParallelList`).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadRetainKeys);
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(SmpError::BadRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Upstream `mergePatchIntoOriginal`: merges every list named by a
/// `$setElementOrder/<field>` directive together with its patch list, then
/// imposes the directive's order. Processed lists are removed from `patch`.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
    schema: &Schema,
) -> Result<(), SmpError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type(GO_SLICE, &order));
        };
        let list_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type(GO_SLICE, other)),
        };
        let patch_list = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type(GO_SLICE, other)),
        };
        let child = child_path(path, &list_key);
        let merge_key = schema.get(&child).and_then(|s| s.merge_key);
        validate_patch_with_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;

        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => clean_list(p),
            (Some(o), Some(p)) => merge_list(o.clone(), p, &child, false, schema)?,
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition(merged, &order, merge_key)?;
        let server_order = original_list.unwrap_or_default();
        let both =
            normalize_element_order(patch_items, server_only, &order, &server_order, merge_key)?;
        original.insert(list_key.clone(), Value::Array(both));
        patch.remove(&list_key);
    }
    Ok(())
}

/// Upstream `validatePatchWithSetOrderList`: the patch's (non-deleting) items
/// must appear in the order list, in the same relative order.
fn validate_patch_with_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), SmpError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut non_delete = Vec::with_capacity(patch_list.len());
    if merge_key.is_some() {
        for item in patch_list {
            let Value::Object(m) = item else {
                return Err(bad_arg_type(GO_MAP, item));
            };
            if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete") {
                non_delete.push(item);
            }
        }
    } else {
        non_delete.extend(patch_list);
    }
    let (mut p, mut o) = (0, 0);
    while p < non_delete.len() && o < order.len() {
        if non_delete[p]
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            p += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < non_delete.len() && o >= order.len() {
        return Err(SmpError::SetElementOrderMismatch {
            patch: go_fmt_list(patch_list),
            order: go_fmt_list(order),
        });
    }
    Ok(())
}

/// Upstream `mergeKeyValueEqual`.
fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
) -> Result<bool, SmpError> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let l = merge_key_value(left, key)?;
    let r = merge_key_value(right, key)?;
    Ok(l == r)
}

/// The merge key value of a list item, which must be a map holding it.
fn merge_key_value<'a>(item: &'a Value, key: &str) -> Result<&'a Value, SmpError> {
    let Value::Object(m) = item else {
        return Err(bad_arg_type(GO_MAP, item));
    };
    m.get(key).ok_or_else(|| SmpError::NoMergeKey {
        map: go_fmt(item),
        key: key.to_owned(),
    })
}

/// Upstream `mergeSliceHandler` + `mergeSlice`. `is_delete_list` marks a
/// `$deleteFromPrimitiveList` list.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    path: &str,
    is_delete_list: bool,
    schema: &Schema,
) -> Result<Vec<Value>, SmpError> {
    let Some(strategy) = schema.get(path).filter(|s| s.strategy.merges()) else {
        return Ok(clean_list(patch));
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let holds_maps = element_type_is_map(&original, patch)?;
    if !holds_maps {
        if is_delete_list {
            // deleteFromSlice
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (patch_items, server_only) = partition(merged, patch, None)?;
        return normalize_element_order(patch_items, server_only, patch, &original, None);
    }

    let Some(key) = strategy.merge_key else {
        return Err(SmpError::NoMergeKeyForList {
            kind: "struct".to_owned(),
        });
    };
    let (original, patch) = merge_special_elements(original, patch, key)?;
    let item_path = format!("{path}[]");
    let merged = merge_without_special_elements(original.clone(), &patch, key, &item_path, schema)?;
    let (patch_items, server_only) = partition(merged, &patch, Some(key))?;
    normalize_element_order(patch_items, server_only, &patch, &original, Some(key))
}

/// Upstream `sliceElementType` applied to the original and patch lists:
/// whether the (uniformly typed) items are maps.
fn element_type_is_map(original: &[Value], patch: &[Value]) -> Result<bool, SmpError> {
    let mut first: Option<String> = None;
    for v in original.iter().chain(patch) {
        let t = go_type(v);
        match &first {
            None => {
                if v.is_array() {
                    return Err(SmpError::ListOfLists);
                }
                first = Some(t);
            }
            Some(f) if *f != t => {
                return Err(SmpError::MixedElementTypes {
                    lists: format!("[{} {}]", go_fmt_list(original), go_fmt_list(patch)),
                });
            }
            Some(_) => {}
        }
    }
    Ok(first.as_deref() == Some(GO_MAP))
}

/// Upstream `mergeSliceWithSpecialElements`: applies `$patch: delete` items
/// to `original` and handles `$patch: replace`. Returns the new original and
/// the patch without directive items.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut without = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = item else {
            return Err(bad_arg_type(GO_MAP, item));
        };
        let Some(directive) = m.get(DIRECTIVE_MARKER) else {
            without.push(item.clone());
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = m.get(key).ok_or_else(|| SmpError::NoMergeKey {
                    map: go_fmt(item),
                    key: key.to_owned(),
                })?;
                // deleteMatchingEntries
                for (index, o) in original.iter().enumerate() {
                    if !o.is_object() {
                        return Err(SmpError::NotAMap { index });
                    }
                }
                original.retain(|o| o.get(key) != Some(value));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(SmpError::MergeDirectiveInList),
            _ => {
                return Err(SmpError::UnknownPatchType {
                    directive: go_fmt_s(directive),
                    map: go_fmt(item),
                });
            }
        }
    }
    if replace {
        Ok((clean_list(&without), Vec::new()))
    } else {
        Ok((original, without))
    }
}

/// Upstream `mergeSliceWithoutSpecialElements`: merges each patch item into
/// the first original item with the same merge key value, or appends it.
fn merge_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    item_path: &str,
    schema: &Schema,
) -> Result<Vec<Value>, SmpError> {
    for item in patch {
        let value = merge_key_value(item, key)?;
        let Value::Object(p) = item else {
            return Err(bad_arg_type(GO_MAP, item));
        };
        let mut found = None;
        for (index, o) in original.iter().enumerate() {
            let Value::Object(o) = o else {
                return Err(SmpError::NotAMap { index });
            };
            if o.get(key) == Some(value) {
                found = Some(index);
                break;
            }
        }
        match found {
            Some(index) => {
                let Value::Object(o) = std::mem::take(&mut original[index]) else {
                    unreachable!("checked above");
                };
                original[index] = Value::Object(merge_map(o, p, item_path, schema)?);
            }
            None => original.extend(clean(item)),
        }
    }
    Ok(original)
}

/// Upstream `partitionPrimitivesByPresentInList` /
/// `partitionMapsByPresentInList`: splits `merged` into the items present in
/// `by` and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::new();
    for v in merged {
        let found = match merge_key {
            None => by.contains(&v),
            Some(key) => {
                let value = merge_key_value(&v, key)?;
                let mut found = false;
                for (index, b) in by.iter().enumerate() {
                    let Value::Object(b) = b else {
                        return Err(SmpError::NotAMap { index });
                    };
                    if b.get(key) == Some(value) {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        if found {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Upstream `normalizeElementOrder`: sorts `patch_items` by `patch_order` and
/// `server_only` by `server_order`, then interleaves them
/// (`mergeSortedSlice`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, SmpError> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key)?;

    // mergeSortedSlice: a server-only item goes first only if both it and the
    // next patch item are in the server order and it precedes that item.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    index_of(server_order, l, merge_key),
                    index_of(server_order, r, merge_key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Upstream `normalizeSliceOrder`: stable sort of `to_sort` by position in
/// `order` (items not found go last), `$patch: delete` items at the end.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, SmpError> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if let Some(key) = merge_key {
        // validateMergeKeyInLists
        for item in to_sort.iter().chain(order) {
            merge_key_value(item, key)?;
        }
        let (keep, delete): (Vec<Value>, Vec<Value>) = to_sort
            .into_iter()
            .partition(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete"));
        to_sort = keep;
        to_delete = delete;
    }
    to_sort.sort_by_key(|v| index_of(order, v, merge_key).unwrap_or(usize::MAX));
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// Upstream `index`: position of `item` in `list`, comparing merge key values
/// for maps and whole values for primitives.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        None => list.iter().position(|v| v == item),
        Some(key) => {
            let wanted = item.get(key);
            list.iter().position(|v| v.get(key) == wanted)
        }
    }
}

/// Upstream `removeDirectives` (+ `discardNullValuesFromPatch`): `None` for a
/// map carrying `$patch`; otherwise the value with such maps, `null` map
/// members and the other directive keys removed, recursively.
fn clean(value: &Value) -> Option<Value> {
    match value {
        Value::Object(m) if m.contains_key(DIRECTIVE_MARKER) => None,
        Value::Object(m) => Some(Value::Object(clean_map(m))),
        Value::Array(a) => Some(Value::Array(clean_list(a))),
        other => Some(other.clone()),
    }
}

fn clean_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, v)| !is_directive_key(k) && !v.is_null())
        .filter_map(|(k, v)| clean(v).map(|v| (k.clone(), v)))
        .collect()
}

fn clean_list(list: &[Value]) -> Vec<Value> {
    list.iter().filter_map(clean).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

fn bad_arg_type(expected: &'static str, actual: &Value) -> SmpError {
    SmpError::BadArgType {
        expected,
        actual: match actual {
            Value::Null => "%!s(<nil>)".to_owned(),
            v => go_type(v),
        },
    }
}

/// The Go type `k8s.io/apimachinery/pkg/util/json` decodes a value into.
fn go_type(value: &Value) -> String {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => GO_SLICE,
        Value::Object(_) => GO_MAP,
    }
    .to_owned()
}

/// Go's `%v` of a decoded JSON value.
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => go_fmt_list(a),
        Value::Object(m) => go_fmt_map(m),
    }
}

fn go_fmt_list(list: &[Value]) -> String {
    let items: Vec<String> = list.iter().map(go_fmt).collect();
    format!("[{}]", items.join(" "))
}

fn go_fmt_map(map: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let items: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{k}:{}", go_fmt(&map[k])))
        .collect();
    format!("map[{}]", items.join(" "))
}

/// Go's `%s` of a decoded JSON value (used for `$patch` values).
fn go_fmt_s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".to_owned(),
        Value::Bool(_) | Value::Number(_) => format!("%!s({}={})", go_type(value), go_fmt(value)),
        _ => go_fmt(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Case {
        name: &'static str,
        schema: Schema,
        original: Value,
        patch: Value,
        want: Value,
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            let got = apply(&c.original, &c.patch, &c.schema)
                .unwrap_or_else(|e| panic!("{}: unexpected error {e}", c.name));
            assert_eq!(got, c.want, "{}", c.name);
            assert!(!has_directive(&got), "{}: directive left in {got}", c.name);
        }
    }

    fn has_directive(v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| is_directive_key(k) || has_directive(v)),
            Value::Array(a) => a.iter().any(has_directive),
            _ => false,
        }
    }

    /// Schema for the doc's examples, whose lists sit at the root.
    fn doc_schema() -> Schema {
        Schema::new()
            .with("containers", ListStrategy::merge("name"))
            .with("finalizers", ListStrategy::set())
    }

    fn pod() -> Schema {
        builtin("", "Pod")
    }

    #[test]
    fn doc_examples() {
        run(vec![
            Case {
                name: "background: containers merge on name (new item first, upstream order)",
                schema: doc_schema(),
                original: json!({"containers": [{"name": "nginx", "image": "nginx-1.0"}]}),
                patch: json!({"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}),
                want: json!({"containers": [
                    {"name": "log-tailer", "image": "log-tailer-1.0"},
                    {"name": "nginx", "image": "nginx-1.0"},
                ]}),
            },
            Case {
                name: "replace directive on a map",
                schema: doc_schema(),
                original: json!({
                    "containers": [{"name": "nginx", "image": "nginx-0.9"}, {"name": "x", "image": "x"}],
                    "restartPolicy": "Always",
                }),
                patch: json!({
                    "$patch": "replace",
                    "containers": [{"name": "nginx", "image": "nginx-1.0"}],
                }),
                want: json!({"containers": [{"name": "nginx", "image": "nginx-1.0"}]}),
            },
            Case {
                name: "replace directive on a list of maps",
                schema: doc_schema(),
                original: json!({"containers": [
                    {"name": "log-tailer", "image": "log-tailer-1.0"},
                    {"name": "nginx", "image": "nginx-0.9", "ports": [1]},
                ]}),
                patch: json!({"containers": [
                    {"name": "nginx", "image": "nginx-1.0"},
                    {"$patch": "replace"},
                ]}),
                want: json!({"containers": [{"name": "nginx", "image": "nginx-1.0"}]}),
            },
            Case {
                name: "delete directive on a list of maps",
                schema: doc_schema(),
                original: json!({"containers": [
                    {"name": "nginx", "image": "nginx-0.9"},
                    {"name": "log-tailer", "image": "log-tailer-1.0"},
                ]}),
                patch: json!({"containers": [
                    {"name": "nginx", "image": "nginx-1.0"},
                    {"$patch": "delete", "name": "log-tailer"},
                ]}),
                want: json!({"containers": [{"name": "nginx", "image": "nginx-1.0"}]}),
            },
            Case {
                name: "delete directive removes every item with the key",
                schema: doc_schema(),
                original: json!({"containers": [
                    {"name": "a", "image": "1"},
                    {"name": "b"},
                    {"name": "a", "image": "2"},
                ]}),
                patch: json!({"containers": [{"$patch": "delete", "name": "a"}]}),
                want: json!({"containers": [{"name": "b"}]}),
            },
            Case {
                name: "delete directive on a map (upstream leaves {})",
                schema: Schema::new(),
                original: json!({"rollingUpdate": {"maxSurge": 1}, "type": "RollingUpdate"}),
                patch: json!({"rollingUpdate": {"$patch": "delete"}}),
                want: json!({"rollingUpdate": {}, "type": "RollingUpdate"}),
            },
            Case {
                name: "null deletes the map",
                schema: Schema::new(),
                original: json!({"rollingUpdate": {"maxSurge": 1}, "type": "RollingUpdate"}),
                patch: json!({"rollingUpdate": null}),
                want: json!({"type": "RollingUpdate"}),
            },
            Case {
                name: "deleteFromPrimitiveList",
                schema: doc_schema(),
                original: json!({"finalizers": ["a", "b", "c"]}),
                patch: json!({"$deleteFromPrimitiveList/finalizers": ["b", "c"]}),
                want: json!({"finalizers": ["a"]}),
            },
            Case {
                name: "deleteFromPrimitiveList removes duplicates too",
                schema: doc_schema(),
                original: json!({"finalizers": ["a", "b", "a"]}),
                patch: json!({"$deleteFromPrimitiveList/finalizers": ["a"]}),
                want: json!({"finalizers": ["b"]}),
            },
            Case {
                name: "setElementOrder on a primitive list",
                schema: doc_schema(),
                original: json!({"finalizers": ["a", "b", "c"]}),
                patch: json!({"$setElementOrder/finalizers": ["b", "c", "a"]}),
                want: json!({"finalizers": ["b", "c", "a"]}),
            },
            Case {
                name: "setElementOrder on a list of maps",
                schema: doc_schema(),
                original: json!({"containers": [
                    {"name": "a", "image": "a"},
                    {"name": "b", "image": "b"},
                    {"name": "c", "image": "c"},
                ]}),
                patch: json!({"$setElementOrder/containers": [
                    {"name": "b"}, {"name": "c"}, {"name": "a"},
                ]}),
                want: json!({"containers": [
                    {"name": "b", "image": "b"},
                    {"name": "c", "image": "c"},
                    {"name": "a", "image": "a"},
                ]}),
            },
            Case {
                // The doc spells the directive `retainKeys`; the key is `$retainKeys`.
                name: "retainKeys on a map",
                schema: Schema::new(),
                original: json!({"union": {"foo": "a", "other": "b"}}),
                patch: json!({"union": {"$retainKeys": ["another", "bar"], "another": "d", "bar": "c"}}),
                want: json!({"union": {"another": "d", "bar": "c"}}),
            },
        ]);
    }

    #[test]
    fn pod_spec_cases() {
        run(vec![
            Case {
                name: "container image change keeps other containers",
                schema: pod(),
                original: json!({"spec": {"containers": [
                    {"name": "a", "image": "a:1"},
                    {"name": "b", "image": "b:1", "args": ["x"]},
                ]}}),
                patch: json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
                want: json!({"spec": {"containers": [
                    {"name": "a", "image": "a:1"},
                    {"name": "b", "image": "b:2", "args": ["x"]},
                ]}}),
            },
            Case {
                name: "env add, update and delete by name",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "2"},
                    {"name": "D", "value": "4"},
                ]}]}}),
                patch: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "B", "value": "3"},
                    {"name": "C", "value": "5"},
                    {"name": "A", "$patch": "delete"},
                ]}]}}),
                want: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "B", "value": "3"},
                    {"name": "C", "value": "5"},
                    {"name": "D", "value": "4"},
                ]}]}}),
            },
            Case {
                name: "env valueFrom replaced by value via null",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ]}]}}),
                patch: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "A", "value": "x", "valueFrom": null},
                ]}]}}),
                want: json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "A", "value": "x"},
                ]}]}}),
            },
            Case {
                name: "ports merge on containerPort",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 80, "protocol": "TCP"},
                ]}]}}),
                patch: json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 80, "name": "http"},
                    {"containerPort": 443},
                ]}]}}),
                want: json!({"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 80, "protocol": "TCP", "name": "http"},
                    {"containerPort": 443},
                ]}]}}),
            },
            Case {
                name: "$patch: delete of a container",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                patch: json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                want: json!({"spec": {"containers": [{"name": "b"}]}}),
            },
            Case {
                name: "$patch: replace on a list",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                patch: json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}),
                want: json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
            },
            Case {
                name: "$retainKeys switches a volume from emptyDir to hostPath",
                schema: pod(),
                original: json!({"spec": {"volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "other", "configMap": {"name": "cm"}},
                ]}}),
                patch: json!({"spec": {"volumes": [{
                    "name": "data",
                    "hostPath": {"path": "/srv"},
                    "$retainKeys": ["hostPath", "name"],
                }]}}),
                want: json!({"spec": {"volumes": [
                    {"name": "data", "hostPath": {"path": "/srv"}},
                    {"name": "other", "configMap": {"name": "cm"}},
                ]}}),
            },
            Case {
                name: "$setElementOrder reorders and merges",
                schema: pod(),
                original: json!({"spec": {"containers": [
                    {"name": "a", "image": "a:1"},
                    {"name": "b", "image": "b:1"},
                    {"name": "c", "image": "c:1"},
                ]}}),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "a", "image": "a:2"}],
                }}),
                want: json!({"spec": {"containers": [
                    {"name": "c", "image": "c:1"},
                    {"name": "a", "image": "a:2"},
                    {"name": "b", "image": "b:1"},
                ]}}),
            },
            Case {
                name: "$setElementOrder places a new item (kubectl apply style)",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                    "containers": [{"name": "c", "image": "c"}],
                }}),
                want: json!({"spec": {"containers": [
                    {"name": "a"}, {"name": "b"}, {"name": "c", "image": "c"},
                ]}}),
            },
            Case {
                name: "$setElementOrder with a deleted item",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
                patch: json!({"spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                    "containers": [{"name": "b", "$patch": "delete"}],
                }}),
                want: json!({"spec": {"containers": [{"name": "c"}, {"name": "a"}]}}),
            },
            Case {
                name: "$deleteFromPrimitiveList/finalizers",
                schema: pod(),
                original: json!({"metadata": {"finalizers": ["x", "y", "z"]}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["y"]}}),
                want: json!({"metadata": {"finalizers": ["x", "z"]}}),
            },
            Case {
                name: "$deleteFromPrimitiveList on a missing list is a no-op",
                schema: pod(),
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["y"]}}),
                want: json!({"metadata": {"name": "p"}}),
            },
            Case {
                name: "finalizers merge as a set, existing order kept",
                schema: pod(),
                original: json!({"metadata": {"finalizers": ["a", "b"]}}),
                patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
                want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            },
            Case {
                name: "finalizers: a new value goes first without $setElementOrder",
                schema: pod(),
                original: json!({"metadata": {"finalizers": ["a", "b"]}}),
                patch: json!({"metadata": {"finalizers": ["c"]}}),
                want: json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
            },
            Case {
                name: "finalizers: set order plus delete list",
                schema: pod(),
                original: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                patch: json!({"metadata": {
                    "$setElementOrder/finalizers": ["c", "a", "d"],
                    "$deleteFromPrimitiveList/finalizers": ["b"],
                    "finalizers": ["d"],
                }}),
                want: json!({"metadata": {"finalizers": ["c", "a", "d"]}}),
            },
            Case {
                name: "null deletes a map key",
                schema: pod(),
                original: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                patch: json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                want: json!({"metadata": {"labels": {"b": "2", "c": "3"}}}),
            },
            Case {
                name: "nested maps merge",
                schema: pod(),
                original: json!({"spec": {"securityContext": {"runAsUser": 1, "seLinuxOptions": {"level": "s0"}}}}),
                patch: json!({"spec": {"securityContext": {"seLinuxOptions": {"role": "r"}, "fsGroup": 2}}}),
                want: json!({"spec": {"securityContext": {
                    "runAsUser": 1,
                    "fsGroup": 2,
                    "seLinuxOptions": {"level": "s0", "role": "r"},
                }}}),
            },
            Case {
                name: "a list without schema entry is replaced",
                schema: pod(),
                original: json!({"spec": {
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["1", "2"]}],
                }}),
                patch: json!({"spec": {
                    "tolerations": [{"key": "b", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["3"]}],
                }}),
                want: json!({"spec": {
                    "tolerations": [{"key": "b", "operator": "Exists"}],
                    "containers": [{"name": "c", "args": ["3"]}],
                }}),
            },
            Case {
                name: "scalars and type changes replace",
                schema: pod(),
                original: json!({"spec": {"nodeName": "a", "x": {"y": 1}, "z": [1]}}),
                patch: json!({"spec": {"nodeName": "b", "x": "flat", "z": {"k": "v"}}}),
                want: json!({"spec": {"nodeName": "b", "x": "flat", "z": {"k": "v"}}}),
            },
            Case {
                name: "new values lose directives and nulls",
                schema: pod(),
                original: json!({"spec": {"containers": [{"name": "a"}]}}),
                patch: json!({"spec": {
                    "initContainers": [{"name": "i"}, {"name": "j", "$patch": "delete"}],
                    "extra": {"a": 1, "b": null, "$retainKeys": ["a"], "gone": {"$patch": "delete"}},
                    "containers": [{"name": "n", "env": [{"name": "E", "$patch": "delete"}],
                                    "$setElementOrder/env": [{"name": "E"}]}],
                }}),
                want: json!({"spec": {
                    "initContainers": [{"name": "i"}],
                    "extra": {"a": 1},
                    "containers": [{"name": "n", "env": []}, {"name": "a"}],
                }}),
            },
            Case {
                name: "top-level $patch: delete empties the object",
                schema: pod(),
                original: json!({"metadata": {"name": "p"}}),
                patch: json!({"$patch": "delete"}),
                want: json!({}),
            },
            Case {
                name: "merge-key lists match numbers exactly",
                schema: builtin("", "Service"),
                original: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
                patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                want: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            },
            Case {
                name: "status conditions merge on type",
                schema: pod(),
                original: json!({"status": {"conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "PodScheduled", "status": "True"},
                ]}}),
                patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                want: json!({"status": {"conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ]}}),
            },
            Case {
                name: "ownerReferences merge on uid",
                schema: pod(),
                original: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                patch: json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}}),
                want: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": true}]}}),
            },
        ]);
    }

    #[test]
    fn workload_paths() {
        run(vec![
            Case {
                name: "deployment template containers merge",
                schema: builtin("apps", "Deployment"),
                original: json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
                    {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"},
                ]}}}}),
                patch: json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "a", "image": "a:2"},
                ]}}}}),
                want: json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"},
                ]}}}}),
            },
            Case {
                name: "deployment strategy switch with $retainKeys",
                schema: builtin("apps", "Deployment"),
                original: json!({"spec": {"strategy": {
                    "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1},
                }}}),
                patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
            },
            Case {
                name: "cronjob pod spec path",
                schema: builtin("batch", "CronJob"),
                original: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}],
                }}}}}}),
                patch: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "a", "env": [{"name": "X", "value": "2"}]}],
                }}}}}}),
                want: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "a", "env": [{"name": "X", "value": "2"}]}],
                }}}}}}),
            },
            Case {
                name: "unknown kind: lists are atomic",
                schema: builtin("example.com", "Widget"),
                original: json!({"spec": {"containers": [{"name": "a"}]}}),
                patch: json!({"spec": {"containers": [{"name": "b"}]}}),
                want: json!({"spec": {"containers": [{"name": "b"}]}}),
            },
        ]);
    }

    #[test]
    fn builtin_tables() {
        let d = builtin("apps", "Deployment");
        let p = "spec.template.spec";
        assert_eq!(
            d.get(&format!("{p}.containers")),
            Some(ListStrategy::merge("name"))
        );
        assert_eq!(
            d.get(&format!("{p}.initContainers[].env")),
            Some(ListStrategy::merge("name"))
        );
        assert_eq!(
            d.get(&format!("{p}.volumes")),
            Some(ListStrategy::merge_retain_keys("name"))
        );
        assert_eq!(d.get(&format!("{p}.tolerations")), None);
        assert_eq!(d.get("spec.strategy"), Some(ListStrategy::retain_keys()));
        assert_eq!(
            d.get("status.conditions"),
            Some(ListStrategy::merge("type"))
        );
        assert_eq!(
            builtin("", "Pod").get("spec.containers[].ports"),
            Some(ListStrategy::merge("containerPort"))
        );
        assert_eq!(
            builtin("", "Node").get("status.addresses"),
            Some(ListStrategy::merge("type"))
        );
        assert_eq!(builtin("", "Node").get("spec.taints"), None);
        assert_eq!(
            builtin("", "ServiceAccount").get("secrets"),
            Some(ListStrategy::merge("name"))
        );
        assert_eq!(
            builtin("x", "Y").get("metadata.finalizers"),
            Some(ListStrategy::set())
        );
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Schema, Value, Value, &str)> = vec![
            (
                "unknown $patch in a map",
                pod(),
                json!({"spec": {"a": 1}}),
                json!({"spec": {"$patch": "foo"}}),
                "unknown patch type: foo in map: map[$patch:foo]",
            ),
            (
                "$patch: merge in a map",
                pod(),
                json!({"spec": {}}),
                json!({"spec": {"$patch": "merge", "a": 1}}),
                "unknown patch type: merge in map: map[$patch:merge a:1]",
            ),
            (
                "non-string $patch",
                pod(),
                json!({}),
                json!({"$patch": 1}),
                "unknown patch type: %!s(int64=1) in map: map[$patch:1]",
            ),
            (
                "$patch: merge in a list",
                pod(),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"$patch": "merge"}]}}),
                "merging lists cannot yet be specified in the patch",
            ),
            (
                "unknown $patch in a list",
                pod(),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}),
                "unknown patch type: nope in map: map[$patch:nope name:a]",
            ),
            (
                "missing merge key in the patch",
                pod(),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"image": "x"}]}}),
                "map: map[image:x] does not contain declared merge key: name",
            ),
            (
                "missing merge key in a delete item",
                pod(),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"$patch": "delete"}]}}),
                "map: map[$patch:delete] does not contain declared merge key: name",
            ),
            (
                "missing merge key in the original",
                pod(),
                json!({"spec": {"containers": [{"image": "a"}]}}),
                json!({"spec": {"containers": [{"name": "b"}]}}),
                "map: map[image:a] does not contain declared merge key: name",
            ),
            (
                "$retainKeys not a list",
                pod(),
                json!({"spec": {}}),
                json!({"spec": {"$retainKeys": "a"}}),
                "invalid patch format of retainKeys",
            ),
            (
                "patch key missing from $retainKeys",
                pod(),
                json!({"spec": {}}),
                json!({"spec": {"$retainKeys": ["a"], "a": 1, "b": 2}}),
                "invalid patch format of retainKeys",
            ),
            (
                "malformed $deleteFromPrimitiveList key",
                pod(),
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
                "invalid patch format of primitive list",
            ),
            (
                "malformed $setElementOrder key",
                pod(),
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"$setElementOrderfinalizers": ["a"]}}),
                "invalid patch format of setElementOrder list",
            ),
            (
                "$setElementOrder not a list",
                pod(),
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
                "expected a []interface {}, but received a string",
            ),
            (
                "$setElementOrder disagrees with the patch list",
                pod(),
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["a", "b"],
                    "finalizers": ["b", "a"],
                }}),
                "the order in patch list:\n[b a]\n doesn't match $setElementOrder list:\n[a b]",
            ),
            (
                "$setElementOrder item without merge key",
                pod(),
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}}),
                "map: map[image:a] does not contain declared merge key: name",
            ),
            (
                "mixed element types in a merging list",
                pod(),
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": [1]}}),
                "list element types are not identical: [[a] [1]]",
            ),
            (
                "list of lists",
                pod(),
                json!({"metadata": {"finalizers": [["a"]]}}),
                json!({"metadata": {"finalizers": [["b"]]}}),
                "lists of lists are not supported",
            ),
            (
                "maps in a set-merged list",
                pod(),
                json!({"metadata": {"finalizers": [{"a": 1}]}}),
                json!({"metadata": {"finalizers": [{"b": 1}]}}),
                "cannot merge lists without merge key for type struct",
            ),
            (
                "patch not an object",
                pod(),
                json!({}),
                json!([1]),
                "invalid JSON document",
            ),
            (
                "original not an object",
                pod(),
                json!("x"),
                json!({}),
                "invalid JSON document",
            ),
        ];
        for (name, schema, original, patch, want) in cases {
            let err = apply(&original, &patch, &schema)
                .expect_err(name)
                .to_string();
            assert_eq!(err, want, "{name}");
        }
    }

    #[test]
    fn null_documents() {
        assert_eq!(
            apply(&Value::Null, &json!({"a": 1}), &Schema::new()).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            apply(&json!({"a": 1}), &Value::Null, &Schema::new()).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn go_formatting() {
        assert_eq!(
            go_fmt(&json!({"b": [1, 2.5, null], "a": {"c": true}})),
            "map[a:map[c:true] b:[1 2.5 <nil>]]"
        );
        assert_eq!(go_fmt(&json!(3.0)), "3");
    }
}
