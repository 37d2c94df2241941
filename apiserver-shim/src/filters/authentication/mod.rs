//! Authentication: who a request comes from ([`authenticate`]): a client
//! certificate signed by the cluster's CA, the server's own bearer tokens,
//! tokens of OIDC identity providers verified by the JWT authenticators of
//! a structured authentication configuration (`--authentication-config`,
//! KEP-3331), or service account tokens; with anonymous authentication on,
//! a request without credentials is `system:anonymous`.

use crate::pki::Identity;

pub mod claims;
pub mod config;
pub mod jwks;

/// The user of requests without credentials (kube's `system:anonymous` in
/// `system:unauthenticated`), whom RBAC's bootstrap policy lets read
/// `/healthz`, `/livez`, `/readyz` and `/version`
/// (`system:public-info-viewer`) and nothing else.
pub fn anonymous() -> Identity {
    Identity {
        user: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
        ..Identity::default()
    }
}

/// The bearer token of a request's `Authorization` header: `None` without
/// the header; a header that carries no usable bearer token (another
/// scheme, an empty token) is a failed credential (`Some("")`, which no
/// authenticator takes), answered `401`. kube's bearer token authenticator
/// passes such a request on as carrying no credential (anonymous where
/// that is on); vkube refuses it rather than guess what was meant.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    headers.get(http::header::AUTHORIZATION).map(|v| {
        let v = v.to_str().unwrap_or_default();
        match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_string()
            }
            _ => String::new(),
        }
    })
}

/// The caller's identity: the verified client certificate, else a bearer
/// token from the static map, else a JWT of a configured OIDC issuer (chosen
/// by its `iss`), else a service account JWT
/// ([`crate::serviceaccount::TokenAuthority::authenticate`]). Like
/// kube-apiserver's authenticator chain, every authenticated user also gets
/// the group `system:authenticated`. A request without credentials is
/// [`anonymous`] when the server allows it (`--anonymous-auth`), else
/// unauthenticated (`None`, answered `401`); credentials that fail are
/// never anonymous.
pub async fn authenticate(
    state: &crate::server::AppState,
    from_cert: Option<Identity>,
    bearer: Option<String>,
) -> Option<Identity> {
    let mut id = match from_cert {
        Some(id) => id,
        None => {
            let Some(token) = bearer else {
                return state.anonymous_auth.then(anonymous);
            };
            let known = state.static_identity(&token);
            let oidc = match &state.jwt {
                Some(jwt) if known.is_none() => jwt.authenticate(&token).await,
                _ => None,
            };
            match (known, oidc) {
                (Some(id), _) => id,
                (None, Some(Ok(id))) => id,
                (None, Some(Err(e))) => {
                    tracing::debug!(error = %e, "OIDC token rejected");
                    return None;
                }
                (None, None) => match state
                    .service_accounts
                    .authenticate(&state.api, &token)
                    .await
                {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::debug!(error = %e, "bearer token rejected");
                        return None;
                    }
                },
            }
        }
    };
    if !id.groups.iter().any(|g| g == "system:authenticated") {
        id.groups.push("system:authenticated".into());
    }
    Some(id)
}
