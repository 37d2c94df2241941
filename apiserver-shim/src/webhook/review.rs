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
    let mut user = json!({
        "username": attrs.user.user,
        "groups": attrs.user.groups,
    });
    if !attrs.user.uid.is_empty() {
        user["uid"] = json!(attrs.user.uid);
    }
    if !attrs.user.extra.is_empty() {
        user["extra"] = json!(attrs.user.extra);
    }
    let gvk =
        |g: &super::matching::Gvr| json!({"group": g.group, "version": g.version, "kind": g.kind});
    let gvr = |g: &super::matching::Gvr| json!({"group": g.group, "version": g.version, "resource": g.resource});
    let convert = |o: &Option<Value>| match o {
        Some(o) => convert_to(o, invocation),
        None => Value::Null,
    };
    let mut req = json!({
        "uid": uid,
        "kind": gvk(&invocation.resource),
        "resource": gvr(&invocation.resource),
        "requestKind": gvk(&attrs.resource),
        "requestResource": gvr(&attrs.resource),
        "operation": attrs.operation.as_str(),
        "userInfo": user,
        "object": convert(&attrs.object),
        "oldObject": convert(&attrs.old_object),
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    });
    let fields = req.as_object_mut().expect("an object");
    for (key, value) in [
        ("subResource", &attrs.subresource),
        ("requestSubResource", &attrs.subresource),
        ("name", &attrs.name),
        ("namespace", &attrs.namespace),
    ] {
        if !value.is_empty() {
            fields.insert(key.into(), json!(value));
        }
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": req,
    })
}

/// The object at the invocation's version: an equivalent version differs
/// only in `apiVersion` ([`Attributes::equivalent_versions`]).
fn convert_to(obj: &Value, invocation: &Invocation) -> Value {
    let mut obj = obj.clone();
    let r = &invocation.resource;
    if obj.get("apiVersion").is_some() && obj.get("kind").and_then(Value::as_str) == Some(&r.kind) {
        obj["apiVersion"] = json!(if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        });
    }
    obj
}

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
    /// `response.auditAnnotations`.
    pub audit_annotations: Vec<(String, String)>,
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
    let warnings = response
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let audit_annotations = response
        .get("auditAnnotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Verdict {
        allowed: response.get("allowed").and_then(Value::as_bool) == Some(true),
        status: response.get("status").cloned(),
        patch,
        warnings,
        audit_annotations,
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
