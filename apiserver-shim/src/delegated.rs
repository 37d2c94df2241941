//! Delegated authentication and authorization, for a process that is not
//! an API server but serves endpoints under a cluster's policy (the
//! stand-alone syncer's `/metrics`), as k8s.io/apiserver's delegating
//! authenticator and authorizer do for kube-controller-manager and
//! kube-scheduler's secure ports:
//!
//! * a request's bearer token is sent to the API server as an
//!   `authentication.k8s.io/v1` TokenReview ([`token_review`]), whose
//!   status names the user ([`identity_of`]);
//! * that user's request is decided by an `authorization.k8s.io/v1`
//!   SubjectAccessReview with non-resource attributes ([`access_review`]),
//!   so RBAC's `nonResourceURLs: ["/metrics"]` (the `system:monitoring`
//!   role) governs it;
//! * both answers are kept for 10 s (kube's
//!   `--authentication-token-webhook-cache-ttl` and
//!   `--authorization-webhook-cache-{authorized,unauthorized}-ttl`
//!   defaults), in caches of bounded size; failures to ask are not kept.
//!   Unlike kube's, a token the review does not authenticate is kept too
//!   (as nobody, 10 s), and a failed review is not retried: the scrape
//!   fails and the next one asks again.
//!
//! `/healthz`, `/livez` and `/readyz` are always allowed, without
//! credentials (kube's `--authorization-always-allow-paths` default). A
//! request without a bearer token is `401`: anonymous requests are not
//! taken (kube's components pass them on as `system:anonymous`, so RBAC
//! grants to that user or `system:unauthenticated` do not open this port).
//! A token the API server does not authenticate is `401`, a user
//! the policy does not allow is `403` with kube-apiserver's message, and
//! an API server that cannot be asked makes authentication fail (`401`) or
//! authorization an error (`500`), as in kube's filters.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::filters::authorization::rbac::Request as Attributes;
use crate::pki::Identity;

/// The paths served to anyone, without authentication or authorization
/// (kube's `--authorization-always-allow-paths` default).
pub const ALWAYS_ALLOW_PATHS: &[&str] = &["/healthz", "/livez", "/readyz"];

/// How long an answer of the API server is kept (kube's 10 s defaults).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// How many answers each cache holds at most, so that a stream of made-up
/// tokens or users costs bounded memory.
const CACHE_ENTRIES: u64 = 1024;

/// How long a review may take (kube's `--authentication-token-webhook`
/// and delegated review timeouts are 10 s).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// The TokenReview asking whom `token` authenticates, for no particular
/// audience (the API server's own).
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: None,
        },
        ..TokenReview::default()
    }
}

/// The identity an answered TokenReview names: `None` when its status says
/// the token is not authenticated (or names no user).
pub fn identity_of(review: &TokenReview) -> Option<Identity> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.as_ref()?;
    let name = user.username.clone().filter(|u| !u.is_empty())?;
    Some(Identity {
        user: name,
        uid: user.uid.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
        extra: user.extra.clone().unwrap_or_default(),
    })
}

/// The SubjectAccessReview asking whether `identity` may `verb` the
/// non-resource `path` (kube's request info: the method, lower-cased).
pub fn access_review(identity: &Identity, verb: &str, path: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(identity.user.clone()),
            uid: (!identity.uid.is_empty()).then(|| identity.uid.clone()),
            groups: Some(identity.groups.clone()),
            extra: (!identity.extra.is_empty()).then(|| identity.extra.clone()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.to_string()),
                verb: Some(verb.to_string()),
            }),
            resource_attributes: None,
        },
        ..SubjectAccessReview::default()
    }
}

/// Whether an answered SubjectAccessReview allows the request, with its
/// reason (empty when it gave none).
pub fn decision_of(review: &SubjectAccessReview) -> (bool, String) {
    match &review.status {
        Some(status) => (
            status.allowed && status.denied != Some(true),
            status.reason.clone().unwrap_or_default(),
        ),
        None => (false, String::new()),
    }
}

/// A cache of [`CACHE_ENTRIES`] answers kept [`CACHE_TTL`] each.
fn answers<K, V>() -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(CACHE_ENTRIES)
        .time_to_live(CACHE_TTL)
        .build()
}

/// Authenticates and authorizes requests by asking one API server
/// (TokenReview, SubjectAccessReview), with its answers cached.
pub struct Delegated {
    client: kube::Client,
    /// SHA-256 of a token → whom it authenticates (`None`: nobody).
    tokens: moka::sync::Cache<[u8; 32], Option<Identity>>,
    /// The review's spec as JSON → (allowed, reason).
    decisions: moka::sync::Cache<String, (bool, String)>,
}

impl Delegated {
    /// Asks the API server `client` talks to; its user must be allowed to
    /// create tokenreviews and subjectaccessreviews (kube's
    /// `system:auth-delegator` role).
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            tokens: answers(),
            decisions: answers(),
        }
    }

    /// Whom `token` authenticates, per the API server.
    ///
    /// # Errors
    /// `401 Unauthorized` when it authenticates nobody or the API server
    /// cannot be asked.
    pub async fn authenticate(&self, token: &str) -> ApiResult<Identity> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = match self.tokens.get(&key) {
            Some(known) => known,
            None => {
                let api = kube::Api::<TokenReview>::all(self.client.clone());
                let asked = tokio::time::timeout(
                    REVIEW_TIMEOUT,
                    api.create(&PostParams::default(), &token_review(token)),
                )
                .await;
                match asked {
                    Ok(Ok(answer)) => {
                        let known = identity_of(&answer);
                        self.tokens.insert(key, known.clone());
                        known
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "TokenReview failed");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("TokenReview timed out");
                        None
                    }
                }
            }
        };
        known.ok_or_else(ApiError::unauthorized)
    }

    /// Allows `identity` to `verb` the non-resource `path`, per the API
    /// server's policy.
    ///
    /// # Errors
    /// `403 Forbidden` with kube-apiserver's message when the policy does
    /// not allow it; `500` when the API server cannot be asked.
    pub async fn authorize(&self, identity: &Identity, verb: &str, path: &str) -> ApiResult<()> {
        let review = access_review(identity, verb, path);
        let key = serde_json::to_string(&review.spec).map_err(ApiError::internal)?;
        let (allowed, reason) = match self.decisions.get(&key) {
            Some(decision) => decision,
            None => {
                let api = kube::Api::<SubjectAccessReview>::all(self.client.clone());
                let answer = tokio::time::timeout(
                    REVIEW_TIMEOUT,
                    api.create(&PostParams::default(), &review),
                )
                .await
                .map_err(|_| ApiError::internal("SubjectAccessReview timed out"))?
                .map_err(|e| ApiError::internal(format!("SubjectAccessReview: {e}")))?;
                let decision = decision_of(&answer);
                self.decisions.insert(key, decision.clone());
                decision
            }
        };
        if allowed {
            return Ok(());
        }
        let attributes = Attributes::NonResource {
            verb: verb.to_string(),
            path: path.to_string(),
        };
        Err(crate::filters::authorization::forbidden(
            &identity.user,
            &attributes,
            &reason,
        ))
    }

    /// Lets a request through when it asks for one of
    /// [`ALWAYS_ALLOW_PATHS`], or its bearer token authenticates a user the
    /// policy allows the request's method (lower-cased) on its path.
    ///
    /// # Errors
    /// As [`Self::authenticate`] (`401`, also for no bearer token) and
    /// [`Self::authorize`] (`403`, `500`).
    pub async fn check(
        &self,
        method: &http::Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> ApiResult<()> {
        if ALWAYS_ALLOW_PATHS.contains(&path) {
            return Ok(());
        }
        let token = crate::filters::authentication::bearer_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let identity = self.authenticate(&token).await?;
        self.authorize(&identity, &method.as_str().to_ascii_lowercase(), path)
            .await
    }
}

/// An axum middleware (`axum::middleware::from_fn_with_state`) that answers
/// a request [`Delegated::check`] refuses with its `Status`, and passes the
/// others on.
pub async fn filter(State(delegated): State<Arc<Delegated>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    match delegated.check(req.method(), &path, req.headers()).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
    use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;

    #[test]
    fn an_answered_token_review_names_the_user_only_when_authenticated() {
        let mut review = token_review("t0k3n");
        assert_eq!(review.spec.token, "t0k3n");
        assert_eq!(identity_of(&review), None, "no status yet");
        let user = UserInfo {
            username: Some("system:vkube-metrics".into()),
            groups: Some(vec![
                "system:monitoring".into(),
                "system:authenticated".into(),
            ]),
            ..UserInfo::default()
        };
        review.status = Some(TokenReviewStatus {
            authenticated: Some(true),
            user: Some(user.clone()),
            ..TokenReviewStatus::default()
        });
        let id = identity_of(&review).expect("authenticated");
        assert_eq!(id.user, "system:vkube-metrics");
        assert_eq!(id.groups, ["system:monitoring", "system:authenticated"]);
        review.status = Some(TokenReviewStatus {
            authenticated: Some(false),
            user: Some(user),
            error: Some("invalid bearer token".into()),
            ..TokenReviewStatus::default()
        });
        assert_eq!(identity_of(&review), None);
    }

    #[test]
    fn an_access_review_asks_about_the_path_for_the_whole_identity() {
        let id = Identity {
            user: "system:serviceaccount:monitoring:prometheus".into(),
            uid: "u-1".into(),
            groups: vec!["system:serviceaccounts".into()],
            extra: [(
                "authentication.kubernetes.io/pod-name".to_string(),
                vec!["p".to_string()],
            )]
            .into(),
        };
        let review = access_review(&id, "get", "/metrics");
        let spec = &review.spec;
        assert_eq!(spec.user.as_deref(), Some(id.user.as_str()));
        assert_eq!(spec.uid.as_deref(), Some("u-1"));
        assert_eq!(spec.groups.as_deref(), Some(&id.groups[..]));
        assert!(spec.extra.is_some() && spec.resource_attributes.is_none());
        let attrs = spec.non_resource_attributes.as_ref().unwrap();
        assert_eq!(attrs.path.as_deref(), Some("/metrics"));
        assert_eq!(attrs.verb.as_deref(), Some("get"));
    }

    #[test]
    fn only_an_allowed_and_not_denied_answer_allows() {
        let mut review = access_review(&Identity::default(), "get", "/metrics");
        assert_eq!(decision_of(&review), (false, String::new()));
        review.status = Some(SubjectAccessReviewStatus {
            allowed: true,
            reason: Some("RBAC: allowed by ClusterRoleBinding".into()),
            ..SubjectAccessReviewStatus::default()
        });
        assert!(decision_of(&review).0);
        review.status = Some(SubjectAccessReviewStatus {
            allowed: true,
            denied: Some(true),
            ..SubjectAccessReviewStatus::default()
        });
        assert!(!decision_of(&review).0);
    }
}
