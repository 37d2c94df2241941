//! PATCH bodies (API conventions "Patch operations"): JSON patch, merge
//! patch and strategic merge patch with the patched kind's merge keys.
//! Server-side apply is [`super::apply`]'s.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;

/// The most operations one JSON patch may have (kube-apiserver's
/// `maxJSONPatchOperations`; more is `413`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes the `copy` operations of one JSON patch may add together
/// (kube-apiserver's `JSONPatchMaxCopyBytes`, 3 MiB): without a bound,
/// each copy of the document into itself doubles it, and a few hundred
/// bytes of patch exhaust the server's memory.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// A parsed PATCH body, by its media type.
pub enum Patch {
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// A strategic merge patch with the merge keys of the patched kind.
    Strategic(Value, vkube_core::smp::Schema),
}

impl Patch {
    /// Decodes `body` sent as `media_type` for a resource of `def`.
    ///
    /// # Errors
    /// `400 error decoding patch: …` for a body that does not decode or a
    /// merge patch that is no object; `413` for a JSON patch of more than
    /// [`MAX_JSON_PATCH_OPERATIONS`]; `415` for another media type.
    pub fn parse(media_type: &str, body: &[u8], def: &ResourceDef) -> ApiResult<Patch> {
        let bad =
            |e: serde_json::Error| ApiError::bad_request(format!("error decoding patch: {e}"));
        // Merge and strategic patches are objects (`what` names the kind).
        let object = |body: &[u8], what: &str| -> ApiResult<Value> {
            let v: Value = serde_json::from_slice(body).map_err(bad)?;
            if !v.is_object() {
                return Err(ApiError::bad_request(format!(
                    "error decoding patch: {what} must be a JSON object"
                )));
            }
            Ok(v)
        };
        match media_type {
            "application/json-patch+json" => {
                let patch: json_patch::Patch = serde_json::from_slice(body).map_err(bad)?;
                if patch.0.len() > MAX_JSON_PATCH_OPERATIONS {
                    return Err(ApiError::too_large(format!(
                        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                        patch.0.len()
                    )));
                }
                Ok(Patch::Json(patch))
            }
            "application/merge-patch+json" => Ok(Patch::Merge(object(body, "a merge patch")?)),
            "application/strategic-merge-patch+json" => Ok(Patch::Strategic(
                object(body, "a strategic merge patch")?,
                vkube_core::smp::builtin(def.group, def.kind),
            )),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// Applies the patch to `doc` in place; a patch that fails leaves `doc`
    /// unchanged.
    ///
    /// # Errors
    /// `422 Invalid` when a JSON patch operation or the strategic merge
    /// cannot apply, or a JSON patch's copies add more than
    /// [`MAX_JSON_PATCH_COPY_BYTES`] (kube-apiserver's answers).
    pub fn apply(&self, doc: &mut Value) -> ApiResult<()> {
        match self {
            Patch::Json(p) => {
                *doc = apply_json_patch(doc, p).map_err(|message| ApiError {
                    code: 422,
                    reason: "Invalid".into(),
                    message,
                    details: None,
                })?;
                Ok(())
            }
            Patch::Merge(p) => {
                json_patch::merge(doc, p);
                Ok(())
            }
            Patch::Strategic(p, schema) => {
                *doc = vkube_core::smp::apply(doc, p, schema).map_err(|e| ApiError {
                    code: 422,
                    reason: "Invalid".into(),
                    message: e.to_string(),
                    details: None,
                })?;
                Ok(())
            }
        }
    }
}

/// `patch` applied to a copy of `doc`, one operation at a time so that the
/// bytes `copy` operations add are counted as they are made (by their JSON
/// size, as evanphx/json-patch counts them for kube-apiserver).
///
/// # Errors
/// As [`apply_json_patch_with`].
pub fn apply_json_patch(doc: &Value, patch: &json_patch::Patch) -> Result<Value, String> {
    apply_json_patch_with(doc, patch, |_, _| Ok(()))
}

/// [`apply_json_patch`], with `check` shown the document after each
/// operation (and the operation), so that a caller with bounds of its own
/// (an admission webhook's patch) refuses the patch where it crosses them.
///
/// # Errors
/// json-patch's message for an operation that fails (with its index),
/// kube's `Unable to complete the copy, …` past
/// [`MAX_JSON_PATCH_COPY_BYTES`], or `check`'s.
pub fn apply_json_patch_with(
    doc: &Value,
    patch: &json_patch::Patch,
    mut check: impl FnMut(&Value, &json_patch::PatchOperation) -> Result<(), String>,
) -> Result<Value, String> {
    let mut out = doc.clone();
    let mut copied = 0usize;
    for (i, op) in patch.0.iter().enumerate() {
        // Measured before the copy is made; refused once made, after the
        // caller's own bounds (whose message is the more telling). The
        // copies before this one stayed within the bound, so this one at
        // most doubles a bounded object.
        let copying = match op {
            json_patch::PatchOperation::Copy(copy) => {
                out.pointer(copy.from.as_str()).map(json_size)
            }
            _ => None,
        };
        json_patch::patch(&mut out, std::slice::from_ref(op)).map_err(|mut e| {
            e.operation = i;
            e.to_string()
        })?;
        check(&out, op)?;
        if let Some(bytes) = copying {
            copied = copied.saturating_add(bytes);
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                ));
            }
        }
    }
    Ok(out)
}

/// The length of `v`'s compact JSON, without writing it anywhere.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceDef {
        crate::registry::lookup("", "v1", "pods").unwrap()
    }

    #[test]
    fn copies_that_double_the_object_stop_at_kubes_bound() {
        // Each copy of the whole object into a new member doubles it.
        let ops: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/a{i}")}))
            .collect();
        let body = serde_json::to_vec(&ops).unwrap();
        let patch = Patch::parse("application/json-patch+json", &body, pods()).unwrap();
        let original = json!({"metadata": {"name": "p"}, "data": "x".repeat(1000)});
        let mut doc = original.clone();
        let e = patch.apply(&mut doc).unwrap_err();
        assert_eq!((e.code, &*e.reason), (422, "Invalid"));
        assert!(
            e.message.starts_with(
                "Unable to complete the copy, the accumulated size increase of copy is "
            ) && e.message.ends_with("exceeding the limit 3145728"),
            "{}",
            e.message
        );
        assert_eq!(doc, original, "a refused patch changes nothing");
    }

    #[test]
    fn too_many_operations_are_413_and_failures_name_their_operation() {
        let op = json!({"op": "test", "path": "/a", "value": 1});
        let body = serde_json::to_vec(&vec![op.clone(); MAX_JSON_PATCH_OPERATIONS + 1]).unwrap();
        let e = Patch::parse("application/json-patch+json", &body, pods())
            .err()
            .expect("413");
        assert_eq!(e.code, 413);
        assert_eq!(
            e.message,
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let body = serde_json::to_vec(&json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 2},
        ]))
        .unwrap();
        let patch = Patch::parse("application/json-patch+json", &body, pods()).unwrap();
        let mut doc = json!({"a": 1});
        let e = patch.apply(&mut doc).unwrap_err();
        assert!(
            e.message.starts_with("operation '/1' failed"),
            "{}",
            e.message
        );
        assert_eq!(doc, json!({"a": 1}));
    }
}
