//! Structural schemas of CustomResourceDefinitions (pure; no I/O).
//!
//! * [`validate_schema`]: the structural rules a CRD's
//!   `openAPIV3Schema` must follow (k8s.io/apiextensions-apiserver
//!   `pkg/apiserver/schema` `ValidateStructural`): a type on every specified
//!   node (unless `x-kubernetes-int-or-string` or
//!   `x-kubernetes-preserve-unknown-fields`), `object` at the root, `items`
//!   on arrays, `properties` and `additionalProperties` not both, patterns
//!   that compile.
//! * [`prune`]: drops the fields a schema does not specify (the
//!   apiextensions `pruning` package) and names them, for `fieldValidation`.
//! * [`apply_defaults`]: sets `default` values of missing fields (the
//!   `defaulting` package); a `null` for a non-nullable field with a
//!   default is replaced too.
//! * [`validate`]: checks a custom resource against the schema (the
//!   k8s.io/kube-openapi validator kube-apiserver uses), with its messages:
//!   `spec.replicas in body must be of type integer: "x"`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use vkube_core::field::{FieldError, render_value};

use crate::typed::{FieldPath, Segment};

/// The `pattern`s of a schema compiled once, keyed by their source.
pub type Patterns = HashMap<String, regex::Regex>;

/// The largest compiled `pattern` accepted, in bytes of automaton, and
/// the most distinct patterns in one schema, so a tenant's patterns cannot
/// hold the server's memory (real CRDs' patterns compile to a few KiB).
const PATTERN_SIZE_LIMIT: usize = 256 << 10;
const MAX_PATTERNS: usize = 512;

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

/// Every `pattern` of `schema`, compiled (ones that do not compile are
/// left out; [`validate_schema`] refused them when the CRD was written).
pub fn patterns(schema: &Value) -> Patterns {
    fn walk(s: &Value, out: &mut Patterns) {
        let Some(m) = s.as_object() else { return };
        if let Some(p) = m.get("pattern").and_then(Value::as_str)
            && !out.contains_key(p)
            && out.len() < MAX_PATTERNS
            && let Ok(re) = compile(p)
        {
            out.insert(p.to_string(), re);
        }
        children(m).for_each(|(_, c)| walk(c, out));
    }
    let mut out = Patterns::new();
    walk(schema, &mut out);
    out
}

/// The sub-schemas of a node with the path segment each adds:
/// `properties[name]`, `items`, `additionalProperties`, and the
/// quantifiers (`allOf[i]`, `anyOf[i]`, `oneOf[i]`, `not`).
fn children(m: &Map<String, Value>) -> impl Iterator<Item = (String, &Value)> {
    let props = m
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (format!("properties[{k}]"), v));
    let items = m.get("items").map(|v| ("items".to_string(), v));
    let additional = m
        .get("additionalProperties")
        .filter(|v| v.is_object())
        .map(|v| ("additionalProperties".to_string(), v));
    let quantified = ["allOf", "anyOf", "oneOf"].into_iter().flat_map(move |q| {
        m.get(q)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(i, v)| (format!("{q}[{i}]"), v))
    });
    let not = m.get("not").map(|v| ("not".to_string(), v));
    props
        .chain(items)
        .chain(additional)
        .chain(quantified)
        .chain(not)
}

fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key) == Some(&Value::Bool(true))
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// The structural-schema errors of a CRD version's `openAPIV3Schema`
/// (`path` is its field path, `spec.versions[0].schema.openAPIV3Schema`).
pub fn validate_schema(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(root) = schema.as_object() else {
        errs.push(FieldError::invalid(path, schema, "must be an object"));
        return errs;
    };
    match root.get("type").and_then(Value::as_str) {
        None | Some("") => errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty at the root",
        )),
        Some("object") => {}
        Some(other) => errs.push(FieldError::invalid(
            format!("{path}.type"),
            &json!(other),
            "must be object at the root",
        )),
    }
    // A custom resource's metadata is ObjectMeta, checked by the REST
    // layer: its schema may only restrict name and generateName
    // (apiextensions' validateStructuralMetadataInvariants).
    if let Some(meta) = root
        .get("properties")
        .and_then(|p| p.get("metadata"))
        .and_then(Value::as_object)
        && meta
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.keys().any(|k| k != "name" && k != "generateName"))
    {
        errs.push(FieldError::forbidden(
            format!("{path}.properties[metadata]"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
    let mut patterns = std::collections::HashSet::new();
    node(root, path, true, "", false, &mut patterns, &mut errs);
    if patterns.len() > MAX_PATTERNS {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!(
                "Too many: {}: must have at most {MAX_PATTERNS} distinct patterns",
                patterns.len()
            ),
        });
    }
    errs
}

/// Checks one schema node and its children; `under` says what holds it
/// (`fields` or `items`) for the missing-type message.
/// Checks one schema node and its children; `under` says what holds it
/// (`fields` or `items`) for the missing-type message, and `quantified`
/// whether it sits under `allOf`/`anyOf`/`oneOf`/`not`, where nodes only
/// add value validations and need no type.
fn node<'a>(
    m: &'a Map<String, Value>,
    path: &str,
    root: bool,
    under: &str,
    quantified: bool,
    patterns: &mut std::collections::HashSet<&'a str>,
    errs: &mut Vec<FieldError>,
) {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let open =
        flag(m, "x-kubernetes-int-or-string") || flag(m, "x-kubernetes-preserve-unknown-fields");
    if ty.is_empty() && !root && !open && !quantified && !under.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            &format!("must not be empty for specified {under}"),
        ));
    }
    if !ty.is_empty() && !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(ty),
            &TYPES,
        ));
    }
    if m.contains_key("properties")
        && m.get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(true))
    {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if ty == "array" && !quantified && !m.contains_key("items") {
        errs.push(FieldError::required(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(p) = m.get("pattern").and_then(Value::as_str)
        && patterns.insert(p)
        && patterns.len() <= MAX_PATTERNS
        && let Err(e) = compile(p)
    {
        errs.push(FieldError::invalid(
            format!("{path}.pattern"),
            &json!(p),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    for (seg, child) in children(m) {
        let Some(cm) = child.as_object() else {
            errs.push(FieldError::invalid(
                format!("{path}.{seg}"),
                child,
                "must be an object",
            ));
            continue;
        };
        let under = if seg.starts_with("properties[") {
            "object fields"
        } else if seg == "items" {
            "array items"
        } else if seg == "additionalProperties" {
            "object fields"
        } else {
            ""
        };
        let quantified = quantified || under.is_empty();
        node(
            cm,
            &format!("{path}.{seg}"),
            false,
            under,
            quantified,
            patterns,
            errs,
        );
    }
}

/// The `metadata` members a custom resource may carry (ObjectMeta).
const OBJECT_META: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Removes from `obj` every field `schema` does not specify and returns
/// their paths (`spec.foo`), as the apiextensions pruning does: members
/// outside `properties` of an object node without
/// `x-kubernetes-preserve-unknown-fields`; at the root and in
/// `x-kubernetes-embedded-resource` objects, `apiVersion`, `kind` and the
/// ObjectMeta members of `metadata` are kept.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    prune_node(obj, schema, true, &mut path, &mut out);
    out
}

fn prune_node(
    v: &mut Value,
    schema: &Value,
    embedded: bool,
    path: &mut Vec<Segment>,
    out: &mut Vec<FieldPath>,
) {
    let Some(s) = schema.as_object() else { return };
    match v {
        Value::Object(obj) => {
            let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = obj.keys().cloned().collect();
            for k in keys {
                path.push(Segment::Key(k.clone()));
                if embedded && (k == "apiVersion" || k == "kind") {
                    path.pop();
                    continue;
                }
                if embedded && k == "metadata" {
                    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        let unknown: Vec<String> = md
                            .keys()
                            .filter(|m| !OBJECT_META.contains(&m.as_str()))
                            .cloned()
                            .collect();
                        for m in unknown {
                            md.remove(&m);
                            let mut p = path.clone();
                            p.push(Segment::Key(m));
                            out.push(FieldPath(p));
                        }
                    }
                    path.pop();
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(cs) => {
                        let child_embedded =
                            cs.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
                        if let Some(child) = obj.get_mut(&k) {
                            prune_node(child, cs, child_embedded, path, out);
                        }
                    }
                    None if preserve || additional_true(s) => {}
                    None => {
                        obj.remove(&k);
                        out.push(FieldPath(path.clone()));
                    }
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                let item_embedded =
                    item_schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Segment::Index(i));
                    prune_node(item, item_schema, item_embedded, path, out);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// `additionalProperties: true` keeps every member (allowed only without
/// `properties`, where it means a free-form map).
fn additional_true(s: &Map<String, Value>) -> bool {
    s.get("additionalProperties") == Some(&Value::Bool(true))
}

/// Sets the `default` of every missing field `schema` defaults, top down,
/// as the apiextensions defaulting does. A `null` member of a field that is
/// not `nullable` is dropped first (`PruneNonNullableNullsWithoutDefaults`),
/// then defaulted when the field has a default. The root's `metadata` is
/// the server's, never defaulted from the schema.
pub fn apply_defaults(v: &mut Value, schema: &Value) {
    apply_defaults_at(v, schema, true);
}

fn apply_defaults_at(v: &mut Value, schema: &Value, root: bool) {
    let Some(s) = schema.as_object() else { return };
    match v {
        Value::Object(obj) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if root && k == "metadata" {
                        continue;
                    }
                    let nullable = ps.get("nullable") == Some(&Value::Bool(true));
                    if !nullable && obj.get(k).is_some_and(Value::is_null) {
                        obj.remove(k);
                    }
                    if let Some(default) = ps.get("default")
                        && !obj.contains_key(k)
                    {
                        obj.insert(k.clone(), default.clone());
                    }
                }
                for (k, ps) in props {
                    if root && k == "metadata" {
                        continue;
                    }
                    if let Some(child) = obj.get_mut(k) {
                        apply_defaults_at(child, ps, false);
                    }
                }
            } else if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in obj.values_mut() {
                    apply_defaults_at(child, additional, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items {
                    apply_defaults_at(item, is, false);
                }
            }
        }
        _ => {}
    }
}

/// The JSON pointer of a field path as errors print it
/// (`spec.ports[0].name` → `/spec/ports/0/name`; `""` → the root).
pub fn pointer_of(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        let name_end = rest.find('[').unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_end);
        out.push('/');
        out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        rest = tail;
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            out.push('/');
            out.push_str(&stripped[..end]);
            rest = &stripped[end + 1..];
        }
    }
    out
}

/// Whether `v` is of OpenAPI type `ty`.
fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

/// kube-openapi's rendering of the bad value in a `must be of type`
/// message: strings quoted, `null` as `"null"`, others as JSON.
fn quoted(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".into(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Checks `obj` (a custom resource) against its version's schema; the
/// errors carry kube-apiserver's paths and messages. `metadata`,
/// `apiVersion` and `kind` at the root are the REST layer's.
pub fn validate(obj: &Value, schema: &Value, patterns: &Patterns) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (Some(o), Some(s)) = (obj.as_object(), schema.as_object()) else {
        return errs;
    };
    let props = s.get("properties").and_then(Value::as_object);
    if let Some(props) = props {
        for (k, ps) in props {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(child) = o.get(k) {
                check(child, ps, k, patterns, &mut errs);
            }
        }
    }
    required(o, s, "", &mut errs);
    errs
}

fn required(
    o: &Map<String, Value>,
    s: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !o.contains_key(r) {
            let field = if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            };
            errs.push(FieldError::required(field, ""));
        }
    }
}

fn type_invalid(path: &str, v: &Value, detail: String) -> FieldError {
    FieldError {
        reason: "FieldValueTypeInvalid",
        field: path.to_string(),
        message: format!("Invalid value: {}: {detail}", render_value(v)),
    }
}

fn check(v: &Value, schema: &Value, path: &str, patterns: &Patterns, errs: &mut Vec<FieldError>) {
    let Some(s) = schema.as_object() else { return };
    if v.is_null() {
        if s.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(ty) = s.get("type").and_then(Value::as_str) {
            errs.push(type_invalid(
                path,
                v,
                format!("{path} in body must be of type {ty}: \"null\""),
            ));
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !(v.is_string() || has_type(v, "integer")) {
            errs.push(type_invalid(
                path,
                v,
                format!(
                    "{path} in body must be of type integer,string: {}",
                    quoted(v)
                ),
            ));
        }
    } else if let Some(ty) = s.get("type").and_then(Value::as_str)
        && !has_type(v, ty)
    {
        errs.push(type_invalid(
            path,
            v,
            format!("{path} in body must be of type {ty}: {}", quoted(v)),
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let rendered: Vec<String> = allowed.iter().map(render_value).collect();
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(v),
                rendered.join(", ")
            ),
        });
    }
    match v {
        Value::Number(n) => number(n.as_f64().unwrap_or(0.0), v, s, path, errs),
        Value::String(text) => string(text, v, s, path, patterns, errs),
        Value::Array(items) => {
            let n = items.len() as u64;
            count(n, ("maxItems", "minItems", "items"), v, s, path, errs);
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, is, &format!("{path}[{i}]"), patterns, errs);
                }
            }
        }
        Value::Object(o) => {
            let n = o.len() as u64;
            count(
                n,
                ("maxProperties", "minProperties", "properties"),
                v,
                s,
                path,
                errs,
            );
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in o {
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    check(child, cs, &format!("{path}.{k}"), patterns, errs);
                }
            }
            required(o, s, path, errs);
        }
        _ => {}
    }
}

/// The bounds on a list's items or an object's members: `n` against
/// `keys` (max, min, and the noun of the minimum's message). Both maxima
/// read `Too many: N: must have at most M items`, as kube-apiserver
/// words them.
fn count(
    n: u64,
    (max_key, min_key, noun): (&str, &str, &str),
    v: &Value,
    s: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(max) = s.get(max_key).and_then(Value::as_u64)
        && n > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {n}: must have at most {max} items"),
        });
    }
    if let Some(min) = s.get(min_key).and_then(Value::as_u64)
        && n < min
    {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should have at least {min} {noun}"),
        ));
    }
}

fn number(f: f64, v: &Value, s: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let limit = |k: &str| s.get(k).and_then(Value::as_f64);
    let shown = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            x.to_string()
        }
    };
    if let Some(min) = limit("minimum") {
        if flag(s, "exclusiveMinimum") && f <= min {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{path} in body should be greater than {}", shown(min)),
            ));
        } else if f < min {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!(
                    "{path} in body should be greater than or equal to {}",
                    shown(min)
                ),
            ));
        }
    }
    if let Some(max) = limit("maximum") {
        if flag(s, "exclusiveMaximum") && f >= max {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{path} in body should be less than {}", shown(max)),
            ));
        } else if f > max {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!(
                    "{path} in body should be less than or equal to {}",
                    shown(max)
                ),
            ));
        }
    }
    if let Some(m) = limit("multipleOf")
        && m > 0.0
        && (f / m).fract().abs() > 1e-9
    {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should be a multiple of {}", shown(m)),
        ));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str) {
        let ok = match format {
            "int32" => f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX),
            _ => true,
        };
        if !ok {
            errs.push(type_invalid(
                path,
                v,
                format!("{path} in body must be of type {format}: {}", quoted(v)),
            ));
        }
    }
}

fn string(
    text: &str,
    v: &Value,
    s: &Map<String, Value>,
    path: &str,
    patterns: &Patterns,
    errs: &mut Vec<FieldError>,
) {
    let chars = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errs.push(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && let Some(re) = patterns.get(p)
        && !re.is_match(text)
    {
        errs.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should match '{p}'"),
        ));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && !format_ok(format, text)
    {
        errs.push(type_invalid(
            path,
            v,
            format!("{path} in body must be of type {format}: {}", quoted(v)),
        ));
    }
}

/// The string formats kube-apiserver checks (a subset of kube-openapi's
/// `strfmt` registry; unknown formats pass, as there).
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "int-or-string" => true,
        _ => true,
    }
}
