//! JWT (OIDC) authenticators: each issuer's signing keys, fetched from its
//! OpenID discovery document (`URL/.well-known/openid-configuration`, or
//! `discoveryURL`) and its `jwks_uri` over verified TLS, and the checks a
//! token must pass before its claims are mapped ([`super::claims`]):
//! signature by a current key of its issuer (asymmetric algorithms only),
//! `iss`, one of the audiences, `exp` and `nbf` with a minute of clock skew
//! (go-jose's default leeway, which kube's verifier uses).
//!
//! Keys are fetched when first needed (a server starts without waiting on
//! its issuers, as kube-apiserver initialises its JWT authenticators in the
//! background), again when a token names a key id the set lacks (the
//! issuer rotated its keys), and when the set is an hour old. Fetches are
//! single-flight, as go-oidc's remote key set: requests that were waiting
//! while one fetch ran use its result instead of fetching again.

use super::claims;
use super::config::{AuthenticationConfiguration, Compiled, JwtAuthenticator};
use crate::pki::Identity;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The root store of a PEM CA bundle.
///
/// # Errors
/// No certificate in `pem`, or one rustls refuses.
pub fn root_store(pem: &str) -> Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        store.add(cert?)?;
    }
    if store.is_empty() {
        bail!("no certificate in the bundle");
    }
    Ok(store)
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// One issuer's authenticator.
struct Authenticator {
    config: JwtAuthenticator,
    compiled: Compiled,
    client: HttpsClient,
    keys: tokio::sync::Mutex<Option<(JwkSet, Instant)>>,
}

/// Every configured JWT authenticator, chosen by a token's (unverified)
/// `iss` as kube's are.
pub struct JwtAuthenticators {
    issuers: Vec<Authenticator>,
}

impl std::fmt::Debug for JwtAuthenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self
            .issuers
            .iter()
            .map(|a| a.config.issuer.url.as_str())
            .collect();
        f.debug_struct("JwtAuthenticators")
            .field("issuers", &urls)
            .finish()
    }
}

fn https_client(certificate_authority: &str) -> Result<HttpsClient> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if certificate_authority.is_empty() {
        builder
            .with_provider_and_native_roots(provider)
            .context("reading the system's root certificates")?
    } else {
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(root_store(certificate_authority)?)
            .with_no_client_auth();
        builder.with_tls_config(tls)
    };
    let connector = builder.https_only().enable_http1().build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

impl JwtAuthenticators {
    /// Authenticators for `config`, validated against
    /// `disallowed_issuers` (the service account issuers).
    ///
    /// # Errors
    /// The validation errors, one per line; a CA bundle rustls refuses.
    pub fn new(
        config: &AuthenticationConfiguration,
        disallowed_issuers: &[String],
    ) -> Result<Self> {
        let compiled = config
            .validate(disallowed_issuers)
            .map_err(|errors| anyhow!("{}", errors.join("\n")))?;
        let issuers = config
            .jwt
            .iter()
            .cloned()
            .zip(compiled)
            .map(|(config, compiled)| {
                Ok(Authenticator {
                    client: https_client(&config.issuer.certificate_authority)?,
                    config,
                    compiled,
                    keys: tokio::sync::Mutex::new(None),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { issuers })
    }

    /// Whether a token claims an issuer configured here.
    pub fn claims_issuer(&self, token: &str) -> bool {
        unverified_issuer(token)
            .is_some_and(|iss| self.issuers.iter().any(|a| a.config.issuer.url == iss))
    }

    /// The user a token authenticates as: `None` when its `iss` is no
    /// configured issuer (another authenticator may know it).
    ///
    /// Errors (`Some(Err)`): why the token is refused (for the server's
    /// log; the client gets `401`).
    pub async fn authenticate(&self, token: &str) -> Option<Result<Identity>> {
        let iss = unverified_issuer(token)?;
        let a = self.issuers.iter().find(|a| a.config.issuer.url == iss)?;
        Some(a.authenticate(token).await)
    }
}

/// The `iss` claim of a JWT, read without verifying it (kube's
/// `hasCorrectIssuer`).
fn unverified_issuer(token: &str) -> Option<String> {
    if token.len() > crate::sa_token::MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

impl Authenticator {
    async fn authenticate(&self, token: &str) -> Result<Identity> {
        let header = jsonwebtoken::decode_header(token).context("oidc: malformed token")?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            bail!(
                "oidc: token signed with unsupported algorithm {:?}",
                header.alg
            );
        }
        let jwk = self.key(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).context("oidc: unusable issuer key")?;
        let issuer = &self.config.issuer;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.url]);
        validation.set_audience(&issuer.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = crate::sa_token::LEEWAY_SECONDS.unsigned_abs();
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| anyhow!("oidc: verify token: {e}"))?;
        claims::user(&self.config, &self.compiled, &data.claims).map_err(|e| anyhow!(e))
    }

    /// The key `kid` names (or the only key, without a `kid`), fetching the
    /// set when it is missing, old, or lacks `kid`.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk> {
        let asked = Instant::now();
        let mut keys = self.keys.lock().await;
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => (set.keys.len() == 1).then(|| set.keys[0].clone()),
        };
        let fresh = keys.as_ref().is_some_and(|(_, at)| at.elapsed() < MAX_AGE);
        if fresh && let Some(found) = keys.as_ref().and_then(|(set, _)| pick(set)) {
            return Ok(found);
        }
        // A set fetched while this request waited is as new as it gets.
        let fetched_meanwhile = keys.as_ref().is_some_and(|(_, at)| *at >= asked);
        if !fetched_meanwhile {
            let set = self.fetch().await?;
            *keys = Some((set, Instant::now()));
        }
        keys.as_ref()
            .and_then(|(set, _)| pick(set))
            .with_context(|| format!("oidc: no key {kid:?} in the issuer's key set"))
    }

    async fn fetch(&self) -> Result<JwkSet> {
        let issuer = &self.config.issuer;
        let discovery_url = if issuer.discovery_url.is_empty() {
            format!(
                "{}/.well-known/openid-configuration",
                issuer.url.trim_end_matches('/')
            )
        } else {
            issuer.discovery_url.clone()
        };
        let discovery = self.get_json(&discovery_url).await?;
        let named = discovery
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if named != issuer.url {
            bail!(
                "oidc: issuer did not match the issuer returned by provider, expected {:?} got {named:?}",
                issuer.url
            );
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .context("oidc: the discovery document names no jwks_uri")?;
        let set = self.get_json(jwks_uri).await?;
        // Keys of a type this verifier does not know are skipped, not fatal.
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .context("oidc: the key set has no keys")?
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        Ok(JwkSet { keys })
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("oidc: bad URL {url:?}"))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("oidc: fetching {url} timed out"))?
            .with_context(|| format!("oidc: fetching {url}"))?;
        if !response.status().is_success() {
            bail!("oidc: fetching {url}: {}", response.status());
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow!("oidc: reading {url}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).with_context(|| format!("oidc: {url} is not JSON"))
    }
}
