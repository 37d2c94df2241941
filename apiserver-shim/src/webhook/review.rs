//! The `admission.k8s.io/v1` AdmissionReview a webhook is sent and what
//! its answer means, as k8s.io/apiserver pkg/admission/plugin/webhook
//! `request/admissionreview.go` builds and verifies them, and the errors
//! the dispatchers give (`errors/statuserror.go`, `util/webhook/error.go`).
//! Pure: no I/O.

use super::matching::{Attributes, Invocation};
use crate::error::ApiError;
use base64::Engine as _;
use serde_json::{Value, json};

/// The AdmissionReview request body for one call; `uid` is new per call.
pub fn request(attrs: &Attributes, invocation: &Invocation, uid: &str) -> Value {
    let convert = |o: &Option<Value>| match o {
        Some(o) => convert_to(o, attrs, invocation),
        None => Value::Null,
    };
    let mut req = super::matching::request_variable(attrs, invocation);
    let fields = req.as_object_mut().expect("an object");
    // `omitempty` fields of AdmissionRequest.
    for key in ["subResource", "requestSubResource", "name", "namespace"] {
        if fields.get(key).and_then(Value::as_str) == Some("") {
            fields.remove(key);
        }
    }
    fields.insert("uid".into(), json!(uid));
    fields.insert("object".into(), convert(&attrs.object));
    fields.insert("oldObject".into(), convert(&attrs.old_object));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": req,
    })
}

/// The object at the invocation's version: an equivalent version differs
/// only in `apiVersion` ([`Attributes::equivalent_versions`]); the
/// request's own version is sent as it is.
fn convert_to(obj: &Value, attrs: &Attributes, invocation: &Invocation) -> Value {
    let mut obj = obj.clone();
    if invocation.resource != attrs.resource && obj.get("apiVersion").is_some() {
        obj["apiVersion"] = json!(invocation.resource.api_version());
    }
    obj
}

/// Most warnings kept from one answer.
const MAX_WARNINGS: usize = 64;

/// A webhook's verified answer.
#[derive(Debug, Default)]
pub struct Verdict {
    /// `response.allowed`.
    pub allowed: bool,
    /// `response.status` when denied.
    pub status: Option<Value>,
    /// The decoded JSONPatch (`response.patch`, mutating webhooks only).
    pub patch: Option<json_patch::Patch>,
    /// `response.warnings`.
    pub warnings: Vec<String>,
}

/// Why a call failed: `ErrCallingWebhook`'s reason. The failure policy
/// decides what it does to the request.
#[derive(Debug, PartialEq, Eq)]
pub struct CallError(pub String);

/// Verifies a response body (`VerifyAdmissionResponse` for v1) and decodes
/// its patch.
///
/// # Errors
/// The reason, as kube words it (`received invalid webhook response: …`).
pub fn verify(body: &[u8], uid: &str, mutating: bool) -> Result<Verdict, CallError> {
    let invalid = |why: String| CallError(format!("received invalid webhook response: {why}"));
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| CallError(format!("failed to call webhook: {e}")))?;
    let gvk = (
        review
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
        review.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    if gvk != ("admission.k8s.io/v1", "AdmissionReview") {
        let shown = match gvk.0.split_once('/') {
            Some((g, v)) => format!("{g}/{v}, Kind={}", gvk.1),
            None => format!("/{}, Kind={}", gvk.0, gvk.1),
        };
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {shown}"
        )));
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got != uid {
        return Err(invalid(format!(
            "expected response.uid={uid:?}, got {got:?}"
        )));
    }
    let patch = response
        .get("patch")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let patch_type = response
        .get("patchType")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    match (mutating, patch, patch_type) {
        (false, Some(_), _) => {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ));
        }
        (false, None, Some(_)) => {
            return Err(invalid(
                "validating webhook may not return response.patchType".into(),
            ));
        }
        (true, Some(_), None) => {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        (true, None, Some(_)) => {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch".into(),
            ));
        }
        _ => {}
    }
    let patch = match (patch, patch_type) {
        (Some(p), Some("JSONPatch")) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| {
                    CallError(format!(
                        "received undecodable patch in webhook response: {e}"
                    ))
                })?;
            Some(
                serde_json::from_slice::<json_patch::Patch>(&raw).map_err(|e| {
                    CallError(format!(
                        "received undecodable patch in webhook response: {e}"
                    ))
                })?,
            )
        }
        (Some(_), Some(other)) => {
            return Err(CallError(format!("unsupported patch type {other:?}")));
        }
        _ => None,
    };
    let mut warnings: Vec<String> = response
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .take(MAX_WARNINGS)
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // Past 4096 characters in all, each warning is cut to 256, as
    // kube-apiserver's warning recorder does.
    if warnings.iter().map(|w| w.chars().count()).sum::<usize>() > 4096 {
        for w in &mut warnings {
            if let Some((i, _)) = w.char_indices().nth(256) {
                w.truncate(i);
            }
        }
    }
    Ok(Verdict {
        allowed: response.get("allowed").and_then(Value::as_bool) == Some(true),
        status: response.get("status").cloned(),
        patch,
        warnings,
    })
}

/// The error of a denial (`ToStatusErr`): the webhook's `Status` kept
/// (reason, details), its code raised to at least 400, its message
/// prefixed with `admission webhook "<name>" denied the request`.
pub fn denied(webhook: &str, status: Option<&Value>) -> ApiError {
    let status = status.cloned().unwrap_or(Value::Null);
    let text = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (message, reason) = (text("message"), text("reason"));
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400);
    ApiError::from_parts(code, reason, message, status.get("details").cloned())
}

/// The error of a failed call under `failurePolicy: Fail`
/// (`apierrors.NewInternalError` of `ErrCallingWebhook`):
/// `Internal error occurred: failed calling webhook "<name>": <why>`.
pub fn call_failed(webhook: &str, why: &CallError) -> ApiError {
    ApiError::internal(format!("failed calling webhook {webhook:?}: {}", why.0))
}

/// Most operations a webhook's patch may have (kube's bound on a user's
/// JSON patch).
pub const MAX_PATCH_OPERATIONS: usize = crate::rest::patch::MAX_JSON_PATCH_OPERATIONS;
/// JSON values visited, at most, while checking what a patch adds.
const PATCH_WORK_BUDGET: usize = 10_000_000;

/// The nesting depth of `v` and an estimate of its encoded size in bytes,
/// walked without recursion; `None` once deeper than `max_depth` or past
/// `budget` values.
fn measure(v: &Value, max_depth: usize, budget: &mut usize) -> Option<(usize, usize)> {
    let mut stack = vec![(v, 1usize)];
    let (mut deepest, mut bytes) = (0, 0);
    while let Some((v, depth)) = stack.pop() {
        *budget = budget.checked_sub(1)?;
        if depth > max_depth {
            return None;
        }
        deepest = deepest.max(depth);
        bytes += match v {
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter().map(|i| (i, depth + 1)));
                2 + items.len()
            }
            Value::Object(fields) => {
                stack.extend(fields.iter().map(|(k, i)| {
                    bytes += k.len() + 4;
                    (i, depth + 1)
                }));
                2
            }
            _ => 8,
        };
    }
    Some((deepest, bytes))
}

/// Applies a webhook's JSONPatch to `doc`, one operation at a time
/// ([`crate::rest::patch::apply_json_patch_with`], with kube's bound on
/// copies), so that a hostile patch cannot grow the object past
/// `max_bytes` (`copy` doubling it) or nest it deeper than `max_depth` (a
/// chain of `move`s) before it is refused: the value each operation writes
/// is measured where it lands. Pure.
///
/// # Errors
/// The patch has too many operations, does not apply (json-patch's
/// message), or would exceed the bounds.
pub fn apply_patch(
    doc: &Value,
    patch: &json_patch::Patch,
    max_bytes: usize,
    max_depth: usize,
) -> Result<Value, String> {
    use json_patch::PatchOperation as Op;
    if patch.0.len() > MAX_PATCH_OPERATIONS {
        return Err(format!(
            "the patch has {} operations, more than {MAX_PATCH_OPERATIONS}",
            patch.0.len()
        ));
    }
    let mut budget = PATCH_WORK_BUDGET;
    let too_big = || {
        format!(
            "the patched object would exceed {max_bytes} bytes or {max_depth} levels of nesting"
        )
    };
    let (_, mut size) = measure(doc, max_depth, &mut budget).ok_or_else(too_big)?;
    crate::rest::patch::apply_json_patch_with(doc, patch, |out, op| {
        let (path, grows) = match op {
            Op::Add(o) => (&o.path, true),
            Op::Replace(o) => (&o.path, true),
            Op::Copy(o) => (&o.path, true),
            Op::Move(o) => (&o.path, false),
            Op::Remove(_) | Op::Test(_) => return Ok(()),
        };
        let Some(written) = out.pointer(path.as_str()) else {
            return Ok(());
        };
        let room = max_depth.saturating_sub(path.count());
        let (_, bytes) = measure(written, room, &mut budget).ok_or_else(too_big)?;
        if grows {
            size += bytes;
            if size > max_bytes.saturating_mul(2) {
                return Err(too_big());
            }
        }
        Ok(())
    })
}
