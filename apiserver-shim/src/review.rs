//! The review kinds ([`crate::registry::REVIEWS`]): created, answered and
//! never stored, as kube-apiserver's REST endpoints of
//! pkg/registry/authorization and pkg/registry/authentication serve them.
//! The answer (`201 Created`) is the request with its `status` filled in.
//!
//! * SubjectAccessReview, SelfSubjectAccessReview and
//!   LocalSubjectAccessReview are decided by [`crate::filters::authorization::rbac::authorize`]
//!   from the stored RBAC objects (what `kubectl auth can-i` asks); their
//!   specs are validated as `pkg/apis/authorization/validation` does.
//! * SelfSubjectRulesReview lists [`crate::filters::authorization::rbac::rules_for`] the caller in
//!   `spec.namespace` (`kubectl auth can-i --list`).
//! * TokenReview says whom a bearer token authenticates, for the requested
//!   audiences ([`token_review_request`], [`token_review_answer`]; the
//!   server authenticates).
//! * SelfSubjectReview is the caller's user info
//!   ([`crate::serviceaccount::self_subject_review`]).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use vkube_core::field::FieldError;

use crate::error::{ApiError, ApiResult, Cause};
use crate::filters::authorization::rbac::{self, Request, User};
use crate::pki::Identity;
use crate::registry::Review;
use crate::rest::{Api, decode_body, json_response};

/// The error of a TokenReview whose token no authenticator takes (kube's
/// bearer token authenticator).
pub const INVALID_TOKEN: &str = "invalid bearer token";

/// The API group of the access reviews.
const AUTHORIZATION: &str = "authorization.k8s.io";

fn kind_of(review: Review) -> &'static str {
    match review {
        Review::SelfSubject => "SelfSubjectReview",
        Review::Token => "TokenReview",
        Review::SubjectAccess => "SubjectAccessReview",
        Review::SelfSubjectAccess => "SelfSubjectAccessReview",
        Review::LocalSubjectAccess => "LocalSubjectAccessReview",
        Review::SelfSubjectRules => "SelfSubjectRulesReview",
        Review::Binding => "Binding",
    }
}

/// Decodes a review body of `kind` (`apiVersion`/`kind` checked when set,
/// filled when not).
fn decode(headers: &HeaderMap, body: &[u8], group: &str, kind: &str) -> ApiResult<Value> {
    let mut obj = if body.is_empty() {
        json!({})
    } else {
        decode_body(headers, body, kind)?
    };
    let api_version = format!("{group}/v1");
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && !v.is_empty()
        && v != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({kind})"
        )));
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

/// Whether `metadata` is empty (Go's zero ObjectMeta): no field set but
/// the ones in `allowed`, and `creationTimestamp: null` (what clients send).
fn metadata_empty(obj: &Value, allowed: &[&str]) -> bool {
    obj.get("metadata")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter().all(|(k, v)| {
                allowed.contains(&k.as_str())
                    || v.is_null()
                    || v.as_str() == Some("")
                    || v.as_object().is_some_and(Map::is_empty)
            })
        })
}

/// The `spec` checks of an access review (kube's
/// `ValidateSubjectAccessReviewSpec`, or `ValidateSelfSubjectAccessReviewSpec`
/// without `with_user`), in kube's order.
fn access_spec_errors(spec: &Value, with_user: bool) -> Vec<Cause> {
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let mut errors: Vec<FieldError> = Vec::new();
    match (resource, non_resource) {
        (Some(_), Some(n)) => errors.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            n,
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => errors.push(
            // Go renders the nil pointer it is given as the string "null".
            FieldError::invalid(
                "spec.resourceAttributes",
                &json!("null"),
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ),
        ),
        _ => {}
    }
    if with_user {
        let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
        let groups = spec
            .get("groups")
            .and_then(Value::as_array)
            .is_some_and(|g| !g.is_empty());
        if user.is_empty() && !groups {
            errors.push(FieldError::invalid(
                "spec.user",
                &json!(user),
                "at least one of user or group must be specified",
            ));
        }
    }
    if let Some(r) = resource {
        for (key, label) in [("fieldSelector", false), ("labelSelector", true)] {
            if let Some(sel) = r.get(key).filter(|v| !v.is_null()) {
                errors.extend(selector_attributes(
                    sel,
                    &format!("spec.resourceAttributes.{key}"),
                    label,
                ));
            }
        }
    }
    errors.into_iter().map(Cause::from).collect()
}

/// A review's `fieldSelector` or `labelSelector` (`label`) at `path`
/// (kube's `validateFieldSelectorAttributes` and
/// `validateLabelSelectorAttributes`): `rawSelector` or `requirements`,
/// not both, and each requirement well formed. Unknown operators pass, so
/// that newer clients' reviews are still answered (kube's
/// `AllowUnknownOperatorInRequirement`).
fn selector_attributes(sel: &Value, path: &str, label: bool) -> Vec<FieldError> {
    let mut out = Vec::new();
    let raw = sel
        .get("rawSelector")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let requirements = sel
        .get("requirements")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !raw.is_empty() && !requirements.is_empty() {
        out.push(FieldError::invalid(
            format!("{path}.rawSelector"),
            &json!(raw),
            "may not specified at the same time as requirements",
        ));
    }
    if raw.is_empty() && requirements.is_empty() {
        out.push(FieldError::required(
            format!("{path}.requirements"),
            &format!("when {path} is specified, requirements or rawSelector is required"),
        ));
    }
    for (i, r) in requirements.iter().enumerate() {
        let at = format!("{path}.requirements[{i}]");
        let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
        if !label && key.is_empty() {
            out.push(FieldError::required(
                format!("{at}.key"),
                "must be specified",
            ));
        }
        let values = r
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match r
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" | "NotIn" if values.is_empty() => out.push(FieldError::required(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => out.push(FieldError::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            _ => {}
        }
        if label {
            out.extend(
                vkube_core::validation::is_qualified_name(key)
                    .into_iter()
                    .map(|e| FieldError::invalid(format!("{at}.key"), &json!(key), &e)),
            );
            for (j, v) in values.iter().enumerate() {
                let v = v.as_str().unwrap_or_default();
                out.extend(
                    vkube_core::validation::is_valid_label_value(v)
                        .into_iter()
                        .map(|e| FieldError::invalid(format!("{at}.values[{j}]"), &json!(v), &e)),
                );
            }
        }
    }
    out
}

/// The request an access review asks about (its spec has passed
/// [`access_spec_errors`]).
fn request_of(spec: &Value) -> Request {
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match spec.get("resourceAttributes").filter(|v| !v.is_null()) {
        Some(r) => Request::Resource {
            verb: text(Some(r), "verb"),
            namespace: text(Some(r), "namespace"),
            group: text(Some(r), "group"),
            resource: text(Some(r), "resource"),
            subresource: text(Some(r), "subresource"),
            name: text(Some(r), "name"),
        },
        None => {
            let n = spec.get("nonResourceAttributes");
            Request::NonResource {
                verb: text(n, "verb"),
                path: text(n, "path"),
            }
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `POST` of an access review or a rules review by `caller`, in URL
/// namespace `namespace` (LocalSubjectAccessReview only).
///
/// Errors: `422 Invalid` for a spec kube's validation refuses; `400` for a
/// LocalSubjectAccessReview whose namespaces disagree with the URL's, a
/// rules review without `spec.namespace`, or an undecodable body.
pub async fn access_review(
    api: &Api,
    caller: &Identity,
    review: Review,
    namespace: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let kind = kind_of(review);
    let mut obj = decode(headers, body, AUTHORIZATION, kind)?;
    let invalid = |causes: Vec<Cause>| ApiError::invalid(kind, AUTHORIZATION, "", causes);
    if review == Review::SelfSubjectRules {
        let ns = obj
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if ns.is_empty() {
            return Err(ApiError::bad_request("no namespace on request"));
        }
        let policy = api.policy().await?;
        let user = User {
            name: &caller.user,
            groups: &caller.groups,
        };
        let (rules, error) = rbac::rules_for(&policy, user, &ns);
        let omit_empty = |v: Option<Vec<String>>| v.filter(|l| !l.is_empty());
        let resource_rules: Vec<Value> = rules
            .iter()
            .filter(|r| r.resources.as_ref().is_some_and(|l| !l.is_empty()))
            .map(|r| {
                let mut out = json!({"verbs": r.verbs});
                for (key, list) in [
                    ("apiGroups", omit_empty(r.api_groups.clone())),
                    ("resources", omit_empty(r.resources.clone())),
                    ("resourceNames", omit_empty(r.resource_names.clone())),
                ] {
                    if let Some(l) = list {
                        out[key] = json!(l);
                    }
                }
                out
            })
            .collect();
        let non_resource_rules: Vec<Value> = rules
            .iter()
            .filter(|r| r.non_resource_urls.as_ref().is_some_and(|l| !l.is_empty()))
            .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
            .collect();
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        });
        if !error.is_empty() {
            status["evaluationError"] = json!(error);
        }
        // kube answers a fresh review: only the status is filled in.
        obj["metadata"] = json!({"creationTimestamp": null});
        obj["spec"] = json!({});
        obj["status"] = status;
        return Ok(json_response(StatusCode::CREATED, &obj));
    }
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let local = review == Review::LocalSubjectAccess;
    // A LocalSubjectAccessReview's namespace must be the URL's before it is
    // validated (kube's create handler answers 400).
    let url_ns = namespace.unwrap_or_default();
    let obj_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(url_ns)
        .to_string();
    if local && obj_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    // Every error in one answer, in kube's order: the spec, the metadata,
    // then a local review's own rules.
    let with_user = review != Review::SelfSubjectAccess;
    let mut causes = access_spec_errors(&spec, with_user);
    let allowed_meta: &[&str] = if local { &["namespace"] } else { &[] };
    if !metadata_empty(&obj, allowed_meta) {
        let detail = if local {
            "must be empty except for namespace"
        } else {
            "must be empty"
        };
        let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
        causes.push(FieldError::invalid("metadata", &meta, detail).into());
    }
    if local {
        if let Some(r) = spec.get("resourceAttributes").filter(|v| !v.is_null()) {
            let ns = r
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if ns != obj_ns {
                causes.push(
                    FieldError::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(ns),
                        "must match metadata.namespace",
                    )
                    .into(),
                );
            }
        }
        if let Some(n) = spec.get("nonResourceAttributes").filter(|v| !v.is_null()) {
            causes.push(
                FieldError::invalid(
                    "spec.nonResourceAttributes",
                    n,
                    "disallowed on this kind of request",
                )
                .into(),
            );
        }
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    let request = request_of(&spec);
    if local {
        obj["metadata"] = json!({"namespace": obj_ns, "creationTimestamp": null});
    } else {
        obj["metadata"] = json!({"creationTimestamp": null});
    }
    let (name, groups) = if with_user {
        (
            spec.get("user")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            strings(spec.get("groups")),
        )
    } else {
        (caller.user.clone(), caller.groups.clone())
    };
    let policy = api.policy().await?;
    let decision = rbac::authorize(
        &policy,
        User {
            name: &name,
            groups: &groups,
        },
        &request,
    );
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    obj["status"] = status;
    Ok(json_response(StatusCode::CREATED, &obj))
}

/// The token and audiences a TokenReview body asks about, with the decoded
/// review to answer. Errors (`400`, kube's messages): a namespace in the
/// URL, no `spec.token`, an undecodable body.
pub fn token_review_request(
    namespace: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(String, Vec<String>, Value)> {
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "namespace is not allowed on this type: {ns}"
        )));
    }
    let obj = decode(headers, body, "authentication.k8s.io", "TokenReview")?;
    let token = obj
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let audiences = strings(obj.pointer("/spec/audiences"));
    Ok((token, audiences, obj))
}

/// The TokenReview answer for `review` given what authenticating its token
/// gave: the identity and the audiences it is valid for, or the
/// authenticator's error text. Empty fields are left out (Go's
/// `omitempty`).
pub fn token_review_answer(
    mut review: Value,
    result: Result<(Identity, Vec<String>), String>,
) -> Response {
    let status = match result {
        Ok((id, audiences)) => {
            let mut user = json!({"username": id.user, "groups": id.groups});
            if !id.uid.is_empty() {
                user["uid"] = json!(id.uid);
            }
            if !id.extra.is_empty() {
                user["extra"] = json!(id.extra);
            }
            let mut status = json!({"authenticated": true, "user": user});
            if !audiences.is_empty() {
                status["audiences"] = json!(audiences);
            }
            status
        }
        Err(error) => {
            let mut status = json!({"user": {}});
            if !error.is_empty() {
                status["error"] = json!(error);
            }
            status
        }
    };
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = status;
    json_response(StatusCode::CREATED, &review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_specs_are_validated_with_kubes_messages() {
        let err = access_spec_errors(&json!({"user": "a"}), true);
        assert_eq!(err[0].field, "spec.resourceAttributes");
        assert_eq!(
            err[0].message,
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
        let both = json!({"user": "a", "resourceAttributes": {"verb": "get"},
            "nonResourceAttributes": {"path": "/x", "verb": "get"}});
        assert_eq!(
            access_spec_errors(&both, true)[0].field,
            "spec.nonResourceAttributes"
        );
        // Every error at once, in kube's order: the spec's, then the
        // selectors'.
        let nobody = json!({"resourceAttributes": {"verb": "get", "resource": "pods",
            "fieldSelector": {"rawSelector": "a=b", "requirements": [{"key": "", "operator": "In"}]},
            "labelSelector": {"requirements": [{"key": "bad key", "operator": "Exists", "values": ["x", "bad value"]},
                                               {"key": "ok", "operator": "Tomorrow"}]}}});
        let got: Vec<String> = access_spec_errors(&nobody, true)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            got,
            [
                "spec.user: Invalid value: \"\": at least one of user or group must be specified",
                "spec.resourceAttributes.fieldSelector.rawSelector: Invalid value: \"a=b\": may not specified at the same time as requirements",
                "spec.resourceAttributes.fieldSelector.requirements[0].key: Required value: must be specified",
                "spec.resourceAttributes.fieldSelector.requirements[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.resourceAttributes.labelSelector.requirements[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.resourceAttributes.labelSelector.requirements[0].key: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.resourceAttributes.labelSelector.requirements[0].values[1]: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ]
        );
        let empty = json!({"user": "a", "resourceAttributes": {"labelSelector": {}}});
        assert_eq!(
            access_spec_errors(&empty, true)[0].message,
            "Required value: when spec.resourceAttributes.labelSelector is specified, requirements or rawSelector is required"
        );
        let unnamed = json!({"resourceAttributes": {"verb": "get", "resource": "pods"}});
        assert!(access_spec_errors(&unnamed, false).is_empty());
        assert_eq!(
            request_of(&unnamed),
            Request::Resource {
                verb: "get".into(),
                namespace: String::new(),
                group: String::new(),
                resource: "pods".into(),
                subresource: String::new(),
                name: String::new(),
            }
        );
        assert!(metadata_empty(
            &json!({"metadata": {"creationTimestamp": null}}),
            &[]
        ));
        assert!(!metadata_empty(&json!({"metadata": {"name": "x"}}), &[]));
        assert!(metadata_empty(
            &json!({"metadata": {"namespace": "x"}}),
            &["namespace"]
        ));
    }
}
