//! Dynamic resource allocation (`resource.k8s.io/v1`): the validation of
//! kube-apiserver's pkg/apis/resource/validation that a client meets most
//! often, as pure functions over the JSON object. DeviceClasses,
//! ResourceClaims, ResourceClaimTemplates and ResourceSlices are stored and
//! served; allocating devices is a scheduler's and a driver's work, which a
//! virtual cluster leaves to its host.
//!
//! Checked: a claim's (and a template's) device requests, each named (a
//! DNS label, unique) with exactly one of `exactly` or `firstAvailable`,
//! and the spec immutable after create; a slice's driver (a DNS subdomain)
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

/// The device requests at `path` (`spec.devices.requests` of a claim).
fn requests(obj: &Value, pointer: &str, path: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let list = obj
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, r) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = r["name"].as_str().unwrap_or_default();
        out.extend(named(&format!("{at}.name"), name, is_dns1123_label));
        // kube reports a repeated name on the item, after every item's own
        // errors.
        if !name.is_empty() && seen.contains(&name) {
            duplicates.push(FieldError::duplicate(at.clone(), &json!(name)));
        }
        seen.push(name);
        if let Some(e) = r.get("exactly").filter(|v| !v.is_null())
            && e["deviceClassName"].as_str().unwrap_or_default().is_empty()
        {
            out.push(FieldError::required(
                format!("{at}.exactly.deviceClassName"),
                "",
            ));
        }
        let exactly = r.get("exactly").is_some_and(|v| !v.is_null());
        let first = r["firstAvailable"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        match (exactly, first) {
            (false, false) => out.push(FieldError::required(
                at,
                "exactly one of `exactly` or `firstAvailable` is required",
            )),
            (true, true) => out.push(FieldError::invalid(
                at,
                &Value::Null,
                "exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set",
            )),
            _ => {}
        }
    }
    out.extend(duplicates);
    out
}

/// kube's defaults of device requests at `pointer` (`SetDefaults_…`): an
/// `exactly` request allocates `ExactCount`, and with that mode one device.
fn default_requests(obj: &mut Value, pointer: &str) {
    let Some(list) = obj.pointer_mut(pointer).and_then(Value::as_array_mut) else {
        return;
    };
    for r in list {
        let Some(e) = r.get_mut("exactly").and_then(Value::as_object_mut) else {
            continue;
        };
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
/// `check` of `new`.
pub fn spec_immutable(
    new: &Value,
    old: &Value,
    check: fn(&Value) -> Vec<FieldError>,
) -> Vec<FieldError> {
    let mut out = check(new);
    if new.get("spec") != old.get("spec") {
        out.push(FieldError::immutable(
            "spec",
            new.get("spec").unwrap_or(&Value::Null),
        ));
    }
    out
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
        let good = json!({"spec": {"devices": {"requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}}});
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
        let mut defaulted = good.clone();
        default_claim(&mut defaulted);
        assert_eq!(
            defaulted["spec"]["devices"]["requests"][0]["exactly"],
            json!({"deviceClassName": "gpu.example.com", "allocationMode": "ExactCount", "count": 1})
        );
        let mut changed = good.clone();
        changed["spec"]["devices"]["requests"][0]["name"] = json!("other");
        assert_eq!(
            spec_immutable(&changed, &good, validate_claim)[0].field,
            "spec"
        );
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
