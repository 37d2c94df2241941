//! The mutating half of kube-apiserver's LimitRanger admission plugin
//! (plugin/pkg/admission/limitranger/admission.go
//! `defaultContainerResourceRequirements` and `mergeContainerResources`):
//! default requests and limits from the namespace's LimitRanges of type
//! `Container` are set on a new pod's containers that lack them, and the
//! pod is annotated `kubernetes.io/limit-ranger`.
//!
//! Pure: the pod and the LimitRanges are JSON values. The validating half
//! (min/max/maxLimitRequestRatio) is not done.

use serde_json::{Map, Value, json};

/// The annotation naming what LimitRanger set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The default limits and requests of the `Container` items of
/// `limit_ranges` (each item already defaulted, so `defaultRequest` is
/// filled from `default`), later items overriding earlier ones per
/// resource, as upstream's loop over all LimitRanges does.
fn defaults(limit_ranges: &[Value]) -> (Map<String, Value>, Map<String, Value>) {
    let (mut limits, mut requests) = (Map::new(), Map::new());
    for lr in limit_ranges {
        let items = lr.pointer("/spec/limits").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            if item.get("type").and_then(Value::as_str) != Some("Container") {
                continue;
            }
            for (key, into) in [("default", &mut limits), ("defaultRequest", &mut requests)] {
                if let Some(m) = item.get(key).and_then(Value::as_object) {
                    for (k, v) in m {
                        into.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    (limits, requests)
}

/// Applies the LimitRanges' container defaults to `pod` (containers and
/// init containers); returns whether anything was set. The annotation reads
/// like upstream's: `LimitRanger plugin set: cpu, memory request for
/// container app; cpu limit for container app`.
pub fn apply_defaults(pod: &mut Value, limit_ranges: &[Value]) -> bool {
    let (limits, requests) = defaults(limit_ranges);
    if limits.is_empty() && requests.is_empty() {
        return false;
    }
    let mut notes: Vec<String> = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs.iter_mut() {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Some(obj) = c.as_object_mut() else {
                continue;
            };
            let res = obj.entry("resources").or_insert_with(|| json!({}));
            let Some(res) = res.as_object_mut() else {
                continue;
            };
            let mut set = |kind: &str, defaults: &Map<String, Value>| -> Vec<String> {
                let mut names = Vec::new();
                if defaults.is_empty() {
                    return names;
                }
                let m = res.entry(kind).or_insert_with(|| json!({}));
                if m.is_null() {
                    *m = json!({});
                }
                if let Some(m) = m.as_object_mut() {
                    for (k, v) in defaults {
                        if !m.contains_key(k) {
                            m.insert(k.clone(), v.clone());
                            names.push(k.clone());
                        }
                    }
                }
                names
            };
            let mut req = set("requests", &requests);
            let mut lim = set("limits", &limits);
            req.sort();
            lim.sort();
            if !req.is_empty() {
                notes.push(format!("{} request for {what} {name}", req.join(", ")));
            }
            if !lim.is_empty() {
                notes.push(format!("{} limit for {what} {name}", lim.join(", ")));
            }
            for kind in ["requests", "limits"] {
                if res
                    .get(kind)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
                {
                    res.remove(kind);
                }
            }
        }
    }
    if notes.is_empty() {
        return false;
    }
    let Some(md) = pod
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
    else {
        return false;
    };
    if let Some(md) = md.as_object_mut() {
        let ann = md.entry("annotations").or_insert_with(|| json!({}));
        if !ann.is_object() {
            *ann = json!({});
        }
        ann[ANNOTATION] = json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_defaults_fill_only_what_is_missing() {
        let lr = json!({"spec": {"limits": [
            {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
             "defaultRequest": {"cpu": "100m", "memory": "128Mi"}},
            {"type": "Pod", "max": {"cpu": "2"}},
        ]}});
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "app"},
            {"name": "side", "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "1Gi"}}},
        ]}});
        assert!(apply_defaults(&mut pod, &[lr]));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"],
            json!({"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; memory request for container side; cpu limit for container side"
        );
        let mut untouched = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(!apply_defaults(&mut untouched, &[]));
        assert!(untouched["metadata"].is_null());
    }
}
