//! Versions served from another version's storage.
//!
//! kube-apiserver keeps one storage per group-resource and serves every
//! version of it by converting through the internal type: autoscaling/v1
//! HorizontalPodAutoscalers are the autoscaling/v2 objects, events.k8s.io/v1
//! Events are the core/v1 Events (pkg/apis/autoscaling/v1/conversion.go,
//! pkg/apis/events/v1/conversion.go). A [`Conversion`] names the storage a
//! served version reads and writes, and the two pure functions between the
//! forms; the REST layer applies them where objects enter and leave the
//! store, so validation, defaults, field selectors and Tables see the
//! served version's form and one write is visible in every version.

use serde_json::{Map, Value, json};

/// How a served version maps onto the storage of another version.
pub struct Conversion {
    /// Group of the stored resource (empty for core).
    pub storage_group: &'static str,
    /// Version of the stored form.
    pub storage_version: &'static str,
    /// Plural of the stored resource.
    pub storage_resource: &'static str,
    /// A served-version object into its stored form (apiVersion included).
    pub to_storage: fn(Value) -> Value,
    /// A stored object into the served version's form.
    pub from_storage: fn(Value) -> Value,
}

/// events.k8s.io/v1 Events over the core/v1 Event storage.
pub static EVENTS_V1: Conversion = Conversion {
    storage_group: "",
    storage_version: "v1",
    storage_resource: "events",
    to_storage: event_v1_to_core,
    from_storage: core_event_to_v1,
};

/// autoscaling/v1 HorizontalPodAutoscalers over the autoscaling/v2 storage.
pub static AUTOSCALING_V1: Conversion = Conversion {
    storage_group: "autoscaling",
    storage_version: "v2",
    storage_resource: "horizontalpodautoscalers",
    to_storage: hpa_v1_to_v2,
    from_storage: hpa_v2_to_v1,
};

/// Field names that differ between core/v1 and events.k8s.io/v1 Events, as
/// `Convert_core_Event_To_v1_Event` maps them: (core, events.k8s.io).
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename_fields(obj: Value, api_version: &str, to_events_v1: bool) -> Value {
    let Value::Object(mut m) = obj else {
        return obj;
    };
    for (core, v1) in EVENT_RENAMES {
        let (from, to) = if to_events_v1 { (core, v1) } else { (v1, core) };
        // The target name is the other version's field: one the client sent
        // under that name belongs to no field of this version and is dropped,
        // as the typed decoder drops unknown fields.
        let moved = m.remove(*from);
        m.remove(*to);
        if let Some(v) = moved {
            m.insert((*to).to_string(), v);
        }
    }
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!("Event"));
    Value::Object(m)
}

/// `Convert_core_Event_To_v1_Event`: `involvedObject` → `regarding`,
/// `message` → `note`, `source` → `deprecatedSource`, the legacy timestamps
/// and count → `deprecated*`, `reportingComponent` → `reportingController`.
pub fn core_event_to_v1(obj: Value) -> Value {
    rename_fields(obj, "events.k8s.io/v1", true)
}

/// `Convert_v1_Event_To_core_Event`: the inverse of [`core_event_to_v1`].
pub fn event_v1_to_core(obj: Value) -> Value {
    rename_fields(obj, "v1", false)
}

/// The annotations autoscaling/v1 carries what it has no fields for in
/// (pkg/apis/autoscaling/annotations.go); conversion drops them from the
/// stored object and recomputes them on every read.
const HPA_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const HPA_CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const HPA_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const HPA_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const HPA_ROUND_TRIP: &[&str] = &[
    HPA_METRICS,
    HPA_CURRENT_METRICS,
    HPA_CONDITIONS,
    HPA_BEHAVIOR,
    "autoscaling.alpha.kubernetes.io/scale-down-tolerance",
    "autoscaling.alpha.kubernetes.io/scale-up-tolerance",
];

/// `DropRoundTripHorizontalPodAutoscalerAnnotations`: removes the
/// conversion annotations, returning the ones that were there.
fn take_round_trip(obj: &mut Value) -> Map<String, Value> {
    let mut taken = Map::new();
    if let Some(ann) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for k in HPA_ROUND_TRIP {
            if let Some(v) = ann.remove(*k) {
                taken.insert((*k).to_string(), v);
            }
        }
    }
    taken
}

fn set_annotation(obj: &mut Value, key: &str, value: &Value) {
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let ann = md.entry("annotations").or_insert_with(|| json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[key] = Value::String(value.to_string());
}

/// Copies `src[from]` into `dst[to]` when present and not null.
fn copy(dst: &mut Map<String, Value>, to: &str, src: &Value, from: &str) {
    if let Some(v) = src.get(from).filter(|v| !v.is_null()) {
        dst.insert(to.into(), v.clone());
    }
}

/// A Go `resource.Quantity` held by value: an absent one encodes as "0".
fn quantity_or_zero(v: Option<&Value>) -> Value {
    v.filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!("0"))
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && metric
            .pointer("/resource/target/averageUtilization")
            .is_some_and(|v| !v.is_null())
}

fn object_reference(src: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(src) = src {
        for f in ["kind", "name", "apiVersion"] {
            copy(&mut out, f, src, f);
        }
    }
    Value::Object(out)
}

/// The member holding a `Resource` or `ContainerResource` metric (the same
/// name in both versions).
fn resource_field(ty: &str) -> &'static str {
    if ty == "Resource" {
        "resource"
    } else {
        "containerResource"
    }
}

/// One autoscaling/v2 MetricSpec as autoscaling/v1's (annotation) form.
fn metric_spec_to_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let empty = Value::Null;
    let source = |f: &str| m.get(f).unwrap_or(&empty);
    let target = |f: &str| source(f).get("target").unwrap_or(&empty);
    let metric = |f: &str| source(f).get("metric").unwrap_or(&empty);
    match ty {
        "Resource" | "ContainerResource" => {
            let field = resource_field(ty);
            let mut r = Map::new();
            copy(&mut r, "name", source(field), "name");
            copy(&mut r, "container", source(field), "container");
            copy(
                &mut r,
                "targetAverageUtilization",
                target(field),
                "averageUtilization",
            );
            copy(&mut r, "targetAverageValue", target(field), "averageValue");
            out.insert(field.into(), Value::Object(r));
        }
        "Pods" => {
            let mut p = Map::new();
            copy(&mut p, "metricName", metric("pods"), "name");
            p.insert(
                "targetAverageValue".into(),
                quantity_or_zero(target("pods").get("averageValue")),
            );
            copy(&mut p, "selector", metric("pods"), "selector");
            out.insert("pods".into(), Value::Object(p));
        }
        "Object" => {
            let mut o = Map::new();
            o.insert(
                "target".into(),
                object_reference(source("object").get("describedObject")),
            );
            copy(&mut o, "metricName", metric("object"), "name");
            o.insert(
                "targetValue".into(),
                quantity_or_zero(target("object").get("value")),
            );
            copy(&mut o, "selector", metric("object"), "selector");
            copy(&mut o, "averageValue", target("object"), "averageValue");
            out.insert("object".into(), Value::Object(o));
        }
        "External" => {
            let mut e = Map::new();
            copy(&mut e, "metricName", metric("external"), "name");
            copy(&mut e, "metricSelector", metric("external"), "selector");
            copy(&mut e, "targetValue", target("external"), "value");
            copy(
                &mut e,
                "targetAverageValue",
                target("external"),
                "averageValue",
            );
            out.insert("external".into(), Value::Object(e));
        }
        _ => {}
    }
    Value::Object(out)
}

/// One autoscaling/v1 (annotation) MetricSpec as autoscaling/v2's form.
fn metric_spec_to_v2(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let empty = Value::Null;
    let source = |f: &str| m.get(f).unwrap_or(&empty);
    let identifier = |name: &Value, selector: &Value| {
        let mut id = Map::new();
        id.insert("name".into(), name.clone());
        if !selector.is_null() {
            id.insert("selector".into(), selector.clone());
        }
        Value::Object(id)
    };
    match ty {
        "Resource" | "ContainerResource" => {
            let field = resource_field(ty);
            let s = source(field);
            let mut t = Map::new();
            let utilization = s.get("targetAverageUtilization").filter(|v| !v.is_null());
            t.insert(
                "type".into(),
                json!(if utilization.is_some() {
                    "Utilization"
                } else {
                    "AverageValue"
                }),
            );
            copy(&mut t, "averageUtilization", s, "targetAverageUtilization");
            copy(&mut t, "averageValue", s, "targetAverageValue");
            let mut r = Map::new();
            copy(&mut r, "name", s, "name");
            copy(&mut r, "container", s, "container");
            r.insert("target".into(), Value::Object(t));
            out.insert(field.into(), Value::Object(r));
        }
        "Pods" => {
            let s = source("pods");
            out.insert(
                "pods".into(),
                json!({
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("selector").unwrap_or(&empty)),
                    "target": {"type": "AverageValue", "averageValue": quantity_or_zero(s.get("targetAverageValue"))},
                }),
            );
        }
        "Object" => {
            let s = source("object");
            let average = s.get("averageValue").filter(|v| !v.is_null());
            let value = quantity_or_zero(s.get("targetValue"));
            let mut t = Map::new();
            match average {
                None => {
                    t.insert("type".into(), json!("Value"));
                    t.insert("value".into(), value);
                }
                Some(avg) => {
                    t.insert("type".into(), json!("AverageValue"));
                    if !quantity_is_zero(&value) {
                        t.insert("value".into(), value);
                    }
                    t.insert("averageValue".into(), avg.clone());
                }
            }
            out.insert(
                "object".into(),
                json!({
                    "describedObject": object_reference(s.get("target")),
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("selector").unwrap_or(&empty)),
                    "target": Value::Object(t),
                }),
            );
        }
        "External" => {
            let s = source("external");
            let mut t = Map::new();
            let value = s.get("targetValue").filter(|v| !v.is_null());
            t.insert(
                "type".into(),
                json!(if value.is_some() {
                    "Value"
                } else {
                    "AverageValue"
                }),
            );
            copy(&mut t, "value", s, "targetValue");
            copy(&mut t, "averageValue", s, "targetAverageValue");
            out.insert(
                "external".into(),
                json!({
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("metricSelector").unwrap_or(&empty)),
                    "target": Value::Object(t),
                }),
            );
        }
        _ => {}
    }
    Value::Object(out)
}

/// Whether a Quantity string is zero ("0", "0m", "0.0Gi", …).
fn quantity_is_zero(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let digits: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
            .collect();
        digits.parse::<f64>().is_ok_and(|f| f == 0.0)
    })
}

/// One autoscaling/v2 MetricStatus as autoscaling/v1's (annotation) form.
fn metric_status_to_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let empty = Value::Null;
    let source = |f: &str| m.get(f).unwrap_or(&empty);
    let current = |f: &str| source(f).get("current").unwrap_or(&empty);
    let metric = |f: &str| source(f).get("metric").unwrap_or(&empty);
    match ty {
        "Resource" | "ContainerResource" => {
            let field = resource_field(ty);
            let mut r = Map::new();
            copy(&mut r, "name", source(field), "name");
            copy(&mut r, "container", source(field), "container");
            copy(
                &mut r,
                "currentAverageUtilization",
                current(field),
                "averageUtilization",
            );
            r.insert(
                "currentAverageValue".into(),
                quantity_or_zero(current(field).get("averageValue")),
            );
            out.insert(field.into(), Value::Object(r));
        }
        "Pods" => {
            let mut p = Map::new();
            copy(&mut p, "metricName", metric("pods"), "name");
            p.insert(
                "currentAverageValue".into(),
                quantity_or_zero(current("pods").get("averageValue")),
            );
            copy(&mut p, "selector", metric("pods"), "selector");
            out.insert("pods".into(), Value::Object(p));
        }
        "Object" => {
            let mut o = Map::new();
            o.insert(
                "target".into(),
                object_reference(source("object").get("describedObject")),
            );
            copy(&mut o, "metricName", metric("object"), "name");
            o.insert(
                "currentValue".into(),
                quantity_or_zero(current("object").get("value")),
            );
            copy(&mut o, "selector", metric("object"), "selector");
            copy(&mut o, "averageValue", current("object"), "averageValue");
            out.insert("object".into(), Value::Object(o));
        }
        "External" => {
            let mut e = Map::new();
            copy(&mut e, "metricName", metric("external"), "name");
            copy(&mut e, "metricSelector", metric("external"), "selector");
            e.insert(
                "currentValue".into(),
                quantity_or_zero(current("external").get("value")),
            );
            copy(
                &mut e,
                "currentAverageValue",
                current("external"),
                "averageValue",
            );
            out.insert("external".into(), Value::Object(e));
        }
        _ => {}
    }
    Value::Object(out)
}

/// One autoscaling/v1 (annotation) MetricStatus as autoscaling/v2's form.
fn metric_status_to_v2(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let empty = Value::Null;
    let source = |f: &str| m.get(f).unwrap_or(&empty);
    let identifier = |name: &Value, selector: &Value| {
        let mut id = Map::new();
        id.insert("name".into(), name.clone());
        if !selector.is_null() {
            id.insert("selector".into(), selector.clone());
        }
        Value::Object(id)
    };
    match ty {
        "Resource" | "ContainerResource" => {
            let field = resource_field(ty);
            let s = source(field);
            let mut c = Map::new();
            c.insert(
                "averageValue".into(),
                quantity_or_zero(s.get("currentAverageValue")),
            );
            copy(&mut c, "averageUtilization", s, "currentAverageUtilization");
            let mut r = Map::new();
            copy(&mut r, "name", s, "name");
            copy(&mut r, "container", s, "container");
            r.insert("current".into(), Value::Object(c));
            out.insert(field.into(), Value::Object(r));
        }
        "Pods" => {
            let s = source("pods");
            out.insert(
                "pods".into(),
                json!({
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("selector").unwrap_or(&empty)),
                    "current": {"averageValue": quantity_or_zero(s.get("currentAverageValue"))},
                }),
            );
        }
        "Object" => {
            let s = source("object");
            let mut c = Map::new();
            c.insert("value".into(), quantity_or_zero(s.get("currentValue")));
            copy(&mut c, "averageValue", s, "averageValue");
            out.insert(
                "object".into(),
                json!({
                    "describedObject": object_reference(s.get("target")),
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("selector").unwrap_or(&empty)),
                    "current": Value::Object(c),
                }),
            );
        }
        "External" => {
            let s = source("external");
            let mut c = Map::new();
            c.insert("value".into(), quantity_or_zero(s.get("currentValue")));
            copy(&mut c, "averageValue", s, "currentAverageValue");
            out.insert(
                "external".into(),
                json!({
                    "metric": identifier(s.get("metricName").unwrap_or(&empty), s.get("metricSelector").unwrap_or(&empty)),
                    "current": Value::Object(c),
                }),
            );
        }
        _ => {}
    }
    Value::Object(out)
}

/// The behavior annotation holds the internal Go type marshalled without
/// JSON tags (`ScaleUp`, `StabilizationWindowSeconds`, …); Go's decoder
/// matches names without regard to case, so both spellings are read.
fn behavior_keys(v: &Value, to_go: bool) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(c) if to_go => c.to_ascii_uppercase().to_string() + chars.as_str(),
                        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
                        None => String::new(),
                    };
                    (key, behavior_keys(v, to_go))
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| behavior_keys(i, to_go)).collect())
        }
        other => other.clone(),
    }
}

fn parse_annotation(taken: &Map<String, Value>, key: &str) -> Option<Value> {
    taken
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
}

/// An annotation's list, each element an object, or `None` (upstream's
/// `json.Unmarshal` into a typed list fails on anything else, and the
/// annotation is then ignored).
fn annotation_objects(taken: &Map<String, Value>, key: &str) -> Option<Vec<Value>> {
    let items = parse_annotation(taken, key)?.as_array()?.clone();
    items.iter().all(Value::is_object).then_some(items)
}

/// `value` decoded as `T` and encoded again, or `None` when it does not
/// decode: annotation text is tenant input, and what reaches the stored v2
/// object must have the v2 types (a wrongly typed field would make the
/// object unreadable to every typed client, the autoscaler included).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(value: Value) -> Option<Value> {
    let t: T = serde_json::from_value(value).ok()?;
    serde_json::to_value(t).ok()
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && md
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        md.remove("annotations");
    }
}

/// `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`:
/// the CPU utilisation target and current value become
/// `targetCPUUtilizationPercentage` / `currentCPUUtilizationPercentage`; the
/// other metrics, the current metrics, the behavior and the conditions go to
/// the `autoscaling.alpha.kubernetes.io/*` annotations.
pub fn hpa_v2_to_v1(mut obj: Value) -> Value {
    take_round_trip(&mut obj);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").cloned().unwrap_or(Value::Null);
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v1_spec = Map::new();
    v1_spec.insert(
        "scaleTargetRef".into(),
        object_reference(spec.get("scaleTargetRef")),
    );
    copy(&mut v1_spec, "minReplicas", &spec, "minReplicas");
    v1_spec.insert(
        "maxReplicas".into(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m)) {
        copy(
            &mut v1_spec,
            "targetCPUUtilizationPercentage",
            &cpu["resource"]["target"],
            "averageUtilization",
        );
    }
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_to_v1)
        .collect();
    let current = status
        .get("currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v1_status = Map::new();
    copy(
        &mut v1_status,
        "observedGeneration",
        &status,
        "observedGeneration",
    );
    copy(&mut v1_status, "lastScaleTime", &status, "lastScaleTime");
    for f in ["currentReplicas", "desiredReplicas"] {
        v1_status.insert(f.into(), status.get(f).cloned().unwrap_or(json!(0)));
    }
    for m in &current {
        if m.get("type").and_then(Value::as_str) == Some("Resource")
            && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        {
            copy(
                &mut v1_status,
                "currentCPUUtilizationPercentage",
                &m["resource"]["current"],
                "averageUtilization",
            );
        }
    }
    if !other.is_empty() {
        set_annotation(&mut obj, HPA_METRICS, &Value::Array(other));
    }
    if !current.is_empty() {
        let v1: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
        set_annotation(&mut obj, HPA_CURRENT_METRICS, &Value::Array(v1));
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        set_annotation(&mut obj, HPA_BEHAVIOR, &behavior_keys(b, true));
    }
    if let Some(conds) = status
        .get("conditions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        set_annotation(&mut obj, HPA_CONDITIONS, &Value::Array(conds.clone()));
    }
    drop_empty_annotations(&mut obj);
    obj["apiVersion"] = json!("autoscaling/v1");
    obj["kind"] = json!("HorizontalPodAutoscaler");
    obj["spec"] = Value::Object(v1_spec);
    obj["status"] = Value::Object(v1_status);
    obj
}

/// `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`:
/// the inverse of [`hpa_v2_to_v1`], reading the annotations back (an
/// annotation that does not parse is ignored, as upstream ignores it); with
/// no metric at all, CPU utilisation 80 % as autoscaling/v1 always implied.
/// The autoscaling/v2 defaults are applied as kube-apiserver applies them
/// when decoding the stored v2 object.
pub fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let taken = take_round_trip(&mut obj);
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").cloned().unwrap_or(Value::Null);
    let mut v2_spec = Map::new();
    v2_spec.insert(
        "scaleTargetRef".into(),
        object_reference(spec.get("scaleTargetRef")),
    );
    copy(&mut v2_spec, "minReplicas", &spec, "minReplicas");
    v2_spec.insert(
        "maxReplicas".into(),
        spec.get("maxReplicas").cloned().unwrap_or(json!(0)),
    );
    use k8s_openapi::api::autoscaling::v2 as as2;
    let mut metrics: Vec<Value> = annotation_objects(&taken, HPA_METRICS)
        .map(|ms| Value::Array(ms.iter().map(metric_spec_to_v2).collect()))
        .and_then(typed::<Vec<as2::MetricSpec>>)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    if let Some(cpu) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    if metrics.is_empty() {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}));
    }
    v2_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = parse_annotation(&taken, HPA_BEHAVIOR)
        .filter(Value::is_object)
        .and_then(|b| typed::<as2::HorizontalPodAutoscalerBehavior>(behavior_keys(&b, false)))
        .filter(|b| {
            b.as_object()
                .is_some_and(|m| m.values().any(|v| !v.is_null()))
        })
    {
        v2_spec.insert("behavior".into(), b);
    }
    let mut v2_status = Map::new();
    copy(
        &mut v2_status,
        "observedGeneration",
        &status,
        "observedGeneration",
    );
    copy(&mut v2_status, "lastScaleTime", &status, "lastScaleTime");
    for f in ["currentReplicas", "desiredReplicas"] {
        copy(&mut v2_status, f, &status, f);
    }
    let current = match annotation_objects(&taken, HPA_CURRENT_METRICS)
        .map(|ms| Value::Array(ms.iter().map(metric_status_to_v2).collect()))
        .and_then(typed::<Vec<as2::MetricStatus>>)
        .and_then(|v| v.as_array().cloned())
    {
        Some(ms) => ms,
        None => status
            .get("currentCPUUtilizationPercentage")
            .filter(|v| !v.is_null())
            .map(|cpu| {
                vec![json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": cpu}}})]
            })
            .unwrap_or_default(),
    };
    if !current.is_empty() {
        v2_status.insert("currentMetrics".into(), Value::Array(current));
    }
    if let Some(conds) = annotation_objects(&taken, HPA_CONDITIONS)
        .and_then(|c| typed::<Vec<as2::HorizontalPodAutoscalerCondition>>(Value::Array(c)))
    {
        v2_status.insert("conditions".into(), conds);
    }
    drop_empty_annotations(&mut obj);
    obj["apiVersion"] = json!("autoscaling/v2");
    obj["kind"] = json!("HorizontalPodAutoscaler");
    obj["spec"] = Value::Object(v2_spec);
    obj["status"] = Value::Object(v2_status);
    vkube_core::defaults::horizontal_pod_autoscaler(&mut obj);
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_convert_both_ways() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "hi", "reason": "Pulled", "type": "Normal",
            "source": {"component": "kubelet"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "reportingComponent": "kubelet", "reportingInstance": "n1",
        });
        let v1 = core_event_to_v1(core.clone());
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "hi");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["reportingInstance"], "n1");
        assert!(v1.get("message").is_none() && v1.get("involvedObject").is_none());
        assert_eq!(event_v1_to_core(v1), core);
    }

    #[test]
    fn a_v1_cpu_target_is_a_v2_utilization_metric_and_back() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60},
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 10},
        });
        let v2 = hpa_v1_to_v2(v1.clone());
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60}}}])
        );
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            10
        );
        let back = hpa_v2_to_v1(v2);
        assert_eq!(back["spec"], v1["spec"]);
        // The CPU status is kept whole in the current-metrics annotation.
        assert_eq!(back["status"]["currentCPUUtilizationPercentage"], 10);
        let ann = back["metadata"]["annotations"][HPA_CURRENT_METRICS]
            .as_str()
            .unwrap();
        let parsed: Value = serde_json::from_str(ann).unwrap();
        assert_eq!(
            parsed,
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "currentAverageUtilization": 10, "currentAverageValue": "0"}}])
        );
    }

    #[test]
    fn annotations_of_the_wrong_shape_are_ignored_not_stored() {
        let hostile = |key: &str, value: &str| {
            hpa_v1_to_v2(json!({
                "metadata": {"name": "h", "annotations": {key: value}},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3},
            }))
        };
        let v2 = hostile(HPA_CONDITIONS, r#"[{"type": 5, "status": "True"}]"#);
        assert!(v2["status"].get("conditions").is_none(), "{v2}");
        let v2 = hostile(
            HPA_CONDITIONS,
            r#"[{"type": "AbleToScale", "status": "True", "lastTransitionTime": "x"}]"#,
        );
        assert!(v2["status"].get("conditions").is_none(), "{v2}");
        let v2 = hostile(
            HPA_METRICS,
            r#"[{"type": "Pods", "pods": {"metricName": 7}}]"#,
        );
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["name"], "cpu", "{v2}");
        assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
        let v2 = hostile(HPA_METRICS, "[5]");
        assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
        let v2 = hostile(
            HPA_BEHAVIOR,
            r#"{"ScaleUp": {"Policies": [{"Type": "Pods", "Value": "4", "PeriodSeconds": 15}]}}"#,
        );
        assert!(v2["spec"].get("behavior").is_none(), "{v2}");
        let v2 = hostile(HPA_BEHAVIOR, r#"{"foo": 1}"#);
        assert!(v2["spec"].get("behavior").is_none(), "{v2}");
        let v2 = hostile(
            HPA_CURRENT_METRICS,
            r#"[{"type": "Resource", "resource": {"name": "cpu", "currentAverageValue": 5}}]"#,
        );
        // A number is a quantity, as Go's decoder reads it.
        assert_eq!(
            v2["status"]["currentMetrics"][0]["resource"]["current"]["averageValue"],
            "5"
        );
        // Whatever the annotation held, the result reads as the v2 type.
        serde_json::from_value::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(v2)
            .expect("a typed v2 object");
    }

    #[test]
    fn a_v1_hpa_without_a_target_gets_80_percent_cpu() {
        let v2 = hpa_v1_to_v2(json!({
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3},
        }));
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(v2["spec"]["minReplicas"], 1);
    }

    #[test]
    fn other_metrics_behavior_and_conditions_ride_in_annotations() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "annotations": {"team": "a", HPA_METRICS: "stale"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Object", "object": {"metric": {"name": "hits"},
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "target": {"type": "Value", "value": "2k"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"},
                        "target": {"type": "AverageValue", "averageValue": "30"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}},
            },
            "status": {"currentReplicas": 3, "desiredReplicas": 4,
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]},
        });
        let v1 = hpa_v2_to_v1(v2.clone());
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let metrics: Value = serde_json::from_str(ann[HPA_METRICS].as_str().unwrap()).unwrap();
        assert_eq!(
            metrics[0],
            json!({"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}})
        );
        assert_eq!(
            metrics[1],
            json!({"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}})
        );
        let behavior: Value = serde_json::from_str(ann[HPA_BEHAVIOR].as_str().unwrap()).unwrap();
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 60);
        assert_eq!(behavior["ScaleDown"]["Policies"][0]["PeriodSeconds"], 30);
        assert!(ann.get(HPA_CONDITIONS).is_some());
        assert!(v1["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(v1["spec"].get("metrics").is_none());

        let back = hpa_v1_to_v2(v1);
        assert_eq!(back["spec"]["metrics"], v2["spec"]["metrics"]);
        assert_eq!(
            back["spec"]["behavior"]["scaleDown"]["policies"],
            v2["spec"]["behavior"]["scaleDown"]["policies"]
        );
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
    }
}
