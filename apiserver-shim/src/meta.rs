//! Helpers over objects as JSON: `metadata` accessors, timestamps, names.
//!
//! Objects travel through the server as `serde_json::Value` so that one
//! generic REST layer serves every kind; these helpers read and write the
//! ObjectMeta fields the API conventions define.

use rand::Rng;
use serde_json::{Map, Value, json};

/// `metadata.name`, or `""`.
pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace`, or `""`.
pub fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.uid`, or `""`.
pub fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion`, or `""`.
pub fn resource_version(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether `metadata.finalizers` is non-empty.
pub fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// `metadata` as a mutable map, created if missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    ensure_object(obj, "metadata")
}

/// `obj[field]` as a mutable map, replacing a non-object value.
pub fn ensure_object<'a>(obj: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    ensure_object_value(obj, field)
        .as_object_mut()
        .expect("just made an object")
}

/// `obj[field]` as a mutable value that is an object.
pub fn ensure_object_value<'a>(obj: &'a mut Value, field: &str) -> &'a mut Value {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object");
    let slot = map.entry(field.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot
}

/// Sets `metadata.resourceVersion` to the decimal revision.
pub fn set_resource_version(obj: &mut Value, revision: u64) {
    metadata_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// The current time in the API's `metav1.Time` form: RFC 3339, UTC, seconds.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// `t` in the `metav1.Time` form.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time plus `seconds`, in the `metav1.Time` form.
pub fn now_plus_seconds(seconds: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    rfc3339(t)
}

/// A fresh RFC 4122 UID.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` + 5 random characters from the alphabet of
/// k8s.io/apiserver/pkg/storage/names (no vowels, no confusable digits); the
/// base is cut so the result stays within 63 characters.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const MAX_BASE: usize = 63 - 5;
    let base = if base.len() > MAX_BASE {
        &base[..MAX_BASE]
    } else {
        base
    };
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Whether two objects differ outside `metadata` and `status` (the rule for
/// bumping `metadata.generation`; `apiVersion`/`kind` are ignored).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_name_appends_five_safe_characters() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert!(
            n[4..]
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        assert_eq!(generate_name(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn spec_change_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let mut b = a.clone();
        b["metadata"]["labels"]["a"] = json!("2");
        b["status"]["y"] = json!(2);
        assert!(!spec_changed(&a, &b));
        b["spec"]["x"] = json!(2);
        assert!(spec_changed(&a, &b));
    }

    #[test]
    fn timestamps_are_rfc3339_seconds_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
