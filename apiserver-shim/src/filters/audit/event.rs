//! The audit event (`audit.k8s.io/v1` `Event`), its fields in kube's
//! order and with kube's `omitempty`s, so log pipelines that parse
//! kube-apiserver's audit log read ours.

use super::policy::{Level, Stage};
use crate::filters::authorization::rbac::Request as Attributes;
use crate::pki::Identity;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One audit event, written as one JSON line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `Event`.
    pub kind: &'static str,
    /// Always `audit.k8s.io/v1`.
    pub api_version: &'static str,
    /// The level the policy gave the request.
    pub level: Level,
    /// The request's id, also sent as the `Audit-Id` response header.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage this event was written at.
    pub stage: Stage,
    /// The request's path and query.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The request's verb (kube's RequestInfo verb, or the lower-cased
    /// method for non-resource requests).
    pub verb: String,
    /// The authenticated user.
    pub user: UserInfo,
    /// The user acted as, when impersonating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// `X-Forwarded-For`, then `X-Real-Ip`, then the peer address.
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The `User-Agent` header.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The object or collection a resource request is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// A `Status` with the response's code (and, for failures, its status,
    /// message, reason and details); none before a response exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<Value>,
    /// The request body (level `Request` and above).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response body (level `RequestResponse`; not for long-running
    /// requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request arrived (RFC 3339, microseconds).
    pub request_received_timestamp: String,
    /// When this stage was reached.
    pub stage_timestamp: String,
    /// Annotations, e.g. `authorization.k8s.io/decision`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserInfo {
    /// User name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// User uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&Identity> for UserInfo {
    fn from(id: &Identity) -> Self {
        UserInfo {
            username: id.user.clone(),
            uid: id.uid.clone(),
            groups: id.groups.clone(),
            extra: id.extra.clone(),
        }
    }
}

/// `audit.k8s.io/v1` `ObjectReference`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Resource (plural).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Object name; for a create, the created object's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Object uid, when the request body names one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// API group; empty for core.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// API version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// resourceVersion, when the request body names one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Subresource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The object reference of a resource request at path `segments`
/// (`api/v1/…` or `apis/G/V/…`), or none for non-resource requests (pure).
pub fn object_ref(attributes: &Attributes, segments: &[String]) -> Option<ObjectReference> {
    let Attributes::Resource {
        namespace,
        group,
        resource,
        subresource,
        name,
        ..
    } = attributes
    else {
        return None;
    };
    let api_version = match segments {
        [api, v, ..] if api == "api" => v.clone(),
        [apis, _, v, ..] if apis == "apis" => v.clone(),
        _ => String::new(),
    };
    Some(ObjectReference {
        resource: resource.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        api_group: group.clone(),
        api_version,
        subresource: subresource.clone(),
        ..ObjectReference::default()
    })
}

/// The `responseStatus` for a response with `code` and body `body` (pure):
/// a failure's `Status` without its type fields, else just the code.
pub fn response_status(code: u16, body: Option<&Value>) -> Value {
    if code >= 300
        && let Some(Value::Object(status)) = body
        && status.get("kind").and_then(Value::as_str) == Some("Status")
    {
        let mut status = status.clone();
        status.remove("kind");
        status.remove("apiVersion");
        status.insert("metadata".into(), serde_json::json!({}));
        return Value::Object(status);
    }
    serde_json::json!({"metadata": {}, "code": code})
}

/// Drops `metadata.managedFields` from an object or each item of a list
/// (kube's `omitManagedFields`).
pub fn remove_managed_fields(value: &mut Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
}

/// `now` as a `metav1.MicroTime`: RFC 3339 in UTC with microseconds.
pub fn micro_time(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_status_and_a_success_its_code() {
        let forbidden = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "no", "reason": "Forbidden", "code": 403});
        assert_eq!(
            response_status(403, Some(&forbidden)),
            serde_json::json!({"metadata": {}, "status": "Failure", "message": "no",
                "reason": "Forbidden", "code": 403})
        );
        assert_eq!(
            response_status(201, Some(&serde_json::json!({"kind": "Pod"}))),
            serde_json::json!({"metadata": {}, "code": 201})
        );
        assert_eq!(
            response_status(429, None),
            serde_json::json!({"metadata": {}, "code": 429})
        );
    }

    #[test]
    fn micro_time_has_six_digits() {
        let t: jiff::Timestamp = "2026-12-07T04:25:02.5Z".parse().unwrap();
        assert_eq!(micro_time(t), "2026-12-07T04:25:02.500000Z");
    }

    #[test]
    fn the_object_reference_names_the_version_and_subresource() {
        let path = "/api/v1/namespaces/dev/pods/web/exec";
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let attributes = crate::filters::authorization::attributes::of("POST", &segs, path, None);
        let r = object_ref(&attributes, &segments).unwrap();
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!({"resource": "pods", "namespace": "dev", "name": "web",
                "apiVersion": "v1", "subresource": "exec"})
        );
    }
}
