//! Service account tokens at the API: the `serviceaccounts/token`
//! subresource (authentication.k8s.io/v1 TokenRequest), the bearer token
//! authenticator for the JWTs it issues, `selfsubjectreviews` (what
//! `kubectl auth whoami` asks), and service account issuer discovery
//! (`/.well-known/openid-configuration`, `/openid/v1/jwks`).
//!
//! Upstream: k8s.io/kubernetes pkg/registry/core/serviceaccount/storage/
//! token.go (TokenRequest), pkg/serviceaccount/{jwt,claims}.go (issuing and
//! validation), pkg/registry/authentication/selfsubjectreview,
//! pkg/serviceaccount/openidmetadata.go. Token signing and the pure claim
//! checks are in [`crate::sa_token`]; the parts here read the store.

use crate::error::{ApiError, ApiResult, Cause, GroupResource};
use crate::meta;
use crate::pki::Identity;
use crate::registry;
use crate::rest::{Api, decode_stored, json_response};
use crate::sa_token::{self, Claims, ObjectRef, SigningKey, TokenError};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::path::Path;

/// Default `spec.expirationSeconds` of a TokenRequest (SetDefaults_TokenRequestSpec).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest token lifetime a TokenRequest may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest token lifetime a TokenRequest may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime kubelet asks for projected tokens; with
/// `extend_expiration`, pod-bound tokens with exactly this lifetime and a
/// kube audience are issued for [`EXTENDED_EXPIRATION_SECONDS`] and carry
/// `warnafter` (upstream `WarnOnlyBoundTokenExpirationSeconds`).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
/// One year: upstream `ExpirationExtensionSeconds`.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 3600;

/// How service account tokens are issued and accepted (kube-apiserver's
/// `--service-account-*` and `--api-audiences` flags).
#[derive(Debug, Clone)]
pub struct ServiceAccountConfig {
    /// `--service-account-issuer`: the `iss` of issued tokens; only tokens
    /// with this issuer are accepted.
    pub issuer: String,
    /// `--api-audiences`: a token must name one of these to authenticate;
    /// also the default `spec.audiences`. Empty means `[issuer]`, as
    /// kube-apiserver defaults it.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds: longer requests
    /// are shortened (with a warning upstream). `None`: no cap.
    pub max_expiration_seconds: Option<i64>,
    /// `--service-account-extend-token-expiration` (default true).
    pub extend_expiration: bool,
}

impl Default for ServiceAccountConfig {
    fn default() -> Self {
        Self {
            issuer: sa_token::DEFAULT_ISSUER.into(),
            api_audiences: Vec::new(),
            max_expiration_seconds: None,
            extend_expiration: true,
        }
    }
}

/// Issues and verifies service account tokens with the key in
/// `DATA_DIR/pki/sa.key`. Built once at start; verification uses the parsed
/// key and one store read per referenced object.
#[derive(Debug)]
pub struct TokenAuthority {
    key: SigningKey,
    issuer: String,
    api_audiences: Vec<String>,
    max_expiration_seconds: Option<i64>,
    extend_expiration: bool,
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The validated request of a TokenRequest body: (audiences, requested
/// expiration seconds, bound object reference `(apiVersion, kind, name, uid)`).
type TokenSpec = (Vec<String>, i64, Option<(String, String, String, String)>);

/// Validates and defaults a TokenRequest body for service account `name`
/// (pure): metadata name/namespace must match the URL when set, audiences
/// default to `default_audiences`, `expirationSeconds` defaults to 3600 and
/// must lie in [600, 2^32] (422 with upstream's messages).
pub fn token_request_spec(
    body: &Value,
    namespace: &str,
    name: &str,
    default_audiences: &[String],
) -> ApiResult<TokenSpec> {
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field: field.into(),
            }],
        )
    };
    let body_name = body.pointer("/metadata/name").and_then(Value::as_str);
    if let Some(n) = body_name.filter(|n| !n.is_empty() && *n != name) {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: {n:?}: must match the service account name if specified"),
        ));
    }
    let body_ns = body.pointer("/metadata/namespace").and_then(Value::as_str);
    if let Some(n) = body_ns.filter(|n| !n.is_empty() && *n != namespace) {
        return Err(invalid(
            "metadata.namespace",
            format!("Invalid value: {n:?}: must match the service account namespace if specified"),
        ));
    }
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let mut audiences: Vec<String> = match spec.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences: expected an array of strings"))?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "spec.audiences: expected an array of strings",
            ));
        }
    };
    if audiences.is_empty() {
        audiences = default_audiences.to_vec();
    }
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds: expected an integer"))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"),
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!(
                "Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let bound = match spec.get("boundObjectRef") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Some((s("apiVersion"), s("kind"), s("name"), s("uid")))
        }
    };
    Ok((audiences, expiration, bound))
}

impl TokenAuthority {
    /// Loads or creates the signing key in `pki_dir` and applies `config`.
    pub fn load_or_create(pki_dir: &Path, config: &ServiceAccountConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(pki_dir)?;
        let key = SigningKey::load_or_create(pki_dir)?;
        let api_audiences = if config.api_audiences.is_empty() {
            vec![config.issuer.clone()]
        } else {
            config.api_audiences.clone()
        };
        Ok(Self {
            key,
            issuer: config.issuer.clone(),
            api_audiences,
            max_expiration_seconds: config.max_expiration_seconds.filter(|s| *s > 0),
            extend_expiration: config.extend_expiration,
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The API audiences.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    async fn get(
        &self,
        api: &Api,
        resource: &str,
        ns: &str,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let def = registry::lookup("", "v1", resource).expect("core resource");
        match api.store.get(&def.key(Some(ns), name)).await {
            Ok(Some(kv)) => decode_stored(&kv).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(crate::rest::storage_error(def, name, e)),
        }
    }

    /// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: decodes a
    /// TokenRequest (JSON or protobuf), checks it ([`token_request_spec`]),
    /// requires the service account (`404`) and a bound Pod or Secret
    /// (`404`; a different uid is `409`; another kind, or a pod running as
    /// another service account, `400`), and answers `201` with the request,
    /// `status.token` and `status.expirationTimestamp`.
    pub async fn token_request(
        &self,
        api: &Api,
        namespace: &str,
        name: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ApiResult<Response> {
        let mut req = crate::rest::decode_body(headers, body, "TokenRequest")?;
        match req.get("apiVersion").and_then(Value::as_str) {
            None | Some("") | Some("authentication.k8s.io/v1") => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version (authentication.k8s.io/v1)"
                )));
            }
        }
        match req.get("kind").and_then(Value::as_str) {
            None | Some("") | Some("TokenRequest") => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind (TokenRequest)"
                )));
            }
        }
        let (audiences, mut expiration, bound) =
            token_request_spec(&req, namespace, name, &self.api_audiences)?;
        // The syncer mints the tokens of the pods it syncs, and only those:
        // as kube's NodeRestriction admission holds a kubelet, its requests
        // must be bound to a pod by uid (whose service account this is,
        // checked below for every pod-bound token).
        if crate::request::caller().is_some_and(|c| c.user == crate::bootstrap_policy::SYNCER_USER)
        {
            let why = match &bound {
                Some((v, k, _, uid)) if v == "v1" && k == "Pod" && !uid.is_empty() => None,
                Some((v, k, _, _)) if v == "v1" && k == "Pod" => {
                    Some("syncer requested token with a pod binding without a uid")
                }
                _ => Some("syncer requested token not bound to a pod"),
            };
            if let Some(why) = why {
                return Err(ApiError::forbidden(
                    &GroupResource::new("", "serviceaccounts"),
                    name,
                    why,
                ));
            }
        }
        let sa = self
            .get(api, "serviceaccounts", namespace, name)
            .await?
            .ok_or_else(|| ApiError::not_found(&GroupResource::new("", "serviceaccounts"), name))?;
        let now = jiff::Timestamp::now();
        let mut claims = Claims {
            issuer: self.issuer.clone(),
            audiences: audiences.clone(),
            issued_at: now.as_second(),
            not_before: now.as_second(),
            jti: meta::new_uid(),
            namespace: namespace.to_string(),
            service_account: ObjectRef {
                name: name.to_string(),
                uid: meta::uid(&sa).to_string(),
            },
            ..Claims::default()
        };
        if let Some((api_version, kind, ref_name, ref_uid)) = &bound {
            let (resource, obj) = match (api_version.as_str(), kind.as_str()) {
                ("v1", "Pod") => ("pods", self.get(api, "pods", namespace, ref_name).await?),
                ("v1", "Secret") => (
                    "secrets",
                    self.get(api, "secrets", namespace, ref_name).await?,
                ),
                _ => {
                    let gv = if api_version.contains('/') {
                        api_version.replacen('/', ", Version=", 1)
                    } else {
                        format!(", Version={api_version}")
                    };
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token to object of type {gv}, Kind={kind}"
                    )));
                }
            };
            let obj = obj
                .ok_or_else(|| ApiError::not_found(&GroupResource::new("", resource), ref_name))?;
            let uid = meta::uid(&obj).to_string();
            if !ref_uid.is_empty() && *ref_uid != uid {
                return Err(ApiError::conflict(
                    &GroupResource::new("", kind),
                    ref_name,
                    &format!(
                        "the UID in the bound object reference ({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            let r = ObjectRef {
                name: ref_name.clone(),
                uid,
            };
            if resource == "pods" {
                let pod_sa = obj
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("default");
                if pod_sa != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                let node_name = obj.pointer("/spec/nodeName").and_then(Value::as_str);
                if let Some(node_name) = node_name.filter(|n| !n.is_empty()) {
                    // A missing node is left out, as upstream does.
                    let nodes = registry::lookup("", "v1", "nodes").expect("core resource");
                    if let Ok(Some(kv)) = api.store.get(&nodes.key(None, node_name)).await
                        && let Ok(node) = decode_stored(&kv)
                    {
                        claims.node = Some(ObjectRef {
                            name: node_name.to_string(),
                            uid: meta::uid(&node).to_string(),
                        });
                    }
                }
                claims.pod = Some(r);
            } else {
                claims.secret = Some(r);
            }
        }
        if let Some(max) = self.max_expiration_seconds {
            expiration = expiration.min(max);
        }
        let mut lifetime = expiration;
        if self.extend_expiration
            && claims.pod.is_some()
            && expiration == WARN_ONLY_EXPIRATION_SECONDS
            && audiences.iter().any(|a| self.api_audiences.contains(a))
        {
            claims.warn_after = Some(now.as_second() + expiration);
            lifetime = EXTENDED_EXPIRATION_SECONDS;
        }
        claims.expiry = now.as_second() + lifetime;
        let token = self
            .key
            .sign(&claims.to_json())
            .map_err(ApiError::internal)?;

        let mut metadata = req
            .get("metadata")
            .filter(|m| m.is_object())
            .cloned()
            .unwrap_or(json!({}));
        metadata["name"] = json!(name);
        metadata["namespace"] = json!(namespace);
        metadata["creationTimestamp"] = json!(meta::rfc3339(now));
        let mut spec = req
            .get("spec")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or(json!({}));
        spec["audiences"] = json!(audiences);
        spec["expirationSeconds"] = json!(expiration);
        if spec.get("boundObjectRef").is_some_and(Value::is_null) {
            spec.as_object_mut()
                .expect("object")
                .remove("boundObjectRef");
        }
        let expires = now
            .checked_add(jiff::SignedDuration::from_secs(expiration))
            .unwrap_or(now);
        req["apiVersion"] = json!("authentication.k8s.io/v1");
        req["kind"] = json!("TokenRequest");
        req["metadata"] = metadata;
        req["spec"] = spec;
        req["status"] = json!({"token": token, "expirationTimestamp": meta::rfc3339(expires)});
        Ok(json_response(StatusCode::CREATED, &req))
    }

    /// The identity of a bearer token that is one of our service account
    /// JWTs: signature, issuer, audience and lifetime hold, and the service
    /// account (and bound pod or secret) still exists with the uid in the
    /// token and is not being deleted for longer than the leeway. Any other
    /// token is `Err` (the caller answers 401); never panics.
    pub async fn authenticate(&self, api: &Api, token: &str) -> Result<Identity, TokenError> {
        self.authenticate_for(api, token, &self.api_audiences)
            .await
            .map(|(id, _)| id)
    }

    /// As [`ServiceAccounts::authenticate`], for `audiences` instead of the
    /// API audiences (a TokenReview's `spec.audiences`); also returns the
    /// token's audiences among them.
    pub async fn authenticate_for(
        &self,
        api: &Api,
        token: &str,
        audiences: &[String],
    ) -> Result<(Identity, Vec<String>), TokenError> {
        let payload = self.key.verify(token)?;
        let claims = Claims::from_json(&payload).ok_or(TokenError::Claims)?;
        let now = now_unix();
        claims.validate(now, &self.issuer, audiences)?;
        let ns = claims.namespace.as_str();
        let checks = [
            ("serviceaccounts", Some(&claims.service_account)),
            ("pods", claims.pod.as_ref()),
            ("secrets", claims.secret.as_ref()),
        ];
        for (resource, r) in checks {
            let Some(r) = r else { continue };
            let obj = self
                .get(api, resource, ns, &r.name)
                .await
                .map_err(|e| TokenError::Invalidated(e.message))?
                .ok_or_else(|| {
                    TokenError::Invalidated(format!("{resource} {ns}/{} not found", r.name))
                })?;
            if meta::uid(&obj) != r.uid {
                return Err(TokenError::Invalidated(format!(
                    "{resource} {ns}/{} uid {} does not match claim {}",
                    r.name,
                    meta::uid(&obj),
                    r.uid
                )));
            }
            let deleted_at = obj
                .pointer("/metadata/deletionTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if deleted_at.is_some_and(|t| t.as_second() < now - sa_token::LEEWAY_SECONDS) {
                return Err(TokenError::Invalidated(format!(
                    "{resource} {ns}/{} has been deleted",
                    r.name
                )));
            }
        }
        let matched = claims
            .audiences
            .iter()
            .filter(|a| audiences.contains(a))
            .cloned()
            .collect();
        Ok((claims.identity(), matched))
    }

    /// `/.well-known/openid-configuration` (upstream
    /// `openidmetadata.go`): issuer, `jwks_uri` on `external_address`
    /// (`host:port`), and the supported algorithm.
    pub fn openid_configuration(&self, external_address: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("https://{external_address}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [sa_token::ALGORITHM],
        })
    }

    /// `/openid/v1/jwks`: the public signing key as a JWK set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.jwk()]})
    }
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: the caller's
/// user info (`201`), as `kubectl auth whoami` shows it. Empty `uid` and
/// `extra` are left out, as Go's `omitempty` does.
pub fn self_subject_review(
    identity: &Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    if !body.is_empty() {
        crate::rest::decode_body(headers, body, "SelfSubjectReview")?;
    }
    let mut user = json!({"username": identity.user, "groups": identity.groups});
    if !identity.uid.is_empty() {
        user["uid"] = json!(identity.uid);
    }
    if !identity.extra.is_empty() {
        user["extra"] = json!(identity.extra);
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": meta::now_rfc3339()},
            "status": {"userInfo": user},
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auds() -> Vec<String> {
        vec![sa_token::DEFAULT_ISSUER.to_string()]
    }

    #[test]
    fn token_request_defaults_and_validation() {
        let (a, e, b) = token_request_spec(&json!({}), "ns", "sa", &auds()).unwrap();
        assert_eq!((a, e, b), (auds(), 3600, None));
        let body = json!({"spec": {"audiences": ["foo"], "expirationSeconds": 600,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}});
        let (a, e, b) = token_request_spec(&body, "ns", "sa", &auds()).unwrap();
        assert_eq!(a, vec!["foo".to_string()]);
        assert_eq!(e, 600);
        assert_eq!(
            b,
            Some(("v1".into(), "Pod".into(), "p".into(), String::new()))
        );

        let e = token_request_spec(
            &json!({"spec": {"expirationSeconds": 599}}),
            "ns",
            "sa",
            &auds(),
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "TokenRequest.authentication.k8s.io \"sa\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        let e = token_request_spec(
            &json!({"spec": {"expirationSeconds": (1i64 << 32) + 1}}),
            "ns",
            "sa",
            &auds(),
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with("may not specify a duration larger than 2^32 seconds")
        );
        let e = token_request_spec(&json!({"metadata": {"name": "x"}}), "ns", "sa", &auds())
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("metadata.name"));
        assert_eq!(
            token_request_spec(&json!({"spec": {"audiences": "x"}}), "ns", "sa", &auds())
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            token_request_spec(
                &json!({"spec": {"expirationSeconds": "x"}}),
                "ns",
                "sa",
                &auds()
            )
            .unwrap_err()
            .code,
            400
        );
    }
}
