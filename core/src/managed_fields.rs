//! Field ownership for server-side apply: field sets, `fieldsV1`, the apply
//! merge, conflicts and `metadata.managedFields` entries, following
//! `sigs.k8s.io/structured-merge-diff/v4` (`fieldpath`, `typed`, `merge`)
//! and `k8s.io/apimachinery/pkg/util/managedfields/internal`.
//!
//! # Model
//!
//! A [`FieldSet`] is a set of [`Path`]s from the object root. A path is a
//! list of [`PathElement`]s: a map field (`f:<name>` in `fieldsV1`), an item
//! of an associative list identified by its key fields (`k:{"name":"x"}`), an
//! item of a set (`v:<json>`) or an item of a list addressed by position
//! (`i:<n>`, only where an item lacks its keys).
//!
//! List semantics come from an [`ApplySchema`], derived from the strategic
//! merge patch table ([`crate::smp::builtin`]): a list with a merge key is an
//! associative list (`x-kubernetes-list-type: map`) keyed by that key, a
//! merging list of primitives is a set, and every other list is atomic
//! (owned and replaced as a whole). Where upstream's OpenAPI
//! `x-kubernetes-list-map-keys` name more keys than the `patchMergeKey`
//! tag, [`ApplySchema::builtin`] uses upstream's keys: container `ports`
//! (`containerPort`, `protocol`), Service `spec.ports` (`port`, `protocol`),
//! `topologySpreadConstraints` (`topologyKey`, `whenUnsatisfiable`); a
//! missing `protocol` key counts as its default `"TCP"` as upstream's schema
//! default does. Label selectors (`spec.selector` of workloads, Service
//! `spec.selector`) are atomic maps. Everything else is untyped: every map is
//! granular, every map key is treated as a named field.
//!
//! # Deliberate simplifications
//!
//! No type conversion between API versions (one version per kind), no cap on
//! the number of Update managers (upstream merges the oldest into
//! `ancient-changes` beyond 10). Request-level behaviour (which fields are
//! tracked, managedFields sent by clients, `before-first-apply`, the
//! last-applied-configuration interop of `kubectl`) belongs to the caller:
//! see `apiserver-shim`'s `fieldmanager` module. Items of an associative list
//! that lack all their keys are addressed by index (upstream rejects them);
//! duplicate keys are found by [`duplicate_entry`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value, json};

use crate::smp;

/// One step of a [`Path`] (`fieldpath.PathElement`). The derived order
/// (fields, then keys, then values, then indexes) is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map: `f:<name>`.
    Field(String),
    /// An associative-list item: its key fields as a compact JSON object
    /// with sorted keys, e.g. `{"name":"x"}` (`k:{"name":"x"}`).
    Key(String),
    /// A set item: its value as compact JSON (`v:"a"`).
    Value(String),
    /// A list item by position (`i:3`).
    Index(usize),
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Renders a path as upstream's `fieldpath.Path.String()`, the form used in
/// conflict messages: `.spec.containers[name="web"].image`,
/// `.spec.ports[port=80,protocol="TCP"]`, `.metadata.finalizers[="a"]`,
/// `.spec.args[0]`.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            PathElement::Value(v) => {
                out.push_str("[=");
                out.push_str(v);
                out.push(']');
            }
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A set of paths (`fieldpath.Set`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(BTreeSet<Path>);

/// Why a `fieldsV1` value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fieldsV1: {0}")]
pub struct FieldsV1Error(pub String);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path.
    pub fn insert(&mut self, path: Path) {
        self.0.insert(path);
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The members in order (a path sorts before its descendants).
    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// The members for which `keep` holds.
    pub fn filter(&self, keep: impl Fn(&[PathElement]) -> bool) -> FieldSet {
        FieldSet(self.0.iter().filter(|p| keep(p)).cloned().collect())
    }

    /// The set plus every field-ending prefix of its members
    /// (`Set.EnsureNamedFieldsAreMembers`; untyped, so every map key counts
    /// as a named field).
    pub fn with_named_ancestors(&self) -> FieldSet {
        let mut out = self.0.clone();
        for p in &self.0 {
            for end in 1..p.len() {
                if matches!(p[end - 1], PathElement::Field(_)) {
                    out.insert(p[..end].to_vec());
                }
            }
        }
        FieldSet(out)
    }

    /// Encodes as `fieldsV1` (`Set.ToJSON`): nested objects keyed by
    /// `f:`/`k:`/`v:`/`i:` elements, `{}` for a member leaf and `".": {}`
    /// for a member that also has members below it.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut node = &mut root;
            for pe in path {
                let key = encode_element(pe);
                node = node
                    .entry(key)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("fieldsV1 nodes are objects");
            }
        }
        // A member with children gets ".": {}.
        for path in &self.0 {
            let mut node = &mut root;
            for pe in path {
                node = node
                    .get_mut(&encode_element(pe))
                    .and_then(Value::as_object_mut)
                    .expect("inserted above");
            }
            if !node.is_empty() {
                node.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }

    /// Decodes `fieldsV1` (`Set.FromJSON`). Errors on a non-object node or a
    /// key without a known prefix.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, FieldsV1Error> {
        let mut set = FieldSet::new();
        let root = v
            .as_object()
            .ok_or_else(|| FieldsV1Error("expected an object".into()))?;
        decode_node(root, &mut Vec::new(), &mut set)?;
        Ok(set)
    }
}

impl FromIterator<Path> for FieldSet {
    fn from_iter<T: IntoIterator<Item = Path>>(iter: T) -> Self {
        FieldSet(iter.into_iter().collect())
    }
}

fn encode_element(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(f) => format!("f:{f}"),
        PathElement::Key(k) => format!("k:{k}"),
        PathElement::Value(v) => format!("v:{v}"),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

fn decode_element(s: &str) -> Result<PathElement, FieldsV1Error> {
    let bad = || FieldsV1Error(format!("unknown path element {s:?}"));
    let (prefix, rest) = s.split_once(':').ok_or_else(bad)?;
    match prefix {
        "f" => Ok(PathElement::Field(rest.to_string())),
        "k" => {
            let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
            if !v.is_object() {
                return Err(bad());
            }
            Ok(PathElement::Key(v.to_string()))
        }
        "v" => {
            let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
            Ok(PathElement::Value(v.to_string()))
        }
        "i" => rest.parse().map(PathElement::Index).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn decode_node(
    node: &Map<String, Value>,
    path: &mut Path,
    set: &mut FieldSet,
) -> Result<(), FieldsV1Error> {
    for (k, child) in node {
        if k == "." {
            if !path.is_empty() {
                set.insert(path.clone());
            }
            continue;
        }
        let pe = decode_element(k)?;
        let child = child
            .as_object()
            .ok_or_else(|| FieldsV1Error(format!("value of {k:?} is not an object")))?;
        path.push(pe);
        if child.is_empty() {
            set.insert(path.clone());
        } else {
            decode_node(child, path, set)?;
        }
        path.pop();
    }
    Ok(())
}

/// The list semantics of one list field (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars, merged as a union.
    Set,
    /// An associative list keyed by these fields (sorted).
    Map(Vec<&'static str>),
}

/// List and map semantics per field path of one kind. Paths use the
/// [`smp::Schema`] notation: field names joined with `.`, `[]` after a list
/// to address its items (`spec.template.spec.containers[].ports`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplySchema {
    /// Non-atomic lists; absent lists are atomic.
    pub lists: BTreeMap<String, ListType>,
    /// Maps owned and replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub atomic_maps: BTreeSet<String>,
}

/// Key field defaults used when an associative-list item omits a key
/// (upstream's schema `default` on key fields).
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

impl ApplySchema {
    /// Derives the schema from a strategic-merge-patch table: a merge key
    /// makes an associative list, a merging keyless list a set, anything
    /// else stays atomic.
    pub fn from_smp(schema: &smp::Schema) -> Self {
        let mut out = ApplySchema::default();
        for (path, s) in &schema.entries {
            if !s.strategy.merges() {
                continue;
            }
            let lt = match s.merge_key {
                Some(k) => ListType::Map(vec![k]),
                None => ListType::Set,
            };
            out.lists.insert(path.clone(), lt);
        }
        out
    }

    /// The schema of a built-in kind: [`ApplySchema::from_smp`] of
    /// [`smp::builtin`], with upstream's multi-key lists and atomic label
    /// selectors (see the module docs).
    pub fn builtin(group: &str, kind: &str) -> Self {
        let mut s = Self::from_smp(&smp::builtin(group, kind));
        for (path, lt) in s.lists.iter_mut() {
            if path.ends_with("containers[].ports") || path.ends_with("Containers[].ports") {
                *lt = ListType::Map(vec!["containerPort", "protocol"]);
            } else if path.ends_with("topologySpreadConstraints") {
                *lt = ListType::Map(vec!["topologyKey", "whenUnsatisfiable"]);
            }
        }
        if (group, kind) == ("", "Service") {
            s.lists
                .insert("spec.ports".into(), ListType::Map(vec!["port", "protocol"]));
        }
        if matches!(
            (group, kind),
            ("", "Service" | "ReplicationController")
                | (
                    "apps",
                    "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
                )
                | ("batch", "Job")
        ) {
            s.atomic_maps.insert("spec.selector".into());
        }
        s
    }

    fn list_type(&self, spath: &str) -> ListType {
        self.lists.get(spath).cloned().unwrap_or(ListType::Atomic)
    }

    fn atomic_map(&self, spath: &str) -> bool {
        self.atomic_maps.contains(spath)
    }
}

fn child_spath(spath: &str, key: &str) -> String {
    if spath.is_empty() {
        key.to_string()
    } else {
        format!("{spath}.{key}")
    }
}

/// The path element of list item `i` (`listItemToPathElement`). Items of an
/// associative list lacking every key (or not maps) fall back to their index.
fn item_element(lt: &ListType, item: &Value, i: usize) -> PathElement {
    match lt {
        ListType::Set => PathElement::Value(item.to_string()),
        ListType::Map(keys) => {
            let Some(obj) = item.as_object() else {
                return PathElement::Index(i);
            };
            let mut key = Map::new();
            for k in keys {
                match obj.get(*k) {
                    Some(v) => {
                        key.insert((*k).to_string(), v.clone());
                    }
                    None => {
                        if let Some((_, d)) = KEY_DEFAULTS.iter().find(|(n, _)| n == k) {
                            key.insert((*k).to_string(), json!(d));
                        }
                    }
                }
            }
            if key.is_empty() || keys.iter().all(|k| !obj.contains_key(*k)) {
                PathElement::Index(i)
            } else {
                PathElement::Key(Value::Object(key).to_string())
            }
        }
        ListType::Atomic => PathElement::Index(i),
    }
}

fn is_empty_map(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// The fields a value sets (`TypedValue.ToFieldSet`): every scalar, atomic
/// list or map, null and empty map, and every item of a non-atomic list.
/// Empty non-atomic lists and non-empty maps are not members themselves.
pub fn field_set(obj: &Value, schema: &ApplySchema) -> FieldSet {
    let mut set = FieldSet::new();
    walk_set(obj, &mut Vec::new(), "", schema, &mut set);
    set
}

fn walk_set(v: &Value, path: &mut Path, spath: &str, schema: &ApplySchema, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !schema.atomic_map(spath) || path.is_empty() => {
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                if child.is_null() || is_empty_map(child) {
                    out.insert(path.clone());
                } else {
                    walk_set(child, path, &child_spath(spath, k), schema, out);
                }
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_type(spath) {
            ListType::Atomic => out.insert(path.clone()),
            lt => {
                let item_spath = format!("{spath}[]");
                for (i, item) in items.iter().enumerate() {
                    path.push(item_element(&lt, item, i));
                    out.insert(path.clone());
                    if item.is_object() {
                        walk_set(item, path, &item_spath, schema, out);
                    }
                    path.pop();
                }
            }
        },
        _ => out.insert(path.clone()),
    }
}

/// The first associative-list or set item of `obj` whose key repeats an
/// earlier item's, rendered as upstream's validation error
/// (`.spec.containers: duplicate entries for key [name="a"]`), or `None`.
/// Applied configurations must not contain any (structured-merge-diff
/// `validate.go`); live objects may.
pub fn duplicate_entry(obj: &Value, schema: &ApplySchema) -> Option<String> {
    fn walk(v: &Value, path: &mut Path, spath: &str, schema: &ApplySchema) -> Option<String> {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    let found = walk(child, path, &child_spath(spath, k), schema);
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            Value::Array(items) => {
                let lt = schema.list_type(spath);
                if lt == ListType::Atomic {
                    return None;
                }
                let mut seen = BTreeSet::new();
                let item_spath = format!("{spath}[]");
                for (i, item) in items.iter().enumerate() {
                    let pe = item_element(&lt, item, i);
                    if !seen.insert(pe.clone()) {
                        let what = match &lt {
                            ListType::Set => "value",
                            _ => "key",
                        };
                        let key = path_string(std::slice::from_ref(&pe));
                        let key = if what == "value" {
                            // `[=v]` prints as `v` in this message.
                            key.trim_start_matches("[=")
                                .trim_end_matches(']')
                                .to_string()
                        } else {
                            key
                        };
                        return Some(format!(
                            "{}: duplicate entries for {what} {key}",
                            path_string(path)
                        ));
                    }
                    path.push(pe);
                    let found = walk(item, path, &item_spath, schema);
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            _ => None,
        }
    }
    walk(obj, &mut Vec::new(), "", schema)
}

/// What changed between two versions of an object (`typed.Comparison`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Present only in the new value (including new maps, lists and items
    /// themselves).
    pub added: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
    /// Present only in the old value.
    pub removed: FieldSet,
}

impl Comparison {
    /// Added or modified paths: what an update takes ownership of.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` with `new` (`TypedValue.Compare`). Maps and non-atomic
/// lists are walked (both empty counts as a leaf); scalars, atomic values
/// and mismatched types compare as leaves.
pub fn compare(old: &Value, new: &Value, schema: &ApplySchema) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(Some(old), Some(new), &mut Vec::new(), "", schema, &mut c);
    c
}

fn empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn walk_compare(
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Path,
    spath: &str,
    schema: &ApplySchema,
    c: &mut Comparison,
) {
    let both_maps = matches!(
        (l, r),
        (
            None | Some(Value::Object(_)) | Some(Value::Null),
            None | Some(Value::Object(_)) | Some(Value::Null)
        )
    ) && (l.is_some_and(Value::is_object) || r.is_some_and(Value::is_object));
    let both_lists = matches!(
        (l, r),
        (
            None | Some(Value::Array(_)) | Some(Value::Null),
            None | Some(Value::Array(_)) | Some(Value::Null)
        )
    ) && (l.is_some_and(Value::is_array) || r.is_some_and(Value::is_array));
    let promote = empty_container(l) && empty_container(r);
    let granular_map = both_maps && !promote && (path.is_empty() || !schema.atomic_map(spath));
    let lt = schema.list_type(spath);
    let granular_list = both_lists && !promote && lt != ListType::Atomic;
    if granular_map {
        let empty = Map::new();
        let lm = l.and_then(Value::as_object).unwrap_or(&empty);
        let rm = r.and_then(Value::as_object).unwrap_or(&empty);
        let keys: BTreeSet<&String> = lm.keys().chain(rm.keys()).collect();
        for k in keys {
            path.push(PathElement::Field(k.clone()));
            let (lc, rc) = (lm.get(k), rm.get(k));
            walk_compare(lc, rc, path, &child_spath(spath, k), schema, c);
            post_item(lc, rc, path, c);
            path.pop();
        }
    } else if granular_list {
        let empty = Vec::new();
        let la = l.and_then(Value::as_array).unwrap_or(&empty);
        let ra = r.and_then(Value::as_array).unwrap_or(&empty);
        let li = index_items(&lt, la);
        let ri = index_items(&lt, ra);
        let mut seen = BTreeSet::new();
        let order = la
            .iter()
            .enumerate()
            .map(|(i, v)| item_element(&lt, v, i))
            .chain(ra.iter().enumerate().map(|(i, v)| item_element(&lt, v, i)));
        let item_spath = format!("{spath}[]");
        for pe in order {
            if !seen.insert(pe.clone()) {
                continue;
            }
            let (lc, rc) = (li.get(&pe).copied(), ri.get(&pe).copied());
            path.push(pe);
            walk_compare(lc, rc, path, &item_spath, schema, c);
            post_item(lc, rc, path, c);
            path.pop();
        }
    } else if path.is_empty() {
        // Roots that are not objects: nothing to track.
    } else {
        match (l, r) {
            (None, Some(_)) => c.added.insert(path.clone()),
            (Some(_), None) => c.removed.insert(path.clone()),
            (Some(a), Some(b)) if a != b => c.modified.insert(path.clone()),
            _ => {}
        }
    }
}

fn post_item(l: Option<&Value>, r: Option<&Value>, path: &Path, c: &mut Comparison) {
    match (l, r) {
        (None, Some(_)) => c.added.insert(path.clone()),
        (Some(_), None) => c.removed.insert(path.clone()),
        _ => {}
    }
}

/// The items of a list by path element; the first of duplicates wins.
fn index_items<'a>(lt: &ListType, items: &'a [Value]) -> HashMap<PathElement, &'a Value> {
    let mut out = HashMap::new();
    for (i, v) in items.iter().enumerate() {
        out.entry(item_element(lt, v, i)).or_insert(v);
    }
    out
}

/// Merges an applied configuration into the live object
/// (`TypedValue.Merge`): maps merge key by key, associative lists merge item
/// by item on their keys, sets take the union, scalars and atomic values
/// take the applied value. Item order follows upstream's `visitListItems`:
/// items only in the live list keep their place, shared items follow the
/// applied order, new items come where the applied config puts them.
pub fn merge(live: &Value, config: &Value, schema: &ApplySchema) -> Value {
    merge_value(Some(live), Some(config), "", true, schema).unwrap_or(Value::Null)
}

fn merge_value(
    l: Option<&Value>,
    r: Option<&Value>,
    spath: &str,
    root: bool,
    schema: &ApplySchema,
) -> Option<Value> {
    match (l, r) {
        (_, None) => l.cloned(),
        (None, Some(r)) => Some(r.clone()),
        (Some(Value::Object(lm)), Some(Value::Object(rm))) if root || !schema.atomic_map(spath) => {
            let mut out = lm.clone();
            for (k, rv) in rm {
                if let Some(v) =
                    merge_value(lm.get(k), Some(rv), &child_spath(spath, k), false, schema)
                {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Some(Value::Array(la)), Some(Value::Array(ra))) => match schema.list_type(spath) {
            ListType::Atomic => Some(Value::Array(ra.clone())),
            lt => Some(Value::Array(merge_list(la, ra, &lt, spath, schema))),
        },
        (_, Some(r)) => Some(r.clone()),
    }
}

/// Port of structured-merge-diff's `mergingWalker.visitListItems` ordering.
fn merge_list(
    la: &[Value],
    ra: &[Value],
    lt: &ListType,
    spath: &str,
    schema: &ApplySchema,
) -> Vec<Value> {
    let item_spath = format!("{spath}[]");
    let lpes: Vec<PathElement> = la
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(lt, v, i))
        .collect();
    let rpes: Vec<PathElement> = ra
        .iter()
        .enumerate()
        .map(|(i, v)| item_element(lt, v, i))
        .collect();
    let observed_l = index_items(lt, la);
    let observed_r = index_items(lt, ra);
    let mut shared: std::collections::VecDeque<&PathElement> = rpes
        .iter()
        .filter(|pe| observed_l.contains_key(*pe))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_r: BTreeSet<PathElement> = BTreeSet::new();
    let mut out = Vec::new();
    let merge_item = |pe: &PathElement, out: &mut Vec<Value>| {
        let lc = observed_l.get(pe).copied();
        let rc = observed_r.get(pe).copied();
        if let Some(v) = merge_value(lc, rc, &item_spath, false, schema) {
            out.push(v);
        }
    };
    let (llen, rlen) = (lpes.len(), rpes.len());
    let (mut li, mut ri) = (0, 0);
    while li < llen || ri < rlen {
        if li < llen && ri < rlen {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_r.insert(pe.clone());
                merge_item(pe, &mut out);
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_r.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < llen {
            let pe = &lpes[li];
            if !observed_r.contains_key(pe) {
                out.push(la[li].clone());
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rlen {
            let pe = &rpes[ri];
            merged_r.insert(pe.clone());
            merge_item(pe, &mut out);
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Removes the values at `paths` from `obj` (`TypedValue.RemoveItems`);
/// removing a path removes everything below it. Missing paths are ignored.
pub fn remove_paths(obj: &mut Value, paths: &FieldSet, schema: &ApplySchema) {
    for p in paths.iter() {
        remove_path(obj, p, "", schema);
    }
}

fn remove_path(v: &mut Value, path: &[PathElement], spath: &str, schema: &ApplySchema) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (first, v) {
        (PathElement::Field(f), Value::Object(m)) => {
            if rest.is_empty() {
                m.remove(f);
            } else if let Some(child) = m.get_mut(f) {
                remove_path(child, rest, &child_spath(spath, f), schema);
            }
        }
        (pe, Value::Array(items)) => {
            let lt = schema.list_type(spath);
            let item_spath = format!("{spath}[]");
            if rest.is_empty() {
                let mut i = 0;
                items.retain(|item| {
                    let keep = item_element(&lt, item, i) != *pe;
                    i += 1;
                    keep
                });
            } else {
                for (i, item) in items.iter_mut().enumerate() {
                    if item_element(&lt, item, i) == *pe {
                        remove_path(item, rest, &item_spath, schema);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `operation` of a managedFields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write (create, update, non-apply patch).
    Update,
}

impl Operation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry (`metav1.ManagedFieldsEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEntry {
    /// `manager`.
    pub manager: String,
    /// `operation`.
    pub operation: Operation,
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `time` (RFC 3339, seconds), if any.
    pub time: Option<String>,
    /// `subresource`, `""` for the main resource.
    pub subresource: String,
    /// The owned fields (`fieldsV1`).
    pub fields: FieldSet,
}

impl ManagerEntry {
    /// Whether `self` and `other` are the same manager
    /// (`BuildManagerIdentifier`: manager, operation, subresource, and the
    /// apiVersion for Update entries).
    pub fn same_identity(&self, other: &ManagerEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// The manager as conflict messages print it (`printManager`):
    /// `"name"`, then ` with subresource "s"` if any, then ` using v` for
    /// Update entries.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Decodes `metadata.managedFields` (`DecodeManagedFields`). `null` or
/// absent is empty. Errors (with upstream's wording) on a non-list, an
/// operation other than `Apply`/`Update`, an empty apiVersion, a fieldsType
/// other than `FieldsV1`, or bad `fieldsV1`. Entries of the same identity
/// are merged.
pub fn decode_entries(v: Option<&Value>) -> Result<Vec<ManagerEntry>, String> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("managedFields must be a list".into()),
    };
    let mut out: Vec<ManagerEntry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let operation = match s("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match s("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let fields = match item.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_fields_v1(f).map_err(|e| e.to_string())?,
        };
        let entry = ManagerEntry {
            manager: s("manager"),
            operation,
            api_version,
            time: item.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            fields,
        };
        match out.iter_mut().find(|e| e.same_identity(&entry)) {
            Some(e) => e.fields = e.fields.union(&entry.fields),
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Encodes entries as `metadata.managedFields`, dropping empty sets and
/// sorting as upstream's `sortEncodedManagedFields` (operation, time,
/// manager, apiVersion, subresource).
pub fn encode_entries(entries: &[ManagerEntry]) -> Value {
    let mut sorted: Vec<&ManagerEntry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    sorted.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        sorted
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation.as_str()));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.fields.to_fields_v1());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// One conflicting field (`merge.Conflict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, as [`ManagerEntry::display`] prints it.
    pub manager: String,
    /// The field, as [`path_string`] prints it.
    pub field: String,
}

/// An apply that would change fields other managers own
/// (`merge.Conflicts`). [`fmt::Display`] gives kube-apiserver's message
/// (`internal/conflict.go` `getConflictMessage`):
/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`,
/// or for several, `Apply failed with N conflicts: conflicts with "m":\n- .a\n- .b`
/// grouped by manager in sorted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [c] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                c.manager, c.field
            );
        }
        let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in &self.0 {
            by.entry(&c.manager).or_default().push(&c.field);
        }
        let mut lines = Vec::new();
        for (m, fields) in by {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(fields.into_iter().map(|p| format!("- {p}")));
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

impl std::error::Error for Conflicts {}

/// The writer of one request: who, how, and which fields it may own.
pub struct Writer<'a> {
    /// `manager`.
    pub manager: &'a str,
    /// `apiVersion` of the request.
    pub api_version: &'a str,
    /// `subresource` (`""` for the main resource).
    pub subresource: &'a str,
    /// Current time for the entry (RFC 3339, seconds).
    pub time: &'a str,
    /// Whether a path is tracked at all (upstream's stripped metadata and
    /// the strategy's reset fields return false).
    pub tracked: &'a dyn Fn(&[PathElement]) -> bool,
}

impl Writer<'_> {
    fn entry(&self, operation: Operation, fields: FieldSet) -> ManagerEntry {
        ManagerEntry {
            manager: self.manager.to_string(),
            operation,
            api_version: self.api_version.to_string(),
            time: Some(self.time.to_string()),
            subresource: self.subresource.to_string(),
            fields,
        }
    }
}

/// Takes the changed fields away from other managers (`Updater.update`):
/// fields added or modified leave every other owner (a conflict unless
/// `force`), removed fields leave every owner. Returns the conflicts.
fn take_ownership(
    entries: &mut [ManagerEntry],
    me: &ManagerEntry,
    cmp: &Comparison,
    force: bool,
) -> Result<(), Conflicts> {
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for e in entries.iter() {
        if e.same_identity(me) {
            continue;
        }
        for p in e.fields.intersection(&changed).iter() {
            conflicts.push(Conflict {
                manager: e.display(),
                field: path_string(p),
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(Conflicts(conflicts));
    }
    for e in entries.iter_mut() {
        if e.same_identity(me) {
            continue;
        }
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    Ok(())
}

/// Records an Update-operation write of `new` over `old`
/// (`managedFieldsUpdater.Update` + `Updater.Update`): the fields the write
/// added or modified move to the writer's entry (merged with its previous
/// fields, its time refreshed) and leave other entries; removed fields leave
/// every entry. A write that changes nothing tracked leaves `entries` as is.
/// Entries left empty are dropped. `old` is `{}`-like for a create.
pub fn update(
    old: &Value,
    new: &Value,
    entries: &mut Vec<ManagerEntry>,
    writer: &Writer<'_>,
    schema: &ApplySchema,
) {
    let raw = compare(old, new, schema);
    let keep = |p: &[PathElement]| (writer.tracked)(p);
    let cmp = Comparison {
        added: raw.added.filter(keep),
        modified: raw.modified.filter(keep),
        removed: raw.removed.filter(keep),
    };
    let mine = writer.entry(Operation::Update, cmp.changed());
    let _ = take_ownership(entries, &mine, &cmp, true);
    if let Some(e) = entries.iter_mut().find(|e| e.same_identity(&mine)) {
        e.fields = e.fields.difference(&cmp.removed);
        if !mine.fields.is_empty() {
            e.fields = e.fields.union(&mine.fields);
            e.time = mine.time.clone();
        }
    } else if !mine.fields.is_empty() {
        entries.push(mine);
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Server-side apply of `config` onto `live` (`Updater.Apply`). Returns the
/// merged object; `entries` gets the applier's Apply entry (its fields: the
/// config's field set) and loses what the apply took or removed.
///
/// - Fields the applier owned before, no longer applies, and no other entry
///   owns are removed from the object (`prune`).
/// - Fields of the config whose value changes and that other entries own
///   are [`Conflicts`], unless `force`, which moves them to the applier.
/// - On a conflict `entries` is left unchanged.
pub fn apply(
    live: &Value,
    config: &Value,
    entries: &mut Vec<ManagerEntry>,
    writer: &Writer<'_>,
    force: bool,
    schema: &ApplySchema,
) -> Result<Value, Conflicts> {
    let keep = |p: &[PathElement]| (writer.tracked)(p);
    let mut merged = merge(live, config, schema);
    let applied = field_set(config, schema).filter(keep);
    let me = writer.entry(Operation::Apply, applied.clone());
    let mut next: Vec<ManagerEntry> = entries.clone();
    let last = next
        .iter()
        .position(|e| e.same_identity(&me))
        .map(|i| next.remove(i));
    let prev_time = last.as_ref().map(|e| e.time.clone());
    next.push(me.clone());
    if let Some(last) = last.map(|e| e.fields) {
        let owned = next
            .iter()
            .fold(FieldSet::new(), |acc, e| acc.union(&e.fields))
            .with_named_ancestors();
        let prune = last.with_named_ancestors().difference(&owned).filter(keep);
        remove_paths(&mut merged, &prune, schema);
    }
    // A no-op apply keeps the entry's time (upstream stamps only changes).
    if merged == *live
        && let Some(t) = prev_time
        && let Some(e) = next.last_mut()
    {
        e.time = t;
    }
    let raw = compare(live, &merged, schema);
    let cmp = Comparison {
        added: raw.added.filter(keep),
        modified: raw.modified.filter(keep),
        removed: raw.removed.filter(keep),
    };
    take_ownership(&mut next, &me, &cmp, force)?;
    next.retain(|e| !e.fields.is_empty());
    *entries = next;
    Ok(merged)
}

#[cfg(test)]
mod tests;
