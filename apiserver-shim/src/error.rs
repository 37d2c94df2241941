//! The one wire error of the server: a Kubernetes `Status` object.
//!
//! Every failure a handler can produce becomes an [`ApiError`], whose body is a
//! `meta.k8s.io/v1` `Status` with the reason, code and message text that
//! kube-apiserver uses (k8s.io/apimachinery/pkg/api/errors/errors.go), so that
//! kubectl, client-go and kube-rs classify it exactly as they would against a
//! real cluster.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// A resource name qualified by its API group, as kube-apiserver prints it in
/// error messages: `pods` for the core group, `deployments.apps` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    /// API group; empty for the core (legacy) group.
    pub group: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
}

impl GroupResource {
    /// Builds a group-resource pair.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One entry of `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable cause, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable description.
    pub message: String,
    /// JSON path of the offending field, e.g. `metadata.name`.
    pub field: String,
}

impl From<vkube_core::field::FieldError> for Cause {
    /// A pure field error (`vkube_core::field`) as a `Status` cause.
    fn from(e: vkube_core::field::FieldError) -> Self {
        Self {
            reason: e.reason.to_string(),
            message: e.message,
            field: e.field,
        }
    }
}

/// A failed API call, rendered as a `Status` body with the matching HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`, a CamelCase `StatusReason` (empty for none); an
    /// admission webhook's denial passes its own through.
    pub reason: std::borrow::Cow<'static, str>,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the failure concerns one object.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    /// An error with a `Status` made elsewhere (an admission webhook's
    /// denial): `code`, `reason`, `message` and `details` as given.
    pub fn from_parts(
        code: u16,
        reason: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        Self {
            code,
            reason: reason.into(),
            message: message.into(),
            details,
        }
    }

    fn with_details(mut self, gr: &GroupResource, name: &str) -> Self {
        // StatusDetails fields are `omitempty`.
        let mut d = json!({});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        if !gr.resource.is_empty() {
            d["kind"] = json!(gr.resource);
        }
        if !gr.group.is_empty() {
            d["group"] = json!(gr.group);
        }
        self.details = Some(d);
        self
    }

    /// 404 NotFound: `pods "abc" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{gr} \"{name}\" not found")).with_details(gr, name)
    }

    /// 409 AlreadyExists: `pods "abc" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} \"{name}\" already exists"),
        )
        .with_details(gr, name)
    }

    /// 409 Conflict: `Operation cannot be fulfilled on pods "abc": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"),
        )
        .with_details(gr, name)
    }

    /// A host cluster's refusal ([`vkube_core::service::HostRefusal`]),
    /// answered as it came: same code, message and details; the reason when
    /// it is one of the `StatusReason`s of the API conventions (else none).
    pub fn from_host(r: vkube_core::service::HostRefusal) -> Self {
        const REASONS: &[&str] = &[
            "Unauthorized",
            "Forbidden",
            "NotFound",
            "AlreadyExists",
            "Conflict",
            "Gone",
            "Invalid",
            "ServerTimeout",
            "Timeout",
            "TooManyRequests",
            "BadRequest",
            "MethodNotAllowed",
            "NotAcceptable",
            "RequestEntityTooLarge",
            "UnsupportedMediaType",
            "InternalError",
            "Expired",
            "ServiceUnavailable",
        ];
        let reason = REASONS
            .iter()
            .find(|known| **known == r.reason)
            .copied()
            .unwrap_or("");
        Self {
            code: if (400..600).contains(&r.code) {
                r.code
            } else {
                500
            },
            reason: reason.into(),
            message: r.message,
            details: r.details,
        }
    }

    /// The optimistic-concurrency conflict of an update with a stale resourceVersion.
    pub fn modified(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `Pod "x" is invalid: <field>: <detail>`, one cause per field
    /// error; several errors are listed in brackets, as
    /// `errors.NewInvalid` does with an aggregate.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let summary = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason, "message": c.message, "field": c.field
            })).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let group_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self {
            code: 422,
            reason: "Invalid".into(),
            message: format!("{group_kind} \"{name}\" is invalid: {summary}"),
            details: Some(details),
        }
    }

    /// 422 for a forbidden combination of list/watch options:
    /// `ListOptions.meta.k8s.io "" is invalid: <field>: Forbidden: <msg>`
    /// (k8s.io/apimachinery/pkg/apis/meta/internalversion/validation).
    pub fn list_options_forbidden(field: &str, msg: &str) -> Self {
        Self::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: {msg}"),
                field: field.into(),
            }],
        )
    }

    /// 400 BadRequest with the given message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden: `<resource> "<name>" is forbidden: <why>`, without the
    /// name when it is empty and as `forbidden: <why>` without a resource.
    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        // apimachinery's NewForbidden: the resource and name when known.
        let message = match (gr.resource.is_empty(), name.is_empty()) {
            (true, _) => format!("forbidden: {why}"),
            (false, true) => format!("{gr} is forbidden: {why}"),
            (false, false) => format!("{gr} \"{name}\" is forbidden: {why}"),
        };
        Self::new(403, "Forbidden", message).with_details(gr, name)
    }

    /// Adds one cause to `details.causes`.
    pub fn with_cause(mut self, reason: &str, message: &str, field: &str) -> Self {
        let details = self.details.get_or_insert_with(|| json!({}));
        let causes = details
            .as_object_mut()
            .expect("details is an object")
            .entry("causes")
            .or_insert_with(|| json!([]));
        if let Some(a) = causes.as_array_mut() {
            a.push(json!({"reason": reason, "message": message, "field": field}));
        }
        self
    }

    /// 405 MethodNotAllowed for a verb the resource does not support.
    pub fn method_not_supported(gr: &GroupResource, verb: &str) -> Self {
        let mut e = Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind \"{gr}\""),
        );
        e.details = Some(json!({ "group": gr.group, "kind": gr.resource }));
        e
    }

    /// 404 for a URL that names no resource (kube-apiserver answers these with
    /// a bare `404 page not found` Status).
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 410 Expired, the answer to a resourceVersion older than the watch window
    /// (`too old resource version: 12 (40)`).
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 410 Expired for a `continue` token whose revision has been compacted.
    pub fn continue_expired() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue \
             token in this response to retrieve the remainder of the results. Continuing with \
             the provided token results in an inconsistent list - objects that were created, \
             modified, or deleted between the time the first chunk was returned and now may \
             show up in the list.",
        )
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 UnsupportedMediaType for a Content-Type the endpoint does not take.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                if content_type.contains("patch") {
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
                } else {
                    "application/json, application/vnd.kubernetes.protobuf"
                }
            ),
        )
    }

    /// 415 for a strategic merge patch of a custom resource, which has no
    /// patch strategies: the patch types custom resources accept.
    pub fn strategic_patch_of_custom_resource() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    }

    /// 405 MethodNotAllowed with `message` (`errors.NewMethodNotSupported`'s
    /// code and reason with the caller's own words), e.g. a create of a
    /// custom resource whose definition is being deleted.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 504 Timeout, e.g. `Too large resource version: 50, current: 40`.
    pub fn timeout(message: impl Into<String>, retry_after_seconds: u64) -> Self {
        let mut e = Self::new(504, "Timeout", format!("Timeout: {}", message.into()));
        e.details = Some(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": retry_after_seconds,
        }));
        e
    }

    /// 429 TooManyRequests with `message` (`errors.NewTooManyRequests`
    /// without a retry hint).
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// 500 InternalError; the cause is logged and summarised.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// The `Status` object this error renders to.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        if self.reason.is_empty() {
            status.as_object_mut().map(|o| o.remove("reason"));
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64);
        let body = vkube_core::gojson::to_vec(&self.to_status());
        let mut resp = (
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Result alias for handlers and the REST layer.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_kube_apiserver() {
        let e = ApiError::not_found(&GroupResource::new("apps", "deployments"), "x");
        let s = e.to_status();
        assert_eq!(s["message"], "deployments.apps \"x\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["details"]["kind"], "deployments");
        let core = ApiError::not_found(&GroupResource::new("", "pods"), "abc").to_status();
        assert_eq!(core["message"], "pods \"abc\" not found");
        assert!(core["details"].get("group").is_none());
    }

    #[test]
    fn invalid_aggregates_causes() {
        let one = ApiError::invalid(
            "Pod",
            "",
            "p",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.containers".into(),
            }],
        );
        assert_eq!(
            one.message,
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        let two = ApiError::invalid(
            "Pod",
            "",
            "p",
            vec![
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "a".into(),
                },
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value".into(),
                    field: "b".into(),
                },
            ],
        );
        assert_eq!(
            two.message,
            "Pod \"p\" is invalid: [a: Required value, b: Invalid value]"
        );
        assert_eq!(two.to_status()["details"]["causes"][1]["field"], "b");
    }
}
