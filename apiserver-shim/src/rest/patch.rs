//! PATCH bodies (API conventions "Patch operations"): JSON patch, merge
//! patch and strategic merge patch with the patched kind's merge keys.
//! Server-side apply is [`super::apply`]'s.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;

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
    /// merge patch that is no object; `415` for another media type.
    pub fn parse(media_type: &str, body: &[u8], def: &ResourceDef) -> ApiResult<Patch> {
        let bad =
            |e: serde_json::Error| ApiError::bad_request(format!("error decoding patch: {e}"));
        match media_type {
            "application/json-patch+json" => {
                Ok(Patch::Json(serde_json::from_slice(body).map_err(bad)?))
            }
            "application/merge-patch+json" => {
                let v: Value = serde_json::from_slice(body).map_err(bad)?;
                if !v.is_object() {
                    return Err(ApiError::bad_request(
                        "error decoding patch: a merge patch must be a JSON object",
                    ));
                }
                Ok(Patch::Merge(v))
            }
            "application/strategic-merge-patch+json" => {
                let v: Value = serde_json::from_slice(body).map_err(bad)?;
                if !v.is_object() {
                    return Err(ApiError::bad_request(
                        "error decoding patch: a strategic merge patch must be a JSON object",
                    ));
                }
                Ok(Patch::Strategic(
                    v,
                    vkube_core::smp::builtin(def.group, def.kind),
                ))
            }
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// Applies the patch to `doc` in place. A JSON patch is all or nothing
    /// (a failed operation leaves `doc` unchanged).
    ///
    /// # Errors
    /// `422 Invalid` when a JSON patch operation or the strategic merge
    /// cannot apply (kube-apiserver's answer to an unappliable patch).
    pub fn apply(&self, doc: &mut Value) -> ApiResult<()> {
        match self {
            Patch::Json(p) => json_patch::patch(doc, p).map_err(|e| ApiError {
                code: 422,
                reason: "Invalid".into(),
                message: e.to_string(),
                details: None,
            }),
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
