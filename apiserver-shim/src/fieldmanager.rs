//! `metadata.managedFields` and server-side apply for the REST layer: the
//! I/O-free glue between requests and [`vkube_core::managed_fields`],
//! after k8s.io/apimachinery/pkg/util/managedfields (`FieldManager`,
//! `stripMetaManager`, `managedFieldsUpdater`, `skipNonAppliedManager`,
//! `lastAppliedUpdater`) and k8s.io/apiserver/pkg/endpoints/handlers
//! (`managerOrUserAgent`, `ValidatePatchOptions`).
//!
//! The REST layer calls [`track_update`] on every create, update, non-apply
//! patch and subresource write, and [`apply`] for
//! `application/apply-patch+yaml`.

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::ResourceDef;
use crate::request::Query;
use http::{HeaderMap, header};
use serde_json::{Value, json};
use vkube_core::managed_fields::{
    self as mf, ApplySchema, Conflicts, ManagerEntry, PathElement, Writer,
};

/// The apply patch media type.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Manager given the fields of an object that had no managedFields when it
/// was first applied to (upstream `skipNonAppliedManager`).
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Longest fieldManager (`FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager of a write (`managerOrUserAgent`): the `fieldManager` query
/// parameter, else the User-Agent up to its first `/`, keeping printable
/// characters and at most 128 bytes (`kubectl/v1.34.0 (...)` → `kubectl`).
pub fn manager_name(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = &query.field_manager {
        return m.clone();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let prefix = ua.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

fn options_invalid(options_kind: &str, causes: Vec<Cause>) -> ApiError {
    let mut e = ApiError::invalid(options_kind, "meta.k8s.io", "", causes);
    if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut) {
        d.remove("name");
    }
    e
}

/// `ValidateDryRun`: every `dryRun` value must be `All`; otherwise one
/// `dryRun: Unsupported value: ["X"]: supported values: "All"` cause.
fn dry_run_causes(values: &[String]) -> Option<Cause> {
    if values.iter().all(|v| v == "All") {
        return None;
    }
    let given = serde_json::to_string(values).unwrap_or_default();
    Some(Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!("Unsupported value: {given}: supported values: \"All\""),
        field: "dryRun".into(),
    })
}

/// `ValidateDeleteOptions`' dry-run rule for a delete's `dryRun` values
/// (query and body together): `422` on `DeleteOptions.meta.k8s.io ""`.
pub fn validate_delete_dry_run(values: &[String]) -> ApiResult<()> {
    match dry_run_causes(values) {
        None => Ok(()),
        Some(c) => Err(options_invalid("DeleteOptions", vec![c])),
    }
}

/// Validates the write options that concern field management, as
/// `ValidateCreateOptions`/`ValidateUpdateOptions`/`ValidatePatchOptions`:
/// `dryRun` values only `All`; `fieldManager` at most 128 bytes of printable characters; for patches,
/// `fieldManager` required with apply and `force` forbidden without it.
/// Errors are `422 Invalid` on `<options_kind>.meta.k8s.io ""`, e.g.
/// `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`.
pub fn validate_options(options_kind: &str, query: &Query, apply: Option<bool>) -> ApiResult<()> {
    let mut causes: Vec<Cause> = dry_run_causes(&query.dry_run_values).into_iter().collect();
    match apply {
        Some(false) if query.force.is_some() => causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may not be specified for non-apply patch".into(),
            field: "force".into(),
        }),
        Some(true) if query.field_manager.is_none() => causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: is required for apply patch".into(),
            field: "fieldManager".into(),
        }),
        _ => {}
    }
    if let Some(m) = &query.field_manager {
        if m.len() > FIELD_MANAGER_MAX_LENGTH {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
                field: "fieldManager".into(),
            });
        }
        for (i, c) in m.char_indices().filter(|(_, c)| c.is_control()) {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {m:?}: invalid character U+{:04X} (at position {i})",
                    c as u32
                ),
                field: "fieldManager".into(),
            });
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(options_invalid(options_kind, causes))
    }
}

/// Whether a path is tracked for a write to `sub`: upstream's
/// `stripMetaManager` set (apiVersion, kind, metadata itself, name,
/// namespace, creationTimestamp, selfLink, uid, clusterName, generation,
/// managedFields, resourceVersion; plus the deletion fields, which only
/// DELETE sets) is never tracked, and the strategies' reset fields are
/// excluded: `status` for the main resource of kinds with a status
/// subresource, everything but `status` for the status subresource.
fn tracked(def: &ResourceDef, sub: Option<&str>) -> impl Fn(&[PathElement]) -> bool + use<> {
    let has_status = def.status;
    let sub = sub.map(str::to_string);
    move |p: &[PathElement]| {
        let field = |i: usize| match p.get(i) {
            Some(PathElement::Field(f)) => Some(f.as_str()),
            _ => None,
        };
        match (field(0), p.len()) {
            (None, _) | (Some("apiVersion" | "kind" | "metadata"), 1) => return false,
            (Some("metadata"), _) => {
                if let Some(
                    "name" | "namespace" | "creationTimestamp" | "selfLink" | "uid" | "clusterName"
                    | "generation" | "resourceVersion",
                ) = field(1)
                    && p.len() == 2
                {
                    return false;
                }
                if let Some("managedFields" | "deletionTimestamp" | "deletionGracePeriodSeconds") =
                    field(1)
                {
                    return false;
                }
            }
            _ => {}
        }
        match sub.as_deref() {
            None => !(has_status && field(0) == Some("status")),
            Some("status") => field(0) == Some("status"),
            Some(_) => true,
        }
    }
}

/// Stand-in for the Go zero value upstream compares a new object against
/// (`p.creater.New(kind)` serialised): `metadata`, `spec`, `status`, every
/// map on the way to a list of the kind's patch table (non-pointer structs
/// such as `spec.template.spec` or `spec.strategy`), and `containers: null`
/// in each PodSpec. A create then owns such structs' fields but not the
/// structs themselves, so `fieldsV1` shows `.` where upstream's does.
fn create_base(def: &ResourceDef) -> Value {
    let mut base = json!({"metadata": {}, "spec": {}, "status": {}});
    let table = vkube_core::smp::builtin(def.group, def.kind);
    for (path, strategy) in &table.entries {
        if path.contains("[]") {
            continue;
        }
        let mut segs: Vec<&str> = path.split('.').collect();
        let leaf = segs.pop().unwrap_or_default();
        if strategy.strategy == vkube_core::smp::Strategy::RetainKeys {
            segs.push(leaf);
        }
        let mut cur = &mut base;
        for seg in &segs {
            cur = crate::meta::ensure_object_value(cur, seg);
        }
        if leaf == "containers" && strategy.merge_key.is_some() {
            cur["containers"] = Value::Null;
        }
    }
    base
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("managedFields");
    }
    o
}

fn live_entries(obj: Option<&Value>) -> Vec<ManagerEntry> {
    obj.and_then(|o| mf::decode_entries(o.pointer("/metadata/managedFields")).ok())
        .unwrap_or_default()
}

fn set_entries(obj: &mut Value, entries: &[ManagerEntry]) {
    let encoded = mf::encode_entries(entries);
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if encoded.as_array().is_some_and(Vec::is_empty) {
        md.remove("managedFields");
    } else {
        md.insert("managedFields".into(), encoded);
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Records an Update-operation write of `new` (over `old`, `None` for a
/// create) by `manager` in `new`'s `metadata.managedFields`
/// (`FieldManager.Update`):
///
/// - on the main resource, managedFields sent in `new` that decode and are
///   not empty replace the live ones (clients may edit them); a list of
///   only empty entries (`[{}]`) clears them and records nothing; anything
///   else (absent, `[]`, undecodable, or a subresource write) keeps the
///   live ones;
/// - then the added and modified tracked fields move to the entry of
///   `manager` (operation Update, apiVersion of the kind, `subresource` set
///   for subresource writes), removed fields leave their owners, and empty
///   entries are dropped.
pub fn track_update(
    def: &ResourceDef,
    sub: Option<&str>,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
) {
    // Taken out of `new`, which then is the object compared (the entries
    // are set back below), so the object is not copied for the comparison.
    let sent = new
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|md| md.remove("managedFields"));
    if sub.is_none()
        && let Some(Value::Array(items)) = &sent
        && !items.is_empty()
        && items
            .iter()
            .all(|i| i.as_object().is_some_and(|m| m.is_empty()))
    {
        return;
    }
    let mut entries = match (sub, mf::decode_entries(sent.as_ref())) {
        (None, Ok(e)) if !e.is_empty() => e,
        _ => live_entries(old),
    };
    let before = old.map_or_else(|| create_base(def), without_managed_fields);
    let api_version = def.api_version();
    let time = now();
    let keep = tracked(def, sub);
    let writer = Writer {
        manager,
        api_version: &api_version,
        subresource: sub.unwrap_or(""),
        time: &time,
        tracked: &keep,
    };
    mf::update(
        &before,
        new,
        &mut entries,
        &writer,
        &ApplySchema::builtin(def.group, def.kind),
    );
    if new.get("metadata").is_none() {
        new["metadata"] = json!({});
    }
    set_entries(new, &entries);
}

/// How YAML from clients is read, as kube-apiserver's YAML decoder
/// (sigs.k8s.io/yaml, YAML 1.1 scalars) reads it: `yes`/`on`/`y` are
/// booleans and a leading `0` makes an octal integer (`0644` is 420).
pub fn kube_yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
    }
}

/// Decodes an apply patch body: JSON, else YAML (`400 error decoding YAML:
/// ...` when neither gives an object; an empty body is `{}`).
pub fn decode_apply_body(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_saphyr::from_slice_with_options(body, kube_yaml_options())
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
    };
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(json!({})),
        other => Err(ApiError::bad_request(format!(
            "error decoding YAML: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        ))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "object",
    }
}

/// Checks an applied configuration against the URL (structuredmerge
/// `Apply` and the patch handler): `metadata.managedFields` must be absent
/// (`400 metadata.managedFields must be nil`), `apiVersion` must be the
/// kind's (`400 Incorrect version specified in apply patch. Specified patch
/// version: <v>, expected: <gv>`), `kind` must be present and the kind's,
/// a non-empty `metadata.name`/`metadata.namespace` must match the URL,
/// and no associative list or set may repeat a key (`400 failed to create
/// typed patch object (...): <path>: duplicate entries for key <key>`).
pub fn check_applied(
    def: &ResourceDef,
    config: &Value,
    name: &str,
    namespace: Option<&str>,
) -> ApiResult<()> {
    if config
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(
            "metadata: expected an object (ObjectMeta)",
        ));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let gv = def.api_version();
    let v = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if v != gv {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {v}, expected: {gv}"
        )));
    }
    match config.get("kind").and_then(Value::as_str).unwrap_or("") {
        "" => {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{config}'"
            )));
        }
        k if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => {}
    }
    let body_name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(dup) = mf::duplicate_entry(config, &ApplySchema::builtin(def.group, def.kind)) {
        let gv = def.api_version();
        return Err(ApiError::bad_request(format!(
            "failed to create typed patch object ({}/{name}; {gv}, Kind={}): {dup}",
            namespace.unwrap_or(""),
            def.kind
        )));
    }
    let body_ns = config
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if def.namespaced && !body_ns.is_empty() && Some(body_ns) != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The `409 Conflict` of an apply (`NewConflictError`): the message of
/// [`Conflicts`] and one `FieldManagerConflict` cause per field
/// (`conflict with "m" using apps/v1`, field `.spec.replicas`).
pub fn conflict_error(c: &Conflicts) -> ApiError {
    let causes: Vec<Value> =
        c.0.iter()
            .map(|c| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {}", c.manager),
                    "field": c.field,
                })
            })
            .collect();
    ApiError {
        code: 409,
        reason: "Conflict".into(),
        message: c.to_string(),
        details: Some(json!({ "causes": causes })),
    }
}

/// Whether every conflict of a `kubectl` server-side apply is a field that
/// the live object's last-applied-configuration annotation sets to the live
/// value, so the apply may take it over: the client-side to server-side
/// upgrade path of upstream's `lastAppliedManager`.
fn upgrades_client_side_apply(live: &Value, conflicts: &Conflicts, schema: &ApplySchema) -> bool {
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(Value::is_object)
    else {
        return false;
    };
    let cmp = mf::compare(&last, live, schema);
    let allowed: std::collections::BTreeSet<String> = mf::field_set(&last, schema)
        .difference(&cmp.modified)
        .iter()
        .map(|p| mf::path_string(p))
        .collect();
    conflicts.0.iter().all(|c| allowed.contains(&c.field))
}

/// Server-side apply of `config` by `manager` onto `live` (`None`: the
/// object does not exist and the apply creates it). Returns the merged
/// object carrying the new `metadata.managedFields`; the caller still runs
/// its subresource rules and system metadata over it.
///
/// A live object without managedFields first has its fields given to
/// [`BEFORE_FIRST_APPLY`]. When `manager` is `kubectl` and the live object
/// has a `kubectl.kubernetes.io/last-applied-configuration` annotation, the
/// annotation is rewritten to the applied config (`lastAppliedUpdater`).
/// Conflicts without `force` are [`conflict_error`], except that
/// `kubectl` may take over fields still holding the values of the
/// last-applied-configuration annotation (`lastAppliedManager`).
pub fn apply(
    def: &ResourceDef,
    sub: Option<&str>,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let schema = ApplySchema::builtin(def.group, def.kind);
    let api_version = def.api_version();
    let time = now();
    let keep = tracked(def, sub);
    let mut entries = live_entries(live);
    let live_clean = live.map_or_else(|| json!({}), without_managed_fields);
    if live.is_some() && entries.is_empty() {
        let w = Writer {
            manager: BEFORE_FIRST_APPLY,
            api_version: &api_version,
            subresource: sub.unwrap_or(""),
            time: &time,
            tracked: &keep,
        };
        mf::update(&create_base(def), &live_clean, &mut entries, &w, &schema);
    }
    let writer = Writer {
        manager,
        api_version: &api_version,
        subresource: sub.unwrap_or(""),
        time: &time,
        tracked: &keep,
    };
    let before = entries.clone();
    let mut merged = match mf::apply(&live_clean, config, &mut entries, &writer, force, &schema) {
        Ok(m) => m,
        Err(c) if manager == "kubectl" && upgrades_client_side_apply(&live_clean, &c, &schema) => {
            entries = before;
            mf::apply(&live_clean, config, &mut entries, &writer, true, &schema)
                .map_err(|c| conflict_error(&c))?
        }
        Err(c) => return Err(conflict_error(&c)),
    };
    if manager == "kubectl"
        && live
            .and_then(|l| l.pointer("/metadata/annotations"))
            .and_then(|a| a.get(LAST_APPLIED))
            .is_some()
    {
        let mut last = config.clone();
        if let Some(ann) = last
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                last["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("annotations"));
            }
        }
        if let Some(ann) = merged
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            ann.insert(LAST_APPLIED.into(), json!(format!("{last}\n")));
        }
    }
    if !merged.get("metadata").is_some_and(Value::is_object) {
        merged["metadata"] = json!({});
    }
    set_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> &'static ResourceDef {
        crate::registry::lookup("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn manager_from_user_agent() {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            "kubectl/v1.34.0 (linux/amd64) kubernetes/abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(manager_name(&Query::default(), &h), "kubectl");
        let q = Query {
            field_manager: Some("mine".into()),
            ..Default::default()
        };
        assert_eq!(manager_name(&q, &h), "mine");
        assert_eq!(manager_name(&Query::default(), &HeaderMap::new()), "");
        h.insert(header::USER_AGENT, "x".repeat(300).parse().unwrap());
        assert_eq!(manager_name(&Query::default(), &h).len(), 128);
    }

    #[test]
    fn options_validation_messages() {
        let e = validate_options("PatchOptions", &Query::default(), Some(true)).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let q = Query {
            force: Some(true),
            ..Default::default()
        };
        let e = validate_options("PatchOptions", &q, Some(false)).unwrap_err();
        assert_eq!(
            e.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
        let q = Query {
            field_manager: Some("a".repeat(129)),
            ..Default::default()
        };
        assert_eq!(
            validate_options("CreateOptions", &q, None)
                .unwrap_err()
                .code,
            422
        );
        assert!(validate_options("CreateOptions", &Query::default(), None).is_ok());
    }

    #[test]
    fn tracked_paths() {
        let f = |s: &str| PathElement::Field(s.into());
        let main = tracked(deployments(), None);
        assert!(!main(&[f("metadata"), f("resourceVersion")]));
        assert!(!main(&[
            f("metadata"),
            f("managedFields"),
            PathElement::Index(0)
        ]));
        assert!(!main(&[f("kind")]));
        assert!(!main(&[f("status"), f("replicas")]));
        assert!(main(&[f("metadata"), f("labels"), f("a")]));
        assert!(main(&[f("spec"), f("replicas")]));
        let status = tracked(deployments(), Some("status"));
        assert!(status(&[f("status"), f("replicas")]));
        assert!(!status(&[f("spec"), f("replicas")]));
    }

    #[test]
    fn applied_config_checks() {
        let d = deployments();
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}});
        assert!(check_applied(d, &ok, "a", Some("ns")).is_ok());
        let cases = [
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"managedFields": []}}),
                "metadata.managedFields must be nil",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Deployment"}),
                "Incorrect version specified in apply patch. Specified patch version: v1, expected: apps/v1",
            ),
            (json!({"apiVersion": "apps/v1"}), "Object 'Kind' is missing"),
            (
                json!({"apiVersion": "apps/v1", "kind": "Service"}),
                "the kind in the data (Service)",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "b"}}),
                "the name of the object (b) does not match the name on the URL (a)",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"namespace": "x"}}),
                "the namespace of the provided object does not match",
            ),
        ];
        for (cfg, msg) in cases {
            let e = check_applied(d, &cfg, "a", Some("ns")).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(e.message.contains(msg), "{} lacks {msg}", e.message);
        }
    }

    #[test]
    fn apply_bodies() {
        assert_eq!(
            decode_apply_body(b"kind: ConfigMap\ndata:\n  a: '1'\n").unwrap(),
            json!({"kind": "ConfigMap", "data": {"a": "1"}})
        );
        assert_eq!(decode_apply_body(br#"{"a":1}"#).unwrap(), json!({"a": 1}));
        assert_eq!(decode_apply_body(b"  ").unwrap(), json!({}));
        // YAML 1.1 scalars, as sigs.k8s.io/yaml reads them.
        assert_eq!(
            decode_apply_body(b"mode: 0644\nflag: on\nname: \"0644\"\n").unwrap(),
            json!({"mode": 420, "flag": true, "name": "0644"})
        );
        for bad in [&b"- a\n- b\n"[..], b"a: [", b"\"str\""] {
            let e = decode_apply_body(bad).unwrap_err();
            assert_eq!(e.code, 400);
            assert!(
                e.message.starts_with("error decoding YAML"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn update_tracking_and_client_sent_fields() {
        let d = deployments();
        let mut obj =
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        track_update(d, None, None, &mut obj, "creator");
        let mf = &obj["metadata"]["managedFields"];
        assert_eq!(mf[0]["manager"], "creator");
        assert_eq!(mf[0]["operation"], "Update");
        assert_eq!(mf[0]["apiVersion"], "apps/v1");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}, "f:spec": {"f:replicas": {}}})
        );
        // `[{}]` clears.
        let mut cleared = obj.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        track_update(d, None, Some(&obj), &mut cleared, "x");
        assert!(cleared.pointer("/metadata/managedFields").is_none());
        // `[]` keeps the live entries.
        let mut kept = obj.clone();
        kept["metadata"]["managedFields"] = json!([]);
        kept["spec"]["replicas"] = json!(2);
        track_update(d, None, Some(&obj), &mut kept, "scaler");
        let managers: Vec<&str> = kept["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers.len(), 2);
        assert!(managers.contains(&"creator") && managers.contains(&"scaler"));
    }

    #[test]
    fn create_owns_fields_like_upstream_zero_value_compare() {
        let d = deployments();
        let base = create_base(d);
        assert_eq!(base["spec"]["template"]["spec"]["containers"], Value::Null);
        assert!(base["spec"]["strategy"].is_object());
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
        track_update(d, None, None, &mut obj, "kubectl-create");
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {
                            "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}
                        }}
                    }
                }
            })
        );
    }

    #[test]
    fn kubectl_takes_over_fields_from_client_side_apply() {
        let cms = crate::registry::lookup("", "v1", "configmaps").unwrap();
        let last = r#"{"apiVersion":"v1","kind":"ConfigMap","data":{"color":"blue","size":"1"},"metadata":{"name":"c"}}"#;
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {LAST_APPLIED: last}},
            "data": {"color": "blue", "size": "1"}});
        track_update(cms, None, None, &mut live, "kubectl-client-side-apply");
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"color": "green"}});
        let e = apply(cms, None, Some(&live), &cfg, "someone", false).unwrap_err();
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.color"
        );
        let merged = apply(cms, None, Some(&live), &cfg, "kubectl", false).unwrap();
        assert_eq!(merged["data"]["color"], "green");
        // The annotation follows the applied config.
        let ann = merged["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        assert!(ann.contains("green") && !ann.contains("size"), "{ann}");
        // A field changed since the last client-side apply still conflicts.
        let mut drifted = live.clone();
        drifted["data"]["color"] = json!("red");
        track_update(cms, None, Some(&live), &mut drifted, "editor");
        let e = apply(cms, None, Some(&drifted), &cfg, "kubectl", false).unwrap_err();
        assert!(
            e.message.contains("\"editor\" using v1: .data.color"),
            "{}",
            e.message
        );
    }

    #[test]
    fn apply_gives_unmanaged_fields_to_before_first_apply() {
        let d = deployments();
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a"}, "spec": {"replicas": 1}});
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a"}, "spec": {"replicas": 2}});
        let e = apply(d, None, Some(&live), &cfg, "m", false).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let causes = &e.to_status()["details"]["causes"];
        assert_eq!(causes[0]["reason"], "FieldManagerConflict");
        assert_eq!(causes[0]["field"], ".spec.replicas");
        let merged = apply(d, None, Some(&live), &cfg, "m", true).unwrap();
        assert_eq!(merged["spec"]["replicas"], 2);
    }
}
