//! `meta.k8s.io/v1` Table and PartialObjectMetadata renderings.
//!
//! Until per-kind columns exist, every kind renders the columns kube-apiserver
//! gives a resource without its own printer: the name, and the age computed
//! from `metadata.creationTimestamp` (the server formats `date` columns as
//! ages, as k8s.io/apimachinery/pkg/util/duration.HumanDuration does).

use crate::registry::ResourceDef;
use serde_json::{Value, json};

/// A `PartialObjectMetadata` holding `obj`'s metadata.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `objects`. `include_object` is the query's `includeObject`
/// (`None`, `Metadata`: the default, or `Object`); `list_meta` is the list's
/// metadata (resourceVersion, continue) when rendering a list.
pub fn table(
    _def: &ResourceDef,
    objects: &[Value],
    include_object: Option<&str>,
    list_meta: Option<Value>,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
            let age = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| human_duration((now.as_second() - t.as_second()).max(0) as u64))
                .unwrap_or_else(|| "<unknown>".into());
            let mut row = json!({ "cells": [name, age] });
            match include_object.unwrap_or("Metadata") {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => row["object"] = partial_metadata(obj),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

/// A duration in seconds the way kubectl shows ages (`45s`, `3m20s`, `5h`, `2d3h`, `400d`, `3y20d`),
/// following k8s.io/apimachinery/pkg/util/duration.HumanDuration.
pub fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = secs / 3600;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (10 * 365 * 86400, "10y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn include_object_modes() {
        let def = crate::registry::lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"k": "v"}});
        let t = table(def, std::slice::from_ref(&obj), None, None);
        assert_eq!(t["rows"][0]["cells"][0], "a");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let t = table(def, std::slice::from_ref(&obj), Some("Object"), None);
        assert_eq!(t["rows"][0]["object"]["data"]["k"], "v");
        let t = table(def, std::slice::from_ref(&obj), Some("None"), None);
        assert!(t["rows"][0].get("object").is_none());
    }
}
