//! JWT (OIDC) authenticators: each issuer's signing keys, fetched from its
//! OpenID discovery document (`URL/.well-known/openid-configuration`, or
//! `discoveryURL`) and its `jwks_uri` over verified TLS, and the checks a
//! token must pass before its claims are mapped ([`super::claims`]):
//! signature by a current key of its issuer (asymmetric algorithms only),
//! `iss`, one of the audiences, `exp` and `nbf` with a minute of clock skew
//! (go-jose's default leeway, which kube's verifier uses).
//!
//! An issuer's keys may instead be given as a file (a JWKS document,
//! `--authentication-jwks-file URL=FILE`) for hosts that cannot reach it;
//! the file is read as a fetch would be, so replacing it rotates the keys.
//!
//! Keys are fetched when first needed (a server starts without waiting on
//! its issuers, as kube-apiserver initialises its JWT authenticators in the
//! background), again when a token names a key id the set lacks (the
//! issuer rotated its keys) and when the set is an hour old: one fetch at a
//! time (requests that waited for it use its result), at most every five
//! seconds, ten seconds at most each; a failed fetch keeps the keys in use.

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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Longest a fetch (discovery and key set, bodies included) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest time between two fetches.
const MIN_REFETCH: Duration = Duration::from_secs(5);

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
    /// The issuer's keys as a file (a JWKS document) instead of fetched,
    /// for hosts that cannot reach the issuer; read like a fetch.
    key_file: Option<PathBuf>,
    /// The last key set fetched, and when.
    keys: std::sync::RwLock<Option<(JwkSet, Instant)>>,
    /// Held while fetching; when the last fetch was attempted.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

/// Every configured JWT authenticator, chosen by a token's (unverified)
/// `iss` as kube's are.
pub struct JwtAuthenticators {
    issuers: Vec<Arc<Authenticator>>,
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
        match builder.with_provider_and_native_roots(provider.clone()) {
            Ok(builder) => builder,
            // Fetches will fail verification and say so; an issuer whose
            // keys come from a file needs no roots.
            Err(e) => {
                tracing::warn!(error = %e, "no system root certificates for OIDC issuers");
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )
            }
        }
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
        key_files: &std::collections::BTreeMap<String, PathBuf>,
    ) -> Result<Self> {
        let compiled = config
            .validate(disallowed_issuers)
            .map_err(|errors| anyhow!("{}", errors.join("\n")))?;
        if let Some(url) = key_files
            .keys()
            .find(|url| !config.jwt.iter().any(|a| &a.issuer.url == *url))
        {
            bail!("a key file is given for issuer {url:?}, which the configuration does not name");
        }
        let issuers = config
            .jwt
            .iter()
            .cloned()
            .zip(compiled)
            .map(|(config, compiled)| {
                Ok(Arc::new(Authenticator {
                    client: https_client(&config.issuer.certificate_authority)?,
                    key_file: key_files.get(&config.issuer.url).cloned(),
                    config,
                    compiled,
                    keys: std::sync::RwLock::new(None),
                    fetching: tokio::sync::Mutex::new(None),
                }))
            })
            .collect::<Result<_>>()?;
        Ok(Self { issuers })
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

/// The keys of a JWKS document; keys of a type this verifier does not know
/// are skipped, not fatal.
fn key_set(set: &Value) -> Result<JwkSet> {
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .context("oidc: the key set has no keys")?
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .collect();
    Ok(JwkSet { keys })
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
    async fn authenticate(self: &Arc<Self>, token: &str) -> Result<Identity> {
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
        let keys = self.keys(header.kid.as_deref()).await?;
        let issuer = &self.config.issuer;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.url]);
        validation.set_audience(&issuer.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = crate::sa_token::LEEWAY_SECONDS.unsigned_abs();
        validation.validate_nbf = true;
        let mut last_error = None;
        for jwk in &keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => {
                    return claims::user(&self.config, &self.compiled, &data.claims)
                        .map_err(|e| anyhow!(e));
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(anyhow!("oidc: verify token: {e}")),
            None => bail!("oidc: no usable key in the issuer's key set"),
        }
    }

    /// The keys a token with `kid` may be signed with (the key of that id;
    /// without an id, every key, as go-oidc tries them), from the cached
    /// set when it is under an hour old and holds them, else after a fetch.
    /// Fetches run one at a time and at most every [`MIN_REFETCH`] (tokens
    /// naming unknown key ids are free to send and must not make the server
    /// hammer the issuer); when one fails the cached keys stay in use.
    async fn keys(self: &Arc<Self>, kid: Option<&str>) -> Result<Vec<Jwk>> {
        let pick = |set: &JwkSet| -> Vec<Jwk> {
            match kid {
                Some(kid) => set.find(kid).cloned().into_iter().collect(),
                None => set.keys.clone(),
            }
        };
        let cached = |keys: &Option<(JwkSet, Instant)>| {
            keys.as_ref()
                .filter(|(_, at)| at.elapsed() < MAX_AGE)
                .map(|(set, _)| pick(set))
                .filter(|found| !found.is_empty())
        };
        let asked = Instant::now();
        if let Some(found) = cached(&self.keys.read().unwrap_or_else(|p| p.into_inner())) {
            return Ok(found);
        }
        let mut last_attempt = self.fetching.lock().await;
        // Someone tried while this request waited: its result is as new as
        // it gets, whether it succeeded or not.
        let tried_meanwhile = last_attempt.is_some_and(|at| at >= asked);
        let may_fetch = last_attempt.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
        if !tried_meanwhile && may_fetch {
            *last_attempt = Some(Instant::now());
            // A task of its own: a request that goes away does not cancel
            // the fetch it started (and used the window for).
            let this = Arc::clone(self);
            let fetch = tokio::spawn(async move {
                match tokio::time::timeout(FETCH_TIMEOUT, this.fetch()).await {
                    Ok(Ok(set)) => {
                        *this.keys.write().unwrap_or_else(|p| p.into_inner()) =
                            Some((set, Instant::now()));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(issuer = %this.config.issuer.url, error = %e, "fetching the issuer's keys")
                    }
                    Err(_) => {
                        tracing::warn!(issuer = %this.config.issuer.url, "fetching the issuer's keys timed out")
                    }
                }
            });
            let _ = fetch.await;
        }
        drop(last_attempt);
        // Stale keys still verify what they signed.
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let found = keys.as_ref().map(|(set, _)| pick(set)).unwrap_or_default();
        if found.is_empty() {
            bail!("oidc: no key {kid:?} in the issuer's key set");
        }
        Ok(found)
    }

    async fn fetch(&self) -> Result<JwkSet> {
        if let Some(path) = &self.key_file {
            let text = tokio::fs::read(path)
                .await
                .with_context(|| format!("oidc: reading the key file {}", path.display()))?;
            let set: Value = serde_json::from_slice(&text)
                .with_context(|| format!("oidc: the key file {} is not JSON", path.display()))?;
            return key_set(&set);
        }
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
        key_set(&self.get_json(jwks_uri).await?)
    }

    async fn get_json(&self, url: &str) -> Result<Value> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("oidc: bad URL {url:?}"))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))?;
        let response = self
            .client
            .request(request)
            .await
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
