//! Dynamic resource allocation (`resource.k8s.io/v1`): the validation of
//! kube-apiserver's pkg/apis/resource/validation that a client meets most
//! often, as pure functions over the JSON object. DeviceClasses,
//! ResourceClaims, ResourceClaimTemplates and ResourceSlices are stored and
//! served; allocating devices is a scheduler's and a driver's work, which a
//! virtual cluster leaves to its host.
//!
//! Checked: a claim's (and a template's) device requests, each named (a
//! DNS label, unique) with exactly one of `exactly` or `firstAvailable`
//! (subrequests named and unique too), a device class name (a DNS
//! subdomain), the allocation mode and count, CEL device selectors that
//! compile (also a DeviceClass's), and the spec immutable after create;
//! `adminAccess` only in a namespace labelled for it (admission, in
//! `rest/admission.rs`); a slice's driver (a DNS subdomain)
//! and pool (a name, `resourceSliceCount` above zero, `generation` not
//! negative), exactly one of `nodeName`, `nodeSelector`, `allNodes`,
//! `perDeviceNodeSelection`, and its driver, pool name and node name
//! immutable.

use serde_json::{Value, json};
use vkube_core::field::FieldError;
use vkube_core::validation::{is_dns1123_label, is_dns1123_subdomain};

/// `field.Required` for an empty string at `path`, else the format errors
/// `check` reports.
fn named(path: &str, value: &str, check: fn(&str) -> Vec<String>) -> Vec<FieldError> {
    if value.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    check(value)
        .into_iter()
        .map(|e| FieldError::invalid(path, &json!(value), &e))
        .collect()
}

/// The longest CEL selector expression kube compiles
/// (`CELSelectorExpressionMaxLength`, bytes).
pub const CEL_SELECTOR_MAX_LENGTH: usize = 10 * 1024;

/// The identifiers a device selector's CEL expression may name: kube's DRA
/// CEL environment declares `device`; the type names are cel-go's.
const CEL_SELECTOR_VARIABLES: &[&str] = &[
    "device",
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// The namespaces of the functions kube's CEL libraries add
/// (`optional.of`, `strings.quote`, `sets.contains`, `math.greatest`,
/// `base64.encode`, `cel.bind`): a call on one is a function name, not a
/// reference to a variable.
const CEL_FUNCTION_NAMESPACES: &[&str] = &["base64", "cel", "math", "optional", "sets", "strings"];

/// The errors of a device selector's CEL `expression` at `path`, as kube's
/// `validateCELSelector`: too long (`TooLong`, not compiled), else the
/// compilation errors in cel-go's form (`compilation failed: ERROR:
/// <input>:LINE:COLUMN: message` with the line and a caret), syntax errors
/// and references to undeclared variables. The syntax is kube's: optional
/// selection (`a.?b`) and the variables of two-variable comprehensions and
/// `cel.bind` are accepted. Unlike cel-go, the crate checks no types: an
/// expression of another type than bool, or calling a function with the
/// wrong arguments, passes here.
pub fn cel_selector_errors(expression: &str, path: &str) -> Option<FieldError> {
    if expression.len() > CEL_SELECTOR_MAX_LENGTH {
        return Some(FieldError::too_long(path, CEL_SELECTOR_MAX_LENGTH));
    }
    // The parser and the tree it builds recurse once per nesting level, and
    // `a+a+…` nests as deep as it is long: compiled on a thread whose stack
    // holds the deepest expression the length limit lets through, so that
    // no input overflows a server thread's stack.
    let issues = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(CEL_COMPILE_STACK_BYTES)
            .spawn_scoped(s, || compile_issues(expression))
            .map(|t| t.join())
    });
    let issues = match issues {
        Ok(Ok(issues)) => issues?,
        // No thread (resources exhausted) or a bug in the parser.
        Ok(Err(_)) | Err(_) => "ERROR: <input>:1:1: the expression could not be compiled".into(),
    };
    Some(FieldError::invalid(
        path,
        &json!(expression),
        &format!("compilation failed: {issues}"),
    ))
}

/// The stack of the thread compiling a CEL selector, in bytes: reserved,
/// not committed, so an ordinary expression touches a few pages of it. The
/// deepest expressions of the length limit need 8 MiB in a debug build
/// (the unit tests try them); this is four times that.
const CEL_COMPILE_STACK_BYTES: usize = 32 << 20;

/// The compilation errors of `expression` as cel-go lists them, or `None`.
fn compile_issues(expression: &str) -> Option<String> {
    let parsed = cel::parser::Parser::new()
        .enable_optional_syntax(true)
        // cel-go's default nesting limit.
        .max_recursion_depth(CEL_MAX_RECURSION_DEPTH)
        .parse_with_source_info(expression);
    let issues = match parsed {
        // cel-go indents the snippet lines by one space.
        Err(e) => recursion_limit_as_cel_go(&e.to_string()).replace("\n| ", "\n | "),
        Ok((expr, source_info)) => {
            let mut undeclared = Vec::new();
            undeclared_references(&expr, &mut Vec::new(), &mut undeclared);
            let offset = |id: u64| source_info.offset_for(id).map_or(0, |(start, _)| start);
            undeclared.sort_by_key(|(id, _)| offset(*id));
            let truncated = undeclared.len().saturating_sub(CEL_MAX_ERRORS_REPORTED);
            let mut messages: Vec<String> = undeclared
                .iter()
                .take(CEL_MAX_ERRORS_REPORTED)
                .map(|(id, name)| {
                    cel_go_error(
                        expression,
                        offset(*id) as usize,
                        &format!("undeclared reference to '{name}' (in container '')"),
                    )
                })
                .collect();
            if messages.is_empty() {
                return None;
            }
            if truncated > 0 {
                messages.push(format!("{truncated} more errors were truncated"));
            }
            messages.join("\n")
        }
    };
    Some(issues)
}

/// The crate's parse errors with its nesting-limit error in cel-go's words
/// (`ERROR: <input>:L:C: expression recursion limit exceeded: 250`).
fn recursion_limit_as_cel_go(errors: &str) -> String {
    errors
        .split('\n')
        .map(|line| match line.split_once(": Syntax error: ") {
            Some((at, why)) if why.contains("Recursion limit of") => {
                format!("{at}: expression recursion limit exceeded: {CEL_MAX_RECURSION_DEPTH}")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How deep cel-go's parser lets an expression nest by default.
const CEL_MAX_RECURSION_DEPTH: u16 = 250;

/// The most errors cel-go lists for one expression; the rest are counted.
const CEL_MAX_ERRORS_REPORTED: usize = 100;

/// An error at byte `offset` of `source` as cel-go prints one: line and
/// column (in characters, from 1) and the line with a caret under it.
fn cel_go_error(source: &str, offset: usize, message: &str) -> String {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count();
    let text = source.lines().nth(line - 1).unwrap_or_default();
    format!(
        "ERROR: <input>:{line}:{}: {message}\n | {text}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}

/// Identifiers in `expr` that are neither declared variables nor bound by
/// an enclosing comprehension (`all`, `exists`, `map`, …), with their node
/// ids.
fn undeclared_references(
    expr: &cel::IdedExpr,
    bound: &mut Vec<String>,
    out: &mut Vec<(u64, String)>,
) {
    use cel::common::ast::{EntryExpr, Expr};
    let mut walk =
        |e: &cel::IdedExpr, bound: &mut Vec<String>| undeclared_references(e, bound, out);
    match &expr.expr {
        Expr::Ident(name) => {
            // `.device` names the root-scope `device`.
            let root = name.strip_prefix('.');
            if !name.starts_with('@')
                && !CEL_SELECTOR_VARIABLES.contains(&root.unwrap_or(name))
                && (root.is_some() || !bound.contains(name))
            {
                out.push((expr.id, name.clone()));
            }
        }
        Expr::Select(s) => walk(&s.operand, bound),
        Expr::Call(c) => {
            let binding = binding_call(c);
            let bind = binding.is_some_and(|(_, bind)| bind);
            let namespaced = |t: &cel::IdedExpr| matches!(&t.expr, Expr::Ident(n) if CEL_FUNCTION_NAMESPACES.contains(&n.as_str()) && !bound.contains(n));
            if let Some(t) = c.target.as_deref().filter(|t| !bind && !namespaced(t)) {
                walk(t, bound);
            }
            let vars = binding.map_or(0, |(vars, _)| vars);
            let depth = bound.len();
            for (i, a) in c.args.iter().enumerate() {
                match &a.expr {
                    Expr::Ident(name) if i < vars => bound.push(name.clone()),
                    // `cel.bind(var, init, result)`: `init` is outside.
                    _ if bind && i == vars => {
                        let inner = bound.split_off(depth);
                        walk(a, bound);
                        bound.extend(inner);
                    }
                    _ => walk(a, bound),
                }
            }
            bound.truncate(depth);
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound);
            walk(&c.accu_init, bound);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound);
            walk(&c.loop_step, bound);
            walk(&c.result, bound);
            bound.truncate(depth);
        }
        Expr::List(l) => {
            for e in &l.elements {
                walk(e, bound);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(e) => {
                        walk(&e.key, bound);
                        walk(&e.value, bound);
                    }
                    EntryExpr::StructField(f) => walk(&f.value, bound),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(e) => {
                        walk(&e.key, bound);
                        walk(&e.value, bound);
                    }
                    EntryExpr::StructField(f) => walk(&f.value, bound),
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The variables a call the parser left unexpanded binds: `(n, bind)` when
/// its first `n` arguments name variables for the rest: the two-variable
/// comprehensions (`all`, `exists`, `existsOne`, `transformList`,
/// `transformMap`, `transformMapEntry`), `optMap`/`optFlatMap`,
/// and `cel.bind(var, init, result)` (`bind`: its next argument, `init`,
/// is outside the binding and its target is the `cel` namespace).
fn binding_call(c: &cel::common::ast::CallExpr) -> Option<(usize, bool)> {
    use cel::common::ast::Expr;
    let target = c.target.as_deref().map(|t| &t.expr);
    match (c.func_name.as_str(), c.args.len()) {
        ("bind", 3) if matches!(target, Some(Expr::Ident(n)) if n == "cel") => Some((1, true)),
        _ if target.is_none() => None,
        ("all" | "exists" | "existsOne" | "exists_one", 3)
        | ("transformList" | "transformMap" | "transformMapEntry", 3 | 4) => Some((2, false)),
        ("optMap" | "optFlatMap", 2) => Some((1, false)),
        _ => None,
    }
}

/// The device selectors at `path` (kube's `validateSelectorSlice`): each
/// needs `cel`, whose expression must compile.
fn selectors(list: &Value, path: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (i, s) in list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match s.get("cel").filter(|c| !c.is_null()) {
            None => out.push(FieldError::required(format!("{path}[{i}].cel"), "")),
            Some(c) => out.extend(cel_selector_errors(
                c["expression"].as_str().unwrap_or_default(),
                &format!("{path}[{i}].cel.expression"),
            )),
        }
    }
    out
}

/// A request's (or subrequest's) device class, selectors and allocation
/// mode at `at` (kube's `validateExactDeviceRequest` and the shared part of
/// `validateDeviceSubRequest`).
fn device_request_body(r: &Value, at: &str) -> Vec<FieldError> {
    let class = r["deviceClassName"].as_str().unwrap_or_default();
    let mut out = named(
        &format!("{at}.deviceClassName"),
        class,
        is_dns1123_subdomain,
    );
    out.extend(selectors(&r["selectors"], &format!("{at}.selectors")));
    let count = r["count"].as_i64().unwrap_or(0);
    match r["allocationMode"].as_str().unwrap_or_default() {
        "All" if count != 0 => out.push(FieldError::invalid(
            format!("{at}.count"),
            &json!(count),
            "must not be specified when allocationMode is 'All'",
        )),
        "All" => {}
        "ExactCount" if count <= 0 => out.push(FieldError::invalid(
            format!("{at}.count"),
            &json!(count),
            "must be greater than zero",
        )),
        "ExactCount" => {}
        other => out.push(FieldError::not_supported(
            format!("{at}.allocationMode"),
            &json!(other),
            &["All", "ExactCount"],
        )),
    }
    out
}

/// Named items at `path`, each checked by `check`, then a `Duplicate` for
/// every repeated name (kube reports them after every item's own errors).
fn named_items(
    list: &Value,
    path: &str,
    check: impl Fn(&Value, &str) -> Vec<FieldError>,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let at = format!("{path}[{i}]");
        let name = r["name"].as_str().unwrap_or_default();
        out.extend(named(&format!("{at}.name"), name, is_dns1123_label));
        if !name.is_empty() && seen.contains(&name) {
            duplicates.push(FieldError::duplicate(at.clone(), &json!(name)));
        }
        seen.push(name);
        out.extend(check(r, &at));
    }
    out.extend(duplicates);
    out
}

/// The device requests at `pointer` of `obj`, reported under `path`
/// (kube's `validateDeviceRequest`): each named, with exactly one of
/// `exactly` or `firstAvailable`, then that one's contents.
fn requests(obj: &Value, pointer: &str, path: &str) -> Vec<FieldError> {
    let list = obj.pointer(pointer).cloned().unwrap_or(Value::Null);
    named_items(&list, path, |r, at| {
        let exactly = r.get("exactly").filter(|v| !v.is_null());
        let first = r["firstAvailable"].as_array().filter(|a| !a.is_empty());
        match (exactly, first) {
            (None, None) => vec![FieldError::required(
                at,
                "exactly one of `exactly` or `firstAvailable` is required",
            )],
            (Some(_), Some(_)) => vec![FieldError::invalid(
                at,
                &Value::Null,
                "exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set",
            )],
            (Some(e), None) => device_request_body(e, &format!("{at}.exactly")),
            (None, Some(_)) => named_items(
                &r["firstAvailable"],
                &format!("{at}.firstAvailable"),
                device_request_body,
            ),
        }
    })
}

/// A DeviceClass's validation (kube's `validateDeviceClassSpec`, the
/// selectors).
pub fn validate_device_class(obj: &Value) -> Vec<FieldError> {
    selectors(
        obj.pointer("/spec/selectors").unwrap_or(&Value::Null),
        "spec.selectors",
    )
}

/// The path of the first device request asking for `adminAccess`, as kube's
/// `AuthorizedForAdmin` reports it (`spec.devices.requests[i].adminAccess`;
/// subrequests cannot ask), for the requests at `pointer`.
pub fn admin_access_requested(obj: &Value, pointer: &str) -> Option<String> {
    obj.pointer(pointer)?
        .as_array()?
        .iter()
        .position(|r| r.pointer("/exactly/adminAccess") == Some(&Value::Bool(true)))
        .map(|i| format!("spec.devices.requests[{i}].adminAccess"))
}

/// The namespace label that allows admin access to devices
/// (`resource.kubernetes.io/admin-access: "true"`).
pub const ADMIN_ACCESS_NAMESPACE_LABEL: &str = "resource.kubernetes.io/admin-access";

/// kube's defaults of device requests at `pointer` (`SetDefaults_…`): an
/// `exactly` request and each `firstAvailable` subrequest allocate
/// `ExactCount`, and with that mode one device.
fn default_requests(obj: &mut Value, pointer: &str) {
    let Some(list) = obj.pointer_mut(pointer).and_then(Value::as_array_mut) else {
        return;
    };
    let mut bodies: Vec<&mut serde_json::Map<String, Value>> = Vec::new();
    for r in list {
        let Some(r) = r.as_object_mut() else {
            continue;
        };
        let key = if r.get("exactly").is_some_and(Value::is_object) {
            "exactly"
        } else {
            "firstAvailable"
        };
        match r.get_mut(key) {
            Some(Value::Object(e)) => bodies.push(e),
            Some(Value::Array(subs)) => {
                bodies.extend(subs.iter_mut().filter_map(Value::as_object_mut));
            }
            _ => {}
        }
    }
    for e in bodies {
        let mode = e
            .entry("allocationMode")
            .or_insert_with(|| json!("ExactCount"))
            .clone();
        if mode == "ExactCount" {
            e.entry("count").or_insert_with(|| json!(1));
        }
    }
}

/// A ResourceClaim's defaults.
pub fn default_claim(obj: &mut Value) {
    default_requests(obj, "/spec/devices/requests");
}

/// A ResourceClaimTemplate's defaults.
pub fn default_claim_template(obj: &mut Value) {
    default_requests(obj, "/spec/spec/devices/requests");
}

/// A ResourceClaim's create validation.
pub fn validate_claim(obj: &Value) -> Vec<FieldError> {
    requests(obj, "/spec/devices/requests", "spec.devices.requests")
}

/// A ResourceClaimTemplate's create validation.
pub fn validate_claim_template(obj: &Value) -> Vec<FieldError> {
    requests(
        obj,
        "/spec/spec/devices/requests",
        "spec.spec.devices.requests",
    )
}

/// `spec` of `new` must equal `old`'s (`ValidateImmutableField`), plus
/// `check` of a changed `new`. An unchanged spec is not checked again, so
/// an object stored before a rule existed (kube compiles stored CEL in a
/// laxer environment) can still have its metadata and finalizers written.
pub fn spec_immutable(
    new: &Value,
    old: &Value,
    check: fn(&Value) -> Vec<FieldError>,
) -> Vec<FieldError> {
    if new.get("spec") == old.get("spec") {
        return Vec::new();
    }
    // kube reports the immutable spec first, then what is wrong in it.
    let mut out = vec![FieldError::immutable(
        "spec",
        new.get("spec").unwrap_or(&Value::Null),
    )];
    out.extend(check(new));
    out
}

/// A DeviceClass update: its selectors are checked when they changed (as
/// [`spec_immutable`], stored expressions are not compiled again).
pub fn validate_device_class_update(new: &Value, old: &Value) -> Vec<FieldError> {
    if new.pointer("/spec/selectors") == old.pointer("/spec/selectors") {
        return Vec::new();
    }
    validate_device_class(new)
}

/// A ResourceSlice's validation (create when `old` is `None`).
pub fn validate_slice(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let mut out = named(
        "spec.driver",
        &text(obj, "/spec/driver").unwrap_or_default(),
        is_dns1123_subdomain,
    );
    out.extend(named(
        "spec.pool.name",
        &text(obj, "/spec/pool/name").unwrap_or_default(),
        |_| Vec::new(),
    ));
    let count = obj
        .pointer("/spec/pool/resourceSliceCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if count <= 0 {
        out.push(FieldError::invalid(
            "spec.pool.resourceSliceCount",
            &json!(count),
            "must be greater than zero",
        ));
    }
    let generation = obj
        .pointer("/spec/pool/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if generation < 0 {
        out.push(FieldError::invalid(
            "spec.pool.generation",
            &json!(generation),
            "must be greater than or equal to zero",
        ));
    }
    let mut set = Vec::new();
    match obj.pointer("/spec/nodeName").filter(|v| !v.is_null()) {
        Some(Value::String(n)) if !n.is_empty() => set.push("`nodeName`"),
        Some(v) => out.push(FieldError::invalid(
            "spec.nodeName",
            v,
            "must be either unset or set to a non-empty string",
        )),
        None => {}
    }
    if obj
        .pointer("/spec/nodeSelector")
        .is_some_and(|v| !v.is_null())
    {
        set.push("`nodeSelector`");
    }
    for (field, label) in [
        ("allNodes", "`allNodes`"),
        ("perDeviceNodeSelection", "`perDeviceNodeSelection`"),
    ] {
        match obj
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_bool)
        {
            Some(true) => set.push(label),
            Some(false) => out.push(FieldError::invalid(
                format!("spec.{field}"),
                &json!(false),
                "must be either unset or set to true",
            )),
            None => {}
        }
    }
    match set.len() {
        0 => out.push(FieldError::required(
            "spec",
            "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required",
        )),
        1 => {}
        _ => out.push(FieldError::invalid(
            "spec",
            &json!(format!("{{{}}}", set.join(", "))),
            "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set",
        )),
    }
    if let Some(old) = old {
        for (pointer, path) in [
            ("/spec/pool/name", "spec.pool.name"),
            ("/spec/driver", "spec.driver"),
            ("/spec/nodeName", "spec.nodeName"),
        ] {
            let (n, o) = (obj.pointer(pointer), old.pointer(pointer));
            if n != o {
                out.push(FieldError::immutable(path, n.unwrap_or(&Value::Null)));
            }
        }
    }
    out
}

/// The State column of `kubectl get resourceclaims` (kube's
/// `resourceClaimState`): `deleted`, then `pending`, or `allocated` and
/// `reserved`, joined by commas.
pub fn claim_state(obj: &Value) -> String {
    let deleting = crate::meta::is_deleting(obj);
    let mut states = Vec::new();
    if deleting {
        states.push("deleted");
    }
    if obj.pointer("/status/allocation").is_none_or(Value::is_null) {
        if !deleting {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if obj
            .pointer("/status/reservedFor")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
        {
            states.push("reserved");
        }
    }
    states.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn claims_need_named_requests_of_one_kind() {
        let mut good = json!({"spec": {"devices": {"requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}}});
        let mut defaulted = good.clone();
        default_claim(&mut defaulted);
        assert_eq!(
            defaulted["spec"]["devices"]["requests"][0]["exactly"],
            json!({"deviceClassName": "gpu.example.com", "allocationMode": "ExactCount", "count": 1})
        );
        // Validation runs on the defaulted object, as kube's does.
        default_claim(&mut good);
        assert!(validate_claim(&good).is_empty());
        let bad = json!({"spec": {"devices": {"requests": [
            {"name": "gpu"},
            {"name": "gpu", "exactly": {"deviceClassName": "c"}, "firstAvailable": [{"name": "a"}]}]}}});
        assert_eq!(
            messages(&validate_claim(&bad)),
            [
                "spec.devices.requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required",
                "spec.devices.requests[1]: Invalid value: null: exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set",
                "spec.devices.requests[1]: Duplicate value: \"gpu\"",
            ]
        );
        let mut changed = good.clone();
        changed["spec"]["devices"]["requests"][0]["name"] = json!("other");
        assert_eq!(
            messages(&spec_immutable(&changed, &good, validate_claim)),
            [format!(
                "spec: Invalid value: {}: field is immutable",
                vkube_core::field::render_value(&changed["spec"])
            )]
        );
    }

    #[test]
    fn selectors_must_compile_and_modes_match_their_counts() {
        let claim = |requests: Value| json!({"spec": {"devices": {"requests": requests}}});
        let good = claim(json!([
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com",
                "allocationMode": "ExactCount", "count": 2,
                "selectors": [{"cel": {"expression":
                    "device.driver == 'gpu.example.com' && device.attributes['gpu.example.com'].model.exists(m, m == 'a')"}}]}},
            {"name": "any", "firstAvailable": [
                {"name": "big", "deviceClassName": "big", "allocationMode": "All"},
                {"name": "small", "deviceClassName": "small", "allocationMode": "ExactCount", "count": 1}]}
        ]));
        assert!(
            validate_claim(&good).is_empty(),
            "{:?}",
            messages(&validate_claim(&good))
        );
        let bad = claim(json!([
            {"name": "gpu", "exactly": {"deviceClassName": "Not_A_Class",
                "allocationMode": "All", "count": 3,
                "selectors": [{"cel": {"expression": "device.driver =="}},
                              {"cel": {"expression": "dev.driver == 'x' && devize"}},
                              {}]}},
            {"name": "any", "firstAvailable": [
                {"name": "a", "deviceClassName": "c", "allocationMode": "Some"},
                {"name": "a", "deviceClassName": "", "allocationMode": "ExactCount", "count": 0}]}
        ]));
        let got = messages(&validate_claim(&bad));
        assert_eq!(
            got[0],
            "spec.devices.requests[0].exactly.deviceClassName: Invalid value: \"Not_A_Class\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert!(got[1].starts_with("spec.devices.requests[0].exactly.selectors[0].cel.expression: Invalid value: \"device.driver ==\": compilation failed: ERROR: <input>:1:"), "{}", got[1]);
        assert_eq!(
            got[2],
            "spec.devices.requests[0].exactly.selectors[1].cel.expression: Invalid value: \"dev.driver == 'x' && devize\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'dev' (in container '')\n | dev.driver == 'x' && devize\n | ^\nERROR: <input>:1:22: undeclared reference to 'devize' (in container '')\n | dev.driver == 'x' && devize\n | .....................^"
        );
        assert_eq!(
            got[3..],
            [
                "spec.devices.requests[0].exactly.selectors[2].cel: Required value",
                "spec.devices.requests[0].exactly.count: Invalid value: 3: must not be specified when allocationMode is 'All'",
                "spec.devices.requests[1].firstAvailable[0].allocationMode: Unsupported value: \"Some\": supported values: \"All\", \"ExactCount\"",
                "spec.devices.requests[1].firstAvailable[1].deviceClassName: Required value",
                "spec.devices.requests[1].firstAvailable[1].count: Invalid value: 0: must be greater than zero",
                "spec.devices.requests[1].firstAvailable[1]: Duplicate value: \"a\"",
            ]
        );
        let long = "device.driver == 'x' || ".repeat(500) + "true";
        assert_eq!(
            cel_selector_errors(&long, "e").map(|e| e.message),
            Some("Too long: may not be more than 10240 bytes".to_string())
        );
        // Subrequests are defaulted as requests are.
        let mut defaulted = claim(
            json!([{"name": "any", "firstAvailable": [{"name": "a", "deviceClassName": "c"}]}]),
        );
        default_claim(&mut defaulted);
        assert_eq!(
            defaulted["spec"]["devices"]["requests"][0]["firstAvailable"][0]["count"],
            1
        );
        // A DeviceClass's selectors, checked again only when they change.
        let class = json!({"spec": {"selectors": [{"cel": {"expression": "x"}}]}});
        assert_eq!(validate_device_class(&class).len(), 1);
        assert!(validate_device_class_update(&class, &class).is_empty());
        assert_eq!(
            admin_access_requested(
                &claim(json!([{"name": "a"}, {"name": "b", "exactly": {"adminAccess": true}}])),
                "/spec/devices/requests"
            ),
            Some("spec.devices.requests[1].adminAccess".to_string())
        );
    }

    #[test]
    fn cel_errors_are_placed_by_character_capped_and_survive_deep_nesting() {
        let e = |expr: &str| cel_selector_errors(expr, "e").map(|e| e.message);
        // Columns count characters, not bytes.
        let got = e("'é' == 'é' && unknown").unwrap();
        assert!(
            got.contains("ERROR: <input>:1:15: undeclared reference to 'unknown'"),
            "{got}"
        );
        // Past 100 errors, cel-go counts the rest.
        let many: Vec<String> = (0..103).map(|i| format!("v{i}")).collect();
        let got = e(&many.join(" && ")).unwrap();
        assert_eq!(got.matches("ERROR: ").count(), 100);
        assert!(got.ends_with("\n3 more errors were truncated"), "{got}");
        // Expressions kube's environment accepts: optional field selection,
        // two-variable comprehensions and an absolute variable name.
        for ok in [
            "device.attributes['gpu.example.com'].?model.orValue('') == 'a'",
            "device.attributes.all(domain, attrs, attrs.size() >= 0)",
            ".device.driver == 'x'",
            "cel.bind(d, device.driver, d == 'x' || d == 'y')",
            "optional.of(device.driver).hasValue() && type(device.driver) == string",
            "strings.quote(device.driver) != '' && sets.contains([1], [1])",
        ] {
            assert_eq!(e(ok), None, "{ok}");
        }
        let got = e(&("(".repeat(300) + "1" + &")".repeat(300))).unwrap();
        assert!(
            got.contains("compilation failed: ERROR: <input>:1:252: expression recursion limit exceeded: 250\n | ((("),
            "{got}"
        );
        // Nesting within cel-go's limit compiles.
        assert_eq!(e(&("(".repeat(200) + "1" + &")".repeat(200))), None);
        // Deeply nested input is refused (or accepted), never a crash.
        for deep in [
            "a+".repeat(5000) + "a",
            "(".repeat(5000) + "1" + &")".repeat(5000),
            "!".repeat(10_000) + "true",
            "[".repeat(5000) + &"]".repeat(5000),
            "a.".repeat(5000) + "b",
            "-".repeat(10_000) + "1",
            "f(".repeat(3000) + &")".repeat(3000),
            "{1:".repeat(2500) + "1" + &"}".repeat(2500),
            "a[".repeat(3000) + "0" + &"]".repeat(3000),
            "a.?".repeat(3000) + "b",
            "x ? ".repeat(1200) + "1" + &" : 2".repeat(1200),
        ] {
            assert!(deep.len() <= CEL_SELECTOR_MAX_LENGTH, "{}", &deep[..8]);
            let _ = e(&deep);
        }
    }

    #[test]
    fn slices_name_a_driver_a_pool_and_exactly_one_node_selection() {
        let good = json!({"spec": {"driver": "gpu.example.com", "nodeName": "n1",
            "pool": {"name": "n1", "resourceSliceCount": 1}}});
        assert!(validate_slice(&good, None).is_empty());
        let bad = json!({"spec": {"nodeName": "n1", "allNodes": true,
            "pool": {"name": "p", "resourceSliceCount": 0}}});
        assert_eq!(
            messages(&validate_slice(&bad, None)),
            [
                "spec.driver: Required value",
                "spec.pool.resourceSliceCount: Invalid value: 0: must be greater than zero",
                "spec: Invalid value: \"{`nodeName`, `allNodes`}\": exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set",
            ]
        );
        let mut moved = good.clone();
        moved["spec"]["nodeName"] = json!("n2");
        assert_eq!(
            validate_slice(&moved, Some(&good))[0].field,
            "spec.nodeName"
        );
        assert_eq!(claim_state(&json!({})), "pending");
        assert_eq!(
            claim_state(&json!({"status": {"allocation": {}, "reservedFor": [{"name": "p"}]}})),
            "allocated,reserved"
        );
    }
}
